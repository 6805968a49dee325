"""tools/freeze_nmf_bases.py: frozen NMF bases make evaluation independent of the eval seed; what a
frozen checkpoint needs (rand_init=false) is said, bad inputs are refused."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import DEMO_CFG, METRIC_KEYS, ROOT, eval_demo

from segnext_jt.errors import CheckpointMismatchError
from segnext_jt.rng import NMF_STORED_BASES_KEY, nmf_bases

pytestmark = pytest.mark.slow  # every test runs tools/freeze_nmf_bases.py in a subprocess (tests/README.md)


FREEZE = os.path.join(ROOT, "tools", "freeze_nmf_bases.py")


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
    a = eval_demo(tiny_train_options, str(out), *frozen, "eval.seed=0")
    b = eval_demo(tiny_train_options, str(out), *frozen, "eval.seed=7")
    for key in METRIC_KEYS:
        assert a[key] == b[key], key
    # a different bases seed is a different model
    other = tmp_path / "frozen6.npz"
    assert _freeze(tiny_checkpoint, other, "--seed", "6", "--rank", "4").returncode == 0
    c = eval_demo(tiny_train_options, str(other), *frozen)
    assert c["metric_state"] != a["metric_state"]
    # --config takes the rank from the config (the demo config's md_r is 8)
    assert _freeze(tiny_checkpoint, tmp_path / "r8.npz", "--config", DEMO_CFG).returncode == 0
    assert read_checkpoint(str(tmp_path / "r8.npz")).state_dict["decode_head.hamburger.ham.bases"].shape == (1, 16, 8)


def test_frozen_checkpoint_with_rand_init_true_says_what_to_do(tmp_path, tiny_train_options, tiny_checkpoint):
    out = tmp_path / "frozen.npz"
    assert _freeze(tiny_checkpoint, out, "--rank", "4").returncode == 0
    with pytest.raises(CheckpointMismatchError, match="rand_init=false"):
        eval_demo(tiny_train_options, str(out))
    with pytest.raises(CheckpointMismatchError, match="freeze_nmf_bases"):
        eval_demo(tiny_train_options, tiny_checkpoint, "model.decode_head.ham.rand_init=false")


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
