#!/usr/bin/env python
"""One prepared command for a CUDA machine: does the Jittor CUDA path import, match the reference,
train and run at the paper's speed? Prints a table (and --json writes it).

    python tools/gpu_check.py                      # CUDA: the full check (budget: under 8 minutes)
    python tools/gpu_check.py --device cpu --quick # CPU smoke test of the same steps (CI runs it)

Steps (each in its own process, so one failure does not hide the others):
  1. import      segnext_jt + jittor with the requested device (use_cuda=1 on CUDA)
  2. parity      tests/models/test_parity.py on that device (the mmseg 1.2.2 reference fixtures)
  3. train step  SegNeXt-T, batch 16, 512x512, AdamW: seconds per step and peak device memory
                 (paper / mmseg log: 17.9 GB on one GPU)
  4. fps         SegNeXt-T and -L inference the mmseg way (tools/benchmark.py: batch 1, 512x683
                 synthetic images, whole prediction incl. NMF and resize; paper: 52.4 / 22.9 fps)
  5. ms+flip     a small demo model evaluated with --ms-flip on the CPU and on the device: the NMF
                 bases are keyed per image and view, so both must give the same metrics

--quick shrinks every step (batch 2 at 128x128, 3 images, 8 validation images) to check the
plumbing, not the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"train_mem_gb": 17.9, "fps_t": 52.4, "fps_l": 22.9}


def _run(cmd: list[str], device: str, timeout: float) -> tuple[bool, str, float]:
    """Run a step in a fresh process with SEGNEXT_DEVICE set; (ok, output tail, seconds)."""
    env = dict(os.environ, SEGNEXT_DEVICE=device)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        ok, out = proc.returncode == 0, (proc.stdout + proc.stderr)
    except subprocess.TimeoutExpired as exc:
        ok, out = False, f"timed out after {timeout:.0f} s\n{exc.stdout or ''}"
    return ok, out.strip()[-2000:], time.perf_counter() - start


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def check_import(device: str) -> dict:
    code = ("import segnext_jt, jittor as jt; from segnext_jt import runtime; "
            "print(f'device={runtime.DEVICE} use_cuda={jt.flags.use_cuda} jittor={jt.__version__}')")
    ok, out, secs = _run([sys.executable, "-c", code], device, 900)
    want = "use_cuda=1" if device == "cuda" else "use_cuda=0"
    return {"step": "import", "ok": ok and want in out, "value": _last_line(out), "seconds": secs}


def check_parity(device: str, quick: bool) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/models/test_parity.py"]
    if quick:
        cmd += ["-k", "test_eval_fixture_stages_head_and_logits and 64x64 and fast"]
    ok, out, secs = _run(cmd, device, 1200)
    return {"step": "parity", "ok": ok, "value": _last_line(out), "seconds": secs}


def check_train_step(device: str, quick: bool, work: Path) -> dict:
    out_json = work / "train_step.json"
    batch, crop, steps = (2, 128, 1) if quick else (16, 512, 5)
    cmd = [sys.executable, "tools/benchmark.py", "configs/segnext_t.yaml", "--train-step",
           "--batch-size", str(batch), "--steps", str(steps), "--json", str(out_json),
           "--cfg-options", f"data.crop_size=[{crop},{crop}]"]
    ok, out, secs = _run(cmd, device, 1200)
    if not ok or not out_json.exists():
        return {"step": f"train step T b{batch} {crop}^2", "ok": False, "value": _last_line(out), "seconds": secs}
    res = json.loads(out_json.read_text())
    mem = res.get("peak_device_mb") or res.get("peak_host_mb")
    where = "device" if res.get("peak_device_mb") else "host"
    return {"step": f"train step T b{batch} {crop}^2", "ok": True, "seconds": secs,
            "value": f"{res['median_step_s']:.3f} s/step, peak {where} memory {mem / 1024:.1f} GB",
            "reference": f"paper: {PAPER['train_mem_gb']} GB", "result": res}


def check_fps(device: str, quick: bool, size: str, work: Path) -> dict:
    out_json = work / f"fps_{size}.json"
    images, warmup = (3, 1) if quick else (200, 5)
    cmd = [sys.executable, "tools/benchmark.py", f"configs/segnext_{size}.yaml", "--synthetic",
           "--num-images", str(images), "--warmup", str(warmup), "--json", str(out_json)]
    ok, out, secs = _run(cmd, device, 1200)
    if not ok or not out_json.exists():
        return {"step": f"fps {size.upper()}", "ok": False, "value": _last_line(out), "seconds": secs}
    res = json.loads(out_json.read_text())
    return {"step": f"fps {size.upper()}", "ok": True, "value": f"{res['fps']:.2f} fps", "seconds": secs,
            "reference": f"paper: {PAPER['fps_' + size]} fps (A100)", "result": res}


_RANDOM_INIT_CODE = """
import sys, segnext_jt
from segnext_jt import rng
from segnext_jt.io import STATE_DICT_PREFIX, save_npz
rng.seed_everything(0)
model = segnext_jt.build_segmentor(segnext_jt.load_config("configs/demo_mnist.yaml"))
save_npz(sys.argv[1], {STATE_DICT_PREFIX + k: v.numpy() for k, v in model.state_dict().items()}, {})
"""


def check_msflip_agreement(device: str, quick: bool, work: Path) -> dict:
    """No training needed: a seeded random-init demo model gives per-pixel varying logits, enough to
    see whether two devices agree; both evaluations read the same weights file."""
    data = work / "demo"
    n_val = 8 if quick else 50
    steps = [[sys.executable, "tools/prepare_demo_data.py", "--out", str(data), "--num-train", "4",
              "--num-val", str(n_val), "--size", "96", "--workers", "0"],
             [sys.executable, "-c", _RANDOM_INIT_CODE, str(work / "demo_init.npz")]]
    for cmd in steps:
        ok, out, secs = _run(cmd, "cpu", 600)
        if not ok:
            return {"step": "ms+flip cpu vs device", "ok": False, "value": _last_line(out), "seconds": secs}
    results, total = {}, 0.0
    devices = ["cpu", device] if device != "cpu" else ["cpu", "cpu"]
    for i, dev in enumerate(devices):
        out_json = work / f"msflip_{i}_{dev}.json"
        cmd = [sys.executable, "tools/eval.py", "configs/demo_mnist.yaml", str(work / "demo_init.npz"),
               "--ms-flip", "--json", str(out_json), "--no-progress",
               "--cfg-options", f"data.root={data / 'ADEChallengeData2016'}"]
        ok, out, secs = _run(cmd, dev, 1200)
        total += secs
        if not ok:
            return {"step": "ms+flip cpu vs device", "ok": False, "value": _last_line(out), "seconds": total}
        results[f"{i}_{dev}"] = json.loads(out_json.read_text())
    (a, ra), (b, rb) = results.items()
    keys = ("mIoU", "mAcc", "aAcc")
    same = all(ra[k] == rb[k] for k in keys)
    value = f"{a}: " + " ".join(f"{k} {ra[k]}" for k in keys) + f" vs {b}: " + " ".join(f"{k} {rb[k]}" for k in keys)
    return {"step": "ms+flip cpu vs device", "ok": same, "value": value, "seconds": total}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--quick", action="store_true", help="small shapes: checks the plumbing, not the numbers")
    p.add_argument("--json", help="also write the table here")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="segnext_gpu_check_") as tmp:
        work = Path(tmp)
        rows.append(check_import(args.device))
        rows.append(check_parity(args.device, args.quick))
        rows.append(check_train_step(args.device, args.quick, work))
        for size in ("t", "l"):
            rows.append(check_fps(args.device, args.quick, size, work))
        rows.append(check_msflip_agreement(args.device, args.quick, work))
    print(f"\ngpu_check --device {args.device}{' --quick' if args.quick else ''}\n")
    print("| step | ok | result | reference | seconds |\n| --- | --- | --- | --- | ---: |")
    for row in rows:
        print(f"| {row['step']} | {'yes' if row['ok'] else 'NO'} | {row['value']} | {row.get('reference', '')} "
              f"| {row['seconds']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
