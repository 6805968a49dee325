#!/usr/bin/env python
"""Train SegNeXt: python tools/train.py CONFIG [--work-dir DIR] [--seed S] [--resume [CKPT]]
[--cfg-options key=value ...] [--sync-bn] [--device auto|cpu|cuda]. Multi-GPU: mpirun -np N python
tools/train.py CONFIG. Before a long run: --check (everything but the training, writes nothing);
--print-config shows the resolved config (base: chain and overrides applied) and exits."""
from __future__ import annotations

import argparse
import os
import sys

from segnext_jt.cli import add_device_argument, apply_device  # light: no Jittor
from segnext_jt.interrupts import TrainingInterrupted, install_signal_handlers  # light: no Jittor


class StartupInterrupted(TrainingInterrupted):
    """SIGINT while the device is chosen, before the training's signal handlers are installed."""

    def message(self) -> str:
        return f"interrupted by {self.signal_name} during start-up; nothing was written"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config, e.g. configs/segnext_l.yaml")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config name>)")
    p.add_argument("--seed", type=int, help="one seed for Python, NumPy, Jittor, data order/augmentation "
                                            "and the NMF bases (default: train.seed of the config)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from CKPT, or with no value from the work dir's latest iter_*.npz")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. train.max_iters=1000 data.root=/data/ade")
    p.add_argument("--sync-bn", action="store_true", help="synchronise BatchNorm across MPI processes")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs still printed)")
    p.add_argument("--check", action="store_true",
                   help="pre-flight: config, data, device, weights, one timed training step, time and disk "
                        "estimates; writes nothing")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_device_argument(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    """cli.run_tool's exit codes: 2 when nothing was written (usage, config, device, weights not
    found), 1 for data, checkpoints, divergence and file-system faults during the run, 128 + signal
    number for SIGINT/SIGTERM with the interrupt's own line (the iteration and the latest checkpoint)."""
    args = parse_args(argv)
    from segnext_jt.cli import run_tool
    from segnext_jt.data.sampling import SampleLoadError
    from segnext_jt.engine.checkpoint import (CheckpointWriteError, TrainingDataError, TrainingDivergedError,
                                              TrainSetupError)
    from segnext_jt.errors import CheckpointError, CheckpointNotFoundError, ConfigError, DataError
    return run_tool(lambda: _interruptible(args), usage_errors=(ConfigError, CheckpointNotFoundError),
                    input_errors=(DataError, SampleLoadError, CheckpointError, TrainingDataError,
                                  TrainingDivergedError, TrainSetupError, CheckpointWriteError))


def _interruptible(args) -> int:
    """The device, then everything else under the training's handlers: SIGINT and SIGTERM end as a
    TrainingInterrupted (deferred while a checkpoint or log line is written)."""
    try:
        apply_device(args.device)  # before Jittor's import
    except KeyboardInterrupt:
        raise StartupInterrupted() from None
    restore_signals = install_signal_handlers()
    try:
        return _run(args)
    except KeyboardInterrupt as exc:  # an interrupt before the handlers, or Jittor's own
        if isinstance(exc, TrainingInterrupted):
            raise
        raise TrainingInterrupted(getattr(exc, "signum", 2)) from None
    finally:
        restore_signals()


def _run(args) -> int:
    """Config and paths (exit 2, nothing written), then --print-config, --check or the training."""
    from segnext_jt.cli import check_work_dir, print_platform_line
    from segnext_jt.config import load_config
    from segnext_jt.config_schema import check_seed
    work_dir = args.work_dir or os.path.join("work_dirs", os.path.splitext(os.path.basename(args.config))[0])
    cfg = load_config(args.config, args.cfg_options)
    if args.seed is not None:
        check_seed(args.seed, "--seed")
    if args.print_config:
        print(cfg.to_yaml(flow_lists=True), end="")
        return 0
    check_work_dir(work_dir)
    _check_input_paths(cfg, args.resume)
    from segnext_jt.portable import reexec_if_needed
    reexec_if_needed(cfg.train.deterministic)  # portable: this process again, pinned before Jittor/NumPy load
    for warning in cfg.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print_platform_line()
    if args.check:
        return _preflight(cfg, work_dir, args)
    return _train(cfg, work_dir, args)


def _train(cfg, work_dir: str, args) -> int:
    """The run; a file-system fault during it (log.json, the work dir) becomes a CheckpointWriteError
    naming the path and the last checkpoint."""
    from segnext_jt.engine.checkpoint import CheckpointWriteError
    from segnext_jt.engine.trainer import Trainer
    from segnext_jt.errors import CheckpointError
    try:
        with Trainer(cfg, work_dir, seed=args.seed, resume=args.resume, progress=not args.no_progress,
                     sync_bn=True if args.sync_bn else None) as trainer:
            result = trainer.train()
    except CheckpointError:  # CheckpointNotFoundError is an OSError too: weights not found, exit 2
        raise
    except OSError as exc:
        raise CheckpointWriteError(_os_failure(exc, work_dir)) from exc
    if result.summary:
        from segnext_jt.files import dumps_strict
        print(dumps_strict(result.summary))
    return 0


def _os_failure(exc: OSError, work_dir: str) -> str:
    from segnext_jt.engine.checkpoint import find_latest_checkpoint, write_failure
    latest = find_latest_checkpoint(work_dir) if os.path.isdir(work_dir) else None
    last = f"the last checkpoint is {latest}." if latest else "no checkpoint had been written yet."
    return write_failure(exc, str(getattr(exc, "filename2", None) or exc.filename or work_dir), 0, last)


def _preflight(cfg, work_dir: str, args) -> int:
    """--check: the table, exit 0 when ready, 1 when a check failed."""
    import jittor as jt
    from segnext_jt.engine.preflight import run_preflight
    if args.seed is not None:
        cfg.train.seed = args.seed
    world = jt.world_size if jt.in_mpi else 1
    report = run_preflight(cfg, work_dir, world_size=world, progress=not args.no_progress)
    if not jt.in_mpi or jt.rank == 0:
        print(report.table())
    return 0 if report.ok else 1


def _check_input_paths(cfg, resume) -> None:
    """A missing data.root or --resume file is a path error (exit 2, README), found before the model
    is built; errors inside the data (a missing image) stay exit 1."""
    from segnext_jt.cli import UsageError
    if not os.path.isdir(cfg.data.root):
        raise UsageError(f"data.root {cfg.data.root}: " + ("not a directory" if os.path.exists(cfg.data.root)
                                                           else "dataset root does not exist"))
    if resume not in (None, "auto") and not os.path.isfile(resume):
        raise UsageError(f"--resume {resume}: " + ("not a regular file" if os.path.exists(resume)
                                                   else "checkpoint file not found"))


if __name__ == "__main__":
    sys.exit(main())
