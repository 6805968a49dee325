#!/usr/bin/env python
"""Seed sweep: train + evaluate one run per training seed, optionally under several NMF eval seeds.

    python repro/seed_sweep.py --config configs/segnext_l.yaml --seeds 0..9 --work-dir sweeps/l
    python repro/seed_sweep.py --config configs/segnext_l.yaml --seeds 0..9 --eval-seeds 0..4 \\
        --launcher local --gpus 0,1,2,3 --work-dir sweeps/l
    python repro/seed_sweep.py --config configs/segnext_l.yaml --seeds 0..9 --launcher slurm \\
        --work-dir sweeps/l [--submit] [--slurm-args "--partition=gpu --time=72:00:00"]
    python repro/seed_sweep.py --config configs/segnext_l.yaml --checkpoint released.pth \\
        --eval-seeds 0..19 --work-dir sweeps/l_released          # eval-seed sweep of one checkpoint

Layout: DIR/sweep.json (the plan), DIR/seed_<k>/ (training work dir: log.json, iter_*.npz, one
eval_<mode>_s<e>.json per evaluation (eval_<mode>_s<e>_k<K>.json with --nmf-draws K > 1), result.json
when finished), DIR/checkpoint_eval/ for a checkpoint-only sweep. Everything is resumable: rerunning the same command skips finished seeds and
evaluations, and resumes training from a seed's latest checkpoint. Then: python repro/report.py DIR
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import time


from segnext_jt.cli import UsageError, add_device_argument, apply_device, check_work_dir, run_tool
from segnext_jt.interrupts import install_signal_handlers
from segnext_jt.platform_info import platform_info
from segnext_jt.repro import REPO_ROOT
from segnext_jt.repro.sweep.results import EvalEntry, ResultError, RunResult, eval_entry_from_summary
from segnext_jt.repro.sweep.launch import (DEFAULT_MAX_SEEDS, LOCK_NAME, SWEEP_LOCK_NAME, launch_local,
                                launch_slurm, start_child, stop_children, worker_command)
from segnext_jt.files import (json_safe, lock_holder, read_json, try_lock, unlock,
                                 write_json_atomic)

MAX_SEED = 2 ** 31 - 1  # seeds go to Jittor's C++ RNG (and NumPy's 32-bit seeding)


class SweepError(ValueError):
    """A sweep input or state problem, reported as one line."""


class SeedBusy(SweepError):
    """A seed's work dir is locked by another process."""


# --------------------------------------------------------------------------------------------
# seed lists
# --------------------------------------------------------------------------------------------
class SeedSpec:
    """A parsed seed list ('0..9', '0,3,7', '0..2,10'): intervals, counted without expanding."""

    def __init__(self, text: str, parts: list[tuple[int, int]]):
        self.text, self.parts = text, parts

    def count(self) -> int:
        """Number of distinct seeds (union of the intervals)."""
        total, cur_lo, cur_hi = 0, None, None
        for lo, hi in sorted(self.parts):
            if cur_hi is None or lo > cur_hi + 1:
                if cur_hi is not None:
                    total += cur_hi - cur_lo + 1
                cur_lo, cur_hi = lo, hi
            else:
                cur_hi = max(cur_hi, hi)
        if cur_hi is not None:
            total += cur_hi - cur_lo + 1
        return total

    def expand(self, max_seeds: int, flag: str = "--seeds") -> list[int]:
        n = self.count()
        if n > max_seeds:
            raise UsageError(f"{flag} {self.text}: {n:,} seeds, more than --max-seeds {max_seeds} (a typo?); "
                             f"pass --max-seeds {n} to really plan them all")
        out: dict[int, None] = {}
        for lo, hi in self.parts:
            out.update(dict.fromkeys(range(lo, hi + 1)))
        return list(out)


def parse_seed_spec(text: str, flag: str = "--seeds") -> SeedSpec:
    """Syntax and bounds only, nothing is expanded (see SeedSpec.expand); UsageError if bad."""
    def bad(msg: str) -> UsageError:
        return UsageError(f"{flag}: {msg}")
    parts: list[tuple[int, int]] = []
    if len(str(text)) > 100_000:
        raise bad("bad seed list: longer than 100000 characters")
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if ".." in part:
                lo, hi = (int(x) for x in part.split("..", 1))
            else:
                lo = hi = int(part)
        except ValueError:
            raise bad(f"bad seed list {text!r}: use e.g. 0..9 or 0,3,7") from None
        if hi < lo:
            raise bad(f"bad seed list {text!r}: range {part} is empty (high end below low end)")
        if lo < 0 or hi > MAX_SEED:
            raise bad(f"bad seed list {text!r}: seeds must be in 0..{MAX_SEED}")
        parts.append((lo, hi))
    if not parts:
        raise bad(f"bad seed list {text!r}: need non-negative seeds")
    return SeedSpec(str(text), parts)


def parse_seed_list(text: str, max_seeds: int = DEFAULT_MAX_SEEDS) -> list[int]:
    """'0..9' (inclusive), '0,3,7', or mixtures like '0..2,10' -> distinct seeds in order."""
    try:
        return parse_seed_spec(text).expand(max_seeds)
    except UsageError as exc:  # argparse-type compatible
        raise argparse.ArgumentTypeError(str(exc)) from None


def read_json_file(path: str, what: str = "file"):
    """JSON from `path` or a one-line SweepError naming it (a directory, not UTF-8, invalid)."""
    hint = "; remove it" if os.path.isdir(path) else "; delete it to redo this step"
    return read_json(path, SweepError, what, hint)


def protocols_of(args) -> list[str]:
    return ["ss"] if args.no_msflip else ["ss", "msflip"]


# --------------------------------------------------------------------------------------------
# locks (fcntl.flock: released by the kernel when the holder dies, even by SIGKILL)
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def held_lock(path: str, busy: str, prefix: str = ""):
    """Hold the flock on `path` (our pid written into it) for the block, or raise SeedBusy with
    `<prefix><path> is held by <pid><busy>` if another process holds it."""
    fd = try_lock(path)
    if fd is None:
        raise SeedBusy(f"{prefix}{path} is held by {lock_holder(path)}{busy}")
    try:
        yield
    finally:
        unlock(fd)


# --------------------------------------------------------------------------------------------
# one unit of work (runs in its own process: a local worker, a slurm array task, or inline)
# --------------------------------------------------------------------------------------------
def eval_entry_name(protocol: str, eval_seed: int, nmf_draws: int) -> str:
    return f"eval_{protocol}_s{eval_seed}" + (f"_k{nmf_draws}" if nmf_draws != 1 else "") + ".json"


def evaluate_into(run_dir: str, cfg_path: str, overrides: list[str], checkpoint: str, eval_seeds: list[int],
                  protocols: list[str], progress: bool, nmf_draws: int = 1) -> list[EvalEntry]:
    """Evaluate `checkpoint` under each (eval seed, protocol) not already on disk; return all entries."""
    from segnext_jt.config import load_config
    from segnext_jt.evaluation.run import run_evaluation
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    entries, model = [], None
    for eval_seed in eval_seeds:
        for protocol in protocols:
            path = os.path.join(run_dir, eval_entry_name(protocol, eval_seed, nmf_draws))
            if not os.path.lexists(path):
                cfg = load_config(cfg_path, overrides + [f"eval.seed={eval_seed}", f"eval.nmf_draws={nmf_draws}"])
                if model is None:
                    model = build_segmentor(cfg)
                    load_checkpoint(model, checkpoint, strict=True, logger=lambda *a: None)
                summary = run_evaluation(cfg, checkpoint, ms_flip=(protocol == "msflip"), progress=progress, model=model)
                entry = json_safe(eval_entry_from_summary(summary, eval_seed, protocol, nmf_draws))
                if entry["mIoU"] is None:
                    raise SweepError(f"{run_dir}: evaluation (eval seed {eval_seed}, {protocol}) gave no mIoU "
                                     f"(no labelled pixels in the validation set?)")
                write_json_atomic(path, EvalEntry.from_json(entry, path, SweepError).to_json())
                print(f"[{os.path.basename(run_dir)}] eval seed {eval_seed} {protocol}: mIoU {entry['mIoU']:.2f}", flush=True)
            entry = read_json_file(path, "evaluation entry")
            # the protocol's JSON field is "mode"
            if not isinstance(entry, dict) or entry.get("eval_seed") != eval_seed or entry.get("mode") != protocol \
                    or entry.get("nmf_draws", 1) != nmf_draws:
                raise SweepError(f"{path}: not an evaluation entry for eval seed {eval_seed}, mode {protocol}, "
                                 f"{nmf_draws} NMF draw(s); "
                                 "delete it to redo this evaluation")
            try:
                entries.append(EvalEntry.from_json(entry, path))
            except ResultError as exc:
                raise SweepError(f"{exc}; delete it to redo this evaluation") from None
    return entries


def _train_seed(args, seed: int, seed_dir: str) -> None:
    cmd = [sys.executable, str(REPO_ROOT / "tools" / "train.py"), args.config, "--work-dir", seed_dir,
           "--seed", str(seed), "--resume"]
    if args.cfg_options:
        cmd += ["--cfg-options", *args.cfg_options]
    if not args.progress:
        cmd.append("--no-progress")
    if args.device:
        cmd += ["--device", args.device]
    # Check the training lock first (a training started by hand in this dir): clear message, no launch.
    fd = try_lock(os.path.join(seed_dir, LOCK_NAME))
    if fd is None:
        path = os.path.join(seed_dir, LOCK_NAME)
        raise SeedBusy(f"seed_{seed}: {path} is held by {lock_holder(path)} (a training still running "
                       f"there?); not starting a second one")
    unlock(fd)
    print(f"[seed_{seed}] training: {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    proc = start_child(cmd)
    try:
        rc = proc.wait()
    except BaseException:
        stop_children([proc])
        raise
    if rc:
        raise SweepError(f"seed_{seed}: training failed (exit {rc}; see its output above); rerun to resume")


def run_one_seed(args, seed: int) -> None:
    seed_dir = check_work_dir(os.path.join(args.work_dir, f"seed_{seed}"), f"seed_{seed} work dir")
    os.makedirs(seed_dir, exist_ok=True)
    with held_lock(os.path.join(seed_dir, SWEEP_LOCK_NAME),
                   " (another sweep is running this seed); not running it twice", f"seed_{seed}: "):
        eval_seeds = args.eval_seeds or [seed]
        from segnext_jt.config import load_config
        cfg = load_config(args.config, args.cfg_options)
        final_ckpt = os.path.join(seed_dir, f"iter_{cfg.train.max_iters}.npz")
        train_result = os.path.join(seed_dir, "train_result.json")
        if not (os.path.isfile(final_ckpt) and os.path.isfile(train_result)):
            _train_seed(args, seed, seed_dir)
        if not os.path.isfile(final_ckpt):
            raise SweepError(f"seed_{seed}: training ended without {final_ckpt}")
        # Bookkeeping (evaluations, result.json) under the seed's training lock: a training started by
        # hand in this dir, or another sweep, sees it held.
        with held_lock(os.path.join(seed_dir, LOCK_NAME), "; not evaluating while it runs", f"seed_{seed}: "):
            tr = read_json_file(train_result, "training result")
            final_loss = tr.get("final_loss") if isinstance(tr, dict) else None
            entries = evaluate_into(seed_dir, args.config, args.cfg_options, final_ckpt, eval_seeds,
                                    protocols_of(args), args.progress, args.nmf_draws)
            write_json_atomic(os.path.join(seed_dir, "result.json"), RunResult(
                seed=seed, config=args.config, checkpoint=os.path.relpath(final_ckpt, args.work_dir),
                final_loss=final_loss, train_log="log.json", cfg_options=args.cfg_options,
                evals=entries, platform=tr.get("platform") if isinstance(tr, dict) else None).to_json())


def run_checkpoint_eval(args) -> None:
    run_dir = check_work_dir(os.path.join(args.work_dir, "checkpoint_eval"), "checkpoint_eval dir")
    os.makedirs(run_dir, exist_ok=True)
    with held_lock(os.path.join(run_dir, LOCK_NAME), " (another eval-seed sweep running here?)"):
        entries = evaluate_into(run_dir, args.config, args.cfg_options, args.checkpoint, args.eval_seeds or [0],
                                protocols_of(args), args.progress, args.nmf_draws)
        write_json_atomic(os.path.join(run_dir, "result.json"), RunResult(
            seed=None, config=args.config, checkpoint=os.path.abspath(args.checkpoint),
            final_loss=None, train_log=None, cfg_options=args.cfg_options, evals=entries,
            platform=platform_info()).to_json())


def seed_finished(args, seed: int) -> bool:
    path = os.path.join(args.work_dir, f"seed_{seed}", "result.json")
    if not os.path.lexists(path):
        return False
    obj = read_json_file(path, "seed result")
    if not isinstance(obj, dict) or not isinstance(obj.get("eval", []), list) \
            or not all(isinstance(e, dict) for e in obj.get("eval", [])):
        raise SweepError(f"{path}: not a seed result (expected an object with an 'eval' list); delete it to "
                         "redo the seed's evaluations")
    done = {(e.get("eval_seed"), e.get("mode")) for e in obj.get("eval", [])  # "mode": the protocol
            if e.get("nmf_draws", 1) == args.nmf_draws}
    wanted = {(e, m) for e in (args.eval_seeds or [seed]) for m in protocols_of(args)}
    return wanted <= done


def _gpu_list(text: str) -> list[int]:
    try:
        gpus = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad GPU list {text!r}: use e.g. 0,1,2,3") from None
    if not gpus or any(g < 0 for g in gpus):
        raise argparse.ArgumentTypeError(f"bad GPU list {text!r}: use e.g. 0,1,2,3")
    return gpus


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--work-dir", required=True)
    p.add_argument("--seeds", help="training seeds: 0..9 or 0,3,7")
    p.add_argument("--eval-seeds",
                   help="NMF eval seeds per checkpoint (nested design; default: the training seed)")
    p.add_argument("--max-seeds", type=_positive_int, default=DEFAULT_MAX_SEEDS,
                   help=f"refuse --seeds / --eval-seeds lists longer than this (default {DEFAULT_MAX_SEEDS}; "
                        "a guard against typos such as 0..100000)")
    p.add_argument("--checkpoint", help="sweep eval seeds on this one checkpoint instead of training")
    p.add_argument("--no-msflip", action="store_true", help="single-scale evaluation only")
    p.add_argument("--nmf-draws", type=_positive_int, default=1, metavar="K",
                   help="average each test view over K NMF bases draws (default 1: the released protocol; "
                        "fixed per work dir)")
    p.add_argument("--launcher", choices=["local", "slurm"], default="local")
    p.add_argument("--gpus", type=_gpu_list, help="local: one seed per GPU, e.g. 0,1,2,3")
    p.add_argument("--procs", type=_positive_int, default=1, help="local CPU: seeds run concurrently (default 1)")
    p.add_argument("--submit", action="store_true", help="slurm: also run sbatch on the written script")
    p.add_argument("--slurm-args", help='extra #SBATCH lines, e.g. "--partition=gpu --time=72:00:00"')
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--check", action="store_true", help="pre-flight check of one seed's run (data, weights, "
                                                        "device, a timed step) with time and disk for the sweep; "
                                                        "writes nothing")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--_one-seed", dest="one_seed", type=int, help=argparse.SUPPRESS)
    add_device_argument(p)  # passed to every training and evaluation of the sweep
    return p


def _read_plan(plan_path: str) -> dict:
    old = read_json_file(plan_path, "sweep plan")
    if not isinstance(old, dict):
        raise SweepError(f"{plan_path}: expected a JSON object (the sweep plan)")
    seeds = old.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SweepError(f"{plan_path}: 'seeds' must be a list of integers")
    return old


def _sweep_plan(args, plan_path: str) -> dict:
    """The plan of this command, merged with the one already in the work dir (its seeds and creation
    time are kept; a sweep of another config, options or number of NMF draws is refused)."""
    # sweep.json lists the protocols under "modes"
    plan = {"config": args.config, "seeds": args.seeds, "eval_seeds": args.eval_seeds, "modes": protocols_of(args),
            "cfg_options": args.cfg_options, "launcher": args.launcher, "nmf_draws": args.nmf_draws}
    if os.path.lexists(plan_path):
        old = _read_plan(plan_path)
        plan["created"] = old.get("created")
        if old.get("config") != plan["config"] or old.get("cfg_options") != plan["cfg_options"]:
            raise UsageError(f"{args.work_dir} holds a sweep of {old.get('config')} {old.get('cfg_options')}; "
                             "use another --work-dir")
        if old.get("nmf_draws", 1) != args.nmf_draws:
            raise UsageError(f"{args.work_dir} holds a sweep with --nmf-draws {old.get('nmf_draws', 1)}; "
                             "use another --work-dir for another number of draws")
        plan["seeds"] = list(dict.fromkeys(old.get("seeds", []) + args.seeds))
    plan["created"] = plan.get("created") or time.strftime("%Y-%m-%d %H:%M:%S")
    return plan


def _check_arguments(args) -> None:
    """Cheap checks first: seed lists (parsed into args), paths, config; nothing is created before
    they pass."""
    from segnext_jt.config import load_config
    args.seeds = parse_seed_spec(args.seeds).expand(args.max_seeds) if args.seeds is not None else None
    args.eval_seeds = (parse_seed_spec(args.eval_seeds, "--eval-seeds").expand(args.max_seeds, "--eval-seeds")
                       if args.eval_seeds is not None else None)
    check_work_dir(args.work_dir)
    if args.slurm_args:
        try:
            shlex.split(args.slurm_args)
        except ValueError as exc:
            raise UsageError(f"--slurm-args {args.slurm_args!r}: {exc}") from None
    # the evaluation settings too: a bad --nmf-draws or eval seed must fail now, not after the training
    load_config(args.config, args.cfg_options + [f"eval.nmf_draws={args.nmf_draws}"])
    from segnext_jt.config_schema import check_seed
    for seed in (args.seeds or []) + (args.eval_seeds or []):
        check_seed(seed, "--seeds/--eval-seeds")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise UsageError(f"checkpoint not found: {args.checkpoint}" if not os.path.exists(args.checkpoint)
                         else f"--checkpoint {args.checkpoint}: not a regular file")
    if args.submit and args.launcher == "slurm" and not shutil.which("sbatch"):
        raise UsageError("--submit: sbatch not found on PATH (drop --submit to only write the script)")


def _fetch_pretrained(args) -> None:
    """Download the ImageNet weights once, here, before any worker starts (and on the login node for
    SLURM, whose compute nodes may have no network); the workers find them in the cache."""
    from segnext_jt import hub
    from segnext_jt.config import load_config
    spec = load_config(args.config, args.cfg_options).model.backbone.pretrained
    if spec:
        hub.resolve(spec, "model.backbone.pretrained", hub.FROM_SCRATCH_HINT, progress=args.progress)


def _preflight(args, runs: int) -> int:
    """--check: tools/train.py --check for the sweep's config, with the budget of `runs` seeds."""
    from segnext_jt.config import load_config
    from segnext_jt.engine.preflight import run_preflight
    cfg = load_config(args.config, args.cfg_options)
    for warning in cfg.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    parallel = len(args.gpus) if args.gpus else args.procs
    report = run_preflight(cfg, args.work_dir, runs=max(runs, 1), parallel=parallel, progress=args.progress)
    print(report.table())
    return 0 if report.ok else 1


def _main(args) -> int:
    if args.launcher == "local" or args.one_seed is not None:  # not on a Slurm submit host
        apply_device(args.device)  # exports SEGNEXT_DEVICE to the children; DeviceError -> exit 2
    _check_arguments(args)
    if args.one_seed is not None:
        os.makedirs(args.work_dir, exist_ok=True)
        run_one_seed(args, args.one_seed)
        return 0
    if args.checkpoint:
        print(f"[sweep] eval-seed sweep of {args.checkpoint}: eval seeds {args.eval_seeds or [0]}, "
              f"modes {protocols_of(args)}", flush=True)
        if args.dry_run:
            return 0
        os.makedirs(args.work_dir, exist_ok=True)
        run_checkpoint_eval(args)
        return 0
    if not args.seeds:
        raise UsageError("give --seeds (training sweep) or --checkpoint (eval-seed sweep)")
    for seed in args.seeds:
        check_work_dir(os.path.join(args.work_dir, f"seed_{seed}"), f"seed_{seed} work dir")
    plan_path = os.path.join(args.work_dir, "sweep.json")
    plan = _sweep_plan(args, plan_path)
    todo = [s for s in args.seeds if not seed_finished(args, s)]
    done = [s for s in args.seeds if s not in todo]
    print(f"[sweep] {args.config}: seeds {args.seeds}, eval seeds {args.eval_seeds or 'same as training'}, "
          f"modes {protocols_of(args)}; finished {done or 'none'}; to run {todo or 'none'}", flush=True)
    if args.check:
        return _preflight(args, len(todo))
    if args.dry_run:
        for seed in todo:
            print("  " + " ".join(shlex.quote(c) for c in worker_command(args, str(seed))))
        return 0
    if todo:
        _fetch_pretrained(args)
    os.makedirs(args.work_dir, exist_ok=True)
    write_json_atomic(plan_path, plan)
    if not todo:
        return 0
    if args.launcher == "slurm":
        return launch_slurm(args, todo)
    if args.gpus or args.procs > 1:
        return launch_local(args, todo)
    return launch_local(args, todo, to_files=False)  # sequential, output in this terminal


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    install_signal_handlers()
    from segnext_jt.errors import CheckpointError, CheckpointNotFoundError, ConfigError, DataError
    worker = args.one_seed is not None
    return run_tool(lambda: _main(args), usage_errors=(ConfigError, UsageError, CheckpointNotFoundError),
                    input_errors=(SeedBusy, CheckpointError, DataError),
                    interrupted_message=("seed stopped" if worker else "running seeds stopped")
                    + "; rerun the same command to resume")


if __name__ == "__main__":
    sys.exit(main())
