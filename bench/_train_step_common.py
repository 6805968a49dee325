"""What bench/train_step.py (project) and bench/train_step_torch.py (PyTorch) share, so the two
sides of bench/train_step.sh take the same options, inputs and timing loop. NumPy and the standard
library only: it is imported from both the project's and the PyTorch reference's virtualenv."""
import argparse
import json
import statistics
import time

import numpy as np


def step_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="t", choices=["t", "s", "b", "l"])
    ap.add_argument("--mode", default="step", choices=["step", "fwdbwd"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--res", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    return ap


def random_batch(batch: int, res: int):
    """Images ~ N(0, 1) and labels in 0..149 with an ignored 8x8 corner (seed 0), as int64."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, res, res), dtype=np.float32)
    label = rng.integers(0, 150, (batch, res, res)).astype(np.int64)
    label[:, :8, :8] = 255
    return x, label


def time_steps(step, warmup: int, runs: int, before=lambda: None) -> list:
    """Seconds of each of warmup + runs calls of step(); before() runs untimed ahead of each."""
    times = []
    for _ in range(warmup + runs):
        before()
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def print_result(impl: str, args: argparse.Namespace, times: list, **extra) -> None:
    """The RESULT line bench/train_step.sh collects: the median of the timed (post-warm-up) steps."""
    print("RESULT", json.dumps({"impl": impl, "size": args.size, "mode": args.mode, "batch": args.batch,
                                "res": args.res, "s": statistics.median(times[args.warmup:]), "times": times, **extra}),
          flush=True)
