"""A run that cannot start, or whose file system fails mid-run, ends with exactly one `error:` line
(no destructor traceback after it, no chained tracebacks), names the path, and loses nothing."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from helpers import DEMO_CFG, demo_trainer, one_error_line, run_cli, tool_cmd

from segnext_jt.engine import checkpoint as checkpoint_module
from segnext_jt.engine.checkpoint import CheckpointWriteError, write_failure
from segnext_jt.io import load_npz, save_npz


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_train_options):
    """A 2-iteration run with iter_2.npz (the checkpoint the resume cases damage)."""
    work = tmp_path_factory.mktemp("ckpt")
    demo_trainer(work, tiny_train_options + ["train.max_iters=2", "train.eval_interval=100"], "run").train()
    return work / "run" / "iter_2.npz"


def _train_cmd(work, options, *extra):
    return [*tool_cmd("tools", "train.py"), DEMO_CFG, "--no-progress", "--work-dir", str(work), *extra,
            "--cfg-options", *options]


def _damaged(tmp_path, source, name, change_meta=None, change_arrays=None):
    arrays, meta = load_npz(source)
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
    path = tmp_path / name
    save_npz(path, arrays, meta)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case, needle", [
    ("iter_text", "metadata field 'iter' is 'abc'"),
    ("iter_negative", "metadata field 'iter' is -5"),
    ("iter_huge_float", "metadata field 'iter' is 1e+30"),
    ("seed_text", "metadata field 'seed' is 'zero'"),
    ("rng_broken", "metadata field 'rng'"),
    ("window_broken", "metadata field 'log_window'"),
    ("float64_overflow", "beyond float32's range"),
    ("other_config", "does not match this config's model"),
])
def test_bad_resume_checkpoints_are_one_line(tmp_path, tiny_train_options, finished_run, case, needle):
    def meta_change(meta):
        changes = {"iter_text": ("iter", "abc"), "iter_negative": ("iter", -5), "iter_huge_float": ("iter", 1e30),
                   "seed_text": ("seed", "zero"), "rng_broken": ("rng", {"python": [1, [2], None]}),
                   "window_broken": ("log_window", {"loss": "x"})}
        if case in changes:
            meta[changes[case][0]] = changes[case][1]

    def array_change(arrays):
        key = next(k for k, v in arrays.items() if k.startswith("state_dict/") and v.dtype == np.float32 and v.size > 1)
        if case == "float64_overflow":
            arrays[key] = arrays[key].astype(np.float64)
            arrays[key].flat[0] = 1e300
        if case == "other_config":
            head = next(k for k in arrays if k.endswith("conv_seg.weight"))
            arrays[head] = np.zeros((3,) + arrays[head].shape[1:], np.float32)
    ckpt = _damaged(tmp_path, finished_run, "iter_2.npz", meta_change, array_change)
    proc = run_cli(_train_cmd(tmp_path / "work", tiny_train_options, "--resume", str(ckpt)))
    one_error_line(proc, needle, code=1)


@pytest.mark.slow
@pytest.mark.parametrize("planted", ["log.json", ".lock", ".iter_4.npz.abc123.tmp"])
def test_a_directory_where_a_file_belongs_is_one_line(tmp_path, tiny_train_options, planted):
    work = tmp_path / "work"
    (work / planted).mkdir(parents=True)
    proc = run_cli(_train_cmd(work, tiny_train_options + ["train.max_iters=2"]))
    one_error_line(proc, planted, code=1)


def test_disk_full_at_a_checkpoint_is_one_line_and_loses_nothing(tmp_path, tiny_train_options, monkeypatch):
    real_save = checkpoint_module.save_npz

    def full_at_iter_4(path, arrays, meta, **kw):
        if path.endswith("iter_4.npz"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_save(path, arrays, meta, **kw)

    monkeypatch.setattr(checkpoint_module, "save_npz", full_at_iter_4)
    trainer = demo_trainer(tmp_path, tiny_train_options, "full")
    with pytest.raises(CheckpointWriteError) as info:
        trainer.train()
    message = str(info.value)
    assert "\n" not in message and "iter_4.npz: No space left on device (needs about" in message
    assert "MB free)" in message and "Nothing was lost" in message and "iter_2.npz" in message
    assert "--resume" in message and not (tmp_path / "full" / "iter_4.npz").exists()
    assert load_npz(tmp_path / "full" / "iter_2.npz")[1]["iter"] == 2


@pytest.mark.parametrize("err, needle", [
    (errno.EROFS, "Read-only file system"), (errno.ENOTDIR, "the work dir was replaced by a file"),
    (errno.EACCES, "Permission denied")])
def test_write_failures_name_the_path_and_the_cause(tmp_path, err, needle):
    path = str(tmp_path / "iter_8.npz")
    message = write_failure(OSError(err, os.strerror(err), path), path, 0, "The last good checkpoint is x.")
    assert message.startswith(f"cannot write {path}: ") and needle in message and "--resume" in message
    gone = str(tmp_path / "deleted" / "log.json")
    assert "the work dir was deleted or moved" in write_failure(OSError(errno.ENOENT, "x", gone), gone, 0, "")


@pytest.mark.slow
def test_tools_check_their_own_numbers_before_any_work(tmp_path, tiny_checkpoint, tiny_train_options):
    from helpers import sweep_cmd
    proc = run_cli([*tool_cmd("tools", "freeze_nmf_bases.py"), str(tiny_checkpoint), str(tmp_path / "f.npz"),
                    "--rank", "100000000"])
    one_error_line(proc, "--rank must be in [1, 512], got 100000000")
    proc = run_cli(sweep_cmd(tmp_path / "sweep", tiny_train_options, "--seeds", "0..1", "--nmf-draws", "100"))
    one_error_line(proc, "eval.nmf_draws must be in 1..64, got 100")
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "f.npz").exists()
