"""segnext_jt.evaluation.evaluator: the pad pipeline against the mmseg 1.x fixture through the
evaluator's own path, and K-draw probabilities as the mean of the single draws."""
from __future__ import annotations

import numpy as np

from helpers import DEMO_CFG, assert_close_fwd, fixture_dir, fixture_model, pad_bottom_right

import jittor as jt

from segnext_jt import load_config
from segnext_jt.data.eval_views import ViewInfo
from segnext_jt.evaluation.evaluator import logits_to_original


def test_pad_pipeline_matches_mmseg1_fixture_through_the_evaluator_path():
    """Input normalised already (the fixture's), so the view is: pad -> model -> crop -> resize."""
    name = "tiny-test_eval_97x131"
    model = fixture_model(name)
    model.eval()
    x = jt.array(np.load(fixture_dir(name) / "input.npy"))
    padded = pad_bottom_right(x, 32)
    logits = model.encode_decode(padded, None, np.load(fixture_dir(name) / "bases_raw.npy"))
    info = ViewInfo(pipeline="pad", ori_shape=(97, 131), resized_shape=(97, 131),
                    input_shape=tuple(padded.shape[2:]), valid_shape=(97, 131), flip=False)
    got = np.concatenate([logits_to_original(logits[i:i + 1], info).numpy() for i in range(2)])
    assert_close_fwd(got, np.load(fixture_dir(name) / "seg_logits_pipeline.npy"), "pad pipeline")


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


def test_device_argmax_breaks_ties_like_numpy():
    """The first maximum wins, as with NumPy: exact ties between classes 2 and 5, and 1, 3 and 4."""
    probs = np.random.default_rng(0).random((6, 4, 5)).astype(np.float32)
    probs[5, :2] = probs[2, :2] = 2.0
    probs[[1, 3, 4], 3] = 3.0
    got = jt.argmax(jt.array(probs), dim=0)[0].numpy()
    assert np.array_equal(got, probs.argmax(axis=0))
    assert (got[:2] == 2).all() and (got[3] == 1).all()


def test_labels_from_the_device_equal_the_host_argmax(tiny_train_options, tiny_checkpoint):
    """predict_labels (argmax on the device, labels copied as uint8) gives exactly np.argmax of the
    probabilities that predict_probs copies to the host, single-scale and ms+flip, two images per batch."""
    from segnext_jt.data.build import build_dataset
    from segnext_jt.evaluation.evaluator import Evaluator
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    cfg = load_config(DEMO_CFG, tiny_train_options + ["eval.tta_ratios=[0.75,1.0]"])
    model = build_segmentor(cfg)
    load_checkpoint(model, tiny_checkpoint, logger=lambda *a: None)
    model.eval()
    ds = build_dataset(cfg.data, "val")
    samples = [ds.load_raw(0), ds.load_raw(1)]
    ev = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, 11)
    for ms_flip in (False, True):
        probs = ev.predict_probs(samples, ms_flip)
        labels, kept = ev.predict_labels(samples, ms_flip, keep_probs=True)
        none = ev.predict_labels(samples, ms_flip)[1]
        assert none == [None, None]
        for p, label, k in zip(probs, labels, kept):
            assert label.dtype == np.int64 and label.shape == p.shape[1:]
            assert np.array_equal(label, p.argmax(axis=0))
            assert np.array_equal(k, p)


def test_batched_evaluation_stacks_equal_shapes_and_differs_only_by_rounding(tiny_train_options, tiny_checkpoint):
    """eval.batched: the images of a batch that share an input shape go through one forward; their
    probabilities stay within rounding (1e-5) of the per-image default at the same batch size, single
    scale and ms+flip. The default runs every image alone whatever eval.batch_size is."""
    from segnext_jt.data.build import build_dataset
    from segnext_jt.evaluation.evaluator import Evaluator
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    options = tiny_train_options + ["eval.tta_ratios=[0.75,1.0]", "eval.batch_size=6"]
    cfg = load_config(DEMO_CFG, options)
    model = build_segmentor(cfg)
    load_checkpoint(model, tiny_checkpoint, logger=lambda *a: None)
    model.eval()
    ds = build_dataset(cfg.data, "val")
    samples = [ds.load_raw(i) for i in range(6)]
    calls, original = [], model.predict_draws

    def recording(img, keys_per_draw, *args, **kw):
        calls.append((img.shape[0], kw["batched"]))
        return original(img, keys_per_draw, *args, **kw)
    model.predict_draws = recording
    per_image = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, 11)
    batched_cfg = load_config(DEMO_CFG, options + ["eval.batched=true"])
    batched = Evaluator(model, batched_cfg.eval, cfg.data.mean, cfg.data.std, 11)
    for ms_flip in (False, True):
        calls.clear()
        want = per_image.predict_probs(samples, ms_flip)
        assert not any(flag for _, flag in calls)
        calls.clear()
        got = batched.predict_probs(samples, ms_flip)
        assert all(flag for _, flag in calls) and max(n for n, _ in calls) > 1, calls  # some shapes were shared
        for i, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-5, err_msg=f"sample {i}, ms_flip={ms_flip}")
