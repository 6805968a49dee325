#!/usr/bin/env python
"""Seed sweep: train + evaluate one run per training seed, optionally under several NMF eval seeds.

Usage: `python repro/seed_sweep.py --help`. Code: segnext_jt.repro.sweep.seed_sweep
(repro/ is a folder of commands, not an installed top-level package)."""
import sys

from segnext_jt.repro.sweep.seed_sweep import main

if __name__ == "__main__":
    sys.exit(main())
