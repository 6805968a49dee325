"""Pascal VOC 2012 with the SBD augmentation ("VOC aug"), the layout mmseg trains on.

``root`` is ``VOCdevkit/VOC2012``: ``JPEGImages/*.jpg``, ``SegmentationClass/*.png`` (the official
masks: palette PNGs whose indices are the 21 class ids, 255 on object borders = ignore) and
``SegmentationClassAug/*.png`` with ``ImageSets/Segmentation/aug.txt``, both written by mmseg's
``tools/dataset_converters/voc_aug.py`` from the SBD ``.mat`` files. Split ``train_aug`` is mmseg's
``pascal_voc12_aug.py`` training set: ``train.txt`` from ``SegmentationClass`` plus ``aug.txt``
(the SBD images that are in neither train nor val, 10582 - 1464 = 9118) from
``SegmentationClassAug``; ``train`` and ``val`` are the official lists. No reduce_zero_label.
"""

from __future__ import annotations

import os
from typing import Optional

from .dataset import Pipeline, SegDataset, SplitSource, Suffixes
from .layouts import VOC_CLASSES, VOC_PALETTE

__all__ = ["VOC_SPLITS", "PascalVOCAugDataset"]



_LISTS = "ImageSets/Segmentation"
# split name -> (annotation folder, split file) parts; mmseg pascal_voc12(_aug).py
VOC_SPLITS = {
    "train_aug": (("SegmentationClass", f"{_LISTS}/train.txt"), ("SegmentationClassAug", f"{_LISTS}/aug.txt")),
    "train": (("SegmentationClass", f"{_LISTS}/train.txt"),),
    "val": (("SegmentationClass", f"{_LISTS}/val.txt"),),
}


class PascalVOCAugDataset(SegDataset):
    """Pascal VOC 2012 (+ SBD) under ``root`` = ``VOCdevkit/VOC2012``; ``split`` is one of
    ``train_aug``, ``train``, ``val`` (see the module docstring). Other keyword arguments
    (``sources``, ``ignore_index``, ...) go to :class:`SegDataset`; ``sources`` replaces the layout."""

    def __init__(self, root: str, split: str = "train_aug", img_suffix: Suffixes = ".jpg", seg_suffix: str = ".png",
                 pipeline: Optional[Pipeline] = None, **kwargs):
        root = str(root)
        if "sources" not in kwargs:
            if split not in VOC_SPLITS:
                raise ValueError(f"Pascal VOC split {split!r}: expected one of {', '.join(VOC_SPLITS)}")
            kwargs["sources"] = [SplitSource(os.path.join(root, "JPEGImages"), os.path.join(root, ann_dir),
                                             os.path.join(root, split_file))
                                 for ann_dir, split_file in VOC_SPLITS[split]]
        super().__init__(root, split, classes=VOC_CLASSES, palette=VOC_PALETTE, img_suffix=img_suffix,
                         seg_suffix=seg_suffix, reduce_zero_label=False, pipeline=pipeline, **kwargs)
