"""repro/seed_sweep.py process hygiene: children die with the sweep (even after SIGKILL), SIGTERM
stops everything quickly with one line, a locked seed dir is refused, seed lists are capped without
being materialised, and the Slurm array script runs end to end under a stand-in sbatch."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from helpers import CLI_ENV, ROOT, our_stderr_lines, sweep_cmd


@pytest.fixture(scope="module")
def options(tiny_train_options):
    return tiny_train_options + ["train.max_iters=4", "train.eval_interval=1000", "train.checkpoint_interval=4"]


def _group_members(pgid: int) -> list[tuple[int, str]]:
    """Live (non-zombie) processes of process group `pgid`, with their command lines."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append((int(entry), cmd))
    return out


def _wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _start_and_wait_for_training(work, options, *extra):
    err = open(work / "sweep.err", "w+")  # a file, not a pipe nobody reads while children write to it
    proc = subprocess.Popen(sweep_cmd(work, options, "--seeds", "0", "--no-msflip", *extra),
                            stdout=subprocess.DEVNULL, stderr=err, env=CLI_ENV,
                            start_new_session=True)  # a group of its own, so the test can find every child
    proc.err_file = err

    def training_started():
        assert proc.poll() is None, (work / "sweep.err").read_text()[-3000:]
        return any("tools/train.py" in cmd for _, cmd in _group_members(proc.pid))
    _wait_for(training_started, 300, "the training child")
    time.sleep(1.0)  # let it get past its start-up
    return proc


def _cleanup(proc):
    for pid, _ in _group_members(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.err_file.close()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_sigkill_of_the_sweep_takes_its_children_down(tmp_path, options):
    proc = _start_and_wait_for_training(tmp_path, options)
    try:
        os.kill(proc.pid, signal.SIGKILL)  # only the sweep itself, not its group
        proc.wait()
        _wait_for(lambda: not _group_members(proc.pid), 60, "the worker and training to exit")
    finally:
        _cleanup(proc)


@pytest.mark.slow
def test_sigterm_stops_children_and_exits_with_one_line(tmp_path, options):
    # --procs 2: worker output goes to seed_0.out, so the sweep's own stderr is what we check
    proc = _start_and_wait_for_training(tmp_path, options, "--procs", "2")
    try:
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        proc.wait(timeout=120)
        elapsed = time.monotonic() - sent
        err = (tmp_path / "sweep.err").read_text()
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert elapsed < 60  # the requirement is 10 s; generous for a loaded machine
        lines = our_stderr_lines(err)
        assert len(lines) == 1 and "interrupted by SIGTERM" in lines[0] and "Traceback" not in err, err
        _wait_for(lambda: not _group_members(proc.pid), 60, "the children to exit")
    finally:
        _cleanup(proc)
    assert not (tmp_path / "seed_0" / "result.json").exists()


@pytest.mark.slow
def test_locked_seed_dir_is_refused_with_the_holders_pid(tmp_path, options):
    seed_dir = tmp_path / "seed_0"
    seed_dir.mkdir()
    for name in (".lock", ".sweep.lock"):
        with open(seed_dir / name, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.write("4242\n")
            f.flush()
            proc = subprocess.run(sweep_cmd(tmp_path, options, "--seeds", "0", "--no-msflip"),
                                  capture_output=True, text=True, env=CLI_ENV, timeout=300)
            assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
            assert "Traceback" not in proc.stderr
            assert f"seed_0{os.sep}{name} is held by pid 4242" in proc.stderr, proc.stderr
            # a worker started directly (a Slurm task) refuses too
            worker = subprocess.run(sweep_cmd(tmp_path, options, "--_one-seed", "0", "--no-msflip"),
                                    capture_output=True, text=True, env=CLI_ENV, timeout=300)
            assert worker.returncode == 1 and "pid 4242" in worker.stderr and "Traceback" not in worker.stderr, \
                worker.stderr
    assert not (seed_dir / "log.json").exists(), "a training was started in a locked dir"


def test_seed_lists_are_capped_without_being_materialised():
    from segnext_jt.repro.sweep import seed_sweep
    from segnext_jt.cli import UsageError
    spec = seed_sweep.parse_seed_spec("0..2000000000")
    assert spec.count() == 2_000_000_001
    with pytest.raises(UsageError, match="--max-seeds"):
        spec.expand(1000)
    assert seed_sweep.parse_seed_spec("0..2,10,1,2..4").count() == 6
    assert seed_sweep.parse_seed_spec("5,0..2").expand(10) == [5, 0, 1, 2]
    assert seed_sweep.parse_seed_list("0..1500", max_seeds=2000)[-1] == 1500
    for bad in ("3..1", "x", "-1", "0..3000000000", "", "1" * 5000):
        with pytest.raises(Exception, match="bad seed list"):
            seed_sweep.parse_seed_spec(bad)


STAND_IN_SBATCH = """#!/bin/bash
# stand-in sbatch: run every array task of the script here, one after the other
set -e
script="${@: -1}"
range=$(grep -m1 '^#SBATCH --array=' "$script" | sed 's/^#SBATCH --array=//')
lo=${range%-*}; hi=${range#*-}
for i in $(seq "$lo" "$hi"); do
    SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_JOB_ID=1 bash "$script"
done
echo "Submitted batch job 1"
"""


@pytest.mark.slow
def test_slurm_array_script_end_to_end_with_stand_in_sbatch(tmp_path, options):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(STAND_IN_SBATCH)
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IXUSR)
    env = dict(CLI_ENV, PATH=f"{bin_dir}{os.pathsep}{CLI_ENV.get('PATH', '')}")
    work = tmp_path / "sweep"
    # relative --work-dir from another directory: the array task must still find it
    proc = subprocess.run(sweep_cmd("sweep", options, "--seeds", "0", "--eval-seeds", "0", "--no-msflip",
                                     "--launcher", "slurm", "--submit", "--slurm-args=--partition=test"),
                          capture_output=True, text=True, env=env, timeout=1200, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Submitted batch job 1" in proc.stdout
    script = (work / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-0" in script and "#SBATCH --partition=test" in script
    result = json.loads((work / "seed_0" / "result.json").read_text())
    assert result["seed"] == 0 and [(e["eval_seed"], e["mode"]) for e in result["eval"]] == [(0, "ss")]
    # the rerun finds the seed finished and submits nothing
    again = subprocess.run(sweep_cmd("sweep", options, "--seeds", "0", "--eval-seeds", "0", "--no-msflip",
                                      "--launcher", "slurm", "--submit"),
                           capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
    assert again.returncode == 0 and "finished [0]" in again.stdout and "Submitted" not in again.stdout, \
        again.stdout + again.stderr
    report = subprocess.run([sys.executable, os.path.join(ROOT, "repro", "report.py"), str(work)],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
