"""CPU kernels of the training step: per-pixel cross-entropy over NCHW logits (mmseg's CE at label
resolution, plus top-1 hits for acc_seg) and training-mode BatchNorm over NCHW (batch statistics),
forward and backward. cpu_ops.cross_entropy_pixels / batch_norm_train decide where they run."""
from __future__ import annotations

from ... import runtime  # noqa: F401
import jittor as jt


# --------------------------------------------------------------------------------------------
# Cross-entropy
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


class CrossEntropy(jt.Function):
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


# --------------------------------------------------------------------------------------------
# Training-mode BatchNorm
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


class BatchNormTrain(jt.Function):
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
