"""repro/compare_logs.py: two training logs compared (in process and as a script), its --out written
as strict JSON. No Jittor."""
from __future__ import annotations

import json

import pytest

from helpers import LOGS, one_error_line, run_cli, tool_cmd

from segnext_jt.repro.report import compare_logs as compare_cli
from segnext_jt.repro.report.log_parsing import parse_log
from segnext_jt.repro.report.logs import compare_logs


def test_compare_logs_and_cli(tmp_path, capsys):
    a, b = parse_log(LOGS / "mm0_seed0.log.json"), parse_log(LOGS / "mm0_seed1.log.json")
    res = compare_logs(a, b, window=100)
    s = res["summary"]
    assert s["n_shared_train_iters"] == 8 and s["mean_loss_diff"] == pytest.approx(-0.05)
    assert s["max_rel_lr_diff"] == 0.0 and s["max_abs_lr_diff"] == 0.0
    assert s["n_shared_windows"] == 4
    assert [(r["iter"], round(r["mIoU_diff"], 3)) for r in res["val"]] == [(200, 0.625),
                                                                           (400, -0.5)]
    assert res["meta"]["config_differs"] and res["meta"]["ham_differs"]
    assert any("MD_R=64" in line for line in res["meta"]["config_diff"])
    out = tmp_path / "cmp.json"
    rc = compare_cli.main([str(LOGS / "mm0_seed0.log.json"), str(LOGS / "mm1_scalars.json"),
                           "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mIoU (%) at shared evaluation iterations" in printed and "not present" in printed
    saved = json.loads(out.read_text())
    assert saved["summary"]["n_shared_val_iters"] == 2
    assert compare_cli.main([str(LOGS / "mm0_malformed.log.json"),
                             str(LOGS / "mm1_scalars.json")]) == 2
    assert "mm0_malformed.log.json:3" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_logs_out_is_strict_json(tmp_path):
    log = tmp_path / "a.log.json"
    lines = [{"seed": 0, "config": "x"}, {"mode": "train", "iter": 10, "loss": 1.0, "lr": 0.1},
             {"mode": "val", "iter": 10, "mIoU": 0.5, "IoU.a": float("nan")}]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "o" / "cmp.json"
    proc = run_cli(tool_cmd("repro", "compare_logs.py") + [str(log), str(log), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    bad = run_cli(tool_cmd("repro", "compare_logs.py") + [str(log), str(log), "--out", str(tmp_path)])
    one_error_line(bad, "--out", "directory")


def test_compare_logs_reports_each_peak_memory_with_its_kind(tmp_path, capsys):
    def write(name, meta, memories):
        path = tmp_path / name
        lines = [meta] + [{"mode": "train", "iter": 10 * (i + 1), "loss": 1.0, "lr": 0.1, "memory": m}
                          for i, m in enumerate(memories)]
        path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        return str(path)
    ours = write("ours.json", {"seed": 0, "mmseg_version": "segnext_jt 0.5", "memory_kind": "device_reserved_mb"},
                 [4000, 4100])
    mmseg = write("mmseg.json", {"seed": 0, "mmseg_version": "0.30.0"}, [43320, 43000])
    res = compare_logs(parse_log(ours), parse_log(mmseg))
    assert (res["a"]["peak_memory_mb"], res["a"]["memory_kind"]) == (4100, "device_reserved_mb")
    assert (res["b"]["peak_memory_mb"], res["b"]["memory_kind"]) == (43320, "device_allocated_mb")
    assert compare_cli.main([ours, mmseg]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("peak memory"))
    assert "4100 MB (peak held by Jittor's CUDA allocator)" in line
    assert "43320 MB (torch.cuda.max_memory_allocated)" in line and "not comparable" in line
    assert compare_cli.main([ours, ours]) == 0
    assert "not comparable" not in capsys.readouterr().out
