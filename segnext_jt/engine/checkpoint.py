"""Training checkpoints: iter_<N>.npz files with weights, AdamW moments and the run state.

Every file this module writes holds only finite arrays, is written atomically (io.native.save_npz)
and can be resumed bit-identically. `TrainCheckpoints` keeps the list of the run's checkpoints known
to be good, prunes old ones and names the newest good one when a run stops.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Optional

import numpy as np

from ..io import load_npz, save_npz
from ..io.native import OPTIMIZER_PREFIX, STATE_DICT_PREFIX
from .interrupts import critical_section

CKPT_PATTERN = re.compile(r"iter_(\d+)\.npz$")
CHECKPOINT_KIND = "train"


class TrainingDivergedError(RuntimeError):
    """The loss, the weights or the optimizer state became NaN/inf; only finite checkpoints exist."""


class TrainSetupError(ValueError):
    """The run cannot start as configured (batch split, class count, resume checkpoint)."""


def nonfinite_keys(arrays: dict) -> list:
    """Keys of floating-point arrays holding NaN or inf."""
    return [k for k, a in arrays.items()
            if np.asarray(a).dtype.kind in "fc" and not np.isfinite(a).all()]


def describe_keys(keys: list, limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def find_latest_checkpoint(work_dir: str) -> Optional[str]:
    """The iter_<N>.npz with the largest N in `work_dir`, or None."""
    found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(work_dir, "iter_*.npz"))
             for m in [CKPT_PATTERN.search(p)] if m]
    return max(found)[1] if found else None


def checkpoint_arrays(weights: dict, optimizer_state: dict) -> dict:
    """The arrays of a training checkpoint, under the io.native key prefixes."""
    arrays = {STATE_DICT_PREFIX + k: v for k, v in weights.items()}
    arrays.update({OPTIMIZER_PREFIX + k: v for k, v in optimizer_state.items()})
    return arrays


def read_train_checkpoint(path: str, seed: int) -> tuple[dict, dict, dict]:
    """(weights, optimizer state, meta) of a training checkpoint this project wrote with `seed`;
    TrainSetupError for anything that cannot be resumed."""
    arrays, meta = load_npz(path)
    if meta.get("checkpoint_kind") != CHECKPOINT_KIND or "iter" not in meta:
        raise TrainSetupError(f"{path}: not a training checkpoint of this project (no optimizer state); "
                              "use model.backbone.pretrained or tools/eval.py for weights-only files")
    if int(meta.get("seed", seed)) != seed:
        raise TrainSetupError(f"{path}: checkpoint was trained with seed {meta['seed']}, not {seed}; "
                              "resuming with another seed would not reproduce either run")
    bad = nonfinite_keys(arrays)
    if bad:
        raise TrainSetupError(f"{path}: holds non-finite values ({describe_keys(bad)}), written by a run that "
                              "diverged; resume from an earlier checkpoint (--resume CKPT) or lower the lr")
    weights = {k[len(STATE_DICT_PREFIX):]: v for k, v in arrays.items() if k.startswith(STATE_DICT_PREFIX)}
    optim = {k[len(OPTIMIZER_PREFIX):]: v for k, v in arrays.items() if k.startswith(OPTIMIZER_PREFIX)}
    return weights, optim, meta


class TrainCheckpoints:
    """The checkpoints of one run in `work_dir`: writes them, keeps the newest `max_keep` (and always
    the final one), and remembers which are known good."""

    def __init__(self, work_dir: str, max_keep: int, final_iter: int):
        self.work_dir, self.max_keep, self.final_iter = work_dir, max_keep, final_iter
        self.good: list[str] = []  # known finite, oldest first

    def path(self, it: int) -> str:
        return os.path.join(self.work_dir, f"iter_{it}.npz")

    def save(self, it: int, arrays: dict, meta: dict) -> str:
        """Write iter_<it>.npz; refuses non-finite state, so every file written can be resumed."""
        path = self.path(it)
        bad = nonfinite_keys(arrays)
        if bad:  # the per-iteration check should have stopped the run before; never write it
            raise TrainingDivergedError(
                f"non-finite values in {describe_keys(bad)} at iteration {it}; {os.path.basename(path)} was "
                f"not written. {self.last_good_message(it)}")
        meta = dict(meta, checkpoint_kind=CHECKPOINT_KIND)
        with critical_section():
            save_npz(path, arrays, meta)
            self.good = [p for p in self.good if p != path] + [path]
            self._prune()
        return path

    def _prune(self) -> None:
        found = sorted((int(m.group(1)), p) for p in glob.glob(os.path.join(self.work_dir, "iter_*.npz"))
                       for m in [CKPT_PATTERN.search(p)] if m)
        for it, path in found[:-self.max_keep] if self.max_keep > 0 else []:
            if it != self.final_iter:
                os.remove(path)

    def last_good(self, before_iter: int) -> Optional[str]:
        """The newest checkpoint of this run (written by it, or resumed from) at or before
        `before_iter` that still exists and, loaded back, holds only finite arrays."""
        for path in reversed(self.good):
            m = CKPT_PATTERN.search(os.path.basename(path))
            if (m and int(m.group(1)) > before_iter) or not os.path.isfile(path):
                continue
            try:
                arrays, _ = load_npz(path)
            except Exception:  # noqa: BLE001 - unreadable means not good
                continue
            if not nonfinite_keys(arrays):
                return path
        return None

    def last_good_message(self, it: int) -> str:
        good = self.last_good(it)
        if good is None:
            return "No finite checkpoint of this run exists (none was written before it)."
        return f"The last good checkpoint is {good} (loaded back and verified finite)."
