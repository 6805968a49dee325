"""segnext_jt.data.cityscapes: the leftImg8bit / gtFine layout with labelTrainIds."""
from __future__ import annotations

import numpy as np
from PIL import Image

from segnext_jt.data import CityscapesDataset


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
