#!/usr/bin/env python
"""One prepared command for a CUDA machine: does the Jittor CUDA path import, match the reference,
train and run at the paper's speed? Every row gets PASS / FAIL / INFO against a stated threshold;
the exit status is 1 if any row FAILs. A JSON file with every number is written (--json).

    python tools/gpu_check.py                      # CUDA: the full check, under 10 minutes cold
    python tools/gpu_check.py --device cpu --quick # CPU smoke test of the same steps (CI runs it)

Steps (each in its own process with its own timeout, so one failure does not hide the others):
  gpu         which GPU the steps run on (nvidia-smi, mapped by UUID / PCI bus id)
  import      segnext_jt + jittor with the requested device (use_cuda=1 on CUDA)
  parity      tests/models/test_parity.py on that device, TF32 off (the mmseg 1.2.2 fixtures)
  train T     SegNeXt-T, batch 16, 512x512, AdamW: s/step and the allocator's peak memory
              (mmseg's log: 17.9 GB at batch 16 on one GPU)
  train L     SegNeXt-L, batch 2, 512x512: s/step and peak memory (INFO: no reference at batch 2)
  fps T / L   inference the mmseg way (tools/benchmark.py: batch 1, 512x683 synthetic images; paper:
              52.4 / 22.9 fps on an A100)
  ms+flip     a seeded random-init demo model evaluated with --ms-flip on the CPU and on the device,
              TF32 off: per-pixel argmax agreement and mIoU compared by tolerance
  mpirun      with >= 2 GPUs: `mpirun -np 2 tools/train.py --sync-bn` against one process with the
              same global batch (loss curves compared by tolerance)

TF32: the parity, ms+flip and mpirun steps run with NVIDIA_TF32_OVERRIDE=0 (cuDNN's default math
may use TF32 for float32 convolutions on Ampere and later; Jittor's own switch, flags.use_tensorcore,
is 0 by default and asks cuBLAS for full float32). Speed and memory steps keep the defaults, as the
paper's PyTorch numbers did.

--quick shrinks every step (batch 2 at 128x128, 3 images, 8 validation images) to check the
plumbing, not the numbers: its speed and memory rows are INFO.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from gpu_check_verdicts import (AGREEMENT_MIN, BUDGETS, MIOU_TOL, agreement_verdict, fps_verdict,
                                loss_curve_verdict, memory_verdict, overall_verdict, render_table, row)

ROOT = Path(__file__).resolve().parents[1]

TF32_OFF = {"NVIDIA_TF32_OVERRIDE": "0"}


def _run(cmd: list, device: str, timeout: float, extra_env: Optional[dict] = None) -> tuple[bool, str, float]:
    """Run a step in a fresh process with SEGNEXT_DEVICE set; (ok, output tail, seconds). CUDA
    numbers GPUs in PCI bus order here (CUDA_DEVICE_ORDER, unless set) so that the GPU row names
    the GPU the steps use."""
    env = dict(os.environ, SEGNEXT_DEVICE=device, **(extra_env or {}))
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    start = time.perf_counter()
    try:
        proc = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        ok, out = proc.returncode == 0, (proc.stdout + proc.stderr)
        if not ok:  # a crash may print nothing: the status says at least that much
            out += f"\n(exit status {proc.returncode})"
    except subprocess.TimeoutExpired as exc:
        tail = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        ok, out = False, (f"{tail}\ntimed out after {timeout:.0f} s (this step's budget; on a cold kernel "
                          f"cache that is compile time: run the check again)")
    return ok, out.strip()[-2000:], time.perf_counter() - start


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def check_gpu(device: str) -> tuple[dict, Optional[dict]]:
    from segnext_jt.memory import visible_gpu
    if device != "cuda":
        cpu = platform.processor() or platform.machine()
        return row("gpu", "INFO", f"cpu ({cpu}, {os.cpu_count()} cores)", "-", 0.0), None
    env = dict(os.environ)
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    gpu = visible_gpu(0, env)
    if gpu is None:
        return row("gpu", "INFO", "not identified (no nvidia-smi, or a MIG slice)", "-", 0.0), None
    value = f"{gpu['name']}, {gpu['memory.total'] or 0:.0f} MiB, {gpu['pci.bus_id']}"
    return row("gpu", "INFO", value, "-", 0.0, numbers=gpu), gpu


def check_import(device: str, budget: float) -> dict:
    code = ("import segnext_jt, jittor as jt; from segnext_jt import runtime; "
            "print(f'device={runtime.DEVICE} use_cuda={jt.flags.use_cuda} "
            "use_tensorcore={jt.flags.use_tensorcore} jittor={jt.__version__}')")
    ok, out, secs = _run([sys.executable, "-c", code], device, budget)
    want = "use_cuda=1" if device == "cuda" else "use_cuda=0"
    passed = ok and want in out
    return row("import", "PASS" if passed else "FAIL", _last_line(out), f"{want} in the child", secs, budget)


def check_parity(device: str, quick: bool, budget: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/models/test_parity.py"]
    if quick:
        cmd += ["-k", "test_eval_fixture_stages_head_and_logits and 64x64 and fast"]
    ok, out, secs = _run(cmd, device, budget, TF32_OFF)
    return row("parity", "PASS" if ok else "FAIL", _last_line(out),
               "the parity tests' tolerances pass, TF32 off", secs, budget)


def check_train_step(device: str, quick: bool, size: str, batch: int, crop: int, work: Path,
                     budget: float) -> dict:
    name = f"train {size.upper()} b{batch} {crop}^2"
    out_json = work / f"train_{size}_b{batch}.json"
    cmd = [sys.executable, "tools/benchmark.py", f"configs/segnext_{size}.yaml", "--train-step",
           "--batch-size", batch, "--steps", 1 if quick else 3, "--json", out_json,
           "--cfg-options", f"data.crop_size=[{crop},{crop}]"]
    ok, out, secs = _run(cmd, device, budget)
    if not ok or not out_json.exists():
        return row(name, "FAIL", _last_line(out), "the step runs", secs, budget)
    res = json.loads(out_json.read_text())
    device_mb = res.get("peak_device_mb")
    mem_mb = device_mb if device_mb is not None else res["peak_host_mb"]
    kind = "allocator peak" if device_mb is not None else "host RSS"
    status, threshold = memory_verdict(mem_mb, device_mb is not None, quick, size, batch, crop)
    return row(name, status, f"{res['median_step_s']:.3f} s/step, {kind} {mem_mb / 1000:.2f} GB", threshold,
               secs, budget, numbers=res)


def check_fps(device: str, quick: bool, size: str, gpu: Optional[dict], work: Path, budget: float) -> dict:
    out_json = work / f"fps_{size}.json"
    images, warmup = (3, 1) if quick else (200, 5)
    cmd = [sys.executable, "tools/benchmark.py", f"configs/segnext_{size}.yaml", "--synthetic",
           "--num-images", images, "--warmup", warmup, "--json", out_json]
    ok, out, secs = _run(cmd, device, budget)
    if not ok or not out_json.exists():
        return row(f"fps {size.upper()}", "FAIL", _last_line(out), "the benchmark runs", secs, budget)
    res = json.loads(out_json.read_text())
    status, threshold = fps_verdict(res["fps"], size, device, quick, (gpu or {}).get("name"))
    return row(f"fps {size.upper()}", status, f"{res['fps']:.2f} fps", threshold, secs, budget, numbers=res)


_RANDOM_INIT_CODE = """
import sys, segnext_jt
from segnext_jt import rng
from segnext_jt.io import STATE_DICT_PREFIX, save_npz
rng.seed_everything(0)
model = segnext_jt.build_segmentor(segnext_jt.load_config("configs/demo_mnist.yaml"))
save_npz(sys.argv[1], {STATE_DICT_PREFIX + k: v.numpy() for k, v in model.state_dict().items()}, {})
"""


def prepare_demo(work: Path, quick: bool, budget: float) -> tuple[Optional[str], float]:
    """Demo data and a seeded random-init demo model (on the CPU); (error line or None, seconds)."""
    n_val = 8 if quick else 50
    total = 0.0
    for cmd in ([sys.executable, "tools/prepare_demo_data.py", "--out", work / "demo", "--num-train", "8",
                 "--num-val", n_val, "--size", "96", "--workers", "0"],
                [sys.executable, "-c", _RANDOM_INIT_CODE, work / "demo_init.npz"]):
        ok, out, secs = _run(cmd, "cpu", max(budget - total, 1))
        total += secs
        if not ok:
            return _last_line(out), total
    return None, total


def _read_label_maps(folder: Path) -> dict:
    import numpy as np
    from PIL import Image
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def check_msflip_agreement(device: str, quick: bool, work: Path, budget: float) -> dict:
    """No training needed: a random-init demo model gives per-pixel varying logits, enough to see
    whether two devices agree; both evaluations read the same weights file."""
    name, threshold = "ms+flip cpu vs device", f"argmax agreement >= {AGREEMENT_MIN}, mIoU within {MIOU_TOL}"
    error, total = prepare_demo(work, quick, budget / 3)
    if error:
        return row(name, "FAIL", error, threshold, total, budget)
    results, maps = [], []
    for i, dev in enumerate(["cpu", device]):
        out_json, out_dir = work / f"msflip_{i}_{dev}.json", work / f"msflip_{i}_{dev}"
        cmd = [sys.executable, "tools/eval.py", "configs/demo_mnist.yaml", work / "demo_init.npz", "--ms-flip",
               "--json", out_json, "--out-dir", out_dir, "--no-progress",
               "--cfg-options", f"data.root={work / 'demo' / 'ADEChallengeData2016'}"]
        ok, out, secs = _run(cmd, dev, max(budget - total, 1), TF32_OFF)
        total += secs
        if not ok:
            return row(name, "FAIL", f"{dev}: {_last_line(out)}", threshold, total, budget)
        results.append(json.loads(out_json.read_text()))
        maps.append(_read_label_maps(out_dir))
    status, value, numbers = agreement_verdict(maps[0], maps[1], results[0]["mIoU"], results[1]["mIoU"])
    return row(name, status, value, threshold, total, budget, numbers=numbers)


def _train_losses(work_dir: Path) -> dict:
    lines = [json.loads(x) for x in (work_dir / "log.json").read_text().splitlines() if x.strip()]
    return {r["iter"]: r["loss"] for r in lines if r.get("mode") == "train"}


def check_mpirun(device: str, quick: bool, n_gpus: int, work: Path, budget: float) -> dict:
    name, threshold = "mpirun -np 2 --sync-bn vs 1 process", "loss within 1e-3 x loss at every logged iter"
    if device != "cuda" or n_gpus < 2:
        why = ("needs >= 2 GPUs (tests/engine/test_mpi.py checks mpirun on the CPU)" if device == "cuda" else
               "skipped on the CPU (tests/engine/test_mpi.py checks it there)")
        return row(name, "INFO", why, threshold, 0.0)
    if shutil.which("mpirun") is None:
        return row(name, "FAIL", "mpirun not found (apt-get install openmpi-bin libopenmpi-dev)", threshold, 0.0)
    options = [f"data.root={work / 'demo' / 'ADEChallengeData2016'}", "data.crop_size=[64,64]",
               "data.scale=[256,128]", "train.batch_size=4", "train.max_iters=6", "train.log_interval=1",
               "train.eval_interval=1000", "train.checkpoint_interval=1000", "data.num_workers=0"]
    train = [sys.executable, "tools/train.py", "configs/demo_mnist.yaml", "--no-progress", "--seed", "0"]
    mpi = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2"]
    total, losses = 0.0, []
    for tag, prefix, extra in (("single", [], []), ("mpi", mpi, ["--sync-bn"])):
        cmd = prefix + train + ["--work-dir", work / f"mpi_{tag}", *extra, "--cfg-options", *options]
        ok, out, secs = _run(cmd, device, max(budget - total, 1), TF32_OFF)
        total += secs
        if not ok:
            return row(name, "FAIL", f"{tag}: {_last_line(out)}", threshold, total, budget)
        losses.append(_train_losses(work / f"mpi_{tag}"))
    status, value, numbers = loss_curve_verdict(losses[0], losses[1], rel_tol=1e-3)
    return row(name, status, value, threshold, total, budget, numbers=numbers)


def _count_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([e for e in visible.split(",") if e.strip()])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def run_checks(device: str, quick: bool, work: Path) -> tuple[list, Optional[dict]]:
    budget = BUDGETS["quick" if quick else "full"]
    crop_t, batch_t = (128, 2) if quick else (512, 16)
    gpu_row, gpu = check_gpu(device)
    rows = [gpu_row, check_import(device, budget["import"]), check_parity(device, quick, budget["parity"]),
            check_train_step(device, quick, "t", batch_t, crop_t, work, budget["train_t"])]
    if quick:
        rows.append(row("train L b2 512^2", "INFO", "skipped in --quick (train T runs the same code)", "-", 0.0))
    else:
        rows.append(check_train_step(device, quick, "l", 2, 512, work, budget["train_l"]))
    for size in ("t", "l"):
        rows.append(check_fps(device, quick, size, gpu, work, budget[f"fps_{size}"]))
    rows.append(check_msflip_agreement(device, quick, work, budget["msflip"]))
    rows.append(check_mpirun(device, quick, _count_gpus() if device == "cuda" else 0, work, budget["mpirun"]))
    return rows, gpu


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--quick", action="store_true", help="small shapes: checks the plumbing, not the numbers")
    p.add_argument("--json", help="where to write every number (default: "
                                  "work_dirs/gpu_check/gpu_check_<device>[_quick].json)")
    args = p.parse_args(argv)
    from segnext_jt.cli import UsageError, check_output_file
    suffix = f"{args.device}{'_quick' if args.quick else ''}"
    try:
        json_path = check_output_file(args.json or str(ROOT / "work_dirs" / "gpu_check" / f"gpu_check_{suffix}.json"),
                                      "--json")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segnext_gpu_check_") as tmp:
        rows, gpu = run_checks(args.device, args.quick, Path(tmp))
    total = time.perf_counter() - start
    verdict = overall_verdict(rows)
    print(f"\ngpu_check --device {args.device}{' --quick' if args.quick else ''}: {verdict} "
          f"({total:.0f} s in all)\n")
    print(render_table(rows))
    report = {"device": args.device, "quick": args.quick, "gpu": gpu, "verdict": verdict, "total_seconds": total,
              "budget_seconds": sum(BUDGETS["quick" if args.quick else "full"].values()),
              "tf32": "off for parity, ms+flip and mpirun (NVIDIA_TF32_OVERRIDE=0; Jittor use_tensorcore=0)",
              "rows": rows}
    from segnext_jt.files import write_json_atomic
    write_json_atomic(json_path, report)
    print(f"\nevery number: {json_path}")
    return 0 if verdict != "FAIL" else 1


if __name__ == "__main__":
    sys.exit(main())
