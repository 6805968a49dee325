"""Iteration-based trainer reproducing the mmseg SegNeXt recipe.

Reproducibility by construction: every random choice of iteration `it` is a pure function of
(seed, it, sample slot): the sample order and augmentation (data.loader), the NMF bases (key
(KEY_TRAIN, it, slot)) and DropPath/Dropout (Jittor's RNG is re-seeded from (seed, it, rank) at
every iteration). A checkpoint therefore only needs weights, optimizer moments and the iteration
to resume bit-identically; it still records the Python/NumPy RNG states.
"""
from __future__ import annotations

import glob
import json
import math
import os
import platform
import re
import resource
import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
from tqdm import tqdm

from .. import runtime
import jittor as jt

from .. import __version__
from ..config import Config
from ..data.build import build_dataset, train_pipeline
from ..data.loader import TrainLoader, load_train_sample, sample_indices
from ..evaluation.metrics import IoUMetric
from ..evaluation.run import run_evaluation
from ..io import load_checkpoint, load_npz, save_npz
from ..models import KEY_TRAIN, build_segmentor
from ..models.layers import set_dropout_rng
from .logger import JsonLogWriter
from .optim import AdamW, build_param_groups, lr_at

CKPT_PATTERN = re.compile(r"iter_(\d+)\.npz$")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


class TrainSetupError(ValueError):
    """The run cannot start as configured (batch split, class count, resume checkpoint)."""


def iteration_rngs(seed: int, it: int, rank: int) -> None:
    """Seed Jittor's RNG and the DropPath/Dropout generator from (seed, iteration, rank)."""
    jt.set_seed(int(np.random.SeedSequence([seed, it, rank, 0x6A74]).generate_state(1)[0]))
    set_dropout_rng(np.random.default_rng([seed, it, rank, 0x6470]))


def find_latest_checkpoint(work_dir: str) -> Optional[str]:
    found = []
    for path in glob.glob(os.path.join(work_dir, "iter_*.npz")):
        m = CKPT_PATTERN.search(os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return max(found)[1] if found else None


def peak_memory_mb() -> int:
    """Peak resident memory of this process in MB (mmcv logs CUDA memory; we log host RSS on CPU)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


@dataclass
class TrainResult:
    final_iter: int
    final_loss: Optional[float]
    last_eval: Optional[dict]
    checkpoint: str


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
        os.makedirs(work_dir, exist_ok=True)

        runtime.seed_everything(self.seed)
        self.model = build_segmentor(cfg)
        self.model.set_nmf_seed(self.seed)
        if sync_bn if sync_bn is not None else cfg.train.sync_bn:
            for module in self.model.modules():
                if hasattr(module, "sync"):
                    module.sync = True
        if cfg.model.backbone.pretrained:
            load_checkpoint(self.model, cfg.model.backbone.pretrained, strict=False, logger=self._log)
        self.model.train()
        groups = build_param_groups(self.model, cfg.train.optimizer)
        opt = cfg.train.optimizer
        self.optimizer = AdamW(groups, opt.lr, opt.betas, opt.eps)

        self.train_set = build_dataset(cfg.data, "train")
        self.val_set = build_dataset(cfg.data, "val")
        if self.train_set.num_classes != cfg.model.decode_head.num_classes:
            raise TrainSetupError(f"{cfg.source}: model.decode_head.num_classes="
                             f"{cfg.model.decode_head.num_classes} but dataset {cfg.data.dataset!r} has "
                             f"{self.train_set.num_classes} classes")
        self.start_iter = 0
        self._resume_state = None
        resume_path = find_latest_checkpoint(work_dir) if resume == "auto" else resume
        if resume == "auto" and resume_path is None:
            self._log(f"no checkpoint in {work_dir}, starting from scratch")
        if resume_path:
            self._resume(resume_path)
        self.log_path = os.path.join(work_dir, "log.json")
        self.writer = (JsonLogWriter(self.log_path, self._run_meta(), self.start_iter or None)
                       if self.rank == 0 else None)

    # ------------------------------------------------------------------ helpers
    def _log(self, msg: str) -> None:
        if self.rank == 0:
            self.log(msg)

    def _run_meta(self) -> dict:
        env = runtime.device_summary()
        return {
            "env_info": f"sys.platform: {sys.platform}\nPython: {env['python']}\nJittor: {env['jittor']}\n"
                        f"NumPy: {env['numpy']}\nDevice: {env['device']}\nMachine: {platform.machine()}\n"
                        f"MPI world size: {self.world_size}",
            "seed": self.seed,
            "exp_name": os.path.basename(self.cfg.source or self.cfg.name),
            "mmseg_version": f"segnext_jt {__version__}",
            "config": self.cfg.to_yaml(),
            "CLASSES": list(self.train_set.classes),
            "PALETTE": [list(p) for p in (self.train_set.palette or [])],
        }

    def _epoch(self, it: int) -> int:
        return it * self.cfg.train.batch_size // max(len(self.train_set), 1) + 1

    def lr(self, it: int) -> float:
        return lr_at(it, self.cfg.train.optimizer.lr, self.cfg.train.max_iters, self.cfg.train.schedule)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, it: int) -> str:
        """iter_<it>.npz written atomically: weights, optimizer moments, iteration, RNG states."""
        path = os.path.join(self.work_dir, f"iter_{it}.npz")
        if self.rank != 0:
            return path
        arrays = {f"state_dict/{k}": v.numpy() for k, v in self.model.state_dict().items()}
        arrays.update({f"optimizer/{k}": v for k, v in self.optimizer.state_arrays().items()})
        meta = {"iter": it, "seed": self.seed, "config": self.cfg.to_yaml(), "n_step": self.optimizer.n_step,
                "rng": runtime.rng_state(), "segnext_jt_version": __version__, "checkpoint_kind": "train",
                "CLASSES": list(self.train_set.classes)}
        save_npz(path, arrays, meta)
        self._prune_checkpoints()
        return path

    def _prune_checkpoints(self) -> None:
        keep = self.cfg.train.max_keep_checkpoints
        found = sorted((int(CKPT_PATTERN.search(p).group(1)), p)
                       for p in glob.glob(os.path.join(self.work_dir, "iter_*.npz")) if CKPT_PATTERN.search(p))
        final = self.cfg.train.max_iters
        for it, path in found[:-keep] if keep > 0 else []:
            if it != final:
                os.remove(path)

    def _resume(self, path: str) -> None:
        arrays, meta = load_npz(path)
        if meta.get("checkpoint_kind") != "train" or "iter" not in meta:
            raise TrainSetupError(f"{path}: not a training checkpoint of this project (no optimizer state); "
                             "use model.backbone.pretrained or tools/eval.py for weights-only files")
        if int(meta.get("seed", self.seed)) != self.seed:
            raise TrainSetupError(f"{path}: checkpoint was trained with seed {meta['seed']}, not {self.seed}; "
                             "resuming with another seed would not reproduce either run")
        weights = {k[len("state_dict/"):]: v for k, v in arrays.items() if k.startswith("state_dict/")}
        self.model.load_state_dict(weights)
        optim = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
        self.optimizer.load_state_arrays(optim, meta["n_step"])
        runtime.set_rng_state(meta["rng"])
        self.start_iter = int(meta["iter"])
        self._resume_state = (weights, optim, meta["n_step"])
        self._log(f"resumed from {path} at iteration {self.start_iter}")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, it: int, ms_flip: bool = False) -> dict:
        """Validation with the eval NMF seed (eval keys never collide with training draws)."""
        try:
            summary = run_evaluation(self.cfg, None, ms_flip=ms_flip, progress=self.progress and self.rank == 0,
                                     model=self.model)
        finally:
            self.model.set_nmf_seed(self.seed)
        if self.writer is not None:
            metric = IoUMetric.from_state(summary["metric_state"])
            self.writer.write(dict(metric.to_mmseg0_val_log(it, self.lr(max(it - 1, 0)), self._epoch(it))))
        self._log(f"[eval @ iter {it}] mIoU {summary['mIoU']:.2f}  mAcc {summary['mAcc']:.2f}  "
                  f"aAcc {summary['aAcc']:.2f}")
        return summary

    # ------------------------------------------------------------------ main loop
    def train(self) -> TrainResult:
        cfg = self.cfg.train
        b = self.per_rank_batch
        slots = list(range(self.rank * b, (self.rank + 1) * b))
        loader = TrainLoader(self.train_set, train_pipeline(self.cfg.data), cfg.batch_size, self.seed,
                             num_workers=self.cfg.data.num_workers, start_iter=self.start_iter,
                             max_iters=cfg.max_iters, slots=slots)
        window: dict[str, list] = {}
        last_eval, last_loss, ckpt = None, None, ""
        bar = tqdm(total=cfg.max_iters, initial=self.start_iter, desc="train", unit="it",
                   disable=not (self.progress and self.rank == 0), dynamic_ncols=True)
        try:
            if self._resume_state is not None and self.start_iter < cfg.max_iters:
                self._warm_up(slots)
            t_end = time.time()
            for it in range(self.start_iter, cfg.max_iters):
                batch = next(loader)
                t_data = time.time() - t_end
                lr = self.lr(it)
                self.optimizer.set_lr(lr)
                iteration_rngs(self.seed, it, self.rank)
                img = jt.array(batch["img"])
                label = jt.array(batch["gt_seg"].astype(np.int32))
                losses = self.model.loss(img, label, nmf_keys=[(KEY_TRAIN, it, s) for s in slots])
                values = {k: float(v.item()) for k, v in losses.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise TrainingDivergedError(
                        f"loss is {values['loss']} at iteration {it + 1} (0-based {it}); stopping. "
                        f"The last good checkpoint is {find_latest_checkpoint(self.work_dir) or 'none'}")
                self.optimizer.step(losses["loss"])
                jt.sync_all()
                last_loss = values["loss"]
                t_iter = time.time() - t_end
                t_end = time.time()
                for k, v in list(values.items()) + [("time", t_iter), ("data_time", t_data)]:
                    window.setdefault(k, []).append(v)
                done = it + 1
                bar.update(1)
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
                if done % cfg.log_interval == 0 or done == cfg.max_iters:
                    self._write_train_line(done, lr, window, bar)
                    window = {}
                if done % cfg.eval_interval == 0 or done == cfg.max_iters:
                    last_eval = self.evaluate(done)
                if done % cfg.checkpoint_interval == 0 or done == cfg.max_iters:
                    ckpt = self.save_checkpoint(done)
        finally:
            bar.close()
            loader.close()
        return TrainResult(cfg.max_iters, last_loss, last_eval,
                           ckpt or find_latest_checkpoint(self.work_dir) or "")

    def _warm_up(self, slots) -> None:
        """Run one throw-away training step, then restore the checkpoint state.

        Jittor fuses a graph differently the first time it executes it in a process, which changes
        float rounding in the last bits; a resumed process would therefore drift from the
        uninterrupted run. Executing the same step once first makes the resumed run bit-identical."""
        it = self.start_iter
        idx = sample_indices(self.seed, it, self.cfg.train.batch_size, len(self.train_set))
        samples = [load_train_sample(self.train_set, train_pipeline(self.cfg.data), self.seed, it, s, idx[s])
                   for s in slots]
        batch = {"img": np.stack([s[0] for s in samples]), "gt_seg": np.stack([s[1] for s in samples])}
        iteration_rngs(self.seed, it, self.rank)
        self.optimizer.set_lr(self.lr(it))
        losses = self.model.loss(jt.array(batch["img"]), jt.array(batch["gt_seg"].astype(np.int32)),
                                 nmf_keys=[(KEY_TRAIN, it, s) for s in slots])
        self.optimizer.step(losses["loss"])
        jt.sync_all()
        weights, optim, n_step = self._resume_state
        self.model.load_state_dict(weights)
        self.optimizer.load_state_arrays(optim, n_step)
        jt.sync_all()
        self._resume_state = None

    def _write_train_line(self, done: int, lr: float, window: dict, bar) -> None:
        mean = {k: float(np.mean(v)) for k, v in window.items()}
        line = {"mode": "train", "epoch": self._epoch(done), "iter": done, "lr": lr,
                "memory": peak_memory_mb(), "data_time": mean["data_time"],
                "decode.loss_ce": mean["decode.loss_ce"], "decode.acc_seg": mean["decode.acc_seg"],
                "loss": mean["loss"], "time": mean["time"]}
        if self.writer is not None:
            self.writer.write(line)
        if self.rank == 0:
            (bar.write if self.progress else self._log)(f"iter {done}/{self.cfg.train.max_iters} lr {lr:.3e} loss {mean['loss']:.4f} "
                      f"acc {mean['decode.acc_seg']:.2f} time {mean['time']:.3f}s data {mean['data_time']:.3f}s")
