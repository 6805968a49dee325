"""segnext_jt.engine.preflight (tools/train.py --check, seed_sweep.py --check): every check runs, a
bad file, unreachable weights or a full disk is a FAIL row naming it, and nothing is ever written."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from helpers import DEMO_CFG, ROOT, run_cli, sweep_cmd, tool_cmd

from segnext_jt import load_config
from segnext_jt.engine import preflight
from segnext_jt.engine.preflight import FAIL, OK, run_preflight


def _rows(report):
    return {check: (status, detail) for check, status, detail in report.rows}


def test_demo_passes_every_check_and_writes_nothing(tmp_path, tiny_train_options):
    cfg = load_config(DEMO_CFG, tiny_train_options)
    work = tmp_path / "never_created"
    report = run_preflight(cfg, str(work), progress=False)
    rows = _rows(report)
    assert report.ok and not work.exists()
    assert [c for c, _, _ in report.rows] == ["config", "device", "data: train", "data: val", "data: pipeline",
                                              "weights", "training step", "time", "disk"]
    assert "32 image/label pairs" in rows["data: train"][1] and "6 image/label pairs" in rows["data: val"][1]
    assert "crop 32x32" in rows["data: pipeline"][1]
    assert "s/iteration" in rows["training step"][1] and "batch 2" in rows["training step"][1]
    assert "for 6 iterations x 1 run(s)" in rows["time"][1]
    assert "nothing was written" in report.table()


def _custom_tree(root, bad_label_mode=None, mismatched=False):
    for split in ("train", "val"):
        (root / "img" / split).mkdir(parents=True)
        (root / "ann" / split).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 48, 3), 30 * i, np.uint8)).save(root / "img" / split / f"s{i}.png")
            label = np.zeros((40, 48), np.uint8)
            label[:, 24:] = 1
            Image.fromarray(label).save(root / "ann" / split / f"s{i}.png")
    if bad_label_mode == "F":  # a float label map, found by its header alone
        Image.fromarray(np.ones((40, 48), np.float32)).save(root / "ann" / "val" / "s2.tif")
        os.replace(root / "ann" / "val" / "s2.tif", root / "ann" / "val" / "s2.png")
    if mismatched:
        Image.fromarray(np.zeros((41, 48), np.uint8)).save(root / "ann" / "train" / "s1.png")


def _custom_options(root, tiny_train_options):
    keep = [o for o in tiny_train_options if not o.startswith("data.root=")]
    return keep + [f"data.root={root}", "data.dataset=custom", "data.classes=[bg, fg]",
                   "model.decode_head.num_classes=2", "data.train_dirs={img_dir: img/train, ann_dir: ann/train}",
                   "data.val_dirs={img_dir: img/val, ann_dir: ann/val}", "data.img_suffix=.png",
                   "data.reduce_zero_label=false"]


@pytest.mark.parametrize("defect, needle", [
    ({"bad_label_mode": "F"}, "s2.png: label map stored in mode F"),
    ({"mismatched": True}, "image size 48x40 does not match its label"),
])
def test_custom_data_defects_are_found_before_any_step(tmp_path, tiny_train_options, defect, needle):
    root = tmp_path / "custom"
    _custom_tree(root, **defect)
    cfg = load_config(DEMO_CFG, _custom_options(root, tiny_train_options))
    report = run_preflight(cfg, str(tmp_path / "work"), progress=False)
    failed = [(c, d) for c, s, d in report.rows if s == FAIL]
    assert len(failed) == 1 and failed[0][0].startswith("data:") and needle in failed[0][1], report.table()
    assert "training step" not in _rows(report) and not report.ok


def test_custom_data_passes(tmp_path, tiny_train_options):
    root = tmp_path / "custom"
    _custom_tree(root)
    report = run_preflight(load_config(DEMO_CFG, _custom_options(root, tiny_train_options)), str(tmp_path / "w"),
                           progress=False)
    assert report.ok, report.table()
    assert "3 image/label pairs" in _rows(report)["data: train"][1]


def test_unreachable_weights_and_full_disk_fail(tmp_path, tiny_train_options, monkeypatch):
    cfg = load_config(DEMO_CFG, tiny_train_options + ["model.backbone.pretrained=http://127.0.0.1:9/mscan_x.pth"])
    monkeypatch.setattr(preflight, "free_bytes", lambda work_dir: 1000)
    report = run_preflight(cfg, str(tmp_path / "work"), progress=False)
    rows = _rows(report)
    assert rows["weights"][0] == FAIL and "http://127.0.0.1:9/mscan_x.pth" in rows["weights"][1]
    assert "pretrained=null" in rows["weights"][1] and rows["training step"][0] == OK  # timed all the same
    assert rows["disk"][0] == FAIL and "1000 B free" in rows["disk"][1]
    assert rows["data: train"][0] == OK


def test_checkpoint_bytes_counts_weights_and_moments(tiny_train_options):
    from segnext_jt.models import build_segmentor
    model = build_segmentor(load_config(DEMO_CFG, tiny_train_options))
    weights = sum(int(np.prod(v.shape)) for v in model.state_dict().values())
    params = sum(int(np.prod(p.shape)) for p in model.parameters() if p.requires_grad)
    assert preflight.checkpoint_bytes(model) == 4 * (weights + 2 * params)


@pytest.mark.slow
def test_train_and_sweep_check_commands(tmp_path, tiny_train_options):
    work = tmp_path / "work"
    proc = run_cli([*tool_cmd("tools", "train.py"), DEMO_CFG, "--check", "--no-progress", "--work-dir", str(work),
                    "--cfg-options", *tiny_train_options])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "pre-flight: ready to train (nothing was written)" in proc.stdout and not work.exists()
    sweep = tmp_path / "sweep"
    proc = run_cli(sweep_cmd(sweep, tiny_train_options, "--seeds", "0..2", "--check", "--procs", "2"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "x 3 run(s), 2 at a time" in proc.stdout and not sweep.exists()


@pytest.mark.slow
def test_print_config_shows_the_resolved_chain():
    proc = run_cli([*tool_cmd("tools", "train.py"), str(ROOT / "configs" / "segnext_l_cityscapes.yaml"),
                    "--print-config"])
    assert proc.returncode == 0, proc.stderr
    resolved = load_config(ROOT / "configs" / "segnext_l_cityscapes.yaml")
    assert "base:" not in proc.stdout and "depths: [3, 5, 27, 3]" in proc.stdout and "dataset: cityscapes" in proc.stdout
    import yaml
    from segnext_jt.config import config_from_dict
    assert config_from_dict(yaml.safe_load(proc.stdout)).to_dict() == resolved.to_dict()


@pytest.mark.parametrize("keep, expected", [(3, 4), (0, 7), (10, 7)])
def test_disk_estimate_counts_the_checkpoints_kept(tmp_path, tiny_train_options, keep, expected):
    """6 iterations, a checkpoint every 1 -> 6 written; max_keep_checkpoints=0 keeps them all; +1 for
    the atomic write's temporary file."""
    from segnext_jt.models import build_segmentor
    from segnext_jt.engine.preflight import PreflightReport, check_budget
    cfg = load_config(DEMO_CFG, tiny_train_options + ["train.checkpoint_interval=1",
                                                      f"train.max_keep_checkpoints={keep}"])
    report = PreflightReport()
    check_budget(cfg, build_segmentor(cfg), None, str(tmp_path), runs=1, parallel=1, report=report)
    assert f"({expected} x " in _rows(report)["disk"][1]
