"""Image/label transforms with mmseg (cv2-backed) semantics, in pure NumPy.

Conventions (the same as mmseg's, which reads images with cv2):

* images are BGR ``uint8`` arrays of shape (H, W, 3) until :class:`Normalize`,
  which turns them into RGB ``float32`` (H, W, 3);
* labels are ``uint8`` arrays of shape (H, W); 255 is the ignore value;
* sizes written as ``(w, h)`` are (width, height) like cv2/mmcv; crop and pad
  sizes are ``(h, w)`` like mmseg's ``crop_size``;
* every random transform is a callable ``t(results, rng)`` that draws only
  from the ``np.random.Generator`` it is given, so a sample is a pure function
  of its rng seed.

This module must not import cv2, torch or jittor (it runs in loader workers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

Results = Dict[str, Any]
Size = Tuple[int, int]

# mmseg ADE20K/Cityscapes normalisation constants (RGB order).
IMAGENET_MEAN: Tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: Tuple[float, float, float] = (58.395, 57.12, 57.375)

# cv2's fixed-point resize weights: INTER_RESIZE_COEF_BITS = 11.
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


# --------------------------------------------------------------------------
# cv2-compatible resizing
# --------------------------------------------------------------------------


def _check_size(size: Sequence[int], what: str = "size") -> Size:
    if len(size) != 2:
        raise ValueError(f"{what} must be (w, h), got {size!r}")
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return w, h


def _linear_taps(src_len: int, dst_len: int) -> Tuple[np.ndarray, np.ndarray]:
    """cv2's per-output source index ``s = floor(f)`` and float32 fraction
    ``f - s`` with ``f = (d + 0.5) * scale - 0.5``, before border handling."""
    # cv2: inv_scale = dst/src in double, scale = 1/inv_scale (not src/dst:
    # the two can differ in the last bit).
    scale = 1.0 / (dst_len / src_len)
    d = np.arange(dst_len, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)  # (float) cast in cv2
    s = np.floor(f).astype(np.int64)
    f = f - s.astype(np.float32)  # exact in float32
    return s, f


def _x_taps(src_len: int, dst_len: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, f = _linear_taps(src_len, dst_len)
    # cv2 (x axis): before the first / past the last pixel the weight collapses
    # onto the border pixel (fx = 0).
    low = s < 0
    high = s >= src_len - 1
    f = np.where(low | high, np.float32(0), f).astype(np.float32)
    s = np.where(low, 0, np.where(high, src_len - 1, s))
    i1 = np.minimum(s + 1, src_len - 1)
    return s, i1, f


def _y_taps(src_len: int, dst_len: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, f = _linear_taps(src_len, dst_len)
    # cv2 (y axis): fy is kept, the two source rows are clamped to the image.
    i0 = np.clip(s, 0, src_len - 1)
    i1 = np.clip(s + 1, 0, src_len - 1)
    return i0, i1, f


def _fixed_weights(f: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    # saturate_cast<short>(w * 2048): round half to even, like np.rint.
    one = np.float32(1.0)
    scale = np.float32(_COEF_SCALE)
    w0 = np.rint((one - f) * scale).astype(np.int32)
    w1 = np.rint(f * scale).astype(np.int32)
    return w0, w1


Window = Tuple[int, int, int, int]  # (y1, y2, x1, x2) in output pixels


def _check_window(window: Optional[Window], w: int, h: int) -> Window:
    if window is None:
        return 0, h, 0, w
    y1, y2, x1, x2 = (int(v) for v in window)
    if not (0 <= y1 < y2 <= h and 0 <= x1 < x2 <= w):
        raise ValueError(f"window {window} is not a non-empty region of the output size (w={w}, h={h})")
    return y1, y2, x1, x2


def resize_bilinear(img: np.ndarray, size: Sequence[int], window: Optional[Window] = None) -> np.ndarray:
    """Resize like ``cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)``.

    ``size`` is (w, h). Half-pixel centres, no antialiasing, borders
    replicated. Works on (H, W) and (H, W, C) arrays. ``window`` =
    (y1, y2, x1, x2) computes only that region of the resized image (the
    result equals ``resize_bilinear(img, size)[y1:y2, x1:x2]``).

    * ``uint8``: cv2's fixed-point path. Weights are rounded to 1/2048; the
      horizontal pass keeps exact int32 sums S; the vertical pass uses cv2's
      SIMD arithmetic ``((S0>>4)*b0 >> 16) + ((S1>>4)*b1 >> 16)`` rounded by
      ``(x+2) >> 2``. Bit-exact with opencv-python-headless 4.8.1 and 4.10
      (x86-64 wheels) on ~400 random shapes/scales, 1-4 channels, including
      512x683 <-> 2x, 1/2x and ResizeToMultiple sizes. cv2's scalar
      rounding ``(S0*b0 + S1*b1 + 2**21) >> 22``, which builds without SIMD
      use, can differ by 1 grey level on some pixels.
    * floating point: the same taps in plain float math (float32 stays
      float32, float64 stays float64). Bit-exact with cv2 when cv2 runs
      without IPP; the pip wheels use IPP for float32, which differs by
      ~3e-5 relative.
    """
    w, h = _check_size(size)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"resize_bilinear expects an (H, W) or (H, W, C) array, got shape {img.shape}")
    if img.dtype not in (np.uint8, np.float32, np.float64):
        raise TypeError(f"resize_bilinear supports uint8, float32 and float64 arrays, got {img.dtype}")
    wy1, wy2, wx1, wx2 = _check_window(window, w, h)
    src_h, src_w = img.shape[:2]
    if (src_w, src_h) == (w, h):
        return img[wy1:wy2, wx1:wx2].copy()  # cv2 copies when the size is unchanged
    x0, x1, fx = (a[wx1:wx2] for a in _x_taps(src_w, w))
    y0, y1, fy = (a[wy1:wy2] for a in _y_taps(src_h, h))
    out_w, out_h = wx2 - wx1, wy2 - wy1
    cn = img.shape[2] if img.ndim == 3 else 1

    # Work on the flat (rows, W*C) layout cv2 uses; only the source rows that
    # are needed go through the horizontal pass (a win when downscaling or
    # computing a window).
    rows, inv = np.unique(np.concatenate([y0, y1]), return_inverse=True)
    r0, r1 = inv[:out_h], inv[out_h:]
    flat = img.reshape(src_h, src_w * cn)[rows]
    ch = np.arange(cn)
    cols0 = (x0[:, None] * cn + ch).ravel()
    cols1 = (x1[:, None] * cn + ch).ravel()

    if img.dtype == np.uint8:
        ax0, ax1 = (np.repeat(a, cn) for a in _fixed_weights(fx))
        by0, by1 = (b[:, None] for b in _fixed_weights(fy))
        # Horizontal: exact int32 sums (at most 255 * 2048), pre-shifted by 4
        # as cv2's vertical SIMD kernel does.
        hs = np.take(flat, cols0, axis=1).astype(np.int32)
        hs *= ax0
        tmp = np.take(flat, cols1, axis=1).astype(np.int32)
        tmp *= ax1
        hs += tmp
        hs >>= 4
        # Vertical: keep the high 16 bits of each product, round off 2 bits.
        out = np.take(hs, r0, axis=0)
        out *= by0
        out >>= 16
        tmp = np.take(hs, r1, axis=0)
        tmp *= by1
        tmp >>= 16
        out += tmp
        out += 2
        out >>= 2
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8).reshape((out_h, out_w) + img.shape[2:])

    dt = img.dtype.type
    one = dt(1.0)
    fx_t = np.repeat(fx.astype(dt), cn)
    fy_t = fy.astype(dt)[:, None]
    hs = np.take(flat, cols0, axis=1) * (one - fx_t) + np.take(flat, cols1, axis=1) * fx_t
    out = np.take(hs, r0, axis=0) * (one - fy_t) + np.take(hs, r1, axis=0) * fy_t
    return out.astype(dt, copy=False).reshape((out_h, out_w) + img.shape[2:])


def _nearest_index(src_len: int, dst_len: int) -> np.ndarray:
    # cv2 INTER_NEAREST: floor(dst * (1 / (dst_len / src_len))), clipped.
    scale = 1.0 / (dst_len / src_len)
    return np.minimum(np.floor(np.arange(dst_len) * scale).astype(np.int64), src_len - 1)


def resize_nearest(label: np.ndarray, size: Sequence[int], window: Optional[Window] = None) -> np.ndarray:
    """Resize like ``cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)``.

    src = floor(dst * (1 / (dst_len / src_len))), clipped to the last pixel.
    ``window`` as in :func:`resize_bilinear`.
    """
    w, h = _check_size(size)
    if label.ndim not in (2, 3) or label.shape[0] == 0 or label.shape[1] == 0:
        raise ValueError(f"resize_nearest expects an (H, W) or (H, W, C) array, got shape {label.shape}")
    y1, y2, x1, x2 = _check_window(window, w, h)
    src_h, src_w = label.shape[:2]
    xs = _nearest_index(src_w, w)[x1:x2]
    ys = _nearest_index(src_h, h)[y1:y2]
    return np.take(np.take(label, ys, axis=0), xs, axis=1)


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
    sw, sh = _check_size(scale, "scale")
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
    return resize_bilinear(img, multiple_size(w, h, size_divisor))


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
# cv2 uint8 BGR <-> HSV (H in [0, 180))
# --------------------------------------------------------------------------

_HSV_SHIFT = 12


def _bgr2hsv_tables() -> Tuple[np.ndarray, np.ndarray]:
    """Lookup tables for cv2's 12-bit fixed-point RGB2HSV_b.

    S = (diff * round((255 << 12) / v) + 2048) >> 12, indexed by v << 8 | diff;
    H = (num * round((180 << 12) / (6 diff)) + 2048) >> 12 (+180 if < 0),
    indexed by (num + 255) << 8 | diff with num in [-255, 1275].
    """
    half = 1 << (_HSV_SHIFT - 1)
    i = np.arange(256, dtype=np.float64)
    with np.errstate(divide="ignore"):
        sdiv = np.where(i > 0, np.rint((255 << _HSV_SHIFT) / i), 0).astype(np.int64)
        hdiv = np.where(i > 0, np.rint((180 << _HSV_SHIFT) / (6.0 * i)), 0).astype(np.int64)
    v = np.arange(256)[:, None]
    diff = np.arange(256)[None, :]
    s_lut = np.where(diff <= v, (diff * sdiv[v] + half) >> _HSV_SHIFT, 0)
    num = np.arange(-255, 1276)[:, None]
    h = (num * hdiv[diff] + half) >> _HSV_SHIFT
    h_lut = np.where(h < 0, h + 180, h)
    return s_lut.astype(np.uint8).ravel(), np.clip(h_lut, 0, 255).astype(np.uint8).ravel()


_S_LUT, _H_LUT = _bgr2hsv_tables()


def bgr2hsv(img: np.ndarray) -> np.ndarray:
    """cv2.cvtColor(img, COLOR_BGR2HSV) for uint8 (H in [0, 180)).

    Bit-exact with opencv-python 4.x on a 256 x 256 x 52 grid of colours.
    """
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"bgr2hsv expects a uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    v = np.maximum(np.maximum(b, g), r)
    diff = (v - np.minimum(np.minimum(b, g), r)).astype(np.int32)
    s = np.take(_S_LUT, (v.astype(np.int32) << 8) | diff)
    bi, gi, ri = b.astype(np.int32), g.astype(np.int32), r.astype(np.int32)
    # cv2 tests v == r first, then v == g.
    num = np.where(v == r, gi - bi, np.where(v == g, bi - ri + 2 * diff, ri - gi + 4 * diff))
    num += 255
    num <<= 8
    num |= diff
    out = np.empty(img.shape, dtype=np.uint8)
    out[..., 0] = np.take(_H_LUT, num)
    out[..., 1] = s
    out[..., 2] = v
    return out


# cv2's sector table gives, per 60-degree sector, which of (v, p, q, t) goes
# to (b, g, r). Each sector uses v, p and one of q (odd sectors) / t (even
# ones), so we store per channel which of (v, p, mid) it takes, as a bit
# shift into a packed uint32 (v | p << 8 | mid << 16).
_SECTORS = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])
_SECTOR_SHIFTS = [np.ascontiguousarray(np.where(_SECTORS[:, c] == 0, 0, np.where(_SECTORS[:, c] == 1, 8, 16))
                                       .astype(np.uint32)) for c in range(3)]
_ODD_SECTOR = np.arange(6) % 2 == 1
_H_SCALED = np.arange(256, dtype=np.float32) * np.float32(6.0 / 180.0)  # cv2: h * (6.f / 180)
_H_SECTOR = (np.floor(_H_SCALED).astype(np.int64) % 6).astype(np.uint8)
_H_FRAC = (_H_SCALED - np.floor(_H_SCALED)).astype(np.float32)
_INV255 = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)
# cv2's AVX2 uint8 HSV->BGR kernel handles 32 pixels per step and truncates;
# the remaining ``width % 32`` pixels of each row go through the scalar code,
# which rounds.
_HSV_SIMD_BLOCK = 32


def _hsv_plane_to_u8(x: np.ndarray, simd_w: int) -> np.ndarray:
    x = x * np.float32(255.0)
    out = np.trunc(x)
    out[:, simd_w:] = np.rint(x[:, simd_w:])
    return np.clip(out, 0, 255).astype(np.uint32)


def hsv2bgr(hsv: np.ndarray) -> np.ndarray:
    """cv2.cvtColor(hsv, COLOR_HSV2BGR) for uint8 (float32 math, like cv2).

    Reproduces the x86-64 AVX2 build of opencv-python 4.x: identical on all
    but about 1 in 10^4 values (off by one) in our checks. On CPUs whose
    vector width differs, cv2's truncate/round split moves, which changes a
    few pixels per row by one grey level; irrelevant for augmentation.
    """
    if hsv.dtype != np.uint8 or hsv.ndim != 3 or hsv.shape[2] != 3:
        raise ValueError(f"hsv2bgr expects a uint8 (H, W, 3) image, got {hsv.dtype} {hsv.shape}")
    hue = hsv[..., 0]
    sector = np.take(_H_SECTOR, hue)
    frac = np.take(_H_FRAC, hue)
    s = np.take(_INV255, hsv[..., 1])
    v = np.take(_INV255, hsv[..., 2])
    one = np.float32(1.0)
    p = v * (one - s)
    # q = v(1 - s f) on odd sectors, t = v(1 - s(1 - f)) on even ones.
    mid = v * (one - s * np.where(np.take(_ODD_SECTOR, sector), frac, one - frac))
    simd_w = (hsv.shape[1] // _HSV_SIMD_BLOCK) * _HSV_SIMD_BLOCK
    packed = _hsv_plane_to_u8(v, simd_w)
    packed |= _hsv_plane_to_u8(p, simd_w) << 8
    packed |= _hsv_plane_to_u8(mid, simd_w) << 16
    out = np.empty(hsv.shape, dtype=np.uint8)
    for c in range(3):
        out[..., c] = (packed >> np.take(_SECTOR_SHIFTS[c], sector)) & 0xFF
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
        self.scale = _check_size(scale, "scale")
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
        results["img"] = resize_bilinear(img, size)
        if "gt_seg" in results:
            results["gt_seg"] = resize_nearest(results["gt_seg"], size)
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
            seg = resize_nearest(seg, (rw, rh))
        box = self.crop.choose_box(seg, rh, rw, rng)
        results["img"] = resize_bilinear(img, (rw, rh), window=box)
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


class PhotoMetricDistortion:
    """mmseg PhotoMetricDistortion on a BGR uint8 image.

    Order: brightness (p=½); mode = randint(2); contrast if mode == 1 (p=½);
    saturation (p=½, cv2 HSV); hue (p=½, H + randint(-d, d) which draws from
    [-d, d-1], mod 180); contrast if mode == 0 (p=½).
    """

    def __init__(self, brightness_delta: int = 32, contrast_range: Tuple[float, float] = (0.5, 1.5),
                 saturation_range: Tuple[float, float] = (0.5, 1.5), hue_delta: int = 18):
        self.brightness_delta = int(brightness_delta)
        self.contrast_lower, self.contrast_upper = (float(x) for x in contrast_range)
        self.saturation_lower, self.saturation_upper = (float(x) for x in saturation_range)
        self.hue_delta = int(hue_delta)

    def _brightness(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            d = self.brightness_delta
            return _convert(img, beta=rng.uniform(-d, d))
        return img

    def _contrast(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            return _convert(img, alpha=rng.uniform(self.contrast_lower, self.contrast_upper))
        return img

    def _saturation(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            hsv = bgr2hsv(img)
            hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(self.saturation_lower, self.saturation_upper))
            return hsv2bgr(hsv)
        return img

    def _hue(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            hsv = bgr2hsv(img)
            shift = int(rng.integers(-self.hue_delta, self.hue_delta))
            hsv[..., 0] = (hsv[..., 0].astype(np.int64) + shift) % 180
            return hsv2bgr(hsv)
        return img

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        img = _check_image(results, "PhotoMetricDistortion")
        if img.dtype != np.uint8 or img.shape[2] != 3:
            raise ValueError(f"PhotoMetricDistortion expects a BGR uint8 image, got {img.dtype} {img.shape} "
                             f"({results.get('filename', '?')})")
        img = self._brightness(img, rng)
        mode = rng.integers(2)
        if mode == 1:
            img = self._contrast(img, rng)
        img = self._saturation(img, rng)
        img = self._hue(img, rng)
        if mode == 0:
            img = self._contrast(img, rng)
        results["img"] = img
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
    for c in range(3):
        src = img[..., 2 - c] if to_rgb else img[..., c]
        np.subtract(src, np.float32(mean[c]), out=out[c], dtype=np.float32)
        out[c] /= np.float32(std[c])
    return out.transpose(1, 2, 0)


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

    def __call__(self, results: Results, rng: Optional[np.random.Generator] = None) -> Results:
        img = _check_image(results, "Pad")
        h, w = img.shape[:2]
        th, tw = self.size if self.size is not None else (h, w)
        th, tw = max(th, h), max(tw, w)
        if self.size_divisor:
            tw, th = multiple_size(tw, th, self.size_divisor)
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
    """The SegNeXt ADE20K train pipeline (spec §4.2, after loading).

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


# --------------------------------------------------------------------------
# Test-time resizing
# --------------------------------------------------------------------------

TEST_MODES = ("stretch", "pad")
TTA_RATIOS: Tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@dataclass(frozen=True)
class TestResizeInfo:
    """How a network input relates to the original image (all sizes (h, w)).

    To map logits back: resize them bilinearly to ``input_shape``, keep
    ``[:valid_shape[0], :valid_shape[1]]`` (the whole input for 'stretch'),
    undo the flip if ``flip``, then resize to ``ori_shape``.
    """

    mode: str
    ori_shape: Size
    resized_shape: Size  # after the keep-ratio resize, before stretch / pad
    input_shape: Size  # the network input
    valid_shape: Size  # top-left region of the input holding the image
    flip: bool

    __test__ = False  # not a pytest class


def _check_mode(mode: str) -> None:
    if mode not in TEST_MODES:
        raise ValueError(f"test mode must be one of {TEST_MODES}, got {mode!r}")


def test_resize(img: np.ndarray, scale: Size = (2048, 512), mode: str = "stretch", size_divisor: int = 32,
                size: Optional[Size] = None, flip: bool = False, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD, to_rgb: bool = True) -> Tuple[np.ndarray, TestResizeInfo]:
    """Build the network input for one test view of a BGR uint8 image.

    * 'stretch' (MM0/ORIG/JSEG, released numbers): keep-ratio resize to
      ``scale`` then ResizeToMultiple(size_divisor) (bilinear stretch).
    * 'pad' (MM1): keep-ratio resize, normalise, then pad bottom/right with 0
      to a multiple of ``size_divisor``.

    ``size`` = (w, h) overrides the keep-ratio target (use :func:`tta_scales`).
    ``flip`` flips horizontally after resizing and before padding, as the
    TTA pipelines do. Returns (float32 (3, H, W) normalised input, info).
    """
    _check_mode(mode)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"test_resize expects a BGR uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    rw, rh = _check_size(size) if size is not None else rescale_size(w, h, scale, keep_ratio=True)
    x = resize_bilinear(img, (rw, rh))
    if mode == "stretch":
        x = resize_to_multiple(x, size_divisor)
    if flip:
        x = x[:, ::-1]
    x = normalize_image(x, mean, std, to_rgb)
    if mode == "pad":
        pw, ph = multiple_size(rw, rh, size_divisor)
        x = pad_to(x, (ph, pw), 0.0)
    inp = np.ascontiguousarray(x.transpose(2, 0, 1))
    input_shape = (inp.shape[1], inp.shape[2])
    valid = input_shape if mode == "stretch" else (rh, rw)
    info = TestResizeInfo(mode=mode, ori_shape=(h, w), resized_shape=(rh, rw), input_shape=input_shape,
                          valid_shape=valid, flip=bool(flip))
    return inp, info


test_resize.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def tta_scales(orig_w: int, orig_h: int, ratios: Sequence[float] = TTA_RATIOS, mode: str = "stretch",
               scale: Size = (2048, 512)) -> List[Size]:
    """Keep-ratio resize target (w, h) per TTA ratio; pass each as ``size`` to
    :func:`test_resize` with the same ``mode``.

    * 'stretch' (MM0): rescale to (int(sw*r), int(sh*r)) keeping the ratio.
    * 'pad' (MM1): Resize(scale_factor=r, keep_ratio=True): mmcv first sets
      scale = (int(w*r+.5), int(h*r+.5)) and then rescales to it.
    """
    _check_mode(mode)
    out: List[Size] = []
    for r in ratios:
        if mode == "stretch":
            target = (int(scale[0] * r), int(scale[1] * r))
        else:
            target = scale_size(orig_w, orig_h, r)
        out.append(rescale_size(orig_w, orig_h, target, keep_ratio=True))
    return out
