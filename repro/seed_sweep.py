#!/usr/bin/env python
"""Seed sweep: train + evaluate one run per training seed, optionally under several NMF eval seeds.

    python repro/seed_sweep.py --config configs/segnext_l.yaml --seeds 0..9 --work-dir sweeps/l
    python repro/seed_sweep.py --config configs/segnext_l.yaml --seeds 0..9 --eval-seeds 0..4 \\
        --launcher local --gpus 0,1,2,3 --work-dir sweeps/l
    python repro/seed_sweep.py --config configs/segnext_l.yaml --seeds 0..9 --launcher slurm \\
        --work-dir sweeps/l [--submit] [--slurm-args "--partition=gpu --time=72:00:00"]
    python repro/seed_sweep.py --config configs/segnext_l.yaml --checkpoint released.pth \\
        --eval-seeds 0..19 --work-dir sweeps/l_released          # eval-seed sweep of one checkpoint

The code: segnext_jt.repro.sweep.seed_sweep (repro/ is a folder of commands,
not an installed top-level package)."""
import sys

from segnext_jt.repro.sweep.seed_sweep import main

if __name__ == "__main__":
    sys.exit(main())
