#!/usr/bin/env python
"""Evaluate a checkpoint: python tools/eval.py CONFIG CHECKPOINT [--ms-flip] [--seed S] [--nmf-draws K]
[--batch-size N [--batched]] [--workers N] [--out-dir DIR] [--json FILE] [--cfg-options key=value ...].

CHECKPOINT may be any format segnext_jt reads: a released mmseg .pth, an original-repo .pth, a JSeg
.pkl, or one of our .npz files; or an http(s) URL or zoo:NAME (e.g. zoo:segnext_l, mmseg's released
ADE20K model), downloaded once into $SEGNEXT_HOME/checkpoints (default ~/.cache/segnext_jt).
`--seed` fixes the NMF bases (mmseg draws new ones on every run, which is why the same checkpoint
gives different numbers there). `--nmf-draws K` averages each view's
softmax over K seeded NMF draws (K=1, the default, is the released protocol; see README "Eval noise")."""
from __future__ import annotations

import argparse
import json
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--ms-flip", action="store_true", help="6 scales x {no flip, flip}, probabilities averaged")
    p.add_argument("--seed", type=int, help="NMF bases seed (default: eval.seed of the config)")
    p.add_argument("--nmf-draws", type=int, metavar="K",
                   help="average each view's softmax over K NMF bases draws (default: eval.nmf_draws, 1)")
    p.add_argument("--batch-size", type=int, help="images loaded at once; without --batched each runs through the "
                   "network alone and the result does not depend on it")
    p.add_argument("--batched", action="store_true", default=None,
                   help="eval.batched: images of a batch with equal input shapes in one forward (the last "
                        "bits of the logits then depend on the batch size; README 'Batched evaluation')")
    p.add_argument("--workers", type=int, help="data loading processes (result does not depend on it)")
    p.add_argument("--pipeline", choices=["stretch", "pad"], help="test resize: mmseg 0.x stretch or 1.x pad")
    p.add_argument("--mode", choices=["whole", "slide"], help="whole image or sliding window")
    p.add_argument("--out-dir", help="write <name>.png class-id maps and <name>_overlay.jpg per image")
    p.add_argument("--json", help="write the metrics (and per-class table) to this JSON file")
    p.add_argument("--limit", type=int, help="evaluate only the first N images (quick checks)")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="evaluate a checkpoint holding NaN/inf weights anyway (refused otherwise), to inspect it")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    from segnext_jt.cli import add_device_argument
    add_device_argument(p)
    return p.parse_args(argv)


def _run(args) -> int:
    from segnext_jt.cli import UsageError, apply_device, check_output_dir, check_output_file
    apply_device(args.device)  # before Jittor's import; DeviceError -> exit 2
    from segnext_jt.files import write_json_atomic
    from segnext_jt.config import load_config
    from segnext_jt.io.reading import ensure_file
    from segnext_jt.hub import is_remote, resolve
    # Everything that can be checked cheaply is checked before the model is built.
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    json_path = check_output_file(args.json, "--json") if args.json else None
    out_dir = check_output_dir(args.out_dir, "--out-dir") if args.out_dir else None
    if not is_remote(args.checkpoint):  # a URL or zoo:NAME is fetched once the config is known to be good
        ensure_file(args.checkpoint)
    overrides = list(args.cfg_options)
    for flag, key in ((args.seed, "eval.seed"), (args.nmf_draws, "eval.nmf_draws"),
                      (args.batch_size, "eval.batch_size"), (args.workers, "eval.num_workers"),
                      (args.pipeline, "eval.pipeline"), (args.mode, "eval.mode"),
                      (args.batched and "true", "eval.batched")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    cfg = load_config(args.config, overrides)
    from segnext_jt.portable import reexec_if_needed
    reexec_if_needed(cfg.train.deterministic)  # a portable config is evaluated in portable mode too
    checkpoint = resolve(args.checkpoint, "CHECKPOINT").path if is_remote(args.checkpoint) else args.checkpoint

    from segnext_jt.cli import print_platform_line
    from segnext_jt.interrupts import install_signal_handlers
    from segnext_jt.evaluation.run import run_evaluation
    install_signal_handlers()  # after Jittor's import (run_evaluation's module imports it)
    print_platform_line()
    summary = run_evaluation(cfg, checkpoint, ms_flip=args.ms_flip, out_dir=out_dir,
                             limit=args.limit, progress=not args.no_progress, allow_nonfinite=args.allow_nonfinite)
    table = summary.pop("table")
    from segnext_jt.platform_info import platform_info
    summary["platform"] = platform_info()  # what the numbers were measured on (--json)
    if json_path:
        write_json_atomic(json_path, summary)  # whole or absent, never invalid JSON
    print(table)
    print(json.dumps({k: summary[k] for k in ("mIoU", "mAcc", "aAcc", "ms_flip", "seed", "nmf_draws", "num_images",
                                              "views_per_image", "seconds")}))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from segnext_jt.cli import run_tool
    from segnext_jt.data.sampling import SampleLoadError
    from segnext_jt.errors import CheckpointError, CheckpointNotFoundError, ConfigError, DataError
    return run_tool(lambda: _run(args), usage_errors=(ConfigError, CheckpointNotFoundError),
                    input_errors=(CheckpointError, DataError, SampleLoadError),
                    interrupted_message="no metrics file written; prediction files written so far are complete")


if __name__ == "__main__":
    sys.exit(main())
