"""Depthwise convolution kernels for the CPU (stride 1, no dilation, zero padding smaller than the
kernel): MSCA's 5x5 and 1xK/Kx1 strips and the Mlp's 3x3. cpu_ops.depthwise_conv(_gelu) decides where
they run.

Parallel over (image, channel) planes. Input rows are copied, zero-padded, into a ring of KH scratch
rows (it stays in L1), so the tap loops need no bounds checks; each output row is then computed in
blocks of BLOCK columns held in registers: every tap is one (unaligned) vector load and one
multiply-add, and each output element is stored once (a tap-at-a-time loop over the row would load
and store the output row once per tap, which made the 1xK strips memory-bound).

* _FORWARD_SRC: y[n,c] = b[c] + sum_{i,j} w[c,i,j] * x[n,c, . + i - ph, . + j - pw]; with FLIP it
  correlates with the 180-degree-rotated kernel, which is the input gradient (the gradient of a
  stride-1 conv with padding p is a conv of dy with padding k - 1 - p);
* _GRAD_WEIGHT_SRC: gw[c,i,j] = sum_{n,h,w} dy[n,c,h,w] * x[n,c,h+i-ph,w+j-pw].

Shapes, paddings and the flip are run-time values, so Jittor compiles three kernels in all.
"""
from __future__ import annotations

from typing import Optional

from ... import runtime  # noqa: F401
import jittor as jt

MAX_KERNEL_ROWS = 64  # kernel rows the kernels keep row pointers for
MAX_TAPS = 64  # KH * KW: the weight gradient keeps one vector accumulator per tap
_HEADER = ("#include <cmath>\n#include <cstring>\n#include <vector>\n#define BLOCK 16\n"
           "typedef float vblock __attribute__((vector_size(4 * BLOCK)));\n"
           f"#define MAX_KH {MAX_KERNEL_ROWS}\n#define MAX_TAPS {MAX_TAPS}\n" + """
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
_FORWARD_SRC = """
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

_GRAD_WEIGHT_SRC = """
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



def dw_conv(x: jt.Var, weight: jt.Var, bias: Optional[jt.Var], padding: tuple[int, int],
            flip: bool = False, in_bias: Optional[jt.Var] = None, gelu: bool = False) -> jt.Var:
    """Stride-1 depthwise conv (or, with flip, its input gradient) with the C++ loop kernel;
    `in_bias` is added to the input before the conv, `gelu` applied to the output (inference)."""
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    ph, pw = padding
    inputs = [x, weight] + [v for v in (bias, in_bias) if v is not None]
    header = (_HEADER + "#define SQRT1_2 0.70710678118654752440f\n"
              f"#define GELU {int(gelu)}\n#define HAS_BIAS {int(bias is not None)}\n"
              f"#define BIAS_AT(c) {'in2_p[c]' if bias is not None else '0.0f'}\n"
              f"#define HAS_IN_BIAS {int(in_bias is not None)}\n"
              f"#define IN_BIAS_AT(c) {f'in{len(inputs) - 1}_p[c]' if in_bias is not None else '0.0f'}\n")
    return jt.code([n, c, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1], x.dtype, inputs,
                   cpu_header=header, cpu_src=_FORWARD_SRC,
                   data={"ph": ph, "pw": pw, "flip": int(flip)})


class DepthwiseConv2d(jt.Function):
    """Depthwise conv (stride 1) with the loop kernels above for the forward and both gradients."""

    def execute(self, x: jt.Var, weight: jt.Var, bias: Optional[jt.Var], padding: tuple[int, int]):
        self.saved = (x, weight, bias is not None, padding)
        return dw_conv(x, weight, bias, padding)

    def grad(self, grad_y: jt.Var):
        x, weight, has_bias, (ph, pw) = self.saved
        kh, kw = weight.shape[2], weight.shape[3]
        # Jittor is lazy: a gradient nobody asks for (e.g. of a stop_grad input) is never computed.
        grad_x = dw_conv(grad_y, weight, None, (kh - 1 - ph, kw - 1 - pw), flip=True)
        grad_w = jt.code([x.shape[1], 1, kh, kw], x.dtype, [x, grad_y], cpu_header=_HEADER,
                         cpu_src=_GRAD_WEIGHT_SRC, data={"ph": ph, "pw": pw})
        grad_b = grad_y.sum([0, 2, 3]) if has_bias else None
        return grad_x, grad_w, grad_b, None
