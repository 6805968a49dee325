"""Everything the seed-sweep report says, computed without touching a file: ``analyze(sweep,
reference, ...) -> ReportData``. segnext_jt/repro/report/render.py turns it into Markdown, JSON and SVG."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from segnext_jt.repro.report import power

from segnext_jt.repro.report import stats
from segnext_jt.repro.report.log_parsing import TrainingLog
from segnext_jt.repro.report.platforms import Platforms, analyze_platforms
from segnext_jt.repro.report.inputs import Sweep, TrainLogs
from segnext_jt.repro.report.power_section import PowerData, analyze_power, protocol_table
from segnext_jt.repro.report.reference import Reference
from segnext_jt.repro.report.text import PROTOCOL_LABEL
from segnext_jt.repro.sweep.results import PROTOCOLS, EvalEntry, RunResult

FRACTION_WARNING = ("every mIoU is <= 1: result.json values must be percentages, were fractions "
                    "written?")
LOSS_FROM_LOG = "last train line of train_log"


@dataclass
class RunsInfo:
    planned: list[int]
    finished: list[int]
    missing: list[int]
    not_evaluated: list[int]
    checkpoint_eval: Optional[str]  # what was evaluated by checkpoint_eval/, if present

    def to_json(self) -> dict[str, Any]:
        return {"planned": self.planned, "finished": self.finished, "missing": self.missing,
                "not_evaluated": self.not_evaluated,
                "checkpoint_eval": self.checkpoint_eval is not None}


@dataclass
class ProtocolCell:
    """One training seed, one protocol: the selected evaluation and the mean over all eval seeds."""
    selected: Optional[EvalEntry]
    n_eval_seeds: int
    mean_over_eval_seeds: Optional[float]


@dataclass
class SeedRow:
    seed: int
    checkpoint: Optional[str]
    protocols: dict[str, ProtocolCell]
    final_loss: Optional[float]
    final_loss_source: Optional[str]
    last_iter: Optional[int]

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"seed": self.seed, "checkpoint": self.checkpoint}
        for protocol, cell in self.protocols.items():
            sel = cell.selected
            row[protocol] = None if sel is None else {"eval_seed": sel.eval_seed, "mIoU": sel.mIoU,
                                                  "aAcc": sel.aAcc, "mAcc": sel.mAcc}
            row[f"{protocol}_n_eval_seeds"] = cell.n_eval_seeds
            row[f"{protocol}_mean_over_eval_seeds"] = cell.mean_over_eval_seeds
        row.update(final_loss=self.final_loss, final_loss_source=self.final_loss_source,
                   last_iter=self.last_iter)
        return row


@dataclass
class Spread:
    """Spread over training seeds: the selected value per seed, and their summaries."""
    values: dict[str, dict[int, float]]  # protocol -> {training seed: selected mIoU}
    summaries: dict[str, stats.Summary]  # "ss", "ss_eval_seed_means", "msflip", ...
    rows: list[tuple[str, stats.Summary]]  # table rows, labelled


@dataclass
class Decomposition:
    result: stats.VarianceDecomposition
    table: dict[int, dict[int, float]]  # training seed -> {eval seed: mIoU}


@dataclass
class CheckpointProtocol:
    evals: list[EvalEntry]
    summary: stats.Summary
    position: Optional[stats.ReferencePosition]
    train_summary: Optional[stats.Summary]  # the training-seed spread, to compare with

    @property
    def values(self) -> list[float]:
        return [e.mIoU for e in self.evals]


@dataclass
class CheckpointEval:
    checkpoint: Optional[str]
    config: Optional[str]
    protocols: dict[str, CheckpointProtocol]

    def to_json(self) -> dict[str, Any]:
        # report.json keeps the key "modes" for the protocols
        return {"checkpoint": self.checkpoint, "config": self.config, "modes": {
            protocol: {"values": [{"eval_seed": e.eval_seed, "mIoU": e.mIoU} for e in m.evals],
                   "summary": m.summary, "reference_position": m.position}
            for protocol, m in self.protocols.items()}}


@dataclass
class Curves:
    logs: dict[int, TrainingLog]
    official: Optional[TrainingLog]
    max_iter: int = 0
    window: Optional[int] = None  # None: nothing to draw

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seeds_with_logs": list(self.logs), "official": None,
                               "window": self.window}
        if self.window is None:
            return out
        if self.official is not None:
            out["official"] = self.official.path
            out["official_val"] = [{"iter": r.iter, "mIoU": r.mIoU} for r in self.official.val]
        out["final_val"] = {str(s): ({"iter": lg.val[-1].iter, "mIoU": lg.val[-1].mIoU}
                                     if lg.val else None) for s, lg in self.logs.items()}
        return out


@dataclass
class Comparison:
    other_dir: str
    label: str
    other_label: str
    protocols: dict[str, stats.PairedComparison]

    def to_json(self) -> dict[str, Any]:
        return {"other_dir": self.other_dir, "label": self.label,
                "other_label": self.other_label, **self.protocols}


@dataclass
class ReportData:
    sweep_dir: str
    plan: Optional[dict[str, Any]]
    reference: Reference
    runs: RunsInfo
    per_seed: list[SeedRow]
    missing: list[int]
    spread: Spread
    positions: dict[str, stats.ReferencePosition]
    variance: dict[str, Decomposition]
    all_ss: list[float]  # every single-scale evaluation of every training seed
    checkpoint_eval: Optional[CheckpointEval]
    curves: Curves
    comparison: Optional[Comparison]
    power: PowerData
    per_class_sd: Optional[list[dict[str, Any]]]
    warnings: list[str] = field(default_factory=list)
    platforms: Optional[Platforms] = None  # None: one platform (or none recorded)


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------
def runs_info(sweep: Sweep) -> RunsInfo:
    ck = sweep.checkpoint_eval
    return RunsInfo(planned=sweep.planned, finished=list(sweep.runs), missing=sweep.missing,
                    not_evaluated=[s for s, r in sweep.runs.items() if not r.evals],
                    checkpoint_eval=None if ck is None else str(ck.checkpoint or ck.path))


def seed_row(seed: int, run: RunResult, log: Optional[TrainingLog]) -> SeedRow:
    protocols = {}
    for protocol in PROTOCOLS:
        evs = run.evals_for(protocol)
        protocols[protocol] = ProtocolCell(run.selected(protocol), len(evs),
                               float(np.mean([e.mIoU for e in evs])) if evs else None)
    loss, src = run.final_loss, "result.json"
    if loss is None and log is not None and log.train:
        loss, src = log.train[-1].loss, LOSS_FROM_LOG
    last_iter = log.train[-1].iter if log is not None and log.train else None
    return SeedRow(seed, run.checkpoint, protocols, loss, src if loss is not None else None,
                   last_iter)


def spread(per_seed: list[SeedRow]) -> Spread:
    values = {protocol: {r.seed: r.protocols[protocol].selected.mIoU for r in per_seed  # type: ignore
                     if r.protocols[protocol].selected is not None} for protocol in PROTOCOLS}
    summaries: dict[str, stats.Summary] = {}
    rows: list[tuple[str, stats.Summary]] = []
    for protocol in PROTOCOLS:
        if values[protocol]:
            summaries[protocol] = stats.summary(list(values[protocol].values()))
            rows.append((f"{PROTOCOL_LABEL[protocol]} mIoU, one eval per seed", summaries[protocol]))
        means = [r.protocols[protocol].mean_over_eval_seeds for r in per_seed
                 if r.protocols[protocol].n_eval_seeds >= 2]
        if len(means) >= 2:
            s2 = summaries[f"{protocol}_eval_seed_means"] = stats.summary(means)
            rows.append((f"{PROTOCOL_LABEL[protocol]} mIoU, mean over eval seeds", s2))
    return Spread(values, summaries, rows)


def positions(values: dict[str, dict[int, float]], reference: Reference
              ) -> dict[str, stats.ReferencePosition]:
    out = {}
    for protocol in PROTOCOLS:
        vals, ref = list(values[protocol].values()), reference.for_protocol(protocol)
        if vals and ref is not None:
            out[protocol] = stats.reference_position(vals, ref, reference.range_for(protocol))
    return out


def decompositions(runs: dict[int, RunResult]) -> dict[str, Decomposition]:
    out = {}
    for protocol in PROTOCOLS:
        table = protocol_table(runs, protocol)
        if len(table) >= 2 and any(len(v) >= 2 for v in table.values()):
            out[protocol] = Decomposition(stats.variance_decomposition(table), table)
    return out


def checkpoint_eval(ck: Optional[RunResult], reference: Reference,
                    summaries: dict[str, stats.Summary]) -> Optional[CheckpointEval]:
    if ck is None:
        return None
    protocols = {}
    for protocol in PROTOCOLS:
        evs = ck.evals_for(protocol)
        if not evs:
            continue
        vals, ref = [e.mIoU for e in evs], reference.for_protocol(protocol)
        pos = (stats.reference_position(vals, ref, reference.range_for(protocol))
               if ref is not None else None)
        protocols[protocol] = CheckpointProtocol(evs, stats.summary(vals), pos, summaries.get(protocol))
    return CheckpointEval(ck.checkpoint, ck.config, protocols)


def nice_window(max_iter: int, points: int = 200) -> int:
    target = max(max_iter / points, 1)
    for w in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if w >= target:
            return w
    return 10000


def curves(logs: dict[int, TrainingLog], official: Optional[TrainingLog]) -> Curves:
    out = Curves(logs, official)
    if logs or official is not None:
        all_logs = list(logs.values()) + ([official] if official is not None else [])
        out.max_iter = max([lg.train[-1].iter for lg in all_logs if lg.train]
                           + [lg.val[-1].iter for lg in all_logs if lg.val], default=0)
        out.window = nice_window(out.max_iter)
    return out


def comparison(values: dict[str, dict[int, float]], other: Optional[Sweep], label: str,
               other_label: str) -> Optional[Comparison]:
    if other is None:
        return None
    protocols = {}
    for protocol in PROTOCOLS:
        a = values[protocol]
        b = {s: r.selected(protocol).mIoU for s, r in other.runs.items()  # type: ignore[union-attr]
             if r.selected(protocol) is not None}
        if a or b:
            protocols[protocol] = stats.paired_comparison(a, b)
    return Comparison(str(other.root), label, other_label, protocols)


def per_class_sd(runs: dict[int, RunResult], top: int = 10,
                 logs: Optional[TrainLogs] = None) -> Optional[list[dict[str, Any]]]:
    """The classes whose single-scale IoU varies most between training seeds. Class names come from
    the evaluations (class_names) or else from the train logs' CLASSES (result.json files written
    before class_names was recorded)."""
    pcs = [sel.per_class_iou for sel in (run.selected("ss") for run in runs.values())
           if sel is not None and sel.per_class_iou is not None]
    if len(pcs) < 2 or len({len(p) for p in pcs}) != 1:
        return None
    arr = np.array([[np.nan if v is None else v for v in p] for p in pcs], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(arr).sum(0)
        sd = np.full(arr.shape[1], np.nan)
        ok = counts >= 2
        sd[ok] = np.nanstd(arr[:, ok], axis=0, ddof=1)
    order = [int(i) for i in np.argsort(-np.nan_to_num(sd, nan=-1.0))[:top] if ok[i]]
    # the dataset's declared class names, when every run recorded the same ones
    names = {tuple(sel.class_names) if sel.class_names else None
             for sel in (run.selected("ss") for run in runs.values()) if sel is not None}
    if names == {None} and logs is not None:
        names = {tuple(log.meta["CLASSES"]) if isinstance(log.meta.get("CLASSES"), list) else None
                 for log in logs.by_seed.values()} or {None}
    if len(names) == 1 and next(iter(names)) is not None and len(next(iter(names))) != arr.shape[1]:
        names = {None}
    name_list = next(iter(names)) if len(names) == 1 else None
    return [{"class_index": i, "class": None if name_list is None else name_list[i], "sd": float(sd[i]),
             "mean": float(np.nanmean(arr[:, i]))} for i in order]


# ------------------------------------------------------------------------------------------------
# all of it
# ------------------------------------------------------------------------------------------------
def analyze(sweep: Sweep, reference: Reference, logs: Optional[TrainLogs] = None,
            official: Optional[TrainingLog] = None, other: Optional[Sweep] = None,
            label: str = "this sweep", other_label: str = "other sweep",
            power_options: Optional[power.PowerOptions] = None) -> ReportData:
    """The report's content. Pure: the sweeps and logs are read beforehand (report_inputs)."""
    logs = logs or TrainLogs()
    per_seed = [seed_row(s, r, logs.by_seed.get(s)) for s, r in sweep.runs.items()]
    spr = spread(per_seed)
    decomps = decompositions(sweep.runs)
    plats = analyze_platforms(sweep.runs, logs.by_seed)
    warnings = ([plats.warning] if plats else []) + list(sweep.warnings) + reference.warnings \
        + logs.warnings
    all_mious = [e.mIoU for r in sweep.runs.values() for e in r.evals]
    if all_mious and max(all_mious) <= 1.0:
        warnings.append(FRACTION_WARNING)
    pw = analyze_power(sweep, other, {m: d.result for m, d in decomps.items()}, spr.summaries,
                       logs.by_seed, power_options or power.PowerOptions())
    return ReportData(
        sweep_dir=str(sweep.root), plan=sweep.plan or None, reference=reference,
        runs=runs_info(sweep), per_seed=per_seed, missing=sweep.missing, spread=spr,
        positions=positions(spr.values, reference), variance=decomps,
        all_ss=[e.mIoU for r in sweep.runs.values() for e in r.evals_for("ss")],
        checkpoint_eval=checkpoint_eval(sweep.checkpoint_eval, reference, spr.summaries),
        curves=curves(logs.by_seed, official),
        comparison=comparison(spr.values, other, label, other_label), power=pw,
        per_class_sd=per_class_sd(sweep.runs, logs=logs), warnings=warnings, platforms=plats)
