"""segnext_jt.models.segmentor, the public model API: sizes and state-dict layout of T/S/B/L, output
shapes of every forward path (whole, slide, K NMF draws at once), and refusal of a malicious
checkpoint through `segnext_jt.load_checkpoint`.

Everything that runs a forward uses the tiny reference model (tests/fixtures/tiny-test_*), so the
whole file stays fast on a CPU once Jittor's kernels are cached.
"""
from __future__ import annotations

import json
import math
import os
import shlex

import numpy as np
import pytest

import _torch_writer as tw
from helpers import (BN_BUFFERS, CONFIGS, FIXTURES, TINY, Reduce, bits_equal, fixture_config,
                     random_input)

import jittor as jt

from segnext_jt import build_segmentor, load_checkpoint, load_config
from segnext_jt.errors import UnsafeCheckpointError
from segnext_jt.io import read_torch_checkpoint
from segnext_jt.rng import NMF_EVAL, nmf_eval_key


# whole-model parameter counts (mmseg 1.x code, 150 classes; docs/design.md §1.1)
PARAMS = {"t": 4_263_414, "s": 13_932_886, "b": 27_636_310, "l": 48_926_550}


# ---------------------------------------------------------------------------------------------------
# sizes and state-dict layout
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["t", "s", "b", "l"])
def test_parameter_count_and_state_dict_match_mmseg(size):
    model = build_segmentor(load_config(CONFIGS / f"segnext_{size}.yaml"))  # no forward: cheap
    state = model.state_dict()
    n_params = sum(int(np.prod(v.shape)) for k, v in state.items() if not k.endswith(BN_BUFFERS))
    assert n_params == PARAMS[size]

    ref = json.loads((FIXTURES / "keys" / f"{size}.json").read_text())
    assert n_params == ref["num_params_total"]
    assert len(state) == ref["num_tensors"] == len(ref["keys"])
    # same keys in the same (registration) order as a real mmseg 1.x state_dict
    assert list(state) == [key for key, _, _ in ref["keys"]]
    for key, shape, dtype in ref["keys"]:
        got = tuple(state[key].shape)
        if key.endswith("num_batches_tracked"):  # Jittor has no 0-d Vars: () is stored as (1,)
            assert shape == [] and got == (1,), key
        else:
            assert got == tuple(shape), f"{key}: {got} != {tuple(shape)}"
        assert str(state[key].dtype) == dtype, key
    backbone = sum(int(np.prod(v.shape)) for k, v in state.items()
                   if k.startswith("backbone.") and not k.endswith(BN_BUFFERS))
    assert backbone == ref["num_params_backbone"]


# ---------------------------------------------------------------------------------------------------
# forward paths and output shapes
# ---------------------------------------------------------------------------------------------------


def test_backbone_head_and_predict_shapes_on_odd_input(tiny):
    h, w = 97, 131
    x = random_input((1, 3, h, w))
    feats = tiny.backbone(x)
    assert len(feats) == 4
    dims = fixture_config(TINY).model.backbone.embed_dims
    size = (h, w)
    for i, f in enumerate(feats):  # every stage: stride-2 convs, so ceil(H/2) each time
        steps = 2 if i == 0 else 1
        for _ in range(steps):
            size = (math.ceil(size[0] / 2), math.ceil(size[1] / 2))
        assert tuple(f.shape) == (1, dims[i], *size), f"stage {i + 1}"
    assert [tuple(f.shape[2:]) for f in feats] == [(25, 33), (13, 17), (7, 9), (4, 5)]

    keys = [(NMF_EVAL, 0)]
    logits = tiny.decode_head(feats, keys)
    assert tuple(logits.shape) == (1, tiny.num_classes, 13, 17)  # stride 8 = feats[1]
    full = tiny.encode_decode(x, keys)
    assert tuple(full.shape) == (1, tiny.num_classes, h, w)
    assert bits_equal(tiny.predict(x, keys), full)  # 'whole' is the default mode
    assert bits_equal(tiny(x, keys), full)


def test_slide_inference_windows_draw_their_own_nmf_key(tiny):
    x = random_input((1, 3, 64, 80), seed=1)
    crop, stride = (32, 32), (24, 24)
    drawn = []
    sampler = tiny.decode_head.nmf.sampler
    original = sampler.draw

    def recording_draw(keys, batch, d, r):
        drawn.append(None if keys is None else [tuple(k) for k in keys])
        return original(keys, batch, d, r)

    sampler.draw = recording_draw
    try:
        out = tiny.predict(x, [(NMF_EVAL, 42)], mode="slide", crop_size=crop, stride=stride)
        n_windows = len(drawn)
        tiny.set_nmf_seed(0)
        drawn_adhoc_start = len(drawn)
        tiny.predict(x, None, mode="slide", crop_size=crop, stride=stride)
        adhoc_calls = sampler.calls
    finally:
        del sampler.draw  # back to the class method
    assert tuple(out.shape) == (1, tiny.num_classes, 64, 80)

    # mmseg grid: max(H - crop + stride - 1, 0) // stride + 1 per axis -> 3 x 3 windows
    assert n_windows == 9
    assert drawn[:9] == [[(NMF_EVAL, 42, i)] for i in range(9)]  # image key + window index
    # without keys every window is its own ad-hoc draw (call counter advances per window)
    assert drawn[drawn_adhoc_start:] == [None] * 9 and adhoc_calls == 9

    # the result is the per-pixel average of the window logits, each with its own bases
    xs = x.numpy()
    acc = np.zeros((1, tiny.num_classes, 64, 80), np.float32)
    count = np.zeros((64, 80), np.float32)
    window = 0
    for y1 in (0, 24, 32):  # the last window is shifted to end at the border
        for x1 in (0, 24, 48):
            crop_logits = tiny.encode_decode(jt.array(xs[:, :, y1:y1 + 32, x1:x1 + 32]), [(NMF_EVAL, 42, window)])
            acc[:, :, y1:y1 + 32, x1:x1 + 32] += crop_logits.numpy()
            count[y1:y1 + 32, x1:x1 + 32] += 1
            window += 1
    assert count.min() == 1 and count.max() == 4
    np.testing.assert_allclose(out.numpy(), acc / count, rtol=1e-6, atol=1e-6)


def test_predict_rejects_unknown_mode(tiny):
    with pytest.raises(ValueError, match="whole"):
        tiny.predict(random_input((1, 3, 32, 32)), mode="sliding")


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


# ---------------------------------------------------------------------------------------------------
# checkpoints through the public API
# ---------------------------------------------------------------------------------------------------


def test_malicious_checkpoint_is_refused_by_the_public_loader(tmp_path):
    model = build_segmentor(fixture_config(TINY))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    sentinel = tmp_path / "pwned"
    # the reference checkpoint's tensors, plus a payload in the meta that would run a shell command
    reference = read_torch_checkpoint(FIXTURES / TINY / "checkpoint.pth")["state_dict"]
    state = {k: tw.tensor(v) for k, v in reference.items()}
    path = tmp_path / "segnext_evil.pth"
    tw.write_zip(str(path), {"state_dict": state,
                             "meta": {"evil": Reduce(os.system, (f"touch {shlex.quote(str(sentinel))}",))}})
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(model, path, logger=lambda *a: None)
    assert "system" in str(info.value) and str(path) in str(info.value)
    assert not sentinel.exists()
    after = model.state_dict()
    assert all(bits_equal(after[k], v) for k, v in before.items())  # nothing was half-loaded

    # the same file without the payload loads fine through the same call
    good = tmp_path / "segnext_good.pth"
    tw.write_zip(str(good), {"state_dict": state, "meta": {}})
    load_checkpoint(model, good, logger=lambda *a: None)
    loaded = model.state_dict()
    assert all(np.array_equal(loaded[k].numpy().reshape(v.shape), v) for k, v in reference.items())
