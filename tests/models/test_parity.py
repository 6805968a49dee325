"""Parity with the mmseg 1.2.2 reference fixtures (produced in PyTorch), within the fixture README's
float32 tolerance rule. The checkpoints are read by our torch-free .pth reader."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import assert_close_fwd, fixture_dir, fixture_model, pad_bottom_right, predict_logits

import jittor as jt
from jittor import nn

from segnext_jt.models.layers import resize_bilinear

# every parity test runs on both compute paths (see conftest.compute_path)
pytestmark = pytest.mark.usefixtures("compute_path")

EVAL_FIXTURES = ["tiny-test_eval_64x64", "tiny-test_eval_lowvar_64x64", "tiny-test_eval_97x131"]


def _load(name, file):
    return np.load(fixture_dir(name) / file)


@pytest.mark.parametrize("name", EVAL_FIXTURES)
def test_eval_fixture_stages_head_and_logits(name):
    model = fixture_model(name)
    model.eval()
    x = jt.array(_load(name, "input.npy"))
    raw = _load(name, "bases_raw.npy")
    feats = model.backbone(x)
    for i in range(4):
        assert_close_fwd(feats[i], _load(name, f"stage{i + 1}.npy"), f"{name} stage{i + 1}")

    # head intermediates, walking the head's own submodules in its data-flow order. The 97x131
    # fixture recorded them on its last forward, the mmseg 1.x padded one (128x160 input).
    head = model.decode_head
    head_feats = model.backbone(pad_bottom_right(x, 32)) if name.endswith("97x131") else feats
    levels = [head_feats[i] for i in head.in_index]
    concat = jt.concat([resize_bilinear(f, levels[0].shape[2:]) for f in levels], dim=1)
    assert_close_fwd(concat, _load(name, "head_concat.npy"), "head_concat")
    squeeze = head.squeeze(concat)
    assert_close_fwd(squeeze, _load(name, "head_squeeze.npy"), "head_squeeze")
    ham_in = head.hamburger.ham_in(squeeze)
    assert_close_fwd(ham_in, _load(name, "head_ham_in_prerelu.npy"), "head_ham_in_prerelu")
    nmf_out = head.hamburger.ham(nn.relu(ham_in), None, raw)
    assert_close_fwd(nmf_out, _load(name, "head_nmf.npy"), "head_nmf")
    ham = head.hamburger(squeeze, None, raw)
    assert_close_fwd(ham, _load(name, "head_hamburger.npy"), "head_hamburger")
    assert_close_fwd(head.align(ham), _load(name, "head_align.npy"), "head_align")

    logits = head(feats, None, raw)
    assert_close_fwd(logits, _load(name, "logits.npy"), f"{name} logits")
    full = model.encode_decode(x, None, raw)
    assert_close_fwd(full, _load(name, "seg_logits_full.npy"), f"{name} seg_logits_full")
    pred = np.argmax(full.numpy(), axis=1)
    agree = float((pred == _load(name, "pred.npy")).mean())
    assert agree >= 0.9999, f"argmax agreement {agree}"


def test_injected_bases_normalisation_matches_reference():
    from segnext_jt.models.ham_head import l2_normalize_columns
    name = "tiny-test_eval_64x64"
    got = l2_normalize_columns(jt.array(_load(name, "bases_raw.npy")))
    assert_close_fwd(got, _load(name, "bases.npy"), "normalised bases")


def test_fp64_reference_agrees_too():
    name = "tiny-test_eval_64x64"
    model = fixture_model(name)
    model.eval()
    logits = model.decode_head(model.backbone(jt.array(_load(name, "input.npy"))), None,
                               _load(name, "bases_raw.npy"))
    assert_close_fwd(logits, _load(name, "logits_fp64.npy").astype(np.float32), "logits vs fp64")


def test_padded_test_path_matches_mmseg1_pipeline():
    name = "tiny-test_eval_97x131"
    meta = json.loads((fixture_dir(name) / "meta.json").read_text())
    model = fixture_model(name)
    model.eval()
    x = jt.array(_load(name, "input.npy"))
    raw = _load(name, "bases_raw.npy")
    padded = pad_bottom_right(x, 32)
    assert list(padded.shape[2:]) == meta["pipeline"]["padded_shape"]
    head_logits = model.decode_head(model.backbone(padded), None, raw)
    assert_close_fwd(head_logits, _load(name, "logits_padded.npy"), "logits_padded")
    seg = predict_logits(model, x, pipeline="pad", size_divisor=32, nmf_bases=raw)
    assert_close_fwd(seg, _load(name, "seg_logits_pipeline.npy"), "seg_logits_pipeline")
    # and the padded path really differs from the unpadded one (the fixture says 17% of pixels)
    unpadded = np.argmax(_load(name, "seg_logits_full.npy"), 1)
    assert (np.argmax(seg.numpy(), 1) != unpadded).mean() > 0.05


@pytest.mark.parametrize("name", ["tiny-test_train_64x64", "t_train_128x128"])
def test_train_step_loss_gradients_and_bn_stats(name):
    model = fixture_model(name)
    model.train()
    meta = json.loads((fixture_dir(name) / "meta.json").read_text())
    x = jt.array(_load(name, "input.npy"))
    label = jt.array(_load(name, "label.npy").astype(np.int32))
    out = model.loss(x, label, None, _load(name, "bases_raw.npy"))
    ref = json.loads((fixture_dir(name) / "loss.json").read_text())
    assert abs(out["decode.loss_ce"].item() - ref["loss_ce"]) <= 1e-5
    assert abs(out["decode.acc_seg"].item() - ref["acc_seg"]) <= 1e-3

    grads_ref = np.load(fixture_dir(name) / "grads.npz")
    names = list(grads_ref.files)
    if name.startswith("tiny"):
        assert len(names) == 201  # every parameter of the model
    state = model.state_dict()
    grads = jt.grad(out["loss"], [state[n] for n in names])
    scale = max(float(np.abs(grads_ref[n]).max()) for n in names)
    for n, g in zip(names, grads):
        err = float(np.abs(g.numpy() - grads_ref[n]).max())
        assert err <= 1e-4 * scale, f"grad {n}: {err:.3e} > {1e-4 * scale:.3e}"

    bn_ref = np.load(fixture_dir(name) / "bn_running_after.npz")
    state = model.state_dict()
    for key in bn_ref.files:
        got = state[key].numpy()
        if key.endswith("num_batches_tracked"):
            assert int(got) == int(bn_ref[key]), key
        else:
            assert_close_fwd(got, bn_ref[key], key)
    assert meta["loss"]["num_ignored"] > 0  # the fixture exercises ignore_index


@pytest.mark.parametrize("name", EVAL_FIXTURES[:2])
def test_eval_fixture_under_no_grad(name):
    """Inference as the evaluator runs it (jt.no_grad, where the fast path fuses fc1's bias, the
    Mlp's depthwise conv and GELU into one kernel)."""
    model = fixture_model(name)
    model.eval()
    with jt.no_grad():
        x = jt.array(_load(name, "input.npy"))
        feats = model.backbone(x)
        for i in range(4):
            assert_close_fwd(feats[i], _load(name, f"stage{i + 1}.npy"), f"{name} stage{i + 1}")
        full = model.encode_decode(x, None, _load(name, "bases_raw.npy"))
    assert_close_fwd(full, _load(name, "seg_logits_full.npy"), f"{name} seg_logits_full")
