#!/usr/bin/env python
"""Inference speed the way mmseg measures it (tools/analysis_tools/benchmark.py): batch 1, the
first `--warmup` images discarded, then `--num-images` images from the config's val split through
the test pipeline; the timed part is the whole prediction (backbone, head incl. NMF, resize to the
original image size and argmax, on the device, synchronised) and the copy of the label map to the host,
as mmseg's simple_test returns it; not the data loading, and no probability map leaves the device.
Prints fps and peak memory.

    python tools/benchmark.py configs/segnext_t.yaml [CKPT] [--num-images 200] [--warmup 5]
    python tools/benchmark.py configs/segnext_t.yaml --train-step [--batch-size 16]   # one training step

Without a dataset (or with --synthetic) it uses random 512x683 images (the common ADE20K val size).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time


def bench_train_step(model, cfg, args, rng) -> dict:
    """Median seconds per AdamW training step on random inputs (2 warm-up steps not counted)."""
    import numpy as np
    from segnext_jt import runtime
    import jittor as jt
    from segnext_jt.engine.optim import AdamW, build_param_groups
    from segnext_jt.memory import DeviceMemoryPeak, peak_host_mb
    b = args.batch_size or cfg.train.batch_size
    h, w = cfg.data.crop_size
    model.train()
    opt = AdamW(build_param_groups(model, cfg.train.optimizer), cfg.train.optimizer.lr)
    img = jt.array(rng.normal(size=(b, 3, h, w)).astype(np.float32))
    label = jt.array(rng.integers(0, cfg.model.decode_head.num_classes, size=(b, h, w)).astype(np.int32))
    times = []
    with DeviceMemoryPeak() if runtime.DEVICE == "cuda" else contextlib.nullcontext() as device_mem:
        for step in range(args.steps + 2):
            jt.sync_all(True)
            t0 = time.perf_counter()
            opt.step(model.loss(img, label)["loss"])
            jt.sync_all(True)
            times.append(time.perf_counter() - t0)
    result = {"mode": "train_step", "batch_size": b, "crop": [h, w], "first_step_s": times[0],
              "median_step_s": float(np.median(times[2:])), "peak_host_mb": peak_host_mb(),
              "peak_device_mb": getattr(device_mem, "peak_mb", None)}
    print(f"train step, batch {b}, {h}x{w}: median {result['median_step_s']:.3f} s/step "
          f"(first step incl. compile {times[0]:.1f} s), peak host memory {result['peak_host_mb']:.0f} MB")
    return result


def load_samples(cfg, args, rng) -> list:
    """The first images of the val split, or random 512x683 ones (--synthetic, or no dataset)."""
    import numpy as np
    from segnext_jt.data.dataset import RawSample
    n = args.num_images + args.warmup
    if not args.synthetic:
        try:
            from segnext_jt.data.build import build_dataset
            ds = build_dataset(cfg.data, "val")
            return [ds.load_raw(i) for i in range(min(len(ds), n))]
        except Exception as exc:  # no dataset here: say so and fall back
            print(f"note: no val split ({exc}); using synthetic 512x683 images")
    return [RawSample(rng.integers(0, 256, size=(512, 683, 3), dtype=np.uint8), None, f"synthetic_{i}.jpg")
            for i in range(n)]


def bench_inference(model, cfg, args, rng) -> dict:
    """mmseg-style fps: batch 1, the first --warmup images not counted."""
    import jittor as jt
    from segnext_jt.evaluation.evaluator import Evaluator
    from segnext_jt.memory import peak_host_mb
    samples = load_samples(cfg, args, rng)
    model.eval()
    evaluator = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, cfg.model.decode_head.num_classes)
    timed, first = [], None
    for i, sample in enumerate(samples):
        jt.sync_all(True)
        t0 = time.perf_counter()
        evaluator.predict_labels([sample], ms_flip=False)
        jt.sync_all(True)
        dt = time.perf_counter() - t0
        if i == 0:
            first = dt
        if i >= args.warmup:
            timed.append(dt)
    fps = len(timed) / sum(timed)
    result = {"mode": "inference", "images": len(timed), "fps": fps, "first_image_s": first,
              "peak_host_mb": peak_host_mb()}
    print(f"inference ({cfg.eval.pipeline}, {cfg.eval.mode}): {fps:.2f} fps over {len(timed)} images "
          f"after {args.warmup} warm-up (first image incl. compile {first:.1f} s), "
          f"peak host memory {result['peak_host_mb']:.0f} MB")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("checkpoint", nargs="?", help="weights (default: random init, same speed)")
    p.add_argument("--num-images", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--synthetic", action="store_true", help="random 512x683 images instead of the val split")
    p.add_argument("--train-step", action="store_true", help="time training steps instead of inference")
    p.add_argument("--batch-size", type=int, help="--train-step batch (default: train.batch_size)")
    p.add_argument("--steps", type=int, default=10, help="--train-step: timed steps after 2 warm-up steps")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    from segnext_jt.cli import add_device_argument, apply_device, print_platform_line
    from segnext_jt.environment import DeviceError
    add_device_argument(p)
    args = p.parse_args(argv)
    try:
        apply_device(args.device)  # before Jittor's import
        print_platform_line()
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import numpy as np
    from segnext_jt import runtime
    import jittor as jt
    from segnext_jt.config import load_config
    from segnext_jt.models import build_segmentor
    from segnext_jt.io import load_checkpoint

    cfg = load_config(args.config, args.cfg_options)
    model = build_segmentor(cfg)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, strict=True, logger=lambda *a: None)
    from segnext_jt.platform_info import platform_info
    result = {"config": args.config, "device": runtime.DEVICE, "jittor": jt.__version__, "platform": platform_info()}
    rng = np.random.default_rng(0)
    bench = bench_train_step if args.train_step else bench_inference
    result.update(bench(model, cfg, args, rng))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
