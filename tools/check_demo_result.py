#!/usr/bin/env python
"""Fail unless a training run clearly beats always predicting the majority class.

    python tools/check_demo_result.py WORK_DIR [--margin 8]

Reads WORK_DIR/train_result.json (written by tools/train.py) and exits 1 with one line when
mIoU < baseline_mIoU + margin. `make demo` runs it on the demo training: the README's claim that
the demo model learns something is checked every time the demo runs.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work_dir")
    p.add_argument("--margin", type=float, default=8.0, help="mIoU points above the baseline (default 8)")
    args = p.parse_args(argv)
    from segnext_jt.files import read_json
    path = os.path.join(args.work_dir, "train_result.json")
    try:
        result = read_json(path, what="training result")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    miou, baseline = result.get("mIoU"), result.get("baseline_mIoU")
    if not isinstance(miou, (int, float)) or not isinstance(baseline, (int, float)):
        print(f"error: {path}: no mIoU / baseline_mIoU numbers", file=sys.stderr)
        return 1
    if miou < baseline + args.margin:
        print(f"error: {path}: mIoU {miou:.2f} is not {args.margin:g} points above the majority-class "
              f"baseline {baseline:.2f}", file=sys.stderr)
        return 1
    print(f"demo check: mIoU {miou:.2f} >= majority-class baseline {baseline:.2f} + {args.margin:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
