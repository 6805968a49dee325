"""Probes for what Jittor 1.3 needs to run on CUDA, each a small function (tests monkeypatch them).

No Jittor import, no subprocess: the CUDA driver API through ctypes, file checks and header reads.
Each probe mirrors the lookup Jittor 1.3.11 itself does, so that a "usable" here means Jittor's
import will set up CUDA (sources read: jittor/compiler.py `nvcc_path` search and `check_cuda`,
jittor/compile_extern.py `setup_cuda_lib`, jittor_utils/install_cuda.py). A probe that finds a
problem returns one line naming it and what to do; segnext_jt.environment puts them in order.
"""
from __future__ import annotations

import ctypes
import glob
import json
import os
import platform
import re
import shutil
from pathlib import Path
from typing import Optional

# Jittor's own CUDA packages (jittor_utils/install_cuda.py, Linux): the newest whose minimum CUDA
# driver version the driver meets; each unpacks to <jittor home>/.cache/jittor/jtcuda/<name>/bin/nvcc.
JTCUDA_PACKAGES = (((12, 2), "cuda12.2_cudnn8_linux"), ((11, 2), "cuda11.2_cudnn8_linux"),
                   ((11, 0), "cuda11.0_cudnn8_linux"), ((10, 2), "cuda10.2_cudnn7_linux"),
                   ((10, 0), "cuda10.0_cudnn7_linux"))
# where Jittor looks for nvcc after $nvcc_path and PATH (compiler.py)
SYSTEM_NVCC = ("/usr/local/cuda/bin/nvcc", "/usr/bin/nvcc", "/opt/cuda/bin/nvcc")
# the cuDNN 8 split libraries Jittor loads by name for CUDA >= 11 (compile_extern.py setup_cuda_lib);
# cuDNN 9 has libcudnn_ops.so, libcudnn_cnn.so, libcudnn_graph.so, libcudnn_engines_*.so instead
JITTOR_CUDNN8_LIBS = ("libcudnn_ops_infer.so", "libcudnn_ops_train.so", "libcudnn_cnn_infer.so",
                      "libcudnn_cnn_train.so")
INSTALL_HINT = "or let Jittor install its own CUDA with cuDNN 8: python -m jittor_utils.install_cuda"

CUDA_SUCCESS, CUDA_ERROR_NO_DEVICE = 0, 100


def jittor_home() -> str:
    """Jittor's home (jittor_utils.home()): $JITTOR_HOME, else ~/.cache/jittor/config.json's
    JITTOR_HOME, else the user's home."""
    if os.environ.get("JITTOR_HOME"):
        return os.path.abspath(os.environ["JITTOR_HOME"])
    try:
        with open(os.path.join(Path.home(), ".cache", "jittor", "config.json")) as f:
            home = json.load(f).get("JITTOR_HOME")
        if isinstance(home, str) and home:
            return os.path.abspath(home)
    except (OSError, ValueError, AttributeError):
        pass
    return str(Path.home())


def jittor_version() -> str:
    try:
        from importlib.metadata import version
        return version("jittor")
    except Exception:  # noqa: BLE001 - only used in messages
        return "1.3"


def _version_text(code: int) -> str:
    """CUDA's integer version (12040) as text ('12.4')."""
    return f"{code // 1000}.{code % 1000 // 10}"


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------
def _libcuda():
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


def _cu_error_name(lib, code: int) -> str:
    name = ctypes.c_char_p()
    try:
        if lib.cuGetErrorName(int(code), ctypes.byref(name)) == CUDA_SUCCESS and name.value:
            return name.value.decode(errors="replace")
    except (AttributeError, OSError):
        pass
    return f"error {code}"


def probe_driver() -> tuple[int, Optional[str]]:
    """(number of GPUs, problem) from the CUDA driver: libcuda.so.1, cuInit, cuDeviceGetCount."""
    lib = _libcuda()
    if lib is None:
        return 0, "no NVIDIA driver (libcuda.so.1 cannot be loaded)"
    try:
        rc = lib.cuInit(0)
        if rc == CUDA_ERROR_NO_DEVICE:
            return 0, "no GPU: the CUDA driver finds no device (cuInit: CUDA_ERROR_NO_DEVICE; check CUDA_VISIBLE_DEVICES)"
        if rc != CUDA_SUCCESS:
            return 0, f"the CUDA driver does not start (cuInit: {_cu_error_name(lib, rc)})"
        count = ctypes.c_int(0)
        rc = lib.cuDeviceGetCount(ctypes.byref(count))
        if rc != CUDA_SUCCESS:
            return 0, f"the CUDA driver cannot count GPUs (cuDeviceGetCount: {_cu_error_name(lib, rc)})"
        return count.value, None
    except (AttributeError, OSError) as exc:
        return 0, f"libcuda.so.1 is not a usable CUDA driver ({exc})"


def probe_gpu_names(count: int) -> list:
    """cuDeviceGetName of each of the first `count` devices (after cuInit)."""
    lib, names = _libcuda(), []
    if lib is None:
        return names
    for i in range(count):
        dev, buf = ctypes.c_int(0), ctypes.create_string_buffer(256)
        try:
            if lib.cuDeviceGet(ctypes.byref(dev), i) == CUDA_SUCCESS and \
                    lib.cuDeviceGetName(buf, len(buf), dev) == CUDA_SUCCESS:
                names.append(buf.value.decode(errors="replace").strip())
                continue
        except (AttributeError, OSError):
            pass
        names.append("unknown")
    return names


def probe_driver_version() -> Optional[str]:
    """The CUDA version the driver supports (cuDriverGetVersion), e.g. '12.4'; None without a driver."""
    lib = _libcuda()
    version = ctypes.c_int(0)
    try:
        if lib is not None and lib.cuDriverGetVersion(ctypes.byref(version)) == CUDA_SUCCESS and version.value:
            return _version_text(version.value)
    except (AttributeError, OSError):
        pass
    return None


def probe_nvidia_driver_version() -> Optional[str]:
    """The NVIDIA kernel module's version (e.g. '550.54.15') from /proc/driver/nvidia/version."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]*)", f.read())
    except OSError:
        return None
    return match.group(1) if match else None


# --------------------------------------------------------------------------------------------
# nvcc and the CUDA runtime next to it
# --------------------------------------------------------------------------------------------
def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def jtcuda_package(driver_api: Optional[str]) -> Optional[str]:
    """The name of Jittor's CUDA package for this driver (install_cuda.py), None below CUDA 10.0."""
    if not driver_api:
        return None
    try:  # install_cuda.py honours JTCUDA_VERSION too
        wanted = tuple(int(x) for x in os.environ.get("JTCUDA_VERSION", driver_api).split(".")[:2])
    except ValueError:
        return None
    for minimum, name in JTCUDA_PACKAGES:
        if wanted >= minimum:
            return name
    return None


def probe_nvcc(driver_api: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """(nvcc path, problem), in Jittor's order: $nvcc_path wins; else Jittor's own CUDA when its
    jtcuda directory exists; else PATH, /usr/local/cuda/bin, /usr/bin, /opt/cuda/bin."""
    if "nvcc_path" in os.environ:
        path = os.environ["nvcc_path"]
        if not path:
            return None, "nvcc_path is set to '' (Jittor's switch for its CPU-only build); unset it"
        if not _executable(path):
            return None, f"nvcc_path={path} is not an executable file"
        return path, None
    jtcuda = os.path.join(jittor_home(), ".cache", "jittor", "jtcuda")
    package = jtcuda_package(driver_api)
    if os.path.isdir(jtcuda) and package:
        nvcc = os.path.join(jtcuda, package, "bin", "nvcc")
        if _executable(nvcc):
            return nvcc, None
        return None, (f"{jtcuda} exists without {package}/bin/nvcc, so Jittor would download {package}.tgz "
                      f"when imported: run python -m jittor_utils.install_cuda once with network, or remove "
                      f"{jtcuda} to use the system's CUDA")
    for nvcc in [shutil.which("nvcc") or "", *SYSTEM_NVCC]:
        if nvcc and _executable(nvcc):
            return os.path.abspath(nvcc), None
    return None, ("no nvcc (Jittor compiles its CUDA kernels with it): install the CUDA toolkit and put nvcc on "
                  f"PATH, or set nvcc_path=/path/to/nvcc, {INSTALL_HINT}")


def cuda_dirs(nvcc: str) -> dict:
    """Jittor's CUDA directories for this nvcc (compiler.py check_cuda): symlinks followed, then
    bin/, ../lib64 and ../include (lib: /usr/lib/<arch>-linux-gnu for a packaged /usr/bin/nvcc)."""
    full = os.path.abspath(nvcc)
    while os.path.islink(full):
        full = os.path.realpath(full)
    bin_dir = os.path.dirname(full)
    lib = os.path.abspath(os.path.join(bin_dir, "..", "lib64"))
    if nvcc == "/usr/bin/nvcc":
        lib = "/usr/lib/x86_64-linux-gnu"
    include = os.path.abspath(os.path.join(bin_dir, "..", "include"))
    arch = "x86_64" if platform.machine() in ("x86_64", "AMD64") else "aarch64"
    return {"bin": bin_dir, "lib": lib, "include": include, "arch": arch,
            "target_include": os.path.abspath(os.path.join(include, "..", f"targets/{arch}-linux/include")),
            "target_lib": os.path.abspath(os.path.join(lib, "..", f"targets/{arch}-linux/lib"))}


def probe_cuda_runtime(nvcc: str) -> tuple[Optional[str], Optional[str]]:
    """(CUDA runtime version, problem): Jittor loads <lib64 next to nvcc>/libcudart.so by that name."""
    lib_path = os.path.join(cuda_dirs(nvcc)["lib"], "libcudart.so")
    if not os.path.isfile(lib_path):
        return None, f"no CUDA runtime next to nvcc {nvcc}: Jittor loads {lib_path}, which does not exist"
    try:
        lib = ctypes.CDLL(lib_path)
        version = ctypes.c_int(0)
        if lib.cudaRuntimeGetVersion(ctypes.byref(version)) != 0 or not version.value:
            return None, f"the CUDA runtime {lib_path} does not report its version"
    except (OSError, AttributeError) as exc:
        return None, f"the CUDA runtime {lib_path} cannot be loaded ({exc})"
    return _version_text(version.value), None


# --------------------------------------------------------------------------------------------
# cuDNN
# --------------------------------------------------------------------------------------------
def _search(dirs, name: str, prefer: tuple = ()) -> Optional[str]:
    """compile_extern.search_file: in each dir, name.<prefer...> down to the bare name."""
    for d in dirs:
        base = os.path.join(d, name)
        for i in range(len(prefer), -1, -1):
            candidate = ".".join((base,) + tuple(prefer[:i]))
            if os.path.isfile(candidate):
                return candidate
    return None


def cudnn_header_version(include_dir: str) -> Optional[str]:
    """CUDNN_MAJOR.MINOR.PATCHLEVEL from cudnn_version.h (cuDNN >= 8) or cudnn.h."""
    for name in ("cudnn_version.h", "cudnn.h"):
        try:
            with open(os.path.join(include_dir, name), errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        parts = [re.search(rf"#define\s+CUDNN_{key}\s+(\d+)", text) for key in ("MAJOR", "MINOR", "PATCHLEVEL")]
        if parts[0]:
            return ".".join(m.group(1) for m in parts if m)
    return None


def probe_cudnn(nvcc: str, cuda_version: str) -> tuple[Optional[str], Optional[str]]:
    """(cuDNN version, problem) as Jittor's setup_cuda_lib('cudnn') finds it: cudnn.h, libcudnn.so
    and, for CUDA >= 11, cuDNN 8's split libraries (preferring the .so.8 names only for CUDA 11)."""
    d = cuda_dirs(nvcc)
    include_dirs = [d["include"], d["target_include"], "/usr/include"]
    lib_dirs = [d["bin"], d["lib"], d["target_lib"], f"/usr/lib/{d['arch']}-linux-gnu", "/usr/lib"]
    major = int(str(cuda_version).split(".")[0])
    prefer = ("8",) if major == 11 else ()
    header = _search(include_dirs, "cudnn.h")
    version = cudnn_header_version(os.path.dirname(header)) if header else None
    needed = ["libcudnn.so"] + (list(JITTOR_CUDNN8_LIBS) if major >= 11 else [])
    missing = [name for name in needed if _search(lib_dirs, name, prefer) is None]
    cudnn9_libs = any(glob.glob(os.path.join(x, pat)) for x in lib_dirs
                      for pat in ("libcudnn_graph.so*", "libcudnn_ops.so*"))
    if (version and int(version.split(".")[0]) >= 9) or (missing and cudnn9_libs):
        return version, (f"cuDNN {version or '9'} found, but Jittor {jittor_version()} knows only cuDNN 8's "
                         f"library names ({', '.join(JITTOR_CUDNN8_LIBS)}): install cuDNN 8 for CUDA "
                         f"{cuda_version}, {INSTALL_HINT}")
    if header is None and len(missing) == len(needed):
        return None, (f"no cuDNN: Jittor looks for cudnn.h in {', '.join(include_dirs)} and libcudnn.so in "
                      f"{', '.join(lib_dirs)}: install cuDNN 8 for CUDA {cuda_version}, {INSTALL_HINT}")
    if header is None:
        return None, f"no cuDNN header: cudnn.h is not in {', '.join(include_dirs)} (install cuDNN's development files)"
    if missing:
        names = f"{missing[0]}{'(.8)' if prefer else ''}"
        return version, (f"cuDNN library {names} not found in {', '.join(lib_dirs)} (Jittor loads the unversioned "
                         f"development names: install cuDNN 8's development files)")
    return version or "unknown", None
