#!/usr/bin/env python
"""Seed-sweep report: per-seed table, spread statistics, where the reported number falls, the
train-seed / eval-seed variance split, learning curves and an optional paired comparison.

    python repro/report.py DIR [--reference 50.99] [--reference-range 49.60,51.0]
                               [--reference-msflip 52.10] [--reference-from CONFIG.yaml]
                               [--official OFFICIAL.log.json]
                               [--compare OTHER_DIR] [--out OUT_DIR]
                               [--power-deltas 0.5,1.0] [--target-halfwidth 0.25]
                               [--train-cost 1.0 --eval-cost 0.02] [--paired-rho 0]

The code: segnext_jt.repro.report.command (repro/ is a folder of commands,
not an installed top-level package)."""
import sys

from segnext_jt.repro.report.command import main

if __name__ == "__main__":
    sys.exit(main())
