#!/usr/bin/env python
"""Input pipeline throughput (issue #20): samples/s per worker process through the ADE20K training
pipeline of configs/segnext_t.yaml (JPEG decode, label read + reduce_zero_label, random resize
0.5-2.0 of 2048x512, cat-max-ratio crop 512x512, flip, photometric distortion, normalise, pad,
collate), the project's against the same pipeline written with OpenCV as mmseg 1.x runs it; and what
one process with an 8-worker TrainLoader delivers at batch 16, per transport.

    python bench/input_pipeline.py            # 5 interleaved rounds
    python bench/input_pipeline.py --quick    # 2 rounds, fewer samples (about 2 minutes on 2 cores)
    CONTEND=1 python bench/input_pipeline.py  # beside one competing busy-loop process

Inputs are generated into a temporary folder first: 683x512 JPEGs (quality 90) with natural-image
statistics (1/f texture, regions with their own colour, so real edges) and PNG label maps with 150
classes in those regions. Every measurement runs in a fresh process, alternating between the
columns in each round so that host drift hits all of them. "per CPU-s" divides by the process's CPU
time (the per-core speed, robust to other load); "wall" by elapsed time.

OpenCV is a benchmark-only dependency (never a project requirement). Without it the OpenCV columns
are skipped; install it beside the project with
    pip install --no-deps --target /tmp/cvlib opencv-python-headless==4.10.0.84
and run with PYTHONPATH=/tmp/cvlib (--no-deps keeps the project's NumPy 1.x).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CONFIG = ROOT / "configs" / "segnext_t.yaml"
INSTALL_HINT = ("pip install --no-deps --target /tmp/cvlib opencv-python-headless==4.10.0.84, then run with "
                "PYTHONPATH=/tmp/cvlib")
# Per-worker columns: (name, what runs, keep freed memory like the project's workers do)
WORKER_KINDS = [("project", "project", True), ("opencv", "opencv", False), ("opencv_kept", "opencv", True)]
LABELS = {"project": "project (NumPy + Pillow)", "opencv": "OpenCV, as mmseg runs it",
          "opencv_kept": "OpenCV + the project's malloc setting", "baseline": "project at --baseline-root"}


# --------------------------------------------------------------------------
# Child processes: one measurement each, a RESULT line on stdout
# --------------------------------------------------------------------------


def _samples(root: str):
    from segnext_jt.data import ADE20KDataset  # the checkout first on PYTHONPATH (set by the driver)
    return ADE20KDataset(root, "training")


def run_worker(kind: str, root: str, n: int, keep_memory: bool) -> dict:
    """Per-sample pipeline in this process, plus a batch-16 collate (np.stack) per 16 samples."""
    import numpy as np
    if keep_memory:
        try:
            from segnext_jt.data.worker_pool import keep_freed_memory
            keep_memory = keep_freed_memory()
        except ImportError:  # a --baseline-root from before it existed
            keep_memory = False
    ds = _samples(root)
    if kind == "project":
        from segnext_jt.config import load_config
        from segnext_jt.data.build import train_pipeline
        from segnext_jt.data.sampling import load_train_sample
        pipe = train_pipeline(load_config(str(CONFIG)).data)

        def one(i):
            return load_train_sample(ds, pipe, 0, i // 16, i % 16, i % len(ds))[:2]
    else:
        sys.path.insert(0, str(HERE))
        import _pipeline_inputs as P
        cv2 = P.import_cv2()
        if cv2 is None:
            return {"skipped": "no cv2"}
        cvp = P.OpenCVPipeline(cv2)

        def one(i):
            return cvp(*ds.samples[i % len(ds)], np.random.default_rng([0, i]))
    for i in range(4):  # warm-up: imports, tables, allocator
        one(i)
    batch, wall, cpu = [], time.perf_counter(), time.process_time()
    for i in range(n):
        batch.append(one(i))
        if len(batch) == 16 or i == n - 1:
            np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch]).astype(np.int64)
            batch = []
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"per_cpu_s": n / cpu, "wall": n / wall, "kept_memory": keep_memory}


def _cpu_s_of(pids) -> float:
    """User + system CPU seconds of other processes (Linux /proc); 0 where unreadable."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
        except (OSError, IndexError, ValueError):
            return 0.0
    return total / os.sysconf("SC_CLK_TCK")


def run_loader(transport: str, root: str, batches: int, workers: int) -> dict:
    """One process, a TrainLoader with `workers` started workers, batch 16, `batches + 1` batches:
    samples/s delivered (from the first request), this (main) process's CPU ms per batch (receiving,
    unpickling, collating, normalising), and the CPU ms per sample of main + workers together (the
    loader stops after these batches, so all the work it does is delivered; the robust number under
    load)."""
    from segnext_jt.config import load_config
    from segnext_jt.data import TrainLoader
    from segnext_jt.data.build import train_pipeline
    ds = _samples(root)
    pipe = train_pipeline(load_config(str(CONFIG)).data)
    with TrainLoader(ds, pipe, batch_size=16, seed=0, num_workers=workers, transport=transport,
                     max_iters=batches + 1) as loader:
        pids = [p.pid for p in loader._pool._procs]
        workers_cpu = _wait_until_idle(pids)  # started: their imports are not the loader's work
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(batches + 1):
            batch = next(loader)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        workers_cpu = _cpu_s_of(pids) - workers_cpu
    assert batch["img"].shape == (16, 3, 512, 512)
    return {"wall": 16 * (batches + 1) / wall, "main_cpu_ms": cpu / (batches + 1) * 1e3,
            "total_cpu_ms": (cpu + workers_cpu) / (16 * (batches + 1)) * 1e3}


def _wait_until_idle(pids, timeout_s: float = 120.0) -> float:
    """Workers' CPU seconds once it stops growing (they finished starting); polls every 0.3 s."""
    last, deadline = -1.0, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = _cpu_s_of(pids)
        if now == last:
            return now
        last = now
        time.sleep(0.3)
    return last


# --------------------------------------------------------------------------
# The driver: data, interleaved rounds, tables
# --------------------------------------------------------------------------


def _child(args: list, env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__] + args, capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median(rows: list, key: str):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else None


def _fmt(x, spec=".1f") -> str:
    return "—" if x is None else format(x, spec)


def _worker_table(results: dict) -> list:
    """Each column's samples per CPU-second, and project / column per round (the pairs ran minutes
    apart at most, so a drifting host load hits both): the median of those ratios is the result."""
    lines = ["| per worker process | samples/s per CPU-s (rounds) | median | wall samples/s (median) | "
             "project / this, per round | median ratio |", "| --- | --- | ---: | ---: | --- | ---: |"]
    proj = results.get("project", [])
    for name, rows in results.items():
        if rows and all("skipped" in r for r in rows):
            lines.append(f"| {LABELS[name]} | skipped: OpenCV not installed ({INSTALL_HINT}) | | | | |")
            continue
        ratios = [p["per_cpu_s"] / r["per_cpu_s"] for p, r in zip(proj, rows) if "per_cpu_s" in p and "per_cpu_s" in r]
        rounds = ", ".join(_fmt(r.get("per_cpu_s")) for r in rows)
        lines.append(f"| {LABELS[name]} | {rounds} | {_fmt(_median(rows, 'per_cpu_s'))} | "
                     f"{_fmt(_median(rows, 'wall'))} | {', '.join(f'{x:.2f}' for x in ratios)} | "
                     f"{_fmt(statistics.median(ratios) if ratios else None, '.2f')} |")
    return lines


def _loader_table(results: dict, workers: int) -> list:
    lines = [f"| TrainLoader, {workers} workers, batch 16 | samples/s delivered (rounds) | median | "
             "main-process CPU ms per batch (median) | CPU ms per sample, main + workers (rounds) | median |",
             "| --- | --- | ---: | ---: | --- | ---: |"]
    for transport, rows in results.items():
        rounds = ", ".join(_fmt(r.get("wall")) for r in rows)
        total = ", ".join(_fmt(r.get("total_cpu_ms"), ".2f") for r in rows)
        lines.append(f"| transport={transport} | {rounds} | {_fmt(_median(rows, 'wall'))} | "
                     f"{_fmt(_median(rows, 'main_cpu_ms'))} | {total} | {_fmt(_median(rows, 'total_cpu_ms'), '.2f')} |")
    return lines


def drive(args) -> int:
    quick = args.quick
    rounds = args.rounds or (2 if quick else 5)
    n = 32 if quick else 64
    batches = 6 if quick else 16
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in os.environ.get(
        "PYTHONPATH", "").split(os.pathsep) if p]))
    burner = None
    if os.environ.get("CONTEND") == "1":
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    kinds = list(WORKER_KINDS) + ([("baseline", "project", True)] if args.baseline_root else [])
    workers_res = {name: [] for name, _, _ in kinds}
    loader_res = {t: [] for t in ("float32", "uint8")}
    try:
        with tempfile.TemporaryDirectory(prefix="segnext_pipeline_") as tmp:
            sys.path.insert(0, str(HERE))
            import _pipeline_inputs as P
            P.write_ade_like(tmp, 16 if quick else 48)
            sizes = [os.path.getsize(os.path.join(tmp, "images", "training", f))
                     for f in os.listdir(os.path.join(tmp, "images", "training"))]
            for r in range(rounds):
                for name, kind, keep in (kinds if r % 2 == 0 else kinds[::-1]):  # alternate the order
                    child_env = env
                    if name == "baseline":
                        child_env = dict(env, PYTHONPATH=os.pathsep.join([args.baseline_root, env["PYTHONPATH"]]))
                    workers_res[name].append(_child(["--child-worker", kind, "--root", tmp, "--n", str(n)]
                                                    + (["--keep-memory"] if keep else []), child_env))
                for transport in loader_res:
                    loader_res[transport].append(_child(["--child-loader", transport, "--root", tmp, "--batches",
                                                         str(batches), "--workers", str(args.workers)], env))
                print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    finally:
        if burner is not None:
            burner.kill()
    errors = [(k, r["error"]) for k, rows in {**workers_res, **loader_res}.items() for r in rows if "error" in r]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC | {_cpu_name()} | {os.cpu_count()} CPUs | "
          f"load average before: {os.getloadavg()[0]:.2f} | CONTEND={os.environ.get('CONTEND', '0')} | "
          f"{rounds} rounds, {n} samples per worker measurement, mean JPEG {statistics.mean(sizes) / 1024:.0f} KiB\n")
    print("\n".join(_worker_table(workers_res)) + "\n")
    print("\n".join(_loader_table(loader_res, args.workers)))
    for k, e in errors:
        print(f"error in {k}: {e}", file=sys.stderr)
    return 1 if errors else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 rounds, 32 samples per worker measurement, 6 loader batches")
    p.add_argument("--rounds", type=int, default=0)
    p.add_argument("--workers", type=int, default=8, help="loader workers (default 8)")
    p.add_argument("--baseline-root", help="another checkout (e.g. `git worktree add /tmp/base <commit>`) whose "
                                           "project pipeline is measured as one more column")
    p.add_argument("--child-worker", help=argparse.SUPPRESS)
    p.add_argument("--child-loader", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batches", type=int, help=argparse.SUPPRESS)
    p.add_argument("--keep-memory", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_worker:
        print("RESULT " + json.dumps(run_worker(args.child_worker, args.root, args.n, args.keep_memory)))
        return 0
    if args.child_loader:
        print("RESULT " + json.dumps(run_loader(args.child_loader, args.root, args.batches, args.workers)))
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
