"""The paper's other benchmarks: each layout on a tiny synthetic tree in its real file naming, built
from its real config. Checks the image/label pairing and the class ids of known pixels."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT

from segnext_jt import load_config
from segnext_jt.data.build import build_dataset
from segnext_jt.errors import DataError

CONFIGS = os.path.join(ROOT, "configs")
W, H = 8, 6


def _image(path, shade: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (W, H), (shade, shade, shade)).save(path)


def _label(path, values, mode: str = "L") -> np.ndarray:
    """A label whose first row holds `values` (the rest 0), saved as an 8-bit L or palette PNG."""
    arr = np.zeros((H, W), np.uint8)
    arr[0, :len(values)] = values
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = Image.fromarray(arr, mode="L")
    if mode == "P":  # VOC/iSAID-style palette PNG: the indices are the class ids, not the colours
        im = im.convert("P")
        im.putpalette([(i * 37) % 256 for i in range(768)])
    im.save(path)
    return arr


def _dataset(config: str, root, split: str, *options):
    cfg = load_config(os.path.join(CONFIGS, config), [f"data.root={root}", *options])
    return build_dataset(cfg.data, split, cfg.model.decode_head.num_classes)


def _pairs(ds):
    return [(os.path.relpath(i, ds.root), os.path.relpath(a, ds.root)) for i, a in ds.samples]


def test_cityscapes_pairs_train_ids_and_skips_raw_label_ids(tmp_path):
    root = tmp_path / "cityscapes"
    for city, shade in (("aachen", 10), ("bonn", 20)):
        stem = f"{city}_000000_000019"
        _image(root / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png", shade)
        _label(root / "gtFine" / "train" / city / f"{stem}_gtFine_labelTrainIds.png", [0, 18, 255])
        _label(root / "gtFine" / "train" / city / f"{stem}_gtFine_labelIds.png", [7, 33, 0])  # raw ids: not read
    ds = _dataset("segnext_t_cityscapes.yaml", root, "train")
    assert _pairs(ds) == [(f"leftImg8bit/train/{c}/{c}_000000_000019_leftImg8bit.png",
                           f"gtFine/train/{c}/{c}_000000_000019_gtFine_labelTrainIds.png") for c in ("aachen", "bonn")]
    raw = ds.load_raw(1)
    assert raw.img[0, 0, 0] == 20 and raw.gt_seg[0, :3].tolist() == [0, 18, 255]
    assert ds.classes[0] == "road" and ds.classes[18] == "bicycle"


def test_voc_aug_joins_official_and_sbd_masks_by_split_files(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for name, shade in (("2007_000032", 1), ("2007_000039", 2), ("2008_000008", 3)):
        _image(root / "JPEGImages" / f"{name}.jpg", shade * 60)
    lists = root / "ImageSets" / "Segmentation"
    os.makedirs(lists)
    (lists / "train.txt").write_text("2007_000032\n")
    (lists / "aug.txt").write_text("2008_000008\n")
    (lists / "val.txt").write_text("2007_000039\n")
    _label(root / "SegmentationClass" / "2007_000032.png", [0, 15, 255], mode="P")  # person, border
    _label(root / "SegmentationClass" / "2007_000039.png", [1, 20], mode="P")
    _label(root / "SegmentationClassAug" / "2008_000008.png", [12, 7])  # SBD mask written by voc_aug.py
    _label(root / "SegmentationClassAug" / "2007_000032.png", [3])  # not listed in aug.txt: not used
    train = _dataset("segnext_l_voc12aug.yaml", root, "train")
    assert _pairs(train) == [("JPEGImages/2007_000032.jpg", "SegmentationClass/2007_000032.png"),
                             ("JPEGImages/2008_000008.jpg", "SegmentationClassAug/2008_000008.png")]
    assert train.load_label(0)[0, :3].tolist() == [0, 15, 255] and train.classes[15] == "person"
    assert train.load_label(1)[0, :2].tolist() == [12, 7] and train.classes[12] == "dog"
    val = _dataset("segnext_l_voc12aug.yaml", root, "val")
    assert _pairs(val) == [("JPEGImages/2007_000039.jpg", "SegmentationClass/2007_000039.png")]
    assert val.load_label(0)[0, :2].tolist() == [1, 20] and val.classes[20] == "tvmonitor"
    (lists / "aug.txt").write_text("2008_000008\n2008_000009\n")
    with pytest.raises(DataError, match=r"aug\.txt: sample '2008_000009' has no image"):
        _dataset("segnext_l_voc12aug.yaml", root, "train")


def test_pascal_context_59_reduces_background_away(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2010"
    for name in ("2008_000002", "2008_000003"):
        _image(root / "JPEGImages" / f"{name}.jpg", 50)
        _label(root / "SegmentationClassContext" / f"{name}.png", [0, 1, 59, 33])
    lists = root / "ImageSets" / "SegmentationContext"
    os.makedirs(lists)
    (lists / "train.txt").write_text("2008_000002\n")
    (lists / "val.txt").write_text("2008_000003\n")
    ds = _dataset("segnext_l_pascal_context59.yaml", root, "val")
    assert _pairs(ds) == [("JPEGImages/2008_000003.jpg", "SegmentationClassContext/2008_000003.png")]
    # stored 0 = background (not one of the 59) -> ignore; 1 (aeroplane) -> 0; 59 (wood) -> 58
    assert ds.load_label(0)[0, :4].tolist() == [255, 0, 58, 32]
    assert (ds.classes[0], ds.classes[58], ds.classes[32]) == ("aeroplane", "wood", "light")
    assert len(_dataset("segnext_l_pascal_context59.yaml", root, "train")) == 1


def test_coco_stuff_train_ids_and_raw_id_mapping(tmp_path):
    root = tmp_path / "coco_stuff164k"
    for name in ("000000000009", "000000000025"):
        _image(root / "images" / "val2017" / f"{name}.jpg", 90)
        # the converter writes *_labelTrainIds.png next to the raw stuffthingmaps png
        _label(root / "annotations" / "val2017" / f"{name}_labelTrainIds.png", [0, 11, 80, 170, 255])
        _label(root / "annotations" / "val2017" / f"{name}.png", [0, 12, 91, 181, 255])
    ds = _dataset("segnext_t_coco_stuff164k.yaml", root, "val")
    assert _pairs(ds) == [(f"images/val2017/{n}.jpg", f"annotations/val2017/{n}_labelTrainIds.png")
                          for n in ("000000000009", "000000000025")]
    assert ds.load_label(0)[0, :5].tolist() == [0, 11, 80, 170, 255]
    raw = _dataset("segnext_t_coco_stuff164k.yaml", root, "val", "data.seg_map_suffix=.png",
                   "data.label_map=coco_stuff164k")
    assert [os.path.basename(a) for _, a in raw.samples] == ["000000000009.png", "000000000025.png"]
    ids = raw.load_label(1)[0, :5].tolist()
    assert ids == [0, 11, 80, 170, 255]
    # raw id 12 is COCO category 13 (stop sign; 12 'street sign' is unused), 91 is category 92 (banner)
    assert [raw.classes[i] for i in ids[:4]] == ["person", "stop sign", "banner", "wood"]
    _label(root / "annotations" / "val2017" / "000000000025.png", [11])  # an id COCO never uses
    with pytest.raises(DataError, match=r"000000000025\.png: stored label values \[11\] are not in data.label_map"):
        raw.load_label(1)


def test_isaid_patches_in_mmseg_and_jseg_layouts(tmp_path):
    root = tmp_path / "iSAID"
    patches = ("P0000_0_896_0_896", "P0000_0_896_512_1408")
    for i, stem in enumerate(patches):
        _image(root / "img_dir" / "train" / f"{stem}.png", 30 + i)
        _label(root / "ann_dir" / "train" / f"{stem}_instance_color_RGB.png", [0, 1, 15, 255], mode="P")
    ds = _dataset("segnext_t_isaid.yaml", root, "train")
    assert _pairs(ds) == [(f"img_dir/train/{s}.png", f"ann_dir/train/{s}_instance_color_RGB.png")
                          for s in sorted(patches)]
    # no reduce_zero_label: background is class 0 and is evaluated
    assert ds.load_label(0)[0, :4].tolist() == [0, 1, 15, 255]
    assert (ds.classes[0], ds.classes[1], ds.classes[15]) == ("background", "ship", "Harbor")
    # JSeg's converter: {train,val}/images and {train,val}/Semantic_masks, same file names
    jseg = tmp_path / "iSAID_Patches"
    _image(jseg / "val" / "images" / "P0003_0_800_0_800.png", 40)
    _label(jseg / "val" / "Semantic_masks" / "P0003_0_800_0_800_instance_color_RGB.png", [2])
    ds = _dataset("segnext_t_isaid.yaml", jseg, "val",
                  "data.val_dirs={img_dir: val/images, ann_dir: val/Semantic_masks}")
    assert _pairs(ds) == [("val/images/P0003_0_800_0_800.png",
                           "val/Semantic_masks/P0003_0_800_0_800_instance_color_RGB.png")]
    assert ds.load_label(0)[0, 0] == 2 and ds.classes[2] == "store_tank"
