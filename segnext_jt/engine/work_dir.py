"""A training run's work dir: the exclusive lock a run holds for its whole life, and the clean-up of
temporary files that a killed run (SIGKILL, power loss) left behind."""
from __future__ import annotations

import contextlib
import glob
import os
from typing import Callable, Optional

from ..files import UnsafeLockError, lock_holder, try_lock, unlock
from .checkpoint import TrainSetupError

# Leftovers of interrupted atomic writes (files.atomic_file names them ".<name>.<random>.tmp");
# "log.json.tmp" is what earlier versions of the log writer left.
STALE_TMP_PATTERNS = (".iter_*.npz.*.tmp", ".log.json.*.tmp", "log.json.tmp", ".train_result.json.*.tmp")
LOCK_NAME = ".lock"


class WorkDirLockedError(TrainSetupError):
    """Another training process holds the work dir (or its lock file is unsafe to open)."""


class WorkDirLock:
    """An exclusive flock on <work_dir>/.lock: a second training process on the same work dir would
    interleave checkpoints and log lines. `acquire` is idempotent; `release` closes the lock."""

    def __init__(self, work_dir: str):
        self.path = os.path.join(work_dir, LOCK_NAME)
        self.work_dir = work_dir
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = try_lock(self.path)
        except UnsafeLockError as exc:  # a symlink planted as .lock: nothing is written through it
            raise WorkDirLockedError(str(exc)) from None
        if fd is None:
            raise WorkDirLockedError(
                f"work dir {self.work_dir} is in use by another training process "
                f"({lock_holder(self.path)}, lock {self.path}); wait for it to end or use another --work-dir")
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        unlock(fd)


def remove_stale_temporaries(work_dir: str, log: Callable[[str], None]) -> None:
    """Delete the temporary files of interrupted atomic writes. Safe while holding the work-dir lock:
    no other writer owns them."""
    stale = sorted({p for pat in STALE_TMP_PATTERNS for p in glob.glob(os.path.join(work_dir, pat))})
    for path in stale:
        if os.path.isdir(path) and not os.path.islink(path):
            raise TrainSetupError(f"{path}: a directory where a temporary file of an interrupted write was "
                                  "expected; nothing of this run's writes it; remove it or use another --work-dir")
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    if stale:
        log(f"removed {len(stale)} temporary file(s) left by an interrupted run in {work_dir}")
