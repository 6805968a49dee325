"""repro/report.py end to end on synthetic sweeps: selection rules, missing and unevaluated seeds,
comparison, learning curves, plots, byte-identical reruns, strict input errors. No Jittor."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import LOGS, ROOT, parse_svg

from segnext_jt.repro.report import command as report
from segnext_jt.repro.report import inputs as report_inputs
from segnext_jt.repro.report.reference import infer_size


def _write_result(d: Path, seed, evals, train_log=None, final_loss=None, name="result.json"):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps({
        "seed": seed, "config": "configs/segnext_mscan-l_ade20k_160k.yaml",
        "checkpoint": f"work_dirs/seed_{seed}/iter_160000.npz", "final_loss": final_loss,
        "train_log": train_log, "eval": evals}))


def _evals(seed: int, eval_seeds, base: float, msflip: bool = True):
    out = [{"eval_seed": e, "mode": "ss", "mIoU": round(base + 0.1 * e, 2), "aAcc": 82.5,
            "mAcc": 62.0, "per_class_iou": [base + seed, None, 30.0 - seed]}
           for e in eval_seeds]
    if msflip:
        out.append({"eval_seed": eval_seeds[0], "mode": "msflip", "mIoU": base + 1.1})
    return out


def _make_sweep(root: Path, bases: dict[int, float], planned=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if planned is not None:
        (root / "sweep.json").write_text(json.dumps({
            "config": "configs/segnext_mscan-l_ade20k_160k.yaml", "seeds": planned,
            "eval_seeds": [0, 1, 2], "created": "2025-01-01T00:00:00Z"}))
    for seed, base in bases.items():
        _write_result(root / f"seed_{seed}", seed, _evals(seed, [0, 1, 2], base))
    return root


def test_report_end_to_end(tmp_path):
    sweep = _make_sweep(tmp_path / "sweep", {0: 50.2, 1: 49.7, 2: 50.6}, planned=[0, 1, 2, 3, 4, 5])
    shutil.copy(LOGS / "mm0_seed0.log.json", sweep / "seed_0" / "log.json")
    logs_dir = sweep / "logs"
    logs_dir.mkdir()
    shutil.copy(LOGS / "mm0_seed1.log.json", logs_dir / "seed1.log.json")
    _write_result(sweep / "seed_0", 0, _evals(0, [0, 1, 2], 50.2), train_log="log.json",
                  final_loss=0.41)
    _write_result(sweep / "seed_1", 1, _evals(1, [0, 1, 2], 49.7),
                  train_log="logs/seed1.log.json")  # resolved against DIR
    _write_result(sweep / "seed_2", 2, _evals(2, [0, 1, 2], 50.6), train_log="gone.json")
    _write_result(sweep / "seed_3", 3, [])  # trained, not evaluated
    (sweep / "seed_4").mkdir()  # started, unfinished; seed 5 never started
    other = _make_sweep(tmp_path / "other", {0: 50.0, 1: 49.6, 2: 50.3, 7: 48.0})
    out = tmp_path / "out"
    rc = report.main([str(sweep), "--official", str(LOGS / "mm1_scalars.json"),
                      "--compare", str(other), "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    assert data["runs"]["missing"] == [4, 5] and data["runs"]["not_evaluated"] == [3]
    assert "**missing**" in md and "| 4 | missing" in md and "| 5 | missing" in md
    # selection rule: the eval whose eval_seed equals the training seed
    assert [(r["seed"], r["ss"]["eval_seed"]) for r in data["per_seed"][:3]] == [(0, 0), (1, 1),
                                                                                (2, 2)]
    assert data["per_seed"][1]["ss"]["mIoU"] == pytest.approx(49.8)
    assert data["per_seed"][0]["final_loss"] == 0.41
    assert data["per_seed"][1]["final_loss"] == pytest.approx(1.25)  # from the train log
    ss = data["summary"]["ss"]
    assert ss["n"] == 3 and ss["mean"] == pytest.approx(np.mean([50.2, 49.8, 50.8]))
    assert data["reference"]["ss"] == 50.99 and data["reference"]["ss_range"] == [49.6, 51.0]
    assert data["reference_position"]["ss"]["percentile"] == 100.0
    vd = data["variance_decomposition"]["ss"]
    assert vd["n_groups"] == 3 and vd["var_within"] == pytest.approx(0.01)
    assert "msflip" not in data["variance_decomposition"]  # one eval seed per checkpoint
    comp = data["comparison"]["ss"]
    assert comp["n"] == 3 and comp["only_in_b"] == ["7"]
    assert data["learning_curves"]["seeds_with_logs"] == [0, 1]
    assert any("gone.json" in w for w in data["warnings"])
    assert data["per_class_iou_sd_top10"][0]["class_index"] in (0, 2)
    for name in data["plots"]:
        parse_svg((out / name).read_text())
    assert {"strip_ss.svg", "strip_msflip.svg", "eval_spread_ss.svg", "hist_ss.svg",
            "loss_curves.svg", "miou_curves.svg", "compare_ss.svg"} <= set(data["plots"])
    assert "eval-seed" in md and "percentile" in md and "Paired comparison" in md
    # reproducible: same inputs, same bytes
    out2 = tmp_path / "out2"
    assert report.main([str(sweep), "--official", str(LOGS / "mm1_scalars.json"),
                        "--compare", str(other), "--out", str(out2)]) == 0
    assert (out2 / "report.json").read_text() == (out / "report.json").read_text()


@pytest.mark.slow
def test_report_checkpoint_only_and_script(tmp_path):
    sweep = tmp_path / "ckpt"
    evals = [{"eval_seed": e, "mode": "ss", "mIoU": 50.5 + 0.05 * ((e * 7) % 5)}
             for e in range(8)]
    _write_result(sweep / "checkpoint_eval", None, evals)
    proc = subprocess.run([sys.executable, "repro/report.py", str(sweep), "--reference", "50.99",
                           "--reference-range", "49.60,51.0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((sweep / "report.json").read_text())
    ck = data["checkpoint_eval"]["modes"]["ss"]
    assert ck["summary"]["n"] == 8 and ck["reference_position"]["ranges_overlap"] is True
    assert data["per_seed"] == [] and data["summary"] == {}
    assert "Evaluation-only spread" in (sweep / "report.md").read_text()
    for name in data["plots"]:
        parse_svg((sweep / name).read_text())
    assert "checkpoint_eval_hist_ss.svg" in data["plots"]


@pytest.mark.parametrize("mutate, pattern", [
    (lambda r: r.update(seed=9), r"seed_1[/\\]result\.json: 'seed' is 9"),
    (lambda r: r.pop("eval"), r"'eval' must be a list"),
    (lambda r: r["eval"][0].update(mIoU=150.0), r"eval\[0\]: 'mIoU' must be a percentage"),
    (lambda r: r["eval"][0].update(mode="ms"), r"eval\[0\]: 'mode' must be one of"),
    (lambda r: r["eval"].append(dict(r["eval"][0])), r"duplicate entry for eval_seed 0"),
    (lambda r: r.update(final_loss="low"), r"'final_loss' must be a finite number"),
])
def test_report_strict_errors(tmp_path, capsys, mutate, pattern):
    sweep = _make_sweep(tmp_path / "bad", {1: 50.0})
    path = sweep / "seed_1" / "result.json"
    obj = json.loads(path.read_text())
    mutate(obj)
    path.write_text(json.dumps(obj))
    assert report.main([str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "result.json" in err
    with pytest.raises(report_inputs.ReportInputError, match=pattern):
        report_inputs.load_sweep(sweep)


def test_report_empty_dir_and_reference_inference(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(report_inputs.ReportInputError, match="no seed_<k>/result.json"):
        report_inputs.load_sweep(tmp_path / "empty")
    mm1_name = "configs/segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py"
    assert infer_size([mm1_name]) == "t"
    assert infer_size(["segnext_large_512x512_ade_160k.pkl"]) == "l"
    assert infer_size(["something.yaml"]) is None
