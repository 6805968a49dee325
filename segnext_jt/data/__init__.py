"""Data loading and augmentation (pure NumPy + Pillow: no jittor, cv2 or torch).

Loader workers import this package only; keep it free of heavy imports. The names below are imported
on first use (PEP 562), so that `config_schema` importing `data.layouts` (the dataset names) does not
load NumPy, Pillow and the loaders into a process that never reads an image.
"""
from __future__ import annotations

import importlib

_MODULE_OF = {
    "ADE20KDataset": ".ade20k",
    "CityscapesDataset": ".cityscapes",
    "bgr2hsv": ".cv2_compat",
    "cv2_resize_bilinear": ".cv2_compat",
    "cv2_resize_nearest": ".cv2_compat",
    "hsv2bgr": ".cv2_compat",
    "COCOStuff164kDataset": ".coco_stuff",
    "IGNORE_INDEX": ".dataset",
    "RawSample": ".dataset",
    "SegDataset": ".dataset",
    "read_image_bgr": ".dataset",
    "read_label": ".dataset",
    "reduce_zero_label": ".dataset",
    "DemoMNISTDataset": ".demo_mnist",
    "ISAIDDataset": ".isaid",
    "ADE20K_CLASSES": ".layouts",
    "ADE20K_PALETTE": ".layouts",
    "CITYSCAPES_CLASSES": ".layouts",
    "CITYSCAPES_PALETTE": ".layouts",
    "DEMO_CLASSES": ".layouts",
    "DEMO_PALETTE": ".layouts",
    "PascalContext59Dataset": ".pascal_context",
    "PascalVOCAugDataset": ".voc",
    "TEST_PIPELINES": ".eval_views",
    "TTA_RATIOS": ".eval_views",
    "ViewInfo": ".eval_views",
    "make_view_input": ".eval_views",
    "tta_scales": ".eval_views",
    "TrainLoader": ".loader",
    "ValLoader": ".loader",
    "sample_rng": "..rng",
    "SampleLoadError": ".sampling",
    "sample_indices": ".sampling",
    "IMAGENET_MEAN": ".transforms",
    "IMAGENET_STD": ".transforms",
    "Compose": ".transforms",
    "Normalize": ".transforms",
    "Pad": ".transforms",
    "PhotoMetricDistortion": ".transforms",
    "RandomCrop": ".transforms",
    "RandomFlip": ".transforms",
    "RandomResize": ".transforms",
    "RandomResizeCrop": ".transforms",
    "build_train_pipeline": ".transforms",
    "multiple_size": ".transforms",
    "normalize_image": ".transforms",
    "pad_to": ".transforms",
    "rescale_size": ".transforms",
    "resize_to_multiple": ".transforms",
    "scale_size": ".transforms",
}

__all__ = list(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
    globals()[name] = value
    return value
