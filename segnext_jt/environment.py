"""Environment for Jittor, prepared before anything imports it; does not import Jittor itself.

`import segnext_jt` calls `prepare_environment()`, so `import segnext_jt, jittor` works in that order
(tests/test_environment.py checks it in a fresh process). It fixes what a plain `import jittor` gets
wrong on offline and shared machines:

* the device is decided here, with a reason (`decide_device`, below); for the CPU we set
  `nvcc_path=""`, which makes Jittor build its CPU-only core (a `nvcc` without a usable CUDA runtime
  would otherwise crash Jittor's import);
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

The device: `SEGNEXT_DEVICE` (or a tool's `--device`, see `select_device`) is auto (default), cpu or
cuda. CUDA is usable when the probes below find what Jittor 1.3.11 itself looks for (read from its
compiler.py, compile_extern.py and jittor_utils/install_cuda.py): a driver with a GPU, an `nvcc`
($nvcc_path if set, else Jittor's own CUDA when <jittor home>/.cache/jittor/jtcuda exists, else PATH,
/usr/local/cuda/bin, /usr/bin, /opt/cuda/bin), `libcudart.so` in the lib64 next to that nvcc, and
cuDNN 8 (cudnn.h and libcudnn.so plus its split libraries libcudnn_{ops,cnn}_{infer,train}.so: a
cuDNN 9 install has other names, and Jittor would run without cuDNN, silently under log_silent=1).
`cuda` that cannot be honoured is a `DeviceError` naming the reason; `auto` with a GPU that cannot be
used warns once (one line on stderr, when Jittor is imported) and runs on the CPU; `auto` without a
GPU is the CPU, silently. The error is recorded rather than raised at `import segnext_jt`, so that
the tools can report it as one `error:` line: `require_device()` (segnext_jt.runtime, before Jittor
is imported) and `select_device()` (the tools' --device) raise it.

A process started with `SEGNEXT_PARENT_PID=<pid>` (see `child_env`) asks the kernel for SIGTERM when
its parent dies, even by SIGKILL (Linux), so a killed seed sweep leaves no training behind. This is
done here, in the child, rather than with subprocess's `preexec_fn`: that runs Python between fork and
exec, which can deadlock when the parent has threads (Jittor's), and did in the sweep's tests.
"""
from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

from . import cuda_probes as probes
from . import portable

DEVICE_CHOICES = ("auto", "cpu", "cuda")
# set with nvcc_path="" by us, so that a child process (or a second decision) knows it may drop it
_NVCC_CLEARED_MARK = "SEGNEXT_CLEARED_NVCC_PATH"


class DeviceError(ValueError):
    """The requested device cannot be used (one line, naming the reason)."""


@dataclass
class CudaStatus:
    """What the probes found. `problem` is why Jittor could not use CUDA here (None: it can);
    `gpu_present` tells an unusable GPU (warn under auto) from no GPU at all (silent)."""
    gpu_count: int = 0
    gpu_names: list = field(default_factory=list)
    driver_api: Optional[str] = None  # CUDA version the driver supports (cuDriverGetVersion)
    nvidia_driver: Optional[str] = None  # kernel module version (/proc/driver/nvidia/version)
    nvcc: Optional[str] = None
    cuda_runtime: Optional[str] = None
    cudnn: Optional[str] = None
    problem: Optional[str] = None
    gpu_present: bool = False


@dataclass
class DeviceDecision:
    requested: str  # auto | cpu | cuda (or the bad value)
    source: str  # where `requested` came from: SEGNEXT_DEVICE, --device, default
    device: str  # cpu | cuda: what Jittor's environment is prepared for
    cuda: Optional[CudaStatus] = None  # None when not probed (cpu requested)
    error: Optional[str] = None  # set: the request cannot be honoured (raise DeviceError)
    warning: Optional[str] = None  # set: auto fell back to the CPU although a GPU is present


def probe_cuda() -> CudaStatus:
    """Run the probes in the order Jittor needs things; stop at the first problem."""
    st = CudaStatus()
    st.gpu_count, problem = probes.probe_driver()
    if problem:
        st.problem = problem
        return st
    st.gpu_present = st.gpu_count > 0
    st.gpu_names = probes.probe_gpu_names(st.gpu_count)
    st.driver_api = probes.probe_driver_version()
    st.nvidia_driver = probes.probe_nvidia_driver_version()
    if not st.gpu_present:
        st.problem = "the CUDA driver reports no GPU (check CUDA_VISIBLE_DEVICES)"
        return st
    st.nvcc, problem = probes.probe_nvcc(st.driver_api)
    if problem:
        st.problem = problem
        return st
    st.cuda_runtime, problem = probes.probe_cuda_runtime(st.nvcc)
    if problem:
        st.problem = problem
        return st
    if st.driver_api and _major(st.driver_api) < _major(st.cuda_runtime):
        st.problem = (f"the NVIDIA driver supports CUDA {st.driver_api} but nvcc {st.nvcc} is CUDA "
                      f"{st.cuda_runtime}: update the driver or use an older toolkit")
        return st
    st.cudnn, st.problem = probes.probe_cudnn(st.nvcc, st.cuda_runtime)
    return st


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return 0


def decide_device(requested: Optional[str], source: str = "SEGNEXT_DEVICE") -> DeviceDecision:
    """The decision table. `requested` None or '' means auto."""
    wanted = (requested or "auto").strip().lower()
    if wanted not in DEVICE_CHOICES:
        return DeviceDecision(str(requested), source, "cpu",
                              error=f"{source} must be auto, cpu or cuda, got {requested!r}")
    if wanted == "cpu":
        return DeviceDecision(wanted, source, "cpu")
    status = probe_cuda()
    if status.problem is None:
        return DeviceDecision(wanted, source, "cuda", status)
    if wanted == "cuda":
        return DeviceDecision(wanted, source, "cpu", status,
                              error=f"{source}=cuda cannot be used: {status.problem}")
    if status.gpu_present:
        n = status.gpu_count
        return DeviceDecision(wanted, source, "cpu", status,
                              warning=f"warning: {n} GPU{'s' if n > 1 else ''} found but CUDA cannot be used "
                                      f"({status.problem}); running on the CPU (--device cpu or "
                                      f"SEGNEXT_DEVICE=cpu silences this)")
    return DeviceDecision(wanted, source, "cpu", status)


DEVICE: str = ""
DECISION: Optional[DeviceDecision] = None
_warned = False


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


def _drop_our_nvcc_path() -> None:
    """Undo `nvcc_path=""` set by us (in this process or a parent), so the probes see the user's."""
    if os.environ.pop(_NVCC_CLEARED_MARK, "") == "1":
        os.environ.pop("nvcc_path", None)


def _apply(decision: DeviceDecision) -> None:
    """Set Jittor's environment variables for `decision.device`."""
    global DEVICE, DECISION
    _drop_our_nvcc_path()
    if decision.device == "cpu":
        os.environ["nvcc_path"] = ""  # build Jittor's CPU core; a broken nvcc would crash the import
        os.environ[_NVCC_CLEARED_MARK] = "1"
    else:
        cutlass_header = os.path.join(probes.jittor_home(), ".cache", "jittor", "cutlass", "cutlass", "include",
                                      "cutlass", "cutlass.h")
        if not os.path.isfile(cutlass_header) and "CUTLASS_PATH" not in os.environ:
            os.environ.setdefault("use_cutlass", "0")  # would download cutlass.zip
    os.environ.setdefault("log_silent", "1")  # Jittor's [i ...] compile chatter
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("DISABLE_MULTIPROCESSING", "1")
    try:  # SEGNEXT_DETERMINISTIC=portable: pin the ISA choices before Jittor and NumPy load
        portable.apply()
    except portable.PortableModeError as exc:
        decision.error = decision.error or str(exc)
    DECISION, DEVICE = decision, decision.device


def prepare_environment() -> str:
    """Decide the device from SEGNEXT_DEVICE and set Jittor's environment for it (once); returns the
    device. Never raises for a bad request: the error is recorded (see `require_device`)."""
    if DEVICE:
        return DEVICE
    _die_with_parent()
    if "jittor" in sys.modules:  # someone imported jittor first; respect whatever it chose
        device = "cuda" if sys.modules["jittor"].flags.use_cuda else "cpu"
        _set_decision(DeviceDecision("auto", "jittor imported first", device))
        return device
    _drop_our_nvcc_path()  # the probes must see the user's nvcc_path, not ours (or a parent's)
    _apply(decide_device(os.environ.get("SEGNEXT_DEVICE"), "SEGNEXT_DEVICE"))
    return DEVICE


def _set_decision(decision: DeviceDecision) -> None:
    global DEVICE, DECISION
    DECISION, DEVICE = decision, decision.device


def select_device(requested: Optional[str], source: str = "--device") -> str:
    """A tool's --device: decide again before Jittor is imported (None keeps SEGNEXT_DEVICE's
    decision). Exports SEGNEXT_DEVICE so child processes agree. Raises DeviceError (one line) if the
    request cannot be honoured; returns the device."""
    prepare_environment()
    if requested is not None:
        if "jittor" in sys.modules:
            if requested not in ("auto", DEVICE):
                raise DeviceError(f"{source} {requested}: Jittor was already imported for the {DEVICE} "
                                  f"in this process")
        else:
            os.environ["SEGNEXT_DEVICE"] = requested
            _apply(decide_device(requested, source))
    if DECISION is not None and DECISION.error:
        raise DeviceError(DECISION.error)
    return DEVICE


def require_device() -> str:
    """The device for Jittor's import (segnext_jt.runtime): raises the recorded DeviceError, prints
    the recorded `auto` warning once."""
    prepare_environment()
    if DECISION is not None and DECISION.error:
        raise DeviceError(DECISION.error)
    _warn_once()
    return DEVICE


def _warn_once() -> None:
    global _warned
    if DECISION is not None and DECISION.warning and not _warned:
        _warned = True
        print(DECISION.warning, file=sys.stderr, flush=True)


def cuda_failed_after_import() -> None:
    """Jittor was imported for CUDA but reports `has_cuda` false: an error when CUDA was requested,
    one warning under auto (the caller then runs on the CPU)."""
    global DEVICE
    reason = ("Jittor could not set up CUDA although the probes found it usable (rerun with log_silent=0 to "
              "see Jittor's messages)")
    if DECISION is not None and DECISION.requested == "cuda":
        raise DeviceError(f"{DECISION.source}=cuda cannot be used: {reason}")
    if DECISION is not None:
        DECISION.device = "cpu"
        DECISION.warning = f"warning: {reason}; running on the CPU"
    DEVICE = "cpu"
    _warn_once()

