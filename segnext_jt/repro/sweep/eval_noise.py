#!/usr/bin/env python
"""Eval-noise protocols compared on the same checkpoints: one NMF draw per view (the released
protocol), K-draw averaging (--nmf-draws K) and frozen bases (tools/freeze_nmf_bases.py).

    python repro/eval_noise.py --config configs/demo_mnist.yaml \\
        --checkpoints work_dirs/example_sweep/seed_*/iter_500.npz --eval-seeds 0..7 \\
        --draws 1,2,4,8 --frozen --out docs/example_report/eval_noise

For every checkpoint and eval seed e, each protocol is evaluated single-scale: K draws under NMF
seed e, and (with --frozen) the checkpoint with bases frozen under seed e. Writes OUT.json (every
evaluation) and OUT.md (the table):

* eval std: the standard deviation of mIoU over eval seeds for one checkpoint, pooled over the
  checkpoints (root mean of the per-checkpoint variances). For frozen bases it is the spread over
  the *freezing* seed: one frozen checkpoint evaluates deterministically, but which draw was frozen
  still moves its mIoU by this much.
* shift: mean mIoU minus the single-draw mean, paired by checkpoint, with a 95% t interval over
  checkpoints: whether the protocol estimates a different quantity.
* cost: median seconds per evaluation (the median ignores the first evaluations' kernel
  compilation), relative to the single-draw protocol.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np


from segnext_jt.io.native import FROZEN_BASES_KEY
SINGLE = "1 draw (released)"


def protocol_name(draws: int) -> str:
    return SINGLE if draws == 1 else f"mean of {draws} draws"


def protocol_rows(runs: list[dict]) -> list[dict]:
    """`runs`: {"protocol", "checkpoint", "eval_seed", "mIoU", "seconds"} per evaluation -> one row
    per protocol (in first-seen order) with the statistics described in the module docstring."""
    from scipy import stats as sps
    protocols = list(dict.fromkeys(r["protocol"] for r in runs))
    by = {(p, c): [r for r in runs if r["protocol"] == p and r["checkpoint"] == c]
          for p in protocols for c in {r["checkpoint"] for r in runs}}
    checkpoints = sorted({r["checkpoint"] for r in runs})
    base_means = {c: float(np.mean([r["mIoU"] for r in by[(SINGLE, c)]])) for c in checkpoints
                  if by.get((SINGLE, c))}
    base_seconds = np.median([r["seconds"] for r in runs if r["protocol"] == SINGLE]) if base_means else math.nan
    rows = []
    for p in protocols:
        per_ckpt = [np.array([r["mIoU"] for r in by[(p, c)]]) for c in checkpoints if by[(p, c)]]
        variances = [v.var(ddof=1) for v in per_ckpt if len(v) > 1]
        shifts = [float(v.mean()) - base_means[c] for c, v in zip(checkpoints, per_ckpt) if c in base_means]
        row = {"protocol": p, "checkpoints": len(per_ckpt), "seeds_per_checkpoint": int(min(len(v) for v in per_ckpt)),
               "mean": float(np.mean(np.concatenate(per_ckpt))),
               "eval_std": float(math.sqrt(np.mean(variances))) if variances else math.nan,
               "shift": float(np.mean(shifts)) if shifts else math.nan, "shift_ci": None,
               "seconds": float(np.median([r["seconds"] for r in runs if r["protocol"] == p]))}
        if p != SINGLE and len(shifts) > 1:
            half = sps.t.ppf(0.975, len(shifts) - 1) * np.std(shifts, ddof=1) / math.sqrt(len(shifts))
            row["shift_ci"] = [row["shift"] - half, row["shift"] + half]
        row["relative_cost"] = row["seconds"] / base_seconds if base_seconds == base_seconds else math.nan
        rows.append(row)
    return rows


def render_table(rows: list[dict]) -> str:
    def f(v, spec=".2f"):
        return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)

    out = ["| protocol | checkpoints × seeds | mean mIoU | eval std | shift vs 1 draw (95% CI) | s / eval | cost |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["shift_ci"]
        shift = "0 (reference)" if r["protocol"] == SINGLE else (
            f"{f(r['shift'], '+.3f')}" + (f" ({f(ci[0], '+.3f')} … {f(ci[1], '+.3f')})" if ci else ""))
        out.append(f"| {r['protocol']} | {r['checkpoints']} × {r['seeds_per_checkpoint']} | {f(r['mean'])} | "
                   f"{f(r['eval_std'], '.3f')} | {shift} | {f(r['seconds'])} | {f(r['relative_cost'], '.2f')}× |")
    return "\n".join(out)


def _evaluate(cfg, model, checkpoint: str) -> tuple[float, float]:
    from segnext_jt.evaluation.run import run_evaluation
    summary = run_evaluation(cfg, checkpoint, progress=False, model=model)
    return summary["mIoU"], summary["seconds"]


def measure(config: str, checkpoints: list[str], eval_seeds: list[int], draws: list[int], frozen: bool,
            overrides: list[str], log=print) -> list[dict]:
    from segnext_jt.config import load_config
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    from segnext_jt.models.ham_head import frozen_nmf_bases
    runs = []
    for ckpt in checkpoints:
        cfg = load_config(config, overrides)
        model = build_segmentor(cfg)
        load_checkpoint(model, ckpt, strict=True, logger=lambda *a: None)
        frozen_model = None
        if frozen:
            frozen_cfg = load_config(config, overrides + ["model.decode_head.ham.rand_init=false"])
            frozen_model = build_segmentor(frozen_cfg)
            load_checkpoint(frozen_model, ckpt, strict=False, logger=lambda *a: None)
        for seed in eval_seeds:
            for k in draws:
                cfg = load_config(config, overrides + [f"eval.seed={seed}", f"eval.nmf_draws={k}"])
                miou, secs = _evaluate(cfg, model, ckpt)
                runs.append({"protocol": protocol_name(k), "checkpoint": ckpt, "eval_seed": seed, "mIoU": miou,
                             "seconds": secs})
                log(f"{ckpt} seed {seed} {protocol_name(k)}: mIoU {miou:.2f} ({secs:.1f} s)")
            if frozen_model is not None:
                head = frozen_cfg.model.decode_head
                frozen_model.load_state_dict({FROZEN_BASES_KEY: frozen_nmf_bases(seed, head.ham_channels, head.ham.md_r)})
                miou, secs = _evaluate(frozen_cfg, frozen_model, ckpt)
                runs.append({"protocol": "frozen bases", "checkpoint": ckpt, "eval_seed": seed, "mIoU": miou,
                             "seconds": secs})
                log(f"{ckpt} seed {seed} frozen bases: mIoU {miou:.2f} ({secs:.1f} s)")
    return runs


def _parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--eval-seeds", default="0..7", help="NMF / freezing seeds (default 0..7)")
    p.add_argument("--draws", default="1,2,4,8", help="K values to compare (1 is always included)")
    p.add_argument("--frozen", action="store_true", help="also evaluate frozen bases (one per eval seed)")
    p.add_argument("--out", required=True, help="output prefix: writes OUT.json and OUT.md")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def _run(args) -> int:
    from segnext_jt.repro.sweep.seed_sweep import parse_seed_list
    from segnext_jt.cli import UsageError, check_output_file
    from segnext_jt.io.reading import ensure_file
    from segnext_jt.files import write_json_atomic, write_text_atomic
    seeds = parse_seed_list(args.eval_seeds)
    try:
        draws = sorted({1} | {int(k) for k in args.draws.split(",")})
    except ValueError:
        raise UsageError(f"--draws must be a comma-separated list of integers, got {args.draws!r}") from None
    if min(draws) < 1 or len(seeds) < 2:
        raise UsageError("--draws values must be >= 1 and --eval-seeds needs at least 2 seeds")
    out_json = check_output_file(args.out + ".json", "--out")
    out_md = check_output_file(args.out + ".md", "--out")
    for ckpt in args.checkpoints:
        ensure_file(ckpt)
    runs = measure(args.config, args.checkpoints, seeds, draws, args.frozen, list(args.cfg_options))
    rows = protocol_rows(runs)
    write_json_atomic(out_json, {"config": args.config, "checkpoints": args.checkpoints, "eval_seeds": seeds,
                                 "draws": draws, "frozen": args.frozen, "rows": rows, "runs": runs})
    table = render_table(rows)
    write_text_atomic(out_md, f"Eval-noise protocols on {len(args.checkpoints)} checkpoints of {args.config}, "
                              f"eval seeds {seeds[0]}..{seeds[-1]}, single scale (repro/eval_noise.py).\n\n"
                              + table + "\n")
    print(table)
    return 0


def main(argv=None) -> int:
    args = _parse_args(argv)
    from segnext_jt.cli import run_checkpoint_tool
    return run_checkpoint_tool(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
