import re
from pathlib import Path

from setuptools import find_packages, setup


def _version() -> str:
    """segnext_jt.__version__, read from the file's text: importing the package would need its
    dependencies (and prepares Jittor's environment) before they are installed."""
    text = (Path(__file__).resolve().parent / "segnext_jt" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if match is None:
        raise RuntimeError("segnext_jt/__init__.py: no line __version__ = \"...\" (the one place of the version)")
    return match.group(1)


setup(
    name="segnext-jittor",
    version=_version(),
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
