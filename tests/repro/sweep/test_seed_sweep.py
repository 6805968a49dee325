"""repro/seed_sweep.py + repro/report.py end to end on the demo data (tiny model, CPU)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import CPU_ENV, ROOT, sweep_cmd

pytestmark = pytest.mark.slow  # every test runs the seed sweep in subprocesses (tests/README.md)


def _results(work):
    out = {}
    for d in sorted(os.listdir(work)):
        path = os.path.join(work, d, "result.json")
        if d.startswith("seed_") and os.path.isfile(path):
            out[d] = json.load(open(path))
    return out


@pytest.fixture(scope="module")
def sweep_options(tiny_train_options):
    return tiny_train_options + ["train.max_iters=16", "train.eval_interval=1000", "train.checkpoint_interval=8"]


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, sweep_options):
    work = tmp_path_factory.mktemp("sweep")
    proc = subprocess.run(sweep_cmd(work, sweep_options, "--seeds", "0..2", "--eval-seeds", "0,1"),
                          capture_output=True, text=True, env=CPU_ENV, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


def test_sweep_runs_reports_and_seeds_differ(finished_sweep):
    results = _results(finished_sweep)
    assert sorted(results) == ["seed_0", "seed_1", "seed_2"]
    for r in results.values():
        assert {(e["eval_seed"], e["mode"]) for e in r["eval"]} == {(0, "ss"), (1, "ss"), (0, "msflip"), (1, "msflip")}
    ss = {k: next(e for e in r["eval"] if e["mode"] == "ss" and e["eval_seed"] == 0) for k, r in results.items()}
    assert len({tuple(e["per_class_iou"]) for e in ss.values()}) >= 2, "training seeds gave identical results"
    assert len({r["final_loss"] for r in results.values()}) == 3
    # each seed names the platform it trained on (its train_result.json's fingerprint)
    assert all(r["platform"]["bits_id"] == json.load(open(finished_sweep / k / "train_result.json"))["platform"]
               ["bits_id"] for k, r in results.items())
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "repro", "report.py"), str(finished_sweep),
                           "--reference", "50.99", "--reference-range", "49.60,51.0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.load(open(finished_sweep / "report.json"))
    md = (finished_sweep / "report.md").read_text()
    assert "seed" in md and "std" in md.lower()
    svgs = list(finished_sweep.glob("*.svg"))
    assert svgs, "no plots written"
    assert report  # the content is checked in tests/repro/report/test_command.py on synthetic data


def test_rerun_reproduces_every_number(tmp_path, finished_sweep, sweep_options):
    proc = subprocess.run(sweep_cmd(tmp_path, sweep_options, "--seeds", "1", "--eval-seeds", "0,1"),
                          capture_output=True, text=True, env=CPU_ENV, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    again = _results(tmp_path)["seed_1"]
    first = _results(finished_sweep)["seed_1"]
    key = lambda e: (e["eval_seed"], e["mode"])
    for a, b in zip(sorted(first["eval"], key=key), sorted(again["eval"], key=key)):
        assert {k: a[k] for k in ("mIoU", "aAcc", "mAcc", "per_class_iou")} == \
               {k: b[k] for k in ("mIoU", "aAcc", "mAcc", "per_class_iou")}
    assert first["final_loss"] == again["final_loss"]


def test_kill_mid_sweep_then_rerun_skips_finished_seeds(tmp_path, sweep_options):
    proc = subprocess.Popen(sweep_cmd(tmp_path, sweep_options, "--seeds", "0..1", "--no-msflip"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CPU_ENV, start_new_session=True)
    first = tmp_path / "seed_0" / "result.json"
    deadline = time.time() + 900
    while not first.exists():
        assert proc.poll() is None, "sweep ended before seed 0 finished"
        assert time.time() < deadline
        time.sleep(0.1)
    stamp = first.stat().st_mtime_ns
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its training child
    proc.wait()
    assert not (tmp_path / "seed_1" / "result.json").exists()
    rerun = subprocess.run(sweep_cmd(tmp_path, sweep_options, "--seeds", "0..1", "--no-msflip"),
                           capture_output=True, text=True, env=CPU_ENV, timeout=1200)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "finished [0]" in rerun.stdout
    assert first.stat().st_mtime_ns == stamp, "seed 0 was redone"
    assert (tmp_path / "seed_1" / "result.json").exists()


def test_eval_seed_sweep_on_one_checkpoint_has_nonzero_spread(tmp_path, finished_sweep, sweep_options):
    ckpt = finished_sweep / "seed_0" / "iter_16.npz"
    proc = subprocess.run(sweep_cmd(tmp_path, sweep_options, "--checkpoint", str(ckpt), "--eval-seeds", "0..3",
                                     "--no-msflip"), capture_output=True, text=True, env=CPU_ENV, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.load(open(tmp_path / "checkpoint_eval" / "result.json"))
    assert result["seed"] is None and len(result["eval"]) == 4 and result["platform"]["device"] == "cpu"
    per_class = {tuple(e["per_class_iou"]) for e in result["eval"]}
    assert len(per_class) > 1, "four NMF eval seeds gave identical results"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "repro", "report.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.load(open(tmp_path / "report.json"))
    text = json.dumps(report)
    assert "checkpoint" in text


def test_dry_run_and_slurm_script(tmp_path, sweep_options):
    proc = subprocess.run(sweep_cmd(tmp_path, sweep_options, "--seeds", "0..9", "--dry-run"),
                          capture_output=True, text=True, env=CPU_ENV, timeout=300)
    assert proc.returncode == 0 and proc.stdout.count("--_one-seed") == 10
    proc = subprocess.run(sweep_cmd(tmp_path, sweep_options, "--seeds", "0,3,7", "--launcher", "slurm"),
                          capture_output=True, text=True, env=CPU_ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    script = (tmp_path / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-2" in script and "SEEDS=(0 3 7)" in script
    bad = subprocess.run(sweep_cmd(tmp_path, sweep_options, "--seeds", "3..1"), capture_output=True, text=True,
                         env=CPU_ENV, timeout=300)
    assert bad.returncode != 0 and "bad seed list" in bad.stderr
