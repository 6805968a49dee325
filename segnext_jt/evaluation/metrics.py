"""Semantic-segmentation IoU metric with mmseg's arithmetic (docs/design.md §6).

Pure NumPy on purpose: evaluation results must not depend on the framework or device, and the
reproducibility tooling (repro/) imports this module without Jittor.

Arithmetic, identical to mmseg 0.x ``eval_metrics`` and mmseg 1.x ``IoUMetric``:

* per image, pixels whose label equals ``ignore_index`` are dropped;
* per class c: intersect_c = #(pred == label == c), pred_c = #(pred == c), label_c = #(label == c),
  union_c = pred_c + label_c - intersect_c;
* the counts are summed over the whole dataset *before* any division (no per-image averaging);
* IoU_c = sum(I_c) / sum(U_c), Acc_c = sum(I_c) / sum(label_c), NaN where the denominator is 0;
* mIoU = nanmean(IoU), mAcc = nanmean(Acc), aAcc = sum(I) / sum(label);
* summaries are reported as ``np.round(nanmean * 100, 2)`` (percent, 2 decimals).

One deliberate difference: mmseg's ``torch.histc`` silently drops label or prediction values
outside [0, num_classes); here they raise ``ValueError`` because they always indicate a data bug
(e.g. a forgotten ``reduce_zero_label``).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence

import numpy as np

__all__ = ["IoUMetric", "mmcv_round_float"]

# mmcv's TextLoggerHook._round_float: every Python float written to *.log.json goes through
# round(v, 5). np.float64 is a float subclass, so mmseg's metric values are rounded too.
_MMCV_JSON_DIGITS = 5

_STATE_VERSION = 1
_COUNT_KEYS = ("area_intersect", "area_union", "area_pred", "area_label")


def mmcv_round_float(value: float) -> float:
    """Round like mmcv's log.json writer (5 decimals); NaN stays NaN."""
    value = float(value)
    return value if math.isnan(value) else round(value, _MMCV_JSON_DIGITS)


def _round_percent(fraction: float | np.ndarray) -> Any:
    """mmseg's summary rounding: percent with 2 decimals (np.round, i.e. round-half-even)."""
    return np.round(np.asarray(fraction, dtype=np.float64) * 100.0, 2)


class IoUMetric:
    """Accumulates per-class intersect / union / pred / label pixel counts over a dataset.

    Memory is constant (four int64 vectors of length ``num_classes``), so it can run over the
    2,000 ADE20K validation images, be split across workers (:meth:`merge`) and be checkpointed
    (:meth:`state` / :meth:`from_state`).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255,
                 class_names: Optional[Sequence[str]] = None) -> None:
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"IoUMetric: num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        if 0 <= self.ignore_index < self.num_classes:
            # mmseg allows this in principle, but then a real class could never be scored.
            raise ValueError(f"IoUMetric: ignore_index {self.ignore_index} is a valid class id "
                             f"(num_classes={self.num_classes})")
        if class_names is None:
            # mmseg 0.x uses tuple(range(num_classes)) when the dataset has no CLASSES.
            class_names = [str(i) for i in range(self.num_classes)]
        if len(class_names) != self.num_classes:
            raise ValueError(f"IoUMetric: {len(class_names)} class names for "
                             f"{self.num_classes} classes")
        self.class_names: list[str] = [str(n) for n in class_names]
        self.reset()

    # ------------------------------------------------------------------------------------------
    # accumulation
    # ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        n = self.num_classes
        self.area_intersect = np.zeros(n, dtype=np.int64)
        self.area_union = np.zeros(n, dtype=np.int64)
        self.area_pred = np.zeros(n, dtype=np.int64)
        self.area_label = np.zeros(n, dtype=np.int64)
        self.num_images = 0

    def _check_range(self, values: np.ndarray, what: str) -> None:
        if values.size == 0:
            return
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= self.num_classes:
            bad = np.unique(values[(values < 0) | (values >= self.num_classes)])
            shown = ", ".join(str(int(v)) for v in bad[:10])
            more = f" (and {bad.size - 10} more)" if bad.size > 10 else ""
            raise ValueError(
                f"IoUMetric.update: {what} value(s) {shown}{more} outside [0, {self.num_classes}) "
                f"and not ignore_index={self.ignore_index}")

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add one image: ``pred`` an integer class map, ``label`` the same shape (may hold
        ignore_index)."""
        pred = np.asarray(pred)
        label = np.asarray(label)
        if pred.shape != label.shape:
            raise ValueError(f"IoUMetric.update: pred shape {pred.shape} != label shape "
                             f"{label.shape}")
        if not np.issubdtype(pred.dtype, np.integer):
            # Floats here usually mean logits were passed instead of an argmax map.
            raise TypeError(f"IoUMetric.update: pred must be an integer class map, got "
                            f"{pred.dtype}")
        if not (np.issubdtype(label.dtype, np.integer) or label.dtype == np.bool_):
            raise TypeError(f"IoUMetric.update: label must be integer, got {label.dtype}")

        keep = label != self.ignore_index
        lab = label[keep].astype(np.int64, copy=False).ravel()
        prd = pred[keep].astype(np.int64, copy=False).ravel()
        self._check_range(lab, "label")
        self._check_range(prd, "pred")

        n = self.num_classes
        inter = np.bincount(lab[prd == lab], minlength=n)
        area_pred = np.bincount(prd, minlength=n)
        area_label = np.bincount(lab, minlength=n)
        self.area_intersect += inter
        self.area_pred += area_pred
        self.area_label += area_label
        self.area_union += area_pred + area_label - inter
        self.num_images += 1

    def merge(self, other: "IoUMetric") -> "IoUMetric":
        """Add the counts of another metric over a disjoint set of images (returns self)."""
        if not isinstance(other, IoUMetric):
            raise TypeError(f"IoUMetric.merge: expected IoUMetric, got {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"IoUMetric.merge: incompatible metrics (num_classes {self.num_classes} vs "
                f"{other.num_classes}, ignore_index {self.ignore_index} vs {other.ignore_index})")
        for key in _COUNT_KEYS:
            getattr(self, key).__iadd__(getattr(other, key))
        self.num_images += other.num_images
        return self

    # ------------------------------------------------------------------------------------------
    # persistence (resumable evaluation)
    # ------------------------------------------------------------------------------------------
    def state(self) -> dict:
        """JSON-serialisable snapshot of the accumulated counts."""
        out: dict[str, Any] = {
            "version": _STATE_VERSION,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "class_names": list(self.class_names),
            "num_images": int(self.num_images),
        }
        for key in _COUNT_KEYS:
            out[key] = [int(v) for v in getattr(self, key)]
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "IoUMetric":
        missing = [k for k in ("num_classes", "ignore_index", "num_images", *_COUNT_KEYS)
                   if k not in state]
        if missing:
            raise KeyError(f"IoUMetric.from_state: state lacks key(s) {missing}")
        if state.get("version", _STATE_VERSION) != _STATE_VERSION:
            raise ValueError(f"IoUMetric.from_state: unsupported state version {state['version']}")
        metric = cls(int(state["num_classes"]), int(state["ignore_index"]),
                     state.get("class_names"))
        for key in _COUNT_KEYS:
            arr = np.asarray(state[key], dtype=np.int64)
            if arr.shape != (metric.num_classes,):
                raise ValueError(f"IoUMetric.from_state: '{key}' has shape {arr.shape}, "
                                 f"expected ({metric.num_classes},)")
            if (arr < 0).any():
                raise ValueError(f"IoUMetric.from_state: '{key}' has negative counts")
            setattr(metric, key, arr.copy())
        metric.num_images = int(state["num_images"])
        return metric

    # ------------------------------------------------------------------------------------------
    # results
    # ------------------------------------------------------------------------------------------
    def compute(self) -> dict[str, Any]:
        """Dataset-level metrics.

        Returns a dict with
        * ``aAcc``, ``mIoU``, ``mAcc``: percent, rounded to 2 decimals exactly as mmseg logs them;
        * ``aAcc_frac``, ``mIoU_frac``, ``mAcc_frac``: the unrounded fractions;
        * ``IoU``, ``Acc``: per-class fractions (float64 arrays, NaN where undefined);
        * ``class_names``, ``num_images``, ``num_pixels`` (labelled, non-ignored pixels).
        """
        inter = self.area_intersect.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(self.area_union > 0, inter / self.area_union, np.nan)
            acc = np.where(self.area_label > 0, inter / self.area_label, np.nan)
        total_label = int(self.area_label.sum())
        a_acc = float(inter.sum() / total_label) if total_label > 0 else math.nan
        # nanmean of an all-NaN vector is NaN (and warns); compute it explicitly instead.
        m_iou = float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan
        m_acc = float(np.nanmean(acc)) if np.isfinite(acc).any() else math.nan
        return {
            "aAcc": float(_round_percent(a_acc)),
            "mIoU": float(_round_percent(m_iou)),
            "mAcc": float(_round_percent(m_acc)),
            "aAcc_frac": a_acc,
            "mIoU_frac": m_iou,
            "mAcc_frac": m_acc,
            "IoU": iou,
            "Acc": acc,
            "class_names": list(self.class_names),
            "num_images": int(self.num_images),
            "num_pixels": total_label,
        }

    def table(self, results: Optional[Mapping[str, Any]] = None) -> str:
        """Per-class table (Class | IoU | Acc, percent with 2 decimals) plus the summary line,
        laid out like mmseg's PrettyTable output."""
        res = self.compute() if results is None else results
        iou = _round_percent(res["IoU"])
        acc = _round_percent(res["Acc"])
        rows = [[name, _fmt_pct(i), _fmt_pct(a)]
                for name, i, a in zip(res["class_names"], iou, acc)]
        per_class = _ascii_table(["Class", "IoU", "Acc"], rows)
        summary = _ascii_table(["aAcc", "mIoU", "mAcc"],
                               [[_fmt_pct(res["aAcc"]), _fmt_pct(res["mIoU"]),
                                 _fmt_pct(res["mAcc"])]])
        return f"per class results:\n{per_class}\nSummary:\n{summary}"

    def to_mmseg0_val_log(self, iter: int, lr: float, epoch: int,
                          results: Optional[Mapping[str, Any]] = None) -> "OrderedDict[str, Any]":
        """The mmseg 0.x ``*.log.json`` val line for these results.

        mmseg 0.x (``CustomDataset.evaluate``) stores ``np.round(x * 100, 2) / 100`` for aAcc,
        mIoU, mAcc and for every ``IoU.<name>`` / ``Acc.<name>``; mmcv's TextLoggerHook then
        rounds each float to 5 decimals. Key order follows mmcv: mode, epoch, iter, lr, then
        aAcc, mIoU, mAcc, all IoU.* and all Acc.*. NaN per-class values stay NaN (json writes
        ``NaN``, as mmcv does).

        Note: since mmcv 1.3.x the ``iter`` of a val line is ``len(val_dataloader)`` (the
        ``eval_iter_num``), not the training iteration; older mmseg logs wrote the training
        iteration. Pass whichever convention the writer follows; ``repro.logs`` handles both.
        """
        res = self.compute() if results is None else results
        line: "OrderedDict[str, Any]" = OrderedDict()
        line["mode"] = "val"
        line["epoch"] = int(epoch)
        line["iter"] = int(iter)
        line["lr"] = mmcv_round_float(lr)
        for key in ("aAcc", "mIoU", "mAcc"):
            line[key] = mmcv_round_float(res[key] / 100.0)
        for key in ("IoU", "Acc"):
            rounded = _round_percent(res[key])
            for name, value in zip(res["class_names"], rounded):
                line[f"{key}.{name}"] = mmcv_round_float(value / 100.0)
        return line


def _fmt_pct(value: float) -> str:
    return "nan" if math.isnan(float(value)) else f"{float(value):.2f}"


def _ascii_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A PrettyTable-style box table (centred cells)."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def fmt(cells: Sequence[str]) -> str:
        return "|" + "|".join(f" {c:^{w}} " for c, w in zip(cells, widths)) + "|"

    lines = [rule, fmt(header), rule, *(fmt(r) for r in rows), rule]
    return "\n".join(lines)
