#!/usr/bin/env python
"""Build the MNIST-derived demo dataset in the ADE20K layout.

    python tools/prepare_demo_data.py --out demo_data/ [--num-train 2000 --num-val 200 --size 128 --seed 0]

Writes <out>/ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_{train,val}_%08d.{jpg,png}.
Labels: 0 = ambiguous stroke rim ("other", ignored after reduce_zero_label), 1 = background,
2..11 = digits 0..9. Read it with segnext_jt.data.DemoMNISTDataset.

The MNIST files come from the ``jittor-offline`` package (no download). Each canvas (about ``size``
pixels a side, varying in size and aspect) shows 2-4 tinted digits on a textured coloured background.
The tests import this file as the module ``prepare_demo_data`` (tests/conftest.py puts tools/ on
sys.path), so keep its import free of side effects beyond the repo path.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import gzip
import importlib.util
import multiprocessing as mp
import os
import sys
import time
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from segnext_jt.data.cv2_compat import cv2_resize_bilinear  # NumPy + Pillow only
from segnext_jt.errors import DataError
from segnext_jt.rng import demo_image_rng

# What `make demo` trains on: three digits with labels widened around the strokes. Ten digit classes
# with hairline labels are learnable too, but need far more than a few CPU minutes (a small model
# from scratch first learns "digit vs background", and with ten classes sharing the foreground
# probability the background stays the argmax for hundreds of iterations).
DEMO_DIGITS: Tuple[int, ...] = (0, 1, 7)
DEMO_LABEL_DILATION = 0.06

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Stroke thresholds on the digit's opacity (0..1): at or above STROKE the
# pixel is the digit; between RIM and STROKE (or 1 px around a stroke) it is
# the ambiguous rim, label 0.
_STROKE = 0.5
_RIM = 0.1


# --------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------


def mnist_dir() -> str:
    """Folder of the MNIST .gz files shipped by the jittor-offline package."""
    spec = importlib.util.find_spec("jittor_offline")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'jittor-offline' package, which ships the MNIST files, is not installed "
                        "(pip install jittor-offline)")
    return list(spec.submodule_search_locations)[0]


def _read_idx(path: str, magic: int, ndim: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read the MNIST file ({e})") from e
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise DataError(f"{path}: truncated idx file ({len(data)} bytes)")
    fields = np.frombuffer(data[:header], dtype=">u4")
    if int(fields[0]) != magic:
        raise DataError(f"{path}: bad idx magic number {int(fields[0])}, expected {magic}")
    shape = tuple(int(x) for x in fields[1:])
    body = np.frombuffer(data[header:], dtype=np.uint8)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: idx header says {shape} but the file holds {body.size} values")
    return body.reshape(shape)


def load_mnist(split: str) -> Tuple[np.ndarray, np.ndarray]:
    """MNIST 'train' (60000) or 'test' (10000): uint8 images (N, 28, 28), labels (N,)."""
    if split not in _MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = mnist_dir()
    img_name, lab_name = _MNIST_FILES[split]
    images = _read_idx(os.path.join(folder, img_name), 2051, 3)
    labels = _read_idx(os.path.join(folder, lab_name), 2049, 1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{folder}: {img_name} has {images.shape[0]} images but {lab_name} has "
                        f"{labels.shape[0]} labels")
    return images, labels


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _dilate(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """(2r+1)x(2r+1) binary dilation (square), r times a 3x3 one."""
    for _ in range(radius - 1):
        mask = _dilate(mask)
    p = np.pad(mask, 1)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(3):
        for dx in range(3):
            out |= p[dy:dy + h, dx:dx + w]
    return out


def render_sample(rng: np.random.Generator, digits: np.ndarray, digit_labels: np.ndarray,
                  size: int = 128, digit_scale: Tuple[float, float] = (0.35, 0.75),
                  label_dilation: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """One canvas: (RGB uint8 (H, W, 3), label uint8 (H, W) in 0..11). Each digit's side is a
    U[digit_scale) fraction of the canvas's shorter side. `label_dilation` > 0 widens each digit's
    label by that fraction of the digit's side around the stroke, so thin strokes stay resolvable
    at the decoder's output stride 8."""
    h = max(32, int(round(size * rng.uniform(0.75, 1.25))))
    w = max(32, int(round(size * rng.uniform(0.75, 1.5))))
    # Background: a base colour, smooth colour variation and pixel noise.
    base = rng.uniform(30, 225, size=3).astype(np.float32)
    coarse = rng.normal(0, 35, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.float32)
    img = base + cv2_resize_bilinear(coarse, (w, h))
    img += rng.standard_normal(size=(h, w, 3), dtype=np.float32) * np.float32(8.0)
    label = np.ones((h, w), dtype=np.uint8)

    for _ in range(int(rng.integers(2, 5))):
        k = int(rng.integers(len(digits)))
        side = min(h, w, max(12, int(min(h, w) * rng.uniform(*digit_scale))))
        alpha = np.clip(cv2_resize_bilinear(digits[k].astype(np.float32) / 255.0, (side, side)), 0.0, 1.0)
        stroke = alpha >= _STROKE
        if label_dilation > 0:
            stroke = _dilate(stroke, max(1, int(round(side * label_dilation))))
        # A few placement tries to limit overlap with earlier digits.
        for _ in range(5):
            y = int(rng.integers(0, h - side + 1))
            x = int(rng.integers(0, w - side + 1))
            covered = label[y:y + side, x:x + side][stroke] != 1
            if covered.size == 0 or covered.mean() < 0.1:
                break
        # Tint far from the background on every channel (circular offset).
        colour = (base + 128 + rng.uniform(-45, 45, size=3)) % 256
        patch = img[y:y + side, x:x + side]
        a = alpha[..., None]
        img[y:y + side, x:x + side] = patch * (1 - a) + colour.astype(np.float32) * a
        rim = ((alpha > _RIM) | _dilate(stroke)) & ~stroke
        lab = label[y:y + side, x:x + side]
        lab[rim] = 0
        lab[stroke] = 2 + int(digit_labels[k])
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), label


_SPLITS = (("training", "train", "ADE_train"), ("validation", "test", "ADE_val"))


@functools.lru_cache(maxsize=2)
def _cached_mnist(split: str) -> Tuple[np.ndarray, np.ndarray]:
    return load_mnist(split)


def _write_range(root: str, split_id: int, start: int, stop: int, size: int, seed: int,
                 classes: Tuple[int, ...] = tuple(range(10)), digit_scale: Tuple[float, float] = (0.35, 0.75),
                 label_dilation: float = 0.0) -> int:
    """Render and save samples start..stop-1 (1-based) of one split."""
    split, mnist_split, prefix = _SPLITS[split_id]
    digits, digit_labels = _cached_mnist(mnist_split)
    keep = np.isin(digit_labels, classes)  # only these digits are drawn; the class list stays 11
    digits, digit_labels = digits[keep], digit_labels[keep]
    img_dir = os.path.join(root, "images", split)
    ann_dir = os.path.join(root, "annotations", split)
    for i in range(start, stop):
        rng = demo_image_rng(seed, split_id, i)
        rgb, label = render_sample(rng, digits, digit_labels, size, digit_scale, label_dilation)
        name = f"{prefix}_{i:08d}"
        Image.fromarray(rgb).save(os.path.join(img_dir, name + ".jpg"), quality=95)
        Image.fromarray(label).save(os.path.join(ann_dir, name + ".png"))
    return stop - start


def build_demo_dataset(out: str, num_train: int = 2000, num_val: int = 200, size: int = 128,
                       seed: int = 0, workers: Optional[int] = None, digits: Sequence[int] = DEMO_DIGITS,
                       digit_scale: Tuple[float, float] = (0.35, 0.75),
                       label_dilation: float = DEMO_LABEL_DILATION) -> str:
    """Write ``<out>/ADEChallengeData2016/{images,annotations}/{training,validation}``.

    Images are JPEG (quality 95), labels 8-bit PNG. Sample i of a split is a
    function of (seed, split, i) only, so the output does not depend on
    ``workers`` (processes to use; default: up to 8 CPUs for large jobs, 0 =
    this process). ``digits`` restricts which MNIST digits are drawn (the 11-class list and label
    values stay the same; absent classes are NaN in the metric and do not count in mIoU).
    Returns the ADEChallengeData2016 path.
    """
    digits = tuple(sorted({int(d) for d in digits}))
    if not digits or not all(0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be a non-empty subset of 0..9, got {digits}")
    lo, hi = float(digit_scale[0]), float(digit_scale[1])
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"digit_scale must satisfy 0 < lo <= hi <= 1, got {digit_scale}")
    if num_train < 1 or num_val < 1:
        raise ValueError(f"need at least one train and one val image, got {num_train} / {num_val}")
    if size < 32:
        raise ValueError(f"size must be at least 32, got {size}")
    root = os.path.join(str(out), "ADEChallengeData2016")
    for split, _, _ in _SPLITS:
        os.makedirs(os.path.join(root, "images", split), exist_ok=True)
        os.makedirs(os.path.join(root, "annotations", split), exist_ok=True)
    counts = (num_train, num_val)
    total = num_train + num_val
    if workers is None:
        workers = min(8, os.cpu_count() or 1) if total >= 500 else 0
    chunk = 250
    jobs = [(root, split_id, a, min(a + chunk, counts[split_id] + 1), size, seed, digits, (lo, hi),
             float(label_dilation))
            for split_id in range(2) for a in range(1, counts[split_id] + 1, chunk)]
    if workers <= 1:
        for job in jobs:
            _write_range(*job)
        return root
    # spawn, not fork: the caller may run Jittor threads.
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_write_range, *zip(*jobs)))
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (ADEChallengeData2016 is created inside)")
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--size", type=int, default=128, help="nominal canvas side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", default=",".join(map(str, DEMO_DIGITS)),
                        help="comma-separated MNIST digits to draw (default %(default)s; 0,1,...,9 for all)")
    parser.add_argument("--digit-scale", default="0.35,0.75",
                        help="digit side as a fraction lo,hi of the canvas's shorter side")
    parser.add_argument("--label-dilation", type=float, default=DEMO_LABEL_DILATION,
                        help="widen digit labels around the stroke by this fraction of the digit size "
                             "(default %(default)s; 0 = stroke pixels only)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 8; 0 = serial)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    try:
        digits = [int(d) for d in args.digits.split(",") if d.strip()]
        scale = tuple(float(v) for v in args.digit_scale.split(","))
        root = build_demo_dataset(args.out, args.num_train, args.num_val, args.size, args.seed,
                                  workers=args.workers, digits=digits, digit_scale=scale,
                                  label_dilation=args.label_dilation)
    except (DataError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.num_train} train and {args.num_val} val images to {root} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
