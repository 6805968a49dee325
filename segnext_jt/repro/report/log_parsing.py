"""Reading training logs (formats: segnext_jt/repro/report/logs.py) into records, streamed: the file is read line by
line and train records are kept column-wise (`TrainRecords`, ~90 bytes a record), so a log of
millions of lines costs a few hundred MB instead of gigabytes. Every malformed line is one
`LogParseError` naming the file and line."""
from __future__ import annotations

import json
import math
import os
import stat
import sys
from array import array
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from segnext_jt.io.limits import short_repr
from segnext_jt.memory import DEVICE_RESERVED, HOST_RSS

__all__ = ["LogParseError", "TrainRecord", "TrainRecords", "ValRecord", "TrainingLog", "parse_log", "MAX_ITER",
           "MEMORY_KINDS"]

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


_FLOAT_FIELDS = ("lr", "loss", "loss_ce", "acc_seg", "time", "data_time", "memory")
_EPOCH_BIT = 1 << len(_FLOAT_FIELDS)


class TrainRecords(SequenceABC):
    """Train records stored column-wise (8 bytes a field, a presence bit per field, `extra` only for
    the lines that have some): what a TrainRecord object costs in ~450 bytes takes ~90 here.
    Indexing and iteration build TrainRecords; `iters()` and `field()` give NumPy columns."""

    def __init__(self) -> None:
        self._iter, self._line, self._epoch = array("q"), array("q"), array("q")
        self._floats = {name: array("d") for name in _FLOAT_FIELDS}
        self._present = array("H")  # bit k: _FLOAT_FIELDS[k] is not None; _EPOCH_BIT: epoch
        self._extra: dict[int, Mapping[str, float]] = {}

    def append(self, rec: TrainRecord) -> None:
        bits = 0
        for k, name in enumerate(_FLOAT_FIELDS):
            value = getattr(rec, name)
            self._floats[name].append(math.nan if value is None else value)
            bits |= (value is not None) << k
        self._epoch.append(0 if rec.epoch is None else rec.epoch)
        self._present.append(bits | (_EPOCH_BIT if rec.epoch is not None else 0))
        if rec.extra:
            self._extra[len(self._iter)] = rec.extra
        self._iter.append(rec.iter)
        self._line.append(rec.line)

    def __len__(self) -> int:
        return len(self._iter)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]  # IndexError and negative indices as for a list
        bits = self._present[i]
        rec = TrainRecord(iter=self._iter[i], line=self._line[i],
                          epoch=self._epoch[i] if bits & _EPOCH_BIT else None)
        for k, name in enumerate(_FLOAT_FIELDS):
            if bits >> k & 1:
                setattr(rec, name, self._floats[name][i])
        if i in self._extra:
            rec.extra = self._extra[i]
        return rec

    def iters(self) -> np.ndarray:
        return np.array(self._iter, dtype=np.int64)

    def field(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(present mask, values) of a TrainRecord attribute ('loss', 'epoch', ...)."""
        bits = np.array(self._present, dtype=np.uint16)
        if name == "epoch":
            return (bits & _EPOCH_BIT) != 0, np.array(self._epoch, dtype=np.float64)
        k = _FLOAT_FIELDS.index(name)
        return (bits >> k & 1).astype(bool), np.array(self._floats[name], dtype=np.float64)

    def deduplicated(self) -> tuple["TrainRecords", int]:
        """The last record of each iteration, sorted by iteration, and how many were dropped."""
        it = self.iters()
        uniq, first_from_end = np.unique(it[::-1], return_index=True)
        keep = len(it) - 1 - first_from_end
        out = TrainRecords()
        for name, src in (("_iter", self._iter), ("_line", self._line), ("_epoch", self._epoch),
                          ("_present", self._present)):
            setattr(out, name, array(src.typecode, np.array(src)[keep].tobytes()))
        out._floats = {k: array("d", np.array(v)[keep].tobytes()) for k, v in self._floats.items()}
        old_to_new = {int(old): new for new, old in enumerate(keep.tolist()) if int(old) in self._extra}
        out._extra = {new: self._extra[old] for old, new in old_to_new.items()}
        return out, len(it) - len(uniq)


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
    train: Sequence[TrainRecord]  # TrainRecords when parsed from a file
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
            if isinstance(records, TrainRecords) and attr in _TRAIN_ATTRS:  # columns, no objects
                present, values = records.field(attr)
                return records.iters()[present], values[present]
        n = len(records)  # arrays filled in place: no list of pairs for a log of millions of lines
        present = np.fromiter((get(r) is not None for r in records), dtype=bool, count=n)
        iters = np.fromiter((r.iter for r in records), dtype=np.int64, count=n)
        values = np.fromiter((np.nan if v is None else v for v in map(get, records)), dtype=np.float64, count=n)
        return iters[present], values[present]

    @property
    def memory_kind(self) -> Optional[str]:
        """A MEMORY_KINDS key for the train lines' `memory`, None when no line has one."""
        if not self.series("memory")[0].size:
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
        self.train = TrainRecords()
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
            self.train, self.val, self.pending = TrainRecords(), [], None
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
                self.train, self.val = TrainRecords(), []
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
        train, dups = self.train.deduplicated()
        if dups:
            warns.append(f"{self.path}: {dups} duplicate train iteration(s); the later line was kept")
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
