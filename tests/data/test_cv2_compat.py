"""segnext_jt.data.cv2_compat: cv2's resize and colour conversions in NumPy (no jittor, no cv2).

cv2 reference values are computed in the tests from cv2's formulas (a scalar
transcription below); the small literal arrays were also checked against
opencv-python-headless 4.10.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from segnext_jt.data import bgr2hsv, cv2_resize_bilinear, cv2_resize_nearest, hsv2bgr


# --------------------------------------------------------------------------
# cv2 INTER_LINEAR, transcribed pixel by pixel (independent of the module)
# --------------------------------------------------------------------------


def _cv2_taps(src_len, dst_len, is_x):
    scale = 1.0 / (dst_len / src_len)
    taps = []
    for d in range(dst_len):
        f = np.float32((d + 0.5) * scale - 0.5)
        s = math.floor(f)
        f = np.float32(f - np.float32(s))
        if is_x:  # x: weight collapses onto the border pixel
            if s < 0:
                s, f = 0, np.float32(0)
            if s >= src_len - 1:
                s, f = src_len - 1, np.float32(0)
            i0, i1 = s, min(s + 1, src_len - 1)
        else:  # y: rows clamped, weight kept
            i0, i1 = min(max(s, 0), src_len - 1), min(max(s + 1, 0), src_len - 1)
        taps.append((i0, i1, f))
    return taps


def cv2_linear_reference(src, dw, dh):
    sh, sw = src.shape[:2]
    xt, yt = _cv2_taps(sw, dw, True), _cv2_taps(sh, dh, False)
    out = np.zeros((dh, dw) + src.shape[2:], dtype=src.dtype)
    for oy, (y0, y1, fy) in enumerate(yt):
        for ox, (x0, x1, fx) in enumerate(xt):
            if src.dtype == np.uint8:
                a0, a1 = int(np.rint((np.float32(1) - fx) * 2048)), int(np.rint(fx * 2048))
                b0, b1 = int(np.rint((np.float32(1) - fy) * 2048)), int(np.rint(fy * 2048))
                s0 = src[y0, x0].astype(np.int64) * a0 + src[y0, x1].astype(np.int64) * a1
                s1 = src[y1, x0].astype(np.int64) * a0 + src[y1, x1].astype(np.int64) * a1
                v = (((s0 >> 4) * b0) >> 16) + (((s1 >> 4) * b1) >> 16)
                out[oy, ox] = np.clip((v + 2) >> 2, 0, 255)
            else:
                one = np.float32(1)
                s0 = src[y0, x0] * (one - fx) + src[y0, x1] * fx
                s1 = src[y1, x0] * (one - fx) + src[y1, x1] * fx
                out[oy, ox] = s0 * (one - fy) + s1 * fy
    return out


# --------------------------------------------------------------------------
# Resizing
# --------------------------------------------------------------------------


def test_bilinear_2x2_to_4x4():
    src = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    # Float: plain bilinear with half-pixel centres and replicated borders.
    expect_f = np.array([[0, 25, 75, 100], [50, 72.1875, 116.5625, 138.75],
                         [150, 166.5625, 199.6875, 216.25], [200, 213.75, 241.25, 255]], dtype=np.float32)
    np.testing.assert_allclose(cv2_resize_bilinear(src.astype(np.float32), (4, 4)), expect_f, atol=1e-5)
    # uint8: e.g. (1, 1): x weights (1536, 512) -> S = [0*1536+100*512, 200*1536+255*512] = [51200, 437760];
    # y weights (1536, 512): (3200*1536 >> 16) + (27360*512 >> 16) = 75 + 213 = 288 -> (288+2) >> 2 = 72.
    expect_u8 = np.array([[0, 25, 75, 100], [50, 72, 117, 139], [150, 167, 200, 216], [200, 214, 241, 255]])
    np.testing.assert_array_equal(cv2_resize_bilinear(src, (4, 4)), expect_u8)
    np.testing.assert_array_equal(cv2_linear_reference(src, 4, 4), expect_u8)


def test_bilinear_downscale_4_to_3_and_5_to_2():
    src = np.array([[10, 20, 30, 40]], dtype=np.uint8)
    # fx = (d + 0.5) * 4/3 - 0.5 = 1/6, 3/2, 17/6 -> 10*5/6 + 20/6, (20+30)/2, 30/6 + 40*5/6
    np.testing.assert_allclose(cv2_resize_bilinear(src.astype(np.float32), (3, 1)), [[35 / 3, 25, 115 / 3]], rtol=1e-6)
    # uint8: weights (1707, 341): S = 23890 -> (1493*2048 >> 16) = 46 -> (46+2) >> 2 = 12; then 25, 38.
    np.testing.assert_array_equal(cv2_resize_bilinear(src, (3, 1)), [[12, 25, 38]])
    src5 = np.array([[3, 250, 17, 96, 201]], dtype=np.uint8)
    np.testing.assert_array_equal(cv2_resize_bilinear(src5, (2, 1)), [[188, 122]])
    np.testing.assert_array_equal(cv2_resize_bilinear(src5, (7, 3)), [[3, 144, 183, 17, 73, 141, 201]] * 3)


@pytest.mark.parametrize("shape,size", [((7, 5), (11, 13)), ((9, 12, 3), (5, 4)), ((6, 10, 3), (17, 7)),
                                        ((13, 8, 4), (8, 13)), ((1, 9, 3), (4, 3)), ((10, 10, 3), (10, 7))])
def test_bilinear_matches_cv2_transcription(shape, size):
    rng = np.random.default_rng(sum(shape) + size[0])
    src = rng.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(cv2_resize_bilinear(src, size), cv2_linear_reference(src, *size))
    srcf = src.astype(np.float32) / 3
    np.testing.assert_allclose(cv2_resize_bilinear(srcf, size), cv2_linear_reference(srcf, *size), rtol=1e-6, atol=1e-5)


def test_bilinear_window_and_identity():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (37, 51, 3), dtype=np.uint8)
    full = cv2_resize_bilinear(src, (80, 70))
    np.testing.assert_array_equal(cv2_resize_bilinear(src, (80, 70), window=(5, 47, 11, 80)), full[5:47, 11:80])
    srcf = src.astype(np.float32)
    np.testing.assert_array_equal(cv2_resize_bilinear(srcf, (30, 20), window=(3, 9, 0, 30)),
                                  cv2_resize_bilinear(srcf, (30, 20))[3:9])
    same = cv2_resize_bilinear(src, (51, 37))
    np.testing.assert_array_equal(same, src)
    assert same is not src
    with pytest.raises(ValueError, match="window"):
        cv2_resize_bilinear(src, (80, 70), window=(0, 71, 0, 10))
    with pytest.raises(TypeError, match="uint8, float32"):
        cv2_resize_bilinear(src.astype(np.int16), (4, 4))


def test_nearest_rule():
    # src = floor(dst * src_len / dst_len), clipped
    np.testing.assert_array_equal(cv2_resize_nearest(np.arange(5, dtype=np.uint8)[None], (2, 1)), [[0, 2]])
    np.testing.assert_array_equal(cv2_resize_nearest(np.arange(2, dtype=np.uint8)[None], (5, 1)), [[0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(cv2_resize_nearest(np.arange(4, dtype=np.uint8)[None], (3, 1)), [[0, 1, 2]])
    lab = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = cv2_resize_nearest(lab, (8, 6))
    np.testing.assert_array_equal(out, lab[np.arange(6) // 2][:, np.arange(8) // 2])
    np.testing.assert_array_equal(cv2_resize_nearest(lab, (8, 6), window=(1, 4, 2, 7)), out[1:4, 2:7])


# --------------------------------------------------------------------------
# Colour conversion
# --------------------------------------------------------------------------


def test_bgr2hsv_known_values():
    bgr = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [0, 128, 255], [40, 200, 90]]],
                   dtype=np.uint8)
    # e.g. orange (r=255, g=128): h = (g - b) * round(180*4096 / (6*255)) = 128*482 -> (61696+2048) >> 12 = 15
    expect = [[[120, 255, 255], [60, 255, 255], [0, 255, 255], [0, 0, 128], [15, 255, 255], [51, 204, 200]]]
    np.testing.assert_array_equal(bgr2hsv(bgr), expect)
    assert bgr2hsv(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))[..., 0].max() < 180


def test_hsv_round_trip_close_to_identity():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 100, 3), dtype=np.uint8)
    back = hsv2bgr(bgr2hsv(img))
    assert back.dtype == np.uint8 and back.shape == img.shape
    d = np.abs(back.astype(int) - img)
    assert d.mean() < 1.5 and d.max() <= 8  # H is stored in 2-degree steps
    grey = np.full((4, 40, 3), 77, np.uint8)
    np.testing.assert_array_equal(hsv2bgr(bgr2hsv(grey)), grey)


def _hsv_reference(img):
    """BGR -> HSV by cv2's integer formulas, pixel-parallel in int64 (no tables)."""
    b, g, r = (img[..., c].astype(np.int64) for c in range(3))
    v = np.maximum(np.maximum(b, g), r)
    diff = v - np.minimum(np.minimum(b, g), r)
    sdiv = np.where(v > 0, np.rint((255 << 12) / np.maximum(v, 1)), 0).astype(np.int64)
    hdiv = np.where(diff > 0, np.rint((180 << 12) / (6.0 * np.maximum(diff, 1))), 0).astype(np.int64)
    s = (diff * sdiv + 2048) >> 12
    num = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (num * hdiv + 2048) >> 12
    return np.stack([np.where(h < 0, h + 180, h), s, v], -1).astype(np.uint8)


def _bgr_reference(hsv, simd_block=32):
    """HSV -> BGR by cv2's float32 formulas, sector by sector (truncating in whole 32-pixel blocks)."""
    hue = hsv[..., 0].astype(np.float32) * np.float32(6.0 / 180.0)
    sector = np.floor(hue)
    f = hue - sector
    sector = sector.astype(np.int64) % 6
    s, v = (hsv[..., c].astype(np.float32) * np.float32(1.0 / 255.0) for c in (1, 2))
    one = np.float32(1)
    tab = [v, v * (one - s), v * (one - s * f), v * (one - s * (one - f))]  # v, p, q, t
    order = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])
    out = np.zeros(hsv.shape, np.float32)
    for c in range(3):
        for k in range(4):
            out[..., c] = np.where(order[sector, c] == k, tab[k], out[..., c])
    out *= np.float32(255)
    w = (hsv.shape[1] // simd_block) * simd_block
    res = np.trunc(out)
    res[:, w:] = np.rint(out[:, w:])
    return np.clip(res, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("width", [256, 250])
def test_hsv_conversions_equal_the_formulas_on_every_colour(width):
    """Every BGR colour (and every HSV triple, hue up to 255) against the table-free formulas, at a
    width with and one without a non-SIMD tail; the per-plane functions give the same."""
    from segnext_jt.data.cv2_compat import bgr2hsv_planes, hsv2bgr_planes
    codes = np.arange(1 << 24, dtype=np.uint32)[::17]  # every 17th: 1 M colours, all three bytes vary
    img = np.stack([codes >> 16, codes >> 8, codes], -1).astype(np.uint8)
    img = img[: img.shape[0] // width * width].reshape(-1, width, 3)
    hsv = bgr2hsv(img)
    np.testing.assert_array_equal(hsv, _hsv_reference(img))
    np.testing.assert_array_equal(hsv2bgr(img), _bgr_reference(img))
    planes = np.ascontiguousarray(img.transpose(2, 0, 1))
    np.testing.assert_array_equal(bgr2hsv_planes(*planes), hsv.transpose(2, 0, 1))
    np.testing.assert_array_equal(hsv2bgr_planes(*planes), hsv2bgr(img).transpose(2, 0, 1))
