"""cv2-exact image arithmetic in pure NumPy: bilinear / nearest resizing and uint8 BGR <-> HSV.

mmseg reads and resizes images with cv2; these functions reproduce cv2's results (bit-exact where
the docstrings say so) without importing cv2. Sizes are ``(w, h)`` like cv2's ``dsize``; a
``window`` is ``(y1, y2, x1, x2)`` in output pixels.

This module must not import cv2, torch or jittor (it runs in loader workers).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

Size = Tuple[int, int]
Window = Tuple[int, int, int, int]  # (y1, y2, x1, x2) in output pixels

# cv2's fixed-point resize weights: INTER_RESIZE_COEF_BITS = 11.
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


# --------------------------------------------------------------------------
# cv2-compatible resizing
# --------------------------------------------------------------------------


def check_size(size: Sequence[int], what: str = "size") -> Size:
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
    if w0.size and int(np.abs(w0 + w1 - _COEF_SCALE).max()) > 1:  # the uint8 path relies on it (no clip)
        raise AssertionError("cv2 resize weights must sum to 2048 +- 1")
    return w0, w1

def _check_window(window: Optional[Window], w: int, h: int) -> Window:
    if window is None:
        return 0, h, 0, w
    y1, y2, x1, x2 = (int(v) for v in window)
    if not (0 <= y1 < y2 <= h and 0 <= x1 < x2 <= w):
        raise ValueError(f"window {window} is not a non-empty region of the output size (w={w}, h={h})")
    return y1, y2, x1, x2


def cv2_resize_bilinear(img: np.ndarray, size: Sequence[int], window: Optional[Window] = None) -> np.ndarray:
    """Resize like ``cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)``.

    ``size`` is (w, h). Half-pixel centres, no antialiasing, borders
    replicated. Works on (H, W) and (H, W, C) arrays. ``window`` =
    (y1, y2, x1, x2) computes only that region of the resized image (the
    result equals ``cv2_resize_bilinear(img, size)[y1:y2, x1:x2]``).

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
    w, h = check_size(size)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"cv2_resize_bilinear expects an (H, W) or (H, W, C) array, got shape {img.shape}")
    if img.dtype not in (np.uint8, np.float32, np.float64):
        raise TypeError(f"cv2_resize_bilinear supports uint8, float32 and float64 arrays, got {img.dtype}")
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
        # No clip needed: each weight pair sums to 2048 +- 1 (two roundings of complements), which
        # bounds the result by 255 (255 * 2049 >> 4 = 32655; 32655 * 2049 / 2**16 < 1021; 1022 >> 2).
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


def cv2_resize_nearest(label: np.ndarray, size: Sequence[int], window: Optional[Window] = None) -> np.ndarray:
    """Resize like ``cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)``.

    src = floor(dst * (1 / (dst_len / src_len))), clipped to the last pixel.
    ``window`` as in :func:`cv2_resize_bilinear`.
    """
    w, h = check_size(size)
    if label.ndim not in (2, 3) or label.shape[0] == 0 or label.shape[1] == 0:
        raise ValueError(f"cv2_resize_nearest expects an (H, W) or (H, W, C) array, got shape {label.shape}")
    y1, y2, x1, x2 = _check_window(window, w, h)
    src_h, src_w = label.shape[:2]
    xs = _nearest_index(src_w, w)[x1:x2]
    ys = _nearest_index(src_h, h)[y1:y2]
    return np.take(np.take(label, ys, axis=0), xs, axis=1)



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
    planes = bgr2hsv_planes(*np.ascontiguousarray(img.transpose(2, 0, 1)))
    return np.ascontiguousarray(planes.transpose(1, 2, 0))


def bgr2hsv_planes(b: np.ndarray, g: np.ndarray, r: np.ndarray) -> np.ndarray:
    """:func:`bgr2hsv` on separate uint8 (H, W) planes; returns (3, H, W): H, S, V.

    Contiguous planes keep every step a SIMD loop (on an interleaved image each channel is a
    stride-3 view, several times slower).
    """
    v = np.maximum(np.maximum(b, g), r)
    diff = v - np.minimum(np.minimum(b, g), r)
    out = np.empty((3,) + v.shape, dtype=np.uint8)
    # S: one lookup at v << 8 | diff (a uint16 index).
    s_index = v.astype(np.uint16)
    s_index <<= 8
    s_index |= diff
    np.take(_S_LUT, s_index, out=out[1], mode="clip")  # indices in range: no check
    out[2] = v
    # H numerator in int16 (range -255..1275); cv2 tests v == r first, then v == g.
    d = diff.astype(np.int16)
    d += d
    num = np.subtract(r, g, dtype=np.int16)
    num += d
    num += d  # r - g + 4 diff
    np.add(np.subtract(b, r, dtype=np.int16), d, out=num, where=v == g)  # b - r + 2 diff
    np.subtract(g, b, out=num, where=v == r, dtype=np.int16)
    h_index = num.astype(np.int32)
    h_index += 255
    h_index <<= 8
    h_index |= diff
    np.take(_H_LUT, h_index, out=out[0], mode="clip")
    return out


# cv2's sector table gives, per 60-degree sector, which of (v, p, q, t) goes
# to (b, g, r). Each sector uses v, p and one of q (odd sectors) / t (even
# ones), so we store per channel which of (v, p, mid) it takes, as a bit
# shift into a packed uint32 (v | p << 8 | mid << 16), per hue value.
_SECTORS = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])
_H_SCALED = np.arange(256, dtype=np.float32) * np.float32(6.0 / 180.0)  # cv2: h * (6.f / 180)
_H_SECTOR = np.floor(_H_SCALED).astype(np.int64) % 6
_H_FRAC = (_H_SCALED - np.floor(_H_SCALED)).astype(np.float32)
# The factor of s in mid = v (1 - s * factor): f on odd sectors (q), 1 - f on even ones (t).
_MID_FACTOR = np.where(_H_SECTOR % 2 == 1, _H_FRAC, np.float32(1.0) - _H_FRAC).astype(np.float32)
_HUE_SHIFTS = [np.ascontiguousarray(np.where(_SECTORS[_H_SECTOR, c] == 0, 0,
                                             np.where(_SECTORS[_H_SECTOR, c] == 1, 8, 16)).astype(np.uint32))
               for c in range(3)]
_INV255 = np.float32(1.0 / 255.0)  # cv2 scales s and v by (1.f / 255)
# cv2's AVX2 uint8 HSV->BGR kernel handles 32 pixels per step and truncates;
# the remaining ``width % 32`` pixels of each row go through the scalar code,
# which rounds.
_HSV_SIMD_BLOCK = 32


def _hsv_plane_to_u8(x: np.ndarray, simd_w: int) -> np.ndarray:
    """x * 255 to uint8, truncated in the first simd_w columns and rounded after (x in [0, 1]
    up to float error: the products stay in (-1, 256), where the cast truncates like cv2)."""
    x *= np.float32(255.0)
    out = x.astype(np.uint8)
    if simd_w < x.shape[1]:
        out[:, simd_w:] = np.rint(x[:, simd_w:])
    return out


def hsv2bgr(hsv: np.ndarray) -> np.ndarray:
    """cv2.cvtColor(hsv, COLOR_HSV2BGR) for uint8 (float32 math, like cv2).

    Reproduces the x86-64 AVX2 build of opencv-python 4.x: identical on all
    but about 1 in 10^4 values (off by one) in our checks. On CPUs whose
    vector width differs, cv2's truncate/round split moves, which changes a
    few pixels per row by one grey level; irrelevant for augmentation.
    """
    if hsv.dtype != np.uint8 or hsv.ndim != 3 or hsv.shape[2] != 3:
        raise ValueError(f"hsv2bgr expects a uint8 (H, W, 3) image, got {hsv.dtype} {hsv.shape}")
    planes = hsv2bgr_planes(*np.ascontiguousarray(hsv.transpose(2, 0, 1)))
    return np.ascontiguousarray(planes.transpose(1, 2, 0))


def hsv2bgr_planes(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """:func:`hsv2bgr` on separate uint8 (H, W) planes; returns (3, H, W): B, G, R."""
    hue = h.astype(np.intp)  # one index conversion for the four lookups
    s = np.multiply(s, _INV255, dtype=np.float32)
    v = np.multiply(v, _INV255, dtype=np.float32)
    one = np.float32(1.0)
    p = np.subtract(one, s)
    p *= v
    # q = v(1 - s f) on odd sectors, t = v(1 - s(1 - f)) on even ones.
    mid = np.take(_MID_FACTOR, hue, mode="clip")
    mid *= s
    np.subtract(one, mid, out=mid)
    mid *= v
    simd_w = (hue.shape[1] // _HSV_SIMD_BLOCK) * _HSV_SIMD_BLOCK
    packed = _hsv_plane_to_u8(v, simd_w).astype(np.uint32)
    packed |= _hsv_plane_to_u8(p, simd_w).astype(np.uint32) << 8
    packed |= _hsv_plane_to_u8(mid, simd_w).astype(np.uint32) << 16
    out = np.empty((3,) + hue.shape, dtype=np.uint8)
    for c in range(3):
        out[c] = packed >> np.take(_HUE_SHIFTS[c], hue, mode="clip")  # the assignment keeps the low byte
    return out
