"""Parsers for training logs, normalised to one structure, and a log-vs-log comparison.

Formats (docs/design.md §7.4):

* **mmseg0** - mmseg 0.x / original SegNeXt ``*.log.json`` and our own trainer's log (written in
  the same format). mmcv rounds every float it writes to 5 decimals (so lr 2e-6 reads 0.0). Line 1 is metadata (env_info, seed, exp_name, mmseg_version, config, ...);
  then ``"mode": "train"`` lines and ``"mode": "val"`` lines whose aAcc/mIoU/mAcc and per-class
  ``IoU.<name>`` / ``Acc.<name>`` are *fractions*.
* **mmseg1** - mmseg 1.x ``vis_data/scalars.json``: no metadata, no ``mode`` key; train lines carry
  ``iter`` and ``step``, val lines carry ``step`` and aAcc/mIoU/mAcc in *percent* (recognised by
  the ``mIoU`` key).

After normalisation every metric is in percent and every record is keyed by the *training*
iteration. mmcv >= 1.3 writes ``len(val_dataloader)`` (e.g. 2000) as a val line's ``iter``; that
line directly follows the train line of the iteration it evaluated, so such val lines are
re-keyed to the last train iteration (the raw value is kept as ``raw_iter``). Rule: a val line
takes the last train iteration when all val lines share one ``iter`` value (>= 2 of them) or when
its ``iter`` is below the last train iteration; otherwise its own ``iter`` is the training
iteration (old mmseg logs, or a writer that logs the training iteration).
"""
from __future__ import annotations

import difflib
import json
import math
import re
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from segnext_jt.repro.report.log_parsing import TrainingLog, TrainRecords

__all__ = ["binned_mean", "extract_ham_settings", "compare_logs", "shared_train_rows", "iter_rows"]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def binned_mean(iters: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray,
                window: int) -> tuple[np.ndarray, np.ndarray]:
    """Average values over iteration windows ((k-1)·W, k·W]; returns (k·W, mean) for every
    non-empty bin."""
    if window < 1:
        raise ValueError(f"binned_mean: window must be >= 1, got {window}")
    it = np.asarray(iters, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if it.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    ok = np.isfinite(v)
    it, v = it[ok], v[ok]
    bins = -(-it // window)  # ceil division: iteration W belongs to bin 1 (ends at W)
    uniq, inv = np.unique(bins, return_inverse=True)
    sums = np.bincount(inv, weights=v)
    counts = np.bincount(inv)
    return uniq * window, sums / counts


def _ham_from_text(text: str) -> Optional[dict[str, str]]:
    # mmseg python config: ham_kwargs=dict(MD_S=1, MD_R=16, ...)
    m = re.search(r"ham_kwargs\s*=\s*dict\((.*?)\)", text, flags=re.S)
    if m:
        out = {}
        for part in m.group(1).split(","):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip().lower()] = v.strip()
        return out
    # YAML (our configs): a "ham:" or "ham_kwargs:" block of "key: value" lines.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(ham|ham_kwargs):\s*$", line)
        if not m:
            continue
        indent = len(m.group(1))
        out = {}
        for sub in lines[i + 1:]:
            if not sub.strip():
                continue
            sub_indent = len(sub) - len(sub.lstrip())
            if sub_indent <= indent:
                break
            kv = re.match(r"^\s*([A-Za-z_]\w*):\s*(.*?)\s*$", sub)
            if kv:
                out[kv.group(1).lower()] = kv.group(2)
        return out or None
    return None


def _ham_from_obj(obj: Any) -> Optional[dict[str, str]]:
    if isinstance(obj, Mapping):
        for key in ("ham_kwargs", "ham"):
            if isinstance(obj.get(key), Mapping):
                return {str(k).lower(): str(v) for k, v in obj[key].items()}
        for v in obj.values():
            found = _ham_from_obj(v)
            if found is not None:
                return found
    return None


def extract_ham_settings(meta: Mapping[str, Any]) -> Optional[dict[str, str]]:
    """NMF (Hamburger) settings from a log's metadata config (mmseg text, YAML text or dict).
    Matters because the NMF rank of the released L model is uncertain (docs/design.md §8, row 1)."""
    cfg = meta.get("config")
    if isinstance(cfg, str):
        return _ham_from_text(cfg)
    return _ham_from_obj(cfg)


def _config_text(meta: Mapping[str, Any]) -> Optional[str]:
    cfg = meta.get("config")
    if cfg is None:
        return None
    if isinstance(cfg, str):
        return cfg
    return json.dumps(cfg, indent=1, sort_keys=True, default=str)


# ------------------------------------------------------------------------------------------------
# comparison
# ------------------------------------------------------------------------------------------------
def _f(v: Optional[float]) -> Optional[float]:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _diff(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def _train_columns(log: TrainingLog) -> dict[str, np.ndarray]:
    """iter, loss, lr, acc_seg of every train record as arrays (NaN where missing)."""
    train = log.train
    if not isinstance(train, TrainRecords):  # a list built by hand
        records = TrainRecords()
        for rec in train:
            records.append(rec)
        train = records
    cols = {"iter": train.iters()}
    for key in ("loss", "lr", "acc_seg"):
        present, values = train.field(key)
        cols[key] = np.where(present, values, np.nan)
    return cols


def _shared_train_columns(a: TrainingLog, b: TrainingLog) -> dict[str, np.ndarray]:
    """Per iteration with a train line in both logs: loss/lr/acc_seg of each (arrays, NaN = none)."""
    ca, cb = _train_columns(a), _train_columns(b)
    it, ia, ib = np.intersect1d(ca["iter"], cb["iter"], assume_unique=True, return_indices=True)
    out = {"iter": it}
    for key in ("loss", "lr", "acc_seg"):
        out[f"{key}_a"], out[f"{key}_b"] = ca[key][ia], cb[key][ib]
    return out


def _shared_train_rows(shared: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    """One row per iteration with a train line in both logs (for the JSON output), made one at a
    time: a list of them is what costs memory on logs of millions of lines."""
    def f(x: float) -> Optional[float]:
        return None if math.isnan(x) else x
    for start in range(0, len(shared["iter"]), 65536):  # Python numbers for a chunk at a time
        columns = {key: values[start:start + 65536].tolist() for key, values in shared.items()}
        for i, it in enumerate(columns["iter"]):
            la, lb = f(columns["loss_a"][i]), f(columns["loss_b"][i])
            yield {"iter": it, "loss_a": la, "loss_b": lb, "loss_diff": _diff(la, lb),
                   "lr_a": f(columns["lr_a"][i]), "lr_b": f(columns["lr_b"][i]),
                   "acc_seg_a": f(columns["acc_seg_a"][i]), "acc_seg_b": f(columns["acc_seg_b"][i])}


def shared_train_rows(a: TrainingLog, b: TrainingLog) -> Iterator[dict[str, Any]]:
    """compare_logs' ``loss_exact`` rows, one at a time (for writing them without a list)."""
    return _shared_train_rows(_shared_train_columns(a, b))


def _shared_loss_windows(a: TrainingLog, b: TrainingLog, window: int) -> list[dict[str, Any]]:
    """Mean loss per window of `window` iterations, for the windows present in both logs."""
    wa = dict(zip(*(x.tolist() for x in binned_mean(*a.series("loss"), window))))
    wb = dict(zip(*(x.tolist() for x in binned_mean(*b.series("loss"), window))))
    return [{"iter_end": it, "loss_a": wa[it], "loss_b": wb[it], "loss_diff": wa[it] - wb[it]}
            for it in sorted(set(wa) & set(wb))]


def _shared_val_rows(a: TrainingLog, b: TrainingLog) -> list[dict[str, Any]]:
    """One row per training iteration evaluated in both logs (mIoU, aAcc, mAcc)."""
    va = {r.iter: r for r in a.val}
    vb = {r.iter: r for r in b.val}
    rows = []
    for it in sorted(set(va) & set(vb)):
        row: dict[str, Any] = {"iter": it}
        for key in ("mIoU", "aAcc", "mAcc"):
            x, y = _f(getattr(va[it], key)), _f(getattr(vb[it], key))
            row[f"{key}_a"], row[f"{key}_b"], row[f"{key}_diff"] = x, y, _diff(x, y)
        rows.append(row)
    return rows


def _comparison_summary(shared: dict[str, np.ndarray], windows: list[dict[str, Any]],
                        vals: list[dict[str, Any]]) -> dict[str, Any]:
    both = ~np.isnan(shared["loss_a"]) & ~np.isnan(shared["loss_b"])
    loss_d = shared["loss_a"][both] - shared["loss_b"][both]
    lr_ok = ~np.isnan(shared["lr_a"]) & ~np.isnan(shared["lr_b"])
    lr_a, lr_b = shared["lr_a"][lr_ok], shared["lr_b"][lr_ok]
    lr_abs = np.abs(lr_a - lr_b)
    scale = np.maximum(np.abs(lr_a), np.abs(lr_b))
    lr_rel = lr_abs[scale > 0] / scale[scale > 0]
    miou_d = [r["mIoU_diff"] for r in vals if r["mIoU_diff"] is not None]
    return {
        "n_shared_train_iters": int(shared["iter"].size),
        "mean_loss_diff": float(np.mean(loss_d)) if loss_d.size else None,
        "mean_abs_loss_diff": float(np.mean(np.abs(loss_d))) if loss_d.size else None,
        "max_rel_lr_diff": float(lr_rel.max()) if lr_rel.size else None,
        # mmcv rounds logged floats to 5 decimals, so an mmseg 0.x lr is only good to 5e-6
        "max_abs_lr_diff": float(lr_abs.max()) if lr_abs.size else None,
        "n_shared_windows": len(windows),
        "n_shared_val_iters": len(vals),
        "mean_mIoU_diff": float(np.mean(miou_d)) if miou_d else None,
        "last_mIoU_diff": miou_d[-1] if miou_d else None,
    }


def _meta_comparison(a: TrainingLog, b: TrainingLog, max_config_diff_lines: int) -> dict[str, Any]:
    """Seeds, whether the config texts differ (with a unified diff), and the NMF settings of each."""
    text_a, text_b = _config_text(a.meta), _config_text(b.meta)
    config_differs: Optional[bool] = None
    config_diff: list[str] = []
    if text_a is not None and text_b is not None:
        config_differs = text_a != text_b
        if config_differs:
            config_diff = list(difflib.unified_diff(text_a.splitlines(), text_b.splitlines(),
                                                    fromfile=a.path, tofile=b.path, lineterm=""))
    ham_a, ham_b = extract_ham_settings(a.meta), extract_ham_settings(b.meta)
    return {
        "seed_a": a.seed, "seed_b": b.seed,
        "config_available": text_a is not None and text_b is not None,
        "config_differs": config_differs,
        "config_diff": config_diff[:max_config_diff_lines],
        "config_diff_truncated": len(config_diff) > max_config_diff_lines,
        "ham_a": ham_a, "ham_b": ham_b,
        "ham_differs": None if ham_a is None or ham_b is None else ham_a != ham_b,
    }


def _log_overview(log: TrainingLog) -> dict[str, Any]:
    memory = log.series("memory")[1]
    return {"path": log.path, "format": log.format, "seed": log.seed, "n_train": len(log.train),
            "n_val": len(log.val), "last_iter": log.train[-1].iter if log.train else None,
            "peak_memory_mb": float(memory.max()) if memory.size else None, "memory_kind": log.memory_kind}


def compare_logs(a: TrainingLog, b: TrainingLog, window: int = 1000,
                 max_config_diff_lines: int = 200, keep_rows: bool = True) -> dict[str, Any]:
    """Align two logs by training iteration (differences are a - b).

    * ``loss_exact``: train lines logged at the same iteration (loss, lr, acc_seg);
    * ``loss_windows``: mean loss per window of ``window`` iterations present in both logs
      (robust to different log intervals and to per-iteration noise);
    * ``val``: evaluations at the same training iteration (mIoU, aAcc, mAcc in percent);
    * ``meta``: seeds, whether the config texts differ (with a unified diff) and the NMF
      (ham_kwargs) settings of each.

    ``keep_rows=False`` leaves ``loss_exact`` empty (the summary still covers every shared line):
    one dict per shared line is what costs memory on a log of millions of lines; `shared_train_rows`
    yields them one at a time instead.
    """
    shared = _shared_train_columns(a, b)
    windows = _shared_loss_windows(a, b, window)
    vals = _shared_val_rows(a, b)
    return {
        "a": _log_overview(a),
        "b": _log_overview(b),
        "window": window,
        "summary": _comparison_summary(shared, windows, vals),
        "loss_exact": list(_shared_train_rows(shared)) if keep_rows else [],
        "loss_windows": windows,
        "val": vals,
        "meta": _meta_comparison(a, b, max_config_diff_lines),
        "warnings": [*a.warnings, *b.warnings],
    }


def iter_rows(rows: Iterable[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    """At most ``limit`` rows, evenly spread and always including the last (for printing)."""
    rows = list(rows)
    if limit <= 0 or len(rows) <= limit:
        return rows
    idx = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
    return [rows[i] for i in idx]
