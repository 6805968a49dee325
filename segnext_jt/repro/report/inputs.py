"""Reading a sweep directory for the report: the plan, every result.json (segnext_jt/repro/sweep/results.py) and
the training logs they name. Strict about content, tolerant of unfinished seeds.

    DIR/sweep.json                 optional plan: {"config": str, "seeds": [int], "eval_seeds":
                                   [int], "cfg_options": [str], "created": str, ...}; planned
                                   seeds without a result are listed as missing
    DIR/seed_<k>/result.json       one per training seed k (segnext_jt/repro/sweep/results.py: RESULT_SCHEMA)
    DIR/checkpoint_eval/result.json  optional checkpoint-only sweep ("seed": null): one released
                                   checkpoint evaluated with several eval seeds
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from segnext_jt.repro.report.log_parsing import LogParseError, TrainingLog, parse_log
from segnext_jt.repro.sweep.results import ResultError, RunResult, load_result, read_json_file
from segnext_jt.io.limits import printable

ReportInputError = ResultError  # the report's name for it: any input problem, one line


@dataclass
class Sweep:
    root: Path
    plan: Optional[dict[str, Any]]
    runs: dict[int, RunResult]  # by training seed
    missing: list[int]  # planned or present seed dirs without result.json
    checkpoint_eval: Optional[RunResult]
    warnings: list[str] = field(default_factory=list)

    @property
    def planned(self) -> list[int]:
        return list(self.plan.get("seeds", [])) if self.plan else []

    def config_names(self) -> list[Optional[str]]:
        """Config (and checkpoint) names that say which model was swept, most telling first."""
        texts = [(self.plan or {}).get("config")] + [r.config for r in self.runs.values()]
        if self.checkpoint_eval:
            texts += [self.checkpoint_eval.config, self.checkpoint_eval.checkpoint]
        return texts


def _read_plan(path: Path) -> dict[str, Any]:
    plan = read_json_file(path)
    if not isinstance(plan, dict):
        raise ReportInputError(f"{path}: expected a JSON object")
    for key in ("seeds", "eval_seeds"):
        v = plan.get(key)
        if v is not None and (not isinstance(v, list)
                              or not all(isinstance(s, int) and not isinstance(s, bool)
                                         for s in v)):
            raise ReportInputError(f"{path}: '{key}' must be a list of ints")
    return plan


def load_sweep(root: Path) -> Sweep:
    """Load DIR; strict about content, tolerant of unfinished seeds (listed as missing)."""
    if not root.is_dir():
        raise ReportInputError(f"sweep directory not found: {root}")
    plan_path = root / "sweep.json"
    plan = _read_plan(plan_path) if plan_path.exists() else None
    runs: dict[int, RunResult] = {}
    missing: list[int] = []
    for sub in sorted(root.iterdir()):
        m = re.fullmatch(r"seed_(\d+)", sub.name)
        if not (m and sub.is_dir()):
            continue
        seed = int(m.group(1))
        res = sub / "result.json"
        if res.exists() or res.is_symlink():  # a directory or a dangling link is an error
            runs[seed] = load_result(res, seed)
        else:
            missing.append(seed)
    planned = (plan or {}).get("seeds", []) or []
    for seed in planned:
        if seed not in runs and seed not in missing:
            missing.append(seed)
    warns: list[str] = []
    extra = sorted(set(runs) - set(planned)) if plan and planned else []
    if extra:
        warns.append(f"seeds {extra} have results but are not in sweep.json's plan")
    ck: Optional[RunResult] = None
    ck_path = root / "checkpoint_eval" / "result.json"
    if ck_path.exists() or ck_path.is_symlink():
        ck = load_result(ck_path, None, allow_null_seed=True)
    if not runs and ck is None and not missing:
        raise ReportInputError(f"{root}: no seed_<k>/result.json, no checkpoint_eval/result.json "
                               f"and no planned seeds in sweep.json")
    return Sweep(root=root, plan=plan, runs=dict(sorted(runs.items())),
                 missing=sorted(missing), checkpoint_eval=ck, warnings=warns)


@dataclass
class TrainLogs:
    """The parsed train_log of every seed that has a readable one, and what went wrong."""
    by_seed: dict[int, TrainingLog] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# A training log is ~200 bytes a line: the released 160k-iteration recipe logs ~4,000 lines (1 MB);
# 512 MiB is ~2.5 million lines. A larger file named as a train_log is not one.
MAX_TRAIN_LOG_BYTES = 512 << 20


def resolve_log(run: RunResult, root: Path) -> tuple[Optional[Path], str]:
    """(path, "") of a run's train_log, or (None, why not). It is absolute, or relative to the seed
    directory, then to the sweep DIR, and must be a regular file of at most MAX_TRAIN_LOG_BYTES
    inside the sweep DIR once symlinks are resolved: a result.json cannot make the report read
    /etc/passwd, /dev/zero or a FIFO (which would block it forever)."""
    if not run.train_log:
        return None, "no train_log"
    p = Path(run.train_log)
    bases = [Path("/")] if p.is_absolute() else ([run.path.parent] if run.path is not None else []) + [root]
    top = os.path.realpath(root)
    for base in bases:
        candidate = base / p
        real = os.path.realpath(candidate)
        if not os.path.lexists(candidate):
            continue
        if os.path.commonpath([top, real]) != top:
            return None, f"is outside the sweep directory {root} ({printable(real)}); not read"
        try:
            info = os.stat(real)
        except OSError as exc:
            return None, f"cannot be read ({exc.strerror})"
        if not stat.S_ISREG(info.st_mode):
            return None, "is not a regular file (a FIFO, device or directory); not read"
        if info.st_size > MAX_TRAIN_LOG_BYTES:
            return None, f"is {info.st_size:,} bytes, more than the {MAX_TRAIN_LOG_BYTES:,} a training log may have; not read"
        return Path(real), ""
    return None, "not found"


def load_train_logs(sweep: Sweep) -> TrainLogs:
    out = TrainLogs()
    for seed, run in sweep.runs.items():
        if not run.train_log:
            continue
        path, problem = resolve_log(run, sweep.root)
        if path is None:
            out.warnings.append(f"seed {seed}: train_log '{printable(run.train_log)}' {problem}")
            continue
        try:
            log = parse_log(path)
        except (LogParseError, FileNotFoundError) as exc:
            out.warnings.append(f"seed {seed}: train_log unreadable: {exc}")
            continue
        out.by_seed[seed] = log
        out.warnings.extend(log.warnings)
    return out
