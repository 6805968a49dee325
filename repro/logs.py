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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from segnext_jt.memory import DEVICE_RESERVED, HOST_RSS

__all__ = [
    "LogParseError", "TrainRecord", "ValRecord", "TrainingLog", "parse_log", "binned_mean",
    "extract_ham_settings", "compare_logs", "MEMORY_KINDS",
]

PathLike = Union[str, Path]

_META_KEYS = {"env_info", "seed", "exp_name", "mmseg_version", "config", "CLASSES", "PALETTE",
              "config_name", "hash", "memory_kind"}
# What a train line's `memory` (MB) measures. Our trainer names it in the metadata; mmcv logs
# torch.cuda.max_memory_allocated (and nothing on the CPU); our logs before the key held host RSS.
MEMORY_KINDS = {HOST_RSS: "peak host RSS", DEVICE_RESERVED: "peak held by Jittor's CUDA allocator",
                "device_allocated_mb": "torch.cuda.max_memory_allocated"}
# Train-line keys with dedicated fields; all other numeric keys go to TrainRecord.extra.
_TRAIN_FIELDS = {"lr": "lr", "loss": "loss", "decode.loss_ce": "loss_ce",
                 "decode.acc_seg": "acc_seg", "time": "time", "data_time": "data_time",
                 "memory": "memory"}
_TRAIN_ATTRS = set(_TRAIN_FIELDS.values()) | {"epoch"}


class LogParseError(ValueError):
    """A log file line could not be understood; the message names file and line number."""


@dataclass
class TrainRecord:
    iter: int
    lr: Optional[float] = None
    loss: Optional[float] = None
    loss_ce: Optional[float] = None  # decode.loss_ce
    acc_seg: Optional[float] = None  # decode.acc_seg, percent in both formats
    time: Optional[float] = None
    data_time: Optional[float] = None
    memory: Optional[float] = None  # MB
    epoch: Optional[int] = None
    extra: dict[str, float] = field(default_factory=dict)
    line: int = 0


@dataclass
class ValRecord:
    iter: int  # training iteration this evaluation belongs to
    mIoU: float  # percent
    aAcc: Optional[float] = None  # percent
    mAcc: Optional[float] = None  # percent
    per_class_iou: dict[str, float] = field(default_factory=dict)  # percent, NaN = absent class
    per_class_acc: dict[str, float] = field(default_factory=dict)
    raw_iter: Optional[int] = None  # the line's own iter/step value
    epoch: Optional[int] = None
    lr: Optional[float] = None
    line: int = 0


@dataclass
class TrainingLog:
    path: str
    format: str  # "mmseg0" or "mmseg1"
    meta: dict[str, Any]
    train: list[TrainRecord]
    val: list[ValRecord]
    warnings: list[str] = field(default_factory=list)
    n_other_lines: int = 0  # valid JSON lines that are neither train nor val

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(iters, values) of a train field ('loss', 'lr', ...) or a val metric ('mIoU', ...),
        skipping records where it is missing."""
        if key in ("mIoU", "aAcc", "mAcc"):
            pairs = [(r.iter, getattr(r, key)) for r in self.val]
        else:
            attr = _TRAIN_FIELDS.get(key, key)  # accept mmseg names such as 'decode.loss_ce'
            pairs = [(r.iter, getattr(r, attr) if attr in _TRAIN_ATTRS else r.extra.get(key))
                     for r in self.train]
        pairs = [(i, v) for i, v in pairs if v is not None]
        return (np.array([p[0] for p in pairs], dtype=np.int64),
                np.array([p[1] for p in pairs], dtype=np.float64))

    @property
    def memory_kind(self) -> Optional[str]:
        """A MEMORY_KINDS key for the train lines' `memory`, None when no line has one."""
        if not any(r.memory is not None for r in self.train):
            return None
        kind = self.meta.get("memory_kind")
        if isinstance(kind, str) and kind:
            return kind
        version = str(self.meta.get("mmseg_version", ""))
        return HOST_RSS if version.startswith("segnext_jt") else "device_allocated_mb"

    @property
    def seed(self) -> Optional[int]:
        s = self.meta.get("seed")
        return int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None


# ------------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------------
def _read_objects(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.exists():
        raise FileNotFoundError(f"log file not found: {path}")
    if not path.is_file():
        raise LogParseError(f"{path}: not a regular file (a directory?); expected a log.json or "
                            f"scalars.json file")
    objs: list[tuple[int, dict[str, Any]]] = []
    try:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode("utf-8").strip()
                except UnicodeDecodeError as exc:
                    raise LogParseError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                                        f"at column {exc.start + 1})") from None
                if not text:
                    continue
                try:
                    obj = json.loads(text)  # accepts NaN, which mmcv writes for absent classes
                except json.JSONDecodeError as exc:
                    raise LogParseError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column "
                                        f"{exc.colno})") from None
                except RecursionError:
                    raise LogParseError(f"{path}:{lineno}: JSON nested too deeply") from None
                if not isinstance(obj, dict):
                    raise LogParseError(f"{path}:{lineno}: expected a JSON object, got "
                                        f"{type(obj).__name__}")
                objs.append((lineno, obj))
    except OSError as exc:
        raise LogParseError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return objs


def _num(obj: Mapping[str, Any], key: str, where: str, required: bool = False) -> Optional[float]:
    if key not in obj or obj[key] is None:
        if required:
            raise LogParseError(f"{where}: missing key '{key}'")
        return None
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise LogParseError(f"{where}: key '{key}' should be a number, got {v!r}")
    return float(v)


def _int(obj: Mapping[str, Any], key: str, where: str, required: bool = False) -> Optional[int]:
    v = _num(obj, key, where, required)
    if v is None:
        return None
    if not math.isfinite(v) or v != int(v):
        raise LogParseError(f"{where}: key '{key}' should be an integer, got {obj[key]!r}")
    return int(v)


def _detect_format(objs: list[tuple[int, dict[str, Any]]]) -> str:
    if not objs:
        return "mmseg0"
    if any("mode" in o for _, o in objs):
        return "mmseg0"
    first = objs[0][1]
    if "step" not in first and _META_KEYS & set(first):
        return "mmseg0"  # metadata only (a run that died before its first log line)
    return "mmseg1"


def _train_record(obj: Mapping[str, Any], where: str, iter_key: str, line: int) -> TrainRecord:
    rec = TrainRecord(iter=_int(obj, iter_key, where, required=True), line=line)  # type: ignore
    for key, attr in _TRAIN_FIELDS.items():
        setattr(rec, attr, _num(obj, key, where))
    rec.epoch = _int(obj, "epoch", where)
    for key, v in obj.items():
        if key in _TRAIN_FIELDS or key in ("mode", "epoch", "iter", "step"):
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            rec.extra[key] = float(v)
    return rec


def _val_record(obj: Mapping[str, Any], where: str, iter_key: str, line: int,
                scale: float) -> ValRecord:
    miou = _num(obj, "mIoU", where, required=True)
    assert miou is not None
    if scale == 100.0 and miou > 1.0 + 1e-9:
        raise LogParseError(f"{where}: mIoU {miou} > 1 in an mmseg 0.x log, whose val metrics are "
                            f"fractions (was it written in percent?)")

    def pct(v: Optional[float]) -> Optional[float]:
        # Fractions carry 5 decimals in mmcv logs, so 6 decimals in percent lose nothing and
        # remove float noise such as 41.50000000000001.
        return None if v is None else (v if math.isnan(v) else round(v * scale, 6))

    rec = ValRecord(iter=_int(obj, iter_key, where, required=True),  # type: ignore[arg-type]
                    mIoU=pct(miou),  # type: ignore[arg-type]
                    aAcc=pct(_num(obj, "aAcc", where)), mAcc=pct(_num(obj, "mAcc", where)),
                    epoch=_int(obj, "epoch", where), lr=_num(obj, "lr", where), line=line)
    rec.raw_iter = rec.iter
    for key in obj:
        for prefix, target in (("IoU.", rec.per_class_iou), ("Acc.", rec.per_class_acc)):
            if key.startswith(prefix):
                target[key[len(prefix):]] = pct(_num(obj, key, where))  # type: ignore[assignment]
    return rec


def _dedupe(records: list[Any], kind: str, path: Path, warns: list[str]) -> list[Any]:
    """Keep the last record per iteration (a resumed run re-logs iterations), sorted by iter."""
    by_iter: dict[int, Any] = {}
    dups = 0
    for r in records:
        dups += r.iter in by_iter
        by_iter[r.iter] = r
    if dups:
        warns.append(f"{path}: {dups} duplicate {kind} iteration(s); the later line was kept")
    return [by_iter[i] for i in sorted(by_iter)]


def parse_log(path: PathLike, fmt: Optional[str] = None) -> TrainingLog:
    """Parse an mmseg 0.x ``*.log.json``, an mmseg 1.x ``scalars.json`` or our own log.

    ``fmt`` ("mmseg0" / "mmseg1") overrides auto-detection. Blank lines are skipped; any other
    malformed line raises :class:`LogParseError` naming the file and line number.
    """
    p = Path(path)
    objs = _read_objects(p)
    fmt = fmt or _detect_format(objs)
    if fmt not in ("mmseg0", "mmseg1"):
        raise ValueError(f"parse_log: unknown format {fmt!r} (use 'mmseg0' or 'mmseg1')")
    meta: dict[str, Any] = {}
    train: list[TrainRecord] = []
    val: list[ValRecord] = []
    warns: list[str] = []
    n_other = 0
    last_train: Optional[int] = None
    val_last_train: list[Optional[int]] = []  # last train iteration seen before each val line

    for idx, (lineno, obj) in enumerate(objs):
        where = f"{p}:{lineno}"
        if fmt == "mmseg0":
            mode = obj.get("mode")
            if mode is None:
                if idx == 0:
                    meta = dict(obj)
                else:
                    n_other += 1
                continue
            if mode == "train":
                rec = _train_record(obj, where, "iter", lineno)
                train.append(rec)
                last_train = rec.iter
            elif mode == "val":
                val.append(_val_record(obj, where, "iter", lineno, scale=100.0))
                val_last_train.append(last_train)
            else:
                raise LogParseError(f"{where}: unknown mode {mode!r} (expected 'train' or 'val')")
        else:
            if "mIoU" in obj:
                val.append(_val_record(obj, where, "step", lineno, scale=1.0))
            elif "loss" in obj or "lr" in obj:
                train.append(_train_record(obj, where, "iter" if "iter" in obj else "step",
                                           lineno))
            else:
                n_other += 1

    if fmt == "mmseg0" and val:
        raw = {v.raw_iter for v in val}
        eval_count_style = len(val) >= 2 and len(raw) == 1 and bool(train)
        for rec, lt in zip(val, val_last_train):
            if lt is not None and (eval_count_style or rec.iter < lt):
                rec.iter = lt
    train = _dedupe(train, "train", p, warns)
    val = _dedupe(val, "val", p, warns)
    return TrainingLog(path=str(p), format=fmt, meta=meta, train=train, val=val, warnings=warns,
                       n_other_lines=n_other)


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


def _shared_train_rows(a: TrainingLog, b: TrainingLog) -> list[dict[str, Any]]:
    """One row per iteration with a train line in both logs."""
    ta = {r.iter: r for r in a.train}
    tb = {r.iter: r for r in b.train}
    rows = []
    for it in sorted(set(ta) & set(tb)):
        ra, rb = ta[it], tb[it]
        rows.append({"iter": it, "loss_a": _f(ra.loss), "loss_b": _f(rb.loss),
                     "loss_diff": _diff(_f(ra.loss), _f(rb.loss)),
                     "lr_a": _f(ra.lr), "lr_b": _f(rb.lr),
                     "acc_seg_a": _f(ra.acc_seg), "acc_seg_b": _f(rb.acc_seg)})
    return rows


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


def _comparison_summary(exact: list[dict[str, Any]], windows: list[dict[str, Any]],
                        vals: list[dict[str, Any]]) -> dict[str, Any]:
    loss_d = [r["loss_diff"] for r in exact if r["loss_diff"] is not None]
    lr_pairs = [(r["lr_a"], r["lr_b"]) for r in exact
                if r["lr_a"] is not None and r["lr_b"] is not None]
    lr_abs = [abs(x - y) for x, y in lr_pairs]
    lr_rel = [abs(x - y) / max(abs(x), abs(y)) for x, y in lr_pairs if max(abs(x), abs(y)) > 0]
    miou_d = [r["mIoU_diff"] for r in vals if r["mIoU_diff"] is not None]
    return {
        "n_shared_train_iters": len(exact),
        "mean_loss_diff": float(np.mean(loss_d)) if loss_d else None,
        "mean_abs_loss_diff": float(np.mean(np.abs(loss_d))) if loss_d else None,
        "max_rel_lr_diff": float(max(lr_rel)) if lr_rel else None,
        # mmcv rounds logged floats to 5 decimals, so an mmseg 0.x lr is only good to 5e-6
        "max_abs_lr_diff": float(max(lr_abs)) if lr_abs else None,
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
    memory = [r.memory for r in log.train if r.memory is not None]
    return {"path": log.path, "format": log.format, "seed": log.seed, "n_train": len(log.train),
            "n_val": len(log.val), "last_iter": log.train[-1].iter if log.train else None,
            "peak_memory_mb": max(memory) if memory else None, "memory_kind": log.memory_kind}


def compare_logs(a: TrainingLog, b: TrainingLog, window: int = 1000,
                 max_config_diff_lines: int = 200) -> dict[str, Any]:
    """Align two logs by training iteration (differences are a - b).

    * ``loss_exact``: train lines logged at the same iteration (loss, lr, acc_seg);
    * ``loss_windows``: mean loss per window of ``window`` iterations present in both logs
      (robust to different log intervals and to per-iteration noise);
    * ``val``: evaluations at the same training iteration (mIoU, aAcc, mAcc in percent);
    * ``meta``: seeds, whether the config texts differ (with a unified diff) and the NMF
      (ham_kwargs) settings of each.
    """
    exact = _shared_train_rows(a, b)
    windows = _shared_loss_windows(a, b, window)
    vals = _shared_val_rows(a, b)
    return {
        "a": _log_overview(a),
        "b": _log_overview(b),
        "window": window,
        "summary": _comparison_summary(exact, windows, vals),
        "loss_exact": exact,
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
