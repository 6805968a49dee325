"""Pre-flight check before a long run (`tools/train.py CONFIG --check`, `seed_sweep.py --check`):
everything a run needs except the training itself, as a table, writing nothing.

config (already validated when this runs) -> data (counts, every image/label header, a few samples
through the train pipeline) -> device -> pretrained weights (resolved, keys matched) -> one training
step (forward, backward, AdamW) timed, with its peak memory -> the run's wall time and checkpoint
disk use, against the free space where the work dir will be.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from ..config import Config
from ..files import free_bytes

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SAMPLES_THROUGH_PIPELINE = 2


@dataclass
class PreflightReport:
    rows: List[tuple] = field(default_factory=list)  # (check, status, detail)

    def add(self, check: str, status: str, detail: str) -> None:
        self.rows.append((check, status, detail))

    @property
    def ok(self) -> bool:
        return all(status != FAIL for _, status, _ in self.rows)

    def table(self) -> str:
        width = max((len(c) for c, _, _ in self.rows), default=5)
        lines = [f"{'check':<{width}}  {'':4}  detail", "-" * (width + 40)]
        lines += [f"{c:<{width}}  {s:<4}  {d}" for c, s, d in self.rows]
        verdict = "ready to train" if self.ok else "NOT ready: fix the FAIL rows"
        return "\n".join(lines + [f"pre-flight: {verdict} (nothing was written)"])


def _human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(nbytes) < 1024 or unit == "TB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    return f"{nbytes:.1f} TB"  # pragma: no cover


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def check_data(cfg: Config, report: PreflightReport, progress: bool) -> Optional[list]:
    """Counts, every pair's headers, and a few train samples through the pipeline; returns those
    samples (img, label) for the step check, or None when the data cannot be used."""
    from ..data.build import build_dataset, train_pipeline
    from ..data.sampling import load_train_sample, sample_indices
    from ..data.verify import verify_pairs
    num_classes = cfg.model.decode_head.num_classes
    datasets = {}
    for split in ("train", "val"):
        try:
            datasets[split] = build_dataset(cfg.data, split, num_classes)
        except (ValueError, OSError) as exc:
            report.add(f"data: {split}", FAIL, str(exc))
            return None
        checked, problems = verify_pairs(datasets[split], progress=progress)
        if problems:
            first = problems[0]
            report.add(f"data: {split}", FAIL, f"{len(problems)}{'+' if len(problems) >= 20 else ''} bad pair(s) in "
                                                f"{checked} checked; first: {first.path}: {first.problem}")
            return None
        report.add(f"data: {split}", OK, f"{len(datasets[split])} image/label pairs under {cfg.data.root}, "
                                         f"headers checked (sizes, label modes)")
    train = datasets["train"]
    pipeline = train_pipeline(cfg.data)
    idx = sample_indices(cfg.train.seed, 0, SAMPLES_THROUGH_PIPELINE, len(train))
    try:
        samples = [load_train_sample(train, pipeline, cfg.train.seed, 0, s, i)[:2] for s, i in enumerate(idx)]
    except Exception as exc:  # noqa: BLE001 - SampleLoadError names the file
        report.add("data: pipeline", FAIL, str(exc))
        return None
    report.add("data: pipeline", OK, f"{len(samples)} training samples read and augmented "
                                     f"(crop {samples[0][0].shape[1]}x{samples[0][0].shape[2]})")
    return samples


def check_weights(cfg: Config, model, report: PreflightReport, progress: bool) -> None:
    """The backbone's pretrained weights: resolved (cache, or downloaded as the run would) and
    matched key by key."""
    from .. import hub
    from ..errors import CheckpointError, one_line
    from .pretrained import init_backbone
    spec = cfg.model.backbone.pretrained
    if not spec:
        report.add("weights", WARN if cfg.from_scratch_on_a_benchmark() else OK,
                   "model.backbone.pretrained is null: the backbone starts from random weights")
        return
    try:
        resolved = hub.resolve(spec, "model.backbone.pretrained", hub.FROM_SCRATCH_HINT, progress=progress)
        line = init_backbone(model, resolved)["line"]
    except (ValueError, OSError, CheckpointError) as exc:
        report.add("weights", FAIL, one_line(exc))
        return
    report.add("weights", OK, line)


def check_step(cfg: Config, model, samples: list, per_process_batch: int, device: str,
               report: PreflightReport) -> Optional[dict]:
    """One forward + backward + AdamW update, timed after a first (compiling) step. At the
    configured batch on CUDA; on the CPU at batch 1 and 2, extrapolated to the configured batch."""
    from .. import runtime  # noqa: F401
    import jittor as jt
    from ..memory import memory_mb as peak_memory_mb  # device allocator peak on CUDA, RSS on the CPU
    from .optim import AdamW, build_param_groups
    opt_cfg = cfg.train.optimizer
    optimizer = AdamW(build_param_groups(model, opt_cfg), opt_cfg.lr, opt_cfg.betas, opt_cfg.eps)
    model.train()
    batches = [per_process_batch] if device == "cuda" else sorted({1, min(2, per_process_batch)})
    measured = {}
    for b in batches:
        pick = [samples[i % len(samples)] for i in range(b)]
        img = jt.array(np.stack([p[0] for p in pick]))
        label = jt.array(np.stack([p[1] for p in pick]).astype(np.int32))
        times = []
        for _ in range(3):  # the first step compiles kernels for these shapes (and creates the moments)
            start = time.perf_counter()
            optimizer.step(model.loss(img, label)["loss"])
            jt.sync_all(True)
            times.append(time.perf_counter() - start)
        measured[b] = (min(times[1:]), peak_memory_mb(), times[0])
    b_hi, b_lo = max(measured), min(measured)
    t_hi, mem_hi, first = measured[b_hi]
    if b_hi == per_process_batch:
        step_s, mem = t_hi, mem_hi
        how = f"measured at batch {b_hi}"
    else:  # time in proportion to the batch; memory: the batch-1 base plus the measured slope per image
        slope_m = max(mem_hi - measured[b_lo][1], 0.0) / max(b_hi - b_lo, 1)
        step_s = t_hi * per_process_batch / b_hi
        mem = mem_hi + slope_m * (per_process_batch - b_hi)
        how = f"extrapolated to batch {per_process_batch} from batches {b_lo} and {b_hi}"
    report.add("training step", OK, f"{step_s:.2f} s/iteration, peak memory {_human(mem * 2**20)} ({how}; "
                                    f"first step incl. kernel compile {first:.1f} s)")
    return {"step_s": step_s, "peak_mb": mem}


def checkpoint_bytes(model, optimizer_moments: int = 2) -> int:
    """Bytes of one iter_<N>.npz: weights and buffers, plus the AdamW moments of the parameters."""
    total = sum(int(np.prod(v.shape)) * 4 for v in model.state_dict().values())
    params = sum(int(np.prod(p.shape)) for p in model.parameters() if p.requires_grad)
    return total + optimizer_moments * params * 4


def check_budget(cfg: Config, model, step: Optional[dict], work_dir: str, runs: int, parallel: int,
                 report: PreflightReport) -> None:
    """Wall time of the run(s) (`parallel` at a time) and checkpoint disk use against the free space."""
    t = cfg.train
    if step is not None:
        rounds = -(-runs // max(parallel, 1))
        total = step["step_s"] * t.max_iters * rounds
        at_once = f", {parallel} at a time" if parallel > 1 and runs > 1 else ""
        report.add("time", OK, f"~{_duration(total)} for {t.max_iters} iterations x {runs} run(s){at_once} at "
                               f"{step['step_s']:.2f} s/iteration (evaluations every {t.eval_interval} not included)")
    written = -(-t.max_iters // t.checkpoint_interval)
    kept = written if t.max_keep_checkpoints == 0 else min(t.max_keep_checkpoints, written)  # 0 keeps all
    n_ckpt = kept + 1  # +1: the atomic write's temporary file
    need = checkpoint_bytes(model) * n_ckpt * runs
    free = free_bytes(work_dir)
    status = WARN if free is None else (OK if need < free else FAIL)
    report.add("disk", status, f"checkpoints need ~{_human(need)} ({n_ckpt} x {_human(checkpoint_bytes(model))}"
                               f"{f' x {runs} runs' if runs > 1 else ''}), {'?' if free is None else _human(free)} free at "
                               f"{os.path.abspath(work_dir)}")


def run_preflight(cfg: Config, work_dir: str, runs: int = 1, parallel: int = 1, world_size: int = 1,
                  progress: bool = True) -> PreflightReport:
    """Every check in order; a failed data check skips the training step."""
    from .. import runtime
    from ..models import build_segmentor
    report = PreflightReport()
    report.add("config", OK, f"{cfg.source}: valid ({cfg.name}, {cfg.train.max_iters} iterations, batch "
                             f"{cfg.train.batch_size})")
    from ..platform_info import summary_line
    report.add("device", OK, summary_line() + (f" ({world_size} processes)" if world_size > 1 else ""))
    samples = check_data(cfg, report, progress)
    model = build_segmentor(cfg)
    check_weights(cfg, model, report, progress)
    step = None
    if samples is not None:  # timed even when the weights failed: speed and memory do not depend on them
        step = check_step(cfg, model, samples, cfg.train.batch_size // world_size, runtime.DEVICE, report)
    check_budget(cfg, model, step, work_dir, runs, parallel, report)
    return report
