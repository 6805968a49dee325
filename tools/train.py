#!/usr/bin/env python
"""Train SegNeXt: python tools/train.py CONFIG [--work-dir DIR] [--seed S] [--resume [CKPT]]
[--cfg-options key=value ...] [--sync-bn] [--device auto|cpu|cuda]. Multi-GPU: mpirun -np N python
tools/train.py CONFIG. Before a long run: --check (everything but the training, writes nothing);
--print-config shows the resolved config (base: chain and overrides applied) and exits."""
from __future__ import annotations

import argparse
import os
import sys

from segnext_jt.cli import add_device_argument, apply_device, leave_now  # noqa: E402  (light: no Jittor)
from segnext_jt.environment import DeviceError  # noqa: E402


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


def main(argv=None, _exit_on_interrupt: bool = False) -> int:
    args = parse_args(argv)
    try:
        apply_device(args.device)  # before Jittor's import
        from segnext_jt.engine.interrupts import TrainingInterrupted, install_interrupt_handlers  # imports Jittor
    except KeyboardInterrupt:
        print("interrupted by SIGINT during start-up; nothing was written", file=sys.stderr, flush=True)
        if _exit_on_interrupt:
            leave_now(130)
        return 130
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    restore_signals = install_interrupt_handlers()  # SIGINT and SIGTERM -> TrainingInterrupted
    try:
        return _run(args)
    except KeyboardInterrupt as exc:  # TrainingInterrupted, or an interrupt before the handlers
        if not isinstance(exc, TrainingInterrupted):
            exc = TrainingInterrupted(getattr(exc, "signum", 2))
        print(str(exc), file=sys.stderr, flush=True)
        if _exit_on_interrupt:
            leave_now(exc.exit_code)
        return exc.exit_code
    finally:
        restore_signals()


def _run(args) -> int:
    """Config and paths (exit 2, nothing written), then --print-config, --check or the training."""
    from segnext_jt.cli import UsageError, check_work_dir, print_platform_line
    from segnext_jt.config import ConfigError, load_config
    from segnext_jt.config_schema import check_seed
    work_dir = args.work_dir or os.path.join("work_dirs", os.path.splitext(os.path.basename(args.config))[0])
    try:
        cfg = load_config(args.config, args.cfg_options)
        if args.seed is not None:
            check_seed(args.seed, "--seed")
        if args.print_config:
            print(cfg.to_yaml(flow_lists=True), end="")
            return 0
        check_work_dir(work_dir)
        _check_input_paths(cfg, args.resume)
    except (ConfigError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from segnext_jt.portable import reexec_if_needed
    reexec_if_needed(cfg.train.deterministic)  # portable: this process again, pinned before Jittor/NumPy load
    for warning in cfg.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print_platform_line()
    if args.check:
        return _preflight(cfg, work_dir, args)
    return _train(cfg, work_dir, args)


def _train(cfg, work_dir: str, args) -> int:
    """The run; every expected failure is one `error:` line: 2 when nothing was written (config,
    weights), 1 for data, checkpoints, divergence and file-system faults during the run."""
    from segnext_jt.cli import one_line
    from segnext_jt.config import ConfigError
    from segnext_jt.data.dataset import DataError
    from segnext_jt.data.sampling import SampleLoadError
    from segnext_jt.engine.checkpoint import CheckpointWriteError
    from segnext_jt.engine.trainer import Trainer, TrainingDataError, TrainingDivergedError, TrainSetupError
    from segnext_jt.io.errors import CheckpointError, CheckpointNotFoundError
    try:
        with Trainer(cfg, work_dir, seed=args.seed, resume=args.resume, progress=not args.no_progress,
                     sync_bn=True if args.sync_bn else None) as trainer:
            result = trainer.train()
    except (ConfigError, CheckpointNotFoundError) as exc:  # e.g. a classes.txt of another length; weights
        print(f"error: {one_line(exc)}", file=sys.stderr)   # not found or not downloadable (nothing written)
        return 2
    except (DataError, SampleLoadError, CheckpointError, TrainingDataError, TrainingDivergedError, TrainSetupError,
            CheckpointWriteError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # the file system failed mid-run (log.json, the work dir)
        print(f"error: {one_line(_os_failure(exc, work_dir))}", file=sys.stderr)
        return 1
    if result.summary:
        from segnext_jt.io.files import dumps_strict
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
    sys.exit(main(_exit_on_interrupt=True))
