"""Data loading and augmentation (pure NumPy + Pillow: no jittor, cv2 or torch).

Loader workers import this package only; keep it free of heavy imports.
"""

from .ade20k import ADE20KDataset
from .cityscapes import CityscapesDataset
from .cv2_compat import bgr2hsv, cv2_resize_bilinear, cv2_resize_nearest, hsv2bgr
from .coco_stuff import COCOStuff164kDataset
from .dataset import IGNORE_INDEX, RawSample, SegDataset, read_image_bgr, read_label, reduce_zero_label
from .demo_mnist import DemoMNISTDataset
from .isaid import ISAIDDataset
from .layouts import ADE20K_CLASSES, ADE20K_PALETTE, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, DEMO_CLASSES, DEMO_PALETTE
from .pascal_context import PascalContext59Dataset
from .voc import PascalVOCAugDataset
from .eval_views import TEST_PIPELINES, TTA_RATIOS, ViewInfo, make_view_input, tta_scales
from .loader import TrainLoader, ValLoader
from ..rng import sample_rng
from .sampling import SampleLoadError, sample_indices
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, Compose, Normalize, Pad, PhotoMetricDistortion, RandomCrop,
                         RandomFlip, RandomResize, RandomResizeCrop, build_train_pipeline, multiple_size,
                         normalize_image, pad_to, rescale_size, resize_to_multiple, scale_size)

__all__ = [
    "ADE20K_CLASSES", "ADE20K_PALETTE", "CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE", "DEMO_CLASSES", "DEMO_PALETTE",
    "IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "TEST_PIPELINES", "TTA_RATIOS",
    "SegDataset", "ADE20KDataset", "CityscapesDataset", "DemoMNISTDataset", "RawSample",
    "PascalVOCAugDataset", "PascalContext59Dataset", "COCOStuff164kDataset", "ISAIDDataset",
    "read_image_bgr", "read_label", "reduce_zero_label",
    "TrainLoader", "ValLoader", "SampleLoadError", "sample_indices", "sample_rng",
    "Compose", "RandomResize", "RandomCrop", "RandomResizeCrop", "RandomFlip", "PhotoMetricDistortion", "Normalize",
    "Pad",
    "build_train_pipeline", "normalize_image", "cv2_resize_bilinear", "cv2_resize_nearest", "rescale_size",
    "scale_size", "multiple_size", "resize_to_multiple", "pad_to", "bgr2hsv", "hsv2bgr", "make_view_input",
    "tta_scales", "ViewInfo",
]
