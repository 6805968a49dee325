"""Shared helpers for tests: the reference fixtures (tests/fixtures, copied from ../shared/fixtures)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("SEGNEXT_DEVICE", "cpu")  # tests never need a GPU

import segnext_jt.runtime  # noqa: E402,F401  (before any test module imports jittor)


def fixture_dir(name: str) -> Path:
    return FIXTURES / name


def fixture_config(name: str):
    """A typed Config equal to the reference config recorded in the fixture's meta.json."""
    from segnext_jt.config import config_from_dict
    meta = json.loads((fixture_dir(name) / "meta.json").read_text())
    bb, hd = meta["config"]["backbone"], meta["config"]["decode_head"]
    ham = hd["ham_kwargs"]
    return config_from_dict({"model": {
        "backbone": {"embed_dims": bb["embed_dims"], "depths": bb["depths"], "mlp_ratios": bb["mlp_ratios"],
                     "drop_rate": bb["drop_rate"], "drop_path_rate": bb["drop_path_rate"]},
        "decode_head": {"in_channels": hd["in_channels"], "in_index": hd["in_index"],
                        "channels": hd["channels"], "ham_channels": hd["ham_channels"],
                        "num_classes": hd["num_classes"], "dropout_ratio": hd["dropout_ratio"],
                        "gn_groups": hd["norm_cfg"]["num_groups"],
                        "ham": {"md_s": ham["MD_S"], "md_r": ham["MD_R"], "train_steps": ham["train_steps"],
                                "eval_steps": ham["eval_steps"], "rand_init": ham["rand_init"]}}}},
        source=f"fixture {name}")


def fixture_model(name: str):
    """The fixture's model with its checkpoint.pth loaded through our torch-free reader."""
    from segnext_jt import build_segmentor, load_checkpoint
    model = build_segmentor(fixture_config(name))
    load_checkpoint(model, fixture_dir(name) / "checkpoint.pth", strict=True, logger=lambda *a: None)
    return model


def assert_close_fwd(got, ref, what: str) -> None:
    """Fixture README rule for forward arrays: max|got-ref| <= 1e-4 * max|ref| + 1e-5."""
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != reference {ref.shape}"
    err = float(np.abs(got - ref).max())
    tol = 1e-4 * float(np.abs(ref).max()) + 1e-5
    assert err <= tol, f"{what}: max abs error {err:.3e} > tolerance {tol:.3e}"


@pytest.fixture(params=["fast", "reference"])
def compute_path(request):
    """Run a test on both compute paths: the default one (native CPU kernels, eval folding) and the
    module-by-module path on Jittor's own operators (SEGNEXT_CPU_KERNELS=jittor, SEGNEXT_EVAL_FOLDING=0)."""
    from segnext_jt.models import cpu_ops, layers
    before = (cpu_ops.native_cpu_kernels(), layers.eval_folding())
    fast = request.param == "fast"
    cpu_ops.set_native_cpu_kernels(fast)
    layers.set_eval_folding(fast)
    yield request.param
    cpu_ops.set_native_cpu_kernels(before[0])
    layers.set_eval_folding(before[1])


@pytest.fixture(scope="session")
def tiny_cfg():
    return fixture_config("tiny-test_eval_64x64")


# ---------------------------------------------------------------------------- tiny training setup
TINY_TRAIN_OVERRIDES = [
    "model.backbone.embed_dims=[8,16,32,64]", "model.backbone.depths=[1,1,1,1]",
    "model.decode_head.in_channels=[16,32,64]", "model.decode_head.channels=16",
    "model.decode_head.ham_channels=16", "model.decode_head.gn_groups=4", "model.decode_head.ham.md_r=4",
    "data.crop_size=[32,32]", "data.scale=[128,64]", "data.num_workers=0",
    "train.batch_size=2", "train.max_iters=6", "train.eval_interval=6", "train.checkpoint_interval=2",
    "train.log_interval=2", "train.max_keep_checkpoints=10", "train.schedule.warmup_iters=2",
    "eval.scale=[128,64]", "eval.batch_size=1", "eval.num_workers=0",
]


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small MNIST-derived dataset in the ADE20K layout (labels derived from MNIST strokes)."""
    from segnext_jt.data.demo_mnist import build_demo_dataset
    out = tmp_path_factory.mktemp("demo_data")
    build_demo_dataset(str(out), num_train=32, num_val=6, size=64, seed=0)
    return out / "ADEChallengeData2016"


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
