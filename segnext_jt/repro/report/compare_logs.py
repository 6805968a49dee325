#!/usr/bin/env python
"""Compare two training logs (mmseg 0.x log.json, mmseg 1.x scalars.json or ours).

    python repro/compare_logs.py A.log.json B.log.json [--window 1000] [--out diff.json]

Prints loss per iteration window and mIoU at shared evaluation iterations (differences A - B),
the largest relative lr mismatch at identical iterations (a schedule check), and whether the
configs in the logs' metadata differ, including the NMF ham_kwargs.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from segnext_jt.repro.report.log_parsing import MEMORY_KINDS
from segnext_jt.repro.report.log_parsing import LogParseError, parse_log
from segnext_jt.repro.report.logs import compare_logs, iter_rows, shared_train_rows
from segnext_jt.errors import one_line
from segnext_jt.files import atomic_file, dumps_strict


def _fmt(v: Optional[float], spec: str = ".4f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def render(result: dict[str, Any], max_rows: int = 40) -> str:
    out: list[str] = []
    a, b, s = result["a"], result["b"], result["summary"]
    out.append(f"A: {a['path']} ({a['format']}, seed {a['seed']}, {a['n_train']} train / "
               f"{a['n_val']} val records, last iter {a['last_iter']})")
    out.append(f"B: {b['path']} ({b['format']}, seed {b['seed']}, {b['n_train']} train / "
               f"{b['n_val']} val records, last iter {b['last_iter']})")
    out.append("")
    out.append(f"train loss, mean over windows of {result['window']} iterations (diff = A - B):")
    rows = iter_rows(result["loss_windows"], max_rows)
    if rows:
        out.append(f"{'iter<=':>8} {'loss A':>9} {'loss B':>9} {'diff':>9}")
        out.extend(f"{r['iter_end']:>8} {_fmt(r['loss_a'])!s:>9} {_fmt(r['loss_b'])!s:>9} "
                   f"{_fmt(r['loss_diff'], '+.4f')!s:>9}" for r in rows)
        if len(rows) < len(result["loss_windows"]):
            out.append(f"  ({len(result['loss_windows'])} windows, {len(rows)} shown)")
    else:
        out.append("  no shared windows")
    out.append(f"shared logged iterations: {s['n_shared_train_iters']}, mean loss diff "
               f"{_fmt(s['mean_loss_diff'], '+.4f')}, mean |diff| "
               f"{_fmt(s['mean_abs_loss_diff'])}, max lr diff "
               f"{_fmt(s['max_abs_lr_diff'], '.2e')} (relative {_fmt(s['max_rel_lr_diff'], '.2e')};"
               f" mmseg 0.x logs round lr to 5 decimals)")
    out.append("")
    out.append("mIoU (%) at shared evaluation iterations:")
    if result["val"]:
        out.append(f"{'iter':>8} {'mIoU A':>8} {'mIoU B':>8} {'diff':>8}")
        out.extend(f"{r['iter']:>8} {_fmt(r['mIoU_a'], '.2f'):>8} {_fmt(r['mIoU_b'], '.2f'):>8} "
                   f"{_fmt(r['mIoU_diff'], '+.2f'):>8}" for r in result["val"])
    else:
        out.append("  no shared evaluation iterations")
    out.append(_memory_line(a, b))
    out.append("")
    m = result["meta"]
    if not m["config_available"]:
        out.append("config: not present in both logs' metadata")
    elif m["config_differs"]:
        out.append("config: DIFFERS")
        out.extend("  " + line for line in m["config_diff"])
        if m["config_diff_truncated"]:
            out.append("  (diff truncated)")
    else:
        out.append("config: identical")
    out.append(f"ham settings: A {m['ham_a']}  B {m['ham_b']}"
               + ("  -> DIFFER" if m["ham_differs"] else ""))
    for w in result["warnings"]:
        out.append(f"warning: {w}")
    return "\n".join(out)


def _memory_line(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Peak `memory` of each log with what it measures; different kinds are not comparable."""
    def one(o: dict[str, Any]) -> str:
        if o.get("peak_memory_mb") is None:
            return "-"
        return f"{o['peak_memory_mb']:.0f} MB ({MEMORY_KINDS.get(o['memory_kind'], o['memory_kind'])})"
    line = f"peak memory: A {one(a)}  B {one(b)}"
    if a.get("memory_kind") and b.get("memory_kind") and a["memory_kind"] != b["memory_kind"]:
        line += "  -> different measures, not comparable"
    return line


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="first log (log.json or scalars.json)")
    ap.add_argument("b", help="second log")
    ap.add_argument("--window", type=int, default=1000,
                    help="iterations per loss-averaging window (default 1000)")
    ap.add_argument("--max-rows", type=int, default=40, help="loss rows to print (default 40)")
    ap.add_argument("--out", help="write the full comparison as JSON here")
    args = ap.parse_args(argv)
    if args.window < 1:
        ap.error(f"--window must be >= 1, got {args.window}")
    try:
        out = _check_out(args.out) if args.out else None
        logs = [parse_log(args.a), parse_log(args.b)]
        for log in logs:
            if not log.train and not log.val:
                what = "empty file" if not log.meta and not log.n_other_lines else "metadata only"
                raise LogParseError(f"{log.path}: no train or val records ({what}); nothing to compare")
        result = compare_logs(*logs, window=args.window, keep_rows=out is not None)
    except (LogParseError, FileNotFoundError, ValueError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(render(result, args.max_rows))
    if out:
        write_comparison(out, result, shared_train_rows(*logs))
    return 0


def write_comparison(path: Path, result: dict[str, Any], rows: Iterable[dict[str, Any]]) -> None:
    """`result` as strict JSON with `rows` as its "loss_exact" list, written row by row (atomically):
    two logs of millions of lines share millions of rows, which need not all be in memory."""
    head = dumps_strict({k: v for k, v in result.items() if k != "loss_exact"}, indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w") as f:
        f.write(head[:-2] + ',\n "loss_exact": [')  # head ends with "\n}"
        for i, row in enumerate(rows):
            f.write(("," if i else "") + "\n  " + dumps_strict(row))
        f.write("\n ]\n}\n")


def _check_out(path: str) -> Path:
    """--out must be writable as a file: checked before parsing the logs."""
    p = Path(path).absolute()
    if p.is_dir():
        raise ValueError(f"--out {path}: is a directory; expected a file path")
    anc = p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise ValueError(f"--out {path}: {anc} is a file, not a directory")
    return p


if __name__ == "__main__":
    sys.exit(main())
