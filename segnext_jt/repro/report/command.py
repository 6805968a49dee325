#!/usr/bin/env python
"""Seed-sweep report: per-seed table, spread statistics, where the reported number falls, the
train-seed / eval-seed variance split, learning curves and an optional paired comparison.

    python repro/report.py DIR [--reference 50.99] [--reference-range 49.60,51.0]
                               [--reference-msflip 52.10] [--reference-from CONFIG.yaml]
                               [--official OFFICIAL.log.json | zoo:segnext_l]
                               [--compare OTHER_DIR] [--out OUT_DIR]
                               [--power-deltas 0.5,1.0] [--target-halfwidth 0.25]
                               [--train-cost 1.0 --eval-cost 0.02] [--paired-rho 0]

Writes report.md, report.json and SVG plots to OUT_DIR (default DIR).

The reference numbers come from the command line, else a config's ``reference:`` section
(--reference-from, else the sweep's own config), else the mmseg README values for the model size
in the config name (segnext_jt/repro/report/reference.py). Input layout: segnext_jt/repro/report/inputs.py; result.json
schema: segnext_jt/repro/sweep/results.py (RESULT_SCHEMA). The pieces: inputs (read the sweep) ->
analysis.analyze (pure) -> render (Markdown, JSON, figures) -> files, here.
"""
from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from segnext_jt.repro.report import power
from segnext_jt.repro.report.inputs import ReportInputError, Sweep, load_sweep, load_train_logs
from segnext_jt.repro.report.log_parsing import LogParseError, TrainingLog
from segnext_jt.repro.report.analysis import analyze
from segnext_jt.repro.report.official import load_official
from segnext_jt.repro.report.reference import Reference, resolve_reference
from segnext_jt.repro.report.render import render
from segnext_jt.cli import check_output_dir, run_tool
from segnext_jt.errors import ConfigError
from segnext_jt.interrupts import install_signal_handlers
from segnext_jt.files import write_json_atomic, write_text_atomic


@dataclass
class Report:
    md: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, SVG text)


def build_report(sweep: Sweep, out_dir: Path, reference: Reference,
                 official: Optional[TrainingLog] = None, other: Optional[Sweep] = None,
                 label: str = "this sweep", other_label: str = "other sweep",
                 power_options: Optional[power.PowerOptions] = None) -> Report:
    """Read the sweep's train logs, analyse and render, in memory: `write_report` writes the files
    (so an interrupted analysis leaves the previous report, or nothing, in out_dir)."""
    data = analyze(sweep, reference, load_train_logs(sweep), official, other, label,
                   other_label, power_options)
    out = render(data)
    return Report(md=out.md, data=out.data, plots=out.figures.names, warnings=data.warnings,
                  figures=list(out.figures.items))


def write_report(rep: Report, out: Path) -> None:
    """report.md, report.json and the SVGs, each atomically, with SIGINT/SIGTERM held back until
    all are written: an interrupt leaves the previous report or the complete new one, never a mix
    (the held signal is delivered, and handled, once the files are in place)."""
    # No timestamp: the same inputs give byte-identical outputs (the bootstrap seed is fixed).
    rep.data["generated_by"] = "repro/report.py"
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, svg in rep.figures:
            write_text_atomic(out / name, svg)
        write_json_atomic(out / "report.json", rep.data)
        write_text_atomic(out / "report.md", "\n".join(rep.md).rstrip() + "\n")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
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


def _add_reference_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("reported numbers (default: the config's reference section, else "
                              "the mmseg README values for the model size in the config name)")
    g.add_argument("--reference", type=float, default=None,
                   help="reported ss mIoU (default: the sweep config's reference.ss, else the "
                        "mmseg README value for the model size, SegNeXt-L 50.99 if unknown)")
    g.add_argument("--reference-range", type=_parse_range, default=None,
                   help="reported seed range LO,HI (default: reference.ss_range, else "
                        "49.60,51.0 for SegNeXt-L)")
    g.add_argument("--reference-msflip", type=float, default=None,
                   help="reported ms+flip mIoU (default: reference.msflip, else the mmseg "
                        "README value, 52.10 for L)")
    g.add_argument("--reference-from", type=Path, default=None, metavar="CONFIG.yaml",
                   help="take the reference values from this config's reference section "
                        "instead of the sweep's own config (command-line values still win)")


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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Seed-sweep report (report.md, report.json, SVGs).")
    ap.add_argument("dir", help="sweep directory (sweep.json, seed_<k>/result.json, "
                                "checkpoint_eval/result.json)")
    _add_reference_args(ap)
    ap.add_argument("--official", help="official training log (log.json or scalars.json) to "
                                       "overlay on the learning curves, or zoo:segnext_{t,s,b,l} for the "
                                       "log mmseg released with that ADE20K model (downloaded once into "
                                       "the weights cache; offline, the error says where to put it)")
    ap.add_argument("--compare", help="another sweep directory for a paired comparison")
    ap.add_argument("--label", default=None, help="name of this sweep in the comparison")
    ap.add_argument("--compare-label", default=None, help="name of the other sweep")
    ap.add_argument("--out", help="output directory (default: DIR)")
    _add_power_args(ap)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        power_options = _power_options(args)
    except ValueError as exc:
        ap.error(str(exc))
    install_signal_handlers()  # SIGINT/SIGTERM: one line, exit 130/143, no partial report
    return run_tool(lambda: _run(args, power_options),
                    usage_errors=(ReportInputError, LogParseError, ConfigError, FileNotFoundError),
                    interrupted_message="no report written (a previous one is left as it was)")


def _run(args: argparse.Namespace, power_options: power.PowerOptions) -> int:
    root = Path(args.dir)
    out = Path(check_output_dir(args.out, "--out")) if args.out else root
    sweep = load_sweep(root)
    other = load_sweep(Path(args.compare)) if args.compare else None
    official = load_official(args.official)
    reference = resolve_reference(sweep, args.reference, args.reference_range,
                                  args.reference_msflip, args.reference_from)
    rep = build_report(sweep, out, reference, official, other,
                       label=args.label or root.resolve().name,
                       other_label=args.compare_label or
                       (Path(args.compare).resolve().name if args.compare else "other"),
                       power_options=power_options)
    write_report(rep, out)
    print(f"wrote {out / 'report.md'}, {out / 'report.json'} and {len(rep.plots)} plot(s)")
    for w in rep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
