"""Cityscapes layout: ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` with
``gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png``; 19 classes, no reduce_zero_label.

The ``*_labelTrainIds.png`` files (train ids 0..18, 255 = ignore) are what mmseg's
``tools/dataset_converters/cityscapes.py`` writes from the official ``*_polygons.json``; the
``*_labelIds.png`` files of the download (34 raw ids) sit beside them and are not read.
"""

from __future__ import annotations

from typing import Optional, Tuple

from .dataset import Pipeline, SegDataset, Suffixes

__all__ = ["CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE", "CityscapesDataset"]

# mmseg CityscapesDataset.METAINFO (train ids 0..18).
CITYSCAPES_CLASSES: Tuple[str, ...] = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
    'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
    'bicycle',
)
CITYSCAPES_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)


class CityscapesDataset(SegDataset):
    """Cityscapes fine annotations as train ids (see the module docstring). Other keyword
    arguments (``sources``, ``ignore_index``, ...) go to :class:`SegDataset`."""

    def __init__(self, root: str, split: str = "train", img_suffix: Suffixes = "_leftImg8bit.png",
                 seg_suffix: str = "_gtFine_labelTrainIds.png", pipeline: Optional[Pipeline] = None, **kwargs):
        super().__init__(root, split, classes=CITYSCAPES_CLASSES, palette=CITYSCAPES_PALETTE,
                         img_dir="leftImg8bit", ann_dir="gtFine", img_suffix=img_suffix,
                         seg_suffix=seg_suffix, reduce_zero_label=False, pipeline=pipeline, **kwargs)
