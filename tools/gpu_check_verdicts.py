"""The verdict rules of tools/gpu_check.py, kept apart from the steps that produce the numbers so
that they can be tested without running them (tests/tools/test_gpu_check.py).

Every row is PASS, FAIL or INFO against a threshold stated in the row itself:
* speed (paper: T 52.4 / L 22.9 fps on an A100): PASS at >= FPS_FRACTION of the paper's figure on
  an A100-class GPU (A100 or newer data-centre parts, which should beat it), FAIL below; INFO on
  other GPUs (a smaller card may rightly be slower), on the CPU and in --quick;
* memory (mmseg's log: T 17.9 GB at batch 16, torch.cuda.max_memory_allocated): PASS at <=
  MEMORY_FACTOR times that. Ours is the peak Jittor's caching allocator holds, cache included, which
  is above the allocated peak by its fragmentation; FAIL above. INFO where there is no reference;
* CPU vs device: argmax agreement >= AGREEMENT_MIN and |mIoU difference| <= MIOU_TOL (points);
* the rest: the step runs and its own test passes.
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np

PAPER_FPS = {"t": 52.4, "l": 22.9}          # SegNeXt paper, A100, 512x512 ADE20K, batch 1
PAPER_TRAIN_MB = {("t", 16, 512): 17.9e3,   # mmseg's logs (MB), one GPU, batch 16, 512x512
                  ("l", 16, 512): 43.32e3}
FPS_FRACTION = 0.9
MEMORY_FACTOR = 1.5
AGREEMENT_MIN = 0.9999
MIOU_TOL = 0.05
A100_CLASS = ("A100", "A800", "H100", "H800", "H200", "GH200", "B100", "B200", "GB200")
# Per-step timeouts in seconds. The full check's sum stays below 10 minutes with the GPU probes
# (two nvidia-smi calls of at most 10 s each), compile on a cold kernel cache included. --quick runs
# in CI on 2 shared CPU cores, where compiling is the slow part: its caps only stop a hang (measured
# on such a machine: 160-270 s in all with an empty kernel cache, 33 s warm).
BUDGETS = {
    "full": {"import": 120, "parity": 90, "train_t": 90, "train_l": 60, "fps_t": 45, "fps_l": 45,
             "msflip": 60, "mpirun": 50},
    "quick": {"import": 240, "parity": 240, "train_t": 240, "train_l": 0, "fps_t": 240, "fps_l": 240,
              "msflip": 240, "mpirun": 0},
}


def row(step: str, status: str, value: str, threshold: str, seconds: float, timeout_s: Optional[float] = None,
        numbers: Optional[dict] = None) -> dict:
    assert status in ("PASS", "FAIL", "INFO"), status
    return {"step": step, "status": status, "value": value, "threshold": threshold, "seconds": round(seconds, 1),
            "timeout_s": timeout_s, "numbers": numbers or {}}


def is_a100_class(gpu_name: Optional[str]) -> bool:
    """'NVIDIA A100-SXM4-40GB', 'NVIDIA H100 80GB HBM3': yes; 'NVIDIA A10', 'Tesla V100': no."""
    return bool(set(re.split(r"[\s_-]+", (gpu_name or "").upper())) & set(A100_CLASS))


def fps_verdict(fps: float, size: str, device: str, quick: bool, gpu_name: Optional[str]) -> tuple[str, str]:
    paper = PAPER_FPS[size]
    if device != "cuda" or quick:
        return "INFO", f"paper {paper} fps on an A100; {'--quick' if quick else device} numbers are no measure of it"
    if not is_a100_class(gpu_name):
        return "INFO", (f"paper {paper} fps on an A100; {gpu_name or 'this unidentified GPU'} is not "
                        f"A100-class, so no verdict")
    need = FPS_FRACTION * paper
    return ("PASS" if fps >= need else "FAIL"), f">= {FPS_FRACTION} x paper {paper} = {need:.1f} fps ({gpu_name})"


def memory_verdict(mem_mb: float, on_device: bool, quick: bool, size: str, batch: int, crop: int) -> tuple[str, str]:
    if quick or not on_device:
        return "INFO", "host RSS / --quick shapes: no reference"
    ref = PAPER_TRAIN_MB.get((size, batch, crop))
    if ref is None:
        known = ", ".join(f"{s.upper()} {mb / 1e3:.1f} GB at b{b}" for (s, b, _), mb in PAPER_TRAIN_MB.items())
        return "INFO", f"no reference at batch {batch} (mmseg: {known})"
    limit = MEMORY_FACTOR * ref
    status = "PASS" if mem_mb <= limit else "FAIL"
    return status, (f"<= {MEMORY_FACTOR} x mmseg's {ref / 1e3:.1f} GB = {limit / 1e3:.1f} GB "
                    f"(allocator peak incl. its cache vs torch's allocated peak)")


def agreement_verdict(maps_a: dict, maps_b: dict, miou_a: float, miou_b: float) -> tuple[str, str, dict]:
    """Per-pixel agreement of two sets of label maps (name -> 2-D array) and their mIoU difference."""
    if not maps_a or sorted(maps_a) != sorted(maps_b):
        missing = sorted(set(maps_a) ^ set(maps_b))[:3]
        return "FAIL", f"label maps differ in their files ({len(maps_a)} vs {len(maps_b)}; e.g. {missing})", {}
    same = total = 0
    for name, a in maps_a.items():
        b = maps_b[name]
        if a.shape != b.shape:
            return "FAIL", f"{name}: shape {a.shape} vs {b.shape}", {}
        same += int(np.count_nonzero(a == b))
        total += a.size
    agreement = same / total
    miou_diff = abs(float(miou_a) - float(miou_b))
    ok = agreement >= AGREEMENT_MIN and miou_diff <= MIOU_TOL
    numbers = {"agreement": agreement, "pixels": total, "mIoU_cpu": miou_a, "mIoU_device": miou_b,
               "mIoU_diff": miou_diff, "images": len(maps_a)}
    value = f"agreement {agreement:.6f} over {total} pixels, mIoU {miou_a:.2f} vs {miou_b:.2f}"
    return ("PASS" if ok else "FAIL"), value, numbers


def loss_curve_verdict(single: dict, multi: dict, rel_tol: float) -> tuple[str, str, dict]:
    """Loss per logged iteration of one process against mpirun's: the largest relative difference."""
    shared = sorted(set(single) & set(multi))
    if not shared:
        return "FAIL", "no iteration logged by both runs", {}
    rel = [abs(single[i] - multi[i]) / max(abs(single[i]), 1e-12) for i in shared]
    worst = int(np.argmax(rel))
    numbers = {"iters": shared, "loss_single": [single[i] for i in shared], "loss_mpi": [multi[i] for i in shared],
               "max_rel_diff": rel[worst]}
    value = f"max relative loss diff {rel[worst]:.2e} at iter {shared[worst]} over {len(shared)} iters"
    return ("PASS" if rel[worst] <= rel_tol else "FAIL"), value, numbers


def overall_verdict(rows: list) -> str:
    return "FAIL" if any(r["status"] == "FAIL" for r in rows) else "PASS"


def render_table(rows: list) -> str:
    lines = ["| step | verdict | result | threshold | seconds (timeout) |", "| --- | --- | --- | --- | ---: |"]
    for r in rows:
        budget = f" ({r['timeout_s']:.0f})" if r.get("timeout_s") else ""
        lines.append(f"| {r['step']} | {r['status']} | {r['value']} | {r['threshold']} | {r['seconds']:.0f}{budget} |")
    return "\n".join(lines)
