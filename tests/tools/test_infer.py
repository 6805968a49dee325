"""tools/infer.py on a user's images: a label PNG and an overlay per image, a missing image named."""
from __future__ import annotations

import os
import subprocess
import sys

from helpers import DEMO_CFG, ROOT


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
