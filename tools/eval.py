#!/usr/bin/env python
"""Evaluate a checkpoint: python tools/eval.py CONFIG CHECKPOINT [--ms-flip] [--seed S]
[--batch-size N] [--workers N] [--out-dir DIR] [--json FILE] [--cfg-options key=value ...].

CHECKPOINT may be any format segnext_jt reads: a released mmseg .pth, an original-repo .pth, a JSeg
.pkl, or one of our .npz files. `--seed` fixes the NMF bases (mmseg draws new ones on every run,
which is why the same checkpoint gives different numbers there)."""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--ms-flip", action="store_true", help="6 scales x {no flip, flip}, probabilities averaged")
    p.add_argument("--seed", type=int, help="NMF bases seed (default: eval.seed of the config)")
    p.add_argument("--batch-size", type=int, help="images per forward (result does not depend on it)")
    p.add_argument("--workers", type=int, help="data loading processes (result does not depend on it)")
    p.add_argument("--pipeline", choices=["stretch", "pad"], help="test resize: mmseg 0.x stretch or 1.x pad")
    p.add_argument("--mode", choices=["whole", "slide"], help="whole image or sliding window")
    p.add_argument("--out-dir", help="write <name>.png class-id maps and <name>_overlay.jpg per image")
    p.add_argument("--json", help="write the metrics (and per-class table) to this JSON file")
    p.add_argument("--limit", type=int, help="evaluate only the first N images (quick checks)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from segnext_jt.config import ConfigError, load_config
    overrides = list(args.cfg_options)
    for flag, key in ((args.seed, "eval.seed"), (args.batch_size, "eval.batch_size"),
                      (args.workers, "eval.num_workers"), (args.pipeline, "eval.pipeline"), (args.mode, "eval.mode")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from segnext_jt.evaluation.run import run_evaluation
    from segnext_jt.io.errors import CheckpointError
    from segnext_jt.data.ade20k import DataError
    try:
        summary = run_evaluation(cfg, args.checkpoint, ms_flip=args.ms_flip, out_dir=args.out_dir,
                                 limit=args.limit, progress=not args.no_progress)
    except (CheckpointError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary.pop("table"))
    print(json.dumps({k: summary[k] for k in ("mIoU", "mAcc", "aAcc", "ms_flip", "seed", "num_images",
                                              "views_per_image", "seconds")}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
