"""Building blocks with PyTorch numerics.

Jittor's own BatchNorm/GroupNorm/LayerNorm compute the variance as E[x^2] - E[x]^2 and keep a biased
running variance; these versions use the two-pass variance and torch's unbiased running_var, so a
port of a torch checkpoint gives the same numbers (spec section 8.1).
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence, Union

import numpy as np

from .. import runtime  # noqa: F401  (prepares the environment before jittor is imported)
import jittor as jt
from jittor import nn

IntPair = Union[int, Sequence[int]]


def _pair(v: IntPair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


# --------------------------------------------------------------------------------------------
# Depthwise convolution on the CPU
# --------------------------------------------------------------------------------------------
# On the CPU, Jittor's conv tuner hands grouped convolutions to oneDNN (mkl_conv, ...backward_x,
# ...backward_w) in plain NCHW. For MSCAN's depthwise convs that is a poor fit (profile of a
# SegNeXt-T step at 512x512 on 2 cores, see bench/bench_model.py):
#   * forward: square kernels run oneDNN's jit_dw with a reorder to and from a blocked layout around
#     every call; the 1xK strips (1x11, 1x21) fall back to im2col + gemm;
#   * backward: the weight gradient is oneDNN's gemm-based grouped path, one tiny gemm per channel
#     with spin barriers between threads: ~10 ms per conv on an idle machine, and 1-10 s per conv
#     as soon as another process competes for a core (the barriers spin against a descheduled
#     thread). It dominated the training step.
# The two C++ kernels below are direct loops (stride 1, no dilation, any zero padding), parallel
# over channels with OpenMP. Every inner loop runs along one image row, so it is contiguous and
# vectorised (Jittor compiles kernels with -Ofast -march=native):
#   * _DW_FORWARD_SRC: y[n,c] = b[c] + sum_{i,j} w[c,i,j] * x[n,c, . + i - ph, . + j - pw];
#     with FLIP it correlates with the 180-degree-rotated kernel, which is the input gradient
#     (the gradient of a stride-1 conv with padding p is a conv of dy with padding k - 1 - p);
#   * _DW_GRAD_WEIGHT_SRC: gw[c,i,j] = sum_{n,h,w} dy[n,c,h,w] * x[n,c,h+i-ph,w+j-pw].
# The paddings (and the flip) are run-time `data`, so Jittor compiles three kernels in all.
# SEGNEXT_CPU_DWCONV=onednn restores the previous path (jittor.nn.conv2d), e.g. to compare speed.
_CPU_DEPTHWISE_NATIVE = os.environ.get("SEGNEXT_CPU_DWCONV", "native").strip().lower() != "onednn"

_DW_FORWARD_SRC = """
    // in0 x (N,C,H,W), in1 w (C,1,KH,KW)[, in2 bias (C)] -> out0 y (N,C,OH,OW)
    const int N = in0_shape0, C = in0_shape1, H = in0_shape2, W = in0_shape3;
    const int KH = in1_shape2, KW = in1_shape3, OH = out0_shape2, OW = out0_shape3;
    const int PH = (int)data["ph"], PW = (int)data["pw"], FLIP = (int)data["flip"];
    #pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++) {
        const int c = nc % C;
        const float* __restrict__ xp = in0_p + (size_t)nc * H * W;
        const float* __restrict__ wp = in1_p + (size_t)c * KH * KW;
        float* __restrict__ yp = out0_p + (size_t)nc * OH * OW;
        const float b = HAS_BIAS ? BIAS_AT(c) : 0.0f;
        for (int oh = 0; oh < OH; oh++) {
            float* __restrict__ yrow = yp + (size_t)oh * OW;
            for (int ow = 0; ow < OW; ow++) yrow[ow] = b;
            for (int ki = 0; ki < KH; ki++) {
                const int ih = oh + ki - PH;
                if (ih < 0 || ih >= H) continue;  // zero padding: the row contributes nothing
                const float* __restrict__ xrow = xp + (size_t)ih * W;
                for (int kj = 0; kj < KW; kj++) {
                    const float wv = FLIP ? wp[(KH - 1 - ki) * KW + (KW - 1 - kj)] : wp[ki * KW + kj];
                    const int off = kj - PW;  // input column = output column + off
                    const int ow0 = off < 0 ? -off : 0;
                    const int ow1 = W - off < OW ? W - off : OW;
                    for (int ow = ow0; ow < ow1; ow++) yrow[ow] += wv * xrow[ow + off];
                }
            }
        }
    }
"""

_DW_GRAD_WEIGHT_SRC = """
    // in0 x (N,C,H,W), in1 dy (N,C,OH,OW) -> out0 gw (C,1,KH,KW)
    const int N = in0_shape0, C = in0_shape1, H = in0_shape2, W = in0_shape3;
    const int OH = in1_shape2, OW = in1_shape3, KH = out0_shape2, KW = out0_shape3;
    const int PH = (int)data["ph"], PW = (int)data["pw"];
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double acc[KH * KW];  // per-row float dot products, summed over rows and images in double
        for (int k = 0; k < KH * KW; k++) acc[k] = 0.0;
        for (int n = 0; n < N; n++) {
            const float* __restrict__ xp = in0_p + ((size_t)n * C + c) * H * W;
            const float* __restrict__ gp = in1_p + ((size_t)n * C + c) * OH * OW;
            for (int oh = 0; oh < OH; oh++) {
                const float* __restrict__ grow = gp + (size_t)oh * OW;
                for (int ki = 0; ki < KH; ki++) {
                    const int ih = oh + ki - PH;
                    if (ih < 0 || ih >= H) continue;
                    const float* __restrict__ xrow = xp + (size_t)ih * W;
                    for (int kj = 0; kj < KW; kj++) {
                        const int off = kj - PW;
                        const int ow0 = off < 0 ? -off : 0;
                        const int ow1 = W - off < OW ? W - off : OW;
                        float s = 0.0f;
                        for (int ow = ow0; ow < ow1; ow++) s += grow[ow] * xrow[ow + off];
                        acc[ki * KW + kj] += s;
                    }
                }
            }
        }
        for (int k = 0; k < KH * KW; k++) out0_p[(size_t)c * KH * KW + k] = (float)acc[k];
    }
"""


def _dw_conv_cpu(x: jt.Var, weight: jt.Var, bias: Optional[jt.Var], padding: tuple[int, int],
                 flip: bool = False) -> jt.Var:
    """Stride-1 depthwise conv (or, with flip, its input gradient) with the C++ loop kernel."""
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    ph, pw = padding
    inputs = [x, weight] + ([bias] if bias is not None else [])
    header = (f"#define HAS_BIAS {int(bias is not None)}\n"
              f"#define BIAS_AT(c) {'in2_p[c]' if bias is not None else '0.0f'}\n")
    return jt.code([n, c, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1], x.dtype, inputs,
                   cpu_header=header, cpu_src=_DW_FORWARD_SRC,
                   data={"ph": ph, "pw": pw, "flip": int(flip)})


def _dw_grad_weight_cpu(x: jt.Var, grad_y: jt.Var, kernel_size: tuple[int, int],
                        padding: tuple[int, int]) -> jt.Var:
    kh, kw = kernel_size
    return jt.code([x.shape[1], 1, kh, kw], x.dtype, [x, grad_y], cpu_src=_DW_GRAD_WEIGHT_SRC,
                   data={"ph": padding[0], "pw": padding[1]})


class _DepthwiseConv2dCPU(jt.Function):
    """Depthwise conv (stride 1) with the loop kernels above for the forward and both gradients."""

    def execute(self, x: jt.Var, weight: jt.Var, bias: Optional[jt.Var], padding: tuple[int, int]):
        self.saved = (x, weight, bias is not None, padding)
        return _dw_conv_cpu(x, weight, bias, padding)

    def grad(self, grad_y: jt.Var):
        x, weight, has_bias, (ph, pw) = self.saved
        kh, kw = weight.shape[2], weight.shape[3]
        # Jittor is lazy: a gradient nobody asks for (e.g. of a stop_grad input) is never computed.
        grad_x = _dw_conv_cpu(grad_y, weight, None, (kh - 1 - ph, kw - 1 - pw), flip=True)
        grad_w = _dw_grad_weight_cpu(x, grad_y, (kh, kw), (ph, pw))
        grad_b = grad_y.sum([0, 2, 3]) if has_bias else None
        return grad_x, grad_w, grad_b, None


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
        self._depthwise = groups == in_channels == out_channels and groups > 1
        # the CPU loop kernels cover stride 1 with 0 <= padding < kernel (all of MSCAN's depthwise convs)
        self._cpu_loop_kernel = (self._depthwise and self.stride == (1, 1)
                                 and 0 <= self.padding[0] < kh and 0 <= self.padding[1] < kw)

    def execute(self, x: jt.Var) -> jt.Var:
        if self._depthwise and jt.flags.use_cuda:
            from jittor.depthwise_conv import DepthwiseConv
            y = DepthwiseConv(self.stride, self.padding, (1, 1))(x, self.weight)
            return y if self.bias is None else y + self.bias.broadcast(y.shape, [0, 2, 3])
        if (self._cpu_loop_kernel and _CPU_DEPTHWISE_NATIVE and x.dtype == "float32"
                and self.weight.dtype == "float32"):
            return _DepthwiseConv2dCPU.apply(x, self.weight, self.bias, self.padding)
        return nn.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


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
        dims = _channel_dims(x)
        if self.training:
            synced = self.sync and jt.in_mpi
            mean = x.mean(dims=dims, keepdims=True)
            if synced:
                mean = mean.mpi_all_reduce("mean")
            centered = x - mean
            var = (centered * centered).mean(dims=dims, keepdims=True)
            if synced:
                var = var.mpi_all_reduce("mean")
            n = x.numel() // self.num_features * (jt.world_size if synced else 1)
            with jt.no_grad():
                m = self.momentum
                batch_mean = mean.reshape([-1]).detach()
                batch_var = var.reshape([-1]).detach() * (n / max(n - 1, 1))
                self.running_mean.update(self.running_mean * (1 - m) + batch_mean * m)
                self.running_var.update(self.running_var * (1 - m) + batch_var * m)
                self.num_batches_tracked.update(self.num_batches_tracked + 1)
            out = centered / jt.sqrt(var + self.eps)
        else:
            shape = [1, self.num_features] + [1] * (x.ndim - 2)
            out = (x - self.running_mean.reshape(shape)) / jt.sqrt(self.running_var.reshape(shape) + self.eps)
        shape = [1, self.num_features] + [1] * (x.ndim - 2)
        return out * self.weight.reshape(shape) + self.bias.reshape(shape)


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
    """torch.nn.LayerNorm over the last dimension, two-pass variance."""

    def __init__(self, dim: int, eps: float = 1e-5):
        self.dim, self.eps = dim, eps
        self.weight = jt.ones([dim], "float32")
        self.bias = jt.zeros([dim], "float32")

    def execute(self, x: jt.Var) -> jt.Var:
        mean = x.mean(dims=[x.ndim - 1], keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(dims=[x.ndim - 1], keepdims=True)
        return centered / jt.sqrt(var + self.eps) * self.weight + self.bias


def gelu(x: jt.Var) -> jt.Var:
    """Exact GELU, x * Phi(x) with erf (torch's default, not the tanh approximation)."""
    return x * 0.5 * (1.0 + jt.erf(x * (1.0 / math.sqrt(2.0))))


class GELU(nn.Module):
    def execute(self, x: jt.Var) -> jt.Var:
        return gelu(x)


# DropPath / Dropout2d masks come from this NumPy generator, not Jittor's RNG: Jittor's random ops
# depend on process history, so a resumed run would not redraw the same masks. The trainer sets a
# generator derived from (seed, iteration, rank) before every iteration.
_dropout_rng = np.random.default_rng(0)


def set_dropout_rng(rng: np.random.Generator) -> None:
    global _dropout_rng
    _dropout_rng = rng


def _uniform(shape: Sequence[int]) -> jt.Var:
    return jt.array(_dropout_rng.random(tuple(shape), dtype=np.float32))


class DropPath(nn.Module):
    """Stochastic depth per sample (timm/mmcv): x / keep * floor(keep + U[0,1))."""

    def __init__(self, drop_prob: float):
        self.drop_prob = float(drop_prob)

    def execute(self, x: jt.Var) -> jt.Var:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = jt.floor(keep + _uniform([x.shape[0]] + [1] * (x.ndim - 1)))
        return x / keep * mask


class Dropout2d(nn.Module):
    """torch.nn.Dropout2d: zero whole channels with probability p, scale the rest by 1/(1-p)."""

    def __init__(self, p: float):
        self.p = float(p)

    def execute(self, x: jt.Var) -> jt.Var:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = (_uniform([x.shape[0], x.shape[1], 1, 1]) < keep).float32()
        return x * mask / keep


def _linear_source_index(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's align_corners=False source indices and weights: src = (dst + 0.5) * in/out - 0.5,
    clamped at 0; returns (i0, i1, lambda1) in float32 arithmetic like torch's CPU kernel."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.floor(src).astype(np.int32)
    i0 = np.minimum(i0, in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, lam


def resize_bilinear(x: jt.Var, size: Sequence[int]) -> jt.Var:
    """F.interpolate(x, size, mode='bilinear', align_corners=False) for NCHW, differentiable.
    Separable: rows, then columns (a pure gather + weighted sum, no antialiasing, like torch)."""
    out_h, out_w = int(size[0]), int(size[1])
    n, c, in_h, in_w = x.shape
    if (in_h, in_w) == (out_h, out_w):
        return x
    if in_h != out_h:
        i0, i1, lam = _linear_source_index(in_h, out_h)
        shape = [n, c, out_h, in_w]
        top = x.reindex(shape, ["i0", "i1", "@e0(i2)", "i3"], extras=[jt.array(i0)])
        bottom = x.reindex(shape, ["i0", "i1", "@e0(i2)", "i3"], extras=[jt.array(i1)])
        w1 = jt.array(lam).broadcast(shape, [0, 1, 3])
        x = top * (1.0 - w1) + bottom * w1
    if in_w != out_w:
        i0, i1, lam = _linear_source_index(in_w, out_w)
        shape = [n, c, x.shape[2], out_w]
        left = x.reindex(shape, ["i0", "i1", "i2", "@e0(i3)"], extras=[jt.array(i0)])
        right = x.reindex(shape, ["i0", "i1", "i2", "@e0(i3)"], extras=[jt.array(i1)])
        w1 = jt.array(lam).broadcast(shape, [0, 1, 2])
        x = left * (1.0 - w1) + right * w1
    return x
