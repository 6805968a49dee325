"""The generic segmentation dataset on disk: image/label pairs, NumPy + Pillow only.

Images are returned the way mmseg reads them with cv2: BGR ``uint8`` (H, W, 3),
EXIF orientation applied, alpha dropped, grey/palette expanded to 3 channels.
Labels are read the way mmseg's ``LoadAnnotations`` (pillow backend) reads
them: the stored values as ``uint8`` (palette PNGs give their indices), then
mapped to class ids (``label_map``, ``ignore_index``, ``reduce_zero_label``)
and range-checked, so a wrong label file stops with its path and value.

The benchmark layouts (ADE20K, Cityscapes, VOC, ...) are thin subclasses in
their own modules; ``data.dataset: custom`` builds this class directly.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError, quote
from ..files import read_regular_file
from .transforms import Normalize, Results

__all__ = [
    "IGNORE_INDEX", "RawSample", "SegDataset", "SplitSource", "Suffixes",
    "read_image_bgr", "read_label", "reduce_zero_label",
]

# The ignore value inside the package: the loss, the metric, crop/pad all use it.
IGNORE_INDEX = 255

Suffixes = Union[str, Sequence[str]]
Pipeline = Callable[[Results, np.random.Generator], Results]


class RawSample(NamedTuple):
    """An unaugmented sample, as evaluation wants it."""

    img: np.ndarray  # BGR uint8 (H, W, 3)
    gt_seg: np.ndarray  # uint8 (H, W), class ids, 255 = ignore
    filename: str  # image path


class SplitSource(NamedTuple):
    """One folder pair of a split. With ``split_file`` the samples are the names it lists (one per
    line, no suffix; mmseg's ``split=``), otherwise every image in ``img_dir`` (recursively)."""

    img_dir: str
    ann_dir: str
    split_file: Optional[str] = None


# --------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------


def check_pixels(path: str, size: Tuple[int, int]) -> None:
    """Refuse an image larger than Pillow's limit (about 89 megapixels) before decoding it: a
    decompression bomb, or a photo that needs resizing first (decoding it would take gigabytes)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and size[0] * size[1] > limit:
        raise DataError(f"{path}: {size[0]}x{size[1]} pixels, more than the {limit} this reads "
                        "(PIL.Image.MAX_IMAGE_PIXELS); resize it first")


def read_image_bgr(path: str) -> np.ndarray:
    """Read an image as cv2.imread(path, IMREAD_COLOR) would: BGR uint8 (H, W, 3).

    EXIF orientation is applied (cv2 does so for IMREAD_COLOR); alpha is
    dropped; grey, palette and 16-bit images become 3-channel 8-bit.
    """
    try:
        with warnings.catch_warnings():  # PIL warns between 1x and 2x its pixel limit: we refuse instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            check_pixels(path, im.size)
            im = _exif_transposed(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # cv2 reduces 16-bit images to 8 bits by dropping the low byte.
                arr = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
                bgr = np.repeat(arr[..., None], 3, axis=2)
            else:
                if im.mode != "RGB":
                    im = im.convert("RGB")
                # Pillow packs its pixels as BGR in C (half the time of reversing the channels of an
                # RGB array in NumPy); the bytearray makes the array writable like np.array's.
                bgr = np.frombuffer(bytearray(im.tobytes("raw", "BGR")), np.uint8).reshape(im.height, im.width, 3)
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"{path}: cannot read the image ({e})") from e
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.shape[0] == 0 or bgr.shape[1] == 0:
        raise DataError(f"{path}: expected a non-empty colour image, got array shape {bgr.shape}")
    return bgr


def _exif_transposed(im: Image.Image) -> Image.Image:
    """``im`` turned upright by its EXIF orientation, in place (ImageOps.exif_transpose otherwise copies
    every image, even an upright one: a third of the decode time); Pillow < 9.4 has no in_place."""
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except TypeError:
        return ImageOps.exif_transpose(im)
    return im


# Label maps hold class ids: integer modes only (a float 'F' map would be truncated to ids silently).
INTEGER_LABEL_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")


def label_mode_problem(mode: str) -> str:
    return (f"label map stored in mode {mode}; expected a single-channel label map of class ids in an "
            f"integer mode ({', '.join(INTEGER_LABEL_MODES)})")


def read_label(path: str) -> np.ndarray:
    """Read a label map as uint8 (H, W): stored values, palette indices for 'P' PNGs."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in INTEGER_LABEL_MODES:
                raise DataError(f"{path}: {label_mode_problem(mode)}")
            arr = np.asarray(im)
    except DataError:
        raise
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


def _label_table(label_map: Optional[Mapping[int, int]], ignore_index: int) -> Optional[np.ndarray]:
    """Stored value -> class id as a 256-entry int16 table (-1: a value the files must not hold),
    or None when the stored values are the class ids already (no map, ignore value 255)."""
    if label_map is None and ignore_index == IGNORE_INDEX:
        return None
    if label_map is None:
        table = np.arange(256, dtype=np.int16)
        table[IGNORE_INDEX] = -1  # 255 is a class-less value once another value means "ignore"
    else:
        table = np.full(256, -1, dtype=np.int16)
        for raw, target in label_map.items():
            table[int(raw)] = int(target)
    table[ignore_index] = IGNORE_INDEX
    return table


# --------------------------------------------------------------------------
# Listing files
# --------------------------------------------------------------------------


def _list_files(folder: str, suffixes: Tuple[str, ...], exclude: Tuple[str, ...] = ()) -> Dict[str, str]:
    """Map key (relative path without the suffix) -> path, recursively. Names ending in one of
    `exclude` are skipped (another label format stored beside the wanted one)."""
    found: Dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            if exclude and name.endswith(exclude):
                continue
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


# An mmseg split file lists one sample name a line: ADE20K's is ~0.5 MB, COCO-Stuff's ~2.5 MB; 64 MiB
# is a million names of 64 bytes. Past it the file is not a split file (or is /dev/zero).
MAX_SPLIT_FILE_BYTES = 64 << 20


def _lines(text: str) -> List[str]:
    """Lines as text-mode open() gives them (\\n, \\r\\n and \\r end a line), without the endings."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _read_split_file(path: str) -> List[str]:
    """Sample names of an mmseg split file: one per line, blank lines skipped, a UTF-8 BOM dropped.
    Only a regular file of at most MAX_SPLIT_FILE_BYTES is read (a FIFO or /dev/zero is refused)."""
    data = read_regular_file(path, MAX_SPLIT_FILE_BYTES, DataError, "split file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the split "
                        "file as UTF-8") from None
    names = [n for n in (line.strip() for line in _lines(text)) if n]
    if not names:
        raise DataError(f"{path}: the split file lists no samples")
    return names


def _pairs_from_split_file(source: SplitSource, img_suffix: Tuple[str, ...],
                           seg_suffix: str) -> List[Tuple[str, str]]:
    pairs = []
    for name in _read_split_file(source.split_file):
        candidates = [os.path.join(source.img_dir, name + suf) for suf in img_suffix]
        img = next((c for c in candidates if os.path.isfile(c)), None)
        if img is None:
            expected = (' or '.join(candidates) if len(name) <= 255  # longer is no file name (NAME_MAX)
                        else f"a name of at most 255 characters, not {len(name):,}")
            raise DataError(f"{source.split_file}: sample {quote(name)} has no image; expected {expected}")
        ann = os.path.join(source.ann_dir, name + seg_suffix)
        if not os.path.isfile(ann):
            raise DataError(f"{img}: image has no annotation; expected {ann} (listed in {source.split_file})")
        pairs.append((img, ann))
    return pairs


def _pairs_from_folders(source: SplitSource, img_suffix: Tuple[str, ...], seg_suffix: str,
                        exclude: Tuple[str, ...], split: str) -> List[Tuple[str, str]]:
    images = _list_files(source.img_dir, img_suffix)
    labels = _list_files(source.ann_dir, (seg_suffix,), exclude)
    if not images and not labels:
        raise DataError(f"{source.img_dir}: split {split!r} is empty (no files ending in {' or '.join(img_suffix)})")
    missing = sorted(set(images) - set(labels))
    if missing:
        key = missing[0]
        raise DataError(f"{images[key]}: image has no annotation; expected "
                        f"{os.path.join(source.ann_dir, key + seg_suffix)}"
                        + (f" ({len(missing)} images lack one)" if len(missing) > 1 else ""))
    orphans = sorted(set(labels) - set(images))
    if orphans:
        key = orphans[0]
        raise DataError(f"{labels[key]}: annotation has no image; expected "
                        f"{os.path.join(source.img_dir, key)}{'|'.join(img_suffix)}"
                        + (f" ({len(orphans)} annotations lack one)" if len(orphans) > 1 else ""))
    return [(images[k], labels[k]) for k in sorted(images)]


# --------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------


class SegDataset:
    """Images paired by name with label maps.

    Args:
        root: dataset root.
        split: sub-folder of ``img_dir`` and ``ann_dir`` (e.g. 'training'); '' for none.
        classes / palette: class names and RGB colours (len = num_classes).
        img_dir, ann_dir: folders under ``root`` (absolute paths are used as they are).
        img_suffix: image file ending(s), e.g. '.jpg' or ('.jpg', '.png').
        seg_suffix: label file ending, e.g. '.png' or '_gtFine_labelTrainIds.png'.
        reduce_zero_label: map 0 -> 255 (ignore) and k -> k - 1 (ADE20K), after ``label_map``.
        pipeline: default transform for :meth:`get` / ``__getitem__``.
        ignore_index: the stored label value meaning "ignore"; mapped to 255 when it differs.
        split_file: a file of sample names under ``root`` (mmseg's ``split=``); otherwise every
            image under ``img_dir/split`` with a label of the same relative name.
        label_map: stored value -> class id (e.g. COCO-Stuff raw ids); a value not in it is an error.
        sources: several folder pairs making one split (VOC + SBD); replaces the folder arguments.
        ann_exclude: label file endings to skip while listing ``ann_dir``.

    The folder structure is checked at construction (every image needs a label and vice versa);
    file contents are checked when a sample is read.
    """

    def __init__(self, root: str, split: str, classes: Sequence[str], palette: Optional[Sequence] = None,
                 img_dir: str = "images", ann_dir: str = "annotations", img_suffix: Suffixes = (".jpg", ".png"),
                 seg_suffix: str = ".png", reduce_zero_label: bool = False, pipeline: Optional[Pipeline] = None,
                 ignore_index: int = IGNORE_INDEX, *, split_file: Optional[str] = None,
                 label_map: Optional[Mapping[int, int]] = None, sources: Optional[Sequence[SplitSource]] = None,
                 ann_exclude: Sequence[str] = ()):
        self.root = str(root)
        self.split = split
        self.classes = tuple(classes)
        if not self.classes:
            raise ValueError("a dataset needs at least one class")
        self.palette = None if palette is None else tuple(tuple(int(c) for c in p) for p in palette)
        if self.palette is not None and len(self.palette) != len(self.classes):
            raise ValueError(f"palette has {len(self.palette)} colours for {len(self.classes)} classes")
        if not 0 <= int(ignore_index) <= 255:
            raise ValueError(f"ignore_index must be in 0..255 (labels are 8-bit), got {ignore_index}")
        self.img_suffix = (img_suffix,) if isinstance(img_suffix, str) else tuple(img_suffix)
        self.seg_suffix = seg_suffix
        self.reduce_zero_label = bool(reduce_zero_label)
        self.pipeline = pipeline
        self.ignore_index = int(ignore_index)
        self.label_map = None if label_map is None else {int(k): int(v) for k, v in label_map.items()}
        self._table = _label_table(self.label_map, self.ignore_index)
        if sources is None:
            sources = [SplitSource(os.path.join(self.root, img_dir, split), os.path.join(self.root, ann_dir, split),
                                   None if split_file is None else os.path.join(self.root, split_file))]
        self.sources = [SplitSource(os.path.normpath(s.img_dir), os.path.normpath(s.ann_dir), s.split_file)
                        for s in sources]
        self.img_dir, self.ann_dir = self.sources[0].img_dir, self.sources[0].ann_dir
        self.ann_exclude = tuple(ann_exclude)
        self.samples: List[Tuple[str, str]] = self._scan()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _scan(self) -> List[Tuple[str, str]]:
        if not os.path.isdir(self.root):
            raise DataError(f"{self.root}: dataset root does not exist")
        where = f"split {self.split!r}" if self.split else "the split"
        samples: List[Tuple[str, str]] = []
        for source in self.sources:
            for folder, what in ((source.img_dir, "image"), (source.ann_dir, "annotation")):
                if not os.path.isdir(folder):
                    raise DataError(f"{folder}: {what} folder for {where} does not exist")
            if source.split_file is not None:
                samples += _pairs_from_split_file(source, self.img_suffix, self.seg_suffix)
            else:
                samples += _pairs_from_folders(source, self.img_suffix, self.seg_suffix, self.ann_exclude,
                                               self.split)
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def filename(self, index: int) -> str:
        return self.samples[index][0]

    def load_label(self, index: int) -> np.ndarray:
        """The label map as class ids (label_map, ignore_index, reduce_zero_label applied),
        range-checked."""
        path = self.samples[index][1]
        label = read_label(path)
        if self._table is not None:
            mapped = self._table[label]
            if mapped.size and int(mapped.min()) < 0:
                values = np.unique(label[mapped < 0])
                what = "are not in data.label_map" if self.label_map is not None else \
                    f"are not class ids (the ignore value is {self.ignore_index})"
                raise DataError(f"{path}: stored label values {values[:10].tolist()} {what}")
            label = mapped.astype(np.uint8)
        if self.reduce_zero_label:
            label = reduce_zero_label(label)
        # Cheap test first: the full mask is only built when something is >= num_classes.
        if label.size and int(label.max()) >= self.num_classes:
            bad = (label >= self.num_classes) & (label != IGNORE_INDEX)
            if bad.any():
                values = np.unique(label[bad])
                after = " after reduce_zero_label" if self.reduce_zero_label else ""
                raise DataError(f"{path}: label values {values[:10].tolist()} are out of range{after}; expected "
                                f"0..{self.num_classes - 1} or {IGNORE_INDEX} (ignore)")
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
            pipeline: Optional[Pipeline] = None, dtype: Optional[type] = np.float32) -> Dict[str, Any]:
        """Load sample ``index`` and run ``pipeline`` (default: the dataset's,
        else plain normalisation) with ``rng`` (default: a fresh unseeded one).

        Returns 'img' (float32 (3, H, W); ``dtype=None`` keeps the pipeline's dtype), 'gt_seg'
        (uint8 (H, W)), 'filename', 'ori_shape' (h, w), plus whatever the pipeline recorded (e.g. 'flip').
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
        results["img"] = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=dtype)
        results["gt_seg"] = np.ascontiguousarray(results["gt_seg"])
        return results

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.get(index)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={self.root!r}, split={self.split!r}, {len(self)} samples, "
                f"{self.num_classes} classes, reduce_zero_label={self.reduce_zero_label})")
