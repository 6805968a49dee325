"""Eval-noise reduction: K-draw averaging (eval.nmf_draws / --nmf-draws) and frozen NMF bases
(tools/freeze_nmf_bases.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from conftest import ROOT

import jittor as jt

from segnext_jt import load_config
from segnext_jt.evaluation.run import run_evaluation
from segnext_jt.io.errors import CheckpointMismatchError
from segnext_jt.rng import NMF_EVAL, NMF_STORED_BASES_KEY, nmf_bases, nmf_eval_key

DEMO_CFG = os.path.join(ROOT, "configs", "demo_mnist.yaml")
FREEZE = os.path.join(ROOT, "tools", "freeze_nmf_bases.py")
METRIC_KEYS = ("mIoU", "mAcc", "aAcc", "per_class_iou")


def _summary(opts, ckpt, *extra, **kw):
    return run_evaluation(load_config(DEMO_CFG, list(opts) + list(extra)), ckpt, progress=False, **kw)


def test_draw_zero_key_is_the_single_draw_protocol_key():
    # the key the evaluator used before --nmf-draws existed: (eval namespace, crc32(name), ratio, flip)
    assert nmf_eval_key("a/b/img_1.jpg", 1.25, True) == (NMF_EVAL, zlib.crc32(b"a/b/img_1.jpg"), 1250, 1)
    assert nmf_eval_key("x.jpg", 1.0, False, draw=0) == nmf_eval_key("x.jpg", 1.0, False)
    keys = {nmf_eval_key("x.jpg", 1.0, False, draw=d) for d in range(4)}
    assert len(keys) == 4


def test_predict_draws_equals_separate_predictions(tiny_cfg):
    from segnext_jt import build_segmentor
    model = build_segmentor(tiny_cfg)
    model.eval()
    x = jt.array(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    keys = [[nmf_eval_key(f"im{i}", 1.0, False, d) for i in range(2)] for d in range(3)]
    for mode, extra in (("whole", {}), ("slide", {"crop_size": (32, 32), "stride": (24, 24)})):
        with jt.no_grad():
            together = model.predict_draws(x, keys, mode=mode, **extra)
            alone = [model.predict(x, k, mode=mode, **extra) for k in keys]
        assert len(together) == 3
        for d in range(3):
            assert np.array_equal(together[d].numpy(), alone[d].numpy()), (mode, d)
        assert not np.array_equal(together[0].numpy(), together[1].numpy()), "draws 0 and 1 gave equal logits"


def test_k1_is_todays_protocol_and_k_draws_are_deterministic(tiny_train_options, tiny_checkpoint):
    default = _summary(tiny_train_options, tiny_checkpoint)
    k1 = _summary(tiny_train_options, tiny_checkpoint, "eval.nmf_draws=1")
    assert default["nmf_draws"] == 1
    for key in METRIC_KEYS:
        assert default[key] == k1[key], key
    k3a = _summary(tiny_train_options, tiny_checkpoint, "eval.nmf_draws=3", "eval.batch_size=1")
    k3b = _summary(tiny_train_options, tiny_checkpoint, "eval.nmf_draws=3", "eval.batch_size=4")
    for key in METRIC_KEYS:
        assert k3a[key] == k3b[key], key  # same K and seed: bit-identical, whatever the batch size
    assert k3a["metric_state"] != k1["metric_state"], "3 draws gave exactly the 1-draw confusion counts"
    assert k3a["forward_calls"] == k1["forward_calls"]  # one backbone pass per view, K head passes


def test_k_draw_probabilities_are_the_mean_of_the_single_draws(tiny_train_options, tiny_checkpoint, monkeypatch):
    from segnext_jt.data.build import build_dataset
    from segnext_jt.evaluation.evaluator import Evaluator, View
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    cfg = load_config(DEMO_CFG, tiny_train_options + ["eval.nmf_draws=2"])
    model = build_segmentor(cfg)
    load_checkpoint(model, tiny_checkpoint, logger=lambda *a: None)
    model.eval()
    sample = build_dataset(cfg.data, "val").load_raw(0)
    ev = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, 11)
    got = ev.predict_probs([sample], ms_flip=False)[0]
    singles = []
    for d in range(2):  # what one draw gives: the evaluator with K=1 and draw d's key
        cfg1 = load_config(DEMO_CFG, tiny_train_options)
        ev1 = Evaluator(model, cfg1.eval, cfg1.data.mean, cfg1.data.std, 11)
        with monkeypatch.context() as patch:
            patch.setattr(View, "key", lambda self, name, draw=0, _key=View.key: _key(self, name, d))
            singles.append(ev1.predict_probs([sample], ms_flip=False)[0])
    assert not np.array_equal(singles[0], singles[1])
    np.testing.assert_allclose(got, (singles[0] + singles[1]) / 2, rtol=0, atol=1e-6)


def test_nmf_draws_is_validated(tiny_train_options):
    from segnext_jt.config import ConfigError
    with pytest.raises(ConfigError, match="eval.nmf_draws must be in 1..64, got 0"):
        load_config(DEMO_CFG, tiny_train_options + ["eval.nmf_draws=0"])


# ------------------------------------------------------------------------------ frozen bases
def _freeze(ckpt, out, *args):
    return subprocess.run([sys.executable, FREEZE, str(ckpt), str(out), *args], capture_output=True, text=True,
                          env=dict(os.environ, SEGNEXT_DEVICE="cpu"), timeout=300)


def test_frozen_bases_make_evaluation_independent_of_the_eval_seed(tmp_path, tiny_train_options, tiny_checkpoint):
    out = tmp_path / "frozen.npz"
    proc = _freeze(tiny_checkpoint, out, "--seed", "5", "--rank", "4")
    assert proc.returncode == 0, proc.stderr
    assert "rand_init=false" in proc.stdout
    from segnext_jt.io import read_checkpoint
    stored = read_checkpoint(str(out)).state_dict["decode_head.hamburger.ham.bases"]
    raw = nmf_bases(5, [NMF_STORED_BASES_KEY], 16, 4)  # tiny model: ham_channels 16, md_r 4
    assert stored.shape == (1, 16, 4)
    np.testing.assert_allclose(stored, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6)
    frozen = ["model.decode_head.ham.rand_init=false"]
    a = _summary(tiny_train_options, str(out), *frozen, "eval.seed=0")
    b = _summary(tiny_train_options, str(out), *frozen, "eval.seed=7")
    for key in METRIC_KEYS:
        assert a[key] == b[key], key
    # a different bases seed is a different model
    other = tmp_path / "frozen6.npz"
    assert _freeze(tiny_checkpoint, other, "--seed", "6", "--rank", "4").returncode == 0
    c = _summary(tiny_train_options, str(other), *frozen)
    assert c["metric_state"] != a["metric_state"]
    # --config takes the rank from the config (the demo config's md_r is 8)
    assert _freeze(tiny_checkpoint, tmp_path / "r8.npz", "--config", DEMO_CFG).returncode == 0
    assert read_checkpoint(str(tmp_path / "r8.npz")).state_dict["decode_head.hamburger.ham.bases"].shape == (1, 16, 8)


def test_frozen_checkpoint_with_rand_init_true_says_what_to_do(tmp_path, tiny_train_options, tiny_checkpoint):
    out = tmp_path / "frozen.npz"
    assert _freeze(tiny_checkpoint, out, "--rank", "4").returncode == 0
    with pytest.raises(CheckpointMismatchError, match="rand_init=false"):
        _summary(tiny_train_options, str(out))
    with pytest.raises(CheckpointMismatchError, match="freeze_nmf_bases"):
        _summary(tiny_train_options, tiny_checkpoint, "model.decode_head.ham.rand_init=false")


def test_freeze_refuses_a_backbone_only_file_and_a_bad_output(tmp_path, tiny_checkpoint):
    from segnext_jt.io import KIND_KEY, STATE_DICT_PREFIX, read_checkpoint, save_npz
    sd = read_checkpoint(tiny_checkpoint).state_dict
    backbone = tmp_path / "backbone.npz"
    save_npz(str(backbone), {STATE_DICT_PREFIX + k: v for k, v in sd.items() if k.startswith("backbone.")},
             {KIND_KEY: "backbone"})
    proc = _freeze(backbone, tmp_path / "o.npz")
    assert proc.returncode == 1 and "no SegNeXt decode head" in proc.stderr and str(backbone) in proc.stderr
    proc = _freeze(tiny_checkpoint, tmp_path / "o.pth")
    assert proc.returncode == 2 and "must end with .npz" in proc.stderr
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "o.pth").exists()


# ------------------------------------------------------------------------------ protocol comparison
def test_protocol_rows_pool_within_checkpoint_spread_and_pair_the_shift():
    from repro.eval_noise import SINGLE, protocol_rows
    runs = []
    for c, offset in (("a", 40.0), ("b", 44.0)):
        for s, v in enumerate((-1.0, 1.0)):
            runs.append({"protocol": SINGLE, "checkpoint": c, "eval_seed": s, "mIoU": offset + v, "seconds": 2.0})
            runs.append({"protocol": "mean of 4 draws", "checkpoint": c, "eval_seed": s,
                         "mIoU": offset + 0.5 + v / 4, "seconds": 3.0})
    single, four = protocol_rows(runs)
    assert single["protocol"] == SINGLE and single["shift"] == 0.0 and single["relative_cost"] == 1.0
    assert single["eval_std"] == pytest.approx(np.sqrt(2.0))  # per checkpoint: values -1, +1 around the mean
    assert four["eval_std"] == pytest.approx(np.sqrt(2.0) / 4)
    assert four["shift"] == pytest.approx(0.5) and four["shift_ci"] == pytest.approx([0.5, 0.5])
    assert four["relative_cost"] == pytest.approx(1.5) and four["mean"] == pytest.approx(42.5)


def test_eval_noise_cli_writes_the_table(tmp_path, tiny_train_options, tiny_checkpoint):
    out = tmp_path / "noise"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "repro", "eval_noise.py"), "--config", DEMO_CFG,
                           "--checkpoints", str(tiny_checkpoint), "--eval-seeds", "0..1", "--draws", "2",
                           "--frozen", "--out", str(out), "--cfg-options", *tiny_train_options],
                          capture_output=True, text=True, env=dict(os.environ, SEGNEXT_DEVICE="cpu"), timeout=600)
    assert proc.returncode == 0, proc.stderr
    import json
    data = json.loads((tmp_path / "noise.json").read_text())
    assert [r["protocol"] for r in data["rows"]] == ["1 draw (released)", "mean of 2 draws", "frozen bases"]
    assert len(data["runs"]) == 6
    single = [r["mIoU"] for r in data["runs"] if r["protocol"] == "1 draw (released)"]
    direct = [_summary(tiny_train_options, tiny_checkpoint, f"eval.seed={s}")["mIoU"] for s in (0, 1)]
    assert single == direct  # the table's single-draw numbers are tools/eval.py's
    assert "| mean of 2 draws | 1 × 2 |" in (tmp_path / "noise.md").read_text()
