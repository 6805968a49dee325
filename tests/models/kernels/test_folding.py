"""segnext_jt.models.kernels.folding: an MSCAN block in eval mode with BatchNorm and layer scale
folded into its 1x1 convs computes the module-by-module function (same algebra, other rounding),
on both compute paths, with and without gradients; training never folds."""
from __future__ import annotations

import numpy as np
import pytest

import jittor as jt

from segnext_jt.models.kernels import folding
from segnext_jt.models.layers import BatchNorm2d, Conv2d
from segnext_jt.models.mscan import MSCABlock

pytestmark = pytest.mark.usefixtures("compute_path")


def _randomised(module, seed: int):
    """`module` with every parameter and BN statistic drawn at random (running_var > 0), so that
    folding has non-trivial scales and shifts to fold."""
    rng = np.random.default_rng(seed)
    for name, var in module.state_dict().items():
        shape = tuple(var.shape)
        if name.endswith("num_batches_tracked"):
            continue
        value = rng.uniform(0.5, 1.5, shape) if name.endswith("running_var") else rng.standard_normal(shape) * 0.3
        var.assign(jt.array(value.astype(np.float32)))
    return module


def _rel_err(got: jt.Var, want: jt.Var) -> float:
    g, w = got.numpy(), want.numpy()
    assert g.shape == w.shape
    return float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-6))


@pytest.mark.parametrize("no_grad", [False, True])
def test_folded_block_is_the_module_by_module_block(no_grad):
    block = _randomised(MSCABlock(8, 4.0), seed=0)
    block.eval()
    x = jt.array(np.random.default_rng(1).standard_normal((2, 8, 9, 11)).astype(np.float32))
    assert folding.folds(block) == folding.eval_folding()
    before = folding.eval_folding()
    with jt.flag_scope(no_grad=int(no_grad)):
        folded = folding.execute_block(block, x)
        folding.set_eval_folding(False)
        try:
            assert not folding.folds(block)
            reference = block(x)  # the module-by-module execute
        finally:
            folding.set_eval_folding(before)
    assert _rel_err(folded, reference) < 1e-5


def test_training_never_folds():
    block = MSCABlock(4, 2.0)
    block.train()
    assert not folding.folds(block)


def test_fold_conv1x1_is_the_affine_maps_around_the_conv():
    conv = _randomised(Conv2d(6, 5, 1), seed=2)
    conv.eval()
    bn = _randomised(BatchNorm2d(6), seed=3)
    bn.eval()
    scale, shift = folding.bn_eval_affine(bn)
    out_scale = jt.array(np.linspace(0.5, 2.0, 5).astype(np.float32))
    x = jt.array(np.random.default_rng(4).standard_normal((1, 6, 4, 3)).astype(np.float32))
    want = conv(bn(x)) * out_scale.reshape([1, -1, 1, 1])
    assert _rel_err(folding.folded_conv1x1(conv, x, scale, shift, out_scale), want) < 1e-5
