#!/usr/bin/env python
"""Speed of SegNeXt forward (eval, with NMF) and forward+backward (train mode) on the current device.

For every (size, batch, mode) the script reports
  * first    - wall time of the first call, which includes Jittor's kernel compilation (a warm
               ~/.cache/jittor makes this much smaller on a second run of the script),
  * median / min - over `--repeats` timed calls after `--warmup` untimed ones,
  * img/s    - batch / median,
  * peak RSS - the process's resident memory peak while this measurement ran (sampled from
               /proc/self/status every few ms; the first call is included),
  * load     - the 1-minute load average after the measurement: on a shared machine, other
               processes competing for the cores slow everything down (oneDNN's threads most).

Jittor executes lazily, so every timed region starts and ends with `jt.sync_all(True)`, and the
forward syncs its logits (backward: every gradient) inside the region.

    python bench/bench_model.py                                   # T and L, batch 1 and 2, 512x512
    python bench/bench_model.py --sizes t --batches 1 --repeats 3 --warmup 1 --modes fwd
    SEGNEXT_DEVICE=cuda python bench/bench_model.py --json bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segnext_jt import build_segmentor, load_config, runtime  # noqa: E402  (before jittor)
from segnext_jt.models.ham_head import KEY_EVAL  # noqa: E402

import jittor as jt  # noqa: E402

SIZES = ("t", "s", "b", "l")
MODES = ("fwd", "fwdbwd")


# ------------------------------------------------------------------------------------------ memory
def _rss_kib() -> int:
    """Current resident set size of this process in KiB (Linux), 0 where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRSS:
    """Context manager: the peak RSS (KiB) seen while the block runs, polled by a daemon thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_kib())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.peak = _rss_kib()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_kib())


# ------------------------------------------------------------------------------------------ steps
def make_step(model, mode: str, batch: int, res: int, num_classes: int, ignore_index: int):
    """A zero-argument callable running one synced forward (or forward+backward) on fixed inputs."""
    rng = np.random.default_rng(0)
    x = jt.array(rng.standard_normal((batch, 3, res, res), dtype=np.float32))
    keys = [(KEY_EVAL, 0, i) for i in range(batch)]  # explicit NMF keys: same draws every call
    if mode == "fwd":
        model.eval()

        def step():
            with jt.no_grad():
                logits = model.encode_decode(x, keys)
                logits.sync()
            return logits
        return step

    model.train()
    label_np = rng.integers(0, num_classes, size=(batch, res, res)).astype(np.int32)
    label_np[:, :8, :8] = ignore_index  # a few ignored pixels, as in real crops
    label = jt.array(label_np)
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        loss = model.loss(x, label, keys)["loss"]
        grads = jt.grad(loss, params)
        jt.sync(grads + [loss])
        return loss
    return step


def timed(step) -> float:
    jt.sync_all(True)
    start = time.perf_counter()
    step()
    jt.sync_all(True)
    return time.perf_counter() - start


def bench_one(model, size: str, mode: str, batch: int, res: int, repeats: int, warmup: int,
              num_classes: int, ignore_index: int) -> dict:
    step = make_step(model, mode, batch, res, num_classes, ignore_index)
    with PeakRSS() as mem:
        first = timed(step)
        for _ in range(warmup):
            timed(step)
        times = [timed(step) for _ in range(repeats)]
    jt.sync_all(True)
    jt.gc()
    median = statistics.median(times)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"size": size, "mode": mode, "batch": batch, "res": res, "first_s": first,
            "median_s": median, "min_s": min(times), "times_s": times, "img_per_s": batch / median,
            "peak_rss_mib": mem.peak / 1024.0, "repeats": repeats, "warmup": warmup,
            "load_avg_1min": load}


# ------------------------------------------------------------------------------------------ output
def markdown_table(rows: list[dict]) -> str:
    lines = ["| model | mode | batch | res | first call (s) | median (s) | min (s) | img/s | peak RSS (MiB) "
             "| runs | load |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| SegNeXt-{r['size'].upper()} | {r['mode']} | {r['batch']} | {r['res']} | "
                     f"{r['first_s']:.2f} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['img_per_s']:.2f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['warmup']}+{r['repeats']} | {r['load_avg_1min']:.1f} |")
    return "\n".join(lines)


def environment() -> dict:
    info = runtime.device_summary()
    info.update({"cpu_count": os.cpu_count(), "machine": platform.machine(),
                 "processor": platform.processor() or platform.machine()})
    try:  # the CPU model is more useful than platform.processor() on Linux
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def _csv(text: str, cast=str) -> list:
    return [cast(t.strip()) for t in text.split(",") if t.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="t,l", help="comma list of t,s,b,l (default t,l)")
    parser.add_argument("--batches", default="1,2", help="comma list of batch sizes (default 1,2)")
    parser.add_argument("--res", type=int, default=512, help="square input size (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs after the first call (default 1)")
    parser.add_argument("--modes", default="fwd,fwdbwd", help="comma list of fwd,fwdbwd (default both)")
    parser.add_argument("--config-dir", default=str(ROOT / "configs"), help="where segnext_{size}.yaml live")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    sizes, modes, batches = _csv(args.sizes), _csv(args.modes), _csv(args.batches, int)
    for s in sizes:
        if s not in SIZES:
            parser.error(f"--sizes: {s!r} is not one of {SIZES}")
    for m in modes:
        if m not in MODES:
            parser.error(f"--modes: {m!r} is not one of {MODES}")
    if args.repeats < 1 or args.warmup < 0 or not batches or min(batches) < 1:
        parser.error("--repeats must be >= 1, --warmup >= 0 and batches >= 1")

    env = environment()
    env["cpu_kernels"] = os.environ.get("SEGNEXT_CPU_KERNELS", "native")
    env["eval_folding"] = os.environ.get("SEGNEXT_EVAL_FOLDING", "1")
    env["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
    print(f"# device: {env['device']} (jittor {env['jittor']}, {env['cpu_count']} CPUs"
          f"{', ' + env['cpu_model'] if 'cpu_model' in env else ''}"
          f"{'' if env['device'] == 'cuda' else ', CPU kernels: ' + env['cpu_kernels']}, eval folding {env['eval_folding']})", flush=True)
    rows = []
    for size in sizes:
        cfg = load_config(Path(args.config_dir) / f"segnext_{size}.yaml")
        start = time.perf_counter()
        model = build_segmentor(cfg)
        jt.sync_all(True)
        print(f"# built SegNeXt-{size.upper()} in {time.perf_counter() - start:.1f} s", flush=True)
        head = cfg.model.decode_head
        for mode in modes:
            for batch in batches:
                row = bench_one(model, size, mode, batch, args.res, args.repeats, args.warmup,
                                head.num_classes, head.ignore_index)
                rows.append(row)
                print(f"# {size} {mode} b{batch}: first {row['first_s']:.2f} s, median {row['median_s']:.3f} s, "
                      f"peak RSS {row['peak_rss_mib']:.0f} MiB", flush=True)
        del model
        jt.gc()

    print()
    print(markdown_table(rows))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"environment": env, "args": vars(args), "results": rows},
                                                   indent=1))
        print(f"\nwrote {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
