"""Portable deterministic mode: the same seed gives the same bits on any x86-64 CPU with AVX2 + FMA.

The default ("native") mode is already deterministic on one machine: same seed, same bits. Across
machines it is not, because three libraries pick their code for the CPU they run on:

* Jittor compiles its core and every kernel (ours included) with `-march=native` (compiler.py) and
  kernels with `-Ofast`: an AVX-512 host gets 16-wide reductions, an AVX2 host 8-wide ones. Its cache
  key (jittor_utils.find_cache_path) holds the CPU model but not the flags;
* oneDNN (Jittor's sgemm and convolutions) dispatches at run time to the best ISA it finds, and splits
  reductions between as many OpenMP threads as there are cores;
* NumPy dispatches its SIMD loops (exp, log, ...) at run time, AVX-512 included.

Portable mode pins each of them, through the environment, before Jittor or NumPy is imported
(`apply`, called by segnext_jt.environment on `import segnext_jt`):

* `cc_flags` = -march=x86-64-v3 -mtune=generic -ffp-contract=off: appended after Jittor's
  -march=native, and GCC takes the last -march whole (checked: `g++ -Q --help=target` is identical to
  -march=x86-64-v3 alone); fused multiply-adds only where the source writes them. Jittor still adds
  -Ofast to kernels: its reassociations are decided at compile time, so the same compiler gives the
  same code on every host. `kernel_flags` is cleared (a user's extra flags would change the code);
* `cache_name` = segnext_portable_x86-64-v3: a separate Jittor cache, so no kernel built with
  -march=native is reused (the first portable run compiles Jittor's core and kernels again);
* DNNL_MAX_CPU_ISA / ONEDNN_MAX_CPU_ISA = AVX2 (oneDNN 2.2 reads the first);
* OMP_NUM_THREADS (and OPENBLAS_NUM_THREADS) = SEGNEXT_PORTABLE_THREADS, default 1: oneDNN's sgemm
  splits long reductions (the 1x1 convolutions' weight gradients) between threads, so the thread
  count is part of the result; our own kernels give every output to one thread and do not care;
* NPY_DISABLE_CPU_FEATURES = the AVX-512 families; OPENBLAS_CORETYPE = Haswell (NumPy/SciPy BLAS).

What it cannot pin: the compiler (g++ version), glibc's libm, and the library versions; they are in
the platform fingerprint (segnext_jt.platform_info, `bits_id`), which is equal for runs that should
agree bit for bit. The mode is asked for with SEGNEXT_DETERMINISTIC=portable or the config key
train.deterministic: portable (tools/train.py then starts itself again with the variable set, since
Jittor and NumPy are already imported when the config is read: `reexec_if_needed`).
"""
from __future__ import annotations

import os
import sys
from typing import Optional

MODE_ENV = "SEGNEXT_DETERMINISTIC"
THREADS_ENV = "SEGNEXT_PORTABLE_THREADS"
MODES = ("native", "portable")
MARCH = "x86-64-v3"
CC_FLAGS = f"-march={MARCH} -mtune=generic -ffp-contract=off"
CACHE_NAME = f"segnext_portable_{MARCH}"
ONEDNN_ISA = "AVX2"
# every AVX-512 family NumPy 1.2x/2.x knows; unknown names are ignored by NumPy
NUMPY_DISABLED = ("AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL "
                  "AVX512_SPR AVX512_FP16")
REQUIRED_CPU_FLAGS = ("avx2", "fma")  # /proc/cpuinfo names
DEFAULT_THREADS = 1


class PortableModeError(ValueError):
    """Portable mode asked for but impossible here (one line)."""


def requested_mode(environ=None) -> str:
    """native | portable from SEGNEXT_DETERMINISTIC (unset or empty: native)."""
    environ = os.environ if environ is None else environ
    value = environ.get(MODE_ENV, "").strip().lower()
    if value in ("", "native", "0", "false"):
        return "native"
    if value == "portable":
        return "portable"
    raise PortableModeError(f"{MODE_ENV} must be native or portable, got {environ.get(MODE_ENV)!r}")


def portable_threads(environ=None) -> int:
    environ = os.environ if environ is None else environ
    text = environ.get(THREADS_ENV, "").strip() or str(DEFAULT_THREADS)
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise PortableModeError(f"{THREADS_ENV} must be an integer from 1 to 1024, got {text!r}")
    return int(text)


def portable_environment(environ=None) -> dict:
    """The variables portable mode sets (overriding the user's: they decide the bits)."""
    threads = str(portable_threads(environ))
    return {"cc_flags": CC_FLAGS, "kernel_flags": "", "cache_name": CACHE_NAME,
            "DNNL_MAX_CPU_ISA": ONEDNN_ISA, "ONEDNN_MAX_CPU_ISA": ONEDNN_ISA,
            "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "OPENBLAS_CORETYPE": "Haswell",
            "NPY_DISABLE_CPU_FEATURES": NUMPY_DISABLED, "OMP_DYNAMIC": "FALSE"}


def host_problem(cpuinfo_path: str = "/proc/cpuinfo") -> Optional[str]:
    """Why this host cannot run portable mode (None: it can)."""
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"portable mode needs an x86-64 CPU, this is {platform.machine()}"
    try:
        with open(cpuinfo_path, errors="replace") as f:
            flags = next((line.partition(":")[2].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None  # cannot tell (not Linux): let the libraries decide
    missing = [f for f in REQUIRED_CPU_FLAGS if f not in flags]
    if missing:
        return f"portable mode needs a CPU with AVX2 and FMA; this one lacks {' and '.join(missing)}"
    return None


def numpy_pinned() -> Optional[bool]:
    """False if NumPy is imported and dispatches AVX-512 loops (imported before the variables were
    set); None if NumPy is not imported yet."""
    if "numpy" not in sys.modules:
        return None
    try:
        from numpy.core import _multiarray_umath as umath
    except ImportError:  # NumPy 2 moved it
        try:
            from numpy._core import _multiarray_umath as umath
        except ImportError:
            return None
    # the dispatch targets only: __cpu_features__ also lists single flags (AVX512VL...) that NumPy
    # cannot disable and only uses through the targets
    features = getattr(umath, "__cpu_features__", {})
    return not any(features.get(t) for t in getattr(umath, "__cpu_dispatch__", []) if t.startswith("AVX512"))


def apply(environ=None) -> str:
    """Set portable mode's variables when SEGNEXT_DETERMINISTIC=portable (before Jittor and NumPy are
    imported); returns the mode. Raises PortableModeError (one line) for a bad value, a host without
    AVX2/FMA, or a process that imported NumPy or Jittor first."""
    environ = os.environ if environ is None else environ
    mode = requested_mode(environ)
    if mode == "native":
        return mode
    problem = host_problem()
    if problem:
        raise PortableModeError(f"{MODE_ENV}=portable: {problem}")
    if "jittor" in sys.modules and f"-march={MARCH}" not in str(sys.modules["jittor"].flags.cc_flags):
        raise PortableModeError(f"{MODE_ENV}=portable must be set before Jittor is imported (start the "
                                f"process with it in the environment)")
    environ.update(portable_environment(environ))
    if numpy_pinned() is False:
        raise PortableModeError(f"{MODE_ENV}=portable must be set before NumPy is imported (start the "
                                f"process with it in the environment)")
    return mode


def active_mode() -> str:
    """The mode this process runs in: portable only if its variables are in place and NumPy and Jittor
    (when imported) were loaded under them."""
    try:
        if requested_mode() != "portable":
            return "native"
    except PortableModeError:
        return "native"
    wanted = portable_environment()
    if not all(os.environ.get(k) == v for k, v in wanted.items()) or numpy_pinned() is False:
        return "native"
    jt = sys.modules.get("jittor")  # the variables could have been set after Jittor compiled its core
    return "native" if jt is not None and f"-march={MARCH}" not in str(jt.flags.cc_flags) else "portable"


def config_mismatch(config_mode: str) -> Optional[str]:
    """Why a config asking for portable mode cannot train in this process (None: it can)."""
    if config_mode == "portable" and active_mode() != "portable":
        return ("train.deterministic is portable but this process was started without "
                f"{MODE_ENV}=portable (tools/train.py restarts itself with it)")
    return None


def reexec_if_needed(config_mode: str) -> None:
    """A tool whose config asks for portable mode in a native process starts itself again with
    SEGNEXT_DETERMINISTIC=portable (Jittor and NumPy are already imported; nothing written yet).
    The process keeps its id (mpirun and a sweep's parent see the same child)."""
    if config_mode != "portable" or active_mode() == "portable":
        return
    env = dict(os.environ, **{MODE_ENV: "portable"})
    env.update(portable_environment(env))
    print("train.deterministic is portable: restarting with SEGNEXT_DETERMINISTIC=portable", file=sys.stderr,
          flush=True)
    sys.stdout.flush()
    argv = [sys.executable] + [f"-X{k}" if v is True else f"-X{k}={v}" for k, v in sys._xoptions.items()]
    os.execve(sys.executable, argv + sys.argv, env)
