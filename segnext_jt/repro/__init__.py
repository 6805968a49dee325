"""Reproducibility tooling for the SegNeXt Jittor port: the seed sweep (``sweep/``: launching seeds,
their result files, the eval-noise protocols) and its report (``report/``: statistics, power
analysis, log parsing, SVG plots). The commands are the thin scripts in the checkout's ``repro/``
folder (``python repro/seed_sweep.py``, ``repro/report.py``, ``repro/compare_logs.py``,
``repro/eval_noise.py``). The report side is pure Python + NumPy + SciPy (no Jittor)."""
from pathlib import Path

# The checkout this package lives in (installs are editable: tools/ and repro/ are scripts beside it).
REPO_ROOT = Path(__file__).resolve().parents[2]
