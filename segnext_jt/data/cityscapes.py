"""Cityscapes layout: ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` with
``gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png``; 19 classes, no reduce_zero_label.

The ``*_labelTrainIds.png`` files (train ids 0..18, 255 = ignore) are what mmseg's
``tools/dataset_converters/cityscapes.py`` writes from the official ``*_polygons.json``; the
``*_labelIds.png`` files of the download (34 raw ids) sit beside them and are not read.
"""

from __future__ import annotations

from typing import Optional

from .dataset import Pipeline, SegDataset, Suffixes
from .layouts import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

__all__ = ["CityscapesDataset"]




class CityscapesDataset(SegDataset):
    """Cityscapes fine annotations as train ids (see the module docstring). Other keyword
    arguments (``sources``, ``ignore_index``, ...) go to :class:`SegDataset`."""

    def __init__(self, root: str, split: str = "train", img_suffix: Suffixes = "_leftImg8bit.png",
                 seg_suffix: str = "_gtFine_labelTrainIds.png", pipeline: Optional[Pipeline] = None, **kwargs):
        super().__init__(root, split, classes=CITYSCAPES_CLASSES, palette=CITYSCAPES_PALETTE,
                         img_dir="leftImg8bit", ann_dir="gtFine", img_suffix=img_suffix,
                         seg_suffix=seg_suffix, reduce_zero_label=False, pipeline=pipeline, **kwargs)
