"""Pascal Context, the 59-class protocol (mmseg ``PascalContextDataset59``).

``root`` is ``VOCdevkit/VOC2010``: ``JPEGImages/*.jpg``, ``SegmentationClassContext/*.png`` and
``ImageSets/SegmentationContext/{train,val}.txt`` (4996 / 5104 images), all written by mmseg's
``tools/dataset_converters/pascal_context.py`` from ``trainval_merged.json`` (Detail API). The
masks hold 0 = background (the 60th class, not evaluated) and 1..59; reduce_zero_label turns
them into 59 classes with background ignored.
"""

from __future__ import annotations

import os
from typing import Optional

from .dataset import Pipeline, SegDataset, SplitSource, Suffixes
from .layouts import PASCAL_CONTEXT59_CLASSES, PASCAL_CONTEXT59_PALETTE

__all__ = ["PascalContext59Dataset"]




class PascalContext59Dataset(SegDataset):
    """Pascal Context 59 under ``root`` = ``VOCdevkit/VOC2010``; ``split`` is ``train`` or ``val``
    (a file ``ImageSets/SegmentationContext/<split>.txt``). Other keyword arguments (``sources``,
    ``ignore_index``, ...) go to :class:`SegDataset`."""

    def __init__(self, root: str, split: str = "train", img_suffix: Suffixes = ".jpg", seg_suffix: str = ".png",
                 pipeline: Optional[Pipeline] = None, **kwargs):
        root = str(root)
        if "sources" not in kwargs:
            kwargs["sources"] = [SplitSource(os.path.join(root, "JPEGImages"),
                                             os.path.join(root, "SegmentationClassContext"),
                                             os.path.join(root, "ImageSets", "SegmentationContext", f"{split}.txt"))]
        super().__init__(root, split, classes=PASCAL_CONTEXT59_CLASSES, palette=PASCAL_CONTEXT59_PALETTE,
                         img_suffix=img_suffix, seg_suffix=seg_suffix, reduce_zero_label=True, pipeline=pipeline,
                         **kwargs)
