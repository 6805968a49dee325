"""segnext_jt.models.layers: layers.Conv2d on the CPU depthwise-conv kernels
(models/kernels/cpu_ops.depthwise_conv) against Jittor's generic grouped conv, values and gradients."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import random_input

import jittor as jt

from segnext_jt.models import layers
from segnext_jt.models.kernels import cpu_ops


@pytest.fixture
def depthwise_kernel_calls(monkeypatch):
    """The number of calls Conv2d makes to the depthwise loop kernels' entry point."""
    calls = []
    kernel = cpu_ops.depthwise_conv

    def counting(*args, **kwargs):
        calls.append(1)
        return kernel(*args, **kwargs)
    monkeypatch.setattr(cpu_ops, "depthwise_conv", counting)
    return calls


@pytest.mark.parametrize("n, c, h, w, kernel, padding, bias", [
    (2, 3, 7, 9, (3, 5), (0, 4), True),     # asymmetric kernel, padding 0 and k-1
    (1, 4, 6, 5, (1, 1), (0, 0), False),    # 1x1 depthwise, no bias
    (2, 5, 8, 3, (7, 1), (3, 0), True),     # MSCAN-style vertical strip on a narrow map
    (1, 6, 4, 4, (5, 5), (2, 2), True),     # kernel wider than the padded border, tiny map
    (1, 2, 9, 30, (1, 21), (0, 10), False),
])
def test_cpu_depthwise_kernel_matches_grouped_conv(n, c, h, w, kernel, padding, bias, depthwise_kernel_calls):
    from jittor import nn
    conv = layers.Conv2d(c, c, kernel, padding=padding, groups=c, bias=bias)
    rng = np.random.default_rng(0)
    if bias:
        conv.bias.assign(jt.array(rng.standard_normal(c).astype(np.float32)))
    x = jt.array(rng.standard_normal((n, c, h, w)).astype(np.float32))
    y = conv(x)
    assert len(depthwise_kernel_calls) == 1  # the loop kernel, not nn.conv2d
    ref = nn.conv2d(x, conv.weight, conv.bias, 1, padding, 1, c)  # Jittor's generic grouped conv
    assert tuple(y.shape) == tuple(ref.shape)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)

    dy = jt.array(rng.standard_normal(tuple(y.shape)).astype(np.float32))
    targets = [x, conv.weight] + ([conv.bias] if bias else [])
    got = jt.grad((conv(x) * dy).sum(), targets)
    want = jt.grad((nn.conv2d(x, conv.weight, conv.bias, 1, padding, 1, c) * dy).sum(), targets)
    for name, g, r in zip(["x", "weight", "bias"], got, want):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_strided_depthwise_conv_uses_the_generic_path(depthwise_kernel_calls):
    conv = layers.Conv2d(4, 4, 3, stride=2, padding=1, groups=4)
    assert tuple(conv(random_input((1, 4, 9, 9))).shape) == (1, 4, 5, 5)
    assert not depthwise_kernel_calls
