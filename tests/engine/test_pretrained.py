"""ImageNet weights into training and evaluation: the strict backbone load (only the classifier
head.* may differ), the trainer initialising the backbone from a URL on a local server (in process,
through tools/train.py and the seed sweep) and stopping before it writes anything when the weights
cannot be had, and tools/eval.py / tools/infer.py taking a URL or zoo:NAME."""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from _weights_server import (Route, closed_port_url, hashed_name, home, imagenet_file_bytes,  # noqa: F401
                             server, tiny_backbone)
from helpers import CLI_ENV, CONFIGS, DEMO_CFG, FakeModel, TINY_DIR, key_list, one_error_line, run_cli, tool_cmd

from segnext_jt import hub
from segnext_jt.errors import CheckpointMismatchError, CheckpointNotFoundError
from segnext_jt.io import load_checkpoint


# ------------------------------------------------------------------------------------------------
# strict backbone loading
# ------------------------------------------------------------------------------------------------
def _write_pretrain(tmp_path: Path, backbone) -> Path:
    path = tmp_path / "pre.pth"
    path.write_bytes(imagenet_file_bytes(tmp_path, backbone))
    return path


def test_backbone_strict_drops_only_the_classifier(tmp_path):
    model = FakeModel.from_keys(TINY_DIR)
    report = load_checkpoint(model, _write_pretrain(tmp_path, tiny_backbone()), logger=None, backbone_strict=True)
    n_backbone = sum(k.startswith("backbone.") for k, _, _ in key_list(TINY_DIR))
    assert len(report.matched) == n_backbone and report.dropped == ["head.weight", "head.bias"] and report.strict

    extra = tiny_backbone()
    extra["block1.0.extra_scale"] = np.ones(3, np.float32)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected in checkpoint \(1\)[\s\S]*block1.0.extra_scale"):
        load_checkpoint(model, _write_pretrain(tmp_path, extra), logger=None, backbone_strict=True)
    short = tiny_backbone()
    short.pop("norm4.weight")
    with pytest.raises(CheckpointMismatchError, match=r"missing in checkpoint \(1\)[\s\S]*backbone.norm4.weight"):
        load_checkpoint(model, _write_pretrain(tmp_path, short), logger=None, backbone_strict=True)
    wide = tiny_backbone()
    wide["norm4.bias"] = np.zeros(wide["norm4.bias"].shape[0] + 1, np.float32)
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch[\s\S]*backbone.norm4.bias"):
        load_checkpoint(model, _write_pretrain(tmp_path, wide), logger=None, backbone_strict=True)
    # the same files load non-strictly without backbone_strict (mmseg's init_cfg behaviour)
    assert load_checkpoint(model, _write_pretrain(tmp_path, extra), logger=None).unexpected == [
        "backbone.block1.0.extra_scale"]
    with pytest.raises(CheckpointMismatchError, match="whole segmentation model.*--backbone-only"):
        load_checkpoint(model, TINY_DIR / "checkpoint.pth", logger=None, backbone_strict=True)


# ------------------------------------------------------------------------------------------------
# the trainer and tools/train.py
# ------------------------------------------------------------------------------------------------
def demo_imagenet_file(tmp_path: Path, options) -> "tuple[bytes, OrderedDict]":
    """An ImageNet-format file for the tiny demo model of `options`, random values (seeded)."""
    from segnext_jt import build_segmentor, load_config
    state = build_segmentor(load_config(DEMO_CFG, options)).state_dict()
    rng = np.random.default_rng(7)
    backbone = OrderedDict()
    for key, var in state.items():
        if not key.startswith("backbone."):
            continue
        shape, dtype = tuple(var.shape), np.dtype(str(var.dtype))
        if key.endswith("num_batches_tracked"):
            value = np.full(shape, 11, dtype)
        elif key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape).astype(dtype)
        else:
            value = rng.normal(0, 0.05, shape).astype(dtype)
        backbone[key[len("backbone."):]] = value
    return imagenet_file_bytes(tmp_path, backbone), backbone


def test_trainer_initialises_the_backbone_from_a_url(server, home, tmp_path, tiny_train_options):
    from segnext_jt import load_config
    from segnext_jt.engine.trainer import Trainer
    body, backbone = demo_imagenet_file(tmp_path, tiny_train_options)
    url = server.serve(f"/{hashed_name('mscan_demo', body)}", Route(body))
    cfg = load_config(DEMO_CFG, tiny_train_options + [f"model.backbone.pretrained={url}"])
    lines = []
    trainer = Trainer(cfg, str(tmp_path / "w"), seed=0, progress=False, logger=lines.append)
    try:
        state = trainer.model.state_dict()
        for key, value in backbone.items():
            assert np.array_equal(state["backbone." + key].numpy(), value), key
        meta = json.loads((tmp_path / "w" / "log.json").read_text().splitlines()[0])
    finally:
        trainer.close()
    n = len(backbone)
    init = [line for line in lines if line.startswith("backbone initialised from")]
    assert init == [f"backbone initialised from {home / os.path.basename(url)} ({url}): {n}/{n} keys matched, "
                    "2 ImageNet classifier keys (head.*) dropped"]
    assert meta["pretrained"] == {"spec": url, "path": str(home / os.path.basename(url)), "url": url,
                                  "keys_matched": n, "keys_dropped": ["head.weight", "head.bias"]}

    missing = load_config(DEMO_CFG, tiny_train_options + [f"model.backbone.pretrained={tmp_path / 'nope.pth'}"])
    with pytest.raises(CheckpointNotFoundError, match="nope.pth.*model.backbone.pretrained=null"):
        Trainer(missing, str(tmp_path / "w2"), seed=0, progress=False, logger=lines.append)
    assert not (tmp_path / "w2").exists()


@pytest.mark.slow
def test_train_cli_prints_the_init_line_and_stops_offline_before_writing(server, tmp_path, tiny_train_options):
    body, backbone = demo_imagenet_file(tmp_path, tiny_train_options)
    url = server.serve(f"/{hashed_name('mscan_demo', body)}", Route(body))
    env = {k: v for k, v in CLI_ENV.items() if k not in ("SEGNEXT_OFFLINE", "SEGNEXT_HUB_MIRROR")}
    env["SEGNEXT_HOME"] = str(tmp_path / "home")
    work = tmp_path / "w"
    proc = run_cli(tool_cmd("tools", "train.py") + [DEMO_CFG, "--work-dir", str(work), "--no-progress",
                                                     "--cfg-options", *tiny_train_options, "train.max_iters=2",
                                                     "train.eval_interval=100", f"model.backbone.pretrained={url}"],
                   env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    n = len(backbone)
    assert f"({url}): {n}/{n} keys matched, 2 ImageNet classifier keys (head.*) dropped" in proc.stdout
    assert (work / "iter_2.npz").exists()

    offline = closed_port_url("mscan_l_20230227-cef260d4.pth")
    work2 = tmp_path / "w2"
    proc = run_cli(tool_cmd("tools", "train.py") + [DEMO_CFG, "--work-dir", str(work2), "--no-progress",
                                                     "--cfg-options", *tiny_train_options,
                                                     f"model.backbone.pretrained={offline}"], env=env)
    one_error_line(proc, offline, str(tmp_path / "home" / "checkpoints" / "mscan_l_20230227-cef260d4.pth"),
                   "--cfg-options model.backbone.pretrained=null", code=2)
    assert not work2.exists()


@pytest.mark.slow
def test_eval_cli_takes_a_url_and_zoo_names(server, tmp_path, tiny_train_options, tiny_checkpoint):
    from helpers import eval_demo
    body = Path(tiny_checkpoint).read_bytes()
    url = server.serve(f"/{hashed_name('tiny_ade', body)[:-4]}.npz", Route(body))
    env = {k: v for k, v in CLI_ENV.items() if k != "SEGNEXT_OFFLINE"}
    env["SEGNEXT_HOME"] = str(tmp_path / "home")
    proc = run_cli(tool_cmd("tools", "eval.py") + [DEMO_CFG, url, "--json", str(tmp_path / "m.json"), "--no-progress",
                                                    "--cfg-options", *tiny_train_options], env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "m.json").read_text())
    cached = tmp_path / "home" / "checkpoints" / os.path.basename(url)
    assert summary["checkpoint"] == str(cached) and cached.read_bytes() == body
    assert summary["mIoU"] == eval_demo(tiny_train_options, tiny_checkpoint)["mIoU"]

    # the released ADE20K SegNeXt-L by name: offline (conftest) it stops at once with the one line
    proc = run_cli(tool_cmd("tools", "eval.py") + [str(CONFIGS / "segnext_l.yaml"), "zoo:segnext_l"],
                   env=dict(CLI_ENV, SEGNEXT_HOME=str(tmp_path / "home2")))
    name = os.path.basename(hub.ZOO["segnext_l"])
    one_error_line(proc, hub.ZOO["segnext_l"], str(tmp_path / "home2" / "checkpoints" / name),
                   "SEGNEXT_OFFLINE=1", code=2)
    proc = run_cli(tool_cmd("tools", "eval.py") + [str(CONFIGS / "segnext_l.yaml"), "zoo:segnext_ll"], env=env)
    one_error_line(proc, "did you mean zoo:segnext_l", code=2)
    proc = run_cli(tool_cmd("tools", "infer.py") + [str(tmp_path / "img.jpg"), "--checkpoint", "zoo:segnext_t",
                                                     "--config", str(CONFIGS / "segnext_t.yaml"),
                                                     "--out", str(tmp_path / "o")],
                   env=dict(CLI_ENV, SEGNEXT_HOME=str(tmp_path / "home2")))
    one_error_line(proc, hub.ZOO["segnext_t"], "SEGNEXT_OFFLINE=1", code=2)


@pytest.mark.slow
def test_seed_sweep_fetches_once_before_workers_and_dry_run_downloads_nothing(server, tmp_path, tiny_train_options):
    from helpers import sweep_cmd
    url = server.serve("/mscan_demo-0123abcd.pth", Route(b"not the weights"))  # fails its hash check
    env = {k: v for k, v in CLI_ENV.items() if k != "SEGNEXT_OFFLINE"}
    env["SEGNEXT_HOME"] = str(tmp_path / "home")
    options = tiny_train_options + [f"model.backbone.pretrained={url}"]
    proc = run_cli(sweep_cmd(tmp_path / "sweep", options, "--seeds", "0..1", "--dry-run"), env=env)
    assert proc.returncode == 0 and server.requests == [], proc.stderr[-2000:]
    proc = run_cli(sweep_cmd(tmp_path / "sweep", options, "--seeds", "0..1"), env=env)
    lines = proc.stderr.strip().splitlines()  # "downloading URL to PATH", then the one error line
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(lines) == 2, proc.stderr
    assert lines[0].startswith("downloading ") and lines[1].startswith("error: cannot download ")
    for needle in (url, str(tmp_path / "home" / "checkpoints" / "mscan_demo-0123abcd.pth"), "0123abcd",
                   "model.backbone.pretrained=null"):
        assert needle in lines[1], needle
    assert len(server.requests) == 1 and not (tmp_path / "sweep").exists()  # no worker started, nothing written
