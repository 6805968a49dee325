"""The processes of a seed sweep (repro/seed_sweep.py): children that die with the sweep, the probe
of a seed's locks before it is launched, the command line of one seed's worker, and the launchers
(local slots: one GPU or CPU process per seed; a Slurm array script)."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Optional

from segnext_jt.environment import child_env
from segnext_jt.repro import REPO_ROOT
from segnext_jt.files import lock_holder, try_lock, unlock, write_text_atomic

SWEEP_SCRIPT = str(REPO_ROOT / "repro" / "seed_sweep.py")  # the command, a thin script
DEFAULT_MAX_SEEDS = 1000  # --max-seeds default; a worker is passed the flag only when it differs
LOCK_NAME = ".lock"  # the training lock in a training work dir (tools/train.py takes it too)
SWEEP_LOCK_NAME = ".sweep.lock"  # held by the sweep worker of a seed for its whole life
TERM_GRACE_S = 4.0  # SIGTERM -> SIGKILL for a child we stop


# --------------------------------------------------------------------------------------------
# child processes: they die with their parent, and are stopped on SIGINT/SIGTERM
# --------------------------------------------------------------------------------------------
def start_child(cmd: list[str], env: "dict | None" = None, **kwargs) -> subprocess.Popen:
    """A child that gets SIGTERM when this process dies, even by SIGKILL (Linux): it asks for that
    itself when it imports segnext_jt (environment.child_env); a preexec_fn doing it could deadlock
    in the fork of this process, whose Jittor threads may hold locks."""
    return subprocess.Popen(cmd, start_new_session=False, env=child_env(env), **kwargs)


def stop_children(procs: list[subprocess.Popen], grace: float = TERM_GRACE_S) -> None:
    """SIGTERM every running child, SIGKILL those still alive after `grace` seconds."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        try:
            p.send_signal(signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    for p in live:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def busy_reason(seed_dir: str, seed: int) -> Optional[str]:
    """Why seed `seed` cannot be launched now (its training or sweep lock is held), else None.
    The locks are only probed (taken and released at once; fcntl.flock: released by the kernel when
    the holder dies, even by SIGKILL)."""
    if not os.path.isdir(seed_dir):
        return None
    for name, what in ((SWEEP_LOCK_NAME, "a sweep worker"), (LOCK_NAME, "a training or sweep")):
        path = os.path.join(seed_dir, name)
        if not os.path.exists(path):
            continue
        fd = try_lock(path)
        if fd is None:
            return (f"seed_{seed}: {path} is held by {lock_holder(path)} ({what} still running there); "
                    f"not launching it: wait for it or stop it, then rerun")
        unlock(fd)
    return None


# --------------------------------------------------------------------------------------------
# launchers
# --------------------------------------------------------------------------------------------
def worker_command(args, seed: Optional[str], absolute: bool = False) -> list[str]:
    """The seed_sweep.py command line that runs one seed (`--_one-seed`) with the sweep's options."""
    work_dir = os.path.abspath(args.work_dir) if absolute else args.work_dir
    config = os.path.abspath(args.config) if absolute else args.config
    cmd = [sys.executable, SWEEP_SCRIPT, "--config", config, "--work-dir", work_dir, "--_one-seed", str(seed)]
    if args.eval_seeds:
        cmd += ["--eval-seeds", ",".join(map(str, args.eval_seeds))]
    if args.max_seeds != DEFAULT_MAX_SEEDS:
        cmd += ["--max-seeds", str(args.max_seeds)]
    if args.no_msflip:
        cmd.append("--no-msflip")
    if args.nmf_draws != 1:
        cmd += ["--nmf-draws", str(args.nmf_draws)]
    if not args.progress:
        cmd.append("--no-progress")
    if getattr(args, "device", None):
        cmd += ["--device", args.device]
    if args.cfg_options:
        cmd += ["--cfg-options", *args.cfg_options]
    return cmd


def _start_worker(args, seed: int, gpu: Optional[str], to_files: bool):
    """(process, log file or None) of the worker of `seed` on `gpu` (None: the CPU)."""
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
        env.setdefault("SEGNEXT_DEVICE", "cuda")
    log = None
    if to_files:
        log = open(os.path.join(args.work_dir, f"seed_{seed}.out"), "a")
        print(f"[sweep] seed {seed} -> {'GPU ' + gpu if gpu else 'CPU'} "
              f"(output: {log.name})", flush=True)
    try:
        proc = start_child(worker_command(args, str(seed)), env=env, stdout=log,
                           stderr=subprocess.STDOUT if log else None)
    except BaseException:
        if log:
            log.close()
        raise
    return proc, log


def launch_local(args, todo: list[int], to_files: bool = True) -> int:
    """One seed per GPU (CUDA_VISIBLE_DEVICES) or `--procs` CPU processes at a time. With
    to_files=False (sequential, one slot) the worker writes to this terminal."""
    slots = [str(g) for g in args.gpus] if args.gpus else [None] * max(1, args.procs)
    running: dict = {}
    failed = []
    queue = list(todo)
    try:
        while queue or running:
            for slot in [s for s in range(len(slots)) if s not in running]:
                if not queue:
                    break
                seed = queue.pop(0)
                reason = busy_reason(os.path.join(args.work_dir, f"seed_{seed}"), seed)
                if reason:
                    print(f"error: {reason}", file=sys.stderr, flush=True)
                    failed.append(seed)
                    continue
                running[slot] = (seed, *_start_worker(args, seed, slots[slot], to_files))
            if running:
                time.sleep(0.2 if not to_files else 0.5)
            for slot, (seed, proc, log) in list(running.items()):
                if proc.poll() is not None:
                    if log:
                        log.close()
                    del running[slot]
                    status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                    print(f"[sweep] seed {seed} {status}", flush=True)
                    if proc.returncode:
                        failed.append(seed)
    except BaseException:
        stop_children([proc for _, proc, _ in running.values()], grace=TERM_GRACE_S + 2)
        for _, _, log in running.values():
            if log:
                log.close()
        raise
    if failed:
        where = "DIR/seed_<k>.out" if to_files else "the output above"
        print(f"error: failed seeds: {failed}; see {where}, rerun the same command to resume",
              file=sys.stderr, flush=True)
    return 1 if failed else 0


def write_slurm_script(args, todo: list[int]) -> str:
    path = os.path.join(args.work_dir, "sweep.sbatch")
    seeds = " ".join(map(str, todo))
    base = " ".join(shlex.quote(c) for c in worker_command(args, "PLACEHOLDER", absolute=True))
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
# the directory the sweep was planned from: relative paths in --cfg-options stay valid
cd {shlex.quote(os.getcwd())}
export SEGNEXT_DEVICE=${{SEGNEXT_DEVICE:-cuda}}
{base}
"""
    write_text_atomic(path, text)
    return path


def launch_slurm(args, todo: list[int]) -> int:
    """Write the array script of the seeds `todo` (none of them may be running), and with --submit
    hand it to sbatch."""
    busy = [r for r in (busy_reason(os.path.join(args.work_dir, f"seed_{s}"), s) for s in todo) if r]
    for reason in busy:
        print(f"error: {reason}", file=sys.stderr, flush=True)
    if busy:
        return 1
    script = write_slurm_script(args, todo)
    print(f"[sweep] wrote {script}", flush=True)
    if args.submit:
        proc = subprocess.Popen(["sbatch", script])  # the jobs run elsewhere: not tied to this process
        try:
            return proc.wait()
        except BaseException:
            stop_children([proc])
            raise
    print(f"[sweep] submit with: sbatch {script}")
    return 0
