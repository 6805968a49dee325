#!/usr/bin/env python
"""Re-run one finished seed of a sweep on this machine and compare it with the stored one:

    python repro/replicate.py SWEEP_DIR --seed K [--work-dir NEW_DIR]

Bit-identical weights or not (SHA-256), relative L2 of the weights, delta mIoU per evaluation
protocol, the first iteration whose logged loss differs; writes NEW_DIR/replicate.json.
The code: segnext_jt.repro.sweep.replicate."""
import sys

from segnext_jt.repro.sweep.replicate import main

if __name__ == "__main__":
    sys.exit(main())
