#!/usr/bin/env python
"""Eval-noise protocols compared on the same checkpoints: one NMF draw per view (the released
protocol), K-draw averaging (--nmf-draws K) and frozen bases (tools/freeze_nmf_bases.py).

Usage: `python repro/eval_noise.py --help`. Code: segnext_jt.repro.sweep.eval_noise
(repro/ is a folder of commands, not an installed top-level package)."""
import sys

from segnext_jt.repro.sweep.eval_noise import main

if __name__ == "__main__":
    sys.exit(main())
