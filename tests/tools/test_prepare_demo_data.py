"""tools/prepare_demo_data.py: the MNIST-derived demo data set: layout, determinism per seed, workers
give the same bytes, a missing jittor-offline is one clear error."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from prepare_demo_data import build_demo_dataset, render_sample  # tools/, on sys.path (conftest.py)

from segnext_jt.errors import DataError


def test_demo_generator_layout_and_determinism(small_demo_dir, tmp_path):
    base = small_demo_dir / "ADEChallengeData2016"
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


def test_demo_parallel_equals_serial_and_missing_package(small_demo_dir, tmp_path, monkeypatch):
    build_demo_dataset(str(tmp_path / "p"), num_train=10, num_val=4, size=64, seed=0, workers=2)
    base = small_demo_dir / "ADEChallengeData2016"
    for sub in ("images/training", "annotations/validation"):
        for name in os.listdir(base / sub):
            assert (tmp_path / "p" / "ADEChallengeData2016" / sub / name).read_bytes() == (base / sub / name).read_bytes()
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    from prepare_demo_data import load_mnist
    with pytest.raises(DataError, match="jittor-offline"):
        load_mnist("test")


def test_demo_render_varies_size():
    from prepare_demo_data import load_mnist
    digits, labels = load_mnist("test")
    shapes = {render_sample(np.random.default_rng(i), digits, labels, 128)[0].shape for i in range(6)}
    assert len(shapes) > 1
