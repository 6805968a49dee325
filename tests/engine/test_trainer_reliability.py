"""Training engine reliability (issue #9): divergence never leaves a non-finite checkpoint,
SIGINT/SIGTERM end cleanly and resumably, the work dir is locked, resume rewrites identical log
lines (torn last log line repaired, int64 BN counters), all-ignore labels are refused and every
JSON file is strict JSON. Tiny model on CPU; the signal tests run tools/train.py in subprocesses."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from helpers import (DEMO_CFG, ROOT, demo_trainer, lines_without_timing, log_records, our_stderr_lines,
                     strict_json)

from segnext_jt.engine.logger import JsonLogWriter
from segnext_jt.engine.trainer import TrainingDataError, TrainingDivergedError, TrainSetupError
from segnext_jt.engine.work_dir import WorkDirLockedError
from segnext_jt.io import load_npz, save_npz

def _checkpoints(work):
    return sorted(work.glob("iter_*.npz"), key=lambda p: int(re.search(r"\d+", p.name).group()))


def _assert_finite_file(path):
    arrays, _ = load_npz(path)
    bad = [k for k, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    assert not bad, f"{path.name} holds non-finite arrays: {bad[:3]}"


def _temporaries(work):
    return [n for n in os.listdir(work) if n.endswith(".tmp")]


# ------------------------------------------------------------------------------ 1. divergence
@pytest.mark.parametrize("lr", [float("nan"), 1e30, float("inf")])
def test_divergence_never_writes_a_nonfinite_checkpoint(tmp_path, tiny_train_options, lr):
    """lr=nan makes the weights NaN in the first update while that iteration's loss is still finite;
    lr=1e30 explodes them (finite, then inf) before the loss notices. Neither may be checkpointed,
    and the checkpoint the message names is loaded back and finite."""
    opts = tiny_train_options + ["train.checkpoint_interval=1", "train.max_iters=6", "train.eval_interval=100"]
    trainer = demo_trainer(tmp_path, opts, "div")
    trainer.lr = lambda it: lr  # the schedule's value for every iteration (config validation aside)
    with pytest.raises(TrainingDivergedError, match=r"at iteration \d|iteration \d+ \(0-based") as info:
        trainer.train()
    msg = str(info.value)
    work = tmp_path / "div"
    for path in _checkpoints(work):
        _assert_finite_file(path)
    named = re.search(r"last good checkpoint is (\S+\.npz)", msg)
    if named:
        _assert_finite_file(tmp_path / "div" / os.path.basename(named.group(1)))
        assert "verified finite" in msg
    else:
        assert "No finite checkpoint" in msg and not _checkpoints(work)
    if lr != lr:  # NaN: caught in the very first update, before any checkpoint
        assert "iteration 1 " in msg and "non-finite" in msg and not _checkpoints(work)
    assert not _temporaries(work)
    assert all(r.get("loss") is None or np.isfinite(r["loss"]) for r in log_records(work)[1:])


def test_save_and_resume_refuse_nonfinite_state(tmp_path, tiny_train_options):
    opts = tiny_train_options + ["train.max_iters=2", "train.eval_interval=100"]
    trainer = demo_trainer(tmp_path, opts, "w")
    trainer.train()
    good = tmp_path / "w" / "iter_2.npz"
    name, var = next(iter(trainer.model.state_dict().items()))
    var.assign(var * float("nan"))
    with pytest.raises(TrainingDivergedError, match=re.escape(name)):
        trainer.save_checkpoint(3)
    assert not (tmp_path / "w" / "iter_3.npz").exists() and not _temporaries(tmp_path / "w")

    arrays, meta = load_npz(good)  # a non-finite checkpoint written by an older version
    key = next(k for k in arrays if k.startswith("optimizer/"))
    arrays[key] = np.full_like(arrays[key], np.inf)
    bad = tmp_path / "w" / "iter_9.npz"
    save_npz(bad, arrays, meta)
    with pytest.raises(TrainSetupError, match="non-finite"):
        demo_trainer(tmp_path, opts, "w", resume=str(bad))


def test_state_going_nonfinite_between_full_checks_stops_before_the_next_checkpoint(tmp_path, tiny_train_options):
    """The loss is checked every iteration, the whole state at log lines, evaluations and checkpoints
    only. A BN running mean set to inf after iteration 5 (the training forward normalises with the
    batch statistics, so the loss stays finite) is found at iteration 8, before iter_8.npz is
    written, and the stop names iter_4.npz; iterations 5-7 ran no full check."""
    opts = tiny_train_options + ["train.max_iters=12", "train.log_interval=4", "train.checkpoint_interval=4",
                                 "train.eval_interval=100"]
    messages = []
    trainer = demo_trainer(tmp_path, opts, "bn", logger=messages.append)
    name, running_mean = next((k, v) for k, v in trainer.model.state_dict().items() if k.endswith("running_mean"))
    real_step, checked, losses = trainer._step, [], []

    def step(it, batch, slots, lr, full_check=False):
        values, finite = real_step(it, batch, slots, lr, full_check=full_check)
        checked.append(full_check)
        losses.append(values["loss"])
        if it == 4:  # after the update of iteration 5
            running_mean.assign(running_mean + float("inf"))
        return values, finite

    trainer._step = step
    with pytest.raises(TrainingDivergedError) as info:
        trainer.train()
    msg = str(info.value)
    work = tmp_path / "bn"
    assert checked == [False, False, False, True, False, False, False, True]
    assert all(np.isfinite(losses)), losses
    assert name in msg and "iterations 5-8" in msg and "loss is" not in msg, msg
    assert re.search(r"last good checkpoint is \S+/iter_4\.npz \(loaded back and verified finite\)", msg), msg
    assert [p.name for p in _checkpoints(work)] == ["iter_4.npz"] and not _temporaries(work)
    _assert_finite_file(work / "iter_4.npz")
    assert messages[0].startswith("compiling kernels for the first step (cached in ")
    assert re.fullmatch(r"first step took \d+\.\d s \((\d+ new kernels compiled|no new kernels: all were "
                        r"cached)\)", messages[1]), messages[:2]


def test_full_check_schedule_does_not_change_the_numbers(tmp_path, tiny_train_options):
    """The full check runs as its own graph after the step's, so checking the state after every
    iteration or after only some gives the same weights and moments, bit for bit (built into the
    step's graph, it changed how Jittor fused the update and so the last float bits)."""
    opts = tiny_train_options + ["train.max_iters=6", "train.checkpoint_interval=6", "train.eval_interval=100"]
    demo_trainer(tmp_path, opts + ["train.log_interval=1"], "every").train()
    demo_trainer(tmp_path, opts + ["train.log_interval=5"], "rare").train()
    a, _ = load_npz(tmp_path / "every" / "iter_6.npz")
    b, _ = load_npz(tmp_path / "rare" / "iter_6.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} depends on how often the state was checked"


# ------------------------------------------------------------------------------ 3. resume
def test_resume_log_lines_identical_torn_line_repaired_int64_counters(tmp_path, tiny_train_options):
    """log_interval 3 and checkpoint_interval 2 do not align: resuming from iter_4 must still log
    the mean of iterations 4-6 at iteration 6 (the partial window is in the checkpoint)."""
    opts = tiny_train_options + ["train.max_iters=8", "train.log_interval=3", "train.checkpoint_interval=2",
                                 "train.eval_interval=8"]
    ref = tmp_path / "ref"
    demo_trainer(tmp_path, opts, "ref", seed=2).train()

    res = tmp_path / "res"  # the state of a run killed during iteration 5, its log line 6 half written
    res.mkdir()
    shutil.copy(ref / "iter_4.npz", res / "iter_4.npz")
    log = [line for line in open(ref / "log.json") if line.strip()]
    kept = [line for line in log if strict_json(line).get("iter", 0) <= 4]
    (res / "log.json").write_text("".join(kept) + '{"mode": "train", "epoch": 1, "iter": 6, "lr": 5.9')
    messages = []
    demo_trainer(tmp_path, opts, "res", seed=2, resume="auto", logger=messages.append).train()

    warnings = [m for m in messages if "warning" in m]
    assert len(warnings) == 1 and "log.json" in warnings[0] and "last line" in warnings[0], messages
    assert lines_without_timing(ref) == lines_without_timing(res)
    assert [r["iter"] for r in log_records(res)[1:] if r.get("mode") == "train"] == [3, 6, 8]
    a, _ = load_npz(ref / "iter_8.npz")
    b, _ = load_npz(res / "iter_8.npz")
    assert a.keys() == b.keys()
    counters = [k for k in a if k.endswith("num_batches_tracked")]
    assert counters
    for k in a:
        assert a[k].dtype == b[k].dtype, f"{k}: {b[k].dtype} after resume, {a[k].dtype} uninterrupted"
        assert np.array_equal(a[k], b[k]), f"{k} differs after resume"
    assert all(a[k].dtype == np.int64 for k in counters)


def test_torn_log_line_writer_unit(tmp_path):
    path = tmp_path / "log.json"
    path.write_text('{"seed": 0}\n{"mode": "train", "iter": 2, "loss": NaN}\n{"mode": "train", "iter": 4}\n'
                    '{"mode": "tr')
    warned = []
    writer = JsonLogWriter(str(path), {"seed": 0}, resume_iter=3, warn=warned.append)
    writer.write({"mode": "val", "iter": 3, "mIoU": float("nan"), "IoU.a": float("inf"), "lr": 0.1234567})
    records = [strict_json(x) for x in path.read_text().splitlines()]
    assert records == [{"seed": 0}, {"mode": "train", "iter": 2, "loss": None},
                       {"mode": "val", "iter": 3, "mIoU": None, "IoU.a": None, "lr": 0.12346}]
    assert len(warned) == 1


# ------------------------------------------------------------------------------ 2. work dir
def test_work_dir_lock_and_stale_temporaries(tmp_path, tiny_train_options):
    work = tmp_path / "w"
    work.mkdir()
    stale = [work / ".iter_4.npz.k2j3h4.tmp", work / "log.json.tmp", work / ".train_result.json.x1.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    (work / "notes.tmp").write_text("not ours")
    first = demo_trainer(tmp_path, tiny_train_options, "w")
    assert not any(p.exists() for p in stale) and (work / "notes.tmp").exists()
    with pytest.raises(WorkDirLockedError) as info:
        demo_trainer(tmp_path, tiny_train_options, "w")
    assert str(work) in str(info.value) and f"pid {os.getpid()}" in str(info.value)
    first.close()
    demo_trainer(tmp_path, tiny_train_options, "w").close()  # free again


def _run_train_cli(args):
    env = dict(os.environ, SEGNEXT_DEVICE="cpu")
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "train.py"), DEMO_CFG, "--no-progress",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_second_cli_writer_is_refused(tmp_path, tiny_train_options):
    work = tmp_path / "w"
    holder = demo_trainer(tmp_path, tiny_train_options, "w")  # this process holds the lock
    try:
        proc = _run_train_cli(["--work-dir", str(work), "--cfg-options", *tiny_train_options])
        out, err = proc.communicate(timeout=300)
    finally:
        holder.close()
    assert proc.returncode == 1, out + err
    assert f"pid {os.getpid()}" in err and str(work) in err and "Traceback" not in out + err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_exits_fast_with_one_line_and_resumes(tmp_path, tiny_train_options, sig):
    opts = tiny_train_options + ["train.max_iters=40", "train.checkpoint_interval=2", "train.log_interval=3",
                                 "train.eval_interval=40"]
    work = tmp_path / "w"
    proc = _run_train_cli(["--work-dir", str(work), "--seed", "1", "--cfg-options", *opts])
    deadline = time.time() + 600
    while not (work / "iter_2.npz").exists():
        assert proc.poll() is None, "run ended before it could be interrupted: " + "".join(proc.communicate())
        assert time.time() < deadline, "no checkpoint after 10 minutes"
        time.sleep(0.05)
    proc.send_signal(sig)
    t0 = time.time()
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no exit within 60 s of {sig.name}: {out}{err}")
    assert time.time() - t0 < 60
    assert not (work / "iter_40.npz").exists(), "the run was not interrupted"
    assert proc.returncode == 128 + sig, out + err
    ours = our_stderr_lines(err)  # without Jittor's own log and compile progress
    assert len(ours) == 1, err
    assert re.fullmatch(rf"interrupted by {sig.name} at iteration \d+ \(latest checkpoint iter_\d+\.npz\); "
                        r"resume with --resume", ours[0]), ours[0]
    assert "Traceback" not in out + err and not _temporaries(work)
    for path in _checkpoints(work):
        _assert_finite_file(path)

    proc = _run_train_cli(["--work-dir", str(work), "--seed", "1", "--resume", "--cfg-options", *opts])
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, out + err
    assert (work / "iter_40.npz").exists() and not _temporaries(work)
    iters = [r["iter"] for r in log_records(work)[1:] if r.get("mode") == "train"]
    assert iters == list(range(3, 40, 3)) + [40]
    strict_json((work / "train_result.json").read_text())


# ------------------------------------------------------------------------------ 4. all-ignore labels
def _copy_with_zero_labels(src, dst, splits):
    """The demo dataset with every annotation of `splits` set to 0, which reduce_zero_label maps to 255."""
    shutil.copytree(src, dst)
    for split in splits:
        for png in (dst / "annotations" / split).glob("*.png"):
            arr = np.asarray(Image.open(png))
            Image.fromarray(np.zeros_like(arr)).save(png)
    return dst


def test_all_ignore_train_labels_are_refused(tmp_path, tiny_train_options, demo_root):
    root = _copy_with_zero_labels(demo_root, tmp_path / "ADEChallengeData2016", ["training"])
    opts = [o for o in tiny_train_options if not o.startswith("data.root=")] + [f"data.root={root}"]
    messages = []
    with pytest.raises(TrainingDataError, match="ignore_index 255") as info:
        demo_trainer(tmp_path, opts, "w", logger=messages.append).train()
    assert "reduce_zero_label" in str(info.value)
    assert sum("warning" in m for m in messages) == 1
    assert not (tmp_path / "w" / "train_result.json").exists()


def test_result_and_log_are_strict_json_when_val_labels_are_all_ignored(tmp_path, tiny_train_options, demo_root,
                                                                      capsys):
    root = _copy_with_zero_labels(demo_root, tmp_path / "ADEChallengeData2016", ["validation"])
    opts = [o for o in tiny_train_options if not o.startswith("data.root=")] + [
        f"data.root={root}", "train.max_iters=2", "train.eval_interval=2"]
    spec = importlib.util.spec_from_file_location("train_tool", os.path.join(ROOT, "tools", "train.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    work = tmp_path / "w"
    assert tool.main([DEMO_CFG, "--no-progress", "--work-dir", str(work), "--cfg-options", *opts]) == 0
    result = strict_json((work / "train_result.json").read_text())
    assert result["mIoU"] is None and result["final_iter"] == 2
    val = [r for r in log_records(work) if r.get("mode") == "val"]
    assert val and val[0]["mIoU"] is None
    assert "mIoU is undefined" in capsys.readouterr().err


# ------------------------------------------------------------------------------ issue 18, class 5
@pytest.mark.parametrize("plant", ["symlink", "dangling", "hardlink"])
def test_planted_lock_is_refused_and_its_target_unchanged(tmp_path, tiny_train_options, plant):
    """`ln -s victim.txt WD/.lock` made a training run write its pid into victim.txt."""
    work = tmp_path / "w"
    work.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    if plant == "symlink":
        (work / ".lock").symlink_to(victim)
    elif plant == "dangling":
        (work / ".lock").symlink_to(tmp_path / "created_through_the_link.txt")
    else:
        os.link(victim, work / ".lock")
    with pytest.raises(WorkDirLockedError) as info:
        demo_trainer(tmp_path, tiny_train_options, "w")
    msg = str(info.value)
    assert "\n" not in msg and str(work / ".lock") in msg and ("symlink" in msg or "hard link" in msg)
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "created_through_the_link.txt").exists()
    assert not (work / "log.json").exists()


@pytest.mark.slow
def test_resume_of_a_finished_run_changes_nothing(tmp_path, tiny_train_options):
    """--resume on a finished run rewrote train_result.json with final_loss and mIoU null."""
    opts = tiny_train_options + ["train.max_iters=4", "train.checkpoint_interval=2", "train.log_interval=2",
                                 "train.eval_interval=4"]
    work = tmp_path / "w"
    first = demo_trainer(tmp_path, opts, "w").train()
    assert first.summary["final_loss"] is not None and first.summary["mIoU"] is not None
    before = {name: (work / name).read_bytes() for name in ("train_result.json", "log.json")}
    stamps = {p.name: p.stat().st_mtime_ns for p in work.iterdir() if p.name != ".lock"}
    for resume in (["--resume"], ["--resume", str(work / "iter_4.npz")]):
        proc = _run_train_cli(["--work-dir", str(work), *resume, "--cfg-options", *opts])
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
        assert "already finished at iteration 4" in out + err and "Traceback" not in out + err
        for name, data in before.items():
            assert (work / name).read_bytes() == data, f"{name} changed"
        assert {p.name: p.stat().st_mtime_ns for p in work.iterdir() if p.name != ".lock"} == stamps
    # the result printed is the recorded one
    assert f'"final_loss": {json.dumps(first.summary["final_loss"])}' in out


@pytest.mark.slow
def test_planted_lock_cli_is_one_line(tmp_path, tiny_train_options):
    work = tmp_path / "w"
    work.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (work / ".lock").symlink_to(victim)
    proc = _run_train_cli(["--work-dir", str(work), "--cfg-options", *tiny_train_options])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in out + err, out + err
    assert [line for line in err.splitlines() if line.strip()] == [
        line for line in err.splitlines() if "symlink" in line]
    assert victim.read_text() == "precious\n"


def test_resume_streams_the_log(tmp_path):
    """--resume on a 3-million-line log.json used 1 GB: the log is rewritten line by line. Python's
    peak allocation must stay far below the file's size (here ~50 MB, 250k lines)."""
    import tracemalloc
    path = tmp_path / "log.json"
    line = '{"mode": "train", "epoch": 1, "iter": %d, "lr": 6e-05, "memory": 1234, "loss": 0.5, "time": 0.3}\n'
    with open(path, "w") as f:
        f.write('{"seed": 0}\n')
        for start in range(1, 250_001, 10_000):
            f.write("".join(line % i for i in range(start, start + 10_000)))
        f.write('{"mode": "tr')  # torn last line
    size = path.stat().st_size
    warned = []
    tracemalloc.start()
    try:
        JsonLogWriter(str(path), {"seed": 0}, resume_iter=200_000, warn=warned.append)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 20, f"peak {peak:,} bytes for a {size:,}-byte log"
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) == 200_001 and json.loads(lines[-1])["iter"] == 200_000
    assert warned == [f"warning: {path}: dropped its last line, which is not valid JSON (torn by an "
                      "interrupted write); continuing"]


@pytest.mark.parametrize("content, expected, warns", [
    ('{"mode": "train", "iter": 1}\n', [{"seed": 0}, {"mode": "train", "iter": 1}], 0),  # metadata lost
    ("", [{"seed": 0}], 0),
    ("garbage\n" * 7 + '{"seed": 0}\n', [{"seed": 0}], 1),
    ('{"seed": 0}\n\n\n{"mode": "val", "iter": 9}\n', [{"seed": 0}], 0),
])
def test_resume_log_rewrite_variants(tmp_path, content, expected, warns):
    path = tmp_path / "log.json"
    path.write_text(content)
    warned = []
    JsonLogWriter(str(path), {"seed": 0}, resume_iter=5, warn=warned.append)
    assert [json.loads(x) for x in path.read_text().splitlines()] == expected
    assert len(warned) == warns
    if warns:
        assert "line(s) 1, 2, 3, 4, 5 ..." in warned[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["no data.root", "data.root is a file", "no --resume file", "--resume is a dir"])
def test_missing_paths_exit_2_before_anything_is_written(tmp_path, tiny_train_options, case):
    """The README promises exit 2 for path errors; a missing data.root or --resume file exited 1."""
    work = tmp_path / "w"
    opts, extra = list(tiny_train_options), []
    if case == "no data.root":
        opts.append(f"data.root={tmp_path / 'nowhere'}")
    elif case == "data.root is a file":
        (tmp_path / "file").write_text("x")
        opts.append(f"data.root={tmp_path / 'file'}")
    elif case == "no --resume file":
        extra = ["--resume", str(tmp_path / "iter_9.npz")]
    else:
        extra = ["--resume", str(tmp_path)]
    proc = _run_train_cli(["--work-dir", str(work), *extra, "--cfg-options", *opts])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out + err, err
    assert ("data.root" if "data.root" in case else "--resume") in lines[0]
    assert not work.exists()


@pytest.mark.parametrize("bad", ['"x"', "1e400", "[3]", "-4", "2.5", '{"a": 1}'])
def test_resume_log_line_with_a_bad_iter_is_one_line(tmp_path, bad):
    path = tmp_path / "log.json"
    before = '{"seed": 0}\n{"mode": "train", "iter": 2}\n{"mode": "train", "iter": %s}\n' % bad
    path.write_text(before)
    with pytest.raises(TrainSetupError) as info:
        JsonLogWriter(str(path), {"seed": 0}, resume_iter=5)
    msg = str(info.value)
    assert "\n" not in msg and f"{path}: line 3: 'iter'" in msg
    assert path.read_text() == before  # nothing rewritten
    assert not [p for p in tmp_path.iterdir() if p.name != "log.json"]  # no temporary left
