"""Jittor bootstrap and device selection (seeding lives in segnext_jt/rng.py).

The environment for Jittor is prepared by `segnext_jt.environment` (run by `import segnext_jt`,
before this module imports jittor); this module then fixes Jittor's process-wide settings: signal
handlers, the kernel compiler's threads and `use_cuda`.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from . import environment
from .interrupts import give_signals_back_to_python

# the device decided before Jittor's import: a DeviceError (one line) if SEGNEXT_DEVICE / --device
# cannot be honoured; under auto, one warning when a GPU is present but unusable
DEVICE: str = environment.require_device()

import jittor as jt  # noqa: E402  (must come after the environment is prepared)


give_signals_back_to_python()  # Jittor's import installed its own SIGINT and SIGCHLD handlers

# Jittor compiles the new kernels of a graph on a pool of C++ threads (parallel_compiler.cc), made the
# first time it is used and kept for the life of the process; it also prints "Compiling Operators(i/n)
# used: ...s" while it works. A child *forked* after that inherits the pool object but none of its
# threads: its first parallel compile hands the work to threads that do not exist and waits for them
# forever (no timeout). That is the deadlock once seen in a forked worker, so a forked child compiles
# serially (register_at_fork); the processes this project starts (spawned data workers, training runs
# as subprocesses) are fresh interpreters. Processes compiling into the shared cache are serialised by
# Jittor's file lock (jittor.lock) either way. SEGNEXT_PARALLEL_COMPILE=0 compiles serially everywhere.
def _compile_serially() -> None:
    jt.flags.use_parallel_op_compiler = 0


if os.environ.get("SEGNEXT_PARALLEL_COMPILE", "1") == "0":
    _compile_serially()
else:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jt.flags.use_parallel_op_compiler = max(1, min(16, _cores))  # Jittor's default is 16 threads
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_compile_serially)

if DEVICE == "cuda" and not jt.has_cuda:  # never a silent fallback: error (cuda) or warning (auto)
    environment.cuda_failed_after_import()
    DEVICE = "cpu"
jt.flags.use_cuda = 1 if DEVICE == "cuda" else 0


def device_summary() -> dict:
    return {"device": DEVICE, "use_cuda": int(jt.flags.use_cuda), "jittor": jt.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}
