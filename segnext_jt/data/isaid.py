"""iSAID (aerial images, 15 object classes + background = 16 classes), mmseg's ``iSAIDDataset``.

The large DOTA images are cut into patches by mmseg's ``tools/dataset_converters/isaid.py``
(896 x 896, overlap 384), which writes ``img_dir/{train,val}/P0000_<y0>_<y1>_<x0>_<x1>.png`` and
``ann_dir/{train,val}/P0000_<y0>_<y1>_<x0>_<x1>_instance_color_RGB.png``: despite the name the
label patches are class ids 0..15 (converted from the RGB colours; 255 where the patch was padded).
mmseg fixes ``reduce_zero_label=False``: background is class 0 and counts in mIoU. JSeg's own
converter writes ``{train,val}/images`` and ``{train,val}/Semantic_masks`` with the same file
names; point ``data.train_dirs`` / ``data.val_dirs`` there to read that tree.
"""

from __future__ import annotations

from typing import Optional

from .dataset import Pipeline, SegDataset, Suffixes
from .layouts import ISAID_CLASSES, ISAID_PALETTE

__all__ = ["ISAIDDataset"]




class ISAIDDataset(SegDataset):
    """iSAID patches under ``root`` (see the module docstring); ``split`` is ``train`` or ``val``.
    Other keyword arguments (``sources``, ``ignore_index``, ...) go to :class:`SegDataset`."""

    def __init__(self, root: str, split: str = "train", img_suffix: Suffixes = ".png",
                 seg_suffix: str = "_instance_color_RGB.png", pipeline: Optional[Pipeline] = None, **kwargs):
        super().__init__(root, split, classes=ISAID_CLASSES, palette=ISAID_PALETTE, img_dir="img_dir",
                         ann_dir="ann_dir", img_suffix=img_suffix, seg_suffix=seg_suffix, reduce_zero_label=False,
                         pipeline=pipeline, **kwargs)
