"""Environment for Jittor, prepared before anything imports it; does not import Jittor itself.

`import segnext_jt` calls `prepare_environment()`, so `import segnext_jt, jittor` works in that order
(tests/test_environment.py checks it in a fresh process). It fixes what a plain `import jittor` gets
wrong on offline and shared machines:

* a `nvcc` without a usable CUDA runtime/GPU makes Jittor's import crash: unless CUDA is really
  usable we set `nvcc_path=""`, which makes Jittor build its CPU-only core;
* Jittor downloads oneDNN (CPU) and cub/cutt (CUDA) on first use: the `jittor-offline` package
  ships those archives and Jittor picks them up by itself; cutlass is not shipped, so on CUDA we
  turn it off (`use_cutlass=0`) unless its headers are already in Jittor's cache;
* OpenMP threads (Jittor's kernels, oneDNN) spin-wait at barriers by default. Beside another busy
  process a spinning thread burns the core its partner needs, and a single step slowed down 10x in
  the demo training; `OMP_WAIT_POLICY=PASSIVE` makes them sleep instead (set only if unset);
* Jittor compiles its core and extern ops through a forked `multiprocessing.Pool`: forking a process
  whose threads hold locks deadlocked a sweep worker once, and the pool's atexit clean-up is what
  hangs after Ctrl-C. `DISABLE_MULTIPROCESSING=1` (set only if unset) compiles serially instead;
  `make venv` compiles the core once with the pool (`DISABLE_MULTIPROCESSING=0`), where it is safe.

`SEGNEXT_DEVICE=cpu|cuda|auto` (default auto) overrides the device detection.

A process started with `SEGNEXT_PARENT_PID=<pid>` (see `child_env`) asks the kernel for SIGTERM when
its parent dies, even by SIGKILL (Linux), so a killed seed sweep leaves no training behind. This is
done here, in the child, rather than with subprocess's `preexec_fn`: that runs Python between fork and
exec, which can deadlock when the parent has threads (Jittor's), and did in the sweep's tests.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys

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


def child_env(env: "dict | None" = None) -> dict:
    """Environment for a child process that should die with this one (see the module docstring)."""
    env = dict(os.environ if env is None else env)
    env["SEGNEXT_PARENT_PID"] = str(os.getpid())
    return env


def _is_mpi_rank() -> bool:
    """True in a process started by Open MPI's mpirun (the variable Jittor checks, too)."""
    return "OMPI_COMM_WORLD_SIZE" in os.environ


def _die_with_parent() -> None:
    parent = os.environ.pop("SEGNEXT_PARENT_PID", "")  # not inherited by this process's own children
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, 15, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGTERM
    except (OSError, AttributeError):
        return
    if _is_mpi_rank():  # started by mpirun (itself started by the parent): the signal follows mpirun
        return
    if os.getppid() != int(parent):  # the parent died before the request took effect
        os.kill(os.getpid(), 15)


def prepare_environment() -> str:
    """Set Jittor's environment variables for the detected device (once); returns the device."""
    global DEVICE
    if DEVICE:
        return DEVICE
    _die_with_parent()
    if "jittor" in sys.modules:  # someone imported jittor first; respect whatever it chose
        DEVICE = "cuda" if sys.modules["jittor"].flags.use_cuda else "cpu"
        return DEVICE
    device = detect_device()
    if device == "cpu":
        os.environ["nvcc_path"] = ""  # build Jittor's CPU core; a broken nvcc would crash the import
    else:
        cutlass_header = os.path.expanduser("~/.cache/jittor/cutlass/cutlass/include/cutlass/cutlass.h")
        if not os.path.isfile(cutlass_header) and "CUTLASS_PATH" not in os.environ:
            os.environ.setdefault("use_cutlass", "0")  # would download cutlass.zip
    os.environ.setdefault("log_silent", "1")  # Jittor's [i ...] compile chatter
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("DISABLE_MULTIPROCESSING", "1")
    DEVICE = device
    return device
