"""Train-time image/label transforms with mmseg (cv2-backed) semantics, in pure NumPy.

Conventions (the same as mmseg's, which reads images with cv2):

* images are BGR ``uint8`` arrays of shape (H, W, 3) until :class:`Normalize`,
  which turns them into RGB ``float32`` (H, W, 3);
* labels are ``uint8`` arrays of shape (H, W); 255 is the ignore value;
* sizes written as ``(w, h)`` are (width, height) like cv2/mmcv; crop and pad
  sizes are ``(h, w)`` like mmseg's ``crop_size``;
* every random transform is a callable ``t(results, rng)`` that draws only
  from the ``np.random.Generator`` it is given, so a sample is a pure function
  of its rng seed.

The cv2-exact pixel arithmetic lives in :mod:`.cv2_compat`, the test-time
views in :mod:`.eval_views`. This module must not import cv2, torch or jittor
(it runs in loader workers).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cv2_compat import (Size, Window, bgr2hsv_planes, check_size, cv2_resize_bilinear, cv2_resize_nearest,
                         hsv2bgr_planes)

Results = Dict[str, Any]

# mmseg ADE20K/Cityscapes normalisation constants (RGB order).
IMAGENET_MEAN: Tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: Tuple[float, float, float] = (58.395, 57.12, 57.375)


# --------------------------------------------------------------------------
# mmcv / mmseg size rules
# --------------------------------------------------------------------------


def scale_size(w: int, h: int, factor: float) -> Size:
    """mmcv ``_scale_size``: (int(w*f + 0.5), int(h*f + 0.5))."""
    return int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)


def rescale_size(w: int, h: int, scale, keep_ratio: bool = True) -> Size:
    """Target (w, h) of mmcv's Resize for an image of size (w, h).

    ``scale`` is a number (a plain scale factor) or a (long, short) edge pair
    in either order. With ``keep_ratio`` the factor is
    min(long_t / long_side, short_t / short_side) (mmcv ``rescale_size``);
    without it the image is stretched to ``scale`` (w, h).
    """
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        if scale <= 0:
            raise ValueError(f"scale factor must be positive, got {scale}")
        return scale_size(w, h, scale)
    sw, sh = check_size(scale, "scale")
    if not keep_ratio:
        return sw, sh
    factor = min(max(sw, sh) / max(w, h), min(sw, sh) / min(w, h))
    return scale_size(w, h, factor)


def multiple_size(w: int, h: int, divisor: int) -> Size:
    """(ceil(w/d)*d, ceil(h/d)*d)."""
    return int(math.ceil(w / divisor)) * divisor, int(math.ceil(h / divisor)) * divisor


def resize_to_multiple(img: np.ndarray, size_divisor: int = 32) -> np.ndarray:
    """mmseg ``ResizeToMultiple``: bilinearly stretch to ceil multiples."""
    h, w = img.shape[:2]
    return cv2_resize_bilinear(img, multiple_size(w, h, size_divisor))


def pad_to(arr: np.ndarray, shape_hw: Size, value: float) -> np.ndarray:
    """Pad bottom/right to (h, w) with a constant (no-op when already there)."""
    h, w = arr.shape[:2]
    th, tw = shape_hw
    if th < h or tw < w:
        raise ValueError(f"cannot pad an array of size {(h, w)} to the smaller size {(th, tw)}")
    if (th, tw) == (h, w):
        return arr
    out = np.empty_like(arr, shape=(th, tw) + arr.shape[2:])  # keeps a CHW-backed layout
    out[...] = value
    out[:h, :w] = arr
    return out


# --------------------------------------------------------------------------
# Train pipeline
# --------------------------------------------------------------------------


def _check_image(results: Results, who: str) -> np.ndarray:
    img = results.get("img")
    if not isinstance(img, np.ndarray) or img.ndim != 3:
        raise ValueError(f"{who}: results['img'] must be an (H, W, C) array ({results.get('filename', '?')})")
    return img


class Compose:
    """Apply transforms in order: ``results = t(results, rng)``."""

    def __init__(self, transforms: Sequence[Callable[[Results, np.random.Generator], Results]]):
        self.transforms = list(transforms)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        for t in self.transforms:
            results = t(results, rng)
        return results

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomResize:
    """mmseg RandomResize(scale, ratio_range, keep_ratio=True).

    r ~ U[lo, hi); target (int(sw*r), int(sh*r)); keep-ratio size by
    :func:`rescale_size`; image bilinear, label nearest.
    """

    def __init__(self, scale: Size = (2048, 512), ratio_range: Tuple[float, float] = (0.5, 2.0),
                 keep_ratio: bool = True):
        self.scale = check_size(scale, "scale")
        lo, hi = float(ratio_range[0]), float(ratio_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"ratio_range must satisfy 0 < lo <= hi, got {ratio_range}")
        self.ratio_range = (lo, hi)
        self.keep_ratio = keep_ratio

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        img = _check_image(results, "RandomResize")
        lo, hi = self.ratio_range
        r = rng.random() * (hi - lo) + lo
        target = (int(self.scale[0] * r), int(self.scale[1] * r))
        h, w = img.shape[:2]
        size = rescale_size(w, h, target, self.keep_ratio)
        results["img"] = cv2_resize_bilinear(img, size)
        if "gt_seg" in results:
            results["gt_seg"] = cv2_resize_nearest(results["gt_seg"], size)
        results["scale"] = target
        results["img_shape"] = results["img"].shape[:2]
        return results

    def __repr__(self) -> str:
        return f"RandomResize(scale={self.scale}, ratio_range={self.ratio_range}, keep_ratio={self.keep_ratio})"


class RandomCrop:
    """mmseg RandomCrop(crop_size=(h, w), cat_max_ratio, ignore_index).

    Offsets ~ randint(0, max(H - ch, 0) + 1), height first. With
    cat_max_ratio < 1 the crop is redrawn up to 10 times until its label
    histogram (ignore excluded) has more than one class and the largest is
    below cat_max_ratio of the counted pixels; after 10 failures the 11th
    draw is used. Images smaller than the crop give a smaller crop.
    """

    def __init__(self, crop_size: Size = (512, 512), cat_max_ratio: float = 0.75, ignore_index: int = 255):
        ch, cw = int(crop_size[0]), int(crop_size[1])
        if ch <= 0 or cw <= 0:
            raise ValueError(f"crop_size must be positive (h, w), got {crop_size}")
        self.crop_size = (ch, cw)
        self.cat_max_ratio = float(cat_max_ratio)
        self.ignore_index = int(ignore_index)

    def _draw(self, h: int, w: int, rng: np.random.Generator) -> Tuple[int, int, int, int]:
        ch, cw = self.crop_size
        oy = int(rng.integers(0, max(h - ch, 0) + 1))
        ox = int(rng.integers(0, max(w - cw, 0) + 1))
        return oy, oy + ch, ox, ox + cw

    def _acceptable(self, seg: np.ndarray) -> bool:
        counts = np.bincount(seg.ravel(), minlength=256)
        if 0 <= self.ignore_index < counts.size:
            counts[self.ignore_index] = 0
        counts = counts[counts > 0]
        return counts.size > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def choose_box(self, seg: Optional[np.ndarray], h: int, w: int, rng: np.random.Generator) -> Window:
        """(y1, y2, x1, x2) of the crop inside an (h, w) image, clipped to it."""
        box = self._draw(h, w, rng)
        if self.cat_max_ratio < 1.0 and seg is not None:
            for _ in range(10):
                y1, y2, x1, x2 = box
                if self._acceptable(seg[y1:y2, x1:x2]):
                    break
                box = self._draw(h, w, rng)
        y1, y2, x1, x2 = box
        return y1, min(y2, h), x1, min(x2, w)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        img = _check_image(results, "RandomCrop")
        h, w = img.shape[:2]
        seg = results.get("gt_seg")
        y1, y2, x1, x2 = self.choose_box(seg, h, w, rng)
        results["img"] = img[y1:y2, x1:x2]
        if seg is not None:
            results["gt_seg"] = seg[y1:y2, x1:x2]
        results["img_shape"] = results["img"].shape[:2]
        return results

    def __repr__(self) -> str:
        return f"RandomCrop(crop_size={self.crop_size}, cat_max_ratio={self.cat_max_ratio})"


class RandomResizeCrop:
    """``RandomResize`` followed by ``RandomCrop``, computing only the crop.

    Same random draws in the same order and bit-identical output; the
    bilinear resize is evaluated on the crop window only (the label is
    resized whole, which is cheap, because the crop check needs it).
    """

    def __init__(self, resize: RandomResize, crop: RandomCrop):
        self.resize = resize
        self.crop = crop

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        img = _check_image(results, "RandomResizeCrop")
        lo, hi = self.resize.ratio_range
        r = rng.random() * (hi - lo) + lo
        target = (int(self.resize.scale[0] * r), int(self.resize.scale[1] * r))
        h, w = img.shape[:2]
        rw, rh = rescale_size(w, h, target, self.resize.keep_ratio)
        seg = results.get("gt_seg")
        if seg is not None:
            seg = cv2_resize_nearest(seg, (rw, rh))
        box = self.crop.choose_box(seg, rh, rw, rng)
        results["img"] = cv2_resize_bilinear(img, (rw, rh), window=box)
        if seg is not None:
            y1, y2, x1, x2 = box
            results["gt_seg"] = seg[y1:y2, x1:x2]
        results["scale"] = target
        results["img_shape"] = results["img"].shape[:2]
        return results

    def __repr__(self) -> str:
        return f"RandomResizeCrop({self.resize!r}, {self.crop!r})"


class RandomFlip:
    """Horizontal flip of image and label together with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = float(prob)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        img = _check_image(results, "RandomFlip")
        flip = bool(rng.random() < self.prob)
        if flip:
            results["img"] = img[:, ::-1]
            if "gt_seg" in results:
                results["gt_seg"] = results["gt_seg"][:, ::-1]
        results["flip"] = flip
        return results

    def __repr__(self) -> str:
        return f"RandomFlip(prob={self.prob})"


def _convert(img: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    # mmseg: float32 math, clip, then truncating cast to uint8.
    out = img.astype(np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(out, 0, 255).astype(np.uint8)


_BYTE_VALUES = np.arange(256, dtype=np.uint8)


def _convert_table(alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """:func:`_convert` of every uint8 value: the same float32 arithmetic, looked up per pixel
    (one gather instead of five float32 passes)."""
    return _convert(_BYTE_VALUES, alpha, beta)


def _compose_tables(first: Optional[np.ndarray], then: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """The table of ``then(first(x))``; None stands for the identity."""
    if first is None or then is None:
        return then if first is None else first
    return np.take(then, first)


def _apply_table(planes: np.ndarray, table: Optional[np.ndarray]) -> np.ndarray:
    """``table[planes]`` (or the planes) as a contiguous (3, H, W) array."""
    return np.ascontiguousarray(planes) if table is None else np.take(table, planes, mode="clip")


class PhotoMetricDistortion:
    """mmseg PhotoMetricDistortion on a BGR uint8 image.

    Order: brightness (p=½); mode = randint(2); contrast if mode == 1 (p=½);
    saturation (p=½, cv2 HSV); hue (p=½, H + randint(-d, d) which draws from
    [-d, d-1], mod 180); contrast if mode == 0 (p=½).

    Works on a planar (3, H, W) copy (every step a contiguous per-channel pass) and returns an
    (H, W, 3) view of it, which :func:`normalize_image` reads plane by plane.
    """

    def __init__(self, brightness_delta: int = 32, contrast_range: Tuple[float, float] = (0.5, 1.5),
                 saturation_range: Tuple[float, float] = (0.5, 1.5), hue_delta: int = 18):
        self.brightness_delta = int(brightness_delta)
        self.contrast_lower, self.contrast_upper = (float(x) for x in contrast_range)
        self.saturation_lower, self.saturation_upper = (float(x) for x in saturation_range)
        self.hue_delta = int(hue_delta)

    def _brightness_table(self, rng: np.random.Generator) -> Optional[np.ndarray]:
        if rng.integers(2):
            d = self.brightness_delta
            return _convert_table(beta=rng.uniform(-d, d))
        return None

    def _contrast_table(self, rng: np.random.Generator) -> Optional[np.ndarray]:
        if rng.integers(2):
            return _convert_table(alpha=rng.uniform(self.contrast_lower, self.contrast_upper))
        return None

    def _saturate(self, planes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hsv = bgr2hsv_planes(*planes)
        table = _convert_table(alpha=rng.uniform(self.saturation_lower, self.saturation_upper))
        np.take(table, hsv[1], out=hsv[1], mode="clip")  # uint8 indices: in range
        return hsv2bgr_planes(*hsv)

    def _shift_hue(self, planes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hsv = bgr2hsv_planes(*planes)
        shift = int(rng.integers(-self.hue_delta, self.hue_delta))
        table = ((np.arange(256, dtype=np.int64) + shift) % 180).astype(np.uint8)
        np.take(table, hsv[0], out=hsv[0], mode="clip")
        return hsv2bgr_planes(*hsv)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        img = _check_image(results, "PhotoMetricDistortion")
        if img.dtype != np.uint8 or img.shape[2] != 3:
            raise ValueError(f"PhotoMetricDistortion expects a BGR uint8 image, got {img.dtype} {img.shape} "
                             f"({results.get('filename', '?')})")
        # Brightness and contrast are per-value tables: consecutive ones are composed, and applied
        # while making the planar copy an HSV step needs (one pass where there were up to three).
        # The random draws keep mmseg's order.
        planes, table = img.transpose(2, 0, 1), self._brightness_table(rng)
        mode = rng.integers(2)
        if mode == 1:
            table = _compose_tables(table, self._contrast_table(rng))
        if rng.integers(2):
            planes, table = self._saturate(_apply_table(planes, table), rng), None
        if rng.integers(2):
            planes, table = self._shift_hue(_apply_table(planes, table), rng), None
        if mode == 0:
            table = _compose_tables(table, self._contrast_table(rng))
        results["img"] = _apply_table(planes, table).transpose(1, 2, 0)
        return results

    def __repr__(self) -> str:
        return (f"PhotoMetricDistortion(brightness_delta={self.brightness_delta}, "
                f"contrast_range={(self.contrast_lower, self.contrast_upper)}, "
                f"saturation_range={(self.saturation_lower, self.saturation_upper)}, hue_delta={self.hue_delta})")


def normalize_image(img: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                    to_rgb: bool = True) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> float32 (H, W, 3): (x - mean) / std, RGB if to_rgb.

    Same arithmetic as mmseg 1.x SegDataPreProcessor (float32 divide). The
    result is a (H, W, 3) view of a contiguous (3, H, W) array, so the final
    transpose to CHW costs nothing.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"normalize expects an (H, W, 3) image, got shape {img.shape}")
    h, w = img.shape[:2]
    out = np.empty((3, h, w), dtype=np.float32)
    normalize_into(out, lambda k: img[..., k], mean, std, to_rgb)
    return out.transpose(1, 2, 0)


def normalize_into(out: np.ndarray, channel: Callable[[int], np.ndarray], mean: Sequence[float],
                   std: Sequence[float], to_rgb: bool) -> None:
    """out[c] = (channel(k) - mean[c]) / std[c] in float32 (subtract, then divide), k = 2 - c when
    to_rgb: the one copy of the normalisation, for a sample here and for a batch in .transport."""
    for c in range(3):
        np.subtract(channel(2 - c if to_rgb else c), np.float32(mean[c]), out=out[c], dtype=np.float32)
        out[c] /= np.float32(std[c])


class Normalize:
    """BGR uint8 -> normalised float32 (RGB when ``to_rgb``)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 to_rgb: bool = True):
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.to_rgb = bool(to_rgb)

    def __call__(self, results: Results, rng: Optional[np.random.Generator] = None) -> Results:
        img = _check_image(results, "Normalize")
        results["img"] = normalize_image(img, self.mean, self.std, self.to_rgb)
        return results

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std}, to_rgb={self.to_rgb})"


class Pad:
    """Pad bottom/right to ``size`` = (h, w) and/or to a multiple of ``size_divisor``.

    Image pad value ``pad_val`` (0 after normalisation, as in mmseg), label
    pad value ``seg_pad_val`` (255 = ignore).
    """

    def __init__(self, size: Optional[Size] = None, size_divisor: Optional[int] = None,
                 pad_val: float = 0, seg_pad_val: int = 255):
        if size is None and size_divisor is None:
            raise ValueError("Pad needs size or size_divisor")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.size_divisor = size_divisor
        self.pad_val = pad_val
        self.seg_pad_val = int(seg_pad_val)

    def target_shape(self, h: int, w: int) -> Size:
        """(h, w) after padding an (h, w) image."""
        th, tw = self.size if self.size is not None else (h, w)
        th, tw = max(th, h), max(tw, w)
        if self.size_divisor:
            tw, th = multiple_size(tw, th, self.size_divisor)
        return th, tw

    def __call__(self, results: Results, rng: Optional[np.random.Generator] = None) -> Results:
        img = _check_image(results, "Pad")
        th, tw = self.target_shape(*img.shape[:2])
        results["img"] = pad_to(img, (th, tw), self.pad_val)
        if "gt_seg" in results:
            results["gt_seg"] = pad_to(results["gt_seg"], (th, tw), self.seg_pad_val)
        results["pad_shape"] = (th, tw)
        return results

    def __repr__(self) -> str:
        return f"Pad(size={self.size}, size_divisor={self.size_divisor}, pad_val={self.pad_val}, " \
               f"seg_pad_val={self.seg_pad_val})"


def build_train_pipeline(crop_size: Size = (512, 512), scale: Size = (2048, 512),
                         ratio_range: Tuple[float, float] = (0.5, 2.0), cat_max_ratio: float = 0.75,
                         flip_prob: float = 0.5, mean: Sequence[float] = IMAGENET_MEAN,
                         std: Sequence[float] = IMAGENET_STD, photometric: bool = True,
                         fused: bool = True) -> Compose:
    """The SegNeXt ADE20K train pipeline (docs/design.md §4.2, after loading).

    ``fused`` uses :class:`RandomResizeCrop` in place of the equivalent
    RandomResize + RandomCrop pair.
    """
    resize = RandomResize(scale=scale, ratio_range=ratio_range, keep_ratio=True)
    crop = RandomCrop(crop_size=crop_size, cat_max_ratio=cat_max_ratio)
    # RandomResizeCrop == [resize, crop], bit for bit, but cheaper.
    steps: List[Callable] = [RandomResizeCrop(resize, crop) if fused else resize] + ([] if fused else [crop])
    steps.append(RandomFlip(prob=flip_prob))
    if photometric:
        steps.append(PhotoMetricDistortion())
    steps += [Normalize(mean, std, to_rgb=True), Pad(size=crop_size, pad_val=0, seg_pad_val=255)]
    return Compose(steps)
