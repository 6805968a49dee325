#!/usr/bin/env python
"""What `eval.batched` buys and what it changes (README, "Batched evaluation").

    # seconds per image through the evaluator (test resize, forward, resize to the original size,
    # softmax, argmax on the device, label copy), synthetic 512x512 images, random weights
    python bench/eval_batch.py speed --config configs/segnext_t.yaml --batch 8 --batched --path jittor

    # batch 1 against batch N (per image and batched): logits, probabilities, labels, mIoU
    python bench/eval_batch.py compare --config configs/demo_mnist.yaml --checkpoint CKPT --batch 8 \\
        --cfg-options data.root=demo_data/ADEChallengeData2016
    python bench/eval_batch.py compare --config configs/segnext_t.yaml --batch 8 --synthetic 16

`--path fast` is the default CPU path (native kernels, eval folding); `--path jittor` is Jittor's own
operators, module by module (SEGNEXT_CPU_KERNELS=jittor SEGNEXT_EVAL_FOLDING=0, what CUDA runs and
what the parity tests' "reference" path selects). Each call prints one `RESULT {json}` line; run the
speed variants as separate processes in interleaved rounds on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np


def set_path(name: str) -> None:
    from segnext_jt.models import cpu_ops, layers
    cpu_ops.set_native_cpu_kernels(name == "fast")
    layers.set_eval_folding(name == "fast")


def load(args, batch: int, batched: bool):
    from segnext_jt.config import load_config
    options = [f"eval.batch_size={batch}", f"eval.batched={str(batched).lower()}"]
    return load_config(args.config, args.cfg_options + options)


def build(args, batch: int, batched: bool):
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    cfg = load(args, batch, batched)
    model = build_segmentor(cfg)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, strict=True, logger=lambda *a: None)
    model.eval()
    return cfg, model


def synthetic_samples(n: int, size, seed: int = 0) -> list:
    from segnext_jt.data.dataset import RawSample
    rng = np.random.default_rng(seed)
    return [RawSample(rng.integers(0, 256, size=(size[0], size[1], 3), dtype=np.uint8), None, f"synthetic_{i}.jpg")
            for i in range(n)]


def speed(args) -> dict:
    import jittor as jt
    from segnext_jt.evaluation.evaluator import Evaluator
    cfg, model = build(args, args.batch, args.batched)
    evaluator = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, cfg.model.decode_head.num_classes)
    samples = synthetic_samples(args.batch * (args.warmup + args.batches), args.size)
    per_image = []
    for b in range(args.warmup + args.batches):
        jt.sync_all(True)
        t0 = time.perf_counter()
        evaluator.predict_labels(samples[b * args.batch:(b + 1) * args.batch], ms_flip=False)
        jt.sync_all(True)
        if b >= args.warmup:  # the first batches compile kernels for their shapes
            per_image.append((time.perf_counter() - t0) / args.batch)
    s = statistics.median(per_image)
    return {"mode": "speed", "path": args.path, "batch": args.batch, "batched": args.batched, "size": args.size,
            "s_per_image": s, "images_per_s": 1 / s, "per_batch_s_per_image": per_image}


def record_logits(model, store: dict) -> None:
    """Wrap model.predict_draws so that every view's draw-0 logits are kept in `store`, by NMF key (one
    per image and view): the batch split cannot change the keys, so two runs' dicts line up."""
    original = model.predict_draws

    def predict_draws(img, keys_per_draw, *a, **kw):
        out = original(img, keys_per_draw, *a, **kw)
        store.setdefault("stacked", []).append((int(img.shape[0]), bool(kw.get("batched"))))
        for j, key in enumerate(keys_per_draw[0]):
            store[tuple(key)] = out[0][j].numpy()
        return out
    model.predict_draws = predict_draws


def run_variant(args, model, store: dict, batch: int, batched: bool, ms_flip: bool) -> dict:
    """One evaluation with the same model (random weights are drawn once, in compare)."""
    from segnext_jt.evaluation.evaluator import Evaluator
    cfg = load(args, batch, batched)
    store.clear()
    logits = store
    logits["stacked"] = []  # (images in the call, batched) of every predict_draws call
    preds, probs = {}, {}

    def keep(sample, pred, prob):
        preds[sample.filename], probs[sample.filename] = pred, prob
    if args.synthetic:
        evaluator = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, cfg.model.decode_head.num_classes)
        samples = synthetic_samples(args.synthetic, args.size)
        for s in range(0, len(samples), batch):
            labels, p = evaluator.predict_labels(samples[s:s + batch], ms_flip, keep_probs=True)
            for sample, label, prob in zip(samples[s:s + batch], labels, p):
                keep(sample, label, prob)
        return {"logits": dict(logits), "preds": preds, "probs": probs, "metrics": None}
    from segnext_jt.data.build import build_dataset
    from segnext_jt.data.loader import ValLoader
    dataset = build_dataset(cfg.data, "val", cfg.model.decode_head.num_classes)
    evaluator = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, dataset.num_classes, dataset.classes)
    loader = ValLoader(dataset, batch_size=batch, num_workers=0)
    result = evaluator.evaluate(loader, ms_flip=ms_flip, on_prediction=keep, progress=False, keep_probs=True)
    return {"logits": dict(logits), "preds": preds, "probs": probs, "metrics": result.metrics}


def differences(a: dict, b: dict) -> dict:
    stacked = b["logits"].pop("stacked")
    a["logits"].pop("stacked", None)
    assert a["logits"].keys() == b["logits"].keys() and a["preds"].keys() == b["preds"].keys()
    logit_diff = max(float(np.abs(a["logits"][k] - b["logits"][k]).max()) for k in a["logits"])
    prob_diff = max(float(np.abs(a["probs"][k] - b["probs"][k]).max()) for k in a["probs"])
    flips = sum(int((a["preds"][k] != b["preds"][k]).sum()) for k in a["preds"])
    pixels = sum(p.size for p in a["preds"].values())
    out = {"bit_identical_logits": all(np.array_equal(a["logits"][k], b["logits"][k]) for k in a["logits"]),
           "max_abs_logit_diff": logit_diff, "max_abs_prob_diff": prob_diff,
           "label_flips": flips, "pixels": pixels,
           "images_with_flips": sum(int((a["preds"][k] != b["preds"][k]).any()) for k in a["preds"]),
           "largest_forward": max((n if batched else 1) for n, batched in stacked)}
    if a["metrics"] is not None:
        out["mIoU"] = [a["metrics"]["mIoU"], b["metrics"]["mIoU"]]
        out["mIoU_unrounded_equal"] = bool(a["metrics"]["mIoU_frac"] == b["metrics"]["mIoU_frac"])
        out["iou_equal"] = bool(np.array_equal(a["metrics"]["IoU"], b["metrics"]["IoU"], equal_nan=True))
    return out


def compare(args) -> dict:
    result = {"mode": "compare", "path": args.path, "batch": args.batch, "config": args.config}
    _, model = build(args, 1, False)
    store: dict = {}
    record_logits(model, store)
    for ms_flip in ([False, True] if args.ms_flip else [False]):
        alone = run_variant(args, model, store, 1, False, ms_flip)
        name = "msflip" if ms_flip else "ss"
        for batched in (False, True):
            other = run_variant(args, model, store, args.batch, batched, ms_flip)
            how = "batched" if batched else "per image"
            result[f"{name}: batch {args.batch} {how} vs batch 1"] = differences(alone, other)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["speed", "compare"])
    p.add_argument("--config", required=True)
    p.add_argument("--checkpoint", help="weights (default: the config's random initialisation)")
    p.add_argument("--path", choices=["fast", "jittor"], default="fast")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batched", action="store_true", help="speed: eval.batched=true")
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"), help="synthetic image size")
    p.add_argument("--warmup", type=int, default=1, help="speed: untimed batches (kernel compilation)")
    p.add_argument("--batches", type=int, default=2, help="speed: timed batches")
    p.add_argument("--synthetic", type=int, default=0, help="compare: N synthetic images instead of the val split")
    p.add_argument("--ms-flip", action="store_true", help="compare: also ms+flip")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    import segnext_jt.runtime  # noqa: F401  (prepares Jittor's environment)
    set_path(args.path)
    print("RESULT", json.dumps(speed(args) if args.what == "speed" else compare(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
