"""Validation of the config's data section against the dataset layouts (called by
``DataConfig.validate``): the checks that need to know each layout's classes and label convention.
Every failure is a one-line ConfigError naming the key."""
from __future__ import annotations

from ..errors import ConfigError, quote
from .layouts import LAYOUTS, NAMED_LABEL_MAPS

__all__ = ["check_data_config"]


def check_data_config(data_cfg, where: str = "data") -> None:
    if data_cfg.dataset == "custom":
        _check_custom(data_cfg, where)
    else:
        _check_layout(data_cfg, where)
    _check_label_map(data_cfg.label_map, where)


def _check_layout(data_cfg, where: str) -> None:
    """A benchmark layout fixes its classes and its reduce_zero_label (as mmseg's dataset classes)."""
    layout = LAYOUTS[data_cfg.dataset]
    for name in ("classes", "palette"):
        if getattr(data_cfg, name) is not None:
            raise ConfigError(f"{where}.{name} is only for dataset 'custom'; the {data_cfg.dataset} layout "
                              f"declares its {len(layout.classes)} classes and their colours")
    reduce = data_cfg.reduce_zero_label
    if reduce is not None and reduce != layout.reduce_zero_label:
        raise ConfigError(f"{where}.reduce_zero_label={str(reduce).lower()} contradicts the {data_cfg.dataset} "
                          f"label convention (reduce_zero_label={str(layout.reduce_zero_label).lower()}); leave it "
                          "out or use dataset 'custom'")


def _check_custom(data_cfg, where: str) -> None:
    classes, palette = data_cfg.classes, data_cfg.palette
    if classes is None:
        raise ConfigError(f"{where}.classes: dataset 'custom' needs the class names: a list, or the path "
                          "of a classes.txt with one name per line (relative to data.root)")
    if isinstance(classes, str) and not classes.strip():
        raise ConfigError(f"{where}.classes: empty path; give a classes.txt path or a list of names")
    if isinstance(classes, list):
        if not classes:
            raise ConfigError(f"{where}.classes: the list is empty; give at least one class name")
        for i, name in enumerate(classes):
            if not name.strip():
                raise ConfigError(f"{where}.classes[{i}] is blank; every class needs a name")
            if name in classes[:i]:
                raise ConfigError(f"{where}.classes[{i}]: {quote(name)} appears twice")
        if palette is not None and len(palette) != len(classes):
            raise ConfigError(f"{where}.palette has {len(palette)} colours for {len(classes)} classes")
    for i, colour in enumerate(palette or []):
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            raise ConfigError(f"{where}.palette[{i}]: expected [r, g, b] with values in 0..255, got {colour}")
    for name in ("train_dirs", "val_dirs"):
        if getattr(data_cfg, name) is None:
            split = name[:-len("_dirs")]
            raise ConfigError(f"{where}.{name}: dataset 'custom' needs the folders of this split, e.g. "
                              f"{{img_dir: images/{split}, ann_dir: masks/{split}}}")


def _check_label_map(label_map, where: str) -> None:
    if isinstance(label_map, str):
        if label_map not in NAMED_LABEL_MAPS:
            raise ConfigError(f"{where}.label_map: unknown table {quote(label_map)}; known: {', '.join(NAMED_LABEL_MAPS)} "
                              "(or give a mapping of stored value -> class id)")
    elif label_map is not None:
        for raw, target in label_map.items():
            if not (0 <= raw <= 255 and 0 <= target <= 255):
                raise ConfigError(f"{where}.label_map: {raw} -> {target}: values must be in 0..255")
