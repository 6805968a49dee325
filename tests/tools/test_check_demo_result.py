"""tools/check_demo_result.py: the gate `make demo` uses for the README's "clearly beats the
majority-class baseline" claim (the 2-minute training itself runs in tests/tools/test_train.py only
with SEGNEXT_SLOW_TESTS=1)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # runs tools/check_demo_result.py in a subprocess (tests/README.md)

TOOL = os.path.join(ROOT, "tools", "check_demo_result.py")


def _check(work, **result):
    (work / "train_result.json").write_text(json.dumps(result))
    return subprocess.run([sys.executable, TOOL, str(work)], capture_output=True, text=True, timeout=120)


def test_passes_only_when_clearly_above_the_baseline(tmp_path):
    ok = _check(tmp_path, mIoU=39.68, baseline_mIoU=19.98)
    assert ok.returncode == 0 and "39.68" in ok.stdout
    low = _check(tmp_path, mIoU=25.0, baseline_mIoU=19.98)
    assert low.returncode == 1 and "not 8 points above" in low.stderr and low.stderr.count("\n") == 1
    undefined = _check(tmp_path, mIoU=None, baseline_mIoU=19.98)
    assert undefined.returncode == 1 and "no mIoU" in undefined.stderr
