"""Data loading and augmentation (pure NumPy + Pillow: no jittor, cv2 or torch).

Loader workers import this package only; keep it free of heavy imports.
"""

from .ade20k import (ADE20K_CLASSES, ADE20K_PALETTE, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, IGNORE_INDEX,
                     ADE20KDataset, CityscapesDataset, DataError, RawSample, SegDataset, read_image_bgr,
                     read_label, reduce_zero_label)
from .demo_mnist import DEMO_CLASSES, DEMO_PALETTE, DemoMNISTDataset, build_demo_dataset
from .loader import SampleLoadError, TrainLoader, ValLoader, sample_indices, sample_rng
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, TEST_MODES, TTA_RATIOS, Compose, Normalize, Pad,
                         PhotoMetricDistortion, RandomCrop, RandomFlip, RandomResize, RandomResizeCrop,
                         TestResizeInfo,
                         bgr2hsv, build_train_pipeline, hsv2bgr, multiple_size, normalize_image, pad_to,
                         rescale_size, resize_bilinear, resize_nearest, resize_to_multiple, scale_size,
                         test_resize, tta_scales)

__all__ = [
    "ADE20K_CLASSES", "ADE20K_PALETTE", "CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE", "DEMO_CLASSES", "DEMO_PALETTE",
    "IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "TEST_MODES", "TTA_RATIOS",
    "SegDataset", "ADE20KDataset", "CityscapesDataset", "DemoMNISTDataset", "RawSample", "DataError",
    "read_image_bgr", "read_label", "reduce_zero_label", "build_demo_dataset",
    "TrainLoader", "ValLoader", "SampleLoadError", "sample_indices", "sample_rng",
    "Compose", "RandomResize", "RandomCrop", "RandomResizeCrop", "RandomFlip", "PhotoMetricDistortion", "Normalize", "Pad",
    "build_train_pipeline", "normalize_image", "resize_bilinear", "resize_nearest", "rescale_size", "scale_size",
    "multiple_size", "resize_to_multiple", "pad_to", "bgr2hsv", "hsv2bgr", "test_resize", "tta_scales",
    "TestResizeInfo",
]
