"""repro/replicate.py: re-run a finished seed of a tiny sweep and compare; the comparison itself
on doctored copies (weights, loss line, metrics)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import CLI_ENV, ROOT, sweep_cmd

from segnext_jt.repro.sweep import replicate
from segnext_jt.repro.sweep.results import load_result

REPLICATE = os.path.join(ROOT, "repro", "replicate.py")


def _stored(tmp_path, evals, cfg_options=("a=1",)):
    d = tmp_path / "seed_3"
    d.mkdir(parents=True, exist_ok=True)
    (d / "result.json").write_text(json.dumps({
        "seed": 3, "config": "configs/demo_mnist.yaml", "checkpoint": "seed_3/iter_4.npz", "final_loss": 1.0,
        "train_log": "log.json", "cfg_options": list(cfg_options), "eval": evals}))
    return load_result(d / "result.json", 3)


def test_the_rerun_uses_the_recorded_protocol(tmp_path):
    run = _stored(tmp_path, [{"eval_seed": e, "mode": m, "mIoU": 40.0, "nmf_draws": 2}
                             for e in (4, 1) for m in ("ss", "msflip")])
    argv = replicate.replicate_argv(run, {}, 3, "NEW", None)
    assert os.path.samefile(argv[argv.index("--config") + 1], ROOT / "configs" / "demo_mnist.yaml")
    assert argv[argv.index("--seeds") + 1] == "3" and argv[argv.index("--eval-seeds") + 1] == "1,4"
    assert argv[argv.index("--nmf-draws") + 1] == "2" and "--no-msflip" not in argv
    assert argv[argv.index("--cfg-options") + 1:] == ["a=1"]
    ss_only = _stored(tmp_path, [{"eval_seed": 0, "mode": "ss", "mIoU": 40.0}], cfg_options=())
    argv = replicate.replicate_argv(ss_only, {"cfg_options": ["ignored=1"]}, 3, "NEW", "cpu")
    assert "--no-msflip" in argv and "--cfg-options" not in argv and argv[-2:] == ["--device", "cpu"]


def test_missing_seed_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, REPLICATE, str(tmp_path), "--seed", "5"], capture_output=True,
                          text=True, env=CLI_ENV, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "seed_5/result.json: not found" in proc.stderr


def _doctor(new_dir: Path, seed: int) -> None:
    """Change one weight, the loss of the second train line and one mIoU of a copied run."""
    seed_dir = new_dir / f"seed_{seed}"
    ck = next(seed_dir.glob("iter_*.npz"))
    with np.load(ck) as z:
        arrays = {k: z[k] for k in z.files}
    name = next(k for k in arrays if k.startswith("state_dict/") and arrays[k].dtype == np.float32)
    arrays[name] = arrays[name] + np.float32(1e-3)
    ck.unlink()
    np.savez(ck, **arrays)
    lines = (seed_dir / "log.json").read_text().splitlines()
    train = [i for i, ln in enumerate(lines) if json.loads(ln).get("mode") == "train"]
    rec = json.loads(lines[train[1]])
    rec["loss"] += 1e-6
    lines[train[1]] = json.dumps(rec)
    (seed_dir / "log.json").write_text("\n".join(lines) + "\n")
    res = json.loads((seed_dir / "result.json").read_text())
    res["eval"][0]["mIoU"] += 0.5
    (seed_dir / "result.json").write_text(json.dumps(res))


@pytest.mark.slow
def test_replicate_a_tiny_seed_is_bit_identical_then_catches_doctored_copies(tmp_path, tiny_train_options):
    sweep = tmp_path / "sweep"
    options = tiny_train_options + ["train.max_iters=4", "train.eval_interval=1000",
                                    "train.checkpoint_interval=4", "train.log_interval=1"]
    proc = subprocess.run(sweep_cmd(sweep, options, "--seeds", "1", "--eval-seeds", "0,1", "--no-msflip"),
                          capture_output=True, text=True, env=CLI_ENV, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, REPLICATE, str(sweep), "--seed", "1"], capture_output=True,
                          text=True, env=CLI_ENV, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "BIT-IDENTICAL" in proc.stdout and "ss eval seed 1" in proc.stdout
    out = json.loads((sweep / "replicate_seed_1" / "replicate.json").read_text())
    assert out["bit_identical"] and out["metrics_equal"] and out["relative_l2"] == 0.0
    assert out["weights_sha256"]["stored"] == out["weights_sha256"]["new"]
    assert [(p["mode"], p["eval_seed"], p["delta"]) for p in out["protocols"]] == [("ss", 0, 0.0), ("ss", 1, 0.0)]
    assert out["loss"]["first_differing_iter"] is None and out["loss"]["compared"] == 4
    assert out["config_recorded_equal"] is True
    assert out["platform"]["stored"] == out["platform"]["new"] != "unknown"

    doctored = tmp_path / "doctored"
    shutil.copytree(sweep / "replicate_seed_1", doctored)
    _doctor(doctored, 1)
    new = load_result(doctored / "seed_1" / "result.json", 1)
    diff = replicate.compare_runs(load_result(sweep / "seed_1" / "result.json", 1), sweep, new, doctored)
    assert not diff["bit_identical"] and not diff["metrics_equal"]
    assert 0 < diff["relative_l2"] < 1e-2
    assert diff["loss"]["first_differing_iter"] == 2
    assert diff["protocols"][0]["delta"] == pytest.approx(0.5)
    assert "DIFFERENT" in replicate.table(diff) and "first differs at iter 2" in replicate.table(diff)
