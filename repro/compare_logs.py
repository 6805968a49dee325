#!/usr/bin/env python
"""Compare two training logs (mmseg 0.x log.json, mmseg 1.x scalars.json or ours).

Usage: `python repro/compare_logs.py --help`. Code: segnext_jt.repro.report.compare_logs
(repro/ is a folder of commands, not an installed top-level package)."""
import sys

from segnext_jt.repro.report.compare_logs import main

if __name__ == "__main__":
    sys.exit(main())
