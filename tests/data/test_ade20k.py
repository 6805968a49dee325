"""segnext_jt.data.ade20k (and the demo's ADE20K-layout dataset): reading the demo tree, label
reduction, BGR images, the class metadata."""
from __future__ import annotations

import numpy as np
from PIL import Image

from segnext_jt.data import (ADE20K_CLASSES, ADE20K_PALETTE, DEMO_CLASSES, ADE20KDataset, DemoMNISTDataset,
                             build_train_pipeline)


def test_ade20k_dataset_reads_demo_tree(small_demo_dir):
    ds = ADE20KDataset(str(small_demo_dir), "train")  # parent of ADEChallengeData2016, 'train' alias
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
    demo = DemoMNISTDataset(str(small_demo_dir / "ADEChallengeData2016"), "validation")
    assert len(demo) == 4 and demo.classes == DEMO_CLASSES and demo.num_classes == 11


def test_class_metadata():
    assert len(ADE20K_CLASSES) == 150 == len(ADE20K_PALETTE)
    assert ADE20K_CLASSES[7] == "bed " and ADE20K_CLASSES[0] == "wall" and ADE20K_CLASSES[-1] == "flag"
    assert ADE20K_PALETTE[0] == (120, 120, 120) and ADE20K_PALETTE[-1] == (92, 0, 255)
    assert len(DEMO_CLASSES) == 11 and DEMO_CLASSES[0] == "background" and DEMO_CLASSES[10] == "nine"
