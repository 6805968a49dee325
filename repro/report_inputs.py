"""Reading a sweep directory for the report: the plan, every result.json (repro/results.py) and
the training logs they name. Strict about content, tolerant of unfinished seeds.

    DIR/sweep.json                 optional plan: {"config": str, "seeds": [int], "eval_seeds":
                                   [int], "cfg_options": [str], "created": str, ...}; planned
                                   seeds without a result are listed as missing
    DIR/seed_<k>/result.json       one per training seed k (repro/results.py: RESULT_SCHEMA)
    DIR/checkpoint_eval/result.json  optional checkpoint-only sweep ("seed": null): one released
                                   checkpoint evaluated with several eval seeds
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from repro.logs import LogParseError, TrainingLog, parse_log
from repro.results import ResultError, RunResult, load_result, read_json_file

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


def resolve_log(run: RunResult, root: Path) -> Optional[Path]:
    """A run's train_log: absolute, or relative to the seed directory, then to the sweep DIR."""
    if not run.train_log:
        return None
    p = Path(run.train_log)
    if p.is_absolute():
        return p if p.is_file() else None
    bases = ([run.path.parent] if run.path is not None else []) + [root]
    for base in bases:
        if (base / p).is_file():
            return base / p
    return None


def load_train_logs(sweep: Sweep) -> TrainLogs:
    out = TrainLogs()
    for seed, run in sweep.runs.items():
        if not run.train_log:
            continue
        path = resolve_log(run, sweep.root)
        if path is None:
            out.warnings.append(f"seed {seed}: train_log '{run.train_log}' not found")
            continue
        try:
            log = parse_log(path)
        except (LogParseError, FileNotFoundError) as exc:
            out.warnings.append(f"seed {seed}: train_log unreadable: {exc}")
            continue
        out.by_seed[seed] = log
        out.warnings.extend(log.warnings)
    return out
