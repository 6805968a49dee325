"""The report's "How many seeds?" section: the power analysis of the sweep's nested design
(formulas in segnext_jt/repro/report/power.py), its Markdown and its detectable-effect plot."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from segnext_jt.repro.report import svg as plots

from segnext_jt.repro.report import power

from segnext_jt.repro.report import stats
from segnext_jt.repro.report.log_parsing import TrainingLog
from segnext_jt.repro.report.inputs import Sweep
from segnext_jt.repro.report.text import PROTOCOL_LABEL, Figures, fmt, fmt_cost
from segnext_jt.repro.sweep.results import PROTOCOLS, RunResult

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


@dataclass
class PowerData:
    options: power.PowerOptions
    protocols: dict[str, dict[str, Any]]  # protocol -> power.analyse(...); "modes" in report.json

    def to_json(self) -> dict[str, Any]:
        return {"options": self.options, "formula": power.FORMULA_TEXT, "modes": self.protocols}


# ------------------------------------------------------------------------------------------------
# analysis
# ------------------------------------------------------------------------------------------------
def protocol_table(runs: dict[int, RunResult], protocol: str) -> dict[int, dict[int, float]]:
    """{training seed: {eval seed: mIoU}}: the nested design of one protocol."""
    return {seed: {e.eval_seed: e.mIoU for e in run.evals_for(protocol)}
            for seed, run in runs.items() if run.evals_for(protocol)}


def train_seconds(log: TrainingLog) -> Optional[float]:
    """Training time from the log: each train line's 'time' is the mean seconds per iteration
    since the previous line. Iterations only (periodic validation and checkpoints excluded)."""
    total, prev = 0.0, 0
    for rec in log.train:
        if rec.time is None:
            return None
        total += rec.time * (rec.iter - prev)
        prev = rec.iter
    return total if log.train else None


def measured_costs(sweep: Sweep, logs: dict[int, TrainingLog],
                   protocol: str) -> tuple[Optional[float], Optional[float]]:
    """Median training seconds per seed and median seconds per evaluation of this protocol."""
    train = [t for t in (train_seconds(lg) for lg in logs.values()) if t is not None]
    evals = [e.seconds for r in sweep.runs.values() for e in r.evals_for(protocol)
             if e.seconds is not None]
    return (float(np.median(train)) if train else None,
            float(np.median(evals)) if evals else None)


def _components(protocol: str, decomps: dict[str, stats.VarianceDecomposition],
                summaries: dict[str, stats.Summary],
                sweep: Sweep) -> Optional[power.NestedComponents]:
    if protocol in decomps:
        return power.components_from_decomposition(decomps[protocol])
    s = summaries.get(protocol)
    if s is None or s.n < 2:
        return None
    ck = sweep.checkpoint_eval
    ck_vals = [e.mIoU for e in ck.evals_for(protocol)] if ck is not None else []
    eval_var = float(np.var(ck_vals, ddof=1)) if len(ck_vals) >= 2 else None
    return power.components_from_spread(s.std, s.n, eval_var)


def _paired_model(protocol: str, c: power.NestedComponents, sweep: Sweep,
                  other: Optional[Sweep], rho: float) -> power.PowerModel:
    """Measured from --compare when possible (nested deltas, else one delta per seed), otherwise
    the stated rho assumption."""
    if other is not None:
        m = power.paired_model_from_tables(protocol_table(sweep.runs, protocol),
                                           protocol_table(other.runs, protocol))
        if m is not None:
            return m
        a = {s: r.selected(protocol) for s, r in sweep.runs.items()}
        b = {s: r.selected(protocol) for s, r in other.runs.items()}
        deltas = [a[s].mIoU - b[s].mIoU for s in a  # type: ignore[union-attr]
                  if s in b and a[s] is not None and b[s] is not None]
        m = power.paired_model_from_deltas(deltas, c.var_eval)
        if m is not None:
            return m
    return power.paired_model_assumed(c, rho)


def analyze_power(sweep: Sweep, other: Optional[Sweep],
                  decomps: dict[str, stats.VarianceDecomposition],
                  summaries: dict[str, stats.Summary], logs: dict[int, TrainingLog],
                  opts: power.PowerOptions) -> PowerData:
    out = PowerData(opts, {})
    for protocol in PROTOCOLS:
        c = _components(protocol, decomps, summaries, sweep)
        if c is None:
            continue
        costs = power.resolve_costs(opts.train_cost, opts.eval_cost,
                                    *measured_costs(sweep, logs, protocol))
        paired = _paired_model(protocol, c, sweep, other, opts.paired_rho)
        out.protocols[protocol] = power.analyse(c, paired, opts, costs)
    return out


# ------------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------------
def render_power(data: PowerData, figs: Figures) -> list[str]:
    """"How many seeds?": the formulas, then per protocol the design table and an MDE plot."""
    opts = data.options
    md = ["## How many seeds?", ""]
    if not data.protocols:
        return md + ["Needs at least two training seeds with results.", ""]
    k = min(r["components"].n_train for r in data.protocols.values())
    md += [POWER_INTRO.format(alpha=opts.alpha, pw=opts.power * 100, power=opts.power,
                              rel=f"{100 / math.sqrt(2 * max(k - 1, 1)):.0f} %"), ""]
    for protocol, res in data.protocols.items():
        md.extend(_protocol_md(PROTOCOL_LABEL[protocol], res, opts))
        md.append(figs.image(f"minimum detectable effect vs training seeds ({PROTOCOL_LABEL[protocol]})",
                             f"power_mde_{protocol}.svg", mde_plot(PROTOCOL_LABEL[protocol], res, opts)))
        md.append("")
    return md


def _protocol_md(name: str, res: dict[str, Any], opts: power.PowerOptions) -> list[str]:
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
              f"±{fmt(cur['ci_halfwidth'], '.3f')}.",
              f"* minimum detectable effect with the current design: unpaired "
              f"{fmt(mde_u['t'])} (normal approx. {fmt(mde_u['normal'])}; "
              f"{fmt(mde_u['t_one_eval'])} with one eval per seed), paired {fmt(mde_p['t'])} "
              f"(normal approx. {fmt(mde_p['normal'])}; {fmt(mde_p['t_one_eval'])} with one "
              f"eval per seed).", ""]
    return lines + _sample_size_md(res) + _halfwidth_md(res, opts)


def _sample_size_md(res: dict[str, Any]) -> list[str]:
    costs = res["costs"]
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
                     f"| {r['n_train_normal']} | {fmt(r['achieved_power'])} "
                     f"| {fmt_cost(r['cost_per_arm'])} |")
    return lines + [f"_{n}_" for n in costs.notes]


def _halfwidth_md(res: dict[str, Any], opts: power.PowerOptions) -> list[str]:
    costs, hw = res["costs"], res["halfwidth"]
    lines = ["", f"Cheapest design for a {hw['level'] * 100:.0f} % CI half-width ≤ "
             f"{hw['target']:g} mIoU on the run-mean (searched over 1–{opts.max_eval_seeds} eval "
             f"seeds, smallest sufficient n_t each; a few rows shown):", "",
             "| eval seeds | training seeds | cost | half-width |",
             "| ---: | ---: | ---: | ---: |"]
    best = hw["best"]
    for d in hw["by_n_eval"]:
        mark = "**" if best is not None and d.n_eval == best.n_eval else ""
        n_t = d.n_train if d.n_train is not None else f"> {power.N_TRAIN_MAX}"
        lines.append(f"| {mark}{d.n_eval}{mark} | {mark}{n_t}{mark} | {fmt_cost(d.cost)} "
                     f"| {fmt(d.value, '.3f')} |")
    if best is not None:
        lines += ["", f"**Cheapest: {best.n_train} training seeds × {best.n_eval} eval "
                  f"seed{'s' if best.n_eval > 1 else ''}** (cost {fmt_cost(best.cost)} "
                  f"{costs.unit}, half-width {best.value:.3f})."]
    lines.append("")
    return lines


def mde_plot(name: str, res: dict[str, Any], opts: power.PowerOptions) -> str:
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
