"""The native CPU kernels (segnext_jt.models.kernels.cpu_ops) against Jittor's own operators, values and
gradients, on shapes that exercise their edge cases (row tails shorter than a vector block,
paddings of every size, batch 1 and 2, ignored labels)."""
from __future__ import annotations

import types

import numpy as np
import pytest

from helpers import assert_close_fwd, fixture_dir, fixture_model

import jittor as jt
from jittor import nn

from segnext_jt.models import layers
from segnext_jt.models.kernels import cpu_ops
from segnext_jt.models.segmentor import cross_entropy_mmseg, pixel_accuracy

RNG = np.random.default_rng(0)


def _var(*shape, scale=1.0):
    return jt.array((RNG.standard_normal(shape) * scale).astype(np.float32))


def _close(a, b, rtol=1e-5):
    a, b = a.numpy(), b.numpy()
    assert a.shape == b.shape
    err = float(np.abs(a - b).max())
    assert err <= rtol * max(float(np.abs(b).max()), 1e-6), err


def _grads(fn, inputs):
    """Output and the gradients of a fixed random projection of it (a loss like sum(out**2) can have
    gradients that are rounding noise, e.g. through a normalisation)."""
    out = fn(*inputs)
    proj = jt.array(np.random.default_rng(1).standard_normal(out.shape).astype(np.float32))
    return [out] + list(jt.grad((out * proj).sum(), inputs))


@pytest.mark.parametrize("shape,kernel,padding", [
    ((2, 5, 9, 11), (1, 7), (0, 3)), ((1, 7, 13, 37), (3, 3), (1, 1)), ((2, 3, 20, 18), (21, 1), (10, 0)),
    ((1, 4, 16, 17), (5, 5), (2, 2)), ((1, 3, 8, 8), (3, 3), (0, 2)),
])
def test_depthwise_conv_matches_jittor(shape, kernel, padding):
    x, w, b = _var(*shape), _var(shape[1], 1, *kernel), _var(shape[1])
    got = _grads(lambda *a: cpu_ops.depthwise_conv(*a, padding), [x, w, b])
    ref = _grads(lambda x, w, b: nn.conv2d(x, w, b, 1, padding, 1, shape[1]), [x, w, b])
    for g, r in zip(got, ref):
        _close(g, r)


def test_fused_bias_depthwise_gelu_matches_the_unfused_ops():
    x, w, b, in_bias = _var(1, 6, 10, 19), _var(6, 1, 3, 3), _var(6), _var(6)
    with jt.no_grad():
        got = cpu_ops.depthwise_conv_gelu(x, in_bias, w, b, (1, 1))
        ref = layers.gelu(nn.conv2d(x + in_bias.reshape([1, -1, 1, 1]), w, b, 1, (1, 1), 1, 6))
    _close(got, ref)
    assert cpu_ops.depthwise_conv_gelu(x, in_bias, w, b, (1, 1)) is None  # has no gradient: no_grad only


def test_conv1x1_and_bmm_match_jittor():
    x, w, b = _var(1, 6, 7, 9), _var(5, 6, 1, 1), _var(5)
    for batch in (1, 2):
        xb = _var(batch, 6, 7, 9)
        got = _grads(lambda x, w, b: cpu_ops.conv1x1(x, w, b, batched=True), [xb, w, b])
        ref = _grads(lambda x, w, b: nn.conv2d(x, w, b), [xb, w, b])
        for g, r in zip(got, ref):
            _close(g, r)
    assert cpu_ops.conv1x1(_var(2, 6, 3, 3), w, b, batched=False) is None  # training batches: mkl_conv
    a, m = _var(2, 8, 5), _var(2, 8, 3)
    for ta, tb, a_, m_ in [(True, False, a, m), (False, True, a.transpose([0, 2, 1]), m.transpose([0, 2, 1]))]:
        got = _grads(lambda p, q: cpu_ops.bmm(p, q, ta, tb), [a_, m_])
        ref = _grads(lambda p, q: nn.bmm(p.transpose([0, 2, 1]) if ta else p,
                                         q.transpose([0, 2, 1]) if tb else q), [a_, m_])
        for g, r in zip(got, ref):
            _close(g, r)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_jittor_operator_bmm_takes_transpose_flags(trans_a, trans_b):
    """The path CUDA and SEGNEXT_CPU_KERNELS=jittor take: op(a) @ op(b) from the stored layouts (no
    transposed copy) gives nn.bmm's values and gradients on explicitly transposed inputs."""
    a = _var(2, 9, 4) if trans_a else _var(2, 4, 9)
    b = _var(2, 3, 9) if trans_b else _var(2, 9, 3)
    before = cpu_ops.native_cpu_kernels()
    cpu_ops.set_native_cpu_kernels(False)
    try:
        got = _grads(lambda p, q: cpu_ops.bmm(p, q, trans_a, trans_b), [a, b])
    finally:
        cpu_ops.set_native_cpu_kernels(before)
    ref = _grads(lambda p, q: nn.bmm(p.transpose([0, 2, 1]) if trans_a else p,
                                     q.transpose([0, 2, 1]) if trans_b else q), [a, b])
    assert list(got[0].shape) == [2, 4, 3]
    for g, r in zip(got, ref):
        _close(g, r)


def test_bmm_on_cuda_passes_the_transposes_to_cublas(monkeypatch):
    """On CUDA the product is cuBLAS's batched GEMM with its transpose arguments (its gradients use
    the flags too), fed the untransposed inputs. Simulated: a fake jt whose flags say CUDA."""
    calls = []
    cublas = types.SimpleNamespace(cublas_batched_matmul=lambda a, b, ta, tb: calls.append((a, b, ta, tb)) or "c")
    fake_jt = types.SimpleNamespace(flags=types.SimpleNamespace(use_cuda=1),
                                    compile_extern=types.SimpleNamespace(cublas_ops=cublas))
    monkeypatch.setattr(cpu_ops, "jt", fake_jt)
    a, b = object(), object()
    assert cpu_ops.bmm(a, b, trans_a=True) == "c" and calls == [(a, b, True, False)]


@pytest.mark.parametrize("size", [(5, 7), (64, 96), (16, 16), (3, 40)])
def test_resize_matches_the_separable_jittor_form(size):
    x = _var(2, 3, 16, 16)
    got = _grads(lambda v: cpu_ops.resize_bilinear(v, *size), [x])
    cpu_ops.set_native_cpu_kernels(False)
    try:
        ref = _grads(lambda v: layers.resize_bilinear(v, size), [x])
    finally:
        cpu_ops.set_native_cpu_kernels(True)
    for g, r in zip(got, ref):
        _close(g, r)


def test_cross_entropy_and_hits_match_jittor():
    logits = _var(2, 7, 9, 13, scale=3.0)
    label_np = RNG.integers(0, 7, (2, 9, 13)).astype(np.int32)
    label_np[0, :3] = 255
    label = jt.array(label_np)
    per_pixel, hit = cpu_ops.cross_entropy_pixels(logits, label, 255)
    loss = per_pixel.sum() / (label.numel() + cpu_ops_eps())
    ref = cross_entropy_mmseg(logits, label, 255)
    assert abs(loss.item() - ref.item()) <= 1e-6 * abs(ref.item())
    valid = float((label_np != 255).sum())
    assert abs(hit.sum().item() * 100.0 / valid - pixel_accuracy(logits, label, 255).item()) < 1e-4
    _close(jt.grad(loss, [logits])[0], jt.grad(ref, [logits])[0])


def test_cross_entropy_and_accuracy_is_mmsegs_loss_and_acc():
    """The fused pair EncoderDecoder.loss takes; None (the reference path) with the kernels off."""
    logits = _var(2, 5, 6, 7, scale=2.0)
    label_np = RNG.integers(0, 5, (2, 6, 7)).astype(np.int32)
    label_np[1, 2:] = 255
    label = jt.array(label_np)
    loss, acc = cpu_ops.cross_entropy_and_accuracy(logits, label, 255, cpu_ops_eps())
    ref = cross_entropy_mmseg(logits, label, 255)
    assert abs(loss.item() - ref.item()) <= 1e-6 * abs(ref.item())
    assert abs(acc.item() - pixel_accuracy(logits, label, 255).item()) < 1e-4
    _close(jt.grad(loss, [logits])[0], jt.grad(ref, [logits])[0])
    cpu_ops.set_native_cpu_kernels(False)
    try:
        assert cpu_ops.cross_entropy_and_accuracy(logits, label, 255, cpu_ops_eps()) is None
    finally:
        cpu_ops.set_native_cpu_kernels(True)


def cpu_ops_eps():
    from segnext_jt.models.segmentor import FLOAT32_EPS
    return FLOAT32_EPS


def test_batch_norm_train_matches_the_jittor_form():
    x = _var(2, 4, 6, 5, scale=2.0) + 3.0
    bn_native, bn_ref = layers.BatchNorm2d(4), layers.BatchNorm2d(4)
    for bn in (bn_native, bn_ref):
        bn.weight.assign(jt.array(np.array([1.0, 0.5, -2.0, 3.0], np.float32)))
        bn.bias.assign(jt.array(np.array([0.0, 1.0, 2.0, -1.0], np.float32)))
    got = _grads(lambda v, w, b: bn_native(v), [x, bn_native.weight, bn_native.bias])
    cpu_ops.set_native_cpu_kernels(False)
    try:
        ref = _grads(lambda v, w, b: bn_ref(v), [x, bn_ref.weight, bn_ref.bias])
    finally:
        cpu_ops.set_native_cpu_kernels(True)
    for g, r in zip(got, ref):
        _close(g, r, rtol=1e-4)
    _close(bn_native.running_var, bn_ref.running_var)
    _close(bn_native.running_mean, bn_ref.running_mean)


@pytest.mark.usefixtures("compute_path")
def test_single_image_parity():
    """Batch 1 takes the sgemm 1x1 convs (the fixtures have 2 images); eval BN is per image, so the
    first image's reference outputs apply."""
    name = "tiny-test_eval_64x64"
    model = fixture_model(name)
    model.eval()
    x = jt.array(np.load(fixture_dir(name) / "input.npy")[:1])
    raw = np.load(fixture_dir(name) / "bases_raw.npy")[:1]
    for no_grad in (False, True):
        with jt.flag_scope(no_grad=int(no_grad)):
            full = model.encode_decode(x, None, raw)
        assert_close_fwd(full, np.load(fixture_dir(name) / "seg_logits_full.npy")[:1], f"batch 1 no_grad={no_grad}")
