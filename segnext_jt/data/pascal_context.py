"""Pascal Context, the 59-class protocol (mmseg ``PascalContextDataset59``).

``root`` is ``VOCdevkit/VOC2010``: ``JPEGImages/*.jpg``, ``SegmentationClassContext/*.png`` and
``ImageSets/SegmentationContext/{train,val}.txt`` (4996 / 5104 images), all written by mmseg's
``tools/dataset_converters/pascal_context.py`` from ``trainval_merged.json`` (Detail API). The
masks hold 0 = background (the 60th class, not evaluated) and 1..59; reduce_zero_label turns
them into 59 classes with background ignored.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from .dataset import Pipeline, SegDataset, SplitSource, Suffixes

__all__ = ["PASCAL_CONTEXT59_CLASSES", "PASCAL_CONTEXT59_PALETTE", "PascalContext59Dataset"]

# mmseg PascalContextDataset59.CLASSES / PALETTE.
PASCAL_CONTEXT59_CLASSES: Tuple[str, ...] = (
    'aeroplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird', 'boat', 'book', 'bottle',
    'building', 'bus', 'cabinet', 'car', 'cat', 'ceiling', 'chair', 'cloth', 'computer', 'cow',
    'cup', 'curtain', 'dog', 'door', 'fence', 'floor', 'flower', 'food', 'grass', 'ground', 'horse',
    'keyboard', 'light', 'motorbike', 'mountain', 'mouse', 'person', 'plate', 'platform',
    'pottedplant', 'road', 'rock', 'sheep', 'shelves', 'sidewalk', 'sign', 'sky', 'snow', 'sofa',
    'table', 'track', 'train', 'tree', 'truck', 'tvmonitor', 'wall', 'water', 'window', 'wood',
)
PASCAL_CONTEXT59_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80), (140, 140, 140),
    (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61),
    (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7),
    (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255), (255, 7, 71),
    (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255), (8, 255, 214),
    (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255), (224, 255, 8),
    (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20), (255, 8, 41),
    (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140),
    (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0),
    (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
)


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
