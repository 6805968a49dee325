"""Inference-time folding of an MSCAN block (mscan.MSCABlock): the same function with fewer passes
over the feature maps.

In eval mode BatchNorm is a per-channel affine map, x * s + t, and a layer scale a per-channel
factor; both fold into the neighbouring 1x1 convolution:
  out_scale * (W (s x + t) + b) = (out_scale W diag(s)) x + out_scale (W t + b).
BN1 folds into proj_1, BN2 into fc1, the layer scales into proj_2 / fc2, and the attention's inner
shortcut, ls1 * BN1(x) = x * (ls1 * s1) + ls1 * t1, into the residual sum. Under jt.no_grad() the
Mlp's fc1 bias, depthwise conv and GELU run as one CPU kernel (cpu_ops.depthwise_conv_gelu).

The same algebra, rounded differently: within the reference fixtures' tolerance
(tests/models/test_parity.py runs both paths). `SEGNEXT_EVAL_FOLDING=0` or `set_eval_folding(False)`
keeps the module-by-module path. The layers come in as arguments (duck-typed: Conv2d's weight, bias,
stride, padding, groups; BatchNorm2d's weight, bias, running statistics, eps); nothing here imports
the model modules.
"""
from __future__ import annotations

import os

from ... import runtime  # noqa: F401
import jittor as jt
from jittor import nn

from . import cpu_ops

_eval_folding = os.environ.get("SEGNEXT_EVAL_FOLDING", "1").strip() != "0"


def set_eval_folding(enabled: bool) -> None:
    global _eval_folding
    _eval_folding = bool(enabled)


def eval_folding() -> bool:
    return _eval_folding


def folds(block) -> bool:
    """Whether `block` (an MSCABlock) runs folded: in eval mode, with folding switched on."""
    return not block.training and _eval_folding


def bn_eval_affine(bn) -> tuple[jt.Var, jt.Var]:
    """(scale, shift) with BN_eval(x) = x * scale + shift per channel."""
    scale = bn.weight / jt.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def fold_conv1x1(conv, in_scale=None, in_shift=None, out_scale=None) -> tuple[jt.Var, jt.Var]:
    """(weight, bias) of the 1x1 conv `conv` with per-channel affine maps folded in:
    out_scale * (W (s x + t) + b) = (out_scale W diag(s)) x + out_scale (W t + b)."""
    w = conv.weight.reshape([conv.out_channels, conv.in_channels])
    b = conv.bias if conv.bias is not None else jt.zeros([conv.out_channels], "float32")
    if in_shift is not None:
        b = b + (w * in_shift.reshape([1, -1])).sum(1)
    if in_scale is not None:
        w = w * in_scale.reshape([1, -1])
    if out_scale is not None:
        w, b = w * out_scale.reshape([-1, 1]), b * out_scale
    return w.reshape(conv.weight.shape), b


def conv_with(conv, x: jt.Var, weight: jt.Var, bias) -> jt.Var:
    """`conv`'s convolution (as layers.Conv2d.execute) with another weight and bias."""
    y = cpu_ops.conv2d(x, weight, bias, conv.stride, conv.padding, conv.groups, batched=not conv.training)
    if y is None:
        y = nn.conv2d(x, weight, bias, conv.stride, conv.padding, 1, conv.groups)
    return y


def folded_conv1x1(conv, x: jt.Var, in_scale=None, in_shift=None, out_scale=None) -> jt.Var:
    """out_scale * conv(x * in_scale + in_shift) for the 1x1 conv `conv`, as one convolution."""
    return conv_with(conv, x, *fold_conv1x1(conv, in_scale, in_shift, out_scale))


def folded_mlp(mlp, x: jt.Var, in_scale: jt.Var, in_shift: jt.Var, out_scale: jt.Var) -> jt.Var:
    """out_scale * Mlp(x * in_scale + in_shift), the affine maps folded into fc1 / fc2 (eval: no
    dropout)."""
    w1, b1 = fold_conv1x1(mlp.fc1, in_scale, in_shift)
    dw = mlp.dwconv
    hidden = cpu_ops.conv1x1(x, w1, None, batched=True) if jt.flags.no_grad else None
    if hidden is not None:  # fc1's bias, the depthwise conv and GELU in one CPU pass
        hidden = cpu_ops.depthwise_conv_gelu(hidden, b1, dw.weight, dw.bias, dw.padding)
    if hidden is None:
        hidden = mlp.act(dw(conv_with(mlp.fc1, x, w1, b1)))
    return folded_conv1x1(mlp.fc2, hidden, out_scale=out_scale)


def execute_block(block, x: jt.Var) -> jt.Var:
    """MSCABlock.execute in eval mode, folded:
    y = x + ls1 * Attn(BN1(x)); z = y + ls2 * Mlp(BN2(y))."""
    s1, t1 = bn_eval_affine(block.norm1)
    s2, t2 = bn_eval_affine(block.norm2)
    ls1, ls2 = block.layer_scale_1, block.layer_scale_2
    attn = block.attn
    gate_in = attn.activation(folded_conv1x1(attn.proj_1, x, s1, t1))
    gated = folded_conv1x1(attn.proj_2, attn.spatial_gating_unit(gate_in), out_scale=ls1)
    per_channel = lambda v: v.reshape([1, -1, 1, 1])  # noqa: E731
    x = x * per_channel(1.0 + ls1 * s1) + per_channel(ls1 * t1) + gated
    return x + folded_mlp(block.mlp, x, s2, t2, ls2)
