"""COCO-Stuff 164k (171 classes: 80 things + 91 stuff), the layout of mmseg's ``COCOStuffDataset``.

``root`` holds ``images/{train2017,val2017}/*.jpg`` and ``annotations/{train2017,val2017}/``. The
default labels are ``*_labelTrainIds.png`` (train ids 0..170, 255 = ignore), written by mmseg's
``tools/dataset_converters/coco_stuff164k.py`` next to the raw ``stuffthingmaps`` PNGs. The raw
maps can be read directly instead (``data.seg_map_suffix: .png`` and ``data.label_map:
coco_stuff164k``): their ids are 0..181 with 11 ids that COCO never uses, and
:data:`COCO_STUFF164K_RAW_TO_TRAIN` maps them to train ids the way the converter does; an unused
raw id in a file is an error instead of a silent wrong class.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from .dataset import Pipeline, SegDataset, Suffixes

__all__ = ["COCO_STUFF_CLASSES", "COCO_STUFF_PALETTE", "COCO_STUFF164K_RAW_TO_TRAIN", "COCOStuff164kDataset"]

# mmseg COCOStuffDataset.CLASSES / PALETTE (train-id order).
COCO_STUFF_CLASSES: Tuple[str, ...] = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush', 'banner', 'blanket', 'branch', 'bridge',
    'building-other', 'bush', 'cabinet', 'cage', 'cardboard', 'carpet', 'ceiling-other',
    'ceiling-tile', 'cloth', 'clothes', 'clouds', 'counter', 'cupboard', 'curtain', 'desk-stuff',
    'dirt', 'door-stuff', 'fence', 'floor-marble', 'floor-other', 'floor-stone', 'floor-tile',
    'floor-wood', 'flower', 'fog', 'food-other', 'fruit', 'furniture-other', 'grass', 'gravel',
    'ground-other', 'hill', 'house', 'leaves', 'light', 'mat', 'metal', 'mirror-stuff', 'moss',
    'mountain', 'mud', 'napkin', 'net', 'paper', 'pavement', 'pillow', 'plant-other', 'plastic',
    'platform', 'playingfield', 'railing', 'railroad', 'river', 'road', 'rock', 'roof', 'rug',
    'salad', 'sand', 'sea', 'shelf', 'sky-other', 'skyscraper', 'snow', 'solid-other', 'stairs',
    'stone', 'straw', 'structural-other', 'table', 'tent', 'textile-other', 'towel', 'tree',
    'vegetable', 'wall-brick', 'wall-concrete', 'wall-other', 'wall-panel', 'wall-stone',
    'wall-tile', 'wall-wood', 'water-other', 'waterdrops', 'window-blind', 'window-other', 'wood',
)
COCO_STUFF_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (0, 192, 64), (0, 192, 64), (0, 64, 96), (128, 192, 192), (0, 64, 64), (0, 192, 224),
    (0, 192, 192), (128, 192, 64), (0, 192, 96), (128, 192, 64), (128, 32, 192), (0, 0, 224),
    (0, 0, 64), (0, 160, 192), (128, 0, 96), (128, 0, 192), (0, 32, 192), (128, 128, 224),
    (0, 0, 192), (128, 160, 192), (128, 128, 0), (128, 0, 32), (128, 32, 0), (128, 0, 128),
    (64, 128, 32), (0, 160, 0), (0, 0, 0), (192, 128, 160), (0, 32, 0), (0, 128, 128),
    (64, 128, 160), (128, 160, 0), (0, 128, 0), (192, 128, 32), (128, 96, 128), (0, 0, 128),
    (64, 0, 32), (0, 224, 128), (128, 0, 0), (192, 0, 160), (0, 96, 128), (128, 128, 128),
    (64, 0, 160), (128, 224, 128), (128, 128, 64), (192, 0, 32), (128, 96, 0), (128, 0, 192),
    (0, 128, 32), (64, 224, 0), (0, 0, 64), (128, 128, 160), (64, 96, 0), (0, 128, 192),
    (0, 128, 160), (192, 224, 0), (0, 128, 64), (128, 128, 32), (192, 32, 128), (0, 64, 192),
    (0, 0, 32), (64, 160, 128), (128, 64, 64), (128, 0, 160), (64, 32, 128), (128, 192, 192),
    (0, 0, 160), (192, 160, 128), (128, 192, 0), (128, 0, 96), (192, 32, 0), (128, 64, 128),
    (64, 128, 96), (64, 160, 0), (0, 64, 0), (192, 128, 224), (64, 32, 0), (0, 192, 128),
    (64, 128, 224), (192, 160, 0), (0, 192, 0), (192, 128, 96), (192, 96, 128), (0, 64, 128),
    (64, 0, 96), (64, 224, 128), (128, 64, 0), (192, 0, 224), (64, 96, 128), (128, 192, 128),
    (64, 0, 224), (192, 224, 128), (128, 192, 64), (192, 0, 96), (192, 96, 0), (128, 64, 192),
    (0, 128, 96), (0, 224, 0), (64, 64, 64), (128, 128, 224), (0, 96, 0), (64, 192, 192),
    (0, 128, 224), (128, 224, 0), (64, 192, 64), (128, 128, 96), (128, 32, 128), (64, 0, 192),
    (0, 64, 96), (0, 160, 128), (192, 0, 64), (128, 64, 224), (0, 32, 128), (192, 128, 192),
    (0, 64, 224), (128, 160, 128), (192, 128, 0), (128, 64, 32), (128, 32, 64), (192, 0, 128),
    (64, 192, 32), (0, 160, 64), (64, 0, 0), (192, 192, 160), (0, 32, 64), (64, 128, 128),
    (64, 192, 160), (128, 160, 64), (64, 128, 0), (192, 192, 32), (128, 96, 192), (64, 0, 128),
    (64, 64, 32), (0, 224, 192), (192, 0, 0), (192, 64, 160), (0, 96, 192), (192, 128, 128),
    (64, 64, 160), (128, 224, 192), (192, 128, 64), (192, 64, 32), (128, 96, 64), (192, 0, 192),
    (0, 192, 32), (64, 224, 64), (64, 0, 64), (128, 192, 160), (64, 96, 64), (64, 128, 192),
    (0, 192, 160), (192, 224, 64), (64, 128, 64), (128, 192, 32), (192, 32, 192), (64, 64, 192),
    (0, 64, 32), (64, 160, 192), (192, 64, 64), (128, 64, 160), (64, 32, 192), (192, 192, 192),
    (0, 64, 160), (192, 160, 192), (192, 192, 0), (128, 64, 96), (192, 32, 64), (192, 64, 128),
    (64, 192, 96), (64, 160, 64), (64, 64, 0),
)

# Raw stuffthingmaps ids (0..181) that no COCO class uses; the train id of every other raw id is its
# rank among the used ones (0 -> 0, ..., 10 -> 10, 12 -> 11, ..., 181 -> 170), 255 stays ignore.
_UNUSED_RAW_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)


def _raw_to_train() -> Dict[int, int]:
    used = [raw for raw in range(182) if raw not in _UNUSED_RAW_IDS]
    table = {raw: train_id for train_id, raw in enumerate(used)}
    table[255] = 255
    return table


COCO_STUFF164K_RAW_TO_TRAIN: Dict[int, int] = _raw_to_train()
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
