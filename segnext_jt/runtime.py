"""Jittor bootstrap, device selection and seeding.

The environment for Jittor is prepared by `segnext_jt.environment` (run by `import segnext_jt`,
before this module imports jittor); this module then fixes Jittor's process-wide settings: signal
handlers, the kernel compiler's threads and `use_cuda`.
"""
from __future__ import annotations

import os
import random
import sys

import numpy as np

from . import environment

DEVICE: str = environment.prepare_environment()

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
