"""Pytest fixtures shared by the tests; plain helpers (paths, fixture readers, builders) are in
tests/helpers.py. Reference fixtures: tests/fixtures (how they were made: tests/fixtures/README.md).

This is the one place that changes sys.path: it puts tests/ there, so that test modules in every
subdirectory import `helpers` (and `_torch_writer`). The package itself is installed (pip install -e).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
ROOT = TESTS.parent
# tools/ is no package; on sys.path so that tests import the demo data generator as the module
# `prepare_demo_data` (tools/prepare_demo_data.py), and so that its spawned workers find it by that name.
if str(ROOT / "tools") not in sys.path:
    sys.path.append(str(ROOT / "tools"))
os.environ.setdefault("SEGNEXT_DEVICE", "cpu")  # tests never need a GPU
# ... nor the network: a test that would download weights fails at once (tests/test_hub.py unsets it
# for its own 127.0.0.1 server)
os.environ.setdefault("SEGNEXT_OFFLINE", "1")

import segnext_jt.runtime  # noqa: E402,F401  (before any test module imports jittor)

from helpers import FIXTURES, TINY, TINY_TRAIN_OVERRIDES, fixture_config, fixture_model  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: runs a tool, a training run, a seed sweep, mpirun or a kernel compile in "
                   "subprocesses (end to end); "
                   "`pytest -m \"not slow\"` leaves these out (tests/README.md)")


@pytest.fixture(params=["fast", "reference"])
def compute_path(request):
    """Run a test on both compute paths: the default one (native CPU kernels, eval folding) and the
    module-by-module path on Jittor's own operators (SEGNEXT_CPU_KERNELS=jittor, SEGNEXT_EVAL_FOLDING=0)."""
    from segnext_jt.models.kernels import cpu_ops, folding
    before = (cpu_ops.native_cpu_kernels(), folding.eval_folding())
    fast = request.param == "fast"
    cpu_ops.set_native_cpu_kernels(fast)
    folding.set_eval_folding(fast)
    yield request.param
    cpu_ops.set_native_cpu_kernels(before[0])
    folding.set_eval_folding(before[1])


# ---------------------------------------------------------------------------- the tiny reference model
@pytest.fixture(scope="session")
def tiny_cfg():
    return fixture_config("tiny-test_eval_64x64")


@pytest.fixture(scope="module")
def tiny():
    """The tiny reference model (fixture tiny-test_eval_64x64) in eval mode; one per test module."""
    model = fixture_model(TINY)
    model.eval()
    return model


@pytest.fixture(scope="module")
def x64():
    import jittor as jt
    return jt.array(np.load(FIXTURES / TINY / "input.npy"))  # (2, 3, 64, 64) normalised images


@pytest.fixture
def alarm():
    """Fail with TimeoutError (instead of hanging the suite) if the test blocks for 30 s: for reads
    that must refuse a FIFO rather than wait on it."""
    import signal

    def on_alarm(signum, frame):
        raise TimeoutError("blocked for 30 s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------- demo data, tiny training
@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small MNIST-derived dataset in the ADE20K layout (labels derived from MNIST strokes): the
    ADEChallengeData2016 folder itself, 32 training and 6 validation images."""
    from prepare_demo_data import build_demo_dataset
    out = tmp_path_factory.mktemp("demo_data")
    build_demo_dataset(str(out), num_train=32, num_val=6, size=64, seed=0)
    return out / "ADEChallengeData2016"


@pytest.fixture(scope="session")
def small_demo_dir(tmp_path_factory):
    """A smaller demo dataset for the data tests: the folder that holds ADEChallengeData2016 (not the
    dataset folder itself, unlike `demo_root`), 10 training and 4 validation images."""
    from prepare_demo_data import build_demo_dataset
    out = tmp_path_factory.mktemp("demo")
    build_demo_dataset(str(out), num_train=10, num_val=4, size=64, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_train_options(demo_root):
    return TINY_TRAIN_OVERRIDES + [f"data.root={demo_root}"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_train_options):
    """A tiny model trained for 20 iterations on the demo data (shared by eval/sweep tests)."""
    from segnext_jt import load_config
    from segnext_jt.engine.trainer import Trainer
    work = tmp_path_factory.mktemp("tiny_ckpt")
    cfg = load_config(ROOT / "configs" / "demo_mnist.yaml",
                      tiny_train_options + ["train.max_iters=20", "train.eval_interval=1000",
                                            "train.checkpoint_interval=20"])
    result = Trainer(cfg, str(work), seed=0, progress=False, logger=lambda *a: None).train()
    return result.checkpoint


# ---------------------------------------------------------------------------- notes for the summary
_NOTES: list = []


@pytest.fixture
def summary_note():
    """Append a line to the end of pytest's output (e.g. the CPU the golden-hash test ran on), shown
    even when the test passes and output is captured."""
    return _NOTES.append


def pytest_terminal_summary(terminalreporter):
    for note in _NOTES:
        terminalreporter.write_line(note)
