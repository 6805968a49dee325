"""Reproducibility tooling for the SegNeXt Jittor port: statistics, log parsing, SVG plots and the
seed-sweep report. Pure Python + NumPy + SciPy (no Jittor), so it runs anywhere."""
