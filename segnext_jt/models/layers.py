"""Building blocks with PyTorch numerics.

Jittor's own BatchNorm/GroupNorm/LayerNorm compute the variance as E[x^2] - E[x]^2 and keep a biased
running variance; these versions use the two-pass variance and torch's unbiased running_var, so a
port of a torch checkpoint gives the same numbers (docs/design.md §8.1).

Conv2d, training-mode BatchNorm2d and resize_bilinear first ask models/kernels/cpu_ops for a native
CPU kernel (one line each); where it answers None they compute the reference arithmetic below.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np

from .. import runtime  # noqa: F401  (prepares the environment before jittor is imported)
import jittor as jt
from jittor import nn

from .kernels import cpu_ops

IntPair = Union[int, Sequence[int]]


def _pair(v: IntPair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class Conv2d(nn.Module):
    """Conv2d whose weight init is explicit (mmseg/MSCAN: N(0, sqrt(2 / fan_out)), bias 0)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, groups: int = 1, bias: bool = True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.groups = groups
        kh, kw = self.kernel_size
        fan_out = kh * kw * out_channels // groups
        self.weight = jt.init.gauss([out_channels, in_channels // groups, kh, kw], "float32",
                                    0.0, math.sqrt(2.0 / fan_out))
        self.bias = jt.zeros([out_channels], "float32") if bias else None

    def execute(self, x: jt.Var) -> jt.Var:
        # a native kernel where one applies (models/kernels/cpu_ops.conv2d), else the reference conv
        y = cpu_ops.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups,
                           batched=not self.training)
        if y is None:
            y = nn.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        return y


def _channel_dims(x: jt.Var) -> list[int]:
    return [0] + list(range(2, x.ndim))


class BatchNorm2d(nn.Module):
    """torch.nn.BatchNorm2d: batch statistics with two-pass biased variance for normalising,
    unbiased variance (n / (n - 1)) for running_var, momentum 0.1, eps 1e-5."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = jt.ones([num_features], "float32")
        self.bias = jt.zeros([num_features], "float32")
        self.running_mean = jt.zeros([num_features], "float32").stop_grad()
        self.running_var = jt.ones([num_features], "float32").stop_grad()
        self.num_batches_tracked = jt.zeros([], "int64").stop_grad()
        self.sync = False  # SyncBN across MPI processes (trainer --sync-bn); equal per-process batches

    def execute(self, x: jt.Var) -> jt.Var:
        shape = [1, self.num_features] + [1] * (x.ndim - 2)
        if not self.training:
            out = (x - self.running_mean.reshape(shape)) / jt.sqrt(self.running_var.reshape(shape) + self.eps)
            return out * self.weight.reshape(shape) + self.bias.reshape(shape)
        synced = self.sync and jt.in_mpi
        # one native pass (models/kernels) where it applies, else the reference arithmetic below
        fused = None if synced else cpu_ops.batch_norm_train(x, self.weight, self.bias, self.eps)
        if fused is not None:
            out, mean, var = fused
        else:
            dims = _channel_dims(x)
            mean = x.mean(dims=dims, keepdims=True)
            if synced:
                mean = mean.mpi_all_reduce("mean")
            centered = x - mean
            var = (centered * centered).mean(dims=dims, keepdims=True)
            if synced:
                var = var.mpi_all_reduce("mean")
            out = centered / jt.sqrt(var + self.eps) * self.weight.reshape(shape) + self.bias.reshape(shape)
        self._update_running_stats(mean, var, x.numel() // self.num_features * (jt.world_size if synced else 1))
        return out

    def _update_running_stats(self, mean: jt.Var, var: jt.Var, n: int) -> None:
        """torch's update: momentum 0.1, running_var from the unbiased batch variance."""
        with jt.no_grad():
            m = self.momentum
            batch_mean = mean.reshape([-1]).detach()
            batch_var = var.reshape([-1]).detach() * (n / max(n - 1, 1))
            self.running_mean.update(self.running_mean * (1 - m) + batch_mean * m)
            self.running_var.update(self.running_var * (1 - m) + batch_var * m)
            self.num_batches_tracked.update(self.num_batches_tracked + 1)


class GroupNorm(nn.Module):
    """torch.nn.GroupNorm with two-pass variance (eps 1e-5, affine)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5):
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_channels} channels not divisible by {num_groups} groups")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = jt.ones([num_channels], "float32")
        self.bias = jt.zeros([num_channels], "float32")

    def execute(self, x: jt.Var) -> jt.Var:
        b, c = x.shape[0], x.shape[1]
        g = x.reshape([b, self.num_groups, -1])
        mean = g.mean(dims=[2], keepdims=True)
        centered = g - mean
        var = (centered * centered).mean(dims=[2], keepdims=True)
        out = (centered / jt.sqrt(var + self.eps)).reshape(x.shape)
        shape = [1, c] + [1] * (x.ndim - 2)
        return out * self.weight.reshape(shape) + self.bias.reshape(shape)


class LayerNorm(nn.Module):
    """torch.nn.LayerNorm over one dimension, two-pass variance. `dim=-1` is torch's layout; MSCAN
    normalises NCHW maps over channels (`dim=1`), which is the same arithmetic per pixel as the
    reference's flatten/transpose/LayerNorm/transpose without the two transposed copies."""

    def __init__(self, dim: int, eps: float = 1e-5, norm_dim: int = -1):
        self.dim, self.eps, self.norm_dim = dim, eps, norm_dim
        self.weight = jt.ones([dim], "float32")
        self.bias = jt.zeros([dim], "float32")

    def execute(self, x: jt.Var) -> jt.Var:
        axis = self.norm_dim % x.ndim
        mean = x.mean(dims=[axis], keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(dims=[axis], keepdims=True)
        shape = [1] * x.ndim
        shape[axis] = self.dim
        return centered / jt.sqrt(var + self.eps) * self.weight.reshape(shape) + self.bias.reshape(shape)


def gelu(x: jt.Var) -> jt.Var:
    """Exact GELU, x * Phi(x) with erf (torch's default, not the tanh approximation)."""
    return x * 0.5 * (1.0 + jt.erf(x * (1.0 / math.sqrt(2.0))))


class GELU(nn.Module):
    def execute(self, x: jt.Var) -> jt.Var:
        return gelu(x)


class DropPath(nn.Module):
    """Stochastic depth per sample (timm/mmcv): x / keep * floor(keep + U[0,1)).

    Masks come from `self.mask_rng`, a NumPy generator the model hands to every dropout layer
    (EncoderDecoder.set_dropout_rng; the trainer sets segnext_jt.rng.dropout_rng(seed, it, slots),
    one stream per sample)."""

    def __init__(self, drop_prob: float):
        self.drop_prob = float(drop_prob)
        self.mask_rng = np.random.default_rng(0)

    def execute(self, x: jt.Var) -> jt.Var:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        u = self.mask_rng.random((x.shape[0],) + (1,) * (x.ndim - 1), dtype=np.float32)
        return x / keep * jt.floor(keep + jt.array(u))


class Dropout2d(nn.Module):
    """torch.nn.Dropout2d: zero whole channels with probability p, scale the rest by 1/(1-p).
    Masks come from `self.mask_rng`, as DropPath's."""

    def __init__(self, p: float):
        self.p = float(p)
        self.mask_rng = np.random.default_rng(0)

    def execute(self, x: jt.Var) -> jt.Var:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        u = self.mask_rng.random((x.shape[0], x.shape[1], 1, 1), dtype=np.float32)
        return x * jt.array((u < keep).astype(np.float32)) / keep


def resize_bilinear(x: jt.Var, size: Sequence[int]) -> jt.Var:
    """F.interpolate(x, size, mode='bilinear', align_corners=False) for NCHW, size = (h, w), differentiable.
    Separable: rows, then columns (a pure gather + weighted sum, no antialiasing, like torch)."""
    out_h, out_w = int(size[0]), int(size[1])
    n, c, in_h, in_w = x.shape
    if (in_h, in_w) == (out_h, out_w):
        return x
    y = cpu_ops.resize_bilinear(x, out_h, out_w)  # the native kernel (models/kernels), or None
    if y is not None:
        return y
    if in_h != out_h:
        i0, i1, lam = cpu_ops.linear_source_index(in_h, out_h)
        shape = [n, c, out_h, in_w]
        top = x.reindex(shape, ["i0", "i1", "@e0(i2)", "i3"], extras=[jt.array(i0)])
        bottom = x.reindex(shape, ["i0", "i1", "@e0(i2)", "i3"], extras=[jt.array(i1)])
        w1 = jt.array(lam).broadcast(shape, [0, 1, 3])
        x = top * (1.0 - w1) + bottom * w1
    if in_w != out_w:
        i0, i1, lam = cpu_ops.linear_source_index(in_w, out_w)
        shape = [n, c, x.shape[2], out_w]
        left = x.reindex(shape, ["i0", "i1", "i2", "@e0(i3)"], extras=[jt.array(i0)])
        right = x.reindex(shape, ["i0", "i1", "i2", "@e0(i3)"], extras=[jt.array(i1)])
        w1 = jt.array(lam).broadcast(shape, [0, 1, 2])
        x = left * (1.0 - w1) + right * w1
    return x
