"""segnext_jt/repro/report/analysis.py pieces that the end-to-end report tests do not pin down."""
from __future__ import annotations

from types import SimpleNamespace

from segnext_jt.repro.report.analysis import per_class_sd
from segnext_jt.repro.report.inputs import TrainLogs
from segnext_jt.repro.sweep.results import EvalEntry, RunResult


def _runs(class_names=None):
    per_class = {0: [90.0, 10.0, 50.0], 1: [91.0, 30.0, 50.0], 2: [89.0, 20.0, None]}
    return {seed: RunResult(seed, "c.yaml", None, None, "log.json",
                            [EvalEntry(seed, "ss", 50.0, per_class_iou=v, class_names=class_names)])
            for seed, v in per_class.items()}


def test_seed_sensitive_classes_take_names_from_the_evaluations_or_the_train_logs():
    rows = per_class_sd(_runs(["sky", "cat", "dog"]))
    assert [(r["class_index"], r["class"]) for r in rows] == [(1, "cat"), (0, "sky"), (2, "dog")]
    assert rows[0]["sd"] == 10.0 and rows[2]["sd"] == 0.0
    # result.json files without class_names (older sweeps): the names the train logs recorded
    logs = TrainLogs(by_seed={s: SimpleNamespace(meta={"CLASSES": ["a", "b", "c"]}) for s in range(3)})
    assert [r["class"] for r in per_class_sd(_runs(), logs=logs)] == ["b", "a", "c"]
    # no names anywhere, or names that do not fit: indices only
    assert [r["class"] for r in per_class_sd(_runs())] == [None, None, None]
    wrong = TrainLogs(by_seed={0: SimpleNamespace(meta={"CLASSES": ["a", "b"]})})
    assert [r["class"] for r in per_class_sd(_runs(), logs=wrong)] == [None, None, None]
