#!/usr/bin/env python
"""Seed-sweep report: per-seed table, spread statistics, where the reported number falls, the
train-seed / eval-seed variance split, learning curves and an optional paired comparison.

Usage: `python repro/report.py --help`. Code: segnext_jt.repro.report.command
(repro/ is a folder of commands, not an installed top-level package)."""
import sys

from segnext_jt.repro.report.command import main

if __name__ == "__main__":
    sys.exit(main())
