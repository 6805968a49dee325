"""COCO-Stuff 164k (171 classes: 80 things + 91 stuff), the layout of mmseg's ``COCOStuffDataset``.

``root`` holds ``images/{train2017,val2017}/*.jpg`` and ``annotations/{train2017,val2017}/``. The
default labels are ``*_labelTrainIds.png`` (train ids 0..170, 255 = ignore), written by mmseg's
``tools/dataset_converters/coco_stuff164k.py`` next to the raw ``stuffthingmaps`` PNGs. The raw
maps can be read directly instead (``data.seg_map_suffix: .png`` and ``data.label_map:
coco_stuff164k``): their ids are 0..181 with 11 ids that COCO never uses, and
:data:`segnext_jt.data.layouts.COCO_STUFF164K_RAW_TO_TRAIN` maps them to train ids the way the converter does; an unused
raw id in a file is an error instead of a silent wrong class.
"""

from __future__ import annotations

from typing import Optional

from .dataset import Pipeline, SegDataset, Suffixes
from .layouts import COCO_STUFF_CLASSES, COCO_STUFF_PALETTE

__all__ = ["COCOStuff164kDataset"]


_SPLITS = {"train": "train2017", "val": "val2017"}


class COCOStuff164kDataset(SegDataset):
    """COCO-Stuff 164k under ``root``; ``split`` is ``train2017`` or ``val2017`` ('train'/'val'
    accepted). Other keyword arguments (``sources``, ``label_map``, ...) go to :class:`SegDataset`.
    With the raw ``.png`` suffix, the converter's ``*_labelTrainIds.png`` files in the same folder
    are skipped."""

    def __init__(self, root: str, split: str = "train2017", img_suffix: Suffixes = ".jpg",
                 seg_suffix: str = "_labelTrainIds.png", pipeline: Optional[Pipeline] = None, **kwargs):
        if seg_suffix != "_labelTrainIds.png":
            kwargs.setdefault("ann_exclude", ("_labelTrainIds.png",))
        super().__init__(root, _SPLITS.get(split, split), classes=COCO_STUFF_CLASSES, palette=COCO_STUFF_PALETTE,
                         img_dir="images", ann_dir="annotations", img_suffix=img_suffix, seg_suffix=seg_suffix,
                         reduce_zero_label=False, pipeline=pipeline, **kwargs)
