"""Trainer: bit-reproducibility, resume after SIGKILL, bad input, NaN handling (tiny model, CPU)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import DEMO_CFG, ROOT, TIMING_KEYS

from segnext_jt import load_config
from segnext_jt.engine.trainer import Trainer, TrainingDivergedError
from segnext_jt.io import load_npz
from segnext_jt.memory import peak_host_mb



def _train(tmp_path, options, seed, name, **kw):
    cfg = load_config(DEMO_CFG, options)
    work = tmp_path / name
    trainer = Trainer(cfg, str(work), seed=seed, progress=False, logger=lambda *a: None, **kw)
    result = trainer.train()
    return work, result


def _weights(path):
    arrays, _ = load_npz(path)
    return {k: v for k, v in arrays.items() if k.startswith("state_dict/")}


def _train_lines(work):
    lines = [json.loads(x) for x in open(work / "log.json")]
    return [{k: v for k, v in l.items() if k not in TIMING_KEYS} for l in lines[1:] if l.get("mode") == "train"]


def test_same_seed_bit_identical_different_seed_differs(tmp_path, tiny_train_options):
    a, res_a = _train(tmp_path, tiny_train_options, 0, "a")
    b, res_b = _train(tmp_path, tiny_train_options, 0, "b")
    c, _ = _train(tmp_path, tiny_train_options, 1, "c")
    wa, wb, wc = (_weights(w / "iter_6.npz") for w in (a, b, c))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), f"{k} differs between two runs with the same seed"
    assert any(not np.array_equal(wa[k], wc[k]) for k in wa), "seed 1 gave the same weights as seed 0"
    assert _train_lines(a) == _train_lines(b) and len(_train_lines(a)) == 3
    assert _train_lines(a) != _train_lines(c)
    assert res_a.final_loss == res_b.final_loss
    # the log is mmseg 0.x log.json: line 1 metadata, then train/val lines with the official keys
    lines = [json.loads(x) for x in open(a / "log.json")]
    assert {"env_info", "seed", "config", "CLASSES"} <= set(lines[0]) and lines[0]["seed"] == 0
    assert "Device: cpu\nMachine: " in lines[0]["env_info"] and "\nCPU ISA: " in lines[0]["env_info"]
    assert lines[0]["memory_kind"] == "host_rss_mb"  # on CUDA: device_reserved_mb (tests/test_memory.py)
    assert lines[0]["platform"]["deterministic"] == "native" and "\nBits id: " in lines[0]["env_info"]
    summary = json.loads((a / "train_result.json").read_text())
    assert summary["platform"]["bits_id"] == lines[0]["platform"]["bits_id"]  # the fingerprint, in both
    train = next(l for l in lines if l.get("mode") == "train")
    assert list(train) == ["mode", "epoch", "iter", "lr", "memory", "data_time", "decode.loss_ce",
                           "decode.acc_seg", "loss", "time"]
    assert 50 < train["memory"] <= peak_host_mb() + 1  # this process's RSS in MB, so not above its peak now
    val = next(l for l in lines if l.get("mode") == "val")
    assert val["iter"] == 6 and 0 <= val["mIoU"] <= 1 and "IoU.background" in val and "Acc.nine" in val


def _run_train_cli(args, **kw):
    env = dict(os.environ, SEGNEXT_DEVICE="cpu")
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "train.py"), DEMO_CFG, "--no-progress",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path, tiny_train_options):
    # log_interval 3 does not divide checkpoint_interval 4: the log window open at a checkpoint is
    # saved in it, so the lines after the resume average the same iterations as the reference
    opts = tiny_train_options + ["train.max_iters=24", "train.checkpoint_interval=4", "train.eval_interval=24",
                                 "train.log_interval=3"]
    ref = tmp_path / "ref"
    proc = _run_train_cli(["--work-dir", str(ref), "--seed", "3", "--cfg-options", *opts])
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out

    killed = tmp_path / "killed"
    proc = _run_train_cli(["--work-dir", str(killed), "--seed", "3", "--cfg-options", *opts])
    deadline = time.time() + 600
    while not (killed / "iter_8.npz").exists():
        assert proc.poll() is None, "run finished before it could be killed: " + proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "iter_24.npz").exists(), "the run was not interrupted"
    with open(killed / "log.json", "a") as f:  # as if killed in the middle of writing a line
        f.write('{"mode": "train", "epoch": 1, "iter": 99, "lr": 0.000')
    (killed / ".iter_99.npz.abcdef.tmp").write_bytes(b"PK")  # and of writing a checkpoint

    proc = _run_train_cli(["--work-dir", str(killed), "--seed", "3", "--resume", "--cfg-options", *opts])
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert sum("warning" in line and "log.json" in line for line in out.splitlines()) == 1, out
    assert not [n for n in os.listdir(killed) if n.endswith(".tmp")]
    w_ref, w_res = _weights(ref / "iter_24.npz"), _weights(killed / "iter_24.npz")
    for k in w_ref:
        assert w_ref[k].dtype == w_res[k].dtype, f"{k} is {w_res[k].dtype} after resume"
        assert np.array_equal(w_ref[k], w_res[k]), f"{k} differs after kill + resume"
    assert _train_lines(ref) == _train_lines(killed)  # the log was rewound and continued
    assert [l["iter"] for l in _train_lines(ref)] == [3, 6, 9, 12, 15, 18, 21, 24]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_train_options):
    cfg = load_config(DEMO_CFG, tiny_train_options)
    trainer = Trainer(cfg, str(tmp_path / "nan"), seed=0, progress=False, logger=lambda *a: None)
    real_loss = trainer.model.loss
    calls = {"n": 0}

    def poisoned(*args, **kw):
        out = real_loss(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    trainer.model.loss = poisoned
    with pytest.raises(TrainingDivergedError, match="at iteration 4"):
        trainer.train()
    assert (tmp_path / "nan" / "iter_2.npz").exists() and not (tmp_path / "nan" / "iter_4.npz").exists()


def test_resume_refuses_another_seed(tmp_path, tiny_train_options):
    work, _ = _train(tmp_path, tiny_train_options + ["train.max_iters=2", "train.eval_interval=100"], 0, "s")
    cfg = load_config(DEMO_CFG, tiny_train_options)
    with pytest.raises(ValueError, match="seed 0, not 5"):
        Trainer(cfg, str(work), seed=5, resume="auto", progress=False, logger=lambda *a: None)


@pytest.mark.slow
def test_missing_dataset_is_one_clear_error(tmp_path, tiny_train_options):
    proc = _run_train_cli(["--work-dir", str(tmp_path / "w"), "--cfg-options", *tiny_train_options,
                           f"data.root={tmp_path / 'nowhere'}"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2  # a path error (README), found before the work dir is created
    assert "nowhere" in out and "Traceback" not in out and not (tmp_path / "w").exists()


@pytest.mark.slow
def test_unknown_config_key_is_reported_with_hint(tmp_path):
    proc = _run_train_cli(["--cfg-options", "train.max_iter=5"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "did you mean 'max_iters'" in out
