"""Helpers of bench/input_pipeline.py: ADE20K-like inputs with natural-image statistics, and the
same training pipeline written with OpenCV the way mmseg runs it (the speed reference).

OpenCV is a benchmark-only dependency (never in setup.py): install it beside the project, e.g.
``pip install --no-deps --target /tmp/cvlib opencv-python-headless==4.10.0.84`` and put
``/tmp/cvlib`` on PYTHONPATH after the worktree (``--no-deps`` keeps the venv's NumPy 1.x).
"""
from __future__ import annotations

import io
import os
from typing import Tuple

import numpy as np
from PIL import Image

ADE_W, ADE_H = 683, 512  # the most common ADE20K training size (landscape, short side 512)
NUM_CLASSES = 150


# --------------------------------------------------------------------------
# Inputs: 1/f noise texture, regions with their own colour (edges), Voronoi-like label map
# --------------------------------------------------------------------------


def _pink_noise(rng: np.random.Generator, h: int, w: int, power: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std field with a 1/f**power amplitude spectrum (power 1: natural images'
    statistics; 2: smooth, for warping region boundaries)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** power
    spec[0, 0] = 0.0
    x = np.fft.irfft2(spec, s=(h, w))
    return (x / x.std()).astype(np.float32)


def _regions(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    """Region id per pixel: nearest of ``n`` seeds in warped coordinates (irregular boundaries)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy += 30.0 * _pink_noise(rng, h, w, 2.0) + 2.0 * _pink_noise(rng, h, w)
    xx += 30.0 * _pink_noise(rng, h, w, 2.0) + 2.0 * _pink_noise(rng, h, w)
    sy = rng.uniform(0, h, n).astype(np.float32)
    sx = rng.uniform(0, w, n).astype(np.float32)
    best = np.full((h, w), np.inf, np.float32)
    region = np.zeros((h, w), np.int32)
    for k in range(n):
        d = (yy - sy[k]) ** 2 + (xx - sx[k]) ** 2
        closer = d < best
        best[closer] = d[closer]
        region[closer] = k
    return region


def synth_pair(rng: np.random.Generator, h: int = ADE_H, w: int = ADE_W) -> Tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, uint8 ADE label map 0..150) with matching region edges."""
    n = int(rng.integers(8, 40))
    region = _regions(rng, h, w, n)
    classes = rng.integers(1, NUM_CLASSES + 1, n)
    classes[rng.random(n) < 0.08] = 0  # ADE's "other" (ignored after reduce_zero_label)
    colours = rng.uniform(30, 225, (n, 3)).astype(np.float32)
    texture = _pink_noise(rng, h, w)[..., None] * rng.uniform(6, 20)
    chroma = np.stack([_pink_noise(rng, h, w) for _ in range(3)], axis=-1) * 3.0
    img = colours[region] + texture + chroma
    return np.clip(img, 0, 255).astype(np.uint8), classes[region].astype(np.uint8)


def write_ade_like(root: str, n: int, seed: int = 0, quality: int = 90) -> str:
    """``n`` pairs in ADEChallengeData2016's layout under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    img_dir = os.path.join(root, "images", "training")
    ann_dir = os.path.join(root, "annotations", "training")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(n):
        img, label = synth_pair(rng)
        name = f"ADE_train_{i:08d}"
        Image.fromarray(img).save(os.path.join(img_dir, name + ".jpg"), quality=quality)
        Image.fromarray(label, mode="L").save(os.path.join(ann_dir, name + ".png"))
    return root


# --------------------------------------------------------------------------
# The OpenCV pipeline, as mmseg 1.x (and mmcv's cv2 backend) runs it
# --------------------------------------------------------------------------


def import_cv2():
    """cv2 with one thread (mmseg's env_cfg opencv_num_threads=0 in loader workers), or None."""
    try:
        import cv2
    except ImportError:
        return None
    cv2.setNumThreads(0)
    return cv2


class OpenCVPipeline:
    """LoadImageFromFile (cv2.imdecode) + LoadAnnotations (Pillow, reduce_zero_label) + RandomResize
    + RandomCrop(cat_max_ratio) + RandomFlip + PhotoMetricDistortion + normalise (mmcv's in-place
    cv2 imnormalize_) + pad + CHW, for one sample; random draws from the given Generator."""

    def __init__(self, cv2, scale=(2048, 512), ratio_range=(0.5, 2.0), crop=(512, 512), cat_max_ratio=0.75,
                 mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)):
        self.cv2 = cv2
        self.scale, self.ratio_range, self.crop, self.cat_max_ratio = scale, ratio_range, crop, cat_max_ratio
        self.mean = np.array(mean, np.float64).reshape(1, -1)
        self.stdinv = 1.0 / np.array(std, np.float64).reshape(1, -1)

    def load(self, img_path: str, seg_path: str) -> Tuple[np.ndarray, np.ndarray]:
        with open(img_path, "rb") as f:
            img = self.cv2.imdecode(np.frombuffer(f.read(), np.uint8), self.cv2.IMREAD_COLOR)
        with open(seg_path, "rb") as f:
            seg = np.array(Image.open(io.BytesIO(f.read()))).squeeze().astype(np.uint8)
        seg[seg == 0] = 255
        seg = seg - 1
        seg[seg == 254] = 255
        return img, seg

    def resize(self, img, seg, rng):
        lo, hi = self.ratio_range
        r = rng.random() * (hi - lo) + lo
        target = (int(self.scale[0] * r), int(self.scale[1] * r))
        long_t, short_t = max(target), min(target)
        h, w = img.shape[:2]
        f = min(long_t / max(h, w), short_t / min(h, w))
        size = (int(w * f + 0.5), int(h * f + 0.5))
        img = self.cv2.resize(img, size, interpolation=self.cv2.INTER_LINEAR)
        seg = self.cv2.resize(seg, size, interpolation=self.cv2.INTER_NEAREST)
        return img, seg

    def crop_box(self, seg, rng):
        ch, cw = self.crop
        h, w = seg.shape

        def draw():
            oy = int(rng.integers(0, max(h - ch, 0) + 1))
            ox = int(rng.integers(0, max(w - cw, 0) + 1))
            return oy, oy + ch, ox, ox + cw

        box = draw()
        for _ in range(10):
            labels, cnt = np.unique(seg[box[0]:box[1], box[2]:box[3]], return_counts=True)
            cnt = cnt[labels != 255]
            if len(cnt) > 1 and np.max(cnt) / np.sum(cnt) < self.cat_max_ratio:
                break
            box = draw()
        return box

    @staticmethod
    def _convert(img, alpha=1.0, beta=0.0):
        img = img.astype(np.float32) * alpha + beta
        return np.clip(img, 0, 255).astype(np.uint8)

    def photometric(self, img, rng):
        cv2 = self.cv2
        if rng.integers(2):
            img = self._convert(img, beta=rng.uniform(-32, 32))
        mode = rng.integers(2)
        if mode == 1 and rng.integers(2):
            img = self._convert(img, alpha=rng.uniform(0.5, 1.5))
        if rng.integers(2):
            img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
            img[:, :, 1] = self._convert(img[:, :, 1], alpha=rng.uniform(0.5, 1.5))
            img = cv2.cvtColor(img, cv2.COLOR_HSV2BGR)
        if rng.integers(2):
            img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
            img[:, :, 0] = (img[:, :, 0].astype(int) + int(rng.integers(-18, 18))) % 180
            img = cv2.cvtColor(img, cv2.COLOR_HSV2BGR)
        if mode == 0 and rng.integers(2):
            img = self._convert(img, alpha=rng.uniform(0.5, 1.5))
        return img

    def normalize_pad(self, img, seg):
        cv2 = self.cv2
        img = img.astype(np.float32)
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, img)
        cv2.subtract(img, self.mean, img)
        cv2.multiply(img, self.stdinv, img)
        ch, cw = self.crop
        h, w = seg.shape
        if (h, w) != (ch, cw):
            img = cv2.copyMakeBorder(img, 0, ch - h, 0, cw - w, cv2.BORDER_CONSTANT, value=0)
            seg = cv2.copyMakeBorder(seg, 0, ch - h, 0, cw - w, cv2.BORDER_CONSTANT, value=255)
        return np.ascontiguousarray(img.transpose(2, 0, 1)), seg

    def __call__(self, img_path: str, seg_path: str, rng: np.random.Generator):
        img, seg = self.load(img_path, seg_path)
        img, seg = self.resize(img, seg, rng)
        y1, y2, x1, x2 = self.crop_box(seg, rng)
        img, seg = img[y1:y2, x1:x2], seg[y1:y2, x1:x2]
        if rng.random() < 0.5:
            img, seg = np.flip(img, axis=1), np.flip(seg, axis=1)
        img = self.photometric(img, rng)
        return self.normalize_pad(img, seg)
