"""ReportData -> report.md lines, report.json and SVG figures: one renderer per section.

Nothing here writes a file: ``render(data)`` returns the Markdown lines, the JSON object and the
figures (name, SVG text) in the order report.md shows them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from segnext_jt.repro.report import figures as report_plots

from segnext_jt.repro.report import stats
from segnext_jt.repro.report.analysis import LOSS_FROM_LOG, ReportData
from segnext_jt.repro.report.platforms import render_platforms_header, render_platforms_section
from segnext_jt.repro.report.power_section import render_power
from segnext_jt.repro.report.text import PROTOCOL_LABEL, Figures, fmt, md_code, md_text
from segnext_jt.repro.sweep.results import PROTOCOLS, SELECTION_RULE

SPREAD_INTRO = (
    "*std* is the sample standard deviation (n−1): how much one training run differs from "
    "another. *IQM* is the interquartile mean (sort, drop the lowest and highest quarter, "
    "floor(n/4) values each, average the rest), a mean that ignores outlier seeds. The 95 % "
    "confidence intervals are for the *mean* over seeds: the bootstrap one (BCa, fixed resampling "
    "seed, needs n ≥ 3) is too narrow for a handful of seeds, the Student-t one is the safer "
    "reading.")
POSITION_INTRO = (
    "The percentile says what fraction of our seeds scored below the reported number (ties count "
    "half). A reported value near the top of our seed distribution suggests it was a good seed "
    "rather than the typical outcome; a value outside our range points to a real difference "
    "between the setups.")
VARIANCE_INTRO = (
    "Each checkpoint was evaluated with several eval seeds (different random NMF bases in the "
    "Hamburger head). The *eval-seed* variance is the part you would see re-evaluating the same "
    "checkpoint with new NMF bases; the *train-seed* variance is what remains between checkpoints "
    "once that noise is averaged out (one-way random-effects ANOVA, method of moments, clamped at "
    "0). The ICC is the train-seed share of the variance of a single evaluation.")
CHECKPOINT_INTRO = (
    "The same checkpoint evaluated with different eval seeds: nothing but the random NMF bases "
    "changes, so this spread is pure evaluation noise. If it is comparable to the spread over "
    "training seeds, part of the published seed range is evaluation noise rather than training "
    "variance.")
COMPARISON_INTRO = (
    "Both sweeps are matched seed by seed (same training seed, so the same initialisation and "
    "data order where the code paths agree) and the difference of each pair is analysed; pairing "
    "removes the seed-to-seed variation shared by both. A confidence interval of the mean "
    "difference that excludes 0 indicates a systematic difference.")


@dataclass
class Rendered:
    md: list[str]
    data: dict[str, Any]
    figures: Figures


def render(d: ReportData) -> Rendered:
    figs = Figures()
    sections: list[Callable[[ReportData, Figures], list[str]]] = [
        render_header, render_runs, render_per_seed, render_spread, render_positions,
        render_variance, lambda d, f: render_platforms_section(d.platforms), render_all_ss, render_checkpoint_eval, render_curves,
        render_comparison, lambda d, f: render_power(d.power, f), render_per_class,
        render_warnings]
    md = [line for section in sections for line in section(d, figs)]
    return Rendered(md, render_json(d, figs.names), figs)


def render_json(d: ReportData, plot_names: list[str]) -> dict[str, Any]:
    """report.json (before json_safe); key order as the sections appear."""
    out: dict[str, Any] = {
        "sweep_dir": d.sweep_dir, "plan": d.plan, "reference": d.reference.to_json(),
        **({"platforms": d.platforms.to_json()} if d.platforms else {}),
        "selection_rule": SELECTION_RULE, "runs": d.runs.to_json(),
        "per_seed": [r.to_json() for r in d.per_seed], "summary": d.spread.summaries,
        "reference_position": d.positions,
        "variance_decomposition": {m: v.result for m, v in d.variance.items()},
        "checkpoint_eval": d.checkpoint_eval.to_json() if d.checkpoint_eval else None,
        "learning_curves": d.curves.to_json(),
        "comparison": d.comparison.to_json() if d.comparison else None,
        "power": d.power.to_json()}
    if d.per_class_sd is not None:
        out["per_class_iou_sd_top10"] = d.per_class_sd
    out["warnings"] = d.warnings
    out["plots"] = plot_names
    return out


# ------------------------------------------------------------------------------------------------
# shared pieces
# ------------------------------------------------------------------------------------------------
def summary_table(rows: list[tuple[str, stats.Summary]]) -> list[str]:
    out = ["| values | n | mean | std | median | IQM | min | max | range | 95% CI (bootstrap) "
           "| 95% CI (t) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for name, s in rows:
        out.append(f"| {name} | {s.n} | {fmt(s.mean)} | {fmt(s.std, '.3f')} | {fmt(s.median)} "
                   f"| {fmt(s.iqm)} | {fmt(s.min)} | {fmt(s.max)} | {fmt(s.range)} "
                   f"| {fmt(s.ci_low)} – {fmt(s.ci_high)} | {fmt(s.t_ci_low)} – "
                   f"{fmt(s.t_ci_high)} |")
    return out


def other_text(other: dict[str, Any]) -> str:
    """'ss 41.10, ms+flip 42.20 (source)' for one of the config's other published values."""
    values = [f"{PROTOCOL_LABEL[m]} {other[m]:.2f}" for m in PROTOCOLS if other.get(m) is not None]
    return ", ".join(values) + f" ({md_text(other['source'])})"


def position_lines(name: str, pos: stats.ReferencePosition) -> list[str]:
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
                     f"{rr[0]:.2f}–{rr[1]:.2f} ({pos.n_inside_reference_range} of {pos.n} "
                     f"values fall inside it).")
    return lines


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------
def render_header(d: ReportData, figs: Figures) -> list[str]:
    plan, ref = d.plan or {}, d.reference
    md = ["# SegNeXt seed-sweep report", "", f"* sweep directory: {md_code(d.sweep_dir)}"]
    if plan.get("config"):
        md.append(f"* config: {md_code(plan['config'])}")
    if plan.get("created"):
        md.append(f"* sweep created: {md_text(plan['created'])}")
    if ref.ss is None and ref.msflip is None:
        md.append(f"* reference: none ({md_text(ref.source)})")
    else:
        md.append(f"* reference: ss {fmt(ref.ss)}"
                  + (f", reported seed range {ref.ss_range[0]:.2f}–{ref.ss_range[1]:.2f}"
                     if ref.ss_range else "")
                  + (f", ms+flip {ref.msflip:.2f}" if ref.msflip is not None else "")
                  + f" ({md_text(ref.source)})")
    md += [f"* other published value: {other_text(o)}" for o in ref.others]
    return md + [f"* {SELECTION_RULE}", ""] + render_platforms_header(d.platforms)


def render_runs(d: ReportData, figs: Figures) -> list[str]:
    r = d.runs
    md = ["## Runs", "",
          f"* planned training seeds: {r.planned or 'not stated (no sweep.json seeds)'}",
          f"* finished (result.json present): {r.finished or 'none'}",
          f"* **missing** (planned or started, no result.json yet): {r.missing or 'none'}",
          f"* finished but not evaluated: {r.not_evaluated or 'none'}"]
    if r.checkpoint_eval is not None:
        md.append(f"* checkpoint-only evaluation present: {md_code(r.checkpoint_eval)}")
    return md + [""]


def render_per_seed(d: ReportData, figs: Figures) -> list[str]:
    md = ["## Per-seed results", ""]
    if not d.per_seed:
        return md + ["No finished training seeds.", ""]
    md += ["One row per training seed. mIoU, aAcc and mAcc are in percent (aAcc/mAcc from the "
           "single-scale evaluation); *mean/k* is the ss mIoU averaged over the k eval seeds of "
           "that checkpoint, which removes most of the evaluation noise.", "",
           "| seed | ss mIoU | ms+flip mIoU | aAcc | mAcc | final loss | ss mean/k | "
           "eval seed used (ss / ms+flip) |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in d.per_seed:
        ss, ms = r.protocols["ss"].selected, r.protocols["msflip"].selected
        used = sorted({str(e.eval_seed) for e in (ss, ms) if e is not None})
        used_txt = " / ".join(str(e.eval_seed) if e is not None else "–" for e in (ss, ms)) \
            if len(used) > 1 else (used[0] if used else "–")
        k = r.protocols["ss"].n_eval_seeds
        mean_k = fmt(r.protocols["ss"].mean_over_eval_seeds) + f" /{k}" if k else "–"
        md.append(f"| {r.seed} | {fmt(ss and ss.mIoU)} | {fmt(ms and ms.mIoU)} "
                  f"| {fmt(ss and ss.aAcc)} | {fmt(ss and ss.mAcc)} "
                  f"| {fmt(r.final_loss, '.4f')} | {mean_k} | {used_txt} |")
    md += [f"| {seed} | missing | | | | | | |" for seed in d.missing]
    if any(r.final_loss_source == LOSS_FROM_LOG for r in d.per_seed):
        md += ["", "Final loss: from result.json, else the last train line of the seed's log "
               "(a 50-iteration average in mmseg-format logs)."]
    return md + [""]


def render_spread(d: ReportData, figs: Figures) -> list[str]:
    sp = d.spread
    if not sp.rows:
        return []
    md = ["## Spread over training seeds", "", SPREAD_INTRO, ""] + summary_table(sp.rows)
    md += [f"\n_{name}: {note}_" for name, s in sp.rows for note in s.notes]
    md.append("")
    for protocol in PROTOCOLS:
        if protocol in sp.summaries:
            svg = report_plots.seed_strip(protocol, sp.values[protocol], sp.summaries[protocol], d.reference)
            md += [figs.image(f"{PROTOCOL_LABEL[protocol]} per-seed mIoU", f"strip_{protocol}.svg", svg), ""]
    legend = "Dots are training seeds, the bar is their mean with the 95 % t-interval"
    if d.reference.ss is not None or d.reference.msflip is not None:
        legend += (", the dashed line is the reported number" +
                   (" and the shaded band the reported seed range" if d.reference.ss_range else ""))
    return md + [legend + ".", ""]


def render_positions(d: ReportData, figs: Figures) -> list[str]:
    if not d.positions:
        return []
    md = ["## Where the reported number falls", "", POSITION_INTRO, ""]
    for protocol, pos in d.positions.items():
        md.extend(position_lines(PROTOCOL_LABEL[protocol], pos))
        values = list(d.spread.values[protocol].values())
        for other in d.reference.others:
            if other.get(protocol) is not None:
                p = stats.reference_position(values, other[protocol])
                md.append(f"  Other published value {other[protocol]:.2f} ({md_text(other['source'])}): "
                          f"percentile {p.percentile:.0f}, our mean minus it {p.delta_mean:+.2f}.")
    return md + [""]


def render_variance(d: ReportData, figs: Figures) -> list[str]:
    if not d.variance:
        return []
    md = ["## Training seed vs evaluation seed", "", VARIANCE_INTRO, "",
          "| mode | train seeds | evals | eval-seed SD | train-seed SD | train-seed var (raw) "
          "| eval share | ICC | F | p |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for protocol, dec in d.variance.items():
        v = dec.result
        md.append(f"| {PROTOCOL_LABEL[protocol]} | {v.n_groups} | {v.n_total} | {v.sd_within:.3f} "
                  f"| {v.sd_between:.3f} | {v.var_between_raw:.4f} "
                  f"| {fmt(v.share_within * 100, '.0f')} % | {fmt(v.icc, '.2f')} "
                  f"| {fmt(v.f_stat, '.2f')} | {fmt(v.p_value, '.3g')} |")
        md += [f"\n_{PROTOCOL_LABEL[protocol]}: {note}_" for note in v.notes]
    md.append("")
    for protocol, dec in d.variance.items():
        svg = report_plots.eval_spread(protocol, dec, d.reference)
        md += [figs.image(f"eval-seed spread per checkpoint ({PROTOCOL_LABEL[protocol]})",
                          f"eval_spread_{protocol}.svg", svg), ""]
    return md


def render_all_ss(d: ReportData, figs: Figures) -> list[str]:
    if len(d.all_ss) < 3:
        return []
    svg = report_plots.all_ss_histogram(d.all_ss, d.reference)
    return [figs.image("histogram of all single-scale evaluations", "hist_ss.svg", svg), ""]


def render_checkpoint_eval(d: ReportData, figs: Figures) -> list[str]:
    ck = d.checkpoint_eval
    if ck is None:
        return []
    md = ["## Evaluation-only spread (one checkpoint, several eval seeds)", "", CHECKPOINT_INTRO,
          "", f"checkpoint: {md_code(ck.checkpoint)}", ""]
    if not ck.protocols:
        return md + ["No evaluations recorded yet.", ""]
    text: list[str] = []
    images: list[str] = []
    for protocol, m in ck.protocols.items():
        name = PROTOCOL_LABEL[protocol]
        if m.position is not None:
            text.extend(position_lines(name, m.position))
        ts = m.train_summary
        if ts is not None and ts.n >= 2 and m.summary.n >= 2:
            text.append(f"* {name}: SD over eval seeds of this checkpoint {m.summary.std:.3f} vs "
                        f"SD over training seeds {ts.std:.3f} (one evaluation each).")
        images.append(figs.image(f"checkpoint eval-seed spread ({name})",
                                 f"checkpoint_eval_{protocol}.svg",
                                 report_plots.checkpoint_strip(protocol, m, d.reference)))
        if len(m.evals) >= 5:
            images.append(figs.image(f"checkpoint eval-seed histogram ({name})",
                                     f"checkpoint_eval_hist_{protocol}.svg",
                                     report_plots.checkpoint_histogram(protocol, m, d.reference)))
    rows = [(f"{PROTOCOL_LABEL[protocol]} mIoU over eval seeds", m.summary) for protocol, m in ck.protocols.items()]
    return md + summary_table(rows) + [""] + text + [""] + images + [""]


def render_curves(d: ReportData, figs: Figures) -> list[str]:
    c = d.curves
    if c.window is None:
        return []
    md = ["## Learning curves", "",
          f"Training loss averaged over windows of {c.window} iterations, and the mIoU of the "
          "periodic evaluations, for every seed with a readable train_log"
          + ("; the official log is the thick dashed line." if c.official else "."), ""]
    loss_svg, miou_svg = report_plots.learning_curves(c)
    if loss_svg is not None:
        md.append(figs.image("loss curves", "loss_curves.svg", loss_svg))
    if miou_svg is not None:
        md.append(figs.image("mIoU curves", "miou_curves.svg", miou_svg))
    return md + [""]


def render_comparison(d: ReportData, figs: Figures) -> list[str]:
    c = d.comparison
    if c is None:
        return []
    md = [f"## Paired comparison: {md_text(c.label)} − {md_text(c.other_label)}", "", COMPARISON_INTRO, "",
          "| mode | common seeds | mean Δ | SD Δ | 95% CI (t) | 95% CI (bootstrap) | "
          "paired t p | Wilcoxon p |",
          "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |"]
    notes: list[str] = []
    images: list[str] = []
    for protocol, pc in c.protocols.items():
        name = PROTOCOL_LABEL[protocol]
        md.append(f"| {name} | {pc.n} | {fmt(pc.mean_delta, '+.2f')} "
                  f"| {fmt(pc.std_delta, '.3f')} | {fmt(pc.t_ci_low, '+.2f')} – "
                  f"{fmt(pc.t_ci_high, '+.2f')} | {fmt(pc.boot_ci_low, '+.2f')} – "
                  f"{fmt(pc.boot_ci_high, '+.2f')} | {fmt(pc.p_ttest, '.3g')} "
                  f"| {fmt(pc.p_wilcoxon, '.3g')} |")
        notes += [f"{name}: {n}" for n in pc.notes]
        if pc.only_in_a or pc.only_in_b:
            notes.append(f"{name}: seeds only in {md_text(c.label)}: {pc.only_in_a}; only in "
                         f"{md_text(c.other_label)}: {pc.only_in_b}")
        if pc.n:
            svg = report_plots.compare_strip(protocol, pc, c.label, c.other_label, d.reference)
            images.append(figs.image(f"comparison ({name})", f"compare_{protocol}.svg", svg))
    return md + [""] + [f"* {n}" for n in notes] + [""] + images + [""]


def render_per_class(d: ReportData, figs: Figures) -> list[str]:
    if d.per_class_sd is None:
        return []
    md = ["## Most seed-sensitive classes (ss IoU)", "",
          "Classes whose IoU varies most between training seeds (SD over seeds); rare classes "
          "usually dominate the seed spread of mIoU.", "",
          "| class | mean IoU | SD over seeds |", "| :--- | ---: | ---: |"]
    md += [f"| {c['class_index']}" + (f" {md_text(c['class'])}" if c.get("class") is not None else "")
           + f" | {c['mean']:.2f} | {c['sd']:.2f} |" for c in d.per_class_sd]
    return md + [""]


def render_warnings(d: ReportData, figs: Figures) -> list[str]:
    if not d.warnings:
        return []
    return ["## Warnings", ""] + [f"* {md_text(w, 2000)}" for w in d.warnings] + [""]
