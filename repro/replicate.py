#!/usr/bin/env python
"""Re-run one finished seed of a sweep on this machine and compare it with the stored one
(bit-identical or not, Δ mIoU, relative L2 of the weights, first differing loss).

Usage: `python repro/replicate.py --help`. Code: segnext_jt.repro.sweep.replicate
(repro/ is a folder of commands, not an installed top-level package)."""
import sys

from segnext_jt.repro.sweep.replicate import main

if __name__ == "__main__":
    sys.exit(main())
