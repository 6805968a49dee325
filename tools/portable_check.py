#!/usr/bin/env python
"""Reproduce the portable-mode golden run and compare it with the committed hashes.

    python tools/portable_check.py                    # check tests/fixtures/portable_golden.json
    python tools/portable_check.py --write FIXTURE    # make the fixture on this machine
    python tools/portable_check.py --native --json D  # the same recipe in the default mode (no fixture)

The recipe: a small demo dataset (tools/prepare_demo_data.py, 32 + 6 images of about 64 pixels, made in
portable mode), then configs/demo_mnist.yaml trained 30 iterations with train.deterministic: portable
(tools/train.py restarts itself with SEGNEXT_DETERMINISTIC=portable), evaluated once at the end. The
digest holds the SHA-256 of the data files, of the log lines without timings, of the final checkpoint's
arrays (weights, BN statistics, AdamW moments) and the evaluation's metrics. Exit 0: every part equal
to the fixture; 1: a part differs (each is named); 2: usage error. The first run in portable mode
compiles Jittor's core and kernels into their own cache (about 3 min on 2 cores), later runs reuse it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "portable_golden.json"
ITERS = 30
DATA_ARGS = ["--num-train", "32", "--num-val", "6", "--size", "64", "--seed", "0", "--workers", "0"]
TRAIN_OPTIONS = [f"train.max_iters={ITERS}", f"train.eval_interval={ITERS}", f"train.checkpoint_interval={ITERS}",
                 "train.log_interval=5", "data.num_workers=0", "eval.num_workers=0"]
TIMING_KEYS = {"time", "data_time", "eta", "memory"}  # vary from run to run; everything else must not
PARTS = ("data_sha256", "log_sha256", "weights_sha256", "metrics")


def _env(mode: str, threads: "int | None") -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SEGNEXT_DETERMINISTIC"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    if mode == "native":
        env["SEGNEXT_DETERMINISTIC"] = "native"
    if threads is not None:
        env["SEGNEXT_PORTABLE_THREADS" if mode == "portable" else "OMP_NUM_THREADS"] = str(threads)
    return env


def _run(cmd: list, env: dict) -> None:
    proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[1:3])} exited {proc.returncode}:\n{tail}")


def data_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def arrays_digest(npz_path: Path) -> str:
    """SHA-256 over every array of a checkpoint, by name (sorted), dtype, shape and bytes; the JSON
    metadata (config text, RNG states) is left out."""
    from segnext_jt.io.native import arrays_sha256, load_npz
    return arrays_sha256(load_npz(npz_path)[0])


def log_digest(log_path: Path) -> tuple[str, dict]:
    """(SHA-256 of the train/val lines without timing keys, the last val line's metrics)."""
    digest, metrics = hashlib.sha256(), {}
    for line in log_path.read_text().splitlines()[1:]:  # line 1: metadata (paths, platform)
        obj = {k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS}
        digest.update(json.dumps(obj, sort_keys=True).encode() + b"\n")
        if obj.get("mode") == "val":
            metrics = {k: v for k, v in obj.items() if k not in ("mode", "epoch", "iter", "lr")}
    return digest.hexdigest(), metrics


def run_recipe(work: Path, mode: str = "portable", threads: "int | None" = None) -> dict:
    """Data, training and evaluation in subprocesses; the digest (see the module docstring)."""
    py = sys.executable
    data = work / "data"
    if not (data / "ADEChallengeData2016").is_dir():  # always made in portable mode (NumPy pinned)
        _run([py, "tools/prepare_demo_data.py", "--out", str(data)] + DATA_ARGS, _env("portable", threads))
    run = work / f"train_{mode}"
    shutil.rmtree(run, ignore_errors=True)  # a fresh run every time (tools/train.py would refuse or resume)
    opts = TRAIN_OPTIONS + [f"train.deterministic={mode}", f"data.root={data / 'ADEChallengeData2016'}"]
    _run([py, "tools/train.py", str(ROOT / "configs" / "demo_mnist.yaml"), "--work-dir", str(run),
          "--no-progress", "--cfg-options"] + opts, _env(mode, threads))
    log_sha, metrics = log_digest(run / "log.json")
    platform = json.loads((run / "train_result.json").read_text())["platform"]
    return {"mode": mode, "iterations": ITERS, "data_sha256": data_digest(data), "log_sha256": log_sha,
            "weights_sha256": arrays_digest(run / f"iter_{ITERS}.npz"), "metrics": metrics,
            "platform": {k: platform.get(k) for k in ("cpu_model", "cpu_isa", "threads", "deterministic",
                                                      "compiler", "jittor_codegen_flags", "onednn_isa",
                                                      "numpy_dispatch", "jittor", "numpy", "python", "libc",
                                                      "bits_id")}}


# what portable mode cannot pin (segnext_jt.portable): another value may change the bits legitimately
SOFTWARE_KEYS = ("compiler", "jittor", "numpy", "libc")


def software_differences(digest: dict, fixture: dict) -> list[str]:
    """'compiler g++13.2.0 (fixture g++12.2.0)' for each unpinned software version that differs."""
    here, there = digest["platform"], fixture["platform"]
    diffs = [f"{k} {here.get(k)} (fixture {there.get(k)})" for k in SOFTWARE_KEYS if here.get(k) != there.get(k)]
    minor = [str(p.get("python", "")).rsplit(".", 1)[0] for p in (here, there)]
    return diffs + ([f"python {minor[0]} (fixture {minor[1]})"] if minor[0] != minor[1] else [])


def _cpu_name() -> str:
    """'AMD EPYC (family 26 model 2)': the model name with its family/model numbers (Linux)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "unknown CPU"
    return f"{fields.get('model name', 'unknown CPU')} (family {fields.get('cpu family')} model {fields.get('model')})"


def compare(digest: dict, fixture: dict) -> list[str]:
    """The parts that differ, one line each (empty: bit-identical)."""
    lines = []
    for part in PARTS:
        if digest[part] != fixture[part]:
            if part == "metrics":
                diffs = [f"{k} {fixture[part].get(k)} -> {v}" for k, v in digest[part].items()
                         if fixture[part].get(k) != v]
                lines.append(f"metrics differ: {'; '.join(diffs[:6])}")
            else:
                lines.append(f"{part} differs: {fixture[part][:16]}... (fixture) vs {digest[part][:16]}... (here)")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixture", default=str(FIXTURE), help="hashes to compare with (default %(default)s)")
    p.add_argument("--write", metavar="FIXTURE", help="write this run's digest as the fixture instead")
    p.add_argument("--native", action="store_true", help="run the recipe in the default mode (compare only)")
    p.add_argument("--threads", type=int, help="SEGNEXT_PORTABLE_THREADS (with --native: OMP_NUM_THREADS)")
    p.add_argument("--work-dir", help="keep the data and runs here (default: a temporary folder)")
    p.add_argument("--json", help="also write this run's digest to this file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None and not 1 <= args.threads <= 1024:
        print(f"error: --threads must be from 1 to 1024, got {args.threads}", file=sys.stderr)
        return 2
    fixture = None
    if not args.write:
        try:
            fixture = json.loads(Path(args.fixture).read_text())
        except (OSError, ValueError) as exc:
            print(f"error: {args.fixture}: cannot read the fixture ({exc})", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="portable_check_") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        try:
            digest = run_recipe(work, "native" if args.native else "portable", args.threads)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.json:
        Path(args.json).write_text(json.dumps(digest, indent=1) + "\n")
    where = f"{_cpu_name()} [{' '.join(digest['platform']['cpu_isa'])}]"
    if args.write:
        digest["made_on"] = f"{_cpu_name()}, {time.strftime('%Y-%m-%d', time.gmtime())}"
        Path(args.write).write_text(json.dumps(digest, indent=1) + "\n")
        print(f"wrote {args.write}: weights {digest['weights_sha256'][:16]}..., mIoU {digest['metrics'].get('mIoU')}, "
              f"made on {where}")
        return 0
    diffs = compare(digest, fixture)
    made_on = fixture.get("made_on") or fixture["platform"]["cpu_model"]
    for line in diffs:
        print(line)
    software = software_differences(digest, fixture)
    if diffs and software:
        print(f"note: software differs from the golden run's ({'; '.join(software)}); portable mode pins the "
              f"CPU's choices, not these, so the bits may differ legitimately")
    verdict = "DIFFERENT from" if diffs else "bit-identical to"
    print(f"{digest['mode']} run on {where}, {digest['platform']['threads']} threads: {verdict} the golden run "
          f"made on {made_on} (weights {digest['weights_sha256'][:16]}..., mIoU {digest['metrics'].get('mIoU')})")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
