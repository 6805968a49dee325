"""segnext_jt.data.loader: the train loader is identical with workers and after a resume, splits a
global batch by slots; load errors name the file; the val loader keeps the order."""
from __future__ import annotations

import multiprocessing as mp
import shutil

import numpy as np
import pytest

from segnext_jt.data import (DemoMNISTDataset, SampleLoadError, TrainLoader, ValLoader,
                             build_train_pipeline)


def _batches(loader, n):
    with loader:
        return [next(loader) for _ in range(n)]


def test_train_loader_workers_and_resume_identical(small_demo_dir):
    ds = DemoMNISTDataset(str(small_demo_dir / "ADEChallengeData2016"), "training")
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
    # batch(it): the iteration's batch on demand (the trainer's resume warm-up), iterator unmoved.
    with TrainLoader(ds, pipe, batch_size=3, seed=7, slots=[0, 2], start_iter=2, num_workers=1) as loader:
        warm = loader.batch(2)
        assert warm["gt_seg"].dtype == np.int64 and warm["iter"] == 2
        np.testing.assert_array_equal(warm["img"], ref[2]["img"][[0, 2]])
        nxt = next(loader)
    for key in ("img", "gt_seg"):
        np.testing.assert_array_equal(warm[key], nxt[key])
    assert nxt["iter"] == 2 and warm["filenames"] == nxt["filenames"]


def test_loader_errors_name_the_file(small_demo_dir, tmp_path, monkeypatch):
    src = small_demo_dir / "ADEChallengeData2016"
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
    without_workers = str(info.value)
    loader = TrainLoader(ds, pipe, batch_size=n, seed=0, num_workers=1)
    workers = list(loader._pool._procs)
    with pytest.raises(SampleLoadError, match=r"ADE_train_00000004\.jpg.*DataError") as info:
        with loader:
            next(loader)
    assert str(info.value) == without_workers and "\n" not in without_workers  # one line, workers or not
    assert not any(p.is_alive() for p in workers)
    monkeypatch.setenv("SEGNEXT_DEBUG", "1")  # the worker's traceback, for debugging
    with pytest.raises(SampleLoadError, match=r"(?s)ADE_train_00000004\.jpg.*worker traceback.*DataError"):
        with TrainLoader(ds, pipe, batch_size=n, seed=0, num_workers=1) as loader:
            next(loader)
    # The ordered val iterator with a worker reports the same way.
    val = ValLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(SampleLoadError, match="ADE_train_00000004.jpg"):
        list(val)


def test_val_loader_ordered(small_demo_dir):
    ds = DemoMNISTDataset(str(small_demo_dir / "ADEChallengeData2016"), "validation")
    batches = list(ValLoader(ds, batch_size=3))
    assert [len(b) for b in batches] == [3, 1]
    assert [s.filename for b in batches for s in b] == [ds.filename(i) for i in range(4)]
    assert batches[0][0].img.dtype == np.uint8 and batches[0][0].gt_seg.dtype == np.uint8


def test_worker_error_words_the_worker_report_once(monkeypatch):
    # the worker sends (type name, message, filename, traceback); a SampleLoadError's message already
    # names its cause, anything else (a crash outside the sample loader) gets its type in front
    from segnext_jt.data.loader import worker_error
    monkeypatch.delenv("SEGNEXT_DEBUG", raising=False)
    own = worker_error(("SampleLoadError", "failed to load a.jpg (dataset index 3): DataError: bad", "a.jpg", "tb"))
    assert (str(own), own.filename) == ("failed to load a.jpg (dataset index 3): DataError: bad", "a.jpg")
    other = worker_error(("MemoryError", "out of memory", None, "tb"))
    assert (str(other), other.filename) == ("MemoryError: out of memory", None)
