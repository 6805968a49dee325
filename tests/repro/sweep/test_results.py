"""segnext_jt/repro/sweep/results.py: the result.json / eval-entry types shared by seed_sweep.py and report.py."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from segnext_jt.repro.report import command as report
from segnext_jt.repro.sweep.results import (EvalEntry, ResultError, RunResult, eval_entry_from_summary,
                           load_result)
from segnext_jt.files import json_safe

OLD_RESULT = {  # written before cfg_options / num_images / nmf_draws existed
    "seed": 3, "config": "configs/segnext_l.yaml", "checkpoint": "seed_3/iter_160000.npz",
    "final_loss": 0.5, "train_log": "log.json",
    "eval": [{"eval_seed": 0, "mode": "ss", "mIoU": 50.1, "aAcc": 82.0, "mAcc": 61.0,
              "per_class_iou": [40.0, None], "seconds": 12.5},
             {"eval_seed": 0, "mode": "msflip", "mIoU": 51.2}]}


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_round_trip_and_key_order(tmp_path):
    run = RunResult(seed=2, config="c.yaml", checkpoint="seed_2/iter_8.npz", final_loss=0.25,
                    train_log="log.json", cfg_options=["train.max_iters=8"],
                    evals=[EvalEntry(0, "ss", 40.5, 80.0, 60.0, [1.0, None], 3.0, 10, 4),
                           EvalEntry(1, "msflip", 41.0)],
                    platform={"platform_id": "0123456789ab", "cpu_model": "AMD EPYC", "bits_id": "ba9876543210"})
    obj = json.loads(json.dumps(run.to_json(), allow_nan=False))
    assert list(obj) == ["seed", "config", "checkpoint", "final_loss", "train_log",
                         "cfg_options", "eval", "platform"]
    assert list(obj["eval"][0]) == ["eval_seed", "mode", "mIoU", "aAcc", "mAcc",
                                    "per_class_iou", "seconds", "num_images", "nmf_draws", "class_names"]
    path = _write(tmp_path / "seed_2" / "result.json", obj)
    back = load_result(path, 2)
    run.path = path
    assert back == run
    assert back.to_json() == obj
    assert back.selected("ss").nmf_draws == 4 and back.evals_for("msflip")[0].nmf_draws == 1


def test_old_files_without_new_keys_still_load(tmp_path):
    path = _write(tmp_path / "seed_3" / "result.json", OLD_RESULT)
    run = load_result(path, 3)
    assert run.platform is None  # written before the fingerprint
    assert run.cfg_options is None and [e.nmf_draws for e in run.evals] == [1, 1]
    assert run.evals[0].num_images is None and run.evals[0].per_class_iou == [40.0, None]
    # the report reads it, and nmf_draws > 1 entries too
    obj = json.loads(json.dumps(OLD_RESULT))
    obj["eval"][0]["nmf_draws"] = 8
    _write(tmp_path / "seed_4" / "result.json", dict(obj, seed=4))
    assert report.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("key, value", [
    ("nmf_draws", 0), ("nmf_draws", "4"), ("nmf_draws", True), ("nmf_draws", 2.0),
    ("num_images", -1), ("mIoU", 150.0), ("mIoU", math.inf), ("aAcc", 101), ("seconds", -1),
    ("eval_seed", "0"), ("mode", "ms"), ("per_class_iou", "x"),
])
def test_bad_eval_values_are_one_line_naming_file_and_key(tmp_path, capsys, key, value):
    obj = json.loads(json.dumps(OLD_RESULT))
    obj["eval"][1][key] = value
    path = _write(tmp_path / "seed_3" / "result.json", obj)
    with pytest.raises(ResultError) as err:
        load_result(path, 3)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: eval[1]: '{key}'"), msg
    assert report.main([str(tmp_path)]) == 2
    out = capsys.readouterr().err.strip()
    assert out == f"error: {msg}"


@pytest.mark.parametrize("mutate, pattern", [
    (lambda r: r.update(seed=9), "'seed' is 9 but the directory says 3"),
    (lambda r: r.update(seed=None), "'seed' is null"),
    (lambda r: r.pop("seed"), "missing key 'seed'"),
    (lambda r: r.update(cfg_options="a=1"), "'cfg_options' must be a list of strings"),
    (lambda r: r.update(config=3), "'config' must be a string or null"),
    (lambda r: r["eval"].append(dict(r["eval"][0])), "eval\\[2\\]: duplicate entry"),
])
def test_bad_run_values(tmp_path, mutate, pattern):
    obj = json.loads(json.dumps(OLD_RESULT))
    mutate(obj)
    path = _write(tmp_path / "seed_3" / "result.json", obj)
    with pytest.raises(ResultError, match=pattern):
        load_result(path, 3)
    assert issubclass(ResultError, ValueError) and report.ReportInputError is ResultError


def test_writer_helpers_and_custom_error_class():
    summary = {"mIoU": 40.0, "aAcc": 80.0, "mAcc": float("nan"), "per_class_iou": [1.0],
               "seconds": 2.0, "num_images": 5, "table": "ignored"}
    entry = EvalEntry.from_json(json_safe(eval_entry_from_summary(summary, 7, "ss", 3)), "e.json")
    assert entry == EvalEntry(7, "ss", 40.0, 80.0, None, [1.0], 2.0, 5, 3)

    class SweepError(ValueError):
        pass
    with pytest.raises(SweepError, match=r"^e\.json: 'mode' must be one of"):
        EvalEntry.from_json({"eval_seed": 0, "mode": "x", "mIoU": 1.0}, "e.json", SweepError)
