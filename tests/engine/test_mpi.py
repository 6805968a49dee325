"""`mpirun -np 2 tools/train.py` on CPU (issue #9): with --sync-bn it trains the same model as one
process with the same global batch (loss curve and weights within float rounding), SyncBN gives the
global batch's BN statistics and plain BN each process's own, --resume continues bit-identically,
and only rank 0 writes. Skipped without Open MPI (`mpirun`) or a Jittor built without MPI (no
`mpicc` when Jittor was imported). DropPath and Dropout are on (the demo config's rates): their
masks come from one stream per global sample slot (segnext_jt.rng.dropout_rng), the same whichever
process holds the sample.

Tiny model with 64x64 crops, global batch 4 (2 per process), 6 iterations; three mpirun runs.

Tolerances: a reduction-order difference of ~1e-7 relative stays that small in the weights (measured
max 1.1e-6 after 6 iterations) except where AdamW divides a gradient that is rounding noise by its
own magnitude: such an element moves by about the learning rate in one run and not in the other. That
is certain for the conv biases right before a BatchNorm (true gradient 0) and happens to a few other
elements with 32x32 crops (stage 4 then works on 1x1 maps). So the weights are compared by their
relative L2 distance without those biases (measured 4e-8; plain BN instead of SyncBN: 1e-2), and
every element is bounded by twice the sum of the learning rates (AdamW's step is about lr)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import DEMO_CFG, ROOT, demo_trainer, lines_without_timing, log_records

import jittor as jt

from segnext_jt.data.build import train_pipeline
from segnext_jt.data.loader import TrainLoader
from segnext_jt.engine.trainer import iteration_rngs
from segnext_jt.environment import child_env
from segnext_jt.io import load_npz

def _mpi_missing() -> str:
    if shutil.which("mpirun") is None:
        return "mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
    if getattr(jt, "mpi", None) is None:
        return "Jittor has no MPI support (no mpicc when Jittor was imported, or use_mpi=0)"
    return ""


pytestmark = [pytest.mark.slow,  # every test runs mpirun (tests/README.md)
              pytest.mark.skipif(bool(_mpi_missing()), reason=_mpi_missing() or "MPI available")]

ITERS = 6
# Same global batch in both runs; every iteration logged and checkpointed; evaluation only at the end.
MPI_OPTIONS = ["data.crop_size=[64,64]", "data.scale=[256,128]", "train.batch_size=4", f"train.max_iters={ITERS}",
               "train.log_interval=1", "train.checkpoint_interval=1", "train.eval_interval=1000"]
# Conv biases right before a BatchNorm (MSCAN's stem and patch embeddings) and the running means of
# those BNs: true gradient 0, so they drift by up to the sum of the learning rates (see above).
BN_ABSORBED = re.compile(r"backbone\.patch_embed\d\.(proj(\.[03])?\.bias|proj\.[14]\.running_mean|norm\.running_mean)$")
LOSS_TOL = 2e-5     # log.json keeps 5 decimals; measured: equal
REL_L2_TOL = 1e-4   # |w_mpi - w_single| / |w_single|, weights and BN statistics but BN_ABSORBED; measured 4e-8
BN_STATS_TOL = 1e-6  # BN statistics after 1 iteration (before any AdamW step); measured 2.4e-7


def _mpirun(work, options, *args):
    """tools/train.py under `mpirun -np 2`. SEGNEXT_PARENT_PID (child_env) is set on purpose: the
    ranks' parent is mpirun, not this process, and they must not take that for a dead parent."""
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2",
           sys.executable, os.path.join(ROOT, "tools", "train.py"), DEMO_CFG, "--no-progress", "--seed", "0",
           "--work-dir", str(work), *args, "--cfg-options", *options]
    env = child_env(dict(os.environ, SEGNEXT_DEVICE="cpu", OMPI_MCA_btl_vader_single_copy_mechanism="none"))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _state(path):
    arrays, _ = load_npz(path)
    return {k[len("state_dict/"):]: v for k, v in arrays.items() if k.startswith("state_dict/")}


def _bn_stats(state):
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


def _max_diff(a, b):
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


def _rel_l2(a, b):
    diff = sum(float(np.sum((a[k].astype(np.float64) - b[k]) ** 2)) for k in a)
    norm = sum(float(np.sum(a[k].astype(np.float64) ** 2)) for k in a)
    return (diff / norm) ** 0.5


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_train_options):
    """One process, `mpirun -np 2 --sync-bn` and `mpirun -np 2` (plain BN, 1 iteration), same seed."""
    root = tmp_path_factory.mktemp("mpi")
    options = tiny_train_options + MPI_OPTIONS
    demo_trainer(root, options, "single").train()
    synced = _mpirun(root / "sync", options, "--sync-bn")
    _mpirun(root / "plain", options + ["train.max_iters=1"])
    return {"root": root, "options": options, "single": root / "single", "sync": root / "sync",
            "plain": root / "plain", "sync_stdout": synced.stdout}


def test_sync_bn_run_matches_one_process(runs):
    single, sync = log_records(runs["single"]), log_records(runs["sync"])
    train_single = [r for r in single if r.get("mode") == "train"]
    train_sync = [r for r in sync if r.get("mode") == "train"]
    assert [r["iter"] for r in train_sync] == [r["iter"] for r in train_single] == list(range(1, ITERS + 1))
    for a, b in zip(train_single, train_sync):
        assert a["lr"] == b["lr"]
        assert abs(a["loss"] - b["loss"]) <= LOSS_TOL, (a["iter"], a["loss"], b["loss"])
    a, b = _state(runs["single"] / f"iter_{ITERS}.npz"), _state(runs["sync"] / f"iter_{ITERS}.npz")
    assert a.keys() == b.keys()
    floats = {k: v for k, v in a.items() if v.dtype.kind == "f"}
    absorbed = [k for k in floats if BN_ABSORBED.search(k)]
    assert len(absorbed) == 10, absorbed  # 5 biases, 5 running means
    assert _rel_l2({k: v for k, v in floats.items() if k not in absorbed}, b) <= REL_L2_TOL
    assert _max_diff(floats, b) <= 2 * sum(r["lr"] for r in train_single)
    for k in a.keys() - floats.keys():
        assert np.array_equal(a[k], b[k]), k  # num_batches_tracked


def test_sync_bn_gives_global_batch_statistics_and_plain_bn_per_process(runs):
    """After the first iteration: SyncBN's running statistics equal the single process's (global
    batch of 4); without it, rank 0 keeps the statistics of its own 2 samples."""
    single = _bn_stats(_state(runs["single"] / "iter_1.npz"))
    synced = _bn_stats(_state(runs["sync"] / "iter_1.npz"))
    plain = _bn_stats(_state(runs["plain"] / "iter_1.npz"))
    assert len(single) == 26
    assert _max_diff(single, synced) <= BN_STATS_TOL
    assert _max_diff(single, plain) > 1e-3

    trainer = demo_trainer(runs["root"], runs["options"], "half")  # rank 0's forward, in this process
    try:
        loader = TrainLoader(trainer.train_set, train_pipeline(trainer.cfg.data), 4, 0, max_iters=1, slots=[0, 1])
        batch = next(loader)
        loader.close()
        iteration_rngs(trainer.model, trainer.seed, 0, 0, [0, 1])  # rank 0's DropPath/Dropout masks
        trainer.model.loss(jt.array(batch["img"]), jt.array(batch["gt_seg"].astype(np.int32)))
        jt.sync_all()
        half = {k: v.numpy() for k, v in _bn_stats(trainer.model.state_dict()).items()}
    finally:
        trainer.close()
    assert _max_diff(half, plain) <= BN_STATS_TOL


def test_only_rank0_writes(runs):
    work = runs["sync"]
    expected = {".lock", "log.json", "train_result.json"} | {f"iter_{i}.npz" for i in range(1, ITERS + 1)}
    assert set(os.listdir(work)) == expected
    records = log_records(work)
    assert "MPI world size: 2" in records[0]["env_info"]
    assert [r["iter"] for r in records[1:] if r.get("mode") == "train"] == list(range(1, ITERS + 1))
    assert len([r for r in records if r.get("mode") == "val"]) == 1
    out = runs["sync_stdout"]
    assert out.count("final mIoU") == 1 and out.count('"final_iter"') == 1, out
    assert json.loads((work / "train_result.json").read_text())["final_iter"] == ITERS


def test_resume_under_mpi_is_bit_identical(runs):
    """The state of a run stopped after iteration 3 (checkpoint and log lines up to 3), resumed
    with mpirun, ends equal to the uninterrupted mpirun run."""
    ref, res = runs["sync"], runs["root"] / "resumed"
    res.mkdir()
    shutil.copy(ref / "iter_3.npz", res / "iter_3.npz")
    lines = [line for line in open(ref / "log.json") if line.strip()]
    kept = [lines[0]] + [line for line in lines[1:] if json.loads(line).get("iter", 0) <= 3]
    (res / "log.json").write_text("".join(kept))
    proc = _mpirun(res, runs["options"], "--sync-bn", "--resume")
    assert proc.stdout.count("resumed from") == 1, proc.stdout
    assert lines_without_timing(ref) == lines_without_timing(res)
    a, _ = load_npz(ref / f"iter_{ITERS}.npz")
    b, _ = load_npz(res / f"iter_{ITERS}.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs after resuming under MPI"
