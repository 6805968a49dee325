"""Training checkpoints: iter_<N>.npz files with weights, AdamW moments and the run state.

Every file this module writes holds only finite arrays, is written atomically (io.native.save_npz)
and can be resumed bit-identically. `TrainCheckpoints` keeps the list of the run's checkpoints known
to be good, prunes old ones and names the newest good one when a run stops.
"""
from __future__ import annotations

import errno
import glob
import os
import re
from typing import Optional

import numpy as np

from ..errors import CheckpointFormatError, quote
from ..io import load_npz, save_npz
from ..io.dtype_policy import NonFiniteCheckpointError, apply_dtype_policy
from ..files import free_bytes
from ..io.native import OPTIMIZER_PREFIX, STATE_DICT_PREFIX
from ..interrupts import critical_section

CKPT_PATTERN = re.compile(r"iter_(\d+)\.npz$")
CHECKPOINT_KIND = "train"


class TrainingDivergedError(RuntimeError):
    """The loss, the weights or the optimizer state became NaN/inf; only finite checkpoints exist."""


class TrainSetupError(ValueError):
    """The run cannot start as configured (batch split, class count, resume checkpoint)."""


class TrainingDataError(ValueError):
    """The training data cannot train anything (e.g. every label pixel is ignore_index)."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint, or another file of the run (log.json, the work dir), could not be written
    (disk full, read-only file system, work dir gone)."""


def write_failure(exc: OSError, path: str, needed: int, last_good: str) -> str:
    """One line for a failed write of `path`: what happened, bytes needed and free when the disk is
    full, and that nothing was lost."""
    what = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        free = free_bytes(os.path.dirname(os.path.abspath(path)))
        sizes = ([f"needs about {needed / 2**20:.0f} MB"] if needed else []) + [
            f"{'?' if free is None else f'{free / 2**20:.0f} MB'} free"]
        what += f" ({', '.join(sizes)})"
    elif exc.errno == errno.ENOENT and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        what = "the work dir was deleted or moved during the run"
    elif exc.errno == errno.ENOTDIR:
        what = "the work dir was replaced by a file during the run"
    return (f"cannot write {path}: {what}. Nothing was lost: {last_good} Fix the cause (free space, "
            "permissions) and rerun with --resume")


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
    TrainSetupError (one line) for anything that cannot be resumed: another kind of file, another
    seed, arrays refused by the dtype policy (NaN/inf checked after the float32 conversion, so a
    float64 1e300 cannot pass as finite), or a metadata field of the wrong type or range."""
    arrays, meta = load_npz(path)
    if meta.get("checkpoint_kind") != CHECKPOINT_KIND or "iter" not in meta:
        raise TrainSetupError(f"{path}: not a training checkpoint of this project (no optimizer state); "
                              "use model.backbone.pretrained or tools/eval.py for weights-only files")
    _check_meta(path, meta)
    if meta.get("seed", seed) != seed:
        raise TrainSetupError(f"{path}: checkpoint was trained with seed {meta['seed']}, not {seed}; "
                              "resuming with another seed would not reproduce either run")
    try:
        arrays, _ = apply_dtype_policy(arrays, path)
    except NonFiniteCheckpointError:
        bad = nonfinite_keys(arrays)
        raise TrainSetupError(f"{path}: holds non-finite values ({describe_keys(bad)}), written by a run that "
                              "diverged; resume from an earlier checkpoint (--resume CKPT) or lower the lr") from None
    except CheckpointFormatError as exc:
        raise TrainSetupError(str(exc)) from None
    weights = {k[len(STATE_DICT_PREFIX):]: v for k, v in arrays.items() if k.startswith(STATE_DICT_PREFIX)}
    optim = {k[len(OPTIMIZER_PREFIX):]: v for k, v in arrays.items() if k.startswith(OPTIMIZER_PREFIX)}
    return weights, optim, meta


def check_resume_shapes(path: str, weights: dict, optim: dict, model, optimizer) -> None:
    """The checkpoint's weights and AdamW moments have exactly the model's keys and shapes (a
    checkpoint of another config, e.g. 11 vs 3 classes, is one line naming the first differences)."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for pg in optimizer.param_groups:
        for name in pg["names"]:
            want[f"exp_avg/{name}"] = want[f"exp_avg_sq/{name}"] = tuple(model.state_dict()[name].shape)
    have = {k: tuple(v.shape) for k, v in weights.items()}
    have.update({k: tuple(v.shape) for k, v in optim.items()})
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    mismatched = [f"{k} {have[k]} vs model {want[k]}" for k in want if k in have and have[k] != want[k]]
    problems = [f"{what}: {describe_keys(keys)}" for what, keys in
                (("shape", mismatched), ("missing", missing), ("unexpected", unexpected)) if keys]
    if problems:
        raise TrainSetupError(f"{path}: does not match this config's model ({'; '.join(problems)}); it was written "
                              "by a run of another config")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 53


def _check_meta(path: str, meta: dict) -> None:
    """Each field the resume uses, by type and range, one line naming the field."""
    def bad(field: str, expected: str) -> TrainSetupError:
        return TrainSetupError(f"{path}: metadata field {field!r} is {quote(meta.get(field))}; expected {expected} "
                               "(a damaged or hand-edited checkpoint)")
    for name in ("iter", "n_step"):
        if not _is_count(meta.get(name)):
            raise bad(name, "a non-negative integer")
    if "seed" in meta and not (_is_count(meta["seed"]) and meta["seed"] < 2 ** 32):
        raise bad("seed", "an integer in [0, 2^32)")
    state = meta.get("rng")
    if not (isinstance(state, dict) and _rng_state_ok(state)):
        raise bad("rng", "the Python and NumPy RNG states this project records")
    window = meta.get("log_window")
    if window is not None and not (isinstance(window, dict) and all(
            isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            for v in window.values())):
        raise bad("log_window", "a mapping of names to lists of numbers")


def _rng_state_ok(state: dict) -> bool:
    """The shape of rng.global_rng_state(): Python's (version, 625 ints, gauss) and NumPy's MT19937."""
    py, npy = state.get("python"), state.get("numpy")
    try:
        ok_py = (len(py) == 3 and isinstance(py[0], int) and len(py[1]) == 625
                 and all(_is_count(x) or (isinstance(x, int) and 0 <= x < 2 ** 64) for x in py[1]))
        ok_np = (len(npy) == 5 and npy[0] == "MT19937" and len(npy[1]) == 624
                 and all(isinstance(x, int) and 0 <= x < 2 ** 32 for x in npy[1]) and _is_count(npy[2])
                 and npy[2] <= 624 and isinstance(npy[3], int) and isinstance(npy[4], (int, float)))
    except TypeError:
        return False
    return ok_py and ok_np


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
            try:
                save_npz(path, arrays, meta)
            except OSError as exc:  # disk full, read-only, work dir gone: the atomic write left nothing
                raise CheckpointWriteError(write_failure(exc, path, sum(a.nbytes for a in arrays.values()),
                                                         self.last_good_message(it))) from None
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
