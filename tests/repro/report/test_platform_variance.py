"""The platform / training-seed / eval-seed decomposition (stats.nested_variance_decomposition)
against simulations with known variance components."""
import math

import numpy as np
import pytest

from segnext_jt.repro.report import stats


def _simulate(rng, design, var_p, var_t, var_e, mu=40.0):
    """design: {platform: [evals per seed, ...]} -> {platform: {seed: [values]}}."""
    table, seed = {}, 0
    for plat, evals in design.items():
        p_eff = rng.normal(0, math.sqrt(var_p))
        table[plat] = {}
        for n in evals:
            t_eff = rng.normal(0, math.sqrt(var_t))
            table[plat][seed] = list(mu + p_eff + t_eff + rng.normal(0, math.sqrt(var_e), n))
            seed += 1
    return table


@pytest.mark.parametrize("design", [
    {f"p{i}": [3] * 4 for i in range(6)},  # balanced
    {"p0": [2, 3, 4], "p1": [2, 2], "p2": [4, 1, 3, 2], "p3": [3, 3, 3, 3, 2], "p4": [2, 5]},
])
def test_method_of_moments_is_unbiased(design):
    """Averaged over many simulated sweeps the raw (unclamped) estimates match the true components:
    the expected-mean-square coefficients are right, balanced or not."""
    rng = np.random.default_rng(0)
    truth = (0.8, 0.5, 0.2)
    est = np.array([[d.var_platform_raw, d.var_train_raw, d.var_eval] for d in
                    (stats.nested_variance_decomposition(_simulate(rng, design, *truth))
                     for _ in range(3000))])
    mean, se = est.mean(0), est.std(0, ddof=1) / math.sqrt(len(est))
    for m, s, t in zip(mean, se, truth):
        assert abs(m - t) < 4 * s, (mean, se, truth)
    # a wrong coefficient (e.g. the one-way n0 for the platform level) would be off by far more
    assert se[0] < 0.1


def test_balanced_textbook_values():
    """Balanced 2 platforms x 2 seeds x 2 evals, by hand: cell means 1, 3 | 6, 8 (+-0.5)."""
    table = {"A": {0: [0.5, 1.5], 1: [2.5, 3.5]}, "B": {2: [5.5, 6.5], 3: [7.5, 8.5]}}
    d = stats.nested_variance_decomposition(table)
    assert (d.df_platform, d.df_train, d.df_eval) == (1, 2, 4)
    assert d.k_train == pytest.approx(2) and d.k_platform_train == pytest.approx(2)
    assert d.k_platform == pytest.approx(4)
    # MS_eval = 4 * 0.5 / 4 = 0.5; MS_train = 2 * 4 * 1 / 2 = 4; MS_platform = 4 * 2 * 2.5^2 = 50
    assert d.ms_eval == pytest.approx(0.5) and d.ms_train == pytest.approx(4.0)
    assert d.ms_platform == pytest.approx(50.0)
    assert d.var_train == pytest.approx((4 - 0.5) / 2)
    assert d.var_platform == pytest.approx((50 - 4) / 4)
    assert d.share_platform + d.share_train + d.share_eval == pytest.approx(1.0)
    assert d.f_platform == pytest.approx(12.5) and 0 < d.p_platform < 0.1
    assert any("only 2 platforms" in n for n in d.notes)


def test_no_platform_effect_clamps_and_says_so():
    table = {"A": {0: [1.0, 1.2], 1: [3.0, 3.2]}, "B": {2: [1.0, 1.2], 3: [3.0, 3.2]}}
    d = stats.nested_variance_decomposition(table)
    assert d.var_platform_raw < 0 and d.var_platform == 0.0
    assert any("platform variance estimate negative" in n for n in d.notes)


@pytest.mark.parametrize("table, what", [
    ({"A": {0: [1.0, 2.0], 1: [2.0, 3.0]}}, "2 platforms"),
    ({"A": {0: [1.0, 2.0]}, "B": {1: [2.0, 3.0]}}, "more training seeds than platforms"),
    ({"A": {0: [1.0], 1: [2.0]}, "B": {2: [2.0], 3: [3.0]}}, "a seed with >= 2 values"),
])
def test_designs_that_cannot_separate_the_parts_are_refused(table, what):
    with pytest.raises(ValueError, match=what):
        stats.nested_variance_decomposition(table)
