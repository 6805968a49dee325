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
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from segnext_jt.io.limits import short_repr

__all__ = [
    "LogParseError", "TrainRecord", "ValRecord", "TrainingLog", "parse_log", "binned_mean",
    "extract_ham_settings", "compare_logs",
]

PathLike = Union[str, Path]

_META_KEYS = {"env_info", "seed", "exp_name", "mmseg_version", "config", "CLASSES", "PALETTE",
              "config_name", "hash"}
# Train-line keys with dedicated fields; all other numeric keys go to TrainRecord.extra.
_TRAIN_FIELDS = {"lr": "lr", "loss": "loss", "decode.loss_ce": "loss_ce",
                 "decode.acc_seg": "acc_seg", "time": "time", "data_time": "data_time",
                 "memory": "memory"}
_TRAIN_ATTRS = set(_TRAIN_FIELDS.values()) | {"epoch"}


class LogParseError(ValueError):
    """A log file line could not be understood; the message names file and line number."""


_NO_EXTRA: Mapping[str, float] = MappingProxyType({})


@dataclass(slots=True)  # slots: a 2-million-line log holds 2 million of them
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
    extra: Mapping[str, float] = field(default_factory=lambda: _NO_EXTRA)  # other numeric keys (shared empty mapping when none)
    line: int = 0


@dataclass(slots=True)
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
            records: Sequence[Any] = self.val

            def get(r: Any) -> Optional[float]:
                return getattr(r, key)
        else:
            records = self.train
            attr = _TRAIN_FIELDS.get(key, key)  # accept mmseg names such as 'decode.loss_ce'

            def get(r: Any) -> Optional[float]:
                return getattr(r, attr) if attr in _TRAIN_ATTRS else r.extra.get(key)
        n = len(records)  # arrays filled in place: no list of pairs for a log of millions of lines
        present = np.fromiter((get(r) is not None for r in records), dtype=bool, count=n)
        iters = np.fromiter((r.iter for r in records), dtype=np.int64, count=n)
        values = np.fromiter((np.nan if v is None else v for v in map(get, records)), dtype=np.float64, count=n)
        return iters[present], values[present]

    @property
    def seed(self) -> Optional[int]:
        s = self.meta.get("seed")
        return int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None


# ------------------------------------------------------------------------------------------------
# parsing (streamed: one line in memory at a time, so a 2-million-line log costs its records only)
# ------------------------------------------------------------------------------------------------
MAX_ITER = 2 ** 53  # iterations are exact in a float below this; larger ones are corrupt lines


def _iter_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) for each non-blank line of a regular file, read line by line."""
    if not path.exists():
        raise FileNotFoundError(f"log file not found: {path}")
    if not path.is_file():
        raise LogParseError(f"{path}: not a regular file (a directory?); expected a log.json or "
                            f"scalars.json file")
    try:  # O_NONBLOCK, then fstat: a FIFO swapped in after the check above cannot block us
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LogParseError(f"{path}: not a regular file; expected a log.json or scalars.json file")
        with os.fdopen(fd, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                obj = _parse_line(path, lineno, raw)
                if obj is not None:
                    yield lineno, obj
    except OSError as exc:
        raise LogParseError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _parse_line(path: Path, lineno: int, raw: bytes) -> Optional[dict[str, Any]]:
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise LogParseError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                            f"at column {exc.start + 1})") from None
    if not text:
        return None
    try:
        obj = json.loads(text)  # accepts NaN, which mmcv writes for absent classes
    except json.JSONDecodeError as exc:
        raise LogParseError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column "
                            f"{exc.colno})") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise LogParseError(f"{path}:{lineno}: holds an integer with more than "
                            f"{sys.get_int_max_str_digits()} digits; not a training log line") from None
    except RecursionError:
        raise LogParseError(f"{path}:{lineno}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise LogParseError(f"{path}:{lineno}: expected a JSON object, got "
                            f"{type(obj).__name__}")
    return obj


def _num(obj: Mapping[str, Any], key: str, where: str, required: bool = False) -> Optional[float]:
    if key not in obj or obj[key] is None:
        if required:
            raise LogParseError(f"{where}: missing key '{key}'")
        return None
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise LogParseError(f"{where}: key '{key}' should be a number, got {short_repr(v)}")
    try:
        return float(v)
    except OverflowError:  # an int beyond 1e308
        raise LogParseError(f"{where}: key '{key}' is a number beyond the float range") from None


def _int(obj: Mapping[str, Any], key: str, where: str, required: bool = False) -> Optional[int]:
    v = _num(obj, key, where, required)
    if v is None:
        return None
    raw = obj[key]  # compared as given: float(2**53 + 1) would pass as 2**53
    if not math.isfinite(v) or v != int(v) or not 0 <= (raw if isinstance(raw, int) else v) <= MAX_ITER:
        raise LogParseError(f"{where}: key '{key}' should be an integer in 0..2^53, got {short_repr(raw)}")
    return int(raw)


def _is_metadata(obj: Mapping[str, Any]) -> bool:
    return "step" not in obj and bool(_META_KEYS & set(obj))


def _train_record(obj: Mapping[str, Any], where: str, iter_key: str, line: int) -> TrainRecord:
    rec = TrainRecord(iter=_int(obj, iter_key, where, required=True), line=line)  # type: ignore
    for key, attr in _TRAIN_FIELDS.items():
        setattr(rec, attr, _num(obj, key, where))
    rec.epoch = _int(obj, "epoch", where)
    extra = {key: _num(obj, key, where) for key, v in obj.items()
             if key not in _TRAIN_FIELDS and key not in ("mode", "epoch", "iter", "step")
             and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if extra:  # most lines have none: no empty dict per record
        rec.extra = extra
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
        return None if v is None else (v if not math.isfinite(v) else round(v * scale, 6))

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


class _LogReader:
    """Records of one log, fed line by line. The format is known once a line has a ``mode`` key
    (mmseg0); until then lines are read as mmseg1 (their error, if any, kept for later), and if no
    ``mode`` ever comes the log is mmseg1, or mmseg0 metadata only when its first line is metadata."""

    def __init__(self, path: Path, fmt: Optional[str]) -> None:
        self.path, self.fmt = path, fmt
        self.count = 0
        self.first: Optional[dict[str, Any]] = None
        self.pending: Optional[LogParseError] = None  # an mmseg1 error while the format is open
        self.meta: dict[str, Any] = {}
        self.train: list[TrainRecord] = []
        self.val: list[ValRecord] = []
        self.n_other = 0
        self.last_train: Optional[int] = None
        self.val_last_train: list[Optional[int]] = []  # last train iteration before each val line

    def add(self, lineno: int, obj: dict[str, Any]) -> None:
        self.count += 1
        if self.first is None:
            self.first = obj
        if self.fmt is None and "mode" in obj:  # mmseg0 after all: earlier lines had no mode
            earlier = self.count - 1
            self.meta = dict(self.first) if earlier else {}
            self.train, self.val, self.pending = [], [], None
            self.n_other, self.fmt = max(earlier - 1, 0), "mmseg0"
        if self.fmt == "mmseg0":
            self._add_mmseg0(lineno, obj)
        elif self.fmt == "mmseg1":
            self._add_mmseg1(lineno, obj)
        else:
            try:
                self._add_mmseg1(lineno, obj)
            except LogParseError as exc:
                self.pending = self.pending or exc

    def _add_mmseg0(self, lineno: int, obj: dict[str, Any]) -> None:
        where = f"{self.path}:{lineno}"
        mode = obj.get("mode")
        if mode is None:
            if self.count == 1:
                self.meta = dict(obj)
            else:
                self.n_other += 1
        elif mode == "train":
            rec = _train_record(obj, where, "iter", lineno)
            self.train.append(rec)
            self.last_train = rec.iter
        elif mode == "val":
            self.val.append(_val_record(obj, where, "iter", lineno, scale=100.0))
            self.val_last_train.append(self.last_train)
        else:
            raise LogParseError(f"{where}: unknown mode {short_repr(mode)} (expected 'train' or 'val')")

    def _add_mmseg1(self, lineno: int, obj: dict[str, Any]) -> None:
        where = f"{self.path}:{lineno}"
        if "mIoU" in obj:
            self.val.append(_val_record(obj, where, "step", lineno, scale=1.0))
        elif "loss" in obj or "lr" in obj:
            self.train.append(_train_record(obj, where, "iter" if "iter" in obj else "step", lineno))
        else:
            self.n_other += 1

    def finish(self) -> TrainingLog:
        if self.fmt is None:
            if self.first is None or _is_metadata(self.first):  # empty, or metadata only
                self.fmt, self.meta, self.n_other = "mmseg0", dict(self.first or {}), max(self.count - 1, 0)
                self.train, self.val = [], []
            else:
                if self.pending is not None:
                    raise self.pending
                self.fmt = "mmseg1"
        if self.fmt == "mmseg0" and self.val:
            raw = {v.raw_iter for v in self.val}
            eval_count_style = len(self.val) >= 2 and len(raw) == 1 and bool(self.train)
            for rec, lt in zip(self.val, self.val_last_train):
                if lt is not None and (eval_count_style or rec.iter < lt):
                    rec.iter = lt
        warns: list[str] = []
        train = _dedupe(self.train, "train", self.path, warns)
        val = _dedupe(self.val, "val", self.path, warns)
        return TrainingLog(path=str(self.path), format=self.fmt, meta=self.meta, train=train, val=val,
                           warnings=warns, n_other_lines=self.n_other)


def parse_log(path: PathLike, fmt: Optional[str] = None) -> TrainingLog:
    """Parse an mmseg 0.x ``*.log.json``, an mmseg 1.x ``scalars.json`` or our own log.

    ``fmt`` ("mmseg0" / "mmseg1") overrides auto-detection. Blank lines are skipped; any other
    malformed line raises :class:`LogParseError` naming the file and line number. The file is read
    line by line; only the records are kept.
    """
    if fmt not in (None, "mmseg0", "mmseg1"):
        raise ValueError(f"parse_log: unknown format {fmt!r} (use 'mmseg0' or 'mmseg1')")
    p = Path(path)
    reader = _LogReader(p, fmt)
    for lineno, obj in _iter_objects(p):
        reader.add(lineno, obj)
    return reader.finish()


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
    n = len(log.train)
    cols = {"iter": np.fromiter((r.iter for r in log.train), dtype=np.int64, count=n)}
    for key in ("loss", "lr", "acc_seg"):
        cols[key] = np.fromiter((np.nan if getattr(r, key) is None else getattr(r, key) for r in log.train),
                                dtype=np.float64, count=n)
    return cols


def _shared_train_columns(a: TrainingLog, b: TrainingLog) -> dict[str, np.ndarray]:
    """Per iteration with a train line in both logs: loss/lr/acc_seg of each (arrays, NaN = none)."""
    ca, cb = _train_columns(a), _train_columns(b)
    it, ia, ib = np.intersect1d(ca["iter"], cb["iter"], assume_unique=True, return_indices=True)
    out = {"iter": it}
    for key in ("loss", "lr", "acc_seg"):
        out[f"{key}_a"], out[f"{key}_b"] = ca[key][ia], cb[key][ib]
    return out


def _shared_train_rows(shared: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per iteration with a train line in both logs (for the JSON output)."""
    def f(x: float) -> Optional[float]:
        return None if math.isnan(x) else x
    rows = []
    for i, it in enumerate(shared["iter"].tolist()):
        la, lb = f(float(shared["loss_a"][i])), f(float(shared["loss_b"][i]))
        rows.append({"iter": it, "loss_a": la, "loss_b": lb, "loss_diff": _diff(la, lb),
                     "lr_a": f(float(shared["lr_a"][i])), "lr_b": f(float(shared["lr_b"][i])),
                     "acc_seg_a": f(float(shared["acc_seg_a"][i])), "acc_seg_b": f(float(shared["acc_seg_b"][i]))})
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
    return {"path": log.path, "format": log.format, "seed": log.seed, "n_train": len(log.train),
            "n_val": len(log.val), "last_iter": log.train[-1].iter if log.train else None}


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
    one dict per shared line is what costs memory on a log of millions of lines.
    """
    shared = _shared_train_columns(a, b)
    windows = _shared_loss_windows(a, b, window)
    vals = _shared_val_rows(a, b)
    return {
        "a": _log_overview(a),
        "b": _log_overview(b),
        "window": window,
        "summary": _comparison_summary(shared, windows, vals),
        "loss_exact": _shared_train_rows(shared) if keep_rows else [],
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
