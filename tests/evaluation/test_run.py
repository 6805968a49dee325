"""segnext_jt.evaluation.run: views counted, determinism over batch size / runs / image order, eval
seeds, K-draw averaging (eval.nmf_draws), checkpoint/config mismatches named."""
from __future__ import annotations

import pytest

from helpers import DEMO_CFG, METRIC_KEYS, eval_demo

from segnext_jt import load_config
from segnext_jt.errors import CheckpointMismatchError, CheckpointNotFoundError
from segnext_jt.evaluation.run import run_evaluation


def _cfg(opts, *extra):
    return load_config(DEMO_CFG, list(opts) + list(extra))


def _summary(cfg, ckpt, **kw):
    return run_evaluation(cfg, ckpt, progress=False, **kw)


def test_msflip_runs_12_views_per_image(tiny_train_options, tiny_checkpoint):
    ss = _summary(_cfg(tiny_train_options), tiny_checkpoint)
    ms = _summary(_cfg(tiny_train_options), tiny_checkpoint, ms_flip=True)
    assert ss["views_per_image"] == 1 and ss["forward_calls"] == ss["num_images"]
    assert ms["views_per_image"] == 12 and ms["forward_calls"] == 12 * ms["num_images"]
    print(f"\ndemo tiny model: single-scale mIoU {ss['mIoU']:.2f}, ms+flip mIoU {ms['mIoU']:.2f}")


def test_same_seed_same_metrics_across_batch_size_runs_and_order(tiny_train_options, tiny_checkpoint):
    a = _summary(_cfg(tiny_train_options, "eval.batch_size=1"), tiny_checkpoint)
    b = _summary(_cfg(tiny_train_options, "eval.batch_size=4"), tiny_checkpoint)
    c = _summary(_cfg(tiny_train_options, "eval.batch_size=1"), tiny_checkpoint)
    for key in ("mIoU", "mAcc", "aAcc", "per_class_iou"):
        assert a[key] == b[key] == c[key], key
    # image order: evaluate the images in reverse, the accumulated counts are the same
    from segnext_jt.data.build import build_dataset
    from segnext_jt.data.loader import ValLoader
    from segnext_jt.evaluation.evaluator import Evaluator
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    cfg = _cfg(tiny_train_options)
    model = build_segmentor(cfg)
    load_checkpoint(model, tiny_checkpoint, logger=lambda *a: None)
    ds = build_dataset(cfg.data, "val")
    ev = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, ds.num_classes, ds.classes)
    rev = ev.evaluate(ValLoader(ds, indices=list(reversed(range(len(ds))))), progress=False)
    assert rev.metrics["mIoU"] == a["mIoU"]


def test_different_eval_seeds_change_the_result(tiny_train_options, tiny_checkpoint):
    runs = [_summary(_cfg(tiny_train_options, f"eval.seed={s}"), tiny_checkpoint) for s in (0, 1, 2)]
    per_class = [tuple(r["per_class_iou"]) for r in runs]
    assert len(set(per_class)) > 1, "NMF eval seeds 0, 1, 2 gave identical per-class IoU"
    print("\nmIoU by eval seed:", [r["mIoU"] for r in runs])


def test_a_given_model_and_dataset_are_used_and_its_nmf_stream_restored(tiny_train_options, tiny_checkpoint):
    from segnext_jt.data.build import build_dataset
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    cfg = _cfg(tiny_train_options, "eval.seed=3")
    model = build_segmentor(cfg)
    load_checkpoint(model, tiny_checkpoint, logger=lambda *a: None)
    sampler = model.decode_head.nmf.sampler
    model.set_nmf_seed(11)
    sampler.calls = 5
    dataset = build_dataset(cfg.data, "val")
    given = _summary(cfg, tiny_checkpoint, model=model, dataset=dataset)
    assert (sampler.seed, sampler.calls) == (11, 5)
    assert given["per_class_iou"] == _summary(cfg, tiny_checkpoint)["per_class_iou"]
    with pytest.raises(RuntimeError, match="inside"):
        with model.nmf_seed(4):
            assert (sampler.seed, sampler.calls) == (4, 0)
            raise RuntimeError("inside")
    assert (sampler.seed, sampler.calls) == (11, 5)


def test_checkpoint_config_mismatch_is_named(tiny_train_options, tiny_checkpoint):
    cfg = _cfg(tiny_train_options, "model.decode_head.ham_channels=32", "model.decode_head.channels=32")
    with pytest.raises(CheckpointMismatchError, match="decode_head.squeeze"):
        _summary(cfg, tiny_checkpoint)
    with pytest.raises(CheckpointNotFoundError, match="missing.pth"):
        _summary(_cfg(tiny_train_options), "/nonexistent/missing.pth")
    with pytest.raises(ValueError, match="num_classes=12"):
        _summary(_cfg(tiny_train_options, "model.decode_head.num_classes=12"), tiny_checkpoint)


def test_summary_says_batched_only_when_it_was(tiny_train_options, tiny_checkpoint):
    """eval.batched is recorded (the batch size can then change a result's last bits); the default
    summary keeps its keys."""
    default = eval_demo(tiny_train_options, tiny_checkpoint, "eval.batch_size=4", limit=8)
    batched = eval_demo(tiny_train_options, tiny_checkpoint, "eval.batch_size=4", "eval.batched=true", limit=8)
    assert "batched" not in default and batched["batched"] is True
    assert abs(batched["mIoU"] - default["mIoU"]) <= 0.01  # rounding of the logits only


def test_k1_is_todays_protocol_and_k_draws_are_deterministic(tiny_train_options, tiny_checkpoint):
    default = eval_demo(tiny_train_options, tiny_checkpoint)
    k1 = eval_demo(tiny_train_options, tiny_checkpoint, "eval.nmf_draws=1")
    assert default["nmf_draws"] == 1
    for key in METRIC_KEYS:
        assert default[key] == k1[key], key
    k3a = eval_demo(tiny_train_options, tiny_checkpoint, "eval.nmf_draws=3", "eval.batch_size=1")
    k3b = eval_demo(tiny_train_options, tiny_checkpoint, "eval.nmf_draws=3", "eval.batch_size=4")
    for key in METRIC_KEYS:
        assert k3a[key] == k3b[key], key  # same K and seed: bit-identical, whatever the batch size
    assert k3a["metric_state"] != k1["metric_state"], "3 draws gave exactly the 1-draw confusion counts"
    assert k3a["forward_calls"] == k1["forward_calls"]  # one backbone pass per view, K head passes
