"""segnext_jt.models.ham_head: the seeded NMF (the point of the port: eval results depend only on
weights, seed, image and view), stored bases (rand_init=false) and the one-step NMF gradient, on the
tiny reference model."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from helpers import TINY, bits_equal, fixture_config, fixture_model

import jittor as jt

from segnext_jt import build_segmentor
from segnext_jt.models.ham_head import NMFBasesSampler
from segnext_jt.rng import NMF_ADHOC, NMF_EVAL


def test_sampler_draw_depends_only_on_seed_and_key():
    a, b = NMFBasesSampler(seed=7), NMFBasesSampler(seed=7)
    b.draw(None, 3, 16, 8)  # history (ad-hoc calls, other keys) must not matter
    b.draw([(NMF_EVAL, 99)], 1, 16, 8)
    batch = a.draw([(NMF_EVAL, 1), (NMF_EVAL, 2, 5)], 2, 16, 8)
    alone = b.draw([(NMF_EVAL, 2, 5)], 1, 16, 8)
    assert batch.shape == (2, 16, 8) and batch.dtype == np.float32
    assert ((batch >= 0) & (batch < 1)).all()
    assert bits_equal(batch[1:], alone)
    assert not np.array_equal(batch[0], batch[1])
    assert not np.array_equal(NMFBasesSampler(seed=8).draw([(NMF_EVAL, 2, 5)], 1, 16, 8), alone)
    # ad-hoc draws are keyed (NMF_ADHOC, call counter, index): reproducible per seed
    c = NMFBasesSampler(seed=7)
    first, second = c.draw(None, 2, 16, 8), c.draw(None, 2, 16, 8)
    assert not np.array_equal(first, second)
    assert bits_equal(first, NMFBasesSampler(seed=7).draw([(NMF_ADHOC, 0, 0), (NMF_ADHOC, 0, 1)], 2, 16, 8))
    with pytest.raises(ValueError, match="keys"):
        c.draw([(NMF_EVAL, 1)], 2, 16, 8)


def test_same_seed_and_keys_give_bit_identical_logits(tiny, x64):
    keys = [(NMF_EVAL, 11), (NMF_EVAL, 12)]
    tiny.set_nmf_seed(3)
    first = tiny.encode_decode(x64, keys).numpy()
    second = tiny.encode_decode(x64, keys).numpy()
    assert bits_equal(first, second)

    other = fixture_model(TINY)  # a freshly built model with the same weights
    other.eval()
    other.set_nmf_seed(3)
    assert bits_equal(other.encode_decode(x64, keys), first)

    tiny.set_nmf_seed(4)
    different = tiny.encode_decode(x64, keys).numpy()
    assert np.abs(different - first).max() > 1e-4
    tiny.set_nmf_seed(3)
    assert bits_equal(tiny.encode_decode(x64, keys), first)
    # another key for one image changes that image only
    changed = tiny.encode_decode(x64, [(NMF_EVAL, 11), (NMF_EVAL, 13)]).numpy()
    assert bits_equal(changed[0], first[0]) and not np.array_equal(changed[1], first[1])


def test_batch_result_equals_each_image_alone(tiny, x64):
    """An image's logits do not depend on what else is in the batch: bit-identical on the CPU."""
    keys = [(NMF_EVAL, 21), (NMF_EVAL, 22)]
    tiny.set_nmf_seed(5)
    batch = tiny.encode_decode(x64, keys).numpy()
    xs = x64.numpy()
    for i in range(2):
        alone = tiny.encode_decode(jt.array(xs[i:i + 1]), [keys[i]]).numpy()
        assert bits_equal(alone[0], batch[i]), f"image {i}: max diff {np.abs(alone[0] - batch[i]).max()}"
    # the same image twice in one batch with the same key: both rows identical
    twice = tiny.encode_decode(jt.array(np.concatenate([xs[:1], xs[:1]])), [keys[0], keys[0]]).numpy()
    assert bits_equal(twice[0], twice[1]) and bits_equal(twice[0], batch[0])


def _recording_sampler(model, drawn: list):
    sampler = model.decode_head.nmf.sampler
    original = sampler.draw

    def recording_draw(keys, batch, d, r):
        out = original(keys, batch, d, r)
        drawn.append((None if keys is None else [tuple(k) for k in keys], out))
        return out
    sampler.draw = recording_draw
    return sampler


@pytest.mark.usefixtures("compute_path")
def test_batched_inference_draws_each_images_bases_and_differs_only_by_rounding(tiny, x64):
    """batched=True runs the batch as one forward; the NMF bases of image i are still the draw of its
    own key (exactly what it draws alone), keyed or not. What changes is the kernels' rounding at
    batch 2: within 1e-5 of each image alone (README, "Batched evaluation"), on both compute paths."""
    xs = np.concatenate([x64.numpy(), x64.numpy()[::-1] * 0.5])  # 4 images
    keys = [(NMF_EVAL, 31 + i) for i in range(4)]
    drawn: list = []
    sampler = _recording_sampler(tiny, drawn)
    try:
        tiny.set_nmf_seed(5)
        batched = tiny.encode_decode(jt.array(xs), keys, batched=True).numpy()
        alone = [tiny.encode_decode(jt.array(xs[i:i + 1]), [keys[i]]).numpy()[0] for i in range(4)]
        assert len(drawn) == 5 and drawn[0][0] == keys  # one head pass for the batch, then one per image
        for i in range(4):
            assert bits_equal(drawn[0][1][i], drawn[1 + i][1][0])
            np.testing.assert_allclose(batched[i], alone[i], rtol=0, atol=1e-5, err_msg=f"image {i}")
        # unkeyed: the batch consumes one ad-hoc call, (NMF_ADHOC, call, index) as the per-image path
        drawn.clear()
        tiny.set_nmf_seed(9)
        unkeyed_batched = tiny.encode_decode(jt.array(xs), batched=True).numpy()
        assert sampler.calls == 1
        tiny.set_nmf_seed(9)
        unkeyed_alone = tiny.encode_decode(jt.array(xs)).numpy()
        assert sampler.calls == 1 and len(drawn) == 5
        for i in range(4):
            assert bits_equal(drawn[0][1][i], drawn[1 + i][1][0])
        np.testing.assert_allclose(unkeyed_batched, unkeyed_alone, rtol=0, atol=1e-5)
        # sliding windows: each window of the batch in one forward, the same tolerance
        slide = dict(mode="slide", crop_size=(32, 32), stride=(24, 24))
        np.testing.assert_allclose(tiny.predict(jt.array(xs), keys, batched=True, **slide).numpy(),
                                   tiny.predict(jt.array(xs), keys, **slide).numpy(), rtol=0, atol=1e-5)
    finally:
        del sampler.draw  # back to the class method


def test_unkeyed_calls_draw_new_bases_and_reseeding_replays_them(tiny, x64):
    tiny.set_nmf_seed(9)
    first = tiny.encode_decode(x64).numpy()
    second = tiny.encode_decode(x64).numpy()
    assert np.abs(first - second).max() > 1e-4  # new bases on every call, like the reference
    tiny.set_nmf_seed(9)
    assert bits_equal(tiny.encode_decode(x64), first)
    assert bits_equal(tiny.encode_decode(x64), second)
    # unkeyed call n uses the keys (NMF_ADHOC, n, i)
    tiny.set_nmf_seed(9)
    assert bits_equal(tiny.encode_decode(x64, [(NMF_ADHOC, 0, 0), (NMF_ADHOC, 0, 1)]), first)


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
    assert bits_equal(model.encode_decode(x64, [(NMF_EVAL, 3), (NMF_EVAL, 4)]), ref)
    assert bits_equal(model.encode_decode(x64), ref)
    assert bits_equal(model.state_dict()["decode_head.hamburger.ham.bases"], bases)
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
    assert bits_equal(full.encode_decode(x64, keys), one_step.encode_decode(x64, keys))

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
