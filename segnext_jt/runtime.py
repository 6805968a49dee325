"""Jittor bootstrap, device selection and seeding.

Import this module before anything imports `jittor` (the package's `__init__` does). It fixes two
failure modes of a plain `import jittor` on offline machines:

* a `nvcc` without a usable CUDA runtime/GPU makes Jittor's import crash: unless CUDA is really
  usable we set `nvcc_path=""`, which makes Jittor build its CPU-only core;
* Jittor downloads oneDNN (CPU) and cub/cutt (CUDA) on first use: the `jittor-offline` package
  ships those archives and Jittor picks them up by itself; cutlass is not shipped, so on CUDA we
  turn it off (`use_cutlass=0`) unless its headers are already in Jittor's cache.

`SEGNEXT_DEVICE=cpu|cuda|auto` (default auto) overrides the detection.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import random
import sys
from typing import Optional

import numpy as np

_CUDART_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")


def _cuda_gpu_count() -> int:
    """Number of GPUs the CUDA driver reports, 0 if no driver/GPU (never raises)."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    try:
        if libcuda.cuInit(0) != 0:
            return 0
        count = ctypes.c_int(0)
        if libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    except (AttributeError, OSError):
        return 0


def _cuda_runtime_loadable() -> bool:
    """True if a CUDA runtime library can be loaded (toolkit next to nvcc, or on the loader path)."""
    candidates = list(_CUDART_NAMES)
    found = ctypes.util.find_library("cudart")
    if found:
        candidates.insert(0, found)
    for root in filter(None, [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]):
        candidates += sorted(glob.glob(os.path.join(root, "lib64", "libcudart.so*")))
        candidates += sorted(glob.glob(os.path.join(root, "targets", "*", "lib", "libcudart.so*")))
    for name in candidates:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def detect_device() -> str:
    """'cuda' when a GPU and a CUDA runtime are usable, else 'cpu'; SEGNEXT_DEVICE overrides."""
    wanted = os.environ.get("SEGNEXT_DEVICE", "auto").strip().lower()
    if wanted not in ("auto", "cpu", "cuda"):
        raise ValueError(f"SEGNEXT_DEVICE must be cpu, cuda or auto, got {wanted!r}")
    if wanted == "cpu":
        return "cpu"
    usable = _cuda_gpu_count() > 0 and _cuda_runtime_loadable()
    if wanted == "cuda" and not usable:
        raise RuntimeError("SEGNEXT_DEVICE=cuda but no usable CUDA (driver with a GPU and a CUDA runtime "
                           "library) was found")
    return "cuda" if usable else "cpu"


DEVICE: str = ""


def _prepare_environment() -> str:
    global DEVICE
    if DEVICE:
        return DEVICE
    if "jittor" in sys.modules:
        # Someone imported jittor first; respect whatever it chose.
        import jittor as jt
        DEVICE = "cuda" if jt.flags.use_cuda else "cpu"
        return DEVICE
    device = detect_device()
    if device == "cpu":
        os.environ["nvcc_path"] = ""  # build Jittor's CPU core; a broken nvcc would crash the import
    else:
        cutlass_header = os.path.expanduser("~/.cache/jittor/cutlass/cutlass/include/cutlass/cutlass.h")
        if not os.path.isfile(cutlass_header) and "CUTLASS_PATH" not in os.environ:
            os.environ.setdefault("use_cutlass", "0")  # would download cutlass.zip
    os.environ.setdefault("log_silent", "1")  # Jittor's [i ...] compile chatter
    DEVICE = device
    return device


_prepare_environment()

import jittor as jt  # noqa: E402  (must come after the environment is prepared)


def _restore_python_signal_handlers() -> None:
    """Jittor's C++ core installs handlers that hard-exit the whole process on SIGINT and whenever
    any child process dies from a signal (SIGCHLD): Ctrl-C would skip Python's cleanup (data
    workers, partial files), and a sweep/test that kills a child training run would kill itself.
    Give both back to Python; crash handlers (SIGSEGV, ...) stay Jittor's."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


_restore_python_signal_handlers()

# Jittor compiles new kernels on a pool of threads by default. We saw rare deadlocks and crashes
# there when several processes compile into the shared kernel cache at once (a seed sweep, tests
# with subprocesses); compiling in the calling thread costs some first-run time and avoids them.
# SEGNEXT_PARALLEL_COMPILE=1 restores Jittor's default.
if os.environ.get("SEGNEXT_PARALLEL_COMPILE", "0") != "1":
    jt.flags.use_parallel_op_compiler = 0

jt.flags.use_cuda = 1 if DEVICE == "cuda" and jt.has_cuda else 0
if jt.flags.use_cuda == 0:
    DEVICE = "cpu"


def use_device(device: str) -> None:
    """Switch between 'cpu' and 'cuda' at run time (the import-time choice is the default)."""
    global DEVICE
    if device == "cuda" and not jt.has_cuda:
        raise RuntimeError("CUDA requested but this Jittor build has no CUDA support")
    jt.flags.use_cuda = 1 if device == "cuda" else 0
    DEVICE = device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Jittor's global RNGs (NMF bases use their own stream, see ham_head)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    jt.set_global_seed(seed)


def rng_state() -> dict:
    """Python and NumPy global RNG states as JSON-able data (for resumable runs)."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def device_summary() -> dict:
    return {"device": DEVICE, "use_cuda": int(jt.flags.use_cuda), "jittor": jt.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


def sync() -> None:
    jt.sync_all(True)


def maybe_gc() -> Optional[None]:
    jt.gc()
    return None
