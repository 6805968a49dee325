from setuptools import find_packages, setup

setup(
    name="segnext-jittor",
    version="0.1.0",
    description="SegNeXt (MSCAN + LightHamHead) in Jittor, faithful to mmsegmentation, with a seed-spread "
                "reproducibility harness",
    packages=find_packages(include=["segnext_jt", "segnext_jt.*"]),  # repro/ holds commands, not a package
    python_requires=">=3.10",  # config.py uses types.UnionType (PEP 604 unions)
    install_requires=[
        "jittor",
        "jittor-offline",  # ships oneDNN/cub archives: Jittor would otherwise download them at import
        "numpy<2",         # Jittor 1.3 is built against NumPy 1.x
        "pillow",
        "pyyaml",
        "tqdm",
        "scipy",
    ],
    extras_require={"test": ["pytest"]},
)
