"""tools/infer.py on a user's images: a label PNG and an overlay per image, a missing image named."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import DEMO_CFG, ROOT


@pytest.mark.slow
def test_infer_cli_on_users_images(tmp_path, demo_root, tiny_train_options, tiny_checkpoint):
    images = sorted((demo_root / "images" / "validation").glob("*.jpg"))[:2]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), *map(str, images),
                           "--config", DEMO_CFG, "--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "o"),
                           "--cfg-options", *tiny_train_options], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, SEGNEXT_DEVICE="cpu"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for img in images:
        assert (tmp_path / "o" / (img.stem + ".png")).exists()
        assert (tmp_path / "o" / (img.stem + "_overlay.jpg")).exists()
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), str(tmp_path / "nope.jpg"),
                          "--config", DEMO_CFG, "--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "o"),
                          "--cfg-options", *tiny_train_options], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, SEGNEXT_DEVICE="cpu"))
    assert bad.returncode == 1 and "nope.jpg" in bad.stderr


# ------------------------------------------------------------ issue 18: no output overwrites another
def test_output_names_keep_relative_paths_and_never_collide(tmp_path):
    from segnext_jt.evaluation.visualize import output_names
    assert output_names([]) == {}
    assert output_names(["/d/x.jpg"]) == {"/d/x.jpg": "x"}  # one folder: as before, the file's stem
    assert output_names(["/v/a/x.jpg", "/v/b/x.jpg", "/v/y.jpg"]) == {"/v/a/x.jpg": "a/x", "/v/b/x.jpg": "b/x",
                                                                         "/v/y.jpg": "y"}
    assert output_names(["/v/a/b/x.jpg", "/v/a/b/y.jpg"]) == {"/v/a/b/x.jpg": "x", "/v/a/b/y.jpg": "y"}
    names = output_names(["/v/x.jpg", "/v/x.png", "/v/x.JPG", "/v/z.jpg"])  # same stem, other suffix
    assert names == {"/v/x.jpg": "x.jpg", "/v/x.png": "x.png", "/v/x.JPG": "x.JPG", "/v/z.jpg": "z"}
    names = output_names(["/p/x.jpg", "/q/r/x.jpg", "/x.jpg"])  # disjoint roots, absolute paths
    assert sorted(names.values()) == ["p/x", "q/r/x", "x"]
    rel = output_names(["a/x.jpg", "b/x.jpg", os.path.join(str(tmp_path), "a", "x.jpg")])
    assert len(set(rel.values())) == 3 and not any(v.startswith(("/", "..")) for v in rel.values())
    many = [f"/v/{d}/img.jpg" for d in "abcdefgh"] + ["/v/img.jpg", "/v/a/img.png"]
    assert len(set(output_names(many).values())) == len(many)


@pytest.mark.slow
def test_infer_keeps_same_named_images_apart(tmp_path, demo_root, tiny_train_options, tiny_checkpoint):
    """val/a/x.jpg and val/b/x.jpg wrote one x.png; now each image gets its own outputs."""
    import shutil
    import numpy as np
    from PIL import Image
    sources = sorted((demo_root / "images" / "validation").glob("*.jpg"))[:4]
    inputs = [tmp_path / "in" / "a" / "x.jpg", tmp_path / "in" / "b" / "x.jpg", tmp_path / "in" / "b" / "c" / "x.jpg",
              tmp_path / "in" / "a" / "x.png"]
    for src, dst in zip(sources, inputs):
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.suffix == ".png":
            Image.open(src).save(dst)
        else:
            shutil.copy(src, dst)
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), *map(str, inputs),
                           "--config", DEMO_CFG, "--checkpoint", tiny_checkpoint, "--out", str(out),
                           "--cfg-options", *tiny_train_options], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, SEGNEXT_DEVICE="cpu"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = ["a/x.jpg", "a/x.png", "b/c/x", "b/x"]
    labels = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    overlays = sorted(str(p.relative_to(out)) for p in out.rglob("*_overlay.jpg"))
    assert labels == sorted(e + ".png" for e in expected)
    assert overlays == sorted(e + "_overlay.jpg" for e in expected)
    for name in expected:
        assert np.array(Image.open(out / (name + ".png"))).ndim == 2
