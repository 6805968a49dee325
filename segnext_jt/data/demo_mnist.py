"""The MNIST-derived demo dataset in the ADE20K layout, as tools/prepare_demo_data.py writes it.

Each canvas shows 2-4 tinted MNIST digits on a textured coloured background. Label values follow
ADE20K's convention so the same code paths run: 0 = "other" (a thin rim around each stroke, where
anti-aliasing makes the class ambiguous), 1 = background, 2..11 = digits 0..9. With
``reduce_zero_label`` this gives 11 classes and the rim becomes ignore (255).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .ade20k import ADE20KDataset
from .dataset import Suffixes
from .layouts import DEMO_CLASSES, DEMO_PALETTE
from .transforms import Results

__all__ = ["DemoMNISTDataset"]




class DemoMNISTDataset(ADE20KDataset):
    """The demo data (ADE layout, reduce_zero_label, 11 classes). Other keyword arguments
    (``sources``, ...) go to :class:`SegDataset`."""

    def __init__(self, root: str, split: str = "training", img_suffix: Suffixes = ".jpg",
                 pipeline: Optional[Callable[[Results, np.random.Generator], Results]] = None, **kwargs):
        super().__init__(root, split, img_suffix=img_suffix, reduce_zero_label=True, classes=DEMO_CLASSES,
                         palette=DEMO_PALETTE, pipeline=pipeline, **kwargs)
