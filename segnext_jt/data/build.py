"""Dataset construction from the typed config: ``data.dataset`` names a layout (its class list
and label convention are in layouts.py; its folder-layout class is paired with it here) or
``custom`` (your folders, your class names)."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple

from ..errors import ConfigError
from .ade20k import ADE20KDataset
from .cityscapes import CityscapesDataset
from .coco_stuff import COCOStuff164kDataset
from .custom import checked_palette, resolve_classes
from .dataset import SegDataset, SplitSource
from .demo_mnist import DemoMNISTDataset
from .isaid import ISAIDDataset
from .layouts import LAYOUTS, NAMED_LABEL_MAPS
from .pascal_context import PascalContext59Dataset
from .transforms import build_train_pipeline
from .voc import PascalVOCAugDataset

__all__ = ["DATASET_CLASSES", "build_dataset", "declared_classes", "declared_palette", "train_pipeline"]

# The folder-layout class of each benchmark layout (same names as layouts.LAYOUTS; a test checks).
DATASET_CLASSES: Dict[str, type] = {
    "ade20k": ADE20KDataset,
    "demo_mnist": DemoMNISTDataset,
    "cityscapes": CityscapesDataset,
    "voc12_aug": PascalVOCAugDataset,
    "pascal_context59": PascalContext59Dataset,
    "coco_stuff164k": COCOStuff164kDataset,
    "isaid": ISAIDDataset,
}


def _label_map(data_cfg) -> Optional[Dict[int, int]]:
    value = data_cfg.label_map
    if isinstance(value, str):
        if value not in NAMED_LABEL_MAPS:  # the config validation catches this first
            raise ConfigError(f"data.label_map: unknown table {value!r}; known: {', '.join(NAMED_LABEL_MAPS)}")
        return NAMED_LABEL_MAPS[value]
    return value


def _sources(data_cfg, split: str) -> Optional[Sequence[SplitSource]]:
    """The split's folders from data.train_dirs / data.val_dirs (None: the layout's own)."""
    dirs = data_cfg.train_dirs if split == "train" else data_cfg.val_dirs
    if dirs is None:
        return None
    root = str(data_cfg.root)
    split_file = None if dirs.split_file is None else os.path.join(root, dirs.split_file)
    return [SplitSource(os.path.join(root, dirs.img_dir), os.path.join(root, dirs.ann_dir), split_file)]


def _dataset_kwargs(data_cfg, split: str) -> Dict[str, Any]:
    """Keyword arguments the config may set for any layout (None values are left to the layout)."""
    kwargs: Dict[str, Any] = {"sources": _sources(data_cfg, split), "img_suffix": data_cfg.img_suffix,
                              "seg_suffix": data_cfg.seg_map_suffix, "label_map": _label_map(data_cfg)}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if data_cfg.ignore_index != 255:
        kwargs["ignore_index"] = data_cfg.ignore_index
    return kwargs


def declared_classes(data_cfg) -> Tuple[Tuple[str, ...], str]:
    """(class names, where they are declared) without scanning the image folders; for a custom
    dataset with a classes.txt this reads that file (DataError naming it when it is missing)."""
    if data_cfg.dataset == "custom":
        return resolve_classes(data_cfg.classes, str(data_cfg.root))
    return LAYOUTS[data_cfg.dataset].classes, f"the {data_cfg.dataset} layout"


def declared_palette(data_cfg, num_classes: int) -> Tuple[Tuple[int, int, int], ...]:
    """Colours for predictions (tools/infer.py): the config's palette, the layout's, or generated;
    never reads the dataset folders."""
    if data_cfg.dataset != "custom":
        return LAYOUTS[data_cfg.dataset].palette
    return checked_palette(data_cfg.palette, num_classes, f"model.decode_head.num_classes={num_classes}")


def build_dataset(data_cfg, split: str, num_classes: Optional[int] = None) -> SegDataset:
    """`split` is 'train' or 'val'; folders come from the config. With `num_classes` (the head's),
    a class list of another length is a ConfigError naming where the classes are declared."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    kwargs = _dataset_kwargs(data_cfg, split)
    classes, where = declared_classes(data_cfg)
    if num_classes is not None and len(classes) != num_classes:
        raise ConfigError(f"model.decode_head.num_classes={num_classes} but {where} declares {len(classes)} "
                          "classes; they must be equal")
    if data_cfg.dataset == "custom":
        if "sources" not in kwargs:  # the config validation catches this first
            raise ConfigError(f"data.{split}_dirs: dataset 'custom' needs img_dir and ann_dir for the {split} split")
        kwargs.setdefault("seg_suffix", ".png")
        return SegDataset(str(data_cfg.root), split, classes=classes,
                          palette=checked_palette(data_cfg.palette, len(classes), where),
                          reduce_zero_label=bool(data_cfg.reduce_zero_label), **kwargs)
    folder = data_cfg.train_split if split == "train" else data_cfg.val_split
    return DATASET_CLASSES[data_cfg.dataset](str(data_cfg.root), folder, **kwargs)


def train_pipeline(data_cfg):
    return build_train_pipeline(crop_size=tuple(data_cfg.crop_size), scale=tuple(data_cfg.scale),
                                ratio_range=tuple(data_cfg.ratio_range), cat_max_ratio=data_cfg.cat_max_ratio,
                                flip_prob=data_cfg.flip_prob, mean=data_cfg.mean, std=data_cfg.std,
                                photometric=data_cfg.photometric)
