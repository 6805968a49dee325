"""Iteration-based trainer reproducing the mmseg SegNeXt recipe.

Reproducibility by construction: every random choice of iteration `it` is a pure function of
(seed, it, sample slot or rank): the sample order and augmentation, the NMF bases and the
DropPath/Dropout masks (segnext_jt/rng.py maps every stream). A checkpoint therefore only needs
weights, optimizer moments and the iteration to resume bit-identically; it still records the
Python/NumPy global RNG states.
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

try:
    import fcntl
except ImportError:  # not POSIX: no work-dir lock
    fcntl = None

import numpy as np
from tqdm import tqdm

from .. import runtime
import jittor as jt

from .. import __version__
from ..config import Config
from ..data.build import build_dataset, train_pipeline
from ..data.loader import TrainLoader
from ..evaluation.metrics import IoUMetric
from ..evaluation.run import majority_baseline, run_evaluation
from ..models import build_segmentor
from ..models.layers import BatchNorm2d
from .. import hub, rng
from ..files import json_safe, read_json, write_json_atomic
from .. import portable
from ..platform_info import env_info_text, platform_info
from ..memory import memory_kind, memory_mb
from .checkpoint import (TrainCheckpoints, TrainingDataError, TrainingDivergedError, TrainSetupError,
                         check_resume_shapes, checkpoint_arrays, describe_keys, find_latest_checkpoint,
                         nonfinite_keys, read_train_checkpoint)
from .work_dir import WorkDirLock, remove_stale_temporaries
from ..interrupts import TrainingInterrupted, critical_section, interrupt_signum
from .logger import JsonLogWriter
from ..progress import first_step_notice, restart_rate
from .pretrained import init_backbone
from .optim import AdamW, build_param_groups, lr_at

def iteration_rngs(model, seed: int, it: int, rank: int, slots) -> None:
    """Seed Jittor's RNG from (seed, iteration, rank) and give the model's DropPath/Dropout layers
    one stream per sample slot of this process's part of the batch."""
    jt.set_seed(rng.jittor_seed(seed, it, rank))
    model.set_dropout_rng(rng.dropout_rng(seed, it, slots))


@dataclass
class TrainResult:
    final_iter: int
    final_loss: Optional[float]
    last_eval: Optional[dict]
    checkpoint: str
    summary: dict = field(default_factory=dict)  # what train_result.json holds (rank 0)


class Trainer:
    def __init__(self, cfg: Config, work_dir: str, seed: Optional[int] = None, resume: Optional[str] = None,
                 progress: bool = True, sync_bn: Optional[bool] = None, logger=print):
        self.cfg = cfg
        self.work_dir = work_dir
        self.seed = cfg.train.seed if seed is None else int(seed)
        self.progress = progress
        self.log = logger
        self.rank = jt.rank if jt.in_mpi else 0
        self.world_size = jt.world_size if jt.in_mpi else 1
        if cfg.train.batch_size % self.world_size:
            raise TrainSetupError(f"train.batch_size={cfg.train.batch_size} is not divisible by the "
                             f"{self.world_size} MPI processes")
        self.per_rank_batch = cfg.train.batch_size // self.world_size
        mismatch = portable.config_mismatch(cfg.train.deterministic)
        if mismatch:
            raise TrainSetupError(mismatch)
        # Before anything is written: a missing file or no network ends here with one line.
        self.pretrained = (hub.resolve(cfg.model.backbone.pretrained, "model.backbone.pretrained",
                                       hub.FROM_SCRATCH_HINT, progress=progress and self.rank == 0)
                           if cfg.model.backbone.pretrained else None)
        os.makedirs(work_dir, exist_ok=True)
        self._lock = WorkDirLock(work_dir)
        self._acquire_lock()
        try:
            self._setup(cfg, resume, sync_bn)
        except BaseException:
            self.close()
            raise

    def _setup(self, cfg: Config, resume: Optional[str], sync_bn: Optional[bool]) -> None:
        if self.rank == 0:
            remove_stale_temporaries(self.work_dir, self._log)
        rng.seed_everything(self.seed)
        self._build_model(cfg, sync_bn if sync_bn is not None else cfg.train.sync_bn)
        self._build_data(cfg)
        self.start_iter = 0
        self._resume_state = None
        self._window: dict[str, list] = {}    # per-iteration values since the last train log line
        self._done = 0                          # iterations completed (for the interrupt message)
        self._first_step_pending = True         # the first step of this process compiles the kernels
        self.checkpoints = TrainCheckpoints(self.work_dir, cfg.train.max_keep_checkpoints, cfg.train.max_iters)
        resume_path = find_latest_checkpoint(self.work_dir) if resume == "auto" else resume
        if resume == "auto" and resume_path is None:
            self._log(f"no checkpoint in {self.work_dir}, starting from scratch")
        if resume_path:
            self._resume(resume_path)
        self._done = self.start_iter
        self._finished = self._finished_summary()  # a finished run is left exactly as it is
        self.log_path = os.path.join(self.work_dir, "log.json")
        self.writer = None
        if self.rank == 0 and self._finished is None:
            with critical_section():
                # memory_kind: what the train lines' `memory` is (device allocator peak or host RSS)
                meta = dict(self._run_meta(), memory_kind=memory_kind())
                self.writer = JsonLogWriter(self.log_path, meta, self.start_iter or None, warn=self._log)

    def _build_model(self, cfg: Config, sync_bn: bool) -> None:
        """Model (SyncBN when asked, pretrained backbone), its initial state fixed, and AdamW."""
        self.model = build_segmentor(cfg)
        self.model.set_nmf_seed(self.seed)
        if sync_bn:
            for module in self.model.modules():
                if isinstance(module, BatchNorm2d):
                    module.sync = True
        self._pretrained_meta = None
        if self.pretrained is not None:  # every backbone key must match; head.* (ImageNet classifier) is dropped
            self._pretrained_meta = init_backbone(self.model, self.pretrained)
            self._log(self._pretrained_meta.pop("line"))
        self.model.train()
        self._fix_initial_state()
        opt = cfg.train.optimizer
        self.optimizer = AdamW(build_param_groups(self.model, opt), opt.lr, opt.betas, opt.eps)

    def _build_data(self, cfg: Config) -> None:
        num_classes = cfg.model.decode_head.num_classes  # checked against the declared classes
        self.train_set = build_dataset(cfg.data, "train", num_classes)
        self.val_set = build_dataset(cfg.data, "val", num_classes)
        if self.train_set.num_classes != num_classes:
            raise TrainSetupError(f"{cfg.source}: model.decode_head.num_classes={num_classes} but dataset "
                                  f"{cfg.data.dataset!r} has {self.train_set.num_classes} classes")

    def _fix_initial_state(self) -> None:
        """Execute the weight initialisation now, in one graph, in every process; under MPI, then
        give every process rank 0's weights and BN statistics.

        Jittor draws jt.init values from its global generator when a graph executes, not when it is
        built, so the initial weights depend on which tensors the first executed graph contains;
        executing all of them here makes them a function of the seed alone, the same with one
        process or N. jt.set_global_seed seeds each MPI process differently (seed + 2591 * rank) and
        Jittor's optimizer broadcasts the parameters only after the first backward, so without the
        broadcast rank 1's first gradient and BN statistics would belong to other weights. One
        synced broadcast per tensor keeps the collectives in the same order in every process."""
        state = list(self.model.state_dict().values())
        jt.sync(state)
        if self.world_size == 1:
            return
        for var in state:
            var.assign(var.mpi_broadcast(0))
            var.sync()

    # ------------------------------------------------------------------ work dir
    def _acquire_lock(self) -> None:
        """Rank 0 holds the work dir's lock for the life of the run."""
        if fcntl is not None and self.rank == 0:
            self._lock.acquire()

    def close(self) -> None:
        """Release the work-dir lock (train() does it when it returns or raises)."""
        self._lock.release()

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def _log(self, msg: str) -> None:
        if self.rank == 0:
            self.log(msg)

    def _run_meta(self) -> dict:
        env, info = runtime.device_summary(), platform_info()
        return {
            "env_info": f"sys.platform: {sys.platform}\nPython: {env['python']}\nJittor: {env['jittor']}\n"
                        f"NumPy: {env['numpy']}\nDevice: {env['device']}\nMachine: {platform.machine()}\n"
                        f"MPI world size: {self.world_size}\n{env_info_text(info)}",
            "seed": self.seed,
            "pretrained": self._pretrained_meta,
            "exp_name": os.path.basename(self.cfg.source or self.cfg.name),
            "mmseg_version": f"segnext_jt {__version__}",
            "config": self.cfg.to_yaml(),
            "CLASSES": list(self.train_set.classes),
            "PALETTE": [list(p) for p in (self.train_set.palette or [])],
            "platform": info,  # the fingerprint as a dict (env_info holds it as text)
        }

    def _epoch(self, it: int) -> int:
        return it * self.cfg.train.batch_size // max(len(self.train_set), 1) + 1

    def lr(self, it: int) -> float:
        return lr_at(it, self.cfg.train.optimizer.lr, self.cfg.train.max_iters, self.cfg.train.schedule)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, it: int) -> str:
        """iter_<it>.npz (rank 0): weights, optimizer moments, iteration, RNG states and the values of
        the current (not yet logged) log window, so that the first train line after a resume averages
        the same iterations as an uninterrupted run (JSON floats round-trip exactly)."""
        if self.rank != 0:
            return self.checkpoints.path(it)
        arrays = checkpoint_arrays({k: v.numpy() for k, v in self.model.state_dict().items()},
                                   self.optimizer.state_arrays())
        meta = {"iter": it, "seed": self.seed, "config": self.cfg.to_yaml(), "n_step": self.optimizer.n_step,
                "rng": rng.global_rng_state(), "segnext_jt_version": __version__,
                "CLASSES": list(self.train_set.classes),
                "log_window": json_safe({k: [float(x) for x in v] for k, v in self._window.items()})}
        return self.checkpoints.save(it, arrays, meta)

    def _last_good_message(self, it: int) -> str:
        if self.rank != 0:
            return "(rank 0 names the last good checkpoint.)"
        return self.checkpoints.last_good_message(it)

    def _load_weights(self, weights: dict) -> None:
        # jt.array turns int64 into int32 by default (auto_convert_64_to_32), which would make the
        # BN num_batches_tracked counters int32 after a resume; keep every dtype as saved.
        with jt.flag_scope(auto_convert_64_to_32=0):
            self.model.load_state_dict(weights)

    def _resume(self, path: str) -> None:
        weights, optim, meta = read_train_checkpoint(path, self.seed)
        check_resume_shapes(path, weights, optim, self.model, self.optimizer)
        self._load_weights(weights)
        self.optimizer.load_state_arrays(optim, meta["n_step"])
        rng.set_global_rng_state(meta["rng"])
        self.start_iter = int(meta["iter"])
        window = meta.get("log_window") or {}
        self._window = {str(k): [float(x) for x in v] for k, v in window.items() if isinstance(v, list)}
        self._resume_state = (weights, optim, meta["n_step"])
        self.checkpoints.good = [path]
        self._log(f"resumed from {path} at iteration {self.start_iter}")

    def _finished_summary(self) -> Optional[dict]:
        """train_result.json of a run already at (or past) train.max_iters, else None. `--resume` on
        it must change nothing: training zero iterations would rewrite the result with no loss and
        no mIoU. Without a readable train_result.json (killed just before writing it) it is written."""
        if self.start_iter < self.cfg.train.max_iters:
            return None
        try:
            summary = read_json(os.path.join(self.work_dir, "train_result.json"))
        except ValueError:
            return None
        return summary if isinstance(summary, dict) else None

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, it: int, ms_flip: bool = False) -> dict:
        """Validation with the eval NMF seed (eval keys never collide with training draws; the
        model's bases stream is restored after it)."""
        summary = run_evaluation(self.cfg, None, ms_flip=ms_flip, progress=self.progress and self.rank == 0,
                                 model=self.model, dataset=self.val_set)
        if self.writer is not None:
            metric = IoUMetric.from_state(summary["metric_state"])
            with critical_section():
                self.writer.write(dict(metric.to_mmseg0_val_log(it, self.lr(max(it - 1, 0)), self._epoch(it))))
        self._log(f"[eval @ iter {it}] mIoU {summary['mIoU']:.2f}  mAcc {summary['mAcc']:.2f}  "
                  f"aAcc {summary['aAcc']:.2f}")
        return summary

    # ------------------------------------------------------------------ main loop
    def train(self) -> TrainResult:
        """Run from start_iter to max_iters. SIGINT/SIGTERM (KeyboardInterrupt) stop the data
        workers and end as `TrainingInterrupted` naming the iteration and the latest checkpoint;
        the work-dir lock is released however this returns."""
        if self._finished is not None:
            self._log(f"already finished at iteration {self.start_iter} (train.max_iters="
                      f"{self.cfg.train.max_iters}); nothing changed, the result is in train_result.json")
            self.close()
            return TrainResult(self.start_iter, self._finished.get("final_loss"), None,
                               str(self._finished.get("checkpoint") or ""), summary=self._finished)
        self._acquire_lock()
        try:
            result = self._train()
            self._write_result(result)
            return result
        except BaseException as exc:
            signum = interrupt_signum(exc)
            if signum is None:
                raise
            latest = self.checkpoints.good[-1] if self.checkpoints.good else None
            raise TrainingInterrupted(signum, self._done, latest) from None
        finally:
            self.close()

    def _train(self) -> TrainResult:
        cfg = self.cfg.train
        b = self.per_rank_batch
        slots = list(range(self.rank * b, (self.rank + 1) * b))
        loader = TrainLoader(self.train_set, train_pipeline(self.cfg.data), cfg.batch_size, self.seed,
                             num_workers=self.cfg.data.num_workers, start_iter=self.start_iter,
                             max_iters=cfg.max_iters, slots=slots)
        last_eval, last_loss, ckpt = None, None, ""
        ignore_index = int(getattr(self.model, "ignore_index", 255))
        all_ignored = 0  # iterations of this process whose whole batch was ignore_index
        check_n = min(cfg.log_interval, 10, max(cfg.max_iters - self.start_iter, 0))
        bar = tqdm(total=cfg.max_iters, initial=self.start_iter, desc="train", unit="it",
                   disable=not (self.progress and self.rank == 0), dynamic_ncols=True)
        try:
            if self._resume_state is not None and self.start_iter < cfg.max_iters:
                self._warm_up(loader, slots, self._log_line(bar))
            self._verified_iter = self.start_iter  # the state after this iteration passed the full check
            t_end = time.time()
            for it in range(self.start_iter, cfg.max_iters):
                batch = next(loader)
                t_data = time.time() - t_end
                lr = self.lr(it)
                if not np.count_nonzero(batch["gt_seg"] != ignore_index):
                    all_ignored += 1
                    if all_ignored == 1:
                        self._log(f"warning: iteration {it + 1}: every label pixel of the batch is ignore_index "
                                  f"{ignore_index}, so its loss is 0 and nothing is learned from it (check the "
                                  f"annotations and data.reduce_zero_label)")
                done = it + 1
                with first_step_notice(self._log_line(bar), self._first_step_pending):
                    values, finite = self._step(it, batch, slots, lr, full_check=self._full_check_due(done))
                self._first_step_pending = False
                self._stop_if_diverged(it, lr, values, finite)
                if (all_ignored == done - self.start_iter == check_n and self.world_size == 1):
                    raise TrainingDataError(
                        f"every label pixel of the first {check_n} training batches (iterations "
                        f"{self.start_iter + 1}-{done}) is ignore_index {ignore_index}: the loss is 0 and "
                        f"nothing can be learned. Check the annotations under {self.cfg.data.root} and "
                        f"data.reduce_zero_label (label 0 becomes {ignore_index} when it is true)")
                last_loss = values["loss"]
                t_iter = time.time() - t_end
                t_end = time.time()
                for k, v in list(values.items()) + [("time", t_iter), ("data_time", t_data)]:
                    self._window.setdefault(k, []).append(v)
                self._done = done
                bar.update(1)
                if it == self.start_iter:
                    restart_rate(bar)  # the ETA counts steps, not the first step's kernel compilation
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
                if done % cfg.log_interval == 0 or done == cfg.max_iters:
                    self._write_train_line(done, lr, self._window, bar)
                    self._window = {}
                if done % cfg.eval_interval == 0 or done == cfg.max_iters:
                    last_eval = self.evaluate(done)
                if done % cfg.checkpoint_interval == 0 or done == cfg.max_iters:
                    ckpt = self.save_checkpoint(done)
        finally:
            bar.close()
            loader.close()
        return TrainResult(cfg.max_iters, last_loss, last_eval,
                           ckpt or find_latest_checkpoint(self.work_dir) or "")

    def _full_check_due(self, done: int) -> bool:
        """Whether the state after iteration `done` (1-based) gets the full finite check: at every
        log line, evaluation and checkpoint (before it is written) and at the end. The loss is
        checked every iteration; a non-finite state shows in the next loss unless it sits where the
        forward does not read it (BN running statistics, AdamW moments of unused weights)."""
        cfg = self.cfg.train
        return (done == cfg.max_iters or done % cfg.log_interval == 0 or done % cfg.eval_interval == 0
                or done % cfg.checkpoint_interval == 0)

    def _stop_if_diverged(self, it: int, lr: float, values: dict, state_finite: Optional[bool]) -> None:
        """TrainingDivergedError naming the last good checkpoint when the loss of iteration `it`
        (0-based) or, where it was checked, the state after its update is not finite."""
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingDivergedError(
                f"loss is {values['loss']} at iteration {it + 1} (0-based {it}, lr {lr:.3g}); stopping. "
                f"{self._last_good_message(it)}")
        if state_finite is False:
            bad = nonfinite_keys({**{k: v.numpy() for k, v in self.model.state_dict().items()},
                                  **self.optimizer.state_arrays()})
            since = self._verified_iter + 1
            where = (f"the update of iteration {it + 1}" if since == it + 1 else
                     f"an update of iterations {since}-{it + 1} (fully checked at log lines and checkpoints)")
            raise TrainingDivergedError(
                f"the weights/optimizer state became non-finite ({describe_keys(bad) or 'NaN/inf'}) in {where} "
                f"(0-based {it}, lr {lr:.3g}); stopping. {self._last_good_message(it)}")
        if state_finite:
            self._verified_iter = it + 1

    def _log_line(self, bar):
        """Where a progress line goes: above the bar, or the logger without one."""
        return bar.write if (self.progress and self.rank == 0) else self._log

    def _write_result(self, result: TrainResult) -> None:
        """train_result.json (rank 0, atomic, strict JSON), what the seed sweep reads: the final loss
        and mIoU beside the majority-class baseline a trained model must clear."""
        if self.rank != 0:
            return
        baseline = majority_baseline(self.val_set)
        miou = result.last_eval["mIoU"] if result.last_eval else None
        if miou is not None and not math.isfinite(miou):
            print("warning: the validation labels have no pixel outside ignore_index, so mIoU is undefined "
                  "(null in train_result.json); check the validation annotations", file=sys.stderr)
            miou = None
        result.summary = {"work_dir": self.work_dir, "seed": self.seed, "final_iter": result.final_iter,
                          "final_loss": result.final_loss, "checkpoint": result.checkpoint, "mIoU": miou,
                          "baseline_mIoU": baseline["mIoU"], "baseline_class": baseline["class"],
                          "platform": platform_info()}
        if miou is not None:
            self._log(f"final mIoU {miou:.2f} vs majority-class baseline {baseline['mIoU']:.2f} "
                      f"(always predicting {baseline['class']!r})")
        with critical_section():
            write_json_atomic(os.path.join(self.work_dir, "train_result.json"), result.summary)

    def _state_vars(self) -> list:
        """Every floating-point tensor of the training state: weights, BN statistics, AdamW moments."""
        out = [v for v in self.model.state_dict().values() if str(v.dtype).startswith("float")]
        for pg in self.optimizer.param_groups:
            out.extend(pg["exp_avg"])
            out.extend(pg["exp_avg_sq"])
        return out

    def _state_probe(self) -> float:
        """sum_x sum(x * 0) over all state tensors: 0 when everything is finite, NaN as soon as one
        element is NaN or inf (inf * 0 = NaN). One fused reduction per tensor, no copy to the host;
        its own graph, executed after the step's, so it cannot change how the step is fused."""
        return float(jt.concat([(x * 0).sum().reshape([1]) for x in self._state_vars()]).sum().item())

    def _step(self, it: int, batch: dict, slots, lr: float, full_check: bool = False):
        """One training step: forward, backward and AdamW update, executed by one sync; with
        `full_check`, then the finite probe of the whole state. Returns (loss values, whether every
        weight and moment is finite after the update, or None when it was not checked).

        The step's graph is the same with and without the check, so the check schedule cannot
        change the numbers (tests/engine/test_trainer_reliability.py)."""
        self.optimizer.set_lr(lr)
        iteration_rngs(self.model, self.seed, it, self.rank, slots)
        img = jt.array(batch["img"])
        label = jt.array(batch["gt_seg"].astype(np.int32))
        losses = self.model.loss(img, label, nmf_keys=rng.nmf_train_keys(it, slots))
        self.optimizer.step(losses["loss"])
        jt.sync_all()
        values = {k: float(v.item()) for k, v in losses.items()}
        probe_value = self._state_probe() if full_check else 0.0
        if self.world_size > 1:
            values, probe_value = self._reduce_over_ranks(values, probe_value)
        return values, (math.isfinite(probe_value) if full_check else None)

    def _reduce_over_ranks(self, values: dict, probe_value: float):
        """MPI: the loss values averaged over the processes (the global batch's loss, as mmseg logs
        it; decode.acc_seg becomes the mean of the per-process accuracies) and the finite probe summed,
        so that every process logs the same numbers and a NaN on any process stops all of them at
        the same iteration (every process runs the full check at the same iterations). One all-reduce
        of one small float64 vector, after the step's sync."""
        names = list(values)
        local = np.array([values[k] for k in names] + [probe_value], dtype=np.float64)
        with jt.flag_scope(auto_convert_64_to_32=0):
            total = jt.array(local).mpi_all_reduce("add").numpy()
        return {k: float(total[i] / self.world_size) for i, k in enumerate(names)}, float(total[-1])

    def _warm_up(self, loader: TrainLoader, slots, write) -> None:
        """Run one throw-away training step, then restore the checkpoint state.

        Jittor fuses a graph differently the first time it executes it in a process, which changes
        float rounding in the last bits; a resumed process would therefore drift from the
        uninterrupted run. Executing the same step (`_step`) once first makes the resumed run
        bit-identical. The finite probe is a separate graph that only reads the state, so whether the
        loop's steps run it does not matter here."""
        it = self.start_iter
        batch = loader.batch(it)  # the batch the loop gets next, loaded in this process
        with first_step_notice(write, self._first_step_pending, "warm-up step of the resumed run"):
            self._step(it, batch, slots, self.lr(it))
        self._first_step_pending = False
        weights, optim, n_step = self._resume_state
        self._load_weights(weights)
        self.optimizer.load_state_arrays(optim, n_step)
        jt.sync_all()
        self._resume_state = None

    def _write_train_line(self, done: int, lr: float, window: dict, bar) -> None:
        mean = {k: float(np.mean(v)) for k, v in window.items()}
        line = {"mode": "train", "epoch": self._epoch(done), "iter": done, "lr": lr,
                "memory": int(memory_mb()), "data_time": mean["data_time"],
                "decode.loss_ce": mean["decode.loss_ce"], "decode.acc_seg": mean["decode.acc_seg"],
                "loss": mean["loss"], "time": mean["time"]}
        if self.writer is not None:
            with critical_section():
                self.writer.write(line)
        if self.rank == 0:
            (bar.write if self.progress else self._log)(f"iter {done}/{self.cfg.train.max_iters} lr {lr:.3e} loss {mean['loss']:.4f} "
                      f"acc {mean['decode.acc_seg']:.2f} time {mean['time']:.3f}s data {mean['data_time']:.3f}s")
