"""segnext_jt/repro/report/power.py against closed forms, and a simulation check of the report's own estimators on
synthetic nested sweeps (train-seed effect + eval-seed noise with known standard deviations).

Every simulation uses a fixed seed, so the test is deterministic; tolerances are multiples of the
Monte Carlo standard error so that another seed would pass too (4 SE: ~6e-5 two-sided per check).
No Jittor."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from segnext_jt.repro.report import power

from segnext_jt.repro.report import command as report

from segnext_jt.repro.report import stats

Z = sps.norm.ppf(0.975) + sps.norm.ppf(0.80)  # z_{1-alpha/2} + z_{power}
MC_SE_MULT = 4.0


# ------------------------------------------------------------------------------------------------
# simulation helpers (vectorised: one array holds all sweeps of a setting)
# ------------------------------------------------------------------------------------------------
def simulate_sweeps(rng: np.random.Generator, n_sweeps: int, n_train: int, n_eval: int,
                    sd_train: float, sd_eval: float, mean: float = 50.0) -> np.ndarray:
    """(n_sweeps, n_train, n_eval): y_ij = mean + t_i + e_ij."""
    t = rng.normal(0.0, sd_train, size=(n_sweeps, n_train, 1))
    return mean + t + rng.normal(0.0, sd_eval, size=(n_sweeps, n_train, n_eval))


def simulate_paired(rng: np.random.Generator, n_sweeps: int, n_train: int, n_eval: int,
                    sd_train: float, sd_eval: float, rho: float,
                    delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Two arms on the same training seeds: train effects correlated rho, eval noise independent,
    arm A shifted by delta. The difference has sigma_td^2 = 2(1-rho) sd_train^2,
    sigma_ed^2 = 2 sd_eval^2."""
    z1 = rng.normal(size=(n_sweeps, n_train, 1))
    z2 = rng.normal(size=(n_sweeps, n_train, 1))
    t_a, t_b = sd_train * z1, sd_train * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
    a = 50.0 + delta + t_a + rng.normal(0.0, sd_eval, size=(n_sweeps, n_train, n_eval))
    b = 50.0 + t_b + rng.normal(0.0, sd_eval, size=(n_sweeps, n_train, n_eval))
    return a, b


def decomposition_bias(n_train: int, n_eval: int, sd_train: float, sd_eval: float,
                       n_sweeps: int = 400, seed: int = 0) -> dict[str, float]:
    """Mean of the report's ANOVA estimates over simulated sweeps, with the theoretical Monte
    Carlo SE of those means (balanced design, normal effects: MS_w ~ sigma_e^2 chi2_dfw / dfw,
    MS_b ~ (n_e sigma_t^2 + sigma_e^2) chi2_dfb / dfb, independent)."""
    ys = simulate_sweeps(np.random.default_rng(seed), n_sweeps, n_train, n_eval, sd_train,
                         sd_eval)
    ds = [stats.variance_decomposition(y) for y in ys]
    ve, vt = sd_eval ** 2, sd_train ** 2
    df_b, df_w = n_train - 1, n_train * (n_eval - 1)
    sd_ms_w = ve * math.sqrt(2 / df_w)
    sd_ms_b = (n_eval * vt + ve) * math.sqrt(2 / df_b)
    return {
        "mean_within": float(np.mean([d.var_within for d in ds])),
        "mean_between_raw": float(np.mean([d.var_between_raw for d in ds])),
        "mean_between_clamped": float(np.mean([d.var_between for d in ds])),
        "se_within": sd_ms_w / math.sqrt(n_sweeps),
        "se_between": math.hypot(sd_ms_b, sd_ms_w) / n_eval / math.sqrt(n_sweeps),
        "sd_within_emp": float(np.std([d.var_within for d in ds], ddof=1)),
        "sd_within_theory": sd_ms_w}


def ci_coverage(n_train: int, n_sweeps: int = 400, seed: int = 1, true_mean: float = 50.0,
                sd: float = 0.5) -> dict[str, float]:
    """Coverage of the report's summary() intervals (BCa bootstrap and t) for the mean of
    per-seed values. Per-seed values of a nested design (eval seeds averaged) are iid normal with
    variance sigma_t^2 + sigma_e^2 / n_e, so coverage depends on n_train only."""
    xs = np.random.default_rng(seed).normal(true_mean, sd, size=(n_sweeps, n_train))
    ss = [stats.summary(x) for x in xs]
    return {"boot": float(np.mean([s.ci_low <= true_mean <= s.ci_high for s in ss])),
            "t": float(np.mean([s.t_ci_low <= true_mean <= s.t_ci_high for s in ss])),
            "methods": sorted({s.ci_method for s in ss})}


def rejection_rate(model: power.PowerModel, a: np.ndarray, b: np.ndarray,
                   alpha: float = 0.05) -> float:
    """Share of simulated comparisons a t-test on per-seed means (eval seeds averaged) rejects."""
    ma, mb = a.mean(axis=-1), b.mean(axis=-1)
    test = sps.ttest_rel if model.paired else sps.ttest_ind
    return float(np.mean(test(ma, mb, axis=-1).pvalue < alpha))


def _mc_tol(p: float, n: int) -> float:
    return MC_SE_MULT * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------------------------------
# closed forms
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("paired, delta, expected", [
    (False, 1.0, 17), (False, 0.5, 64), (True, 0.5, 34), (True, 1.0, 10)])
def test_required_n_textbook_values(paired, delta, expected):
    # sigma = 1, no eval noise: the standard t-test sample sizes (Cohen's d = delta), e.g. 64 per
    # group for d = 0.5 two-sample and 34 pairs for d = 0.5 paired at 80 % power, alpha .05
    m = power.PowerModel(paired, 1.0, 0.0, "test")
    n = power.required_n_train(m, delta, n_eval=1)
    assert n == expected
    assert power.mde(m, n, 1) <= delta < power.mde(m, n - 1, 1)
    assert power.exact_power(m, delta, n, 1) >= 0.80 > power.exact_power(m, delta, n - 1, 1)


def test_normal_approximation_closed_form():
    sd_t, sd_e, n_e, delta = 0.4, 0.3, 5, 0.5
    c = power.NestedComponents(sd_t ** 2, sd_e ** 2, 10, n_e, "test")
    un, pa = power.unpaired_model(c), power.paired_model_assumed(c, rho=0.0)
    per_seed_var = sd_t ** 2 + sd_e ** 2 / n_e
    # n = 2 ((z_{a/2} + z_b) sigma / Delta)^2 with sigma^2 the per-seed variance
    assert power.normal_n_train(un, delta, n_e) == pytest.approx(2 * (Z * math.sqrt(per_seed_var)
                                                                      / delta) ** 2)
    # rho = 0: the paired difference has the same SE as the unpaired one
    assert power.normal_n_train(pa, delta, n_e) == pytest.approx(power.normal_n_train(un, delta,
                                                                                      n_e))
    assert power.mde_normal(un, 10, n_e) == pytest.approx(Z * math.sqrt(2 * per_seed_var / 10))
    # ... but half the degrees of freedom, so it never needs fewer training seeds
    assert power.required_n_train(pa, delta, n_e) >= power.required_n_train(un, delta, n_e)
    # rho = 1: only the eval noise is left in the paired difference
    p1 = power.paired_model_assumed(c, rho=1.0)
    assert p1.var_train == 0.0 and p1.var_eval == pytest.approx(2 * sd_e ** 2)


def test_exact_power_is_noncentral_t():
    m = power.PowerModel(False, 0.3, 0.2, "test")
    n_t, n_e, delta = 6, 3, 0.7
    se = math.sqrt(2 * (0.3 / n_t + 0.2 / (n_t * n_e)))
    df, crit = 2 * (n_t - 1), sps.t.ppf(0.975, 2 * (n_t - 1))
    expect = sps.nct.sf(crit, df, delta / se) + sps.nct.cdf(-crit, df, delta / se)
    assert power.exact_power(m, delta, n_t, n_e) == pytest.approx(expect, rel=1e-12)
    assert power.exact_power(m, 0.0, n_t, n_e) == pytest.approx(0.05)  # size of the test
    assert power.mde(m, n_t, n_e) == pytest.approx(
        (sps.t.ppf(0.975, df) + sps.t.ppf(0.8, df)) * se)


def test_formula_edge_cases():
    m = power.PowerModel(True, 0.0, 0.0, "no noise")
    assert power.required_n_train(m, 0.1, 1) == 2 and power.exact_power(m, 0.1, 2, 1) == 1.0
    assert math.isnan(float(power.critical_sum(0)))
    assert math.isnan(float(power.mde(power.PowerModel(False, 1, 0, ""), 1, 1)))
    with pytest.raises(ValueError):
        power.required_n_train(m, 0.0, 1)
    huge = power.PowerModel(False, 100.0, 0.0, "")
    assert power.required_n_train(huge, 0.01, 1) is None  # > N_TRAIN_MAX: not feasible
    with pytest.raises(ValueError):
        power.PowerOptions(deltas=(0.5, -1.0))
    with pytest.raises(ValueError):
        power.PowerOptions(target_halfwidth=0.0)


def test_halfwidth_and_cheapest_design_brute_force():
    vt, ve, target = 0.16, 0.09, 0.25
    n_t_grid = np.arange(2, 400)[:, None]
    n_e_grid = np.arange(1, 65)[None, :]
    width = power.ci_halfwidth(vt, ve, n_t_grid, n_e_grid)
    for n_e in (1, 3, 64):
        n = power.required_n_train_for_halfwidth(vt, ve, target, n_e)
        assert width[n - 2, n_e - 1] <= target < width[n - 3, n_e - 1]
    costs = power.Costs(1.0, 0.02, "runs", "test")
    best, per_eval = power.cheapest_design(
        lambda n_e: power.required_n_train_for_halfwidth(vt, ve, target, n_e),
        lambda n_t, n_e: float(power.ci_halfwidth(vt, ve, n_t, n_e)), costs)
    cost = np.where(width <= target, n_t_grid * (1.0 + n_e_grid * 0.02), np.inf)
    i, j = np.unravel_index(np.argmin(cost), cost.shape)
    assert (best.n_train, best.n_eval) == (i + 2, j + 1)
    assert best.cost == pytest.approx(cost.min()) and len(per_eval) == 64
    # free evaluations: as many eval seeds as help (ties go to fewer evaluations in total)
    free, _ = power.cheapest_design(
        lambda n_e: power.required_n_train_for_halfwidth(vt, ve, target, n_e),
        lambda n_t, n_e: 0.0, power.Costs(1.0, 0.0, "runs", "test"))
    n_min = min(power.required_n_train_for_halfwidth(vt, ve, target, k) for k in range(1, 65))
    assert free.n_train == n_min
    assert free.n_eval == min(k for k in range(1, 65)
                              if power.required_n_train_for_halfwidth(vt, ve, target, k) == n_min)
    # no eval noise: extra eval seeds only cost
    none, _ = power.cheapest_design(
        lambda n_e: power.required_n_train_for_halfwidth(vt, 0.0, target, n_e),
        lambda n_t, n_e: 0.0, costs)
    assert none.n_eval == 1


def test_resolve_costs():
    measured = power.resolve_costs(None, None, 7200.0, 36.0)
    assert (measured.train, measured.eval, measured.unit) == (2.0, 0.01, "wall-clock hours")
    default = power.resolve_costs(None, None, None, 36.0)
    assert (default.train, default.eval) == (power.DEFAULT_TRAIN_COST, power.DEFAULT_EVAL_COST)
    given = power.resolve_costs(96.0, 0.5, 7200.0, 36.0)
    assert (given.train, given.eval, given.notes) == (96.0, 0.5, [])
    half = power.resolve_costs(96.0, None, 7200.0, 36.0)
    assert half.eval == power.DEFAULT_EVAL_COST and "--eval-cost" in half.notes[0]


def test_components_without_nested_design():
    # one eval per checkpoint: the whole spread is train-seed variance unless a checkpoint-only
    # sweep measured the eval-seed part
    c = power.components_from_spread(0.5, 5)
    assert (c.var_train, c.var_eval, c.n_train, c.n_eval) == (0.25, 0.0, 5, 1) and c.notes
    split = power.components_from_spread(0.5, 5, eval_var=0.09)
    assert (split.var_train, split.var_eval) == pytest.approx((0.16, 0.09))
    assert power.components_from_spread(0.2, 5, eval_var=0.09).var_train == 0.0  # clamped
    d = stats.variance_decomposition([[1.0, 2.0, 2.5], [3.0, 5.0, 4.0], [6.0, 5.5, 7.0]])
    nested = power.components_from_decomposition(d)
    assert (nested.var_train, nested.var_eval, nested.n_train, nested.n_eval) == (
        d.var_between, d.var_within, 3, 3)


def test_paired_model_from_deltas_and_tables():
    d = [0.1, 0.5, -0.2, 0.4]
    m = power.paired_model_from_deltas(d, var_eval_one_arm=0.01)
    assert m.var_eval == pytest.approx(0.02)
    assert m.var_train == pytest.approx(np.var(d, ddof=1) - 0.02)
    assert power.paired_model_from_deltas([0.3], 0.01) is None
    a = {0: {0: 50.0, 1: 50.4}, 1: {0: 49.0, 1: 49.2}, 2: {0: 51.0}}
    b = {"0": {0: 49.5, 1: 50.1}, "1": {0: 49.4, 1: 49.4}, "2": {1: 50.0}}
    t = power.paired_model_from_tables(a, b)
    ref = stats.variance_decomposition({0: [0.5, 0.3], 1: [-0.4, -0.2]})  # seed 2: no common cell
    assert ref.var_between > 0
    assert (t.var_train, t.var_eval) == pytest.approx((ref.var_between, ref.var_within))
    assert power.paired_model_from_tables({0: {0: 1.0}, 1: {0: 2.0}},
                                          {0: {0: 1.0}, 1: {0: 1.5}}) is None


# ------------------------------------------------------------------------------------------------
# simulation check of the report's estimators
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_train, n_eval, sd_train, sd_eval", [
    (3, 2, 0.5, 0.3), (3, 5, 0.4, 0.4), (10, 2, 0.4, 0.3), (10, 5, 0.5, 0.2), (10, 3, 0.1, 0.5)])
def test_variance_decomposition_unbiased_by_simulation(n_train, n_eval, sd_train, sd_eval):
    r = decomposition_bias(n_train, n_eval, sd_train, sd_eval)
    assert abs(r["mean_within"] - sd_eval ** 2) <= MC_SE_MULT * r["se_within"]
    assert abs(r["mean_between_raw"] - sd_train ** 2) <= MC_SE_MULT * r["se_between"]
    # the spread of the estimates is what the chi-square theory says, within 4 SE of a sample SD
    # (relative SE sqrt((kurtosis - 1) / 4N), kurtosis of chi2_df / df = 3 + 12 / df)
    df_w = n_train * (n_eval - 1)
    rel_se = math.sqrt((2 + 12 / df_w) / (4 * 400))
    assert r["sd_within_emp"] == pytest.approx(r["sd_within_theory"], rel=MC_SE_MULT * rel_se)
    # clamping at 0 (what the power analysis plans with) can only raise the mean
    assert r["mean_between_clamped"] >= r["mean_between_raw"] - 1e-12


def test_one_eval_seed_cannot_be_decomposed():
    y = simulate_sweeps(np.random.default_rng(5), 1, 10, 1, 0.4, 0.3)[0]
    with pytest.raises(ValueError, match="eval-seed variance cannot be estimated"):
        stats.variance_decomposition(y)


# Measured with 4000 sweeps (seed 11): BCa 0.717 / 0.846 / 0.894 for n = 3 / 5 / 10 training seeds;
# the bands are about +-4 Monte Carlo SE (400 sweeps here) around those values.
@pytest.mark.parametrize("n_train, boot_band", [(3, (0.62, 0.81)), (5, (0.77, 0.92)),
                                                (10, (0.83, 0.95))])
def test_ci_coverage_by_simulation(n_train, boot_band):
    r = ci_coverage(n_train)
    assert r["methods"] == ["BCa bootstrap"]
    assert abs(r["t"] - 0.95) <= _mc_tol(0.95, 400)  # exact for normal data
    assert boot_band[0] <= r["boot"] <= boot_band[1]
    assert r["boot"] < r["t"]  # the bootstrap under-covers with few seeds, as the report says


@pytest.mark.parametrize("paired, n_train, n_eval, sd_train, sd_eval, rho, delta", [
    (False, 3, 2, 0.4, 0.3, 0.0, 1.0), (False, 10, 5, 0.4, 0.3, 0.0, 0.5),
    (False, 5, 1, 0.5, 0.3, 0.0, 0.8), (False, 10, 1, 0.4, 0.3, 0.0, 0.0),
    (True, 10, 3, 0.5, 0.3, 0.5, 0.4), (True, 3, 4, 0.5, 0.2, 0.8, 0.6)])
def test_power_matches_simulated_t_test(paired, n_train, n_eval, sd_train, sd_eval, rho, delta):
    n_sims = 4000
    rng = np.random.default_rng(1000 + n_train * 10 + n_eval)
    # unpaired = rho 0: the arms' training effects are then independent draws
    a, b = simulate_paired(rng, n_sims, n_train, n_eval, sd_train, sd_eval,
                           rho if paired else 0.0, delta)
    c = power.NestedComponents(sd_train ** 2, sd_eval ** 2, n_train, n_eval, "truth")
    model = power.paired_model_assumed(c, rho) if paired else power.unpaired_model(c)
    predicted = power.exact_power(model, delta, n_train, n_eval)  # delta 0: alpha
    assert rejection_rate(model, a, b) == pytest.approx(predicted, abs=_mc_tol(predicted, n_sims))


@pytest.mark.parametrize("paired", [False, True])
def test_required_n_reaches_power_in_simulation(paired):
    sd_t, sd_e, n_e, delta, rho = 0.4, 0.3, 3, 0.5, 0.5
    c = power.NestedComponents(sd_t ** 2, sd_e ** 2, 10, n_e, "truth")
    model = power.paired_model_assumed(c, rho) if paired else power.unpaired_model(c)
    n = power.required_n_train(model, delta, n_e)
    a, b = simulate_paired(np.random.default_rng(77), 4000, n, n_e, sd_t, sd_e,
                           rho if paired else 0.0, delta)
    rate = rejection_rate(model, a, b)
    assert rate >= 0.80 - _mc_tol(0.8, 4000)
    assert rate == pytest.approx(power.exact_power(model, delta, n, n_e),
                                 abs=_mc_tol(0.8, 4000))


def test_paired_components_recovered_by_simulation():
    """The report's paired estimator (nested decomposition of per-cell deltas) is unbiased for
    sigma_td^2 = 2(1-rho) sigma_t^2 and sigma_ed^2 = 2 sigma_e^2."""
    n_sweeps, n_t, n_e, sd_t, sd_e, rho = 400, 10, 3, 0.5, 0.3, 0.5
    a, b = simulate_paired(np.random.default_rng(9), n_sweeps, n_t, n_e, sd_t, sd_e, rho, 0.3)
    models = [power.paired_model_from_tables({i: dict(enumerate(r)) for i, r in enumerate(x)},
                                             {i: dict(enumerate(r)) for i, r in enumerate(y)})
              for x, y in zip(a, b)]
    v_td, v_ed = 2 * (1 - rho) * sd_t ** 2, 2 * sd_e ** 2
    se_w = v_ed * math.sqrt(2 / (n_t * (n_e - 1))) / math.sqrt(n_sweeps)
    se_b = math.hypot((n_e * v_td + v_ed) * math.sqrt(2 / (n_t - 1)),
                      v_ed * math.sqrt(2 / (n_t * (n_e - 1)))) / n_e / math.sqrt(n_sweeps)
    assert np.mean([m.var_eval for m in models]) == pytest.approx(v_ed, abs=MC_SE_MULT * se_w)
    # clamped at 0 like the report; P(raw < 0) is ~5 % here, a bias far below the tolerance
    assert np.mean([m.var_train for m in models]) == pytest.approx(v_td, abs=MC_SE_MULT * se_b)


# ------------------------------------------------------------------------------------------------
# report integration
# ------------------------------------------------------------------------------------------------
def _write_sweep(root: Path, values: np.ndarray, seconds: float | None = None,
                 time_per_iter: float | None = None) -> Path:
    for seed, row in enumerate(values):
        d = root / f"seed_{seed}"
        d.mkdir(parents=True, exist_ok=True)
        evals = [{"eval_seed": e, "mode": "ss", "mIoU": float(v)} for e, v in enumerate(row)]
        if seconds is not None:
            for ev in evals:
                ev["seconds"] = seconds
        log = None
        if time_per_iter is not None:
            log = "log.json"
            (d / log).write_text("\n".join(json.dumps({"mode": "train", "iter": i, "loss": 1.0,
                                                       "time": time_per_iter})
                                           for i in (100, 200, 300, 400)) + "\n")
        (d / "result.json").write_text(json.dumps({
            "seed": seed, "config": "configs/segnext_mscan-l_ade20k_160k.yaml", "checkpoint": None,
            "final_loss": None, "train_log": log, "eval": evals}))
    return root


def test_report_power_section(tmp_path):
    y = simulate_sweeps(np.random.default_rng(3), 1, 6, 3, 0.4, 0.3)[0]
    sweep = _write_sweep(tmp_path / "a", y, seconds=36.0, time_per_iter=18.0)  # 7200 s training
    other = _write_sweep(tmp_path / "b", y - 0.2 + np.random.default_rng(4).normal(0, 0.2,
                                                                                   y.shape))
    out = tmp_path / "out"
    assert report.main([str(sweep), "--compare", str(other), "--out", str(out),
                        "--power-deltas", "0.4,1", "--target-halfwidth", "0.3"]) == 0
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    p = data["power"]["modes"]["ss"]
    d = stats.variance_decomposition(y)
    assert p["components"]["var_train"] == pytest.approx(d.var_between)
    assert p["components"]["var_eval"] == pytest.approx(d.var_within)
    assert (p["current"]["n_train"], p["current"]["n_eval"]) == (6, 3)
    assert p["costs"]["train"] == pytest.approx(2.0) and p["costs"]["eval"] == pytest.approx(0.01)
    assert p["models"]["paired"]["source"].startswith("measured: decomposition")
    assert {r["delta"] for r in p["sample_size"]} == {0.4, 1.0}
    un = power.PowerModel(False, d.var_between, d.var_within, "")
    row = next(r for r in p["sample_size"] if r["comparison"] == "unpaired" and r["delta"] == 1.0
               and r["n_eval"] == 3)
    assert row["n_train"] == power.required_n_train(un, 1.0, 3)
    assert p["current"]["mde"]["unpaired"]["t"] == pytest.approx(float(power.mde(un, 6, 3)))
    assert p["halfwidth"]["target"] == 0.3 and p["halfwidth"]["best"]["n_train"] >= 2
    assert "## How many seeds?" in md and "power_mde_ss.svg" in data["plots"]
    assert "t(1−α/2, df) + t(0.8, df) ≤ Δ/SE" in md  # the formula is stated
    # explicit costs win over the measured timings; a bad option is a usage error
    assert report.main([str(sweep), "--out", str(tmp_path / "o2"), "--train-cost", "96",
                        "--eval-cost", "0.5"]) == 0
    costs = json.loads((tmp_path / "o2" / "report.json").read_text())["power"]["modes"]["ss"][
        "costs"]
    assert (costs["train"], costs["eval"], costs["source"]) == (96.0, 0.5,
                                                                "command-line arguments")
    with pytest.raises(SystemExit):
        report.main([str(sweep), "--power-deltas", "0.5,x"])
    with pytest.raises(SystemExit):
        report.main([str(sweep), "--target-halfwidth", "-1"])
