"""The facts of each benchmark dataset layout: its name, class list, palette, label convention
(reduce_zero_label) and named label maps. Constants only (no NumPy, no file access), so the config
schema imports this module to validate ``data.dataset``, ``data.classes`` and ``data.label_map``
without the dataset classes; segnext_jt/data/build.py pairs each name with its folder-layout class.

The class lists and palettes are mmseg's (the dataset classes' METAINFO / CLASSES and PALETTE).
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Tuple

__all__ = ["DATASET_NAMES", "LAYOUTS", "NAMED_LABEL_MAPS", "Layout",
           "ADE20K_CLASSES", "ADE20K_PALETTE", "CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE",
           "COCO_STUFF_CLASSES", "COCO_STUFF_PALETTE", "COCO_STUFF164K_RAW_TO_TRAIN", "DEMO_CLASSES",
           "DEMO_PALETTE", "ISAID_CLASSES", "ISAID_PALETTE", "PASCAL_CONTEXT59_CLASSES",
           "PASCAL_CONTEXT59_PALETTE", "VOC_CLASSES", "VOC_PALETTE"]

# mmseg ADE20KDataset.METAINFO (objectInfo150 order). The 8th name really is
# 'bed ' with a trailing space; it appears in mmseg's per-class log keys.
ADE20K_CLASSES: Tuple[str, ...] = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed ', 'windowpane', 'grass',
    'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair',
    'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field',
    'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion',
    'base', 'box', 'column', 'signboard', 'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper',
    'fireplace', 'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case', 'pool table',
    'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase', 'blind', 'coffee table',
    'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm', 'kitchen island',
    'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light',
    'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver',
    'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman',
    'bottle', 'buffet', 'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy',
    'washer', 'plaything', 'swimming pool', 'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag',
    'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank', 'trade name', 'microwave', 'pot',
    'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture', 'hood', 'sconce',
    'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor',
    'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag',
)

# mmseg ADE20KDataset.METAINFO['palette'], RGB.
ADE20K_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)


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


# mmseg PascalVOCDataset.CLASSES / PALETTE.
VOC_CLASSES: Tuple[str, ...] = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
    'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
    'train', 'tvmonitor',
)
VOC_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
    (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128),
    (192, 0, 128), (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0),
    (128, 192, 0), (0, 64, 128),
)


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


# mmseg iSAIDDataset.CLASSES / PALETTE.
ISAID_CLASSES: Tuple[str, ...] = (
    'background', 'ship', 'store_tank', 'baseball_diamond', 'tennis_court', 'basketball_court',
    'Ground_Track_Field', 'Bridge', 'Large_Vehicle', 'Small_Vehicle', 'Helicopter', 'Swimming_pool',
    'Roundabout', 'Soccer_ball_field', 'plane', 'Harbor',
)
ISAID_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (0, 0, 0), (0, 0, 63), (0, 63, 63), (0, 63, 0), (0, 63, 127), (0, 63, 191), (0, 63, 255),
    (0, 127, 63), (0, 127, 127), (0, 0, 127), (0, 0, 191), (0, 0, 255), (0, 191, 127),
    (0, 127, 191), (0, 127, 255), (0, 100, 155),
)


# the MNIST-derived demo data (segnext_jt/data/demo_mnist.py): background and the ten digits
DEMO_CLASSES: Tuple[str, ...] = (
    "background", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)
DEMO_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (120, 120, 120), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)


class Layout(NamedTuple):
    """A benchmark's classes and its fixed label convention."""

    classes: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...]
    reduce_zero_label: bool


# The benchmark layouts by the name `data.dataset` gives them (this order is the order the config
# error lists them in).
LAYOUTS: Dict[str, Layout] = {
    "ade20k": Layout(ADE20K_CLASSES, ADE20K_PALETTE, True),
    "demo_mnist": Layout(DEMO_CLASSES, DEMO_PALETTE, True),
    "cityscapes": Layout(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, False),
    "voc12_aug": Layout(VOC_CLASSES, VOC_PALETTE, False),
    "pascal_context59": Layout(PASCAL_CONTEXT59_CLASSES, PASCAL_CONTEXT59_PALETTE, True),
    "coco_stuff164k": Layout(COCO_STUFF_CLASSES, COCO_STUFF_PALETTE, False),
    "isaid": Layout(ISAID_CLASSES, ISAID_PALETTE, False),
}

# Every value `data.dataset` accepts (the schema's Literal is made from it): a layout, or 'custom'
# (your folders and your class names).
DATASET_NAMES: Tuple[str, ...] = (*LAYOUTS, "custom")

# `data.label_map` may name one of these tables instead of listing the pairs.
NAMED_LABEL_MAPS: Dict[str, Dict[int, int]] = {"coco_stuff164k": COCO_STUFF164K_RAW_TO_TRAIN}

