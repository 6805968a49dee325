"""segnext_jt/repro/report/stats.py against hand calculations and SciPy. No Jittor."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from segnext_jt.repro.report import stats
from segnext_jt.files import json_safe


def test_summary_hand_values():
    x = [1.0, 2.0, 3.0, 4.0, 10.0]
    s = stats.summary(x)
    assert s.n == 5 and s.mean == 4.0 and s.median == 3.0
    assert s.std == pytest.approx(math.sqrt(50 / 4))  # squared deviations 9+4+1+0+36
    assert s.min == 1.0 and s.max == 10.0 and s.range == 9.0
    assert s.iqm == 3.0 == pytest.approx(sps.trim_mean(x, 0.25))  # middle 3 of 5
    half = sps.t.ppf(0.975, 4) * math.sqrt(12.5) / math.sqrt(5)
    assert (s.t_ci_low, s.t_ci_high) == pytest.approx((4 - half, 4 + half))
    assert s.ci_low < s.mean < s.ci_high
    assert s.ci_method == "BCa bootstrap"
    assert stats.summary(x) == s  # fixed resampling seed: reproducible


def test_iqm_definition():
    assert stats.interquartile_mean([5, 1, 3, 2, 4, 100, 7, 6]) == pytest.approx(
        np.mean([3, 4, 5, 6]))  # n=8: drop 2 each side
    assert stats.interquartile_mean([1, 2, 9]) == pytest.approx(4.0)  # n<4: plain mean


def test_summary_small_and_degenerate():
    s2 = stats.summary([50.0, 51.0])
    assert math.isnan(s2.ci_low) and s2.ci_method == "none" and any("n=2" in n for n in s2.notes)
    assert not math.isnan(s2.t_ci_low)
    s1 = stats.summary([50.0])
    assert math.isnan(s1.std) and s1.mean == 50.0
    assert stats.summary([]).n == 0
    same = stats.summary([50.0, 50.0, 50.0])
    assert (same.ci_low, same.ci_high) == (50.0, 50.0) and same.ci_method == "degenerate"
    with pytest.raises(ValueError, match="position 1"):
        stats.summary([1.0, float("nan")])


def test_reference_position():
    vals = [49.8, 50.1, 50.4, 50.9]
    p = stats.reference_position(vals, 50.99, (49.60, 51.0))
    assert p.percentile == 100.0 and p.n_below == 4
    assert not p.inside_observed_range
    assert p.ranges_overlap and p.n_inside_reference_range == 4
    assert p.delta_mean == pytest.approx(np.mean(vals) - 50.99)
    q = stats.reference_position(vals, 50.1)
    assert q.percentile == pytest.approx(37.5)  # (1 strictly below + 2 at or below) / 2 / 4
    assert q.inside_observed_range and q.ranges_overlap is None
    assert q.percentile == sps.percentileofscore(vals, 50.1, kind="mean")
    far = stats.reference_position([40.0, 41.0], 50.99, (49.6, 51.0))
    assert far.ranges_overlap is False and far.n_inside_reference_range == 0


def test_variance_decomposition_exact_small():
    # rows = training seeds, columns = eval seeds
    table = {0: {0: 1.0, 1: 3.0}, 1: {0: 4.0, 1: 6.0}, 2: {0: 7.0, 1: 11.0}}
    d = stats.variance_decomposition(table)
    # hand calculation: group means 2, 5, 9; grand mean 32/6
    g = 32 / 6
    ss_b = 2 * ((2 - g) ** 2 + (5 - g) ** 2 + (9 - g) ** 2)
    assert d.ss_between == pytest.approx(ss_b) == pytest.approx(49 + 1 / 3)
    assert d.ss_within == pytest.approx(12.0)  # (1+1) + (1+1) + (4+4)
    assert (d.df_between, d.df_within) == (2, 3)
    assert d.ms_between == pytest.approx(ss_b / 2) and d.ms_within == pytest.approx(4.0)
    assert d.n0 == 2.0 and d.balanced
    assert d.var_within == pytest.approx(4.0)
    assert d.var_between == pytest.approx((ss_b / 2 - 4) / 2)  # 10.333...
    assert d.icc == pytest.approx(d.var_between / (d.var_between + 4.0))
    assert d.share_within + d.share_between == pytest.approx(1.0)
    assert d.f_stat == pytest.approx(ss_b / 2 / 4)
    assert d.p_value == pytest.approx(sps.f.sf(ss_b / 2 / 4, 2, 3))
    # the same result from scipy's one-way ANOVA F
    assert d.f_stat == pytest.approx(sps.f_oneway([1, 3], [4, 6], [7, 11]).statistic)
    # matrix input gives the same numbers
    d2 = stats.variance_decomposition(np.array([[1, 3], [4, 6], [7, 11]], dtype=float))
    assert d2.var_between == pytest.approx(d.var_between)


def test_variance_decomposition_unbalanced_and_clamped():
    d = stats.variance_decomposition([[1.0, 2.0, None], [3.0, 5.0, 4.0], [6.0, np.nan, np.nan]])
    assert d.group_sizes == {"0": 2, "1": 3, "2": 1} and not d.balanced
    assert d.n0 == pytest.approx((6 - 14 / 6) / 2)
    assert any("unbalanced" in n for n in d.notes)
    # between-seed differences smaller than eval noise -> negative raw estimate, clamped
    c = stats.variance_decomposition({0: [0.0, 10.0], 1: [5.0, 5.5]})
    assert c.var_between_raw < 0 and c.var_between == 0.0 and c.icc == 0.0
    with pytest.raises(ValueError, match=">= 2 training seeds"):
        stats.variance_decomposition({0: [1.0, 2.0]})
    with pytest.raises(ValueError, match=">= 2 eval-seed values"):
        stats.variance_decomposition({0: [1.0], 1: [2.0]})


def test_variance_decomposition_recovers_synthetic_components():
    rng = np.random.default_rng(123)
    sd_t, sd_e = 0.5, 0.3
    train_effect = rng.normal(0, sd_t, size=(400, 1))
    table = 50 + train_effect + rng.normal(0, sd_e, size=(400, 20))
    d = stats.variance_decomposition(table)
    assert d.var_within == pytest.approx(sd_e ** 2, rel=0.05)
    assert d.var_between == pytest.approx(sd_t ** 2, rel=0.2)
    assert d.icc == pytest.approx(0.25 / 0.34, abs=0.05)
    assert d.p_value < 1e-6


def test_paired_comparison():
    a = {0: 50.1, 1: 50.5, 2: 49.9, 3: 50.7}
    b = {"0": 49.9, "1": 50.0, "2": 49.8, "3": 50.1, "4": 48.0}
    pc = stats.paired_comparison(a, b)
    assert pc.seeds == ["0", "1", "2", "3"] and pc.only_in_b == ["4"] and pc.only_in_a == []
    d = np.array([0.2, 0.5, 0.1, 0.6])
    np.testing.assert_allclose(pc.deltas, d, atol=1e-12)
    assert pc.mean_delta == pytest.approx(0.35)
    assert pc.std_delta == pytest.approx(d.std(ddof=1))
    half = sps.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert (pc.t_ci_low, pc.t_ci_high) == pytest.approx((0.35 - half, 0.35 + half))
    assert pc.p_ttest == pytest.approx(sps.ttest_rel(list(a.values()), [49.9, 50.0, 49.8, 50.1])
                                       .pvalue)
    assert pc.p_wilcoxon == pytest.approx(sps.wilcoxon(d).pvalue)
    assert pc.boot_ci_low <= pc.mean_delta <= pc.boot_ci_high
    assert any("cannot reach 0.05" in n for n in pc.notes)
    none = stats.paired_comparison({1: 1.0}, {2: 1.0})
    assert none.n == 0 and math.isnan(none.mean_delta)


def test_results_are_strict_json_through_json_safe():
    out = json_safe({"a": np.float64("nan"), "b": (1, np.int64(2)), "c": stats.summary([1.0])})
    assert out["a"] is None and out["b"] == [1, 2] and out["c"]["n"] == 1
    json.dumps(out, allow_nan=False)
