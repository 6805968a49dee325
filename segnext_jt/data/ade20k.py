"""Segmentation datasets on disk (ADE20K, Cityscapes layouts), NumPy + Pillow only.

Images are returned the way mmseg reads them with cv2: BGR ``uint8`` (H, W, 3),
EXIF orientation applied, alpha dropped, grey/palette expanded to 3 channels.
Labels are read the way mmseg's ``LoadAnnotations`` (pillow backend) reads
them: the stored values as ``uint8`` (palette PNGs give their indices).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

from .transforms import Normalize, Results

__all__ = [
    "ADE20K_CLASSES", "ADE20K_PALETTE", "CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE",
    "DataError", "RawSample", "SegDataset", "ADE20KDataset", "CityscapesDataset",
    "read_image_bgr", "read_label",
]

IGNORE_INDEX = 255

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


class DataError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class RawSample(NamedTuple):
    """An unaugmented sample, as evaluation wants it."""

    img: np.ndarray  # BGR uint8 (H, W, 3)
    gt_seg: np.ndarray  # uint8 (H, W), reduce_zero_label applied, 255 = ignore
    filename: str  # image path


# --------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------


def read_image_bgr(path: str) -> np.ndarray:
    """Read an image as cv2.imread(path, IMREAD_COLOR) would: BGR uint8 (H, W, 3).

    EXIF orientation is applied (cv2 does so for IMREAD_COLOR); alpha is
    dropped; grey, palette and 16-bit images become 3-channel 8-bit.
    """
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # cv2 reduces 16-bit images to 8 bits by dropping the low byte.
                arr = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
                rgb = np.repeat(arr[..., None], 3, axis=2)
            else:
                if im.mode != "RGB":
                    im = im.convert("RGB")
                rgb = np.asarray(im)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"{path}: cannot read the image ({e})") from e
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise DataError(f"{path}: expected a non-empty colour image, got array shape {rgb.shape}")
    return np.ascontiguousarray(rgb[..., ::-1])


def read_label(path: str) -> np.ndarray:
    """Read a label map as uint8 (H, W): stored values, palette indices for 'P' PNGs."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DataError(f"{path}: label file not found") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: cannot read the label map ({e})") from e
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a single-channel label map (mode L or P), "
                        f"got mode {mode} with shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        elif np.issubdtype(arr.dtype, np.integer) and arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{path}: label values must fit in 0..255, found {arr.min()}..{arr.max()}")
        else:
            arr = arr.astype(np.uint8)
    return arr


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """mmseg's reduce_zero_label: 0 -> 255, k -> k - 1, 255 stays 255."""
    out = label.astype(np.int16) - 1
    out[label == 0] = IGNORE_INDEX
    out[label == IGNORE_INDEX] = IGNORE_INDEX
    return out.astype(np.uint8)


# --------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------

Suffixes = Union[str, Sequence[str]]


def _list_files(folder: str, suffixes: Tuple[str, ...]) -> Dict[str, str]:
    """Map key (relative path without the suffix) -> path, recursively."""
    found: Dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            for suf in suffixes:
                if name.endswith(suf) and len(name) > len(suf):
                    rel = os.path.relpath(os.path.join(dirpath, name), folder)
                    key = rel[: -len(suf)]
                    if key in found:
                        raise DataError(f"{os.path.join(dirpath, name)}: two files share the name "
                                        f"{key!r} (also {found[key]})")
                    found[key] = os.path.join(dirpath, name)
                    break
    return found


class SegDataset:
    """Images under ``root/img_dir/split`` paired by name with labels under
    ``root/ann_dir/split`` (searched recursively).

    Args:
        root: dataset root.
        split: sub-folder of ``img_dir`` and ``ann_dir`` (e.g. 'training').
        img_suffix: image file ending(s), e.g. '.jpg' or ('.jpg', '.png').
        seg_suffix: label file ending, e.g. '.png'.
        reduce_zero_label: map 0 -> 255 (ignore) and k -> k - 1 (ADE20K).
        classes / palette: class names and RGB colours (len = num_classes).
        pipeline: default transform for :meth:`get` / ``__getitem__``.

    The folder structure is checked at construction (every image needs a
    label and vice versa); file contents are checked when a sample is read.
    """

    def __init__(self, root: str, split: str, classes: Sequence[str], palette: Optional[Sequence] = None,
                 img_dir: str = "images", ann_dir: str = "annotations", img_suffix: Suffixes = (".jpg", ".png"),
                 seg_suffix: str = ".png", reduce_zero_label: bool = False,
                 pipeline: Optional[Callable[[Results, np.random.Generator], Results]] = None,
                 ignore_index: int = IGNORE_INDEX):
        self.root = str(root)
        self.split = split
        self.classes = tuple(classes)
        self.palette = None if palette is None else tuple(tuple(int(c) for c in p) for p in palette)
        if self.palette is not None and len(self.palette) != len(self.classes):
            raise ValueError(f"palette has {len(self.palette)} colours for {len(self.classes)} classes")
        self.img_suffix = (img_suffix,) if isinstance(img_suffix, str) else tuple(img_suffix)
        self.seg_suffix = seg_suffix
        self.reduce_zero_label = bool(reduce_zero_label)
        self.pipeline = pipeline
        self.ignore_index = int(ignore_index)
        self.img_dir = os.path.join(self.root, img_dir, split)
        self.ann_dir = os.path.join(self.root, ann_dir, split)
        self.samples: List[Tuple[str, str]] = self._scan()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _scan(self) -> List[Tuple[str, str]]:
        if not os.path.isdir(self.root):
            raise DataError(f"{self.root}: dataset root does not exist")
        for folder, what in ((self.img_dir, "image"), (self.ann_dir, "annotation")):
            if not os.path.isdir(folder):
                raise DataError(f"{folder}: {what} folder for split {self.split!r} does not exist")
        images = _list_files(self.img_dir, self.img_suffix)
        labels = _list_files(self.ann_dir, (self.seg_suffix,))
        if not images and not labels:
            raise DataError(f"{self.img_dir}: split {self.split!r} is empty (no files ending in "
                            f"{' or '.join(self.img_suffix)})")
        missing = sorted(set(images) - set(labels))
        if missing:
            key = missing[0]
            raise DataError(f"{images[key]}: image has no annotation; expected "
                            f"{os.path.join(self.ann_dir, key + self.seg_suffix)}"
                            + (f" ({len(missing)} images lack one)" if len(missing) > 1 else ""))
        orphans = sorted(set(labels) - set(images))
        if orphans:
            key = orphans[0]
            raise DataError(f"{labels[key]}: annotation has no image; expected "
                            f"{os.path.join(self.img_dir, key)}{'|'.join(self.img_suffix)}"
                            + (f" ({len(orphans)} annotations lack one)" if len(orphans) > 1 else ""))
        return [(images[k], labels[k]) for k in sorted(images)]

    def __len__(self) -> int:
        return len(self.samples)

    def filename(self, index: int) -> str:
        return self.samples[index][0]

    def load_label(self, index: int) -> np.ndarray:
        """The label map with reduce_zero_label applied, range-checked."""
        path = self.samples[index][1]
        label = read_label(path)
        if self.reduce_zero_label:
            label = reduce_zero_label(label)
        bad = (label >= self.num_classes) & (label != self.ignore_index)
        if bad.any():
            values = np.unique(label[bad])
            after = " after reduce_zero_label" if self.reduce_zero_label else ""
            raise DataError(f"{path}: label values {values[:10].tolist()} are out of range{after}; expected "
                            f"0..{self.num_classes - 1} or {self.ignore_index} (ignore)")
        return label

    def load_raw(self, index: int) -> RawSample:
        """BGR uint8 image, checked label (reduce applied) and image path."""
        img_path, seg_path = self.samples[index]
        img = read_image_bgr(img_path)
        label = self.load_label(index)
        if img.shape[:2] != label.shape:
            raise DataError(f"{img_path}: image size {img.shape[1]}x{img.shape[0]} (w x h) does not match "
                            f"its label {seg_path} ({label.shape[1]}x{label.shape[0]})")
        return RawSample(img, label, img_path)

    def get(self, index: int, rng: Optional[np.random.Generator] = None,
            pipeline: Optional[Callable[[Results, np.random.Generator], Results]] = None) -> Dict[str, Any]:
        """Load sample ``index`` and run ``pipeline`` (default: the dataset's,
        else plain normalisation) with ``rng`` (default: a fresh unseeded one).

        Returns 'img' (float32 (3, H, W)), 'gt_seg' (uint8 (H, W)), 'filename',
        'ori_shape' (h, w), plus whatever the pipeline recorded (e.g. 'flip').
        """
        raw = self.load_raw(index)
        pipe = pipeline if pipeline is not None else self.pipeline
        if pipe is None:
            pipe = Normalize()
        if rng is None:
            rng = np.random.default_rng()
        results: Results = {"img": raw.img, "gt_seg": raw.gt_seg, "filename": raw.filename,
                            "ori_shape": raw.img.shape[:2]}
        results = pipe(results, rng)
        img = results["img"]
        if img.ndim != 3:
            raise DataError(f"{raw.filename}: the pipeline returned an image of shape {img.shape}, "
                            f"expected (H, W, C)")
        results["img"] = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
        results["gt_seg"] = np.ascontiguousarray(results["gt_seg"])
        return results

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.get(index)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={self.root!r}, split={self.split!r}, {len(self)} samples, "
                f"{self.num_classes} classes, reduce_zero_label={self.reduce_zero_label})")


_ADE_SPLITS = {"train": "training", "val": "validation"}


class ADE20KDataset(SegDataset):
    """ADEChallengeData2016: ``images/{training,validation}/*.jpg`` and
    ``annotations/.../*.png``; reduce_zero_label, 150 classes.

    ``root`` may be the ADEChallengeData2016 folder or its parent;
    'train'/'val' are accepted for 'training'/'validation'.
    """

    def __init__(self, root: str, split: str = "training", img_suffix: Suffixes = ".jpg",
                 seg_suffix: str = ".png", reduce_zero_label: bool = True,
                 classes: Sequence[str] = ADE20K_CLASSES, palette: Optional[Sequence] = ADE20K_PALETTE,
                 pipeline: Optional[Callable[[Results, np.random.Generator], Results]] = None):
        root = str(root)
        nested = os.path.join(root, "ADEChallengeData2016")
        if not os.path.isdir(os.path.join(root, "images")) and os.path.isdir(nested):
            root = nested
        super().__init__(root, _ADE_SPLITS.get(split, split), classes=classes, palette=palette,
                         img_dir="images", ann_dir="annotations", img_suffix=img_suffix,
                         seg_suffix=seg_suffix, reduce_zero_label=reduce_zero_label, pipeline=pipeline)


class CityscapesDataset(SegDataset):
    """``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` with
    ``gtFine/.../*_gtFine_labelTrainIds.png``; 19 classes, no reduce."""

    def __init__(self, root: str, split: str = "train", img_suffix: Suffixes = "_leftImg8bit.png",
                 seg_suffix: str = "_gtFine_labelTrainIds.png",
                 pipeline: Optional[Callable[[Results, np.random.Generator], Results]] = None):
        super().__init__(root, split, classes=CITYSCAPES_CLASSES, palette=CITYSCAPES_PALETTE,
                         img_dir="leftImg8bit", ann_dir="gtFine", img_suffix=img_suffix,
                         seg_suffix=seg_suffix, reduce_zero_label=False, pipeline=pipeline)
