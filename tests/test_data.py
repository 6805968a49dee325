"""Tests of segnext_jt.data (NumPy + Pillow only; no jittor, no cv2).

cv2 reference values are computed in the tests from cv2's formulas (a scalar
transcription below); the small literal arrays were also checked against
opencv-python-headless 4.10.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segnext_jt.data import (ADE20K_CLASSES, ADE20K_PALETTE, DEMO_CLASSES, ADE20KDataset, CityscapesDataset,
                             Compose, DataError, DemoMNISTDataset, Normalize, Pad, PhotoMetricDistortion,
                             RandomCrop, RandomFlip, RandomResize, SampleLoadError, SegDataset, TrainLoader,
                             ValLoader, bgr2hsv, build_demo_dataset, build_train_pipeline, cv2_resize_bilinear,
                             cv2_resize_nearest, hsv2bgr, make_view_input, read_image_bgr, rescale_size,
                             resize_to_multiple, sample_indices, sample_rng, tta_scales)
from segnext_jt.data.demo_mnist import render_sample

ROOT = Path(__file__).resolve().parents[1]


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


def test_rescale_size_and_multiples():
    assert rescale_size(683, 512, (2048, 512)) == (683, 512)
    assert rescale_size(2000, 1000, (2048, 512)) == (1024, 512)
    assert rescale_size(2000, 1000, (512, 2048)) == (1024, 512)  # (long, short) in either order
    assert rescale_size(500, 375, (2048, 512)) == (683, 512)  # int(500 * 512/375 + 0.5)
    assert rescale_size(300, 200, (640, 480), keep_ratio=False) == (640, 480)
    assert rescale_size(683, 512, 0.5) == (342, 256)
    assert resize_to_multiple(np.zeros((512, 683, 3), np.uint8), 32).shape == (512, 704, 3)
    assert resize_to_multiple(np.zeros((512, 640, 3), np.uint8), 32).shape == (512, 640, 3)


def test_tta_scales_modes_differ():
    # MM0 'stretch': keep-ratio into (int(2048 r), int(512 r)).
    assert tta_scales(683, 512, (0.5, 1.0, 1.75), "stretch") == [(342, 256), (683, 512), (1195, 896)]
    # MM1 'pad': scale factor r of the original size.
    assert tta_scales(2000, 1000, (0.5, 1.0), "pad") == [(1000, 500), (2000, 1000)]
    assert tta_scales(2000, 1000, (0.5, 1.0), "stretch") == [(512, 256), (1024, 512)]
    with pytest.raises(ValueError, match="test mode"):
        tta_scales(10, 10, (1.0,), "slide")


def test_make_view_input_stretch_and_pad():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (512, 683, 3), dtype=np.uint8)
    inp, info = make_view_input(img, mode="stretch")
    assert inp.shape == (3, 512, 704) and inp.dtype == np.float32
    assert info.resized_shape == (512, 683) and info.valid_shape == (512, 704) and info.ori_shape == (512, 683)
    inp_p, info_p = make_view_input(img, mode="pad")
    assert inp_p.shape == (3, 512, 704) and info_p.valid_shape == (512, 683)
    assert np.all(inp_p[:, :, 683:] == 0)
    mean = np.array([123.675, 116.28, 103.53], np.float32)[:, None, None]
    std = np.array([58.395, 57.12, 57.375], np.float32)[:, None, None]
    np.testing.assert_allclose(inp_p[:, :, :683], (img[..., ::-1].transpose(2, 0, 1) - mean) / std, rtol=1e-6)
    # Flip happens before padding (TTA pipelines), so the image stays top-left.
    inp_f, info_f = make_view_input(img, mode="pad", flip=True)
    np.testing.assert_array_equal(inp_f[:, :, :683], inp_p[:, :, :683][:, :, ::-1])
    assert info_f.flip and np.all(inp_f[:, :, 683:] == 0)
    # An explicit size from tta_scales.
    size = tta_scales(683, 512, (0.5,), "pad")[0]
    inp_h, info_h = make_view_input(img, mode="pad", size=size)
    assert info_h.resized_shape == (256, 342) and inp_h.shape == (3, 256, 352)


# --------------------------------------------------------------------------
# Colour conversion and augmentation
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


def test_photometric_distortion_deterministic_uint8():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (48, 70, 3), dtype=np.uint8)
    pmd = PhotoMetricDistortion()
    outs = [pmd({"img": img.copy()}, np.random.default_rng([5, 1, 0]))["img"] for _ in range(2)]
    assert outs[0].dtype == np.uint8 and outs[0].shape == img.shape
    np.testing.assert_array_equal(outs[0], outs[1])
    changed = [not np.array_equal(pmd({"img": img.copy()}, np.random.default_rng(s))["img"], img) for s in range(8)]
    assert any(changed)


def test_photometric_step_order_and_draws():
    """Replays mmseg's draw order with a recording rng."""
    class Recorder:
        def __init__(self, ints, unis):
            self.ints, self.unis, self.calls = list(ints), list(unis), []

        def integers(self, low, high=None):
            self.calls.append(("int", low, high))
            return self.ints.pop(0)

        def uniform(self, low, high):
            self.calls.append(("uni", low, high))
            return self.unis.pop(0)

    img = np.full((2, 40, 3), 100, np.uint8)
    # brightness yes (+10.7), mode 0, saturation no, hue no, contrast (mode 0) yes (x1.5)
    rec = Recorder([1, 0, 0, 0, 1], [10.7, 1.5])
    out = PhotoMetricDistortion()({"img": img}, rec)["img"]
    assert rec.calls == [("int", 2, None), ("uni", -32, 32), ("int", 2, None), ("int", 2, None),
                         ("int", 2, None), ("int", 2, None), ("uni", 0.5, 1.5)]
    assert np.all(out == 165)  # int(110.7) = 110 (truncating cast), then 110 * 1.5 = 165
    # mode 1: contrast comes second; hue draws randint(-18, 18)
    rec = Recorder([0, 1, 0, 0, 1, 7], [])
    PhotoMetricDistortion()({"img": img}, rec)
    assert rec.calls[2:] == [("int", 2, None), ("int", 2, None), ("int", 2, None), ("int", -18, 18)]


def test_random_crop_cat_max_ratio():
    lab = np.zeros((100, 100), np.uint8)
    lab[:, 50:] = 1
    lab[:10] = 255  # ignored pixels do not count
    img = np.zeros((100, 100, 3), np.uint8)
    crop = RandomCrop((50, 50), cat_max_ratio=0.75)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        out = crop({"img": img, "gt_seg": lab}, rng)
        # Replay the mmseg rule with the same stream: offsets (h, w); up to 10 checks, else the 11th draw.
        ref = np.random.default_rng(seed)
        box = (int(ref.integers(0, 51)), int(ref.integers(0, 51)))
        for _ in range(10):
            part = lab[box[0]:box[0] + 50, box[1]:box[1] + 50]
            counts = np.bincount(part[part != 255].ravel(), minlength=2)
            counts = counts[counts > 0]
            if len(counts) > 1 and counts.max() / counts.sum() < 0.75:
                break
            box = (int(ref.integers(0, 51)), int(ref.integers(0, 51)))
        np.testing.assert_array_equal(out["gt_seg"], lab[box[0]:box[0] + 50, box[1]:box[1] + 50])
        assert out["img"].shape == (50, 50, 3)
    # Without the ratio check exactly one draw pair is used.
    rng = np.random.default_rng(7)
    out = RandomCrop((50, 50), cat_max_ratio=1.0)({"img": img, "gt_seg": lab}, rng)
    ref = np.random.default_rng(7)
    oy, ox = int(ref.integers(0, 51)), int(ref.integers(0, 51))
    np.testing.assert_array_equal(out["gt_seg"], lab[oy:oy + 50, ox:ox + 50])
    assert rng.random() == ref.random()
    # Small images give a smaller crop.
    small = RandomCrop((512, 512))({"img": img[:30, :40], "gt_seg": lab[:30, :40]}, np.random.default_rng(0))
    assert small["img"].shape == (30, 40, 3) and small["gt_seg"].shape == (30, 40)


def test_flip_moves_image_and_label_together():
    img = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)
    lab = np.arange(10, dtype=np.uint8).reshape(2, 5)
    out = RandomFlip(prob=1.0)({"img": img, "gt_seg": lab}, np.random.default_rng(0))
    np.testing.assert_array_equal(out["img"], img[:, ::-1])
    np.testing.assert_array_equal(out["gt_seg"], lab[:, ::-1])
    assert out["flip"] is True
    out = RandomFlip(prob=0.0)({"img": img, "gt_seg": lab}, np.random.default_rng(0))
    np.testing.assert_array_equal(out["img"], img)
    assert out["flip"] is False


def test_random_resize_keep_ratio_and_normalize_pad():
    img = np.zeros((512, 683, 3), np.uint8)
    lab = np.zeros((512, 683), np.uint8)
    rng = np.random.default_rng(11)
    out = RandomResize((2048, 512), (0.5, 2.0))({"img": img, "gt_seg": lab}, rng)
    r = np.random.default_rng(11).random() * 1.5 + 0.5
    expect = rescale_size(683, 512, (int(2048 * r), int(512 * r)))
    assert out["img"].shape[:2] == (expect[1], expect[0]) == out["gt_seg"].shape
    px = np.array([[[10, 20, 30]]], np.uint8)  # BGR
    norm = Normalize()({"img": px})["img"]
    np.testing.assert_allclose(norm[0, 0], [(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375],
                               rtol=1e-6)
    padded = Pad(size=(4, 3))({"img": norm, "gt_seg": np.zeros((1, 1), np.uint8)})
    assert padded["img"].shape == (4, 3, 3) and np.all(padded["img"][1:] == 0)
    assert padded["gt_seg"].shape == (4, 3) and np.all(padded["gt_seg"][1:] == 255)


@pytest.mark.parametrize("shape", [(120, 160), (40, 30), (64, 256)])
def test_fused_resize_crop_equals_resize_then_crop(shape):
    rng = np.random.default_rng(shape[0])
    img = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    lab = rng.integers(0, 3, shape, dtype=np.uint8)
    lab[: shape[0] // 2] = 1
    fused = build_train_pipeline(crop_size=(64, 64), scale=(256, 64), fused=True)
    plain = build_train_pipeline(crop_size=(64, 64), scale=(256, 64), fused=False)
    for seed in range(6):
        a = fused({"img": img, "gt_seg": lab}, np.random.default_rng(seed))
        b = plain({"img": img, "gt_seg": lab}, np.random.default_rng(seed))
        np.testing.assert_array_equal(a["img"], b["img"])
        np.testing.assert_array_equal(a["gt_seg"], b["gt_seg"])


def test_pipeline_deterministic_per_seed_iter_slot():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    lab = rng.integers(0, 5, (120, 160), dtype=np.uint8)
    pipe = build_train_pipeline(crop_size=(64, 64), scale=(256, 64))

    def run(seed, it, slot):
        return pipe({"img": img.copy(), "gt_seg": lab.copy()}, sample_rng(seed, it, slot))

    a, b, c = run(0, 3, 1), run(0, 3, 1), run(0, 3, 2)
    np.testing.assert_array_equal(a["img"], b["img"])
    np.testing.assert_array_equal(a["gt_seg"], b["gt_seg"])
    assert a["img"].shape == (64, 64, 3) and a["img"].dtype == np.float32 and a["gt_seg"].shape == (64, 64)
    assert not np.array_equal(a["img"], c["img"])


# --------------------------------------------------------------------------
# Demo data and datasets
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    build_demo_dataset(str(out), num_train=10, num_val=4, size=64, seed=0)
    return out


def test_demo_generator_layout_and_determinism(demo_root, tmp_path):
    base = demo_root / "ADEChallengeData2016"
    train_imgs = sorted(os.listdir(base / "images" / "training"))
    assert train_imgs[0] == "ADE_train_00000001.jpg" and len(train_imgs) == 10
    assert sorted(os.listdir(base / "annotations" / "validation"))[-1] == "ADE_val_00000004.png"
    values = set()
    for p in (base / "annotations" / "training").iterdir():
        with Image.open(p) as im:
            assert im.mode == "L"
            values |= set(np.unique(np.asarray(im)).tolist())
    assert values <= set(range(12)) and {0, 1} <= values and len(values) > 4
    with Image.open(base / "images" / "training" / "ADE_train_00000001.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    # Same seed -> same bytes; another seed -> different data.
    build_demo_dataset(str(tmp_path / "a"), num_train=3, num_val=1, size=64, seed=0)
    build_demo_dataset(str(tmp_path / "b"), num_train=3, num_val=1, size=64, seed=1)
    for name in ("images/training/ADE_train_00000003.jpg", "annotations/training/ADE_train_00000003.png"):
        same = (tmp_path / "a" / "ADEChallengeData2016" / name).read_bytes()
        assert same == (base / name).read_bytes()
        assert same != (tmp_path / "b" / "ADEChallengeData2016" / name).read_bytes()


def test_demo_parallel_equals_serial_and_missing_package(demo_root, tmp_path, monkeypatch):
    build_demo_dataset(str(tmp_path / "p"), num_train=10, num_val=4, size=64, seed=0, workers=2)
    base = demo_root / "ADEChallengeData2016"
    for sub in ("images/training", "annotations/validation"):
        for name in os.listdir(base / sub):
            assert (tmp_path / "p" / "ADEChallengeData2016" / sub / name).read_bytes() == (base / sub / name).read_bytes()
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    from segnext_jt.data.demo_mnist import load_mnist
    with pytest.raises(DataError, match="jittor-offline"):
        load_mnist("test")


def test_demo_render_varies_size():
    from segnext_jt.data.demo_mnist import load_mnist
    digits, labels = load_mnist("test")
    shapes = {render_sample(np.random.default_rng(i), digits, labels, 128)[0].shape for i in range(6)}
    assert len(shapes) > 1


def test_ade20k_dataset_reads_demo_tree(demo_root):
    ds = ADE20KDataset(str(demo_root), "train")  # parent of ADEChallengeData2016, 'train' alias
    assert len(ds) == 10 and ds.num_classes == 150 and ds.split == "training"
    raw = ds.load_raw(0)
    assert raw.img.dtype == np.uint8 and raw.img.ndim == 3 and raw.img.shape[2] == 3
    assert raw.gt_seg.shape == raw.img.shape[:2]
    assert set(np.unique(raw.gt_seg).tolist()) <= set(range(11)) | {255}
    # reduce_zero_label: 0 -> 255, k -> k - 1
    with Image.open(ds.samples[0][1]) as im:
        stored = np.asarray(im)
    np.testing.assert_array_equal(raw.gt_seg[stored == 0], 255)
    np.testing.assert_array_equal(raw.gt_seg[stored > 0], stored[stored > 0] - 1)
    # BGR like cv2: channels reversed relative to Pillow's RGB
    with Image.open(ds.samples[0][0]) as im:
        np.testing.assert_array_equal(raw.img, np.asarray(im)[..., ::-1])
    item = ds.get(1, rng=np.random.default_rng(0), pipeline=build_train_pipeline((32, 32), (128, 32)))
    assert item["img"].shape == (3, 32, 32) and item["img"].dtype == np.float32
    assert item["gt_seg"].shape == (32, 32) and item["filename"] == ds.filename(1)
    assert item["ori_shape"] == ds.load_raw(1).img.shape[:2]
    demo = DemoMNISTDataset(str(demo_root / "ADEChallengeData2016"), "validation")
    assert len(demo) == 4 and demo.classes == DEMO_CLASSES and demo.num_classes == 11


def test_class_metadata():
    assert len(ADE20K_CLASSES) == 150 == len(ADE20K_PALETTE)
    assert ADE20K_CLASSES[7] == "bed " and ADE20K_CLASSES[0] == "wall" and ADE20K_CLASSES[-1] == "flag"
    assert ADE20K_PALETTE[0] == (120, 120, 120) and ADE20K_PALETTE[-1] == (92, 0, 255)
    assert len(DEMO_CLASSES) == 11 and DEMO_CLASSES[0] == "background" and DEMO_CLASSES[10] == "nine"


def _tree(tmp_path, names=("a", "b"), size=(6, 5), img_ext=".jpg"):
    root = tmp_path / "ds"
    for split in ("training",):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for n in names:
            Image.new("RGB", size, (10, 20, 30)).save(root / "images" / split / f"{n}{img_ext}")
            Image.new("L", size, 3).save(root / "annotations" / split / f"{n}.png")
    return root


def _seg(root, **kw):
    kw.setdefault("classes", [str(i) for i in range(5)])
    return SegDataset(str(root), "training", **kw)


def test_dataset_structure_errors(tmp_path):
    with pytest.raises(DataError, match="dataset root does not exist"):
        _seg(tmp_path / "nope")
    root = _tree(tmp_path)
    with pytest.raises(DataError, match=r"images/validation: image folder for split 'validation' does not exist"):
        SegDataset(str(root), "validation", classes=["x"])
    (root / "images" / "validation").mkdir()
    with pytest.raises(DataError, match=r"annotations/validation: annotation folder .* does not exist"):
        SegDataset(str(root), "validation", classes=["x"])
    os.remove(root / "annotations" / "training" / "b.png")
    with pytest.raises(DataError, match=r"b\.jpg: image has no annotation; expected .*b\.png"):
        _seg(root)
    Image.new("L", (6, 5)).save(root / "annotations" / "training" / "b.png")
    Image.new("L", (6, 5)).save(root / "annotations" / "training" / "c.png")
    with pytest.raises(DataError, match=r"c\.png: annotation has no image"):
        _seg(root)
    empty = tmp_path / "empty"
    (empty / "images" / "training").mkdir(parents=True)
    (empty / "annotations" / "training").mkdir(parents=True)
    with pytest.raises(DataError, match="is empty"):
        _seg(empty)


def test_dataset_content_errors(tmp_path):
    root = _tree(tmp_path, names=("a", "b", "c", "d"))
    img_dir, ann_dir = root / "images" / "training", root / "annotations" / "training"
    (img_dir / "a.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (7, 5)).save(img_dir / "b.jpg")  # size mismatch
    Image.new("L", (6, 5), 9).save(ann_dir / "c.png")  # 9 >= 5 classes
    (ann_dir / "d.png").write_bytes(b"\x89PNG broken")
    ds = _seg(root)
    with pytest.raises(DataError, match=r"a\.jpg: cannot read the image"):
        ds.load_raw(0)
    with pytest.raises(DataError, match=r"b\.jpg: image size 7x5 .* does not match its label .*b\.png"):
        ds.load_raw(1)
    with pytest.raises(DataError, match=r"c\.png: label values \[9\] are out of range; expected 0\.\.4 or 255"):
        ds.load_raw(2)
    with pytest.raises(DataError, match=r"d\.png: cannot read the label map"):
        ds.load_raw(3)
    # After reduce_zero_label, 0 is fine (-> 255) but 6 -> 5 is out of range.
    Image.new("L", (6, 5), 6).save(ann_dir / "c.png")
    with pytest.raises(DataError, match="out of range after reduce_zero_label"):
        _seg(root, reduce_zero_label=True).load_raw(2)


def test_image_modes_and_palette_labels(tmp_path):
    root = _tree(tmp_path, names=("g", "p", "r"), img_ext=".png")
    img_dir, ann_dir = root / "images" / "training", root / "annotations" / "training"
    Image.new("L", (6, 5), 77).save(img_dir / "g.png")
    Image.new("RGBA", (6, 5), (10, 20, 30, 0)).save(img_dir / "r.png")
    pal = Image.new("P", (6, 5), 2)
    pal.putpalette([0, 0, 0, 255, 255, 255, 200, 100, 50] + [0] * 759)
    pal.save(ann_dir / "p.png")
    ds = _seg(root, img_suffix=".png")
    names = [os.path.basename(f) for f, _ in ds.samples]
    g, p, r = (ds.load_raw(names.index(n)) for n in ("g.png", "p.png", "r.png"))
    assert g.img.shape == (5, 6, 3) and np.all(g.img == 77)
    np.testing.assert_array_equal(r.img[0, 0], [30, 20, 10])  # alpha dropped, BGR
    assert np.all(p.gt_seg == 2)  # palette index, not colour
    with pytest.raises(DataError, match="single-channel label"):
        Image.new("RGB", (6, 5)).save(ann_dir / "g.png")
        ds.load_raw(names.index("g.png"))


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (8, 4), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "x.jpg", exif=exif.tobytes())
    assert read_image_bgr(str(tmp_path / "x.jpg")).shape == (8, 4, 3)


def test_cityscapes_layout(tmp_path):
    root = tmp_path / "cs"
    for city in ("aachen", "bonn"):
        (root / "leftImg8bit" / "val" / city).mkdir(parents=True)
        (root / "gtFine" / "val" / city).mkdir(parents=True)
        stem = f"{city}_000000_000019"
        Image.new("RGB", (8, 4)).save(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png")
        Image.new("L", (8, 4), 18).save(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelTrainIds.png")
        Image.new("L", (8, 4), 33).save(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
    ds = CityscapesDataset(str(root), "val")
    assert len(ds) == 2 and ds.num_classes == 19
    assert np.all(ds.load_raw(1).gt_seg == 18)


# --------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------


def _batches(loader, n):
    with loader:
        return [next(loader) for _ in range(n)]


def test_sampling_rule_covers_each_epoch():
    idx = [i for it in range(4) for i in sample_indices(5, it, 3, 6)]  # 12 positions = 2 epochs of 6
    assert sorted(idx[:6]) == list(range(6)) and sorted(idx[6:]) == list(range(6))
    assert idx[:6] != idx[6:]


def test_train_loader_workers_and_resume_identical(demo_root):
    ds = DemoMNISTDataset(str(demo_root / "ADEChallengeData2016"), "training")
    pipe = build_train_pipeline(crop_size=(48, 48), scale=(256, 64))
    ref = _batches(TrainLoader(ds, pipe, batch_size=3, seed=7, num_workers=0), 5)
    assert ref[0]["img"].shape == (3, 3, 48, 48) and ref[0]["img"].dtype == np.float32
    assert ref[0]["gt_seg"].shape == (3, 48, 48) and ref[0]["gt_seg"].dtype == np.int64
    assert [b["iter"] for b in ref] == list(range(5))
    loader = TrainLoader(ds, pipe, batch_size=3, seed=7, num_workers=2, prefetch=2)
    workers = list(loader._pool._procs)
    got = _batches(loader, 5)
    assert not any(p.is_alive() for p in workers)
    assert not [p for p in mp.active_children() if p in workers]
    resumed = _batches(TrainLoader(ds, pipe, batch_size=3, seed=7, start_iter=3), 2)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a["img"], b["img"])
        np.testing.assert_array_equal(a["gt_seg"], b["gt_seg"])
        assert a["filenames"] == b["filenames"]
    for a, b in zip(ref[3:], resumed):
        np.testing.assert_array_equal(a["img"], b["img"])
        np.testing.assert_array_equal(a["gt_seg"], b["gt_seg"])
    # Data-parallel split: slots of the global batch give the same samples.
    part = _batches(TrainLoader(ds, pipe, batch_size=3, seed=7, slots=[1, 2], start_iter=1, num_workers=1), 1)[0]
    np.testing.assert_array_equal(part["img"], ref[1]["img"][1:])
    assert part["filenames"] == ref[1]["filenames"][1:]
    with pytest.raises(ValueError, match="slots"):
        TrainLoader(ds, pipe, batch_size=3, seed=7, slots=[3])
    other = _batches(TrainLoader(ds, pipe, batch_size=3, seed=8), 1)
    assert not np.array_equal(other[0]["img"], ref[0]["img"])


def test_loader_errors_name_the_file(demo_root, tmp_path):
    src = demo_root / "ADEChallengeData2016"
    root = tmp_path / "ADEChallengeData2016"
    shutil.copytree(src, root)
    bad = root / "images" / "training" / "ADE_train_00000004.jpg"
    bad.write_bytes(b"garbage")
    ds = DemoMNISTDataset(str(root), "training")
    pipe = build_train_pipeline(crop_size=(32, 32), scale=(128, 32))
    n = len(ds)
    with pytest.raises(SampleLoadError, match="ADE_train_00000004.jpg") as info:
        with TrainLoader(ds, pipe, batch_size=n, seed=0) as loader:
            next(loader)
    assert info.value.filename == str(bad)
    loader = TrainLoader(ds, pipe, batch_size=n, seed=0, num_workers=1)
    workers = list(loader._pool._procs)
    with pytest.raises(SampleLoadError, match=r"(?s)ADE_train_00000004\.jpg.*worker traceback.*DataError"):
        with loader:
            next(loader)
    assert not any(p.is_alive() for p in workers)
    # The ordered val iterator with a worker reports the same way.
    val = ValLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(SampleLoadError, match="ADE_train_00000004.jpg"):
        list(val)


def test_val_loader_ordered(demo_root):
    ds = DemoMNISTDataset(str(demo_root / "ADEChallengeData2016"), "validation")
    batches = list(ValLoader(ds, batch_size=3))
    assert [len(b) for b in batches] == [3, 1]
    assert [s.filename for b in batches for s in b] == [ds.filename(i) for i in range(4)]
    assert batches[0][0].img.dtype == np.uint8 and batches[0][0].gt_seg.dtype == np.uint8


def test_data_package_does_not_import_heavy_modules():
    code = ("import sys; import segnext_jt.data; "
            "bad = [m for m in ('jittor', 'cv2', 'torch') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    import subprocess
    res = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def _probe_worker_modules(raw):
    """Runs in a loader worker: what did that process import?"""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return "jittor" in sys.modules, os.path.basename(main_file or ""), raw.img.shape


def test_workers_are_light_spawned_processes(demo_root):
    ds = DemoMNISTDataset(str(demo_root / "ADEChallengeData2016"), "validation")
    out = [x for batch in ValLoader(ds, batch_size=2, num_workers=1, transform=_probe_worker_modules) for x in batch]
    assert len(out) == 4
    for has_jittor, main_file, shape in out:
        assert not has_jittor and main_file == "_worker_boot.py" and len(shape) == 3
    with pytest.raises(ValueError, match="never 'fork'"):
        TrainLoader(ds, Compose([]), batch_size=1, seed=0, num_workers=1, mp_context="fork")

    class FromMain:
        def __call__(self, results, rng):
            return results

    with pytest.raises(ValueError, match="picklable dataset and pipeline"):
        TrainLoader(ds, Compose([FromMain()]), batch_size=1, seed=0, num_workers=1)  # a local class
    FromMain.__module__ = "__main__"
    with pytest.raises(ValueError, match="defined in the main script"):
        TrainLoader(ds, Compose([FromMain()]), batch_size=1, seed=0, num_workers=1)
