"""How training samples travel from loader workers to the main process: uint8, normalised there.

A normalised float32 sample is four times the bytes of its uint8 image (3 MB against 0.75 MB at
512x512), and every byte is pickled, pushed through a pipe and unpickled. So workers stop the
pipeline before its trailing :class:`~.transforms.Normalize` (+ :class:`~.transforms.Pad`) and the
main process normalises and pads the whole batch into one preallocated array, as mmseg 1.x does
(its SegDataPreProcessor normalises after collation). The arithmetic is
:func:`~.transforms.normalize_into`, which :func:`~.transforms.normalize_image` uses too (float32
subtract, then float32 divide), and padding writes the same float32 value, so the batch is
bit-identical to stacking normalised samples (tests/data/test_transport.py).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from .transforms import Compose, Normalize, Pad, normalize_into

__all__ = ["DeferredNormalize", "split_off_normalize"]


class DeferredNormalize:
    """The pipeline's trailing Normalize (and Pad), applied to a batch of (3, h, w) images."""

    def __init__(self, normalize: Normalize, pad: Optional[Pad] = None):
        self.normalize = normalize
        self.pad = pad

    def target_shape(self, h: int, w: int) -> Tuple[int, int]:
        return (h, w) if self.pad is None else self.pad.target_shape(h, w)

    def collate(self, imgs: Sequence[np.ndarray], segs: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """float32 (B, 3, H, W) images and int64 (B, H, W) labels; all samples must pad to one size
        (the caller checks with :meth:`target_shape`)."""
        th, tw = self.target_shape(*imgs[0].shape[1:])
        img_pad = np.float32(0 if self.pad is None else self.pad.pad_val)
        seg_pad = 255 if self.pad is None else self.pad.seg_pad_val
        out = np.empty((len(imgs), 3, th, tw), dtype=np.float32)
        seg_out = np.full((len(segs), th, tw), seg_pad, dtype=np.int64)
        mean, std, to_rgb = self.normalize.mean, self.normalize.std, self.normalize.to_rgb
        for i, (img, seg) in enumerate(zip(imgs, segs)):
            h, w = img.shape[1:]
            normalize_into(out[i, :, :h, :w], img.__getitem__, mean, std, to_rgb)
            out[i, :, h:, :] = img_pad
            out[i, :, :h, w:] = img_pad
            seg_out[i, :seg.shape[0], :seg.shape[1]] = seg
        return out, seg_out


def split_off_normalize(pipeline: Callable) -> Optional[Tuple[Compose, DeferredNormalize]]:
    """(the pipeline without its trailing Normalize [+ Pad], that step for the batch), or None when
    the pipeline does not end that way (then samples travel normalised)."""
    if not isinstance(pipeline, Compose):
        return None
    steps = pipeline.transforms
    pad = steps[-1] if steps and isinstance(steps[-1], Pad) else None
    head = steps[:-1] if pad is not None else steps
    if not head or not isinstance(head[-1], Normalize):
        return None
    return Compose(head[:-1]), DeferredNormalize(head[-1], pad)
