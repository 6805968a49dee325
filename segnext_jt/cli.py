"""Shared command-line plumbing for tools/*.py and repro/seed_sweep.py (no Jittor import).

* output-path checks done *before* any expensive work: `check_output_file`, `check_output_dir`,
  `check_work_dir` (raise `UsageError` with one line naming the option and the path);
* `run_tool`: after `segnext_jt.interrupts.install_signal_handlers`, SIGINT/SIGTERM unwind the
  stack (``finally`` blocks run, loaders and children are closed) and the tool ends with one
  ``error:`` line; the project's error types end as ``error: <message>`` (exit 2 for
  usage/config/path errors, 1 for bad input content such as a refused checkpoint) instead of a
  traceback. ``SEGNEXT_DEBUG=1`` re-raises, so the traceback is there when you need it;
* `add_device_argument` + `apply_device`: the tools' ``--device {auto,cpu,cuda}``, applied before
  Jittor is imported (a request that cannot be honoured is a one-line `DeviceError`, exit 2);
  `print_platform_line` prints the first line of real work (device, CPU, versions).
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from .errors import CheckpointError, CheckpointNotFoundError, ConfigError, one_line
from .interrupts import Interrupted, TrainingInterrupted, interrupt_signum

__all__ = [
    "UsageError", "check_output_file", "check_output_dir", "check_work_dir", "run_tool", "leave_now",
    "debug_enabled", "add_device_argument", "apply_device", "print_platform_line",
]


class UsageError(ValueError):
    """A command-line argument is unusable (bad output path, too many seeds, ...)."""


def debug_enabled() -> bool:
    return os.environ.get("SEGNEXT_DEBUG", "") not in ("", "0")


# --------------------------------------------------------------------------------------------
# output paths
# --------------------------------------------------------------------------------------------
def _check_ancestors(path: str, what: str) -> None:
    """The nearest existing ancestor of `path` must be a writable directory (so `path`'s missing
    parents can be created)."""
    anc = os.path.dirname(path)
    while anc and not os.path.lexists(anc):
        parent = os.path.dirname(anc)
        if parent == anc:
            break
        anc = parent
    if not anc:
        return
    if not os.path.isdir(anc):
        raise UsageError(f"{what} {path}: {anc} is a file, not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: directory {anc} is not writable")


def check_output_file(path: str, what: str = "output") -> str:
    """Check that `path` can be written as a file (its parent exists or can be created, it is not
    a directory). Returns the absolute path. Nothing is created."""
    if not path or not str(path).strip():
        raise UsageError(f"{what}: empty path")
    p = os.path.abspath(os.fspath(path))
    if os.path.isdir(p):
        raise UsageError(f"{what} {path}: is a directory; expected a file path")
    if os.path.lexists(p) and not os.path.isfile(p):
        raise UsageError(f"{what} {path}: exists and is not a regular file")
    if os.path.isfile(p) and not os.access(p, os.W_OK):
        raise UsageError(f"{what} {path}: file is not writable")
    _check_ancestors(p, what)
    return p


def check_output_dir(path: str, what: str = "output directory") -> str:
    """Check that `path` is a directory or can be created as one. Returns the absolute path."""
    if not path or not str(path).strip():
        raise UsageError(f"{what}: empty path")
    p = os.path.abspath(os.fspath(path))
    if os.path.lexists(p):
        if not os.path.isdir(p):
            raise UsageError(f"{what} {path}: exists and is a file, not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise UsageError(f"{what} {path}: directory is not writable")
        return p
    _check_ancestors(p, what)
    return p


def check_work_dir(path: str, what: str = "--work-dir") -> str:
    """`check_output_dir` for a training/sweep work dir (call it before building anything)."""
    return check_output_dir(path, what)


# --------------------------------------------------------------------------------------------
# the device
# --------------------------------------------------------------------------------------------
def add_device_argument(parser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"],
                        help="auto: CUDA if Jittor can use it, else the CPU (one warning if a GPU is present "
                             "but unusable); cuda: an error naming the reason if it cannot be used "
                             "(default: $SEGNEXT_DEVICE, else auto)")


def apply_device(device: "str | None") -> str:
    """Make `--device` (None: $SEGNEXT_DEVICE) take effect; call it before anything imports Jittor.
    Raises environment.DeviceError (a ValueError: one line, exit 2) if it cannot be honoured."""
    from .environment import select_device
    return select_device(device, "--device")


def print_platform_line() -> None:
    """The first line of a tool's real work: device, GPU, CPU and ISA, threads, versions (after the
    Jittor import, which can still turn an unusable CUDA into an error or a warning)."""
    from . import runtime  # noqa: F401  (imports Jittor: the device is final after it)
    from .platform_info import summary_line
    print(summary_line(), flush=True)


# --------------------------------------------------------------------------------------------
# the top level (the signal handlers are segnext_jt.interrupts')
# --------------------------------------------------------------------------------------------
def leave_now(code: int) -> None:
    """End the process after an interrupt without running atexit handlers: Jittor's hook
    (jittor_exit -> core.cleanup()) has hung for minutes after a run interrupted mid-work. Call it
    only when everything of ours is settled (stack unwound: loaders and children closed, outputs
    written atomically; a work-dir lock is released by the kernel)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe must not stop the exit
            pass
    os._exit(code)


def run_tool(fn: Callable[[], int], usage_errors: Sequence[type] = (), input_errors: Sequence[type] = (),
             interrupted_message: str = "") -> int:
    """Run `fn()`; turn the expected error types into one ``error:`` line on stderr.

    usage_errors (plus ValueError, OSError, UsageError) -> exit 2; input_errors (e.g. a refused
    checkpoint, an unreadable image) -> exit 1; SIGINT/SIGTERM -> exit 128 + signal number, with
    ``error: interrupted by <signal>; <interrupted_message>``, or a TrainingInterrupted's own line
    (it names the iteration and the latest checkpoint)."""
    try:
        return fn()
    except KeyboardInterrupt as exc:  # `Interrupted`, or Ctrl-C before the handlers were installed
        if debug_enabled():
            raise
        if isinstance(exc, TrainingInterrupted):  # its own line names the iteration and checkpoint
            print(str(exc), file=sys.stderr, flush=True)
            code = exc.exit_code
        else:
            interrupt = Interrupted(interrupt_signum(exc))
            extra = f"; {interrupted_message}" if interrupted_message else ""
            print(f"error: interrupted by {interrupt.signal_name}{extra}", file=sys.stderr, flush=True)
            code = interrupt.exit_code
        if "jittor" in sys.modules:
            leave_now(code)
        return code
    except tuple(usage_errors) as exc:
        return _report(exc, 2)
    except tuple(input_errors) as exc:
        return _report(exc, 1)
    except (UsageError, ValueError, OSError) as exc:
        return _report(exc, 2)


def run_checkpoint_tool(fn: Callable[[], int], interrupted_message: str = "nothing written") -> int:
    """`run_tool` for a tool that reads a config and checkpoints: config errors and a missing
    checkpoint exit 2, a refused checkpoint exits 1."""
    return run_tool(fn, usage_errors=(ConfigError, CheckpointNotFoundError), input_errors=(CheckpointError,),
                    interrupted_message=interrupted_message)


def _report(exc: BaseException, code: int) -> int:
    if debug_enabled():
        raise exc
    msg = one_line(exc)
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
        msg = f"{exc.filename}: {msg}"
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return code
