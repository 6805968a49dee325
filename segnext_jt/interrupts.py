"""SIGINT/SIGTERM, one mechanism for the tools, the sweep and the trainer (no Jittor import).

`install_signal_handlers` makes both signals raise `Interrupted` (a KeyboardInterrupt) in the main
thread, so the stack unwinds: ``finally`` blocks run, loaders and child processes are closed. Only
the first signal counts (a second Ctrl-C/TERM while cleaning up is ignored: the clean-up is
bounded). Inside `critical_section` (checkpoint and log writes) the exception waits until the
write is complete. `Trainer.train` re-raises it as `TrainingInterrupted`, which names the iteration
and the latest checkpoint; `cli.run_tool` turns it into one ``error:`` line and exit 128 + signal.

Jittor's import installs its own SIGINT handler; `give_signals_back_to_python` (run by
segnext_jt.runtime right after that import) puts ours back, so the order of the two imports does
not matter.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Callable, Optional

__all__ = ["Interrupted", "TrainingInterrupted", "install_signal_handlers", "critical_section",
           "interrupt_signum", "give_signals_back_to_python"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM, raised in the main thread by the handlers of `install_signal_handlers`.

    A KeyboardInterrupt (so a BaseException: ``except Exception`` does not swallow it)."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = int(signum)
        super().__init__(self.message())

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    def message(self) -> str:
        return self.signal_name

    def __str__(self) -> str:
        return self.message()


class TrainingInterrupted(Interrupted):
    """An interrupt during training, re-raised by `Trainer.train` with the iteration and the latest
    checkpoint after the data workers are stopped, so that tools/train.py can print `str(exc)` and
    exit with `exit_code`."""

    def __init__(self, signum: int = signal.SIGINT, iteration: Optional[int] = None,
                 checkpoint: Optional[str] = None):
        self.iteration, self.checkpoint = iteration, checkpoint
        super().__init__(signum)

    def message(self) -> str:
        if self.iteration is None:
            return f"interrupted by {self.signal_name} before training started; run the same command again"
        ckpt = (f"latest checkpoint {os.path.basename(self.checkpoint)}" if self.checkpoint
                else "no checkpoint yet")
        return (f"interrupted by {self.signal_name} at iteration {self.iteration} ({ckpt}); "
                f"resume with --resume")


class _SignalState:
    installed = False
    interrupted: Optional[int] = None  # the first signal received
    critical = 0                        # depth of `critical_section`s
    pending: Optional[int] = None       # a signal received inside a critical section


def _on_signal(signum, frame) -> None:
    if _SignalState.interrupted is not None:
        return  # a second Ctrl-C/TERM while cleaning up: the clean-up is bounded, let it finish
    _SignalState.interrupted = signum
    if _SignalState.critical:
        _SignalState.pending = signum  # raised when the checkpoint/log write is complete
        return
    raise Interrupted(signum)


def install_signal_handlers() -> Callable[[], None]:
    """SIGINT and SIGTERM (Slurm's pre-kill signal) raise `Interrupted` in the main thread, except
    inside `critical_section`, where the exception waits until the block is done. Returns a
    function restoring the previous handlers (a no-op outside the main thread, where Python cannot
    install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    for sig in _SIGNALS:
        signal.signal(sig, _on_signal)
    _SignalState.installed, _SignalState.interrupted, _SignalState.pending = True, None, None

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _SignalState.installed = False

    return restore


@contextlib.contextmanager
def critical_section():
    """Defer SIGINT/SIGTERM (when `install_signal_handlers` is active) until the block is done."""
    _SignalState.critical += 1
    try:
        yield
    finally:
        _SignalState.critical -= 1
        if _SignalState.critical == 0 and _SignalState.pending is not None:
            signum, _SignalState.pending = _SignalState.pending, None
            raise Interrupted(signum)


def interrupt_signum(exc: BaseException) -> Optional[int]:
    """The signal behind an interrupt (`Interrupted`, or a plain KeyboardInterrupt: SIGINT); None
    for anything else."""
    if not isinstance(exc, KeyboardInterrupt):
        return None
    return int(getattr(exc, "signum", signal.SIGINT))


def give_signals_back_to_python() -> None:
    """Undo Jittor's handlers (call right after importing Jittor). Its C++ core installs handlers
    that hard-exit the whole process on SIGINT and whenever any child process dies from a signal
    (SIGCHLD): Ctrl-C would skip Python's cleanup (data workers, partial files), and a sweep/test
    that kills a child training run would kill itself. SIGINT goes back to our handler when
    `install_signal_handlers` is active, else to Python's KeyboardInterrupt; SIGCHLD to the default.
    Crash handlers (SIGSEGV, ...) stay Jittor's."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_signal if _SignalState.installed else signal.default_int_handler)
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
