#!/usr/bin/env python
"""Seed-sweep report: per-seed table, spread statistics, where the reported number falls, the
train-seed / eval-seed variance split, learning curves and an optional paired comparison.

    python repro/report.py DIR [--reference 50.99] [--reference-range 49.60,51.0]
                               [--reference-msflip 52.10] [--official OFFICIAL.log.json]
                               [--compare OTHER_DIR] [--out OUT_DIR]
                               [--power-deltas 0.5,1.0] [--target-halfwidth 0.25]
                               [--train-cost 1.0 --eval-cost 0.02] [--paired-rho 0]

Writes report.md, report.json and SVG plots to OUT_DIR (default DIR).

Input layout (written by the sweep driver)::

    DIR/sweep.json                 optional plan: {"config": str, "seeds": [int], "eval_seeds":
                                   [int], "created": str, ...}; planned seeds without a result
                                   are listed as missing
    DIR/seed_<k>/result.json       one per training seed k, see RESULT_SCHEMA below
    DIR/checkpoint_eval/result.json  optional checkpoint-only sweep ("seed": null): one released
                                   checkpoint evaluated with several eval seeds
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402

from repro import plots, power, stats  # noqa: E402
from repro.logs import LogParseError, TrainingLog, binned_mean, parse_log  # noqa: E402
from segnext_jt.io.files import read_json  # noqa: E402

RESULT_SCHEMA = """\
{
  "seed": int | null,            # training seed; must match the directory seed_<k>; null only
                                 # in checkpoint_eval/
  "config": str | null,          # config path used for training / evaluation
  "checkpoint": str | null,      # final checkpoint path
  "final_loss": float | null,    # training loss at the end (null: taken from train_log)
  "train_log": str | null,       # training log (log.json or scalars.json); relative paths are
                                 # resolved against the seed directory, then against DIR
  "eval": [                      # may be empty (trained, not yet evaluated)
    {"eval_seed": int,           # seed of the evaluation RNG (NMF bases)
     "mode": "ss" | "msflip",    # single-scale or multi-scale + flip
     "mIoU": float,              # percent (0..100), like mmseg 1.x logs
     "aAcc": float | null, "mAcc": float | null,   # percent
     "per_class_iou": [float | null, ...] | null,  # optional, percent, null = absent class
     "seconds": float | null}    # optional wall time of this evaluation (power-analysis cost)
  ]
}"""

MODES = ("ss", "msflip")
MODE_LABEL = {"ss": "single-scale", "msflip": "ms+flip"}
SELECTION_RULE = ("For each training seed and mode the table uses the evaluation whose eval_seed "
                  "equals the training seed when there is one, otherwise the one with the lowest "
                  "eval_seed.")

# mmseg README numbers for ADE20K 512x512 160k (spec section 7.1): (ss, ms+flip). The seed range
# is only stated for L.
REFERENCES = {"t": (41.50, 42.59), "s": (44.16, 45.81), "b": (48.03, 49.68), "l": (50.99, 52.10)}
REFERENCE_RANGE_L = (49.60, 51.0)
_SIZE_WORDS = {"tiny": "t", "small": "s", "base": "b", "large": "l"}


class ReportInputError(ValueError):
    """The sweep directory does not follow the expected layout; the message names the file."""


# ------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------
@dataclass
class EvalEntry:
    eval_seed: int
    mode: str
    mIoU: float
    aAcc: Optional[float] = None
    mAcc: Optional[float] = None
    per_class_iou: Optional[list[Optional[float]]] = None
    seconds: Optional[float] = None  # wall time of the evaluation, when the sweep recorded it


@dataclass
class RunResult:
    path: Path
    seed: Optional[int]
    config: Optional[str]
    checkpoint: Optional[str]
    final_loss: Optional[float]
    train_log: Optional[str]
    evals: list[EvalEntry]

    def evals_for(self, mode: str) -> list[EvalEntry]:
        return sorted((e for e in self.evals if e.mode == mode), key=lambda e: e.eval_seed)

    def selected(self, mode: str) -> Optional[EvalEntry]:
        """The evaluation used in per-seed tables (see SELECTION_RULE)."""
        evs = self.evals_for(mode)
        if not evs:
            return None
        same = [e for e in evs if self.seed is not None and e.eval_seed == self.seed]
        return same[0] if same else evs[0]


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


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt_num(obj: dict[str, Any], key: str, where: str) -> Optional[float]:
    v = obj.get(key)
    if v is None:
        return None
    if not _is_num(v):
        raise ReportInputError(f"{where}: '{key}' must be a finite number or null, got {v!r}")
    return float(v)


def _opt_str(obj: dict[str, Any], key: str, where: str) -> Optional[str]:
    v = obj.get(key)
    if v is not None and not isinstance(v, str):
        raise ReportInputError(f"{where}: '{key}' must be a string or null, got {v!r}")
    return v


def _read_json(path: Path) -> Any:
    return read_json(path, ReportInputError)


def load_result(path: Path, expect_seed: Optional[int], allow_null_seed: bool = False) -> RunResult:
    """Read and validate one result.json (schema: RESULT_SCHEMA)."""
    obj = _read_json(path)
    if not isinstance(obj, dict):
        raise ReportInputError(f"{path}: expected a JSON object")
    if "seed" not in obj:
        raise ReportInputError(f"{path}: missing key 'seed'")
    seed = obj["seed"]
    if seed is None:
        if not allow_null_seed:
            raise ReportInputError(f"{path}: 'seed' is null; only checkpoint_eval/result.json "
                                   f"may have a null seed")
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise ReportInputError(f"{path}: 'seed' must be an int, got {seed!r}")
    elif expect_seed is not None and seed != expect_seed:
        raise ReportInputError(f"{path}: 'seed' is {seed} but the directory says {expect_seed}")
    elif expect_seed is None and allow_null_seed:
        raise ReportInputError(f"{path}: checkpoint_eval results must have \"seed\": null")
    if not isinstance(obj.get("eval"), list):
        raise ReportInputError(f"{path}: 'eval' must be a list (possibly empty)")
    evals: list[EvalEntry] = []
    seen: set[tuple[int, str]] = set()
    for i, ev in enumerate(obj["eval"]):
        where = f"{path}: eval[{i}]"
        if not isinstance(ev, dict):
            raise ReportInputError(f"{where}: expected an object")
        es = ev.get("eval_seed")
        if isinstance(es, bool) or not isinstance(es, int):
            raise ReportInputError(f"{where}: 'eval_seed' must be an int, got {es!r}")
        mode = ev.get("mode")
        if mode not in MODES:
            raise ReportInputError(f"{where}: 'mode' must be one of {MODES}, got {mode!r}")
        if (es, mode) in seen:
            raise ReportInputError(f"{where}: duplicate entry for eval_seed {es}, mode {mode}")
        seen.add((es, mode))
        miou = ev.get("mIoU")
        if not _is_num(miou) or not 0.0 <= miou <= 100.0:
            raise ReportInputError(f"{where}: 'mIoU' must be a percentage in [0, 100], got "
                                   f"{miou!r}")
        for key in ("aAcc", "mAcc"):
            v = _opt_num(ev, key, where)
            if v is not None and not 0.0 <= v <= 100.0:
                raise ReportInputError(f"{where}: '{key}' must be a percentage, got {v}")
        pci = ev.get("per_class_iou")
        if pci is not None:
            if not isinstance(pci, list) or not all(v is None or _is_num(v) for v in pci):
                raise ReportInputError(f"{where}: 'per_class_iou' must be a list of numbers/null")
            pci = [None if v is None else float(v) for v in pci]
        secs = _opt_num(ev, "seconds", where)
        if secs is not None and secs < 0:
            raise ReportInputError(f"{where}: 'seconds' must be >= 0, got {secs}")
        evals.append(EvalEntry(es, mode, float(miou), _opt_num(ev, "aAcc", where),
                               _opt_num(ev, "mAcc", where), pci, secs))
    return RunResult(path=path, seed=seed, config=_opt_str(obj, "config", str(path)),
                     checkpoint=_opt_str(obj, "checkpoint", str(path)),
                     final_loss=_opt_num(obj, "final_loss", str(path)),
                     train_log=_opt_str(obj, "train_log", str(path)), evals=evals)


def load_sweep(root: Path) -> Sweep:
    """Load DIR; strict about content, tolerant of unfinished seeds (listed as missing)."""
    if not root.is_dir():
        raise ReportInputError(f"sweep directory not found: {root}")
    warns: list[str] = []
    plan: Optional[dict[str, Any]] = None
    plan_path = root / "sweep.json"
    if plan_path.exists():
        plan = _read_json(plan_path)
        if not isinstance(plan, dict):
            raise ReportInputError(f"{plan_path}: expected a JSON object")
        for key in ("seeds", "eval_seeds"):
            v = plan.get(key)
            if v is not None and (not isinstance(v, list)
                                  or not all(isinstance(s, int) and not isinstance(s, bool)
                                             for s in v)):
                raise ReportInputError(f"{plan_path}: '{key}' must be a list of ints")
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
    for seed in (plan or {}).get("seeds", []) or []:
        if seed not in runs and seed not in missing:
            missing.append(seed)
    planned = set((plan or {}).get("seeds", []) or [])
    if plan and planned:
        extra = sorted(set(runs) - planned)
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


# ------------------------------------------------------------------------------------------------
# analysis helpers
# ------------------------------------------------------------------------------------------------
@dataclass
class Reference:
    ss: float
    msflip: Optional[float]
    ss_range: Optional[tuple[float, float]]
    source: str


def infer_size(texts: Sequence[Optional[str]]) -> Optional[str]:
    """Model size letter (t/s/b/l) from config names such as segnext_mscan-l_... or large."""
    for text in texts:
        if not text:
            continue
        low = text.lower()
        m = re.search(r"mscan[-_]?([tsbl])(?![a-z])", low) or \
            re.search(r"segnext[-_.]?([tsbl])(?![a-z])", low)
        if m:
            return m.group(1)
        m = re.search(r"segnext[-_.]?(tiny|small|base|large)", low)
        if m:
            return _SIZE_WORDS[m.group(1)]
    return None


def resolve_reference(sweep: Sweep, ref: Optional[float], ref_range: Optional[tuple[float, float]],
                      ref_ms: Optional[float]) -> Reference:
    texts = [(sweep.plan or {}).get("config")] + [r.config for r in sweep.runs.values()]
    if sweep.checkpoint_eval:
        texts += [sweep.checkpoint_eval.config, sweep.checkpoint_eval.checkpoint]
    size = infer_size(texts)
    if size is None:
        size, how = "l", "SegNeXt-L defaults (model size not recognisable from the config name)"
    else:
        how = f"mmseg README numbers for SegNeXt-{size.upper()} (inferred from the config name)"
    d_ss, d_ms = REFERENCES[size]
    d_range = REFERENCE_RANGE_L if size == "l" else None
    parts = []
    if ref is not None or ref_range is not None or ref_ms is not None:
        parts.append("command-line values")
    return Reference(ss=ref if ref is not None else d_ss,
                     msflip=ref_ms if ref_ms is not None else d_ms,
                     ss_range=ref_range if ref_range is not None else d_range,
                     source=" + ".join(parts + [how]) if parts else how)


def _resolve_log(run: RunResult, root: Path) -> Optional[Path]:
    if not run.train_log:
        return None
    p = Path(run.train_log)
    if p.is_absolute():
        return p if p.is_file() else None
    for base in (run.path.parent, root):
        if (base / p).is_file():
            return base / p
    return None


def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


def _nice_window(max_iter: int, points: int = 200) -> int:
    target = max(max_iter / points, 1)
    for w in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if w >= target:
            return w
    return 10000


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
@dataclass
class Report:
    md: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _summary_table(rows: list[tuple[str, stats.Summary]]) -> list[str]:
    out = ["| values | n | mean | std | median | IQM | min | max | range | 95% CI (bootstrap) "
           "| 95% CI (t) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for name, s in rows:
        out.append(f"| {name} | {s.n} | {_fmt(s.mean)} | {_fmt(s.std, '.3f')} | {_fmt(s.median)} "
                   f"| {_fmt(s.iqm)} | {_fmt(s.min)} | {_fmt(s.max)} | {_fmt(s.range)} "
                   f"| {_fmt(s.ci_low)} – {_fmt(s.ci_high)} | {_fmt(s.t_ci_low)} – "
                   f"{_fmt(s.t_ci_high)} |")
    return out


def _ref_lines(name: str, pos: stats.ReferencePosition) -> list[str]:
    rr = pos.reference_range
    lines = [f"* **{name}**: reference {pos.reference:.2f} sits at percentile "
             f"{pos.percentile:.0f} of our {pos.n} value(s) ({pos.n_below} below, "
             f"{pos.n_above} above); "
             f"it is {'inside' if pos.inside_observed_range else 'outside'} the observed range "
             f"{pos.observed_min:.2f}–{pos.observed_max:.2f}; our mean minus the reference is "
             f"{pos.delta_mean:+.2f}."]
    if rr is not None:
        verb = "overlaps" if pos.ranges_overlap else "does not overlap"
        lines.append(f"  The observed range {verb} the reported seed range "
                     f"{rr[0]:.2f}–{rr[1]:.2f} ({pos.n_inside_reference_range} of {pos.n} values fall inside it).")
    return lines


# ------------------------------------------------------------------------------------------------
# "How many seeds?" (power analysis; formulas in repro/power.py)
# ------------------------------------------------------------------------------------------------
POWER_INTRO = (
    "Planning numbers from the measured variance components, for a true difference Δ in mIoU "
    "points, two-sided α = {alpha:g}, {pw:.0f} % power. A run-mean over n_t training seeds, each "
    "evaluated with n_e eval seeds and averaged, has variance V = σ_t²/n_t + σ_e²/(n_t·n_e). "
    "*Unpaired* (two independent sets of seeds): SE² = 2V, df = 2(n_t−1). *Paired* (the same "
    "training seeds in both arms): SE² = σ_td²/n_t + σ_ed²/(n_t·n_e), df = n_t−1, with σ_td², "
    "σ_ed² the train- and eval-seed variances of the per-seed difference. Training seeds needed: "
    "the smallest n_t with t(1−α/2, df) + t({power:g}, df) ≤ Δ/SE (searched, df grows with n_t); "
    "the normal approximation uses z quantiles instead, "
    "n_t = (z(1−α/2) + z({power:g}))²·SE²(1)/Δ². "
    "MDE (minimum detectable effect) = (t(1−α/2, df) + t({power:g}, df))·SE. *Power at n* is the "
    "exact power of the two-sided t-test at that design (noncentral t). The CI half-width is "
    "t(0.975, n_t−1)·√V. Cost of a design = n_t·(train cost + n_e·eval cost), per arm. "
    "Assumptions: normal train- and eval-seed effects, eval noise independent of the training "
    "seed, both arms with the same variances, and the estimated variances taken as the truth; "
    "from k training seeds σ_t is only known to about ±{rel} relative (1/√(2(k−1)), more when "
    "the eval noise is large), so read these as rough guides and plan with some margin.")


def _mode_table(runs: dict[int, RunResult], mode: str) -> dict[int, dict[int, float]]:
    """{training seed: {eval seed: mIoU}}: the nested design of one mode."""
    return {seed: {e.eval_seed: e.mIoU for e in run.evals_for(mode)}
            for seed, run in runs.items() if run.evals_for(mode)}


def _train_seconds(log: TrainingLog) -> Optional[float]:
    """Training time from the log: each train line's 'time' is the mean seconds per iteration
    since the previous line. Iterations only (periodic validation and checkpoints excluded)."""
    total, prev = 0.0, 0
    for rec in log.train:
        if rec.time is None:
            return None
        total += rec.time * (rec.iter - prev)
        prev = rec.iter
    return total if log.train else None


def _measured_costs(sweep: Sweep, logs: dict[int, TrainingLog],
                    mode: str) -> tuple[Optional[float], Optional[float]]:
    """Median training seconds per seed and median seconds per evaluation of this mode."""
    train = [t for t in (_train_seconds(lg) for lg in logs.values()) if t is not None]
    evals = [e.seconds for r in sweep.runs.values() for e in r.evals_for(mode)
             if e.seconds is not None]
    return (float(np.median(train)) if train else None,
            float(np.median(evals)) if evals else None)


def _power_components(mode: str, decomps: dict[str, stats.VarianceDecomposition],
                      summaries: dict[str, Any],
                      sweep: Sweep) -> Optional[power.NestedComponents]:
    if mode in decomps:
        return power.components_from_decomposition(decomps[mode])
    s = summaries.get(mode)
    if s is None or s.n < 2:
        return None
    ck = sweep.checkpoint_eval
    ck_vals = [e.mIoU for e in ck.evals_for(mode)] if ck is not None else []
    eval_var = float(np.var(ck_vals, ddof=1)) if len(ck_vals) >= 2 else None
    return power.components_from_spread(s.std, s.n, eval_var)


def _paired_power_model(mode: str, c: power.NestedComponents, sweep: Sweep,
                        other: Optional[Sweep], rho: float) -> power.PowerModel:
    """Measured from --compare when possible (nested deltas, else one delta per seed), otherwise
    the stated rho assumption."""
    if other is not None:
        m = power.paired_model_from_tables(_mode_table(sweep.runs, mode),
                                           _mode_table(other.runs, mode))
        if m is not None:
            return m
        a = {s: r.selected(mode) for s, r in sweep.runs.items()}
        b = {s: r.selected(mode) for s, r in other.runs.items()}
        deltas = [a[s].mIoU - b[s].mIoU for s in a  # type: ignore[union-attr]
                  if s in b and a[s] is not None and b[s] is not None]
        m = power.paired_model_from_deltas(deltas, c.var_eval)
        if m is not None:
            return m
    return power.paired_model_assumed(c, rho)


def _power_section(rep: Report, sweep: Sweep, other: Optional[Sweep],
                   decomps: dict[str, stats.VarianceDecomposition], summaries: dict[str, Any],
                   logs: dict[int, TrainingLog], opts: power.PowerOptions,
                   save: Callable[[str, str], str]) -> dict[str, Any]:
    """Adds "How many seeds?" to report.md, an MDE plot per mode, and returns report.json's
    "power" object."""
    out: dict[str, Any] = {"options": opts, "formula": power.FORMULA_TEXT, "modes": {}}
    for mode in MODES:
        c = _power_components(mode, decomps, summaries, sweep)
        if c is None:
            continue
        costs = power.resolve_costs(opts.train_cost, opts.eval_cost,
                                    *_measured_costs(sweep, logs, mode))
        paired = _paired_power_model(mode, c, sweep, other, opts.paired_rho)
        out["modes"][mode] = power.analyse(c, paired, opts, costs)
    md = rep.md
    md.append("## How many seeds?")
    md.append("")
    if not out["modes"]:
        md.append("Needs at least two training seeds with results.")
        md.append("")
        return out
    k = min(r["components"].n_train for r in out["modes"].values())
    md.append(POWER_INTRO.format(alpha=opts.alpha, pw=opts.power * 100, power=opts.power,
                                 rel=f"{100 / math.sqrt(2 * max(k - 1, 1)):.0f} %"))
    md.append("")
    for mode, res in out["modes"].items():
        md.extend(_power_mode_md(MODE_LABEL[mode], res, opts))
        name = save(f"power_mde_{mode}.svg", _power_plot(MODE_LABEL[mode], res, opts))
        md.append(f"![minimum detectable effect vs training seeds ({MODE_LABEL[mode]})]({name})")
        md.append("")
    return out


def _power_mode_md(name: str, res: dict[str, Any], opts: power.PowerOptions) -> list[str]:
    c, cur, pm = res["components"], res["current"], res["models"]["paired"]
    mde_u, mde_p = cur["mde"]["unpaired"], cur["mde"]["paired"]
    lines = [f"### {name}", "",
             f"* variance components: σ_t = {res['sd_train']:.3f} (train seed), σ_e = "
             f"{res['sd_eval']:.3f} (eval seed); {c.source}."]
    lines += [f"* {note}" for note in c.notes]
    lines += [f"* paired difference: σ_td = {math.sqrt(pm.var_train):.3f}, σ_ed = "
              f"{math.sqrt(pm.var_eval):.3f}; {pm.source}.",
              f"* current design: {c.n_train} training seeds × {c.n_eval} eval seed(s): SE of the "
              f"run-mean {cur['se_run_mean']:.3f}, {opts.ci_level * 100:.0f} % CI half-width (t) "
              f"±{_fmt(cur['ci_halfwidth'], '.3f')}.",
              f"* minimum detectable effect with the current design: unpaired "
              f"{_fmt(mde_u['t'])} (normal approx. {_fmt(mde_u['normal'])}; "
              f"{_fmt(mde_u['t_one_eval'])} with one eval per seed), paired {_fmt(mde_p['t'])} "
              f"(normal approx. {_fmt(mde_p['normal'])}; {_fmt(mde_p['t_one_eval'])} with one "
              f"eval per seed).", ""]
    lines += _power_table_md(res, opts)
    return lines


def _power_table_md(res: dict[str, Any], opts: power.PowerOptions) -> list[str]:
    costs, hw = res["costs"], res["halfwidth"]
    lines = [f"Training seeds needed to detect Δ (cost in {costs.unit}: train "
             f"{costs.train:.4g}, eval {costs.eval:.4g}; {costs.source}):", "",
             "| Δ (mIoU) | comparison | eval seeds | training seeds (t) | normal approx. "
             "| power at n | cost per arm |",
             "| ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in res["sample_size"]:
        tags = [t for t, on in (("current", r["current_n_eval"]), ("cheapest", r["cheapest"]))
                if on]
        tag = f" ({', '.join(tags)})" if tags else ""
        n_t = r["n_train"] if r["n_train"] is not None else f"> {power.N_TRAIN_MAX}"
        lines.append(f"| {r['delta']:g} | {r['comparison']} | {r['n_eval']}{tag} | {n_t} "
                     f"| {r['n_train_normal']} | {_fmt(r['achieved_power'])} "
                     f"| {_cost(r['cost_per_arm'])} |")
    lines += [f"_{n}_" for n in costs.notes]
    lines += ["", f"Cheapest design for a {hw['level'] * 100:.0f} % CI half-width ≤ "
              f"{hw['target']:g} mIoU on the run-mean (searched over 1–{opts.max_eval_seeds} eval "
              f"seeds, smallest sufficient n_t each; a few rows shown):", "",
              "| eval seeds | training seeds | cost | half-width |",
              "| ---: | ---: | ---: | ---: |"]
    best = hw["best"]
    for d in hw["by_n_eval"]:
        mark = "**" if best is not None and d.n_eval == best.n_eval else ""
        n_t = d.n_train if d.n_train is not None else f"> {power.N_TRAIN_MAX}"
        lines.append(f"| {mark}{d.n_eval}{mark} | {mark}{n_t}{mark} | {_cost(d.cost)} "
                     f"| {_fmt(d.value, '.3f')} |")
    if best is not None:
        lines += ["", f"**Cheapest: {best.n_train} training seeds × {best.n_eval} eval "
                  f"seed{'s' if best.n_eval > 1 else ''}** (cost {_cost(best.cost)} {costs.unit}"
                  f", half-width {best.value:.3f})."]
    lines.append("")
    return lines


def _cost(v: float) -> str:
    """Costs span 0.02 (one eval, default unit) to 1e5 (seconds): 3 significant digits, no
    exponent."""
    if not math.isfinite(v):
        return "–"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _power_plot(name: str, res: dict[str, Any], opts: power.PowerOptions) -> str:
    """Unpaired MDE against training seeds for a few eval-seed counts, the Δ targets as dashed
    lines and the current design as a dot."""
    c, model = res["components"], res["models"]["unpaired"]
    needed = [r["n_train"] for r in res["sample_size"] if r["n_train"] is not None]
    n_hi = int(min(max(20, 2 * c.n_train, *needed), 200))
    n_t = np.arange(2, n_hi + 1)
    series = []
    n_evals = sorted(n for n in {1, c.n_eval, 5, 20} if n <= opts.max_eval_seeds)
    for i, n_e in enumerate(n_evals):
        series.append(plots.Series(f"{n_e} eval seed{'s' if n_e > 1 else ''}", n_t,
                                   power.mde(model, n_t, n_e, opts.alpha, opts.power),
                                   color=plots.PALETTE[i % len(plots.PALETTE)]))
    for delta in opts.deltas:
        series.append(plots.Series(f"Δ = {delta:g}", [2, n_hi], [delta, delta], color="#888888",
                                   dashed=True))
    cur = float(res["current"]["mde"]["unpaired"]["t"])
    series.append(plots.Series(f"now: {c.n_train}×{c.n_eval}, MDE {cur:.2f}", [c.n_train], [cur],
                               color=plots.REFERENCE_COLOR, markers=True))
    top = max(float(power.mde(model, 3, 1, opts.alpha, opts.power)), max(opts.deltas), cur)
    top = top if math.isfinite(top) and top > 0 else 1.0
    return plots.line_plot(series, f"{name}: detectable difference (unpaired, "
                           f"{opts.power * 100:.0f} % power)", "training seeds per arm",
                           "MDE (mIoU)", xlim=(2.0, float(n_hi)), ylim=(0.0, top * 1.05))


def build_report(sweep: Sweep, out_dir: Path, reference: Reference,
                 official: Optional[TrainingLog] = None, other: Optional[Sweep] = None,
                 label: str = "this sweep", other_label: str = "other sweep",
                 power_options: Optional[power.PowerOptions] = None) -> Report:
    rep = Report(warnings=list(sweep.warnings))
    md, data = rep.md, rep.data
    plan = sweep.plan or {}
    runs = sweep.runs
    not_evaluated = [s for s, r in runs.items() if not r.evals]

    def save(name: str, svg: str) -> str:
        plots.write_svg(out_dir / name, svg)
        rep.plots.append(name)
        return name

    # ---- header -------------------------------------------------------------------------------
    md.append("# SegNeXt seed-sweep report")
    md.append("")
    md.append(f"* sweep directory: `{sweep.root}`")
    if plan.get("config"):
        md.append(f"* config: `{plan['config']}`")
    if plan.get("created"):
        md.append(f"* sweep created: {plan['created']}")
    md.append(f"* reference: ss {reference.ss:.2f}"
              + (f", reported seed range {reference.ss_range[0]:.2f}–{reference.ss_range[1]:.2f}"
                 if reference.ss_range else "")
              + (f", ms+flip {reference.msflip:.2f}" if reference.msflip is not None else "")
              + f" ({reference.source})")
    md.append(f"* {SELECTION_RULE}")
    md.append("")
    data["sweep_dir"] = str(sweep.root)
    data["plan"] = plan or None
    data["reference"] = {"ss": reference.ss, "msflip": reference.msflip,
                         "ss_range": reference.ss_range, "source": reference.source}
    data["selection_rule"] = SELECTION_RULE

    # ---- runs ---------------------------------------------------------------------------------
    md.append("## Runs")
    md.append("")
    md.append(f"* planned training seeds: {sweep.planned or 'not stated (no sweep.json seeds)'}")
    md.append(f"* finished (result.json present): {list(runs) or 'none'}")
    md.append(f"* **missing** (planned or started, no result.json yet): {sweep.missing or 'none'}")
    md.append(f"* finished but not evaluated: {not_evaluated or 'none'}")
    if sweep.checkpoint_eval is not None:
        md.append(f"* checkpoint-only evaluation present: "
                  f"`{sweep.checkpoint_eval.checkpoint or sweep.checkpoint_eval.path}`")
    md.append("")
    data["runs"] = {"planned": sweep.planned, "finished": list(runs), "missing": sweep.missing,
                    "not_evaluated": not_evaluated,
                    "checkpoint_eval": sweep.checkpoint_eval is not None}

    # ---- learning curves (parsed first: final loss may come from the logs) ---------------------
    logs: dict[int, TrainingLog] = {}
    for seed, run in runs.items():
        if not run.train_log:
            continue
        path = _resolve_log(run, sweep.root)
        if path is None:
            rep.warnings.append(f"seed {seed}: train_log '{run.train_log}' not found")
            continue
        try:
            logs[seed] = parse_log(path)
        except (LogParseError, FileNotFoundError) as exc:
            rep.warnings.append(f"seed {seed}: train_log unreadable: {exc}")
            continue
        rep.warnings.extend(logs[seed].warnings)

    # ---- per-seed table -----------------------------------------------------------------------
    per_seed = []
    for seed, run in runs.items():
        row: dict[str, Any] = {"seed": seed, "checkpoint": run.checkpoint}
        for mode in MODES:
            sel = run.selected(mode)
            evs = run.evals_for(mode)
            row[mode] = None if sel is None else {"eval_seed": sel.eval_seed, "mIoU": sel.mIoU,
                                                  "aAcc": sel.aAcc, "mAcc": sel.mAcc}
            row[f"{mode}_n_eval_seeds"] = len(evs)
            row[f"{mode}_mean_over_eval_seeds"] = float(np.mean([e.mIoU for e in evs])) \
                if evs else None
        loss, loss_src = run.final_loss, "result.json"
        if loss is None and seed in logs and logs[seed].train:
            loss, loss_src = logs[seed].train[-1].loss, "last train line of train_log"
        row["final_loss"], row["final_loss_source"] = loss, (loss_src if loss is not None else None)
        row["last_iter"] = logs[seed].train[-1].iter if seed in logs and logs[seed].train else None
        per_seed.append(row)
    data["per_seed"] = per_seed

    md.append("## Per-seed results")
    md.append("")
    if per_seed:
        md.append("One row per training seed. mIoU, aAcc and mAcc are in percent (aAcc/mAcc from "
                  "the single-scale evaluation); *mean/k* is the ss mIoU averaged over the k eval "
                  "seeds of that checkpoint, which removes most of the evaluation noise.")
        md.append("")
        md.append("| seed | ss mIoU | ms+flip mIoU | aAcc | mAcc | final loss | ss mean/k | "
                  "eval seed used (ss / ms+flip) |")
        md.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in per_seed:
            ss, ms = r["ss"] or {}, r["msflip"] or {}
            k = r["ss_n_eval_seeds"]
            used = sorted({str(m["eval_seed"]) for m in (ss, ms) if m})
            used_txt = " / ".join([str(ss.get("eval_seed", "–")), str(ms.get("eval_seed", "–"))]) \
                if len(used) > 1 else (used[0] if used else "–")
            md.append(f"| {r['seed']} | {_fmt(ss.get('mIoU'))} | {_fmt(ms.get('mIoU'))} "
                      f"| {_fmt(ss.get('aAcc'))} | {_fmt(ss.get('mAcc'))} "
                      f"| {_fmt(r['final_loss'], '.4f')} "
                      f"| {_fmt(r['ss_mean_over_eval_seeds']) + f' /{k}' if k else '–'} "
                      f"| {used_txt} |")
        for seed in sweep.missing:
            md.append(f"| {seed} | missing | | | | | | |")
        if any(r["final_loss_source"] == "last train line of train_log" for r in per_seed):
            md.append("")
            md.append("Final loss: from result.json, else the last train line of the seed's log "
                      "(a 50-iteration average in mmseg-format logs).")
    else:
        md.append("No finished training seeds.")
    md.append("")

    # ---- summary ------------------------------------------------------------------------------
    sel_values = {mode: {r["seed"]: r[mode]["mIoU"] for r in per_seed if r[mode]}
                  for mode in MODES}
    summaries: dict[str, Any] = {}
    rows: list[tuple[str, stats.Summary]] = []
    for mode in MODES:
        vals = list(sel_values[mode].values())
        if vals:
            s = stats.summary(vals)
            summaries[mode] = s
            rows.append((f"{MODE_LABEL[mode]} mIoU, one eval per seed", s))
        means = [r[f"{mode}_mean_over_eval_seeds"] for r in per_seed
                 if r[f"{mode}_n_eval_seeds"] >= 2]
        if len(means) >= 2:
            s2 = stats.summary(means)
            summaries[f"{mode}_eval_seed_means"] = s2
            rows.append((f"{MODE_LABEL[mode]} mIoU, mean over eval seeds", s2))
    data["summary"] = summaries
    if rows:
        md.append("## Spread over training seeds")
        md.append("")
        md.append("*std* is the sample standard deviation (n−1): how much one training run differs "
                  "from another. *IQM* is the interquartile mean (sort, drop the lowest and "
                  "highest quarter, floor(n/4) values each, average the rest), a mean that ignores outlier "
                  "seeds. The 95 % confidence intervals are for the *mean* over seeds: the "
                  "bootstrap one (BCa, fixed resampling seed, needs n ≥ 3) is too narrow for a "
                  "handful of seeds, the Student-t one is the safer reading.")
        md.append("")
        md.extend(_summary_table(rows))
        for name, s in rows:
            for note in s.notes:
                md.append(f"\n_{name}: {note}_")
        md.append("")
        for mode in MODES:
            if mode not in summaries:
                continue
            vals = list(sel_values[mode].values())
            ref = reference.ss if mode == "ss" else reference.msflip
            rr = reference.ss_range if mode == "ss" else None
            s = summaries[mode]
            svg = plots.strip_plot(
                [plots.StripGroup(MODE_LABEL[mode], vals, [str(k) for k in sel_values[mode]],
                                  ci=(s.t_ci_low, s.t_ci_high),
                                  extra_lines=[f"n={s.n}, mean {s.mean:.2f}"])],
                title=f"{MODE_LABEL[mode]} mIoU per training seed", ylabel="mIoU (%)",
                reference=ref, reference_range=rr, reference_label="reported")
            name = save(f"strip_{mode}.svg", svg)
            md.append(f"![{MODE_LABEL[mode]} per-seed mIoU]({name})")
            md.append("")
        md.append("Dots are training seeds, the bar is their mean with the 95 % t-interval, the "
                  "dashed line is the reported number and the shaded band the reported seed range.")
        md.append("")

    # ---- reference position -------------------------------------------------------------------
    positions: dict[str, Any] = {}
    for mode in MODES:
        vals = list(sel_values[mode].values())
        ref = reference.ss if mode == "ss" else reference.msflip
        if vals and ref is not None:
            positions[mode] = stats.reference_position(
                vals, ref, reference.ss_range if mode == "ss" else None)
    data["reference_position"] = positions
    if positions:
        md.append("## Where the reported number falls")
        md.append("")
        md.append("The percentile says what fraction of our seeds scored below the reported "
                  "number (ties count half). A reported value near the top of our seed "
                  "distribution suggests it was a good seed rather than the typical outcome; "
                  "a value outside our range points to a real difference between the setups.")
        md.append("")
        for mode, pos in positions.items():
            md.extend(_ref_lines(MODE_LABEL[mode], pos))
        md.append("")

    # ---- variance decomposition ---------------------------------------------------------------
    decomps: dict[str, Any] = {}
    for mode in MODES:
        table = _mode_table(runs, mode)
        if len(table) >= 2 and any(len(v) >= 2 for v in table.values()):
            decomps[mode] = (stats.variance_decomposition(table), table)
    data["variance_decomposition"] = {m: d for m, (d, _) in decomps.items()}
    if decomps:
        md.append("## Training seed vs evaluation seed")
        md.append("")
        md.append("Each checkpoint was evaluated with several eval seeds (different random NMF "
                  "bases in the Hamburger head). The *eval-seed* variance is the part you would "
                  "see re-evaluating the same checkpoint with new NMF bases; the *train-seed* "
                  "variance is what remains between checkpoints once that noise is averaged out "
                  "(one-way random-effects ANOVA, method of moments, clamped at 0). The ICC is "
                  "the train-seed share of the variance of a single evaluation.")
        md.append("")
        md.append("| mode | train seeds | evals | eval-seed SD | train-seed SD | train-seed var "
                  "(raw) | eval share | ICC | F | p |")
        md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode, (d, _) in decomps.items():
            md.append(f"| {MODE_LABEL[mode]} | {d.n_groups} | {d.n_total} | {d.sd_within:.3f} "
                      f"| {d.sd_between:.3f} | {d.var_between_raw:.4f} "
                      f"| {_fmt(d.share_within * 100, '.0f')} % | {_fmt(d.icc, '.2f')} "
                      f"| {_fmt(d.f_stat, '.2f')} | {_fmt(d.p_value, '.3g')} |")
            for note in d.notes:
                md.append(f"\n_{MODE_LABEL[mode]}: {note}_")
        md.append("")
        for mode, (_, table) in decomps.items():
            groups = [plots.StripGroup(f"seed {s}", list(v.values()), [str(e) for e in v],
                                       color=plots.PALETTE[i % len(plots.PALETTE)])
                      for i, (s, v) in enumerate(table.items())]
            svg = plots.strip_plot(groups, f"{MODE_LABEL[mode]} mIoU per eval seed, by training "
                                   "seed", "mIoU (%)",
                                   reference=reference.ss if mode == "ss" else reference.msflip,
                                   reference_label="reported", point_label="eval seed",
                                   width=max(560, 120 + 90 * len(groups)))
            name = save(f"eval_spread_{mode}.svg", svg)
            md.append(f"![eval-seed spread per checkpoint ({MODE_LABEL[mode]})]({name})")
            md.append("")

    # ---- all evaluations histogram --------------------------------------------------------------
    all_ss = [e.mIoU for r in runs.values() for e in r.evals_for("ss")]
    if len(all_ss) >= 3:
        svg = plots.histogram(all_ss, "single-scale mIoU, every (training seed, eval seed) pair",
                              "mIoU (%)", reference=reference.ss,
                              reference_range=reference.ss_range, reference_label="reported")
        name = save("hist_ss.svg", svg)
        md.append(f"![histogram of all single-scale evaluations]({name})")
        md.append("")

    # ---- checkpoint-only sweep ----------------------------------------------------------------
    ck_data: Optional[dict[str, Any]] = None
    ck = sweep.checkpoint_eval
    if ck is not None:
        ck_data = {"checkpoint": ck.checkpoint, "config": ck.config, "modes": {}}
        md.append("## Evaluation-only spread (one checkpoint, several eval seeds)")
        md.append("")
        md.append("The same checkpoint evaluated with different eval seeds: nothing but the random "
                  "NMF bases changes, so this spread is pure evaluation noise. If it is comparable "
                  "to the spread over training seeds, part of the published seed range is "
                  "evaluation noise rather than training variance.")
        md.append("")
        md.append(f"checkpoint: `{ck.checkpoint}`")
        md.append("")
        ck_rows: list[tuple[str, stats.Summary]] = []
        ck_text: list[str] = []
        images: list[str] = []
        for mode in MODES:
            evs = ck.evals_for(mode)
            if not evs:
                continue
            vals = [e.mIoU for e in evs]
            s = stats.summary(vals)
            ref = reference.ss if mode == "ss" else reference.msflip
            pos = stats.reference_position(vals, ref, reference.ss_range if mode == "ss"
                                           else None) if ref is not None else None
            ck_data["modes"][mode] = {"values": [{"eval_seed": e.eval_seed, "mIoU": e.mIoU}
                                                 for e in evs],
                                      "summary": s, "reference_position": pos}
            ck_rows.append((f"{MODE_LABEL[mode]} mIoU over eval seeds", s))
            if pos is not None:
                ck_text.extend(_ref_lines(MODE_LABEL[mode], pos))
            train_s = summaries.get(mode)
            if train_s is not None and train_s.n >= 2 and s.n >= 2:
                ck_text.append(f"* {MODE_LABEL[mode]}: SD over eval seeds of this checkpoint "
                               f"{s.std:.3f} vs SD over training seeds {train_s.std:.3f} (one "
                               f"evaluation each).")
            svg = plots.strip_plot(
                [plots.StripGroup(MODE_LABEL[mode], vals, [str(e.eval_seed) for e in evs],
                                  ci=(s.t_ci_low, s.t_ci_high),
                                  extra_lines=[f"n={s.n}, sd {_fmt(s.std, '.3f')}"])],
                title=f"checkpoint {MODE_LABEL[mode]} mIoU per eval seed", ylabel="mIoU (%)",
                reference=ref, reference_range=reference.ss_range if mode == "ss" else None,
                reference_label="reported", point_label="eval seed")
            name = save(f"checkpoint_eval_{mode}.svg", svg)
            images.append(f"![checkpoint eval-seed spread ({MODE_LABEL[mode]})]({name})")
            if len(vals) >= 5:
                name = save(f"checkpoint_eval_hist_{mode}.svg", plots.histogram(
                    vals, f"checkpoint {MODE_LABEL[mode]} mIoU over eval seeds", "mIoU (%)",
                    reference=ref, reference_label="reported"))
                images.append(f"![checkpoint eval-seed histogram ({MODE_LABEL[mode]})]({name})")
        if ck_rows:
            md.extend(_summary_table(ck_rows))
            md.append("")
            md.extend(ck_text)
            md.append("")
            md.extend(images)
        else:
            md.append("No evaluations recorded yet.")
        md.append("")
    data["checkpoint_eval"] = ck_data

    # ---- learning curves ----------------------------------------------------------------------
    curve_data: dict[str, Any] = {"seeds_with_logs": list(logs), "official": None, "window": None}
    if logs or official is not None:
        all_logs = list(logs.values()) + ([official] if official is not None else [])
        max_iter = max([lg.train[-1].iter for lg in all_logs if lg.train]
                       + [lg.val[-1].iter for lg in all_logs if lg.val], default=0)
        window = _nice_window(max_iter)
        curve_data["window"] = window
        loss_series, miou_series = [], []
        for i, (seed, lg) in enumerate(logs.items()):
            color = plots.PALETTE[i % len(plots.PALETTE)]
            x, y = binned_mean(*lg.series("loss"), window)
            loss_series.append(plots.Series(f"seed {seed}", x, y, color=color))
            vx, vy = lg.series("mIoU")
            if vx.size:
                miou_series.append(plots.Series(f"seed {seed}", vx, vy, color=color,
                                                markers=True))
        if official is not None:
            curve_data["official"] = official.path
            x, y = binned_mean(*official.series("loss"), window)
            loss_series.append(plots.Series("official", x, y, color="#222222", dashed=True,
                                            width=3.0))
            vx, vy = official.series("mIoU")
            if vx.size:
                miou_series.append(plots.Series("official", vx, vy, color="#222222",
                                                dashed=True, width=3.0, markers=True))
            curve_data["official_val"] = [{"iter": r.iter, "mIoU": r.mIoU} for r in official.val]
        curve_data["final_val"] = {str(s): ({"iter": lg.val[-1].iter, "mIoU": lg.val[-1].mIoU}
                                            if lg.val else None) for s, lg in logs.items()}
        md.append("## Learning curves")
        md.append("")
        md.append(f"Training loss averaged over windows of {window} iterations, and the mIoU of "
                  "the periodic evaluations, for every seed with a readable train_log"
                  + ("; the official log is the thick dashed line." if official else "."))
        md.append("")
        xlim = (0.0, float(max_iter)) if max_iter > 0 else None  # iterations start at 0
        if any(len(s.x) for s in loss_series):
            name = save("loss_curves.svg", plots.line_plot(loss_series, "training loss",
                                                           "iteration", "loss", xlim=xlim))
            md.append(f"![loss curves]({name})")
        if miou_series:
            name = save("miou_curves.svg", plots.line_plot(miou_series, "validation mIoU during "
                                                           "training", "iteration", "mIoU (%)",
                                                           xlim=xlim))
            md.append(f"![mIoU curves]({name})")
        md.append("")
    data["learning_curves"] = curve_data

    # ---- comparison ---------------------------------------------------------------------------
    comp_data: Optional[dict[str, Any]] = None
    if other is not None:
        comp_data = {"other_dir": str(other.root), "label": label, "other_label": other_label}
        md.append(f"## Paired comparison: {label} − {other_label}")
        md.append("")
        md.append("Both sweeps are matched seed by seed (same training seed, so the same "
                  "initialisation and data order where the code paths agree) and the difference "
                  "of each pair is analysed; pairing removes the seed-to-seed variation shared "
                  "by both. A confidence interval of the mean difference that excludes 0 "
                  "indicates a systematic difference.")
        md.append("")
        md.append("| mode | common seeds | mean Δ | SD Δ | 95% CI (t) | 95% CI (bootstrap) | "
                  "paired t p | Wilcoxon p |")
        md.append("| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |")
        notes: list[str] = []
        images: list[str] = []
        for mode in MODES:
            a = sel_values[mode]
            b = {s: r.selected(mode).mIoU for s, r in other.runs.items()  # type: ignore
                 if r.selected(mode) is not None}
            if not a and not b:
                continue
            pc = stats.paired_comparison(a, b)
            comp_data[mode] = pc
            md.append(f"| {MODE_LABEL[mode]} | {pc.n} | {_fmt(pc.mean_delta, '+.2f')} "
                      f"| {_fmt(pc.std_delta, '.3f')} | {_fmt(pc.t_ci_low, '+.2f')} – "
                      f"{_fmt(pc.t_ci_high, '+.2f')} | {_fmt(pc.boot_ci_low, '+.2f')} – "
                      f"{_fmt(pc.boot_ci_high, '+.2f')} | {_fmt(pc.p_ttest, '.3g')} "
                      f"| {_fmt(pc.p_wilcoxon, '.3g')} |")
            notes += [f"{MODE_LABEL[mode]}: {n}" for n in pc.notes]
            if pc.only_in_a or pc.only_in_b:
                notes.append(f"{MODE_LABEL[mode]}: seeds only in {label}: {pc.only_in_a}; only "
                             f"in {other_label}: {pc.only_in_b}")
            if pc.n:
                svg = plots.strip_plot(
                    [plots.StripGroup(label, pc.a, pc.seeds), plots.StripGroup(other_label, pc.b,
                                                                               pc.seeds)],
                    f"{MODE_LABEL[mode]} mIoU on common seeds", "mIoU (%)",
                    reference=reference.ss if mode == "ss" else reference.msflip,
                    reference_label="reported")
                name = save(f"compare_{mode}.svg", svg)
                images.append(f"![comparison ({MODE_LABEL[mode]})]({name})")
        md.append("")
        md.extend(f"* {n}" for n in notes)
        md.append("")
        md.extend(images)
        md.append("")
    data["comparison"] = comp_data

    # ---- how many seeds? ------------------------------------------------------------------------
    data["power"] = _power_section(rep, sweep, other, {m: d for m, (d, _) in decomps.items()},
                                   summaries, logs, power_options or power.PowerOptions(), save)

    # ---- per-class spread (optional data) ---------------------------------------------------
    pcs = [run.selected("ss").per_class_iou for run in runs.values()  # type: ignore[union-attr]
           if run.selected("ss") is not None and run.selected("ss").per_class_iou is not None]
    if len(pcs) >= 2 and len({len(p) for p in pcs}) == 1:
        arr = np.array([[np.nan if v is None else v for v in p] for p in pcs], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            counts = np.isfinite(arr).sum(0)
            sd = np.full(arr.shape[1], np.nan)
            ok = counts >= 2
            sd[ok] = np.nanstd(arr[:, ok], axis=0, ddof=1)
        order = [int(i) for i in np.argsort(-np.nan_to_num(sd, nan=-1.0))[:10] if ok[i]]
        data["per_class_iou_sd_top10"] = [{"class_index": i, "sd": float(sd[i]),
                                           "mean": float(np.nanmean(arr[:, i]))} for i in order]
        md.append("## Most seed-sensitive classes (ss IoU)")
        md.append("")
        md.append("Classes whose IoU varies most between training seeds (SD over seeds); rare "
                  "classes usually dominate the seed spread of mIoU.")
        md.append("")
        md.append("| class index | mean IoU | SD over seeds |")
        md.append("| ---: | ---: | ---: |")
        for item in data["per_class_iou_sd_top10"]:
            md.append(f"| {item['class_index']} | {item['mean']:.2f} | {item['sd']:.2f} |")
        md.append("")

    # ---- warnings -----------------------------------------------------------------------------
    all_mious = [e.mIoU for r in runs.values() for e in r.evals]
    if all_mious and max(all_mious) <= 1.0:
        rep.warnings.append("every mIoU is <= 1: result.json values must be percentages, were "
                            "fractions written?")
    if rep.warnings:
        md.append("## Warnings")
        md.append("")
        md.extend(f"* {w}" for w in rep.warnings)
        md.append("")
    data["warnings"] = rep.warnings
    data["plots"] = rep.plots
    return rep


def _parse_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 49.60,51.0), got {text!r}") \
            from None
    return (min(lo, hi), max(lo, hi))


def _parse_floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas (e.g. 0.5,1.0), "
                                         f"got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def _add_power_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("how many seeds? (power analysis)")
    g.add_argument("--power-deltas", type=_parse_floats, default=power.DEFAULT_DELTAS,
                   metavar="D1,D2", help="true mIoU differences to detect at 80%% power, "
                   "alpha 0.05 (default 0.5,1.0)")
    g.add_argument("--target-halfwidth", type=float, default=power.DEFAULT_HALFWIDTH,
                   help="target 95%% CI half-width of the run-mean for the cheapest design "
                        "(default 0.25 mIoU)")
    g.add_argument("--train-cost", type=float, default=None,
                   help="cost of one training run, any unit (e.g. GPU hours). Default: measured "
                        "from the train logs when the evals record 'seconds', else 1.0")
    g.add_argument("--eval-cost", type=float, default=None,
                   help="cost of one evaluation in the same unit (default: measured, else 0.02)")
    g.add_argument("--paired-rho", type=float, default=0.0,
                   help="assumed train-seed correlation between the arms of a paired comparison "
                        "when no --compare sweep measures it (default 0: pairing gains nothing)")


def _power_options(args: argparse.Namespace) -> power.PowerOptions:
    return power.PowerOptions(deltas=tuple(args.power_deltas),
                              target_halfwidth=args.target_halfwidth, train_cost=args.train_cost,
                              eval_cost=args.eval_cost, paired_rho=args.paired_rho)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Seed-sweep report (report.md, report.json, SVGs).")
    ap.add_argument("dir", help="sweep directory (sweep.json, seed_<k>/result.json, "
                                "checkpoint_eval/result.json)")
    ap.add_argument("--reference", type=float, default=None,
                    help="reported ss mIoU (default: mmseg README value for the model size in "
                         "the config name, SegNeXt-L 50.99 if unknown)")
    ap.add_argument("--reference-range", type=_parse_range, default=None,
                    help="reported seed range LO,HI (default 49.60,51.0 for SegNeXt-L)")
    ap.add_argument("--reference-msflip", type=float, default=None,
                    help="reported ms+flip mIoU (default: mmseg README value, 52.10 for L)")
    ap.add_argument("--official", help="official training log (log.json or scalars.json) to "
                                       "overlay on the learning curves")
    ap.add_argument("--compare", help="another sweep directory for a paired comparison")
    ap.add_argument("--label", default=None, help="name of this sweep in the comparison")
    ap.add_argument("--compare-label", default=None, help="name of the other sweep")
    ap.add_argument("--out", help="output directory (default: DIR)")
    _add_power_args(ap)
    args = ap.parse_args(argv)
    try:
        power_options = _power_options(args)
    except ValueError as exc:
        ap.error(str(exc))

    root = Path(args.dir)
    out = Path(args.out) if args.out else root
    try:
        sweep = load_sweep(root)
        other = load_sweep(Path(args.compare)) if args.compare else None
        official = parse_log(args.official) if args.official else None
        reference = resolve_reference(sweep, args.reference, args.reference_range,
                                      args.reference_msflip)
        out.mkdir(parents=True, exist_ok=True)
        rep = build_report(sweep, out, reference, official, other,
                           label=args.label or root.resolve().name,
                           other_label=args.compare_label or
                           (Path(args.compare).resolve().name if args.compare else "other"),
                           power_options=power_options)
    except (ReportInputError, LogParseError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # No timestamp: the same inputs give byte-identical outputs (the bootstrap seed is fixed).
    rep.data["generated_by"] = "repro/report.py"
    (out / "report.md").write_text("\n".join(rep.md).rstrip() + "\n", encoding="utf-8")
    (out / "report.json").write_text(json.dumps(stats.jsonable(rep.data), indent=1,
                                                allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {out / 'report.md'}, {out / 'report.json'} and {len(rep.plots)} plot(s)")
    for w in rep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
