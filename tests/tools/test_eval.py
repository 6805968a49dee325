"""tools/eval.py end to end: outputs (metrics JSON, predictions, overlays), a --json into a missing
directory, and SIGTERM mid-evaluation (one line, quick exit, no partial files)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import CLI_ENV, DEMO_CFG, ROOT, our_stderr_lines, run_cli, tool_cmd

pytestmark = pytest.mark.slow  # every test runs tools/eval.py in a subprocess (tests/README.md)


def test_eval_cli_end_to_end_with_outputs(tmp_path, tiny_train_options, tiny_checkpoint):
    out_json = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval.py"), DEMO_CFG, tiny_checkpoint,
                           "--out-dir", str(tmp_path / "pred"), "--json", str(out_json), "--no-progress",
                           "--cfg-options", *tiny_train_options], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, SEGNEXT_DEVICE="cpu"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mIoU" in proc.stdout and "background" in proc.stdout  # summary and per-class table
    summary = json.loads(out_json.read_text())
    assert 0 <= summary["mIoU"] <= 100 and set(summary["per_class"]) >= {"background", "zero", "seven"}
    assert summary["platform"]["device"] == "cpu" and proc.stdout.startswith("device cpu | CPU ")
    pngs = sorted(p.name for p in (tmp_path / "pred").glob("*.png"))
    overlays = sorted((tmp_path / "pred").glob("*_overlay.jpg"))
    assert len(pngs) == summary["num_images"] == len(overlays)
    from PIL import Image
    pred = np.array(Image.open(tmp_path / "pred" / pngs[0]))
    assert pred.dtype == np.uint8 and pred.max() < 11


def test_eval_json_into_missing_dir_and_sigterm_leaves_no_partial_files(tmp_path, tiny_train_options,
                                                                        tiny_checkpoint):
    from prepare_demo_data import build_demo_dataset
    build_demo_dataset(str(tmp_path / "data"), num_train=2, num_val=120, size=64, seed=1)
    options = tiny_train_options + [f"data.root={tmp_path / 'data' / 'ADEChallengeData2016'}"]
    # 1. a --json whose directory does not exist yet is created (only checked up front)
    small = run_cli(tool_cmd("tools", "eval.py") + [DEMO_CFG, tiny_checkpoint, "--limit", "2", "--no-progress",
                                              "--json", str(tmp_path / "missing_dir" / "m.json"),
                                              "--cfg-options", *options], timeout=600)
    assert small.returncode == 0, small.stderr[-2000:]
    assert json.loads((tmp_path / "missing_dir" / "m.json").read_text())["num_images"] == 2
    # 2. SIGTERM in the middle of an evaluation: one line, quick exit, no partial outputs
    pred, out_json = tmp_path / "pred", tmp_path / "m.json"
    proc = subprocess.Popen(tool_cmd("tools", "eval.py") + [DEMO_CFG, tiny_checkpoint, "--ms-flip", "--no-progress",
                                                         "--out-dir", str(pred), "--json", str(out_json),
                                                         "--cfg-options", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV, cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 600
        while not (pred.is_dir() and any(p.suffix == ".png" for p in pred.iterdir())):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no prediction written"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=120)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode == 0:
        pytest.skip("the evaluation finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err and len(our_stderr_lines(err)) == 1, err
    assert "interrupted by SIGTERM" in err
    assert elapsed < 60  # the requirement is 10 s; generous for a loaded machine
    assert not out_json.exists(), "metrics written although interrupted"
    names = [p.name for p in pred.iterdir()]
    assert not [n for n in names if n.endswith(".tmp")], names
    from PIL import Image
    for p in pred.iterdir():
        with Image.open(p) as im:
            im.load()  # every file that is there is complete


def test_eval_out_dir_keeps_same_named_images_in_sub_folders_apart(tmp_path, demo_root, tiny_train_options,
                                                                     tiny_checkpoint):
    """val/a/x.jpg and val/b/x.jpg wrote one x.png (4 images evaluated, 3 prediction pairs left):
    outputs keep the path relative to the split's image folder."""
    import shutil
    root = tmp_path / "ade"
    shutil.copytree(demo_root, root)
    images, annotations = root / "images" / "validation", root / "annotations" / "validation"
    stems = sorted(p.stem for p in images.glob("*.jpg"))
    moves = {stems[0]: "a/x", stems[1]: "b/x", stems[2]: "b/deeper/x", stems[3]: "a/y"}
    for stem, new in moves.items():
        for folder, suffix in ((images, ".jpg"), (annotations, ".png")):
            (folder / new).parent.mkdir(parents=True, exist_ok=True)
            (folder / (stem + suffix)).rename(folder / (new + suffix))
    out = tmp_path / "pred"
    proc = run_cli(tool_cmd("tools", "eval.py") + [DEMO_CFG, tiny_checkpoint, "--out-dir", str(out), "--no-progress",
                                                   "--json", str(tmp_path / "m.json"), "--cfg-options",
                                                   *tiny_train_options, f"data.root={root}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = sorted(list(moves.values()) + stems[4:])
    assert json.loads((tmp_path / "m.json").read_text())["num_images"] == len(expected)
    assert sorted(str(p.relative_to(out))[:-4] for p in out.rglob("*.png")) == expected
    assert sorted(str(p.relative_to(out))[:-len("_overlay.jpg")] for p in out.rglob("*_overlay.jpg")) == expected


def test_batched_flag_reaches_the_config_and_the_summary(tmp_path, tiny_train_options, tiny_checkpoint):
    out_json = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval.py"), DEMO_CFG, tiny_checkpoint,
                           "--batch-size", "4", "--batched", "--limit", "8", "--json", str(out_json),
                           "--no-progress", "--cfg-options", *tiny_train_options],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, SEGNEXT_DEVICE="cpu"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out_json.read_text())
    assert summary["batched"] is True and summary["forward_calls"] == summary["num_images"] > 1
