"""segnext_jt.data.transforms: sizes, the training augmentations replayed against mmseg's rules and
draw order, normalisation and padding, the fused resize+crop, per-(seed, iter, slot) determinism."""
from __future__ import annotations

import numpy as np
import pytest

from segnext_jt.data import (Normalize, Pad, PhotoMetricDistortion, RandomCrop, RandomFlip, RandomResize,
                             build_train_pipeline, rescale_size, resize_to_multiple, sample_rng)


def test_rescale_size_and_multiples():
    assert rescale_size(683, 512, (2048, 512)) == (683, 512)
    assert rescale_size(2000, 1000, (2048, 512)) == (1024, 512)
    assert rescale_size(2000, 1000, (512, 2048)) == (1024, 512)  # (long, short) in either order
    assert rescale_size(500, 375, (2048, 512)) == (683, 512)  # int(500 * 512/375 + 0.5)
    assert rescale_size(300, 200, (640, 480), keep_ratio=False) == (640, 480)
    assert rescale_size(683, 512, 0.5) == (342, 256)
    assert resize_to_multiple(np.zeros((512, 683, 3), np.uint8), 32).shape == (512, 704, 3)
    assert resize_to_multiple(np.zeros((512, 640, 3), np.uint8), 32).shape == (512, 640, 3)


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


def test_train_pipeline_output_bytes_unchanged():
    """Fixed inputs and seeds through the full train pipeline (resize+crop with padding, flip,
    photometric distortion, normalise, pad): the sha256 of the outputs is the one the code gave
    before the speed-ups of issue #20 (commit ef6f2cf), so they changed no byte."""
    import hashlib
    digest = hashlib.sha256()
    pipe = build_train_pipeline(crop_size=(64, 64), scale=(256, 64), ratio_range=(0.5, 2.0))
    yy, xx = np.mgrid[0:96, 0:128]
    for seed in range(24):
        rng = np.random.default_rng(seed)
        img = (np.stack([xx * 2, yy * 2 + xx, 255 - yy * 2], -1) + rng.integers(0, 50, (96, 128, 3))) % 256
        seg = ((xx // 16 + (yy // 12) * 8 + seed) % 150).astype(np.uint8)
        seg[:10, :10] = 255
        out = pipe({"img": img.astype(np.uint8), "gt_seg": seg}, np.random.default_rng([seed, 1]))
        digest.update(np.ascontiguousarray(out["img"]).tobytes())
        digest.update(np.ascontiguousarray(out["gt_seg"]).tobytes())
    assert digest.hexdigest() == "739a8319b941e66261652d1476a5978eae07427bcf8c4300d2fa23c4fbb6d37c"
