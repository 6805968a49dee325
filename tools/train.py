#!/usr/bin/env python
"""Train SegNeXt: python tools/train.py CONFIG [--work-dir DIR] [--seed S] [--resume [CKPT]]
[--cfg-options key=value ...] [--sync-bn]. Multi-GPU: mpirun -np N python tools/train.py CONFIG."""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config, e.g. configs/segnext_l.yaml")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config name>)")
    p.add_argument("--seed", type=int, help="one seed for Python, NumPy, Jittor, data order/augmentation "
                                            "and the NMF bases (default: train.seed of the config)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from CKPT, or with no value from the work dir's latest iter_*.npz")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. train.max_iters=1000 data.root=/data/ade")
    p.add_argument("--sync-bn", action="store_true", help="synchronise BatchNorm across MPI processes")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs still printed)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from segnext_jt.config import ConfigError, load_config
    try:
        cfg = load_config(args.config, args.cfg_options)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from segnext_jt.data.ade20k import DataError
    from segnext_jt.data.loader import SampleLoadError
    from segnext_jt.engine.trainer import Trainer, TrainingDivergedError, TrainSetupError
    from segnext_jt.io.errors import CheckpointError
    work_dir = args.work_dir or os.path.join("work_dirs", os.path.splitext(os.path.basename(args.config))[0])
    try:
        trainer = Trainer(cfg, work_dir, seed=args.seed, resume=args.resume, progress=not args.no_progress,
                          sync_bn=True if args.sync_bn else None)
        result = trainer.train()
    except (DataError, SampleLoadError, CheckpointError, TrainingDivergedError, TrainSetupError,
            FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if trainer.rank == 0:
        from segnext_jt.evaluation.run import majority_baseline
        baseline = majority_baseline(trainer.val_set)
        summary = {"work_dir": work_dir, "seed": trainer.seed, "final_iter": result.final_iter,
                   "final_loss": result.final_loss, "checkpoint": result.checkpoint,
                   "mIoU": result.last_eval["mIoU"] if result.last_eval else None,
                   "baseline_mIoU": baseline["mIoU"], "baseline_class": baseline["class"]}
        if summary["mIoU"] is not None:
            print(f"final mIoU {summary['mIoU']:.2f} vs majority-class baseline {baseline['mIoU']:.2f} "
                  f"(always predicting {baseline['class']!r})")
        with open(os.path.join(work_dir, "train_result.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
