"""SIGINT/SIGTERM during training: one exception type, handlers that defer the signal while a
checkpoint or log line is being written, and the mapping from interrupt-like exceptions to signals."""
from __future__ import annotations

import contextlib
import os
import signal
from typing import Optional


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM during training. Raised by the handlers of `install_interrupt_handlers`
    (with only the signal) and re-raised by `Trainer.train` with the iteration and checkpoint after
    the data workers are stopped, so that the caller can print `str(exc)` and exit with
    `exit_code` (128 + signal number: 130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT, iteration: Optional[int] = None,
                 checkpoint: Optional[str] = None):
        self.signum, self.iteration, self.checkpoint = int(signum), iteration, checkpoint
        super().__init__(self.message())

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    def message(self) -> str:
        if self.iteration is None:
            return f"interrupted by {self.signal_name} before training started; run the same command again"
        ckpt = (f"latest checkpoint {os.path.basename(self.checkpoint)}" if self.checkpoint
                else "no checkpoint yet")
        return (f"interrupted by {self.signal_name} at iteration {self.iteration} ({ckpt}); "
                f"resume with --resume")

    def __str__(self) -> str:
        return self.message()


# ---------------------------------------------------------------------------- signals
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
    raise TrainingInterrupted(signum)


def install_interrupt_handlers():
    """SIGINT and SIGTERM (Slurm's pre-kill signal) raise `TrainingInterrupted` in the main thread,
    except inside `critical_section` (checkpoint and log writes), where the exception waits until
    the write is complete. Call after importing Jittor (its import installs its own SIGINT handler).
    Returns a function restoring the previous handlers."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _on_signal)
    _SignalState.installed, _SignalState.interrupted, _SignalState.pending = True, None, None

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _SignalState.installed = False

    return restore


@contextlib.contextmanager
def critical_section():
    """Defer SIGINT/SIGTERM (when `install_interrupt_handlers` is active) until the block is done."""
    _SignalState.critical += 1
    try:
        yield
    finally:
        _SignalState.critical -= 1
        if _SignalState.critical == 0 and _SignalState.pending is not None:
            signum, _SignalState.pending = _SignalState.pending, None
            raise TrainingInterrupted(signum)


def interrupt_signum(exc: BaseException) -> Optional[int]:
    """The signal behind an interrupt-like exception (KeyboardInterrupt, or any BaseException with
    a `signum`, such as segnext_jt.cli.Interrupted); None for anything else."""
    if isinstance(exc, Exception):
        return None
    signum = getattr(exc, "signum", None)
    if isinstance(exc, KeyboardInterrupt):
        return int(signum) if signum is not None else int(signal.SIGINT)
    return int(signum) if isinstance(signum, int) else None
