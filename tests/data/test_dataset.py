"""segnext_jt.data.dataset: folder-structure and content errors that name the file, image modes,
palette labels, EXIF orientation."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from segnext_jt.data import SegDataset, read_image_bgr
from segnext_jt.errors import DataError


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


def test_float_label_maps_are_refused(tmp_path):
    """A mode-F label (values 257.0, -254.0) would become class ids 1 and 2 by a uint8 cast."""
    root = _tree(tmp_path, names=("f",), img_ext=".png")
    Image.new("RGB", (6, 5)).save(root / "images" / "training" / "f.png")
    Image.fromarray(np.array([[257.0, -254.0]] * 5, dtype=np.float32)).save(root / "annotations" / "training" / "f.tif")
    label = root / "annotations" / "training" / "f.png"
    os.replace(root / "annotations" / "training" / "f.tif", label)
    ds = _seg(root, img_suffix=".png")
    with pytest.raises(DataError, match=r"f\.png: label map stored in mode F; expected .*integer mode"):
        ds.load_raw(0)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (8, 4), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "x.jpg", exif=exif.tobytes())
    assert read_image_bgr(str(tmp_path / "x.jpg")).shape == (8, 4, 3)


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    """A 60000^2 PNG is a decompression bomb and a 12000^2 one costs gigabytes decoded: one line,
    from the header, for training, infer and the pre-flight check alike."""
    from segnext_jt.data.dataset import read_image_bgr
    from segnext_jt.data.verify import _header
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 200 - 1)  # the same check at a small size
    with pytest.raises(DataError, match=r"big\.png: 300x200 pixels, more than the 59999"):
        read_image_bgr(str(path))
    assert "300x200 pixels" in _header(str(path), "image")[2]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # over 2x the limit: PIL's own bomb error
    with pytest.raises(DataError, match=r"big\.png: "):
        read_image_bgr(str(path))
