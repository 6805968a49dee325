"""Optimiser and schedule against the closed forms in docs/design.md §5."""
from __future__ import annotations

import math

import numpy as np
import pytest

import jittor as jt

from segnext_jt import build_segmentor, load_config
from segnext_jt.config_schema import ScheduleConfig
from segnext_jt.engine.optim import AdamW, build_param_groups, lr_at, match_custom_key

MM0 = ScheduleConfig(style="mm0", warmup_iters=1500, warmup_ratio=1e-6)
MM1 = ScheduleConfig(style="mm1", warmup_iters=1500, warmup_ratio=1e-6)


@pytest.mark.parametrize("t", [0, 1, 750, 1499, 1500, 1501, 80000, 159999])
def test_mm0_poly_with_linear_warmup(t):
    base = 6e-5
    poly = base * (1 - t / 160000)
    expected = poly * (1 - (1 - t / 1500) * (1 - 1e-6)) if t < 1500 else poly
    assert lr_at(t, base, 160000, MM0) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("t", [0, 1, 750, 1499, 1500, 1501, 80000, 159999])
def test_mm1_linear_then_poly_restarted(t):
    base = 6e-4
    expected = (base * (1e-6 + (1 - 1e-6) * t / 1499) if t < 1500
                else base * (1 - (t - 1500) / 158499))
    assert lr_at(t, base, 160000, MM1) == pytest.approx(expected, rel=1e-12, abs=1e-20)


def test_schedules_differ_where_the_spec_says():
    assert lr_at(159999, 6e-5, 160000, MM1) == 0.0  # mm1 reaches exactly 0 at the last iteration
    assert lr_at(159999, 6e-5, 160000, MM0) > 0.0
    assert lr_at(1500, 6e-5, 160000, MM1) == pytest.approx(6e-5)
    assert lr_at(1500, 6e-5, 160000, MM0) == pytest.approx(6e-5 * (1 - 1500 / 160000))


def test_custom_key_matching_semantics():
    keys = {"pos_block": {}, "norm": {}, "head": {}}
    assert match_custom_key("decode_head.squeeze.gn.weight", keys) == "head"
    assert match_custom_key("backbone.block1.0.norm1.weight", keys) == "norm"
    assert match_custom_key("backbone.patch_embed2.norm.bias", keys) == "norm"
    assert match_custom_key("backbone.patch_embed1.proj.1.weight", keys) is None  # stem BN keeps decay
    assert match_custom_key("backbone.block1.0.layer_scale_1", keys) is None
    # longest key first: 'head_norm' would win over 'norm' and 'head'
    assert match_custom_key("x.head_norm.w", {"norm": {}, "head": {}, "head_norm": {}}) == "head_norm"


@pytest.mark.parametrize("size,counts", [
    ("t", [(None, 378, 3895200), ("norm", 66, 8384), ("head", 13, 359830)]),
    ("l", [(None, 1078, None), ("norm", 166, None), ("head", 13, None)]),
])
def test_param_groups_match_spec_counts(size, counts):
    cfg = load_config(f"configs/segnext_{size}.yaml")
    groups = build_param_groups(build_segmentor(cfg), cfg.train.optimizer)
    got = [(g["key"], len(g["params"]), sum(int(np.prod(p.shape)) for p in g["params"])) for g in groups]
    for (key, n, values), (gkey, gn, gvalues) in zip(counts, got):
        assert (key, n) == (gkey, gn)
        if values is not None:
            assert values == gvalues
    by_key = {g["key"]: g for g in groups}
    assert by_key["head"]["lr_mult"] == 10.0 and by_key["head"]["weight_decay"] == pytest.approx(0.01)
    assert by_key["norm"]["weight_decay"] == 0.0 and by_key[None]["weight_decay"] == pytest.approx(0.01)


def _torch_adamw_reference(p, grads, lr, wd, betas=(0.9, 0.999), eps=1e-8):
    """torch.optim.AdamW's update written out in float64."""
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        p = p * (1 - lr * wd)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - betas[1] ** t) + eps
        p = p - lr / (1 - betas[0] ** t) * m / denom
    return p


def test_adamw_matches_torch_decoupled_form():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(5, 3)).astype(np.float32)
    coefs = [rng.normal(size=(5, 3)).astype(np.float32) for _ in range(4)]
    param = jt.array(p0)
    opt = AdamW([{"params": [param], "names": ["w"], "lr_mult": 10.0, "weight_decay": 0.01}], lr=1e-3)
    opt.set_lr(1e-3)
    for c in coefs:
        opt.step((param * jt.array(c)).sum())  # gradient = c
    expected = _torch_adamw_reference(p0.astype(np.float64), [c.astype(np.float64) for c in coefs], 1e-2, 0.01)
    np.testing.assert_allclose(param.numpy(), expected, rtol=1e-5, atol=1e-6)
    state = opt.state_arrays()
    assert set(state) == {"exp_avg/w", "exp_avg_sq/w"}
