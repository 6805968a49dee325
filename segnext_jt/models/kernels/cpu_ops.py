"""Native CPU kernels for the operations that dominate SegNeXt on the CPU.

Profiles of SegNeXt-T/L at 512x512 on 2 cores (Jittor's profiler, see bench/README.md) showed
Jittor's generic CPU paths losing to PyTorch eager on four operations. Each is replaced here by a
kernel that computes the same arithmetic; the model modules (`layers.py`, `ham_head.py`,
`segmentor.py`) and `folding.py` call these and never see the difference:

* depthwise convolutions (MSCA's 5x5 and 1xK/Kx1 strips, the Mlp's 3x3): oneDNN wraps every call in
  layout reorders, runs the strips through im2col, and its grouped weight gradient spins barriers
  between threads (1-10 s per conv as soon as another process shares a core). Direct OpenMP loops.
* 1x1 convolutions: mkl_conv in plain NCHW is 2-3x slower than the same product as one sgemm
  (W[Cout,Cin] @ X[Cin,HW]); the gradients are two more sgemms. Same oneDNN sgemm, same sums.
* batched matmuls (NMF): on the CPU `nn.bmm` is a broadcast-multiply-reduce in one thread; here
  one sgemm per batch element.
* bilinear resizes (head inputs, logits to the input size, and their gradients): Jittor's reindex
  runs single-threaded with an index computation per element; here one OpenMP loop per output row
  (forward) or per plane (backward, so the scatter needs no atomics and is deterministic).

Training also gets one-pass kernels for the per-pixel cross-entropy and training-mode BatchNorm.

This module decides where a kernel runs (the switch below, the dtype/device/shape checks of each
entry point) and holds the sgemm and resize kernels; the depthwise convolutions are in
`dwconv_ops.py`, the cross-entropy and BatchNorm kernels in `train_ops.py`.

All kernels are float32 and CPU-only; CUDA and other dtypes take Jittor's own operators.
`SEGNEXT_CPU_KERNELS=jittor` (or `set_native_cpu_kernels(False)`) restores Jittor's paths everywhere,
e.g. to compare speed; the parity tests run both.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ... import runtime  # noqa: F401
import jittor as jt
from jittor import nn

from . import dwconv_ops, train_ops

_native = os.environ.get("SEGNEXT_CPU_KERNELS", "native").strip().lower() != "jittor"


def set_native_cpu_kernels(enabled: bool) -> None:
    global _native
    _native = bool(enabled)


def native_cpu_kernels() -> bool:
    return _native


def _use_native(*vars_: jt.Var) -> bool:
    return _native and not jt.flags.use_cuda and all(v.dtype == "float32" for v in vars_)

# --------------------------------------------------------------------------------------------
# Matrix products: oneDNN sgemm (the op Jittor's matmul tuner itself emits for 2-D products)
# --------------------------------------------------------------------------------------------
def _sgemm(a: jt.Var, b: jt.Var, trans_a: bool, trans_b: bool) -> jt.Var:
    return jt.compile_extern.mkl_ops.mkl_matmul(a, b, trans_a, trans_b)


def _have_sgemm() -> bool:
    return getattr(jt.compile_extern, "mkl_ops", None) is not None


class _MatMul2d(jt.Function):
    """op(A) @ op(B) for 2-D A, B; op = transpose where trans_* is set. Gradients are sgemms too."""

    def execute(self, a: jt.Var, b: jt.Var, trans_a: bool, trans_b: bool) -> jt.Var:
        self.saved = (a, b, trans_a, trans_b)
        return _sgemm(a, b, trans_a, trans_b)

    def grad(self, g: jt.Var):
        a, b, ta, tb = self.saved
        grad_a = _sgemm(b, g, tb, True) if ta else _sgemm(g, b, False, not tb)
        grad_b = _sgemm(g, a, True, ta) if tb else _sgemm(a, g, not ta, False)
        return grad_a, grad_b, None, None


def _bmm_broadcast(a: jt.Var, b: jt.Var, trans_a: bool, trans_b: bool) -> jt.Var:
    """op(a) @ op(b) as one broadcast-multiply-reduce laid out on the inputs' stored axes, so no
    transpose is ever a tensor (nn.bmm of a transposed view materialises the transpose and keeps it
    for the backward). The sum runs over the shared axis M in the same order as nn.bmm's."""
    with jt.flag_scope(amp_reg=jt.flags.amp_reg | 36):  # as nn.matmul: keep the float32 sum
        if trans_a and trans_b:  # a (B,M,N), b (B,K,M): not used by the model; index b by (b,m,n,k)
            shape = [a.shape[0], a.shape[1], a.shape[2], b.shape[1]]
            return (a.broadcast(shape, [3]) * b.reindex(shape, ["i0", "i3", "i1"])).sum(1)
        if trans_a:  # a (B,M,N), b (B,M,K) -> (B,M,N,K), sum over M
            shape = [a.shape[0], a.shape[1], a.shape[2], b.shape[2]]
            return (a.broadcast(shape, [3]) * b.broadcast(shape, [2])).sum(1)
        if trans_b:  # a (B,N,M), b (B,K,M) -> (B,N,K,M), sum over M
            shape = [a.shape[0], a.shape[1], b.shape[1], a.shape[2]]
            return (a.broadcast(shape, [2]) * b.broadcast(shape, [1])).sum(3)
        shape = [a.shape[0], a.shape[1], a.shape[2], b.shape[2]]  # (B,N,M,K), sum over M
        return (a.broadcast(shape, [3]) * b.broadcast(shape, [1])).sum(2)


def bmm(a: jt.Var, b: jt.Var, trans_a: bool = False, trans_b: bool = False) -> jt.Var:
    """Batched op(a) @ op(b) for (B, ., .) inputs (torch.bmm with optional transposes). The
    transposes are flags of the product (sgemm on the CPU, cuBLAS on CUDA), never a copy."""
    if _use_native(a, b) and _have_sgemm():
        outs = [_MatMul2d.apply(a[i], b[i], trans_a, trans_b) for i in range(a.shape[0])]
        return outs[0].unsqueeze(0) if len(outs) == 1 else jt.stack(outs, 0)
    cublas = getattr(jt.compile_extern, "cublas_ops", None) if jt.flags.use_cuda else None
    if cublas is not None:  # what nn.bmm calls on CUDA, with the transposes as arguments
        return cublas.cublas_batched_matmul(a, b, bool(trans_a), bool(trans_b))
    return _bmm_broadcast(a, b, trans_a, trans_b)


class _Conv1x1(jt.Function):
    """1x1 convolution as one sgemm per image: y[n] = W @ x[n] + b with x[n] viewed as (Cin, H*W)."""

    def execute(self, x: jt.Var, weight: jt.Var, bias: Optional[jt.Var]) -> jt.Var:
        n, c, h, w = x.shape
        w2 = weight.reshape([weight.shape[0], c])
        self.saved = (x, w2, bias is not None)
        outs = [_sgemm(w2, self._image(x, i), False, False) for i in range(n)]
        if bias is not None:
            outs = [y + bias.reshape([-1, 1]) for y in outs]
        return _stack(outs).reshape([n, w2.shape[0], h, w])

    @staticmethod
    def _image(v: jt.Var, i: int) -> jt.Var:
        n, c = v.shape[0], v.shape[1]
        return (v if n == 1 else v[i]).reshape([c, v.numel() // (n * c)])

    def grad(self, g: jt.Var):
        x, w2, has_bias = self.saved
        n = x.shape[0]
        grad_x = _stack([_sgemm(w2, self._image(g, i), True, False) for i in range(n)]).reshape(x.shape)
        grad_w = None
        for i in range(n):
            gw = _sgemm(self._image(g, i), self._image(x, i), False, True)
            grad_w = gw if grad_w is None else grad_w + gw
        grad_b = g.sum([0, 2, 3]) if has_bias else None
        return grad_x, grad_w.reshape([w2.shape[0], w2.shape[1], 1, 1]), grad_b


def _stack(per_image: list) -> jt.Var:
    return per_image[0].unsqueeze(0) if len(per_image) == 1 else jt.stack(per_image, 0)


def conv1x1(x: jt.Var, weight: jt.Var, bias: Optional[jt.Var], batched: bool) -> Optional[jt.Var]:
    """The 1x1 stride-1 convolution with one sgemm per image, or None where the native path does not
    apply. With `batched=False` a batch of several images is left to mkl_conv: in training, slicing
    and stacking the images cost more time and memory than they save (SegNeXt-L forward+backward at
    batch 2: 14.8 s and 10.3 GB peak RSS against 9.6 s and 9.2 GB). Inference passes True, so an
    image's logits do not depend on the rest of its batch (bit-identical, tests/models/test_ham_head.py)."""
    if not (_use_native(x, weight) and _have_sgemm() and (batched or x.shape[0] == 1)):
        return None
    return _Conv1x1.apply(x, weight, bias)


# --------------------------------------------------------------------------------------------
# Bilinear resize, align_corners=False (torch's F.interpolate arithmetic)
# --------------------------------------------------------------------------------------------
def linear_source_index(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


# Rows first, then columns, as two weighted sums (the separable form `layers.resize_bilinear`
# computes with Jittor ops): out = r0 * (1 - lw) + r1 * lw with r = x[i0h] * (1 - lh) + x[i1h] * lh.
# One output row per iteration: the row interpolation of the two source rows goes to a scratch row
# (ROWS=0 when the height is unchanged: the row is copied, as the separable form skips the step),
# then every output column reads two scratch entries.
_RESIZE_FORWARD_SRC = """
    // in0 x (N,C,H,W), in1 i0h, in2 i1h, in3 lh (OH), in4 i0w, in5 i1w, in6 lw (OW) -> out0 (N,C,OH,OW)
    const int NC = in0_shape0 * in0_shape1, H = in0_shape2, W = in0_shape3;
    const int OH = out0_shape2, OW = out0_shape3;
    const int ROWS = (int)data["rows"], COLS = (int)data["cols"];
    #pragma omp parallel
    {
        std::vector<float> tmp(W);
        #pragma omp for schedule(static)
        for (long r = 0; r < (long)NC * OH; r++) {
            const long plane = r / OH; const int oh = (int)(r % OH);
            const float* __restrict__ x0 = in0_p + (plane * H + in1_p[oh]) * W;
            const float* __restrict__ x1 = in0_p + (plane * H + in2_p[oh]) * W;
            float* __restrict__ t = tmp.data();
            if (ROWS) {
                const float l1 = in3_p[oh], l0 = 1.0f - l1;
                for (int w = 0; w < W; w++) t[w] = x0[w] * l0 + x1[w] * l1;
            } else {
                for (int w = 0; w < W; w++) t[w] = x0[w];
            }
            float* __restrict__ y = out0_p + r * OW;
            if (COLS) {
                for (int ow = 0; ow < OW; ow++) {
                    const float l1 = in6_p[ow];
                    y[ow] = t[in4_p[ow]] * (1.0f - l1) + t[in5_p[ow]] * l1;
                }
            } else {
                for (int ow = 0; ow < OW; ow++) y[ow] = t[ow];
            }
        }
    }
"""

# The adjoint, one (n, c) plane per iteration: every output row scatters into a scratch row through
# the column weights, which then adds to its two source rows. Sequential within a plane, so the sums
# are deterministic and need no atomics.
_RESIZE_BACKWARD_SRC = """
    // in0 dy (N,C,OH,OW), in1..in6 as forward -> out0 dx (N,C,H,W)
    const int NC = in0_shape0 * in0_shape1, OH = in0_shape2, OW = in0_shape3;
    const int H = out0_shape2, W = out0_shape3;
    const int ROWS = (int)data["rows"], COLS = (int)data["cols"];
    #pragma omp parallel
    {
        std::vector<float> tmp(W);
        #pragma omp for schedule(static)
        for (long plane = 0; plane < NC; plane++) {
            float* __restrict__ gx = out0_p + plane * H * W;
            for (long k = 0; k < (long)H * W; k++) gx[k] = 0.0f;
            float* __restrict__ t = tmp.data();
            for (int oh = 0; oh < OH; oh++) {
                const float* __restrict__ gy = in0_p + (plane * OH + oh) * OW;
                if (COLS) {
                    for (int w = 0; w < W; w++) t[w] = 0.0f;
                    for (int ow = 0; ow < OW; ow++) {
                        const float l1 = in6_p[ow];
                        t[in4_p[ow]] += gy[ow] * (1.0f - l1);
                        t[in5_p[ow]] += gy[ow] * l1;
                    }
                } else {
                    for (int w = 0; w < W; w++) t[w] = gy[w];
                }
                float* __restrict__ g0 = gx + (long)in1_p[oh] * W;
                float* __restrict__ g1 = gx + (long)in2_p[oh] * W;
                if (ROWS) {
                    const float l1 = in3_p[oh], l0 = 1.0f - l1;
                    for (int w = 0; w < W; w++) g0[w] += t[w] * l0;
                    for (int w = 0; w < W; w++) g1[w] += t[w] * l1;
                } else {
                    for (int w = 0; w < W; w++) g0[w] += t[w];
                }
            }
        }
    }
"""


def _resize_tables(in_h: int, in_w: int, out_h: int, out_w: int) -> list[jt.Var]:
    def axis(n_in, n_out):
        if n_in == n_out:  # identity: i0 = dst, weight 0 (the kernels copy instead of interpolating)
            idx = np.arange(n_out, dtype=np.int32)
            return idx, idx, np.zeros(n_out, np.float32)
        return linear_source_index(n_in, n_out)
    return [jt.array(a) for a in (*axis(in_h, out_h), *axis(in_w, out_w))]


class _ResizeBilinear(jt.Function):
    def execute(self, x: jt.Var, out_h: int, out_w: int) -> jt.Var:
        n, c, h, w = x.shape
        self.tables = _resize_tables(h, w, out_h, out_w)
        self.in_shape = (n, c, h, w)
        self.data = {"rows": int(h != out_h), "cols": int(w != out_w)}
        return jt.code([n, c, out_h, out_w], x.dtype, [x] + self.tables, cpu_header="#include <vector>",
                       cpu_src=_RESIZE_FORWARD_SRC, data=self.data)

    def grad(self, g: jt.Var):
        gx = jt.code(list(self.in_shape), g.dtype, [g] + self.tables, cpu_header="#include <vector>",
                     cpu_src=_RESIZE_BACKWARD_SRC, data=self.data)
        return gx, None, None


def resize_bilinear(x: jt.Var, out_h: int, out_w: int) -> Optional[jt.Var]:
    """NCHW bilinear resize with the loop kernels, or None where they do not apply."""
    if not _use_native(x):
        return None
    return _ResizeBilinear.apply(x, int(out_h), int(out_w))


# --------------------------------------------------------------------------------------------
# Depthwise convolution (kernels in dwconv_ops.py)
# --------------------------------------------------------------------------------------------
def conv2d(x: jt.Var, weight: jt.Var, bias: Optional[jt.Var], stride: tuple[int, int],
           padding: tuple[int, int], groups: int, batched: bool) -> Optional[jt.Var]:
    """A layers.Conv2d convolution (no dilation) on a fast path, or None where none applies (the
    caller then runs nn.conv2d): on CUDA Jittor's depthwise op for depthwise convs; on the CPU the
    loop kernels for stride-1 depthwise convs and one sgemm per image for 1x1 convs (`batched`: see
    conv1x1)."""
    out_channels, in_per_group, kh, kw = weight.shape
    depthwise = groups > 1 and in_per_group == 1 and out_channels == groups
    if depthwise and jt.flags.use_cuda:
        from jittor.depthwise_conv import DepthwiseConv
        y = DepthwiseConv(stride, padding, (1, 1))(x, weight)
        return y if bias is None else y + bias.broadcast(y.shape, [0, 2, 3])
    if depthwise and stride == (1, 1) and 0 <= padding[0] < kh and 0 <= padding[1] < kw:
        return depthwise_conv(x, weight, bias, padding)
    if (kh, kw) == (1, 1) and stride == (1, 1) and padding == (0, 0) and groups == 1:
        return conv1x1(x, weight, bias, batched)
    return None


def depthwise_conv(x: jt.Var, weight: jt.Var, bias: Optional[jt.Var],
                   padding: tuple[int, int]) -> Optional[jt.Var]:
    """Stride-1 depthwise conv with the loop kernels, or None where they do not apply."""
    kh, kw = weight.shape[2], weight.shape[3]
    if not (_use_native(x, weight) and 0 <= padding[0] < kh <= dwconv_ops.MAX_KERNEL_ROWS
            and 0 <= padding[1] < kw and kh * kw <= dwconv_ops.MAX_TAPS):
        return None
    return dwconv_ops.DepthwiseConv2d.apply(x, weight, bias, padding)


def depthwise_conv_gelu(x: jt.Var, in_bias: jt.Var, weight: jt.Var, bias: Optional[jt.Var],
                        padding: tuple[int, int]) -> Optional[jt.Var]:
    """GELU(depthwise_conv(x + in_bias)) in one pass (the Mlp's fc1 bias, dwconv, GELU) under
    jt.no_grad() only (the fused kernel has no gradient); None where it does not apply."""
    kh, kw = weight.shape[2], weight.shape[3]
    if not (jt.flags.no_grad and _use_native(x, weight, in_bias)
            and 0 <= padding[0] < kh <= dwconv_ops.MAX_KERNEL_ROWS and 0 <= padding[1] < kw):
        return None
    return dwconv_ops.dw_conv(x, weight, bias, padding, in_bias=in_bias, gelu=True)


# --------------------------------------------------------------------------------------------
# Training step: cross-entropy and BatchNorm (kernels in train_ops.py)
# --------------------------------------------------------------------------------------------
def cross_entropy_pixels(logits: jt.Var, label: jt.Var, ignore_index: int):
    """(per-pixel CE, 0 where ignored; per-pixel top-1 hit as 0/1) for NCHW logits and int32 NHW
    labels, or None where the native path does not apply."""
    if not (_use_native(logits) and label.dtype == "int32"):
        return None
    return train_ops.CrossEntropy.apply(logits, label, ignore_index)


def cross_entropy_and_accuracy(logits: jt.Var, label: jt.Var, ignore_index: int, eps: float):
    """(mmseg's loss_ce, acc_seg in %) from one native pass over the logits, or None where it does
    not apply: the per-pixel losses summed over all pixels / (pixel count + eps), the top-1 hits
    over the non-ignored pixels (segmentor.cross_entropy_mmseg and pixel_accuracy)."""
    fused = cross_entropy_pixels(logits, label, ignore_index)
    if fused is None:
        return None
    per_pixel, hit = fused
    loss_ce = per_pixel.sum() / (label.numel() + eps)
    with jt.no_grad():
        valid = (label != ignore_index).float32().sum()
        acc = hit.sum() * 100.0 / jt.maximum(valid, 1.0)
    return loss_ce, acc


def batch_norm_train(x: jt.Var, weight: jt.Var, bias: jt.Var, eps: float):
    """(y, batch mean, biased batch variance) of training-mode BatchNorm over NCHW, or None where the
    native path does not apply. The caller updates the running statistics."""
    if not (_use_native(x, weight, bias) and x.ndim == 4):
        return None
    return train_ops.BatchNormTrain.apply(x, weight, bias, eps)
