"""Dataset construction from the typed config (a plain mapping from `data.dataset` to a class)."""
from __future__ import annotations

from .ade20k import ADE20KDataset, CityscapesDataset, SegDataset
from .demo_mnist import DemoMNISTDataset
from .transforms import build_train_pipeline


def build_dataset(data_cfg, split: str) -> SegDataset:
    """`split` is 'train' or 'val'; the folder names come from the config."""
    folder = data_cfg.train_split if split == "train" else data_cfg.val_split
    if data_cfg.dataset == "ade20k":
        return ADE20KDataset(data_cfg.root, folder, reduce_zero_label=data_cfg.reduce_zero_label)
    if data_cfg.dataset == "demo_mnist":
        return DemoMNISTDataset(data_cfg.root, folder)
    if data_cfg.dataset == "cityscapes":
        return CityscapesDataset(data_cfg.root, folder)
    raise ValueError(f"data.dataset: unknown dataset {data_cfg.dataset!r}")


def train_pipeline(data_cfg):
    return build_train_pipeline(crop_size=tuple(data_cfg.crop_size), scale=tuple(data_cfg.scale),
                                ratio_range=tuple(data_cfg.ratio_range), cat_max_ratio=data_cfg.cat_max_ratio,
                                flip_prob=data_cfg.flip_prob, mean=data_cfg.mean, std=data_cfg.std,
                                photometric=data_cfg.photometric)
