"""The public model API: sizes and state-dict layout of T/S/B/L, output shapes of every forward path,
the seeded NMF (the point of the port: eval results depend only on weights, seed, image and view),
config validation, and refusal of a malicious checkpoint through `segnext_jt.load_checkpoint`.

Everything that runs a forward uses the tiny reference model (tests/fixtures/tiny-test_*), so the
whole file stays fast on a CPU once Jittor's kernels are cached.
"""
from __future__ import annotations

import copy
import json
import math
import os
import shlex
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, fixture_config, fixture_model

import _torch_writer as tw
import jittor as jt

from segnext_jt import ConfigError, build_segmentor, load_checkpoint, load_config
from segnext_jt.config import parse_overrides
from segnext_jt.io import UnsafeCheckpointError, read_torch_checkpoint
from segnext_jt.models import layers
from segnext_jt.models.ham_head import NMFBasesSampler
from segnext_jt.rng import NMF_ADHOC, NMF_EVAL

TINY = "tiny-test_eval_64x64"
CONFIGS = ROOT / "configs"
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
# whole-model parameter counts (mmseg 1.x code, 150 classes; docs/design.md §1.1)
PARAMS = {"t": 4_263_414, "s": 13_932_886, "b": 27_636_310, "l": 48_926_550}


def _np(v) -> np.ndarray:
    return v.numpy() if isinstance(v, jt.Var) else np.asarray(v)


def _bits_equal(a, b) -> bool:
    a, b = _np(a), _np(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _input(shape, seed: int = 0) -> jt.Var:
    return jt.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.fixture(scope="module")
def tiny():
    model = fixture_model(TINY)
    model.eval()
    return model


@pytest.fixture(scope="module")
def x64():
    return jt.array(np.load(FIXTURES / TINY / "input.npy"))  # (2, 3, 64, 64) normalised images


# ------------------------------------------------------------------------------------------------
# sizes and state-dict layout
# ------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------
# forward paths and output shapes
# ------------------------------------------------------------------------------------------------
def test_backbone_head_and_predict_shapes_on_odd_input(tiny):
    h, w = 97, 131
    x = _input((1, 3, h, w))
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
    assert _bits_equal(tiny.predict(x, keys), full)  # 'whole' is the default mode
    assert _bits_equal(tiny(x, keys), full)


def test_slide_inference_windows_draw_their_own_nmf_key(tiny):
    x = _input((1, 3, 64, 80), seed=1)
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
        tiny.predict(_input((1, 3, 32, 32)), mode="sliding")


# ------------------------------------------------------------------------------------------------
# seeded NMF
# ------------------------------------------------------------------------------------------------
def test_sampler_draw_depends_only_on_seed_and_key():
    a, b = NMFBasesSampler(seed=7), NMFBasesSampler(seed=7)
    b.draw(None, 3, 16, 8)  # history (ad-hoc calls, other keys) must not matter
    b.draw([(NMF_EVAL, 99)], 1, 16, 8)
    batch = a.draw([(NMF_EVAL, 1), (NMF_EVAL, 2, 5)], 2, 16, 8)
    alone = b.draw([(NMF_EVAL, 2, 5)], 1, 16, 8)
    assert batch.shape == (2, 16, 8) and batch.dtype == np.float32
    assert ((batch >= 0) & (batch < 1)).all()
    assert _bits_equal(batch[1:], alone)
    assert not np.array_equal(batch[0], batch[1])
    assert not np.array_equal(NMFBasesSampler(seed=8).draw([(NMF_EVAL, 2, 5)], 1, 16, 8), alone)
    # ad-hoc draws are keyed (NMF_ADHOC, call counter, index): reproducible per seed
    c = NMFBasesSampler(seed=7)
    first, second = c.draw(None, 2, 16, 8), c.draw(None, 2, 16, 8)
    assert not np.array_equal(first, second)
    assert _bits_equal(first, NMFBasesSampler(seed=7).draw([(NMF_ADHOC, 0, 0), (NMF_ADHOC, 0, 1)], 2, 16, 8))
    with pytest.raises(ValueError, match="keys"):
        c.draw([(NMF_EVAL, 1)], 2, 16, 8)


def test_same_seed_and_keys_give_bit_identical_logits(tiny, x64):
    keys = [(NMF_EVAL, 11), (NMF_EVAL, 12)]
    tiny.set_nmf_seed(3)
    first = tiny.encode_decode(x64, keys).numpy()
    second = tiny.encode_decode(x64, keys).numpy()
    assert _bits_equal(first, second)

    other = fixture_model(TINY)  # a freshly built model with the same weights
    other.eval()
    other.set_nmf_seed(3)
    assert _bits_equal(other.encode_decode(x64, keys), first)

    tiny.set_nmf_seed(4)
    different = tiny.encode_decode(x64, keys).numpy()
    assert np.abs(different - first).max() > 1e-4
    tiny.set_nmf_seed(3)
    assert _bits_equal(tiny.encode_decode(x64, keys), first)
    # another key for one image changes that image only
    changed = tiny.encode_decode(x64, [(NMF_EVAL, 11), (NMF_EVAL, 13)]).numpy()
    assert _bits_equal(changed[0], first[0]) and not np.array_equal(changed[1], first[1])


def test_batch_result_equals_each_image_alone(tiny, x64):
    """An image's logits do not depend on what else is in the batch: bit-identical on the CPU."""
    keys = [(NMF_EVAL, 21), (NMF_EVAL, 22)]
    tiny.set_nmf_seed(5)
    batch = tiny.encode_decode(x64, keys).numpy()
    xs = x64.numpy()
    for i in range(2):
        alone = tiny.encode_decode(jt.array(xs[i:i + 1]), [keys[i]]).numpy()
        assert _bits_equal(alone[0], batch[i]), f"image {i}: max diff {np.abs(alone[0] - batch[i]).max()}"
    # the same image twice in one batch with the same key: both rows identical
    twice = tiny.encode_decode(jt.array(np.concatenate([xs[:1], xs[:1]])), [keys[0], keys[0]]).numpy()
    assert _bits_equal(twice[0], twice[1]) and _bits_equal(twice[0], batch[0])


def test_unkeyed_calls_draw_new_bases_and_reseeding_replays_them(tiny, x64):
    tiny.set_nmf_seed(9)
    first = tiny.encode_decode(x64).numpy()
    second = tiny.encode_decode(x64).numpy()
    assert np.abs(first - second).max() > 1e-4  # new bases on every call, like the reference
    tiny.set_nmf_seed(9)
    assert _bits_equal(tiny.encode_decode(x64), first)
    assert _bits_equal(tiny.encode_decode(x64), second)
    # unkeyed call n uses the keys (NMF_ADHOC, n, i)
    tiny.set_nmf_seed(9)
    assert _bits_equal(tiny.encode_decode(x64, [(NMF_ADHOC, 0, 0), (NMF_ADHOC, 0, 1)]), first)


def _tiny_variant(**ham):
    cfg = copy.deepcopy(fixture_config(TINY))
    for name, value in ham.items():
        setattr(cfg.model.decode_head.ham, name, value)
    return build_segmentor(cfg)


def test_stored_bases_when_rand_init_is_false(tiny, x64):
    model = _tiny_variant(rand_init=False)
    state = model.state_dict()
    head = fixture_config(TINY).model.decode_head
    assert tuple(state["decode_head.hamburger.ham.bases"].shape) == (1, head.ham_channels, head.ham.md_r)
    bases = state["decode_head.hamburger.ham.bases"].numpy()
    np.testing.assert_allclose(np.linalg.norm(bases, axis=1), 1.0, rtol=1e-5)  # L2-normalised columns
    model.load_state_dict({k: v.numpy() for k, v in tiny.state_dict().items()})  # the bases stay
    model.eval()
    model.set_nmf_seed(0)
    ref = model.encode_decode(x64, [(NMF_EVAL, 1), (NMF_EVAL, 2)]).numpy()
    model.set_nmf_seed(12345)
    assert _bits_equal(model.encode_decode(x64, [(NMF_EVAL, 3), (NMF_EVAL, 4)]), ref)
    assert _bits_equal(model.encode_decode(x64), ref)
    assert _bits_equal(model.state_dict()["decode_head.hamburger.ham.bases"], bases)
    # the stored bases are exactly what the forward uses
    np.testing.assert_allclose(
        model.encode_decode(x64, None, np.repeat(bases, 2, axis=0)).numpy(), ref, rtol=1e-6, atol=1e-6)


def test_one_step_gradient_same_forward_different_gradient(tiny, x64):
    full = _tiny_variant(grad="full")
    one_step = _tiny_variant(grad="one_step")
    weights = {k: v.numpy() for k, v in tiny.state_dict().items()}
    full.load_state_dict(weights)
    one_step.load_state_dict(weights)
    keys = [(NMF_EVAL, 31), (NMF_EVAL, 32)]

    full.eval()
    one_step.eval()
    assert _bits_equal(full.encode_decode(x64, keys), one_step.encode_decode(x64, keys))

    label = jt.array(np.random.default_rng(0).integers(0, tiny.num_classes, (2, 64, 64)).astype(np.int32))
    name = "decode_head.hamburger.ham_in.conv.weight"
    grads, losses = {}, {}
    for tag, model in (("full", full), ("one_step", one_step)):
        model.train()
        model.set_dropout_rng(np.random.default_rng(0))  # same DropPath/Dropout2d masks for both
        out = model.loss(x64, label, keys)
        losses[tag] = out["loss"].item()
        grads[tag] = jt.grad(out["loss"], model.state_dict()[name]).numpy()
    assert losses["full"] == losses["one_step"]  # the train-mode forward is the same too
    g_full, g_one = grads["full"], grads["one_step"]
    assert np.isfinite(g_one).all() and np.abs(g_one).max() > 0
    rel = np.abs(g_full - g_one).max() / np.abs(g_full).max()
    assert rel > 1e-3, f"one-step and full NMF gradients should differ (relative diff {rel:.2e})"


# ------------------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.source == str(path)
    assert cfg.model.decode_head.in_channels == [cfg.model.backbone.embed_dims[i]
                                                 for i in cfg.model.decode_head.in_index]


def test_config_round_trip(tmp_path):
    cfg = load_config(CONFIGS / "segnext_t.yaml")
    out = tmp_path / "dump.yaml"
    out.write_text(cfg.to_yaml())
    assert load_config(out).to_dict() == cfg.to_dict()


def test_overrides_are_applied_and_typed():
    cfg = load_config(CONFIGS / "segnext_t.yaml",
                      overrides=["train.max_iters=10", "model.decode_head.ham.md_r=64", "eval.seed=7",
                                 "train.optimizer.lr=1.0e-4", "model.decode_head.ham.grad=one_step"])
    assert cfg.train.max_iters == 10 and cfg.model.decode_head.ham.md_r == 64 and cfg.eval.seed == 7
    assert cfg.train.optimizer.lr == pytest.approx(1e-4) and isinstance(cfg.train.optimizer.lr, float)
    assert cfg.model.decode_head.ham.grad == "one_step"
    assert cfg.model.backbone.depths == [3, 3, 5, 2]  # untouched values stay
    assert parse_overrides(["a.b.c=[1, 2]", "a.d=x"]) == {"a": {"b": {"c": [1, 2]}, "d": "x"}}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.max_iters"])


def test_override_accepts_exponent_without_dot():
    """PyYAML (YAML 1.1) reads 1e-4 as a string; float fields accept it like mmseg's --cfg-options."""
    cfg = load_config(CONFIGS / "segnext_t.yaml", overrides=["train.optimizer.lr=1e-4"])
    assert cfg.train.optimizer.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("override, expected", [
    ("model.backbone.depth=[1,1,1,1]", r"unknown key 'depth' \(did you mean 'depths'\?\)"),
    ("model.decode_head.ham.md_rank=8", r"did you mean 'md_r'"),
    ("trian.max_iters=1", r"did you mean 'train'"),
])
def test_unknown_keys_are_refused_with_a_hint(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(CONFIGS / "segnext_t.yaml", overrides=[override])


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    text = (CONFIGS / "segnext_t.yaml").read_text().replace("    depths:", "    depth:")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "model.backbone" in message and "did you mean 'depths'" in message


@pytest.mark.parametrize("override, where", [
    ("train.max_iters=ten", "train.max_iters"),
    ("train.max_iters=1.5", "train.max_iters"),
    ("model.decode_head.ham.md_r=true", "model.decode_head.ham.md_r"),
    ("model.backbone.depths=[3,3,x,2]", r"model.backbone.depths\[2\]"),
    ("model.decode_head.ham.rand_init=1", "model.decode_head.ham.rand_init"),
    ("train.optimizer.betas=0.9", "train.optimizer.betas"),
    ("model.backbone=3", "model.backbone"),
])
def test_wrong_types_name_their_key_path(override, where):
    with pytest.raises(ConfigError, match=where):
        load_config(CONFIGS / "segnext_t.yaml", overrides=[override])


@pytest.mark.parametrize("override, hint", [
    ("model.decode_head.ham.grad=onestep", "one_step"),
    ("eval.pipeline=strech", "stretch"),
    ("train.schedule.style=mm2", None),
])
def test_literal_fields_reject_bad_values_with_a_hint(override, hint):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "segnext_t.yaml", overrides=[override])
    message = str(info.value)
    assert "is not one of" in message and override.split("=")[0] in message
    if hint:
        assert f"did you mean '{hint}'" in message


def test_head_in_channels_must_match_backbone_embed_dims():
    with pytest.raises(ConfigError, match=r"in_channels.*embed_dims.*expected \[64, 160, 256\]"):
        load_config(CONFIGS / "segnext_t.yaml", overrides=["model.decode_head.in_channels=[64,160,512]"])
    # changing both together is fine
    cfg = load_config(CONFIGS / "segnext_t.yaml", overrides=["model.backbone.embed_dims=[32,64,160,512]",
                                                             "model.decode_head.in_channels=[64,160,512]"])
    assert cfg.model.decode_head.in_channels == [64, 160, 512]


def test_other_validation_errors():
    with pytest.raises(ConfigError, match="gn_groups"):
        load_config(CONFIGS / "segnext_t.yaml", overrides=["model.decode_head.channels=100"])
    with pytest.raises(ConfigError, match="md_s"):
        load_config(CONFIGS / "segnext_t.yaml", overrides=["model.decode_head.ham.md_s=2"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(CONFIGS / "segnext_missing.yaml")


# ------------------------------------------------------------------------------------------------
# checkpoints through the public API
# ------------------------------------------------------------------------------------------------
class _Reduce:
    """Unpickling this calls func(*args): the classic pickle exploit."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_malicious_checkpoint_is_refused_by_the_public_loader(tmp_path):
    model = build_segmentor(fixture_config(TINY))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    sentinel = tmp_path / "pwned"
    # the reference checkpoint's tensors, plus a payload in the meta that would run a shell command
    reference = read_torch_checkpoint(FIXTURES / TINY / "checkpoint.pth")["state_dict"]
    state = {k: tw.tensor(v) for k, v in reference.items()}
    path = tmp_path / "segnext_evil.pth"
    tw.write_zip(str(path), {"state_dict": state,
                             "meta": {"evil": _Reduce(os.system, (f"touch {shlex.quote(str(sentinel))}",))}})
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(model, path, logger=lambda *a: None)
    assert "system" in str(info.value) and str(path) in str(info.value)
    assert not sentinel.exists()
    after = model.state_dict()
    assert all(_bits_equal(after[k], v) for k, v in before.items())  # nothing was half-loaded

    # the same file without the payload loads fine through the same call
    good = tmp_path / "segnext_good.pth"
    tw.write_zip(str(good), {"state_dict": state, "meta": {}})
    load_checkpoint(model, good, logger=lambda *a: None)
    loaded = model.state_dict()
    assert all(np.array_equal(loaded[k].numpy().reshape(v.shape), v) for k, v in reference.items())


# ------------------------------------------------------------------------------------------------
# the CPU depthwise-conv kernels (layers.Conv2d) against Jittor's generic grouped conv
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, c, h, w, kernel, padding, bias", [
    (2, 3, 7, 9, (3, 5), (0, 4), True),     # asymmetric kernel, padding 0 and k-1
    (1, 4, 6, 5, (1, 1), (0, 0), False),    # 1x1 depthwise, no bias
    (2, 5, 8, 3, (7, 1), (3, 0), True),     # MSCAN-style vertical strip on a narrow map
    (1, 6, 4, 4, (5, 5), (2, 2), True),     # kernel wider than the padded border, tiny map
    (1, 2, 9, 30, (1, 21), (0, 10), False),
])
def test_cpu_depthwise_kernel_matches_grouped_conv(n, c, h, w, kernel, padding, bias):
    from jittor import nn
    conv = layers.Conv2d(c, c, kernel, padding=padding, groups=c, bias=bias)
    assert conv._cpu_loop_kernel
    rng = np.random.default_rng(0)
    if bias:
        conv.bias.assign(jt.array(rng.standard_normal(c).astype(np.float32)))
    x = jt.array(rng.standard_normal((n, c, h, w)).astype(np.float32))
    y = conv(x)
    ref = nn.conv2d(x, conv.weight, conv.bias, 1, padding, 1, c)  # Jittor's generic grouped conv
    assert tuple(y.shape) == tuple(ref.shape)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)

    dy = jt.array(rng.standard_normal(tuple(y.shape)).astype(np.float32))
    targets = [x, conv.weight] + ([conv.bias] if bias else [])
    got = jt.grad((conv(x) * dy).sum(), targets)
    want = jt.grad((nn.conv2d(x, conv.weight, conv.bias, 1, padding, 1, c) * dy).sum(), targets)
    for name, g, r in zip(["x", "weight", "bias"], got, want):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_strided_depthwise_conv_uses_the_generic_path():
    conv = layers.Conv2d(4, 4, 3, stride=2, padding=1, groups=4)
    assert not conv._cpu_loop_kernel
    assert tuple(conv(_input((1, 4, 9, 9))).shape) == (1, 4, 5, 5)
