"""ADE20K (ADEChallengeData2016) layout: ``images/{training,validation}/*.jpg`` with
``annotations/.../*.png``; 150 classes, reduce_zero_label.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import numpy as np

from .dataset import SegDataset, Suffixes
from .layouts import ADE20K_CLASSES, ADE20K_PALETTE
from .transforms import Results

__all__ = ["ADE20KDataset"]

_ADE_SPLITS = {"train": "training", "val": "validation"}


class ADE20KDataset(SegDataset):
    """ADEChallengeData2016: ``images/{training,validation}/*.jpg`` and
    ``annotations/.../*.png``; reduce_zero_label, 150 classes.

    ``root`` may be the ADEChallengeData2016 folder or its parent;
    'train'/'val' are accepted for 'training'/'validation'. Other keyword
    arguments (``sources``, ``ignore_index``, ...) go to :class:`SegDataset`.
    """

    def __init__(self, root: str, split: str = "training", img_suffix: Suffixes = ".jpg",
                 seg_suffix: str = ".png", reduce_zero_label: bool = True,
                 classes: Sequence[str] = ADE20K_CLASSES, palette: Optional[Sequence] = ADE20K_PALETTE,
                 pipeline: Optional[Callable[[Results, np.random.Generator], Results]] = None, **kwargs):
        root = str(root)
        nested = os.path.join(root, "ADEChallengeData2016")
        if not os.path.isdir(os.path.join(root, "images")) and os.path.isdir(nested):
            root = nested
        super().__init__(root, _ADE_SPLITS.get(split, split), classes=classes, palette=palette,
                         img_dir="images", ann_dir="annotations", img_suffix=img_suffix,
                         seg_suffix=seg_suffix, reduce_zero_label=reduce_zero_label, pipeline=pipeline, **kwargs)
