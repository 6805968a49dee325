"""IoUMetric against hand-computed confusion examples and an independent confusion-matrix
implementation (docs/design.md §6). NumPy only, no Jittor."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from segnext_jt.evaluation.metrics import IoUMetric, mmcv_round_float


def _confusion_reference(preds, labels, n, ignore=255):
    """Independent implementation: full confusion matrix, then mmseg's formulas."""
    cm = np.zeros((n, n), dtype=np.int64)  # rows = label, cols = pred
    for p, l in zip(preds, labels):
        keep = l != ignore
        np.add.at(cm, (l[keep].astype(int), p[keep].astype(int)), 1)
    inter = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
        acc = np.where(cm.sum(1) > 0, inter / cm.sum(1), np.nan)
    return iou, acc, inter.sum() / cm.sum()


def test_hand_computed_example_with_ignore_and_absent_class():
    # pixels (pred, label): (0,0) (0,1) (1,1) | (1,255) ignored | (2,2) (2,0)
    pred = np.array([[0, 0, 1], [1, 2, 2]])
    label = np.array([[0, 1, 1], [255, 2, 0]], dtype=np.uint8)
    m = IoUMetric(4)
    m.update(pred, label)
    np.testing.assert_array_equal(m.area_intersect, [1, 1, 1, 0])
    np.testing.assert_array_equal(m.area_pred, [2, 1, 2, 0])  # ignored pixel's pred 1 dropped
    np.testing.assert_array_equal(m.area_label, [2, 2, 1, 0])
    np.testing.assert_array_equal(m.area_union, [3, 2, 2, 0])
    r = m.compute()
    np.testing.assert_allclose(r["IoU"][:3], [1 / 3, 0.5, 0.5])
    np.testing.assert_allclose(r["Acc"][:3], [0.5, 0.5, 1.0])
    assert math.isnan(r["IoU"][3]) and math.isnan(r["Acc"][3])  # absent from pred and label
    # class 3 is excluded from the means
    assert r["mIoU_frac"] == pytest.approx((1 / 3 + 0.5 + 0.5) / 3)
    assert r["mIoU"] == 44.44
    assert r["mAcc"] == 66.67
    assert r["aAcc"] == 60.0 and r["aAcc_frac"] == pytest.approx(0.6)
    assert r["num_pixels"] == 5 and r["num_images"] == 1


def test_predicted_but_absent_class_counts_as_zero():
    m = IoUMetric(3)
    m.update(np.array([[0, 2]]), np.array([[0, 0]]))
    r = m.compute()
    assert r["IoU"][2] == 0.0  # predicted, never in GT: IoU 0 ...
    assert math.isnan(r["Acc"][2])  # ... and Acc undefined
    assert math.isnan(r["IoU"][1])
    assert r["mIoU"] == 25.0  # nanmean(0.5, 0, NaN): the 0 is included
    assert r["mAcc"] == 50.0
    assert r["aAcc"] == 50.0


def test_dataset_accumulation_not_per_image_average():
    a_pred, a_lab = np.zeros((2, 2), int), np.zeros((2, 2), int)
    b_pred, b_lab = np.array([[0, 0], [0, 0]]), np.array([[1, 0], [255, 255]])
    m = IoUMetric(2)
    m.update(a_pred, a_lab)
    m.update(b_pred, b_lab)
    whole = IoUMetric(2)
    whole.update(np.concatenate([a_pred, b_pred], 1), np.concatenate([a_lab, b_lab], 1))
    r, rw = m.compute(), whole.compute()
    np.testing.assert_array_equal(r["IoU"], rw["IoU"])
    assert r["mIoU"] == rw["mIoU"] == pytest.approx(np.round((5 / 6 + 0) / 2 * 100, 2))
    per_image = []
    for p, l in ((a_pred, a_lab), (b_pred, b_lab)):
        single = IoUMetric(2)
        single.update(p, l)
        per_image.append(single.compute()["mIoU_frac"])
    assert np.mean(per_image) * 100 == pytest.approx(62.5)  # (100 + 25) / 2
    assert r["mIoU"] != pytest.approx(62.5)


def test_matches_independent_confusion_matrix():
    rng = np.random.default_rng(0)
    n = 7
    preds, labels = [], []
    m = IoUMetric(n)
    for _ in range(5):
        p = rng.integers(0, n, size=(13, 17))
        l = rng.integers(0, n - 1, size=(13, 17))  # class n-1 never in GT
        l[rng.random((13, 17)) < 0.1] = 255
        preds.append(p)
        labels.append(l)
        m.update(p, l)
    iou, acc, aacc = _confusion_reference(preds, labels, n)
    r = m.compute()
    np.testing.assert_allclose(r["IoU"], iou, equal_nan=True)
    np.testing.assert_allclose(r["Acc"], acc, equal_nan=True)
    assert r["aAcc_frac"] == pytest.approx(aacc)
    assert r["mIoU"] == np.round(np.nanmean(iou) * 100, 2)
    assert r["mAcc"] == np.round(np.nanmean(acc) * 100, 2)


def test_merge_and_state_roundtrip():
    rng = np.random.default_rng(1)
    imgs = [(rng.integers(0, 5, (8, 8)), rng.integers(0, 5, (8, 8))) for _ in range(6)]
    full, part1, part2 = IoUMetric(5), IoUMetric(5), IoUMetric(5)
    for i, (p, l) in enumerate(imgs):
        full.update(p, l)
        (part1 if i < 3 else part2).update(p, l)
    restored = IoUMetric.from_state(json.loads(json.dumps(part1.state())))
    restored.merge(part2)
    assert restored.state() == full.state()
    with pytest.raises(ValueError, match="incompatible"):
        full.merge(IoUMetric(6))
    bad = full.state()
    bad["area_union"] = bad["area_union"][:-1]
    with pytest.raises(ValueError, match="area_union"):
        IoUMetric.from_state(bad)
    with pytest.raises(KeyError, match="area_pred"):
        IoUMetric.from_state({k: v for k, v in full.state().items() if k != "area_pred"})


def test_invalid_inputs_name_the_value():
    m = IoUMetric(4)
    with pytest.raises(ValueError, match=r"label value\(s\) 7"):
        m.update(np.zeros((2, 2), int), np.array([[0, 7], [255, 1]]))
    with pytest.raises(ValueError, match=r"pred value\(s\) -1"):
        m.update(np.array([[0, -1]]), np.array([[0, 1]]))
    with pytest.raises(TypeError, match="integer"):
        m.update(np.zeros((2, 2)), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="shape"):
        m.update(np.zeros((2, 2), int), np.zeros((2, 3), int))
    assert m.num_images == 0  # failed updates leave no partial counts


def test_empty_metric_is_nan():
    r = IoUMetric(3).compute()
    assert math.isnan(r["mIoU"]) and math.isnan(r["aAcc"])


def test_mmseg0_val_log_line_and_table():
    names = ["wall", "bed ", "flag"]
    m = IoUMetric(3, class_names=names)
    m.update(np.array([[0, 0, 1, 0]]), np.array([[0, 1, 1, 0]]))
    r = m.compute()
    line = m.to_mmseg0_val_log(iter=2000, lr=5.96e-05, epoch=13)
    keys = list(line)
    assert keys[:7] == ["mode", "epoch", "iter", "lr", "aAcc", "mIoU", "mAcc"]
    assert keys[7:] == ["IoU.wall", "IoU.bed ", "IoU.flag", "Acc.wall", "Acc.bed ", "Acc.flag"]
    assert line["mode"] == "val" and line["iter"] == 2000 and line["epoch"] == 13
    # mmseg 0.x: np.round(x*100, 2)/100, then mmcv round(., 5)
    assert line["mIoU"] == round(float(np.round(r["mIoU_frac"] * 100, 2)) / 100, 5) == 0.5833
    assert line["IoU.wall"] == 0.6667 and line["Acc.bed "] == 0.5
    assert math.isnan(line["IoU.flag"]) and math.isnan(line["Acc.flag"])
    text = json.dumps(line)  # mmcv writes NaN literally; json.loads reads it back
    assert json.loads(text)["IoU.bed "] == 0.5
    table = m.table()
    assert "bed" in table and "nan" in table and "66.67" in table and "mIoU" in table
    assert mmcv_round_float(0.1234567) == 0.12346
