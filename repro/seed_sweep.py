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
eval_<mode>_s<e>.json per evaluation, result.json when finished), DIR/checkpoint_eval/ for a
checkpoint-only sweep. Everything is resumable: rerunning the same command skips finished seeds and
evaluations, and resumes training from a seed's latest checkpoint. Then: python repro/report.py DIR
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SCRIPT = os.path.abspath(__file__)


def parse_seed_list(text: str) -> list[int]:
    """'0..9' (inclusive), '0,3,7', or mixtures like '0..2,10'."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if ".." in part:
                lo, hi = (int(x) for x in part.split("..", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad seed list {text!r}: use e.g. 0..9 or 0,3,7") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"bad seed list {text!r}: need non-negative seeds")
    return list(dict.fromkeys(seeds))


def write_json_atomic(path: str, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def modes_of(args) -> list[str]:
    return ["ss"] if args.no_msflip else ["ss", "msflip"]


# --------------------------------------------------------------------------------------------
# one unit of work (runs in its own process: a local worker, a slurm array task, or inline)
# --------------------------------------------------------------------------------------------
def evaluate_into(run_dir: str, cfg_path: str, overrides: list[str], checkpoint: str, eval_seeds: list[int],
                  modes: list[str], progress: bool) -> list[dict]:
    """Evaluate `checkpoint` under each (eval seed, mode) not already on disk; return all entries."""
    from segnext_jt.config import load_config
    from segnext_jt.evaluation.run import run_evaluation
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    entries, model = [], None
    for eval_seed in eval_seeds:
        for mode in modes:
            path = os.path.join(run_dir, f"eval_{mode}_s{eval_seed}.json")
            if not os.path.isfile(path):
                cfg = load_config(cfg_path, overrides + [f"eval.seed={eval_seed}"])
                if model is None:
                    model = build_segmentor(cfg)
                    load_checkpoint(model, checkpoint, strict=True, logger=lambda *a: None)
                summary = run_evaluation(cfg, checkpoint, ms_flip=(mode == "msflip"), progress=progress, model=model)
                entry = {"eval_seed": eval_seed, "mode": mode, "mIoU": summary["mIoU"], "aAcc": summary["aAcc"],
                         "mAcc": summary["mAcc"], "per_class_iou": summary["per_class_iou"],
                         "seconds": summary["seconds"], "num_images": summary["num_images"]}
                write_json_atomic(path, entry)
                print(f"[{os.path.basename(run_dir)}] eval seed {eval_seed} {mode}: mIoU {entry['mIoU']:.2f}", flush=True)
            with open(path) as f:
                entries.append(json.load(f))
    return entries


def run_one_seed(args, seed: int) -> None:
    seed_dir = os.path.join(args.work_dir, f"seed_{seed}")
    os.makedirs(seed_dir, exist_ok=True)
    eval_seeds = args.eval_seeds or [seed]
    from segnext_jt.config import load_config
    cfg = load_config(args.config, args.cfg_options)
    final_ckpt = os.path.join(seed_dir, f"iter_{cfg.train.max_iters}.npz")
    train_result = os.path.join(seed_dir, "train_result.json")
    if not (os.path.isfile(final_ckpt) and os.path.isfile(train_result)):
        cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), args.config, "--work-dir", seed_dir,
               "--seed", str(seed), "--resume"]
        if args.cfg_options:
            cmd += ["--cfg-options", *args.cfg_options]
        if not args.progress:
            cmd.append("--no-progress")
        print(f"[seed_{seed}] training: {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
        subprocess.run(cmd, check=True)
    with open(train_result) as f:
        final_loss = json.load(f).get("final_loss")
    entries = evaluate_into(seed_dir, args.config, args.cfg_options, final_ckpt, eval_seeds, modes_of(args),
                            args.progress)
    write_json_atomic(os.path.join(seed_dir, "result.json"), {
        "seed": seed, "config": args.config, "checkpoint": os.path.relpath(final_ckpt, args.work_dir),
        "final_loss": final_loss, "train_log": "log.json", "cfg_options": args.cfg_options, "eval": entries})


def run_checkpoint_eval(args) -> None:
    run_dir = os.path.join(args.work_dir, "checkpoint_eval")
    os.makedirs(run_dir, exist_ok=True)
    entries = evaluate_into(run_dir, args.config, args.cfg_options, args.checkpoint, args.eval_seeds or [0],
                            modes_of(args), args.progress)
    write_json_atomic(os.path.join(run_dir, "result.json"), {
        "seed": None, "config": args.config, "checkpoint": os.path.abspath(args.checkpoint), "final_loss": None,
        "train_log": None, "cfg_options": args.cfg_options, "eval": entries})


def seed_finished(args, seed: int) -> bool:
    path = os.path.join(args.work_dir, f"seed_{seed}", "result.json")
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        done = {(e["eval_seed"], e["mode"]) for e in json.load(f).get("eval", [])}
    wanted = {(e, m) for e in (args.eval_seeds or [seed]) for m in modes_of(args)}
    return wanted <= done


# --------------------------------------------------------------------------------------------
# launchers
# --------------------------------------------------------------------------------------------
def worker_command(args, seed: Optional[str]) -> list[str]:
    cmd = [sys.executable, SCRIPT, "--config", args.config, "--work-dir", args.work_dir, "--_one-seed", str(seed)]
    if args.eval_seeds:
        cmd += ["--eval-seeds", ",".join(map(str, args.eval_seeds))]
    if args.no_msflip:
        cmd.append("--no-msflip")
    if not args.progress:
        cmd.append("--no-progress")
    if args.cfg_options:
        cmd += ["--cfg-options", *args.cfg_options]
    return cmd


def launch_local(args, todo: list[int]) -> int:
    """One seed per GPU (CUDA_VISIBLE_DEVICES) or `--procs` CPU processes at a time."""
    slots = [str(g) for g in args.gpus] if args.gpus else [None] * max(1, args.procs)
    running: dict = {}
    failed = []
    queue = list(todo)
    while queue or running:
        for slot in [s for s in range(len(slots)) if s not in running]:
            if not queue:
                break
            seed = queue.pop(0)
            env = dict(os.environ)
            if slots[slot] is not None:
                env["CUDA_VISIBLE_DEVICES"] = slots[slot]
                env.setdefault("SEGNEXT_DEVICE", "cuda")
            log = open(os.path.join(args.work_dir, f"seed_{seed}.out"), "a")
            print(f"[sweep] seed {seed} -> {'GPU ' + slots[slot] if slots[slot] else 'CPU'} "
                  f"(output: {log.name})", flush=True)
            proc = subprocess.Popen(worker_command(args, str(seed)), env=env, stdout=log, stderr=subprocess.STDOUT)
            running[slot] = (seed, proc, log)
        time.sleep(0.5)
        for slot, (seed, proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[slot]
                status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"[sweep] seed {seed} {status}", flush=True)
                if proc.returncode:
                    failed.append(seed)
    if failed:
        print(f"[sweep] failed seeds: {failed}; see DIR/seed_<k>.out, rerun the same command to resume",
              file=sys.stderr)
    return 1 if failed else 0


def write_slurm_script(args, todo: list[int]) -> str:
    path = os.path.join(args.work_dir, "sweep.sbatch")
    seeds = " ".join(map(str, todo))
    base = " ".join(shlex.quote(c) for c in worker_command(args, "PLACEHOLDER"))
    base = base.replace("PLACEHOLDER", '"${SEEDS[$SLURM_ARRAY_TASK_ID]}"')
    extra = "".join(f"#SBATCH {a}\n" for a in shlex.split(args.slurm_args or ""))
    text = f"""#!/bin/bash
#SBATCH --job-name=segnext-sweep
#SBATCH --array=0-{len(todo) - 1}
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --output={os.path.abspath(args.work_dir)}/slurm-%A_%a.out
{extra}# One training seed per array task; rerunning resumes unfinished seeds.
set -euo pipefail
SEEDS=({seeds})
cd {shlex.quote(ROOT)}
export SEGNEXT_DEVICE=${{SEGNEXT_DEVICE:-cuda}}
{base}
"""
    with open(path, "w") as f:
        f.write(text)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--work-dir", required=True)
    p.add_argument("--seeds", type=parse_seed_list, help="training seeds: 0..9 or 0,3,7")
    p.add_argument("--eval-seeds", type=parse_seed_list,
                   help="NMF eval seeds per checkpoint (nested design; default: the training seed)")
    p.add_argument("--checkpoint", help="sweep eval seeds on this one checkpoint instead of training")
    p.add_argument("--no-msflip", action="store_true", help="single-scale evaluation only")
    p.add_argument("--launcher", choices=["local", "slurm"], default="local")
    p.add_argument("--gpus", type=lambda s: [int(x) for x in s.split(",")], help="local: one seed per GPU, e.g. 0,1,2,3")
    p.add_argument("--procs", type=int, default=1, help="local CPU: seeds run concurrently (default 1)")
    p.add_argument("--submit", action="store_true", help="slurm: also run sbatch on the written script")
    p.add_argument("--slurm-args", help='extra #SBATCH lines, e.g. "--partition=gpu --time=72:00:00"')
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--_one-seed", dest="one_seed", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from segnext_jt.config import ConfigError, load_config
    try:
        load_config(args.config, args.cfg_options)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.makedirs(args.work_dir, exist_ok=True)
    if args.one_seed is not None:
        run_one_seed(args, int(args.one_seed))
        return 0
    if args.checkpoint:
        if not os.path.isfile(args.checkpoint):
            print(f"error: checkpoint not found: {args.checkpoint}", file=sys.stderr)
            return 2
        print(f"[sweep] eval-seed sweep of {args.checkpoint}: eval seeds {args.eval_seeds or [0]}, "
              f"modes {modes_of(args)}")
        if args.dry_run:
            return 0
        run_checkpoint_eval(args)
        return 0
    if not args.seeds:
        print("error: give --seeds (training sweep) or --checkpoint (eval-seed sweep)", file=sys.stderr)
        return 2
    plan = {"config": args.config, "seeds": args.seeds, "eval_seeds": args.eval_seeds, "modes": modes_of(args),
            "cfg_options": args.cfg_options, "launcher": args.launcher}
    plan_path = os.path.join(args.work_dir, "sweep.json")
    if os.path.isfile(plan_path):
        with open(plan_path) as f:
            old = json.load(f)
        plan["created"] = old.get("created")
        if old.get("config") != plan["config"] or old.get("cfg_options") != plan["cfg_options"]:
            print(f"error: {args.work_dir} holds a sweep of {old.get('config')} {old.get('cfg_options')}; "
                  "use another --work-dir", file=sys.stderr)
            return 2
        plan["seeds"] = list(dict.fromkeys(old.get("seeds", []) + args.seeds))
    plan["created"] = plan.get("created") or time.strftime("%Y-%m-%d %H:%M:%S")
    todo = [s for s in args.seeds if not seed_finished(args, s)]
    done = [s for s in args.seeds if s not in todo]
    print(f"[sweep] {args.config}: seeds {args.seeds}, eval seeds {args.eval_seeds or 'same as training'}, "
          f"modes {modes_of(args)}; finished {done or 'none'}; to run {todo or 'none'}")
    if args.dry_run:
        for seed in todo:
            print("  " + " ".join(shlex.quote(c) for c in worker_command(args, str(seed))))
        return 0
    write_json_atomic(plan_path, plan)
    if not todo:
        return 0
    if args.launcher == "slurm":
        script = write_slurm_script(args, todo)
        print(f"[sweep] wrote {script}")
        if args.submit:
            return subprocess.run(["sbatch", script]).returncode
        print(f"[sweep] submit with: sbatch {script}")
        return 0
    if args.gpus or args.procs > 1:
        return launch_local(args, todo)
    for seed in todo:  # sequential, in this process's terminal
        subprocess.run(worker_command(args, str(seed)), check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
