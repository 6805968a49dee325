"""Native CPU kernels for the operations that dominate SegNeXt on the CPU.

Profiles of SegNeXt-T/L at 512x512 on 2 cores (Jittor's profiler, see bench/README.md) showed
Jittor's generic CPU paths losing to PyTorch eager on four operations. Each is replaced here by a
kernel that computes the same arithmetic; the model files call these through `layers.py` and
`ham_head.py` and never see the difference:

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

All kernels are float32 and CPU-only; CUDA and other dtypes take Jittor's own operators.
`SEGNEXT_CPU_KERNELS=jittor` (or `set_native_cpu_kernels(False)`) restores Jittor's paths everywhere,
e.g. to compare speed; the parity tests run both.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .. import runtime  # noqa: F401
import jittor as jt
from jittor import nn

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


def _transpose_last(x: jt.Var) -> jt.Var:
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return x.transpose(axes)


def bmm(a: jt.Var, b: jt.Var, trans_a: bool = False, trans_b: bool = False) -> jt.Var:
    """Batched op(a) @ op(b) for (B, ., .) inputs (torch.bmm with optional transposes)."""
    if _use_native(a, b) and _have_sgemm():
        outs = [_MatMul2d.apply(a[i], b[i], trans_a, trans_b) for i in range(a.shape[0])]
        return outs[0].unsqueeze(0) if len(outs) == 1 else jt.stack(outs, 0)
    return nn.bmm(_transpose_last(a) if trans_a else a, _transpose_last(b) if trans_b else b)


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
    image's logits do not depend on the rest of its batch (bit-identical, tests/test_model_api.py)."""
    if not (_use_native(x, weight) and _have_sgemm() and (batched or x.shape[0] == 1)):
        return None
    return _Conv1x1.apply(x, weight, bias)


# --------------------------------------------------------------------------------------------
# Depthwise convolution (stride 1, no dilation, zero padding smaller than the kernel)
# --------------------------------------------------------------------------------------------
# Parallel over (image, channel) planes. Input rows are copied, zero-padded, into a ring of KH
# scratch rows (it stays in L1), so the tap loops need no bounds checks; each output row is then
# computed in blocks of
# BLOCK columns held in registers: every tap is one (unaligned) vector load and one multiply-add,
# and each output element is stored once (a tap-at-a-time loop over the row would load and store
# the output row once per tap, which made the 1xK strips memory-bound).
#   * _DW_FORWARD_SRC: y[n,c] = b[c] + sum_{i,j} w[c,i,j] * x[n,c, . + i - ph, . + j - pw];
#     with FLIP it correlates with the 180-degree-rotated kernel, which is the input gradient
#     (the gradient of a stride-1 conv with padding p is a conv of dy with padding k - 1 - p);
#   * _DW_GRAD_WEIGHT_SRC: gw[c,i,j] = sum_{n,h,w} dy[n,c,h,w] * x[n,c,h+i-ph,w+j-pw].
# Shapes, paddings and the flip are run-time values, so Jittor compiles three kernels in all.
_DW_MAX_KERNEL = 64  # kernel rows the kernels keep row pointers for
_DW_MAX_TAPS = 64  # KH * KW: the weight gradient keeps one vector accumulator per tap
_DW_HEADER = ("#include <cmath>\n#include <cstring>\n#include <vector>\n#define BLOCK 16\n"
              "typedef float vblock __attribute__((vector_size(4 * BLOCK)));\n"
              f"#define MAX_KH {_DW_MAX_KERNEL}\n#define MAX_TAPS {_DW_MAX_TAPS}\n" + """
// The KH zero-padded input rows under the kernel, for one (n, c) plane, slid down one output row
// at a time; padded row r is input row r - PH, padded column q input column q - PW (in L1).
struct RowWindow {
    float* rows[MAX_KH];
    const float* plane; float in_bias;
    int KH, H, W, PH, PW, WP;
    RowWindow(float* buf, int KH, int H, int W, int PH, int PW, int WP)
        : KH(KH), H(H), W(W), PH(PH), PW(PW), WP(WP) {
        for (int ki = 0; ki < KH; ki++) rows[ki] = buf + (size_t)ki * WP;
    }
    void fill(float* __restrict__ prow, int r) {
        const int ih = r - PH;
        if (ih < 0 || ih >= H) { std::memset(prow, 0, sizeof(float) * WP); return; }
        const int right = WP - PW - W;  // zero columns after the row (< 0: the row is cropped)
        const int n_in = right >= 0 ? W : W + right;
        const float* __restrict__ xrow = plane + (size_t)ih * W;
        std::memset(prow, 0, sizeof(float) * PW);
        if (in_bias != 0.0f) for (int q = 0; q < n_in; q++) prow[PW + q] = xrow[q] + in_bias;
        else std::memcpy(prow + PW, xrow, sizeof(float) * n_in);
        if (right > 0) std::memset(prow + PW + W, 0, sizeof(float) * right);
    }
    void start(const float* x, float bias) {  // rows for output row -1; advance() before each row
        plane = x; in_bias = bias;
        for (int ki = 0; ki < KH - 1; ki++) fill(rows[ki + 1], ki);
    }
    void advance(int oh) {  // now under output row oh
        float* recycled = rows[0];
        for (int ki = 0; ki < KH - 1; ki++) rows[ki] = rows[ki + 1];
        rows[KH - 1] = recycled;
        fill(recycled, oh + KH - 1);
    }
};
""")
_DW_FORWARD_SRC = """
    // in0 x (N,C,H,W), in1 w (C,1,KH,KW)[, in2 bias (C)] -> out0 y (N,C,OH,OW)
    const int N = in0_shape0, C = in0_shape1, H = in0_shape2, W = in0_shape3;
    const int KH = in1_shape2, KW = in1_shape3, OH = out0_shape2, OW = out0_shape3;
    const int PH = (int)data["ph"], PW = (int)data["pw"], FLIP = (int)data["flip"];
    const int WP = OW + KW - 1;  // a padded row: input columns -PW .. OW + KW - 2 - PW
    #pragma omp parallel
    {
        std::vector<float> ring((size_t)KH * WP + BLOCK), wk(KH * KW);
        RowWindow window(ring.data(), KH, H, W, PH, PW, WP);
        #pragma omp for schedule(static)
        for (int nc = 0; nc < N * C; nc++) {
            const int c = nc % C;
            const float* __restrict__ xp = in0_p + (size_t)nc * H * W;
            const float* __restrict__ wp = in1_p + (size_t)c * KH * KW;
            for (int k = 0; k < KH * KW; k++) wk[k] = FLIP ? wp[KH * KW - 1 - k] : wp[k];
            window.start(xp, HAS_IN_BIAS ? IN_BIAS_AT(c) : 0.0f);
            const float b = HAS_BIAS ? BIAS_AT(c) : 0.0f;
            float* __restrict__ yp = out0_p + (size_t)nc * OH * OW;
            for (int oh = 0; oh < OH; oh++) {
                window.advance(oh);
                float* __restrict__ yrow = yp + (size_t)oh * OW;
                for (int ow0 = 0; ow0 < OW; ow0 += BLOCK) {
                    vblock acc = (vblock){} + b;  // BLOCK outputs in one vector register
                    for (int ki = 0; ki < KH; ki++) {
                        const float* __restrict__ prow = window.rows[ki] + ow0;
                        const float* __restrict__ wrow = wk.data() + ki * KW;
                        for (int kj = 0; kj < KW; kj++) {
                            vblock xv;
                            std::memcpy(&xv, prow + kj, sizeof(vblock));  // unaligned vector load
                            acc += wrow[kj] * xv;
                        }
                    }
                    if (OW - ow0 >= BLOCK) std::memcpy(yrow + ow0, &acc, sizeof(vblock));
                    else for (int t = 0; t < OW - ow0; t++) yrow[ow0 + t] = acc[t];
                }
                // exact GELU over the finished row: a plain loop the compiler vectorises (erff)
                if (GELU) for (int ow = 0; ow < OW; ow++) yrow[ow] *= 0.5f * (1.0f + erff(yrow[ow] * SQRT1_2));
            }
        }
    }
"""

_DW_GRAD_WEIGHT_SRC = """
    // in0 x (N,C,H,W), in1 dy (N,C,OH,OW) -> out0 gw (C,1,KH,KW)
    const int N = in0_shape0, C = in0_shape1, H = in0_shape2, W = in0_shape3;
    const int OH = in1_shape2, OW = in1_shape3, KH = out0_shape2, KW = out0_shape3;
    const int PH = (int)data["ph"], PW = (int)data["pw"];
    const int WP = OW + KW - 1;
    #pragma omp parallel
    {
        std::vector<float> ring((size_t)KH * WP + BLOCK);
        RowWindow window(ring.data(), KH, H, W, PH, PW, WP);
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            // one vector accumulator per tap, summed across lanes once per channel at the end
            vblock acc[MAX_TAPS];
            for (int k = 0; k < KH * KW; k++) acc[k] = (vblock){};
            for (int n = 0; n < N; n++) {
                const float* __restrict__ xp = in0_p + ((size_t)n * C + c) * H * W;
                const float* __restrict__ gp = in1_p + ((size_t)n * C + c) * OH * OW;
                window.start(xp, 0.0f);
                for (int oh = 0; oh < OH; oh++) {
                    window.advance(oh);
                    const float* __restrict__ grow = gp + (size_t)oh * OW;
                    for (int ow0 = 0; ow0 < OW; ow0 += BLOCK) {
                        vblock g = (vblock){};  // lanes past the row end stay 0
                        std::memcpy(&g, grow + ow0, sizeof(float) * (OW - ow0 < BLOCK ? OW - ow0 : BLOCK));
                        for (int ki = 0; ki < KH; ki++) {
                            const float* __restrict__ prow = window.rows[ki] + ow0;
                            for (int kj = 0; kj < KW; kj++) {
                                vblock xv;
                                std::memcpy(&xv, prow + kj, sizeof(vblock));
                                acc[ki * KW + kj] += g * xv;
                            }
                        }
                    }
                }
            }
            for (int k = 0; k < KH * KW; k++) {
                double total = 0.0;
                for (int t = 0; t < BLOCK; t++) total += acc[k][t];
                out0_p[(size_t)c * KH * KW + k] = (float)total;
            }
        }
    }
"""


def _dw_conv(x: jt.Var, weight: jt.Var, bias: Optional[jt.Var], padding: tuple[int, int],
             flip: bool = False, in_bias: Optional[jt.Var] = None, gelu: bool = False) -> jt.Var:
    """Stride-1 depthwise conv (or, with flip, its input gradient) with the C++ loop kernel;
    `in_bias` is added to the input before the conv, `gelu` applied to the output (inference)."""
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    ph, pw = padding
    inputs = [x, weight] + [v for v in (bias, in_bias) if v is not None]
    header = (_DW_HEADER + "#define SQRT1_2 0.70710678118654752440f\n"
              f"#define GELU {int(gelu)}\n#define HAS_BIAS {int(bias is not None)}\n"
              f"#define BIAS_AT(c) {'in2_p[c]' if bias is not None else '0.0f'}\n"
              f"#define HAS_IN_BIAS {int(in_bias is not None)}\n"
              f"#define IN_BIAS_AT(c) {f'in{len(inputs) - 1}_p[c]' if in_bias is not None else '0.0f'}\n")
    return jt.code([n, c, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1], x.dtype, inputs,
                   cpu_header=header, cpu_src=_DW_FORWARD_SRC,
                   data={"ph": ph, "pw": pw, "flip": int(flip)})


class _DepthwiseConv2d(jt.Function):
    """Depthwise conv (stride 1) with the loop kernels above for the forward and both gradients."""

    def execute(self, x: jt.Var, weight: jt.Var, bias: Optional[jt.Var], padding: tuple[int, int]):
        self.saved = (x, weight, bias is not None, padding)
        return _dw_conv(x, weight, bias, padding)

    def grad(self, grad_y: jt.Var):
        x, weight, has_bias, (ph, pw) = self.saved
        kh, kw = weight.shape[2], weight.shape[3]
        # Jittor is lazy: a gradient nobody asks for (e.g. of a stop_grad input) is never computed.
        grad_x = _dw_conv(grad_y, weight, None, (kh - 1 - ph, kw - 1 - pw), flip=True)
        grad_w = jt.code([x.shape[1], 1, kh, kw], x.dtype, [x, grad_y], cpu_header=_DW_HEADER,
                         cpu_src=_DW_GRAD_WEIGHT_SRC, data={"ph": ph, "pw": pw})
        grad_b = grad_y.sum([0, 2, 3]) if has_bias else None
        return grad_x, grad_w, grad_b, None


def depthwise_conv(x: jt.Var, weight: jt.Var, bias: Optional[jt.Var],
                   padding: tuple[int, int]) -> Optional[jt.Var]:
    """Stride-1 depthwise conv with the loop kernels, or None where they do not apply."""
    kh, kw = weight.shape[2], weight.shape[3]
    if not (_use_native(x, weight) and 0 <= padding[0] < kh <= _DW_MAX_KERNEL and 0 <= padding[1] < kw
            and kh * kw <= _DW_MAX_TAPS):
        return None
    return _DepthwiseConv2d.apply(x, weight, bias, padding)


def depthwise_conv_gelu(x: jt.Var, in_bias: jt.Var, weight: jt.Var, bias: Optional[jt.Var],
                        padding: tuple[int, int]) -> Optional[jt.Var]:
    """GELU(depthwise_conv(x + in_bias)) in one pass (the Mlp's fc1 bias, dwconv, GELU) under
    jt.no_grad() only (the fused kernel has no gradient); None where it does not apply."""
    kh, kw = weight.shape[2], weight.shape[3]
    if not (jt.flags.no_grad and _use_native(x, weight, in_bias)
            and 0 <= padding[0] < kh <= _DW_MAX_KERNEL and 0 <= padding[1] < kw):
        return None
    return _dw_conv(x, weight, bias, padding, in_bias=in_bias, gelu=True)


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
# Cross-entropy over NCHW logits (mmseg's CE at label resolution, plus top-1 hits for acc_seg)
# --------------------------------------------------------------------------------------------
# At 512x512 with 150 classes the logits hold 39M values; Jittor's path (max, shift, exp, sum, log,
# gather, argmax, then the same again for the gradient) is ~8 single-threaded passes over them.
# Here: one OpenMP pass forward (per pixel: max, log-sum-exp, loss, argmax == label) and one for
# the gradient (softmax - one-hot), over chunks of pixels with the classes as the outer loop so the
# inner loops are contiguous. Per-pixel values are the same formulas; Jittor still sums them.
_CE_FORWARD_SRC = """
    // in0 logits (N,C,H,W), in1 label (N,H,W) int32 -> out0 loss (N,H,W), out1 lse (N,H,W), out2 hit (N,H,W)
    const int N = in0_shape0, C = in0_shape1;
    const long P = (long)in0_shape2 * in0_shape3;
    const int IGNORE = (int)data["ignore"];
    const long chunks = (P + CHUNK - 1) / CHUNK;
    #pragma omp parallel for schedule(static)
    for (long job = 0; job < N * chunks; job++) {
        const long n = job / chunks, p0 = (job % chunks) * CHUNK, len = P - p0 < CHUNK ? P - p0 : CHUNK;
        const float* __restrict__ x = in0_p + n * C * P + p0;
        const int* __restrict__ lab = in1_p + n * P + p0;
        float m[CHUNK], s[CHUNK]; int arg[CHUNK];
        for (long p = 0; p < len; p++) { m[p] = x[p]; arg[p] = 0; s[p] = 0.0f; }
        for (int c = 1; c < C; c++) {
            const float* __restrict__ xc = x + (long)c * P;
            for (long p = 0; p < len; p++) if (xc[p] > m[p]) { m[p] = xc[p]; arg[p] = c; }
        }
        for (int c = 0; c < C; c++) {
            const float* __restrict__ xc = x + (long)c * P;
            for (long p = 0; p < len; p++) s[p] += std::exp(xc[p] - m[p]);
        }
        for (long p = 0; p < len; p++) {
            const int l = lab[p];
            const bool valid = l != IGNORE && l >= 0 && l < C;  // the data checks labels; never read out of range
            const float lse = m[p] + std::log(s[p]);
            out0_p[n * P + p0 + p] = valid ? lse - x[(long)(valid ? l : 0) * P + p] : 0.0f;
            out1_p[n * P + p0 + p] = lse;
            out2_p[n * P + p0 + p] = (valid && arg[p] == l) ? 1.0f : 0.0f;
        }
    }
"""

_CE_BACKWARD_SRC = """
    // in0 logits, in1 label, in2 lse, in3 dloss (N,H,W) -> out0 dlogits (N,C,H,W)
    const int N = in0_shape0, C = in0_shape1;
    const long P = (long)in0_shape2 * in0_shape3;
    const int IGNORE = (int)data["ignore"];
    const long chunks = (P + CHUNK - 1) / CHUNK;
    #pragma omp parallel for schedule(static)
    for (long job = 0; job < N * C * chunks; job++) {
        const long nc = job / chunks, n = nc / C, c = nc % C;
        const long p0 = (job % chunks) * CHUNK, len = P - p0 < CHUNK ? P - p0 : CHUNK;
        const float* __restrict__ xc = in0_p + nc * P + p0;
        const int* __restrict__ lab = in1_p + n * P + p0;
        const float* __restrict__ lse = in2_p + n * P + p0;
        const float* __restrict__ g = in3_p + n * P + p0;
        float* __restrict__ out = out0_p + nc * P + p0;
        for (long p = 0; p < len; p++) {
            const float gp = (lab[p] == IGNORE || lab[p] < 0 || lab[p] >= C) ? 0.0f : g[p];
            out[p] = gp * (std::exp(xc[p] - lse[p]) - (lab[p] == c ? 1.0f : 0.0f));
        }
    }
"""


class _CrossEntropy(jt.Function):
    def execute(self, logits: jt.Var, label: jt.Var, ignore_index: int):
        n, _, h, w = logits.shape
        self.data = {"ignore": int(ignore_index)}
        loss, lse, hit = jt.code([[n, h, w]] * 3, ["float32"] * 3, [logits, label],
                                 cpu_header="#include <cmath>\n#define CHUNK 256\n", cpu_src=_CE_FORWARD_SRC,
                                 data=self.data)
        self.saved = (logits, label, lse)
        return loss, hit

    def grad(self, grad_loss: jt.Var, grad_hit=None):
        logits, label, lse = self.saved
        if grad_loss is None:
            return None, None, None
        grad = jt.code(logits.shape, logits.dtype, [logits, label, lse, grad_loss],
                       cpu_header="#include <cmath>\n#define CHUNK 256\n", cpu_src=_CE_BACKWARD_SRC,
                       data=self.data)
        return grad, None, None


def cross_entropy_pixels(logits: jt.Var, label: jt.Var, ignore_index: int):
    """(per-pixel CE, 0 where ignored; per-pixel top-1 hit as 0/1) for NCHW logits and int32 NHW
    labels, or None where the native path does not apply."""
    if not (_use_native(logits) and label.dtype == "int32"):
        return None
    return _CrossEntropy.apply(logits, label, ignore_index)


# --------------------------------------------------------------------------------------------
# Training-mode BatchNorm over NCHW (batch statistics), forward and backward
# --------------------------------------------------------------------------------------------
# Jittor runs BN's reductions (mean, variance, and the two gradient sums) as single-threaded
# reduce kernels plus separate elementwise passes. Here one OpenMP loop over channels: two-pass
# mean/variance in double, then the normalised output; the backward sums dy and dy * xhat per
# channel, then writes dx = w / std * (dy - mean(dy) - xhat * mean(dy * xhat)).
_BN_FORWARD_SRC = """
    // in0 x (N,C,H,W), in1 weight (C), in2 bias (C) -> out0 y, out1 mean (C), out2 biased var (C)
    const int N = in0_shape0, C = in0_shape1;
    const long P = (long)in0_shape2 * in0_shape3;
    const double count = (double)N * P;
    const float eps = (float)data["eps"];
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sum = 0.0;
        for (int n = 0; n < N; n++) {
            const float* __restrict__ x = in0_p + ((long)n * C + c) * P;
            float s = 0.0f;  // per-plane float sum (vectorised), planes added in double
            for (long p = 0; p < P; p++) s += x[p];
            sum += s;
        }
        const float mean = (float)(sum / count);
        double sq = 0.0;
        for (int n = 0; n < N; n++) {
            const float* __restrict__ x = in0_p + ((long)n * C + c) * P;
            float s = 0.0f;
            for (long p = 0; p < P; p++) { const float d = x[p] - mean; s += d * d; }
            sq += s;
        }
        const float var = (float)(sq / count);
        const float scale = in1_p[c] / std::sqrt(var + eps), shift = in2_p[c] - mean * scale;
        for (int n = 0; n < N; n++) {
            const float* __restrict__ x = in0_p + ((long)n * C + c) * P;
            float* __restrict__ y = out0_p + ((long)n * C + c) * P;
            for (long p = 0; p < P; p++) y[p] = x[p] * scale + shift;
        }
        out1_p[c] = mean;
        out2_p[c] = var;
    }
"""

_BN_BACKWARD_SRC = """
    // in0 x, in1 dy (N,C,H,W), in2 mean, in3 var, in4 weight (C) -> out0 dx, out1 dweight, out2 dbias
    const int N = in0_shape0, C = in0_shape1;
    const long P = (long)in0_shape2 * in0_shape3;
    const double count = (double)N * P;
    const float eps = (float)data["eps"];
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const float mean = in2_p[c], inv_std = 1.0f / std::sqrt(in3_p[c] + eps);
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int n = 0; n < N; n++) {
            const float* __restrict__ x = in0_p + ((long)n * C + c) * P;
            const float* __restrict__ dy = in1_p + ((long)n * C + c) * P;
            float s = 0.0f, sx = 0.0f;
            for (long p = 0; p < P; p++) { s += dy[p]; sx += dy[p] * (x[p] - mean); }
            sum_dy += s;
            sum_dy_xhat += (double)sx * inv_std;
        }
        const float a = in4_p[c] * inv_std;
        const float mean_dy = (float)(sum_dy / count), mean_dy_xhat = (float)(sum_dy_xhat / count);
        for (int n = 0; n < N; n++) {
            const float* __restrict__ x = in0_p + ((long)n * C + c) * P;
            const float* __restrict__ dy = in1_p + ((long)n * C + c) * P;
            float* __restrict__ dx = out0_p + ((long)n * C + c) * P;
            for (long p = 0; p < P; p++)
                dx[p] = a * (dy[p] - mean_dy - (x[p] - mean) * inv_std * mean_dy_xhat);
        }
        out1_p[c] = (float)sum_dy_xhat;
        out2_p[c] = (float)sum_dy;
    }
"""


class _BatchNormTrain(jt.Function):
    def execute(self, x: jt.Var, weight: jt.Var, bias: jt.Var, eps: float):
        c = x.shape[1]
        self.data = {"eps": float(eps)}
        y, mean, var = jt.code([x.shape, [c], [c]], ["float32"] * 3, [x, weight, bias],
                               cpu_header="#include <cmath>\n", cpu_src=_BN_FORWARD_SRC, data=self.data)
        self.saved = (x, mean, var, weight)
        return y, mean, var

    def grad(self, grad_y: jt.Var, grad_mean=None, grad_var=None):
        if grad_y is None:
            return None, None, None, None
        x, mean, var, weight = self.saved
        c = x.shape[1]
        dx, dw, db = jt.code([x.shape, [c], [c]], ["float32"] * 3, [x, grad_y, mean, var, weight],
                             cpu_header="#include <cmath>\n", cpu_src=_BN_BACKWARD_SRC, data=self.data)
        return dx, dw, db, None


def batch_norm_train(x: jt.Var, weight: jt.Var, bias: jt.Var, eps: float):
    """(y, batch mean, biased batch variance) of training-mode BatchNorm over NCHW, or None where the
    native path does not apply. The caller updates the running statistics."""
    if not (_use_native(x, weight, bias) and x.ndim == 4):
        return None
    return _BatchNormTrain.apply(x, weight, bias, eps)
