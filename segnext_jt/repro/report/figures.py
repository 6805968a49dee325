"""The report's SVG figures, built with segnext_jt/repro/report/svg.py from segnext_jt/repro/report/analysis.py's data.
Each function returns SVG text; naming and writing them is the renderer's job."""
from __future__ import annotations

from typing import Optional, Sequence

from segnext_jt.repro.report import svg as plots

from segnext_jt.repro.report import stats
from segnext_jt.repro.report.logs import binned_mean
from segnext_jt.repro.report.analysis import CheckpointProtocol, Curves, Decomposition
from segnext_jt.repro.report.reference import Reference
from segnext_jt.repro.report.text import PROTOCOL_LABEL, fmt

REPORTED = "reported"
OFFICIAL_STYLE = {"color": "#222222", "dashed": True, "width": 3.0}


def _summary_strip(name: str, values: Sequence[float], labels: Sequence[str],
                   s: stats.Summary, extra: str, title: str, reference: Reference, protocol: str,
                   **kw) -> str:
    """One strip-plot column with the mean and its t-interval, against the reported number."""
    return plots.strip_plot(
        [plots.StripGroup(name, values, labels, ci=(s.t_ci_low, s.t_ci_high),
                          extra_lines=[extra])],
        title=title, ylabel="mIoU (%)", reference=reference.for_protocol(protocol),
        reference_range=reference.range_for(protocol), reference_label=REPORTED, **kw)


def seed_strip(protocol: str, values: dict[int, float], s: stats.Summary,
               reference: Reference) -> str:
    """The selected mIoU of every training seed."""
    return _summary_strip(PROTOCOL_LABEL[protocol], list(values.values()), [str(k) for k in values], s,
                          f"n={s.n}, mean {s.mean:.2f}",
                          f"{PROTOCOL_LABEL[protocol]} mIoU per training seed", reference, protocol)


def checkpoint_strip(protocol: str, m: CheckpointProtocol, reference: Reference) -> str:
    """One checkpoint, one dot per eval seed."""
    s = m.summary
    return _summary_strip(PROTOCOL_LABEL[protocol], m.values, [str(e.eval_seed) for e in m.evals], s,
                          f"n={s.n}, sd {fmt(s.std, '.3f')}",
                          f"checkpoint {PROTOCOL_LABEL[protocol]} mIoU per eval seed", reference, protocol,
                          point_label="eval seed")


def checkpoint_histogram(protocol: str, m: CheckpointProtocol, reference: Reference) -> str:
    return plots.histogram(m.values, f"checkpoint {PROTOCOL_LABEL[protocol]} mIoU over eval seeds",
                           "mIoU (%)", reference=reference.for_protocol(protocol),
                           reference_label=REPORTED)


def eval_spread(protocol: str, d: Decomposition, reference: Reference) -> str:
    """Every evaluation, grouped by training seed."""
    groups = [plots.StripGroup(f"seed {s}", list(v.values()), [str(e) for e in v],
                               color=plots.PALETTE[i % len(plots.PALETTE)])
              for i, (s, v) in enumerate(d.table.items())]
    return plots.strip_plot(groups, f"{PROTOCOL_LABEL[protocol]} mIoU per eval seed, by training seed",
                            "mIoU (%)", reference=reference.for_protocol(protocol),
                            reference_label=REPORTED, point_label="eval seed",
                            width=max(560, 120 + 90 * len(groups)))


def all_ss_histogram(values: list[float], reference: Reference) -> str:
    return plots.histogram(values, "single-scale mIoU, every (training seed, eval seed) pair",
                           "mIoU (%)", reference=reference.ss,
                           reference_range=reference.ss_range, reference_label=REPORTED)


def compare_strip(protocol: str, pc: stats.PairedComparison, label: str, other_label: str,
                  reference: Reference) -> str:
    return plots.strip_plot(
        [plots.StripGroup(label, pc.a, pc.seeds), plots.StripGroup(other_label, pc.b, pc.seeds)],
        f"{PROTOCOL_LABEL[protocol]} mIoU on common seeds", "mIoU (%)",
        reference=reference.for_protocol(protocol), reference_label=REPORTED)


def learning_curves(c: Curves) -> tuple[Optional[str], Optional[str]]:
    """(loss plot, validation mIoU plot); None where there is nothing to draw."""
    assert c.window is not None
    loss, miou = [], []
    named = [(f"seed {s}", lg, {"color": plots.PALETTE[i % len(plots.PALETTE)]})
             for i, (s, lg) in enumerate(c.logs.items())]
    if c.official is not None:
        named.append(("official", c.official, OFFICIAL_STYLE))
    for name, lg, style in named:
        x, y = binned_mean(*lg.series("loss"), c.window)
        loss.append(plots.Series(name, x, y, **style))
        vx, vy = lg.series("mIoU")
        if vx.size:
            miou.append(plots.Series(name, vx, vy, markers=True, **style))
    xlim = (0.0, float(c.max_iter)) if c.max_iter > 0 else None  # iterations start at 0
    loss_svg = (plots.line_plot(loss, "training loss", "iteration", "loss", xlim=xlim)
                if any(len(s.x) for s in loss) else None)
    miou_svg = (plots.line_plot(miou, "validation mIoU during training", "iteration",
                                "mIoU (%)", xlim=xlim) if miou else None)
    return loss_svg, miou_svg
