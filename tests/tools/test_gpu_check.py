"""tools/gpu_check.py's verdicts (thresholds, tolerance comparisons, JSON report) without running
its heavy steps: the step functions are replaced by fakes where needed."""
from __future__ import annotations

import json

import numpy as np
import pytest

import gpu_check
import gpu_check_verdicts as v


@pytest.mark.parametrize("name,want", [
    ("NVIDIA A100-SXM4-40GB", True), ("NVIDIA H100 80GB HBM3", True), ("NVIDIA H200", True),
    ("NVIDIA GH200 480GB", True), ("NVIDIA A10", False), ("Tesla V100-SXM2-16GB", False),
    ("NVIDIA GeForce RTX 4090", False), (None, False), ("", False),
])
def test_a100_class(name, want):
    assert v.is_a100_class(name) is want


def test_fps_verdict_thresholds():
    assert v.fps_verdict(50.0, "t", "cuda", False, "NVIDIA H100 80GB HBM3")[0] == "PASS"   # >= 0.9 x 52.4
    assert v.fps_verdict(47.0, "t", "cuda", False, "NVIDIA H100 80GB HBM3")[0] == "FAIL"   # < 47.16
    status, threshold = v.fps_verdict(20.7, "l", "cuda", False, "NVIDIA A100-SXM4-80GB")
    assert status == "PASS" and "20.6 fps" in threshold and "22.9" in threshold
    assert v.fps_verdict(5.0, "t", "cuda", False, "NVIDIA GeForce RTX 3060")[0] == "INFO"   # not A100-class
    assert v.fps_verdict(5.0, "t", "cuda", False, None)[0] == "INFO"
    assert v.fps_verdict(500.0, "t", "cuda", True, "NVIDIA H100 80GB HBM3")[0] == "INFO"   # --quick
    assert v.fps_verdict(1.0, "l", "cpu", False, None)[0] == "INFO"


def test_memory_verdict_thresholds():
    limit = v.MEMORY_FACTOR * 17.9e3
    assert v.memory_verdict(limit, True, False, "t", 16, 512)[0] == "PASS"
    status, threshold = v.memory_verdict(limit + 1, True, False, "t", 16, 512)
    assert status == "FAIL" and "17.9 GB" in threshold and "26.9 GB" in threshold
    status, threshold = v.memory_verdict(9e3, True, False, "l", 2, 512)
    assert status == "INFO" and "43.3 GB" in threshold             # no reference at batch 2
    assert v.memory_verdict(1e9, False, False, "t", 16, 512)[0] == "INFO"   # host RSS
    assert v.memory_verdict(1e9, True, True, "t", 16, 512)[0] == "INFO"     # --quick


def _maps(seed, n=3, shape=(40, 50)):
    rng = np.random.default_rng(seed)
    return {f"img_{i}.png": rng.integers(0, 5, size=shape).astype(np.uint8) for i in range(n)}


def test_agreement_is_a_tolerance_not_equality():
    a = _maps(0)
    b = {k: x.copy() for k, x in a.items()}
    status, value, numbers = v.agreement_verdict(a, b, 41.20, 41.20)
    assert status == "PASS" and numbers["agreement"] == 1.0 and numbers["pixels"] == 6000
    b["img_0.png"][0, 0] += 1   # 1 pixel in 6000 differs: agreement 0.99983 < 0.9999
    status, _, numbers = v.agreement_verdict(a, b, 41.20, 41.20)
    assert status == "FAIL" and numbers["agreement"] == pytest.approx(1 - 1 / 6000)
    big_a, big_b = _maps(1, n=2, shape=(100, 100)), None
    big_b = {k: x.copy() for k, x in big_a.items()}
    big_b["img_1.png"][5, 5] += 1   # 1 in 20000: 0.99995 passes; a small mIoU change passes too
    assert v.agreement_verdict(big_a, big_b, 41.20, 41.24)[0] == "PASS"
    assert v.agreement_verdict(big_a, big_b, 41.20, 41.26)[0] == "FAIL"   # mIoU off by more than 0.05


def test_agreement_fails_on_missing_or_reshaped_maps():
    a = _maps(0)
    assert v.agreement_verdict(a, dict(list(a.items())[:2]), 1, 1)[0] == "FAIL"
    assert v.agreement_verdict({}, {}, 1, 1)[0] == "FAIL"
    b = dict(a, **{"img_0.png": a["img_0.png"][:, :-1]})
    status, value, _ = v.agreement_verdict(a, b, 1, 1)
    assert status == "FAIL" and "shape" in value


def test_loss_curve_verdict():
    single = {1: 2.0, 2: 1.5, 3: 1.2}
    assert v.loss_curve_verdict(single, {1: 2.0, 2: 1.5001, 3: 1.2}, 1e-3)[0] == "PASS"
    status, value, numbers = v.loss_curve_verdict(single, {1: 2.0, 2: 1.6, 3: 1.2}, 1e-3)
    assert status == "FAIL" and "iter 2" in value and numbers["max_rel_diff"] == pytest.approx(0.1 / 1.5)
    assert v.loss_curve_verdict(single, {7: 1.0}, 1e-3)[0] == "FAIL"


def test_budgets_fit_ten_minutes():
    probes = 2 * 10   # the two nvidia-smi calls' timeouts
    assert sum(v.BUDGETS["full"].values()) + probes < 600
    assert set(v.BUDGETS["quick"]) == set(v.BUDGETS["full"])
    assert max(v.BUDGETS["quick"].values()) <= 240   # CI: a hung step is stopped within 4 minutes


def test_report_json_and_exit_status(tmp_path, monkeypatch, capsys):
    rows = [v.row("gpu", "INFO", "NVIDIA H100 80GB HBM3, 81559 MiB", "-", 0.0),
            v.row("fps T", "PASS", "60.00 fps", ">= 0.9 x paper 52.4 = 47.2 fps", 12.3, 45, {"fps": 60.0}),
            v.row("parity", "FAIL", "1 failed", "the parity tests' tolerances pass, TF32 off", 80.0, 90)]
    monkeypatch.setattr(gpu_check, "run_checks", lambda device, quick, work: (rows, {"name": "NVIDIA H100"}))
    out = tmp_path / "sub" / "report.json"
    assert gpu_check.main(["--device", "cuda", "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "FAIL" in printed and "| fps T | PASS | 60.00 fps |" in printed and "12 (45)" in printed
    report = json.loads(out.read_text())
    assert report["verdict"] == "FAIL" and report["device"] == "cuda" and report["quick"] is False
    assert report["budget_seconds"] == sum(v.BUDGETS["full"].values())
    assert [r["status"] for r in report["rows"]] == ["INFO", "PASS", "FAIL"]
    assert report["rows"][1]["numbers"] == {"fps": 60.0} and report["rows"][1]["timeout_s"] == 45
    assert set(report["rows"][0]) == {"step", "status", "value", "threshold", "seconds", "timeout_s", "numbers"}
    monkeypatch.setattr(gpu_check, "run_checks", lambda device, quick, work: (rows[:2], None))
    assert gpu_check.main(["--device", "cpu", "--quick", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["verdict"] == "PASS"
    assert gpu_check.main(["--json", str(tmp_path)]) == 2   # a directory: one-line usage error
    assert "is a directory" in capsys.readouterr().err


def test_mpirun_step_is_info_without_two_gpus(tmp_path):
    r = gpu_check.check_mpirun("cpu", True, 0, tmp_path, 0)
    assert r["status"] == "INFO" and "CPU" in r["value"]
    r = gpu_check.check_mpirun("cuda", False, 1, tmp_path, 50)
    assert r["status"] == "INFO" and ">= 2 GPUs" in r["value"]
