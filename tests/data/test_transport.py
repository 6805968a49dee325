"""segnext_jt.data.transport: workers send uint8 images and the main process normalises the batch;
the batches are bit-identical to the float32 path (normalised in the workers), padding included."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segnext_jt.data import ADE20KDataset, Compose, Normalize, RandomFlip, TrainLoader, build_train_pipeline
from segnext_jt.data.sampling import load_train_sample, load_unnormalized_train_sample, sample_indices
from segnext_jt.data.transport import split_off_normalize


@pytest.fixture(scope="module")
def ade_like(tmp_path_factory):
    """Six ADE20K-layout pairs of two sizes (smooth colours + noise, JPEG; labels 0..150 in bands)."""
    root = tmp_path_factory.mktemp("ade_like")
    (root / "images" / "training").mkdir(parents=True)
    (root / "annotations" / "training").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(48, 64), (64, 48)] * 3):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 4 + i * 30) % 256, (yy * 5) % 256, (xx + yy) * 2 % 256], -1)
        img = img + rng.integers(0, 40, (h, w, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / "training" / f"{i}.jpg",
                                                                   quality=90)
        label = ((xx // 9 + yy // 7 * 5 + i * 11) % 151).astype(np.uint8)
        Image.fromarray(label, mode="L").save(root / "annotations" / "training" / f"{i}.png")
    return ADE20KDataset(str(root), "training")


def _pipeline():
    # Crops of 40x40 from images resized to a short side of 20..60: some need padding.
    return build_train_pipeline(crop_size=(40, 40), scale=(160, 40), ratio_range=(0.5, 1.5))


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32) if a.dtype == np.float32 else a  # -0.0 vs 0.0 would count


def test_deferred_normalisation_equals_the_float32_samples(ade_like):
    pipe = _pipeline()
    worker_pipe, deferred = split_off_normalize(pipe)
    assert [type(t).__name__ for t in worker_pipe.transforms][-1] == "PhotoMetricDistortion"
    padded = 0
    for it in range(6):
        idx = sample_indices(5, it, 4, len(ade_like))
        ref = [load_train_sample(ade_like, pipe, 5, it, s, idx[s]) for s in range(4)]
        raw = [load_unnormalized_train_sample(ade_like, worker_pipe, 5, it, s, idx[s]) for s in range(4)]
        assert all(r[0].dtype == np.uint8 and r[0].shape[0] == 3 for r in raw)
        padded += sum(r[0].shape[1:] != (40, 40) for r in raw)
        img, seg = deferred.collate([r[0] for r in raw], [r[1] for r in raw])
        assert img.dtype == np.float32 and seg.dtype == np.int64
        np.testing.assert_array_equal(_bits(img), _bits(np.stack([r[0] for r in ref])))
        np.testing.assert_array_equal(seg, np.stack([r[1] for r in ref]).astype(np.int64))
    assert padded > 0  # the padding branch ran


def test_loader_batches_bit_identical_across_transports(ade_like):
    pipe = _pipeline()
    got = {}
    for name, kwargs in {"in-process": {}, "float32": {"num_workers": 2, "transport": "float32"},
                         "uint8": {"num_workers": 2, "transport": "uint8"}}.items():
        with TrainLoader(ade_like, pipe, batch_size=4, seed=3, max_iters=4, **kwargs) as loader:
            if name == "uint8":
                assert loader._deferred is not None
            got[name] = list(loader)
    for name in ("float32", "uint8"):
        for a, b in zip(got["in-process"], got[name]):
            np.testing.assert_array_equal(_bits(a["img"]), _bits(b["img"]))
            np.testing.assert_array_equal(a["gt_seg"], b["gt_seg"])
            assert a["filenames"] == b["filenames"] and a["img"].shape == b["img"].shape == (4, 3, 40, 40)


def test_pipelines_without_a_trailing_normalize_travel_as_they_are():
    assert split_off_normalize(Compose([RandomFlip()])) is None
    assert split_off_normalize(lambda results, rng: results) is None
    head, deferred = split_off_normalize(Compose([RandomFlip(), Normalize()]))
    assert len(head.transforms) == 1 and deferred.pad is None
    with pytest.raises(ValueError, match="transport"):
        TrainLoader(None, None, batch_size=1, seed=0, transport="float16")
