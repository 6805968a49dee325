"""Re-run one finished seed of a sweep on this machine and compare it with the stored one.

    python repro/replicate.py SWEEP_DIR --seed K [--work-dir NEW_DIR] [--device cpu]

The seed is trained and evaluated again by the sweep itself (a one-seed sweep in NEW_DIR, default
SWEEP_DIR/replicate_seed_K, resumable like any sweep) with what the stored run recorded: the config
and --cfg-options of its result.json (else sweep.json), the training seed, and every (eval seed,
protocol) of its evaluations with their NMF draws. Run it from the directory the sweep was run from:
relative config and data paths are resolved there (a relative config path also against the
checkout). Then it prints and writes NEW_DIR/replicate.json:

* the SHA-256 of the final weights (the model's state_dict arrays: names, dtypes, shapes and bytes,
  so the .npz's zip timestamps do not matter) of both runs, and whether they are bit-identical;
* the relative L2 distance of the weights, ||new - stored|| / ||stored||;
* the mIoU of each evaluation (protocol, eval seed) in both runs and the difference;
* the first training iteration whose logged loss differs (train lines of the two log.json files);
* both runs' platform ids (segnext_jt.repro.report.platforms) and whether the resolved configs
  recorded in the logs agree.

Exit status: 0 bit-identical weights and equal metrics, 1 a difference, 2 a usage or input error.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from segnext_jt.cli import UsageError, add_device_argument, check_work_dir, run_tool
from segnext_jt.interrupts import install_signal_handlers
from segnext_jt.files import json_safe, write_json_atomic
from segnext_jt.io.native import STATE_DICT_PREFIX, arrays_sha256, load_npz
from segnext_jt.repro import REPO_ROOT
from segnext_jt.repro.sweep.results import ResultError, RunResult, load_result, read_json_file

WEIGHT_PREFIX = STATE_DICT_PREFIX


def weights(path: Path) -> dict[str, np.ndarray]:
    """The model's arrays of a checkpoint .npz (state_dict/<name>), by name, read by the safe reader."""
    try:
        arrays, _ = load_npz(path)
    except (OSError, ValueError) as exc:
        raise ResultError(f"{path}: not a readable checkpoint .npz ({exc})") from None
    out = {k[len(WEIGHT_PREFIX):]: a for k, a in arrays.items() if k.startswith(WEIGHT_PREFIX)}
    if not out:
        raise ResultError(f"{path}: no '{WEIGHT_PREFIX}*' arrays (not a segnext_jt checkpoint?)")
    return out


def relative_l2(new: dict[str, np.ndarray], old: dict[str, np.ndarray]) -> Optional[float]:
    """||new - old|| / ||old|| over all float arrays; None when the two have other names or shapes."""
    if set(new) != set(old) or any(new[k].shape != old[k].shape for k in old):
        return None
    diff = norm = 0.0
    for k, a in old.items():
        if np.issubdtype(a.dtype, np.floating):
            a64, b64 = a.astype(np.float64), new[k].astype(np.float64)
            diff += float(((b64 - a64) ** 2).sum())
            norm += float((a64 ** 2).sum())
    return math.sqrt(diff) / math.sqrt(norm) if norm > 0 else (0.0 if diff == 0 else math.inf)


def first_loss_difference(new_log: Path, old_log: Path) -> dict[str, Any]:
    """The first train iteration whose logged loss differs, and how many iterations were compared."""
    from segnext_jt.repro.report.log_parsing import LogParseError, parse_log
    try:
        new, old = parse_log(new_log), parse_log(old_log)
    except (LogParseError, OSError) as exc:
        return {"compared": 0, "first_differing_iter": None, "problem": str(exc)}
    old_loss = {r.iter: r.loss for r in old.train}
    compared = 0
    for r in new.train:
        if r.iter not in old_loss:
            continue
        compared += 1
        if r.loss != old_loss[r.iter]:
            return {"compared": compared, "first_differing_iter": r.iter, "stored_loss": old_loss[r.iter],
                    "new_loss": r.loss, "problem": None}
    problem = None if compared else "no common train iterations in the two logs"
    return {"compared": compared, "first_differing_iter": None, "problem": problem}


def _config_path(text: Optional[str], where: Path) -> str:
    if not text:
        raise ResultError(f"{where}: no 'config' recorded; cannot replicate")
    if os.path.isfile(text) or os.path.isabs(text):
        return text
    in_repo = REPO_ROOT / text
    return str(in_repo) if in_repo.is_file() else text  # load_config names it if missing


def replicate_argv(stored: RunResult, plan: dict[str, Any], seed: int, work_dir: str,
                   device: Optional[str]) -> list[str]:
    """The seed_sweep command line that redoes the stored seed's training and evaluations."""
    if not stored.evals:
        raise ResultError(f"{stored.path}: the seed has no evaluations to compare")
    draws = {e.nmf_draws for e in stored.evals}
    if len(draws) != 1:
        raise ResultError(f"{stored.path}: evaluations with different NMF draws {sorted(draws)}; replicate "
                          f"supports one protocol per sweep")
    protocols = {e.protocol for e in stored.evals}
    eval_seeds = sorted({e.eval_seed for e in stored.evals})
    argv = ["--config", _config_path(stored.config or plan.get("config"), stored.path or Path("?")),
            "--work-dir", work_dir, "--seeds", str(seed), "--eval-seeds", ",".join(map(str, eval_seeds)),
            "--nmf-draws", str(draws.pop()), "--no-progress"]
    if protocols == {"ss"}:
        argv.append("--no-msflip")
    options = stored.cfg_options if stored.cfg_options is not None else plan.get("cfg_options") or []
    if options:
        argv += ["--cfg-options", *options]
    if device:
        argv += ["--device", device]
    return argv


def _log_meta(path: Path) -> dict[str, Any]:
    from segnext_jt.repro.report.log_parsing import LogParseError, parse_log
    try:
        return parse_log(path).meta
    except (LogParseError, OSError):
        return {}


def _run_path(run: RunResult, text: Optional[str], sweep_dir: Path) -> Optional[Path]:
    """A path recorded in a result.json: absolute, else relative to the sweep dir, else the seed dir."""
    if not text:
        return None
    if os.path.isabs(text):
        return Path(text) if os.path.exists(text) else None
    for base in (sweep_dir, run.path.parent if run.path else sweep_dir):
        candidate = base / text
        if candidate.exists():
            return candidate
    return None


def compare_runs(stored: RunResult, stored_dir: Path, new: RunResult, new_dir: Path) -> dict[str, Any]:
    """Everything replicate.json says about the two runs of one seed."""
    from segnext_jt.repro.report.platforms import seed_platform
    ck_old, ck_new = _run_path(stored, stored.checkpoint, stored_dir), _run_path(new, new.checkpoint, new_dir)
    if ck_old is None:
        raise ResultError(f"{stored.path}: checkpoint {stored.checkpoint!r} not found")
    if ck_new is None:
        raise ResultError(f"{new.path}: checkpoint {new.checkpoint!r} not found")
    w_old, w_new = weights(ck_old), weights(ck_new)
    sha_old, sha_new = arrays_sha256(w_old), arrays_sha256(w_new)
    new_evals = {(e.protocol, e.eval_seed): e.mIoU for e in new.evals}
    protocols = [{"mode": e.protocol,  # replicate.json's field for the protocol is "mode"
                  "eval_seed": e.eval_seed, "stored_mIoU": e.mIoU,
                  "new_mIoU": new_evals.get((e.protocol, e.eval_seed)),
                  "delta": None if (e.protocol, e.eval_seed) not in new_evals
                  else new_evals[(e.protocol, e.eval_seed)] - e.mIoU}
                 for e in sorted(stored.evals, key=lambda e: (e.protocol != "ss", e.protocol, e.eval_seed))]
    logs = {}
    for name, run, base in (("stored", stored, stored_dir), ("new", new, new_dir)):
        logs[name] = _run_path(run, run.train_log, base)
    loss = (first_loss_difference(logs["new"], logs["stored"]) if logs["new"] and logs["stored"]
            else {"compared": 0, "first_differing_iter": None, "problem": "a train log is missing"})
    metas = {k: _log_meta(p) if p else {} for k, p in logs.items()}
    cfg_texts = [m.get("config") for m in metas.values()]
    parsed = {k: (None if p is None else _parse_quiet(p)) for k, p in logs.items()}
    return {
        "seed": stored.seed, "stored_dir": str(stored_dir), "new_dir": str(new_dir),
        "bit_identical": sha_old == sha_new,
        "weights_sha256": {"stored": sha_old, "new": sha_new},
        "relative_l2": relative_l2(w_new, w_old),
        "metrics_equal": all(p["delta"] == 0 for p in protocols),
        "protocols": protocols, "loss": loss,
        "platform": {"stored": seed_platform(stored, parsed["stored"]), "new": seed_platform(new, parsed["new"])},
        "config_recorded_equal": None if None in cfg_texts else cfg_texts[0] == cfg_texts[1],
    }


def _parse_quiet(path: Path):
    from segnext_jt.repro.report.log_parsing import LogParseError, parse_log
    try:
        return parse_log(path)
    except (LogParseError, OSError):
        return None


def table(result: dict[str, Any]) -> str:
    """The comparison as the plain-text table the command prints."""
    sha = result["weights_sha256"]
    rel = result["relative_l2"]
    loss = result["loss"]
    first = loss["first_differing_iter"]
    lines = [f"replicate seed {result['seed']}: stored {result['stored_dir']}  vs  new {result['new_dir']}",
             f"  platform            stored {result['platform']['stored']}  new {result['platform']['new']}",
             f"  weights SHA-256     stored {sha['stored'][:16]}…  new {sha['new'][:16]}…  -> "
             + ("BIT-IDENTICAL" if result["bit_identical"] else "DIFFERENT"),
             f"  relative L2         {'n/a (other parameter names/shapes)' if rel is None else f'{rel:.3e}'}",
             "  loss                " + (loss["problem"] if loss["problem"] else
                                         f"identical over {loss['compared']} logged iterations" if first is None else
                                         f"first differs at iter {first} ({loss['stored_loss']!r} -> "
                                         f"{loss['new_loss']!r}; {loss['compared']} compared)")]
    if result["config_recorded_equal"] is False:
        lines.append("  config              the resolved configs recorded in the two logs DIFFER")
    lines += ["", f"  {'protocol':<18} {'stored mIoU':>11} {'new mIoU':>9} {'delta':>8}"]
    for p in result["protocols"]:
        new = "missing" if p["new_mIoU"] is None else f"{p['new_mIoU']:.2f}"
        delta = "" if p["delta"] is None else f"{p['delta']:+.2f}"
        lines.append(f"  {p['mode'] + ' eval seed ' + str(p['eval_seed']):<18} {p['stored_mIoU']:>11.2f} "
                     f"{new:>9} {delta:>8}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Re-run one finished seed of a sweep here and compare it with the "
                                            "stored one (weights SHA-256, relative L2, delta mIoU, first "
                                            "differing loss).")
    p.add_argument("sweep_dir", help="the sweep directory (sweep.json, seed_<k>/result.json)")
    p.add_argument("--seed", type=int, required=True, help="the training seed to re-run")
    p.add_argument("--work-dir", help="where the re-run goes (default SWEEP_DIR/replicate_seed_K)")
    add_device_argument(p)
    return p


def _main(args: argparse.Namespace) -> int:
    from segnext_jt.repro.sweep import seed_sweep
    sweep_dir = Path(args.sweep_dir)
    result_path = sweep_dir / f"seed_{args.seed}" / "result.json"
    if not result_path.is_file():
        raise UsageError(f"{result_path}: not found (is seed {args.seed} of {sweep_dir} finished?)")
    stored = load_result(result_path, args.seed)
    plan_path = sweep_dir / "sweep.json"
    plan = read_json_file(plan_path) if plan_path.is_file() else {}
    plan = plan if isinstance(plan, dict) else {}
    work_dir = check_work_dir(args.work_dir or str(sweep_dir / f"replicate_seed_{args.seed}"))
    if os.path.realpath(work_dir) == os.path.realpath(sweep_dir):
        raise UsageError(f"--work-dir {work_dir}: is the stored sweep itself; give a new directory")
    argv = replicate_argv(stored, plan, args.seed, work_dir, args.device)
    print("[replicate] python repro/seed_sweep.py " + " ".join(argv), flush=True)
    rc = seed_sweep.main(argv)
    if rc:
        return rc
    new = load_result(Path(work_dir) / f"seed_{args.seed}" / "result.json", args.seed)
    result = compare_runs(stored, sweep_dir, new, Path(work_dir))
    write_json_atomic(os.path.join(work_dir, "replicate.json"), json_safe(result))
    print(table(result))
    print(f"wrote {os.path.join(work_dir, 'replicate.json')}")
    return 0 if result["bit_identical"] and result["metrics_equal"] else 1


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    install_signal_handlers()
    return run_tool(lambda: _main(args), usage_errors=(UsageError, ResultError),
                    interrupted_message="replicate stopped; rerun the same command to resume")


if __name__ == "__main__":
    sys.exit(main())
