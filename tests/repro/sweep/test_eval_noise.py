"""repro/eval_noise.py: the protocol table (single draw, mean of K draws, frozen bases) pools the spread
within each checkpoint and pairs the shift; its command line end to end on the tiny model."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import DEMO_CFG, ROOT, eval_demo


def test_protocol_rows_pool_within_checkpoint_spread_and_pair_the_shift():
    from segnext_jt.repro.sweep.eval_noise import SINGLE, protocol_rows
    runs = []
    for c, offset in (("a", 40.0), ("b", 44.0)):
        for s, v in enumerate((-1.0, 1.0)):
            runs.append({"protocol": SINGLE, "checkpoint": c, "eval_seed": s, "mIoU": offset + v, "seconds": 2.0})
            runs.append({"protocol": "mean of 4 draws", "checkpoint": c, "eval_seed": s,
                         "mIoU": offset + 0.5 + v / 4, "seconds": 3.0})
    single, four = protocol_rows(runs)
    assert single["protocol"] == SINGLE and single["shift"] == 0.0 and single["relative_cost"] == 1.0
    assert single["eval_std"] == pytest.approx(np.sqrt(2.0))  # per checkpoint: values -1, +1 around the mean
    assert four["eval_std"] == pytest.approx(np.sqrt(2.0) / 4)
    assert four["shift"] == pytest.approx(0.5) and four["shift_ci"] == pytest.approx([0.5, 0.5])
    assert four["relative_cost"] == pytest.approx(1.5) and four["mean"] == pytest.approx(42.5)


@pytest.mark.slow
def test_eval_noise_cli_writes_the_table(tmp_path, tiny_train_options, tiny_checkpoint):
    out = tmp_path / "noise"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "repro", "eval_noise.py"), "--config", DEMO_CFG,
                           "--checkpoints", str(tiny_checkpoint), "--eval-seeds", "0..1", "--draws", "2",
                           "--frozen", "--out", str(out), "--cfg-options", *tiny_train_options],
                          capture_output=True, text=True, env=dict(os.environ, SEGNEXT_DEVICE="cpu"), timeout=600)
    assert proc.returncode == 0, proc.stderr
    import json
    data = json.loads((tmp_path / "noise.json").read_text())
    assert [r["protocol"] for r in data["rows"]] == ["1 draw (released)", "mean of 2 draws", "frozen bases"]
    assert len(data["runs"]) == 6
    single = [r["mIoU"] for r in data["runs"] if r["protocol"] == "1 draw (released)"]
    direct = [eval_demo(tiny_train_options, tiny_checkpoint, f"eval.seed={s}")["mIoU"] for s in (0, 1)]
    assert single == direct  # the table's single-draw numbers are tools/eval.py's
    assert "| mean of 2 draws | 1 × 2 |" in (tmp_path / "noise.md").read_text()
