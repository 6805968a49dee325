"""The sampling rules: which sample, with which augmentation rng, goes to each batch slot.

Sample ``slot`` of iteration ``it`` is a pure function of ``(seed, it, slot)``:

* its dataset index is ``perm(seed, epoch)[pos % N]`` with
  ``pos = it * batch_size + slot`` and ``epoch = pos // N``;
* its augmentation rng is the stream ``[seed, it, slot]``
  (both streams are defined in segnext_jt/rng.py).

So batches are bit-identical for any number of loader workers and when
resuming at any iteration. The two ``load_*_sample`` functions are what the
loaders (and their worker processes) run per sample.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from ..rng import epoch_permutation, sample_rng
from .dataset import RawSample, SegDataset

class SampleLoadError(RuntimeError):
    """Loading or augmenting one sample failed; names the file (and, from a
    worker, carries the worker's traceback in the message)."""

    def __init__(self, message: str, filename: Optional[str] = None):
        super().__init__(message)
        self.filename = filename


def sample_indices(seed: int, it: int, batch_size: int, n: int) -> List[int]:
    """Dataset indices of the samples of iteration ``it``."""
    out: List[int] = []
    perm: Optional[np.ndarray] = None
    perm_epoch = -1
    for slot in range(batch_size):
        pos = it * batch_size + slot
        epoch = pos // n
        if epoch != perm_epoch:
            perm, perm_epoch = epoch_permutation(seed, epoch, n), epoch
        out.append(int(perm[pos % n]))  # type: ignore[index]
    return out


def load_train_sample(dataset: SegDataset, pipeline: Callable, seed: int, it: int, slot: int,
                      index: int) -> Tuple[np.ndarray, np.ndarray, str]:
    """(img float32 (3,H,W), gt_seg uint8 (H,W), filename) of one sample."""
    return _load_train_sample(dataset, pipeline, seed, it, slot, index, np.float32)


def load_unnormalized_train_sample(dataset: SegDataset, pipeline: Callable, seed: int, it: int, slot: int,
                                   index: int) -> Tuple[np.ndarray, np.ndarray, str]:
    """:func:`load_train_sample` through a pipeline that stops before normalisation (see
    :mod:`.transport`): img (3,H,W) in the pipeline's dtype (uint8 for the train pipelines)."""
    return _load_train_sample(dataset, pipeline, seed, it, slot, index, None)


def _load_train_sample(dataset: SegDataset, pipeline: Callable, seed: int, it: int, slot: int, index: int,
                       dtype: Optional[type]) -> Tuple[np.ndarray, np.ndarray, str]:
    try:
        item = dataset.get(index, rng=sample_rng(seed, it, slot), pipeline=pipeline, dtype=dtype)
        c, h, w = item["img"].shape
        if dtype is None and c != 3:  # what Normalize refuses in the full pipeline, with its message
            raise ValueError(f"normalize expects an (H, W, 3) image, got shape {(h, w, c)}")
    except Exception as e:
        name = _safe_filename(dataset, index)
        raise SampleLoadError(f"failed to load {name} (dataset index {index}, iteration {it}, slot {slot}): "
                              f"{type(e).__name__}: {e}", name) from e
    return item["img"], item["gt_seg"], item["filename"]


def _safe_filename(dataset: Any, index: int) -> str:
    try:
        return str(dataset.filename(index))
    except Exception:
        return f"<sample {index}>"


def load_val_sample(dataset: SegDataset, transform: Optional[Callable[[RawSample], Any]], index: int) -> Any:
    """The raw validation sample ``index`` (or ``transform`` of it)."""
    try:
        raw = dataset.load_raw(index)
        return raw if transform is None else transform(raw)
    except Exception as e:
        name = _safe_filename(dataset, index)
        raise SampleLoadError(f"failed to load {name} (dataset index {index}): {type(e).__name__}: {e}",
                              name) from e
