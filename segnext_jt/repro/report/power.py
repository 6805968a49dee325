"""Power analysis for nested seed sweeps: how many training seeds x eval seeds a comparison needs.

Model (the one ``stats.variance_decomposition`` estimates): one evaluation is
y_ij = mu + t_i + e_ij with train-seed effect t_i ~ (0, sigma_t^2) and eval-seed noise
e_ij ~ (0, sigma_e^2).
The mean over n_t training seeds, each averaged over n_e eval seeds, has variance

    V(n_t, n_e) = sigma_t^2 / n_t + sigma_e^2 / (n_t n_e).

A comparison of two run-means is a t-test on per-seed means (eval seeds averaged first):

* unpaired (independent seeds in both arms): SE^2 = 2 V(n_t, n_e), df = 2 (n_t - 1);
* paired (same training seeds in both arms): the per-seed difference has its own components
  sigma_td^2 (train part) and sigma_ed^2 (eval part); SE^2 = sigma_td^2 / n_t + sigma_ed^2 /
  (n_t n_e), df = n_t - 1.

Sample size: the smallest n_t with t_{1-alpha/2, df} + t_{power, df} <= Delta / SE(n_t) (df
depends on n_t, so n_t is searched upwards from the normal-approximation answer); the normal
approximation replaces both t quantiles with z quantiles.
MDE = (t_{1-alpha/2,df} + t_{power,df}) SE.
The exact power of the two-sided t-test at a given design uses the noncentral t distribution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
from scipy import stats as sps

from segnext_jt.repro.report.stats import NAN, VarianceDecomposition, _AsDict, variance_decomposition

__all__ = [
    "ALPHA", "POWER", "DEFAULT_DELTAS", "DEFAULT_HALFWIDTH", "DEFAULT_TRAIN_COST",
    "DEFAULT_EVAL_COST", "MAX_EVAL_SEEDS", "N_TRAIN_MAX", "FORMULA_TEXT", "PowerOptions",
    "NestedComponents", "PowerModel", "Costs", "Design", "components_from_decomposition",
    "components_from_spread",
    "unpaired_model", "paired_model_assumed", "paired_model_from_tables",
    "paired_model_from_deltas", "run_mean_variance", "critical_sum", "normal_critical_sum",
    "mde", "mde_normal", "exact_power", "normal_n_train", "required_n_train", "ci_halfwidth",
    "required_n_train_for_halfwidth", "cheapest_design", "resolve_costs", "analyse",
]

ALPHA = 0.05
POWER = 0.80
DEFAULT_DELTAS = (0.5, 1.0)
DEFAULT_HALFWIDTH = 0.25
# One evaluation (a pass over the 2000 ADE20K val images) costs a small fraction of a 160k-iteration
# training run; 2 % is the planning default when the sweep recorded no timings.
DEFAULT_TRAIN_COST = 1.0
DEFAULT_EVAL_COST = 0.02
MAX_EVAL_SEEDS = 64
N_TRAIN_MAX = 100_000  # beyond this the answer is "not feasible", not a number to plan with

FORMULA_TEXT = (
    "V(n_t, n_e) = sigma_t^2/n_t + sigma_e^2/(n_t*n_e) (variance of a run-mean); unpaired: "
    "SE^2 = 2*V, df = 2*(n_t-1); paired: SE^2 = sigma_td^2/n_t + sigma_ed^2/(n_t*n_e), "
    "df = n_t-1; n_t = smallest n with t_{1-alpha/2,df} + t_{power,df} <= Delta/SE(n); "
    "normal approximation n_t = (z_{1-alpha/2}+z_{power})^2 * SE^2(1)/Delta^2; "
    "MDE = (t_{1-alpha/2,df} + t_{power,df}) * SE; CI half-width = t_{0.975,n_t-1} * sqrt(V); "
    "cost = n_t * (train_cost + n_e * eval_cost)")


@dataclass(frozen=True)
class PowerOptions(_AsDict):
    deltas: tuple[float, ...] = DEFAULT_DELTAS
    alpha: float = ALPHA
    power: float = POWER
    target_halfwidth: float = DEFAULT_HALFWIDTH
    ci_level: float = 0.95
    train_cost: Optional[float] = None  # None: measured from the sweep, else DEFAULT_TRAIN_COST
    eval_cost: Optional[float] = None
    paired_rho: float = 0.0  # assumed train-seed correlation between arms without --compare
    max_eval_seeds: int = MAX_EVAL_SEEDS

    def __post_init__(self) -> None:
        if not self.deltas or any(not (d > 0 and math.isfinite(d)) for d in self.deltas):
            raise ValueError(f"power deltas must be positive numbers, got {self.deltas!r}")
        if not 0 < self.alpha < 1 or not 0.5 <= self.power < 1:
            raise ValueError("need 0 < alpha < 1 and 0.5 <= power < 1")
        if not self.target_halfwidth > 0:
            raise ValueError(f"target half-width must be > 0, got {self.target_halfwidth}")
        for name in ("train_cost", "eval_cost"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if not -1.0 <= self.paired_rho <= 1.0:
            raise ValueError(f"paired rho must be in [-1, 1], got {self.paired_rho}")


# ------------------------------------------------------------------------------------------------
# variance components
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NestedComponents(_AsDict):
    var_train: float  # sigma_t^2 (clamped at 0)
    var_eval: float  # sigma_e^2
    n_train: int  # the current design: training seeds ...
    n_eval: int  # ... x eval seeds per training seed (rounded n0 when unbalanced)
    source: str
    notes: list[str] = field(default_factory=list)


def components_from_decomposition(d: VarianceDecomposition) -> NestedComponents:
    """The report's ANOVA estimates; the clamped sigma_t^2 is used (a negative variance cannot be
    planned with)."""
    notes = [] if d.balanced else [f"unbalanced rows: current eval seeds = round(n0 = {d.n0:.2f})"]
    return NestedComponents(var_train=d.var_between, var_eval=d.var_within, n_train=d.n_groups,
                            n_eval=max(1, int(round(d.n0))),
                            source="variance decomposition of this sweep", notes=notes)


def components_from_spread(sd_one_eval: float, n_train: int,
                           eval_var: Optional[float] = None) -> NestedComponents:
    """Fallback without a nested design (one eval per checkpoint): only sigma_t^2 + sigma_e^2 is
    seen. An eval-seed variance from elsewhere (a checkpoint-only sweep) splits it; without one all
    of it is booked as train-seed variance, so extra eval seeds are predicted to help nothing."""
    total = sd_one_eval ** 2
    if eval_var is None:
        return NestedComponents(total, 0.0, n_train, 1, "SD of one evaluation per training seed",
                                ["eval-seed variance not measured: all spread treated as "
                                 "train-seed variance (pessimistic about extra eval seeds)"])
    return NestedComponents(max(total - eval_var, 0.0), eval_var, n_train, 1,
                            "SD of one evaluation per training seed minus the eval-seed variance "
                            "of the checkpoint-only sweep")


@dataclass(frozen=True)
class PowerModel(_AsDict):
    """Variance of an estimated difference between two arms, as a function of the design."""
    paired: bool
    var_train: float  # unpaired: sigma_t^2 of one arm; paired: sigma_td^2 of the difference
    var_eval: float  # unpaired: sigma_e^2 of one arm; paired: sigma_ed^2 of the difference
    source: str

    def se(self, n_train: Any, n_eval: Any) -> Any:
        arms = 1.0 if self.paired else 2.0  # unpaired: two independent run-means
        return np.sqrt(arms * run_mean_variance(self.var_train, self.var_eval, n_train, n_eval))

    def df(self, n_train: Any) -> Any:
        n = np.asarray(n_train, dtype=np.float64)
        return n - 1.0 if self.paired else 2.0 * (n - 1.0)


def unpaired_model(c: NestedComponents) -> PowerModel:
    return PowerModel(False, c.var_train, c.var_eval, c.source)


def paired_model_assumed(c: NestedComponents, rho: float = 0.0) -> PowerModel:
    """Paired difference without a second sweep: train effects correlated rho between arms, eval
    noise independent. rho = 0 gives the unpaired SE (with half the df)."""
    return PowerModel(True, 2.0 * (1.0 - rho) * c.var_train, 2.0 * c.var_eval,
                      f"assumed: train-seed correlation rho = {rho:g} between arms, independent "
                      f"eval noise (sigma_td^2 = 2(1-rho) sigma_t^2, sigma_ed^2 = 2 sigma_e^2)")


def paired_model_from_tables(table_a: Mapping[Any, Mapping[Any, float]],
                             table_b: Mapping[Any, Mapping[Any, float]]) -> Optional[PowerModel]:
    """Nested decomposition of the per-(training seed, eval seed) deltas a - b over common cells:
    the between part is sigma_td^2, the within part sigma_ed^2 (whatever correlation the arms
    share is measured, not assumed). None when the deltas do not form a nested design."""
    deltas = {}
    for seed, row_a in table_a.items():
        row_b = table_b.get(seed, table_b.get(str(seed), {}))
        cells = {e: row_a[e] - row_b[e] for e in row_a if e in row_b}
        if cells:
            deltas[seed] = cells
    if len(deltas) < 2 or not any(len(v) >= 2 for v in deltas.values()):
        return None
    d = variance_decomposition(deltas)
    return PowerModel(True, d.var_between, d.var_within,
                      f"measured: decomposition of per-(training seed, eval seed) deltas over "
                      f"{d.n_groups} common training seeds")


def paired_model_from_deltas(deltas: Sequence[float],
                             var_eval_one_arm: float) -> Optional[PowerModel]:
    """One delta per common training seed (one eval per arm): Var(delta) = sigma_td^2 + sigma_ed^2
    with sigma_ed^2 taken as 2 sigma_e^2 (independent eval noise in both arms)."""
    d = np.asarray(deltas, dtype=np.float64)
    if d.size < 2:
        return None
    var_ed = 2.0 * var_eval_one_arm
    return PowerModel(True, max(float(d.var(ddof=1)) - var_ed, 0.0), var_ed,
                      f"measured: SD of {d.size} per-seed deltas (one eval each), eval noise "
                      f"assumed independent between arms")


# ------------------------------------------------------------------------------------------------
# formulas
# ------------------------------------------------------------------------------------------------
def run_mean_variance(var_train: float, var_eval: float, n_train: Any, n_eval: Any) -> Any:
    """V(n_t, n_e) = sigma_t^2 / n_t + sigma_e^2 / (n_t n_e); broadcasts over arrays."""
    n_t = np.asarray(n_train, dtype=np.float64)
    return var_train / n_t + var_eval / (n_t * np.asarray(n_eval, dtype=np.float64))


def critical_sum(df: Any, alpha: float = ALPHA, power: float = POWER) -> Any:
    """t_{1-alpha/2, df} + t_{power, df}; NaN where df < 1 (no test possible)."""
    df = np.asarray(df, dtype=np.float64)
    ok = df >= 1
    safe = np.where(ok, df, 1.0)
    out = sps.t.ppf(1 - alpha / 2, safe) + sps.t.ppf(power, safe)
    return np.where(ok, out, NAN)


def normal_critical_sum(alpha: float = ALPHA, power: float = POWER) -> float:
    return float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))


def mde(model: PowerModel, n_train: Any, n_eval: Any, alpha: float = ALPHA,
        power: float = POWER) -> Any:
    """Smallest true difference detected with the given power (t-based)."""
    return critical_sum(model.df(n_train), alpha, power) * model.se(n_train, n_eval)


def mde_normal(model: PowerModel, n_train: Any, n_eval: Any, alpha: float = ALPHA,
               power: float = POWER) -> Any:
    return normal_critical_sum(alpha, power) * model.se(n_train, n_eval)


def exact_power(model: PowerModel, delta: float, n_train: int, n_eval: int,
                alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test: P(|T| > t_crit), T ~ noncentral t(df, Delta / SE)."""
    df = float(model.df(n_train))
    if df < 1:
        return NAN
    se = float(model.se(n_train, n_eval))
    if se == 0:
        return 1.0 if delta != 0 else alpha
    crit = sps.t.ppf(1 - alpha / 2, df)
    ncp = delta / se
    return float(sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp))


def normal_n_train(model: PowerModel, delta: float, n_eval: int, alpha: float = ALPHA,
                   power: float = POWER) -> float:
    """Normal approximation (continuous): (z_{1-a/2} + z_power)^2 SE(1, n_e)^2 / Delta^2."""
    return normal_critical_sum(alpha, power) ** 2 * float(model.se(1, n_eval)) ** 2 / delta ** 2


def _search_up(start: int, ok: Callable[[int], bool], n_max: int) -> Optional[int]:
    for n in range(start, n_max + 1):
        if ok(n):
            return n
    return None


def required_n_train(model: PowerModel, delta: float, n_eval: int, alpha: float = ALPHA,
                     power: float = POWER, n_max: int = N_TRAIN_MAX) -> Optional[int]:
    """Smallest n_t >= 2 with t_{1-a/2,df} + t_{power,df} <= Delta / SE(n_t, n_e); None past n_max.

    For power >= 0.5 both t quantiles exceed their normal counterparts, so the answer is never
    below the normal approximation: start there and step up (a few steps at most)."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    start = max(2, math.ceil(normal_n_train(model, delta, n_eval, alpha, power) - 1e-9))
    if start > n_max:
        return None
    return _search_up(start, lambda n: float(mde(model, n, n_eval, alpha, power)) <= delta, n_max)


def ci_halfwidth(var_train: float, var_eval: float, n_train: Any, n_eval: Any,
                 level: float = 0.95) -> Any:
    """Expected-size half-width of the t-interval of a run-mean: t_{(1+level)/2, n_t-1} sqrt(V)."""
    n_t = np.asarray(n_train, dtype=np.float64)
    t = np.where(n_t >= 2, sps.t.ppf(0.5 + level / 2, np.maximum(n_t - 1, 1)), NAN)
    return t * np.sqrt(run_mean_variance(var_train, var_eval, n_t, n_eval))


def required_n_train_for_halfwidth(var_train: float, var_eval: float, target: float, n_eval: int,
                                   level: float = 0.95,
                                   n_max: int = N_TRAIN_MAX) -> Optional[int]:
    """Smallest n_t >= 2 whose t-interval half-width is <= target (searched up from the normal
    answer z^2 V(1, n_e) / target^2, which can only be lower)."""
    if not target > 0:
        raise ValueError(f"target half-width must be > 0, got {target}")
    z = sps.norm.ppf(0.5 + level / 2)
    start = max(2, math.ceil(z * z * float(run_mean_variance(var_train, var_eval, 1, n_eval))
                             / target ** 2 - 1e-9))
    if start > n_max:
        return None
    return _search_up(start, lambda n: float(ci_halfwidth(var_train, var_eval, n, n_eval, level))
                      <= target, n_max)


# ------------------------------------------------------------------------------------------------
# cost and the cheapest design
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Costs(_AsDict):
    train: float  # one training run
    eval: float  # one evaluation of one checkpoint with one eval seed
    unit: str
    source: str
    notes: list[str] = field(default_factory=list)

    def of(self, n_train: int, n_eval: int) -> float:
        return n_train * (self.train + n_eval * self.eval)


def resolve_costs(train_arg: Optional[float], eval_arg: Optional[float],
                  measured_train: Optional[float], measured_eval: Optional[float]) -> Costs:
    """Arguments win; the sweep's own timings are used only when neither argument is given and
    both are measured (mixing a measured number with a guessed one would mix units)."""
    if train_arg is None and eval_arg is None:
        if measured_train is not None and measured_eval is not None and measured_train > 0:
            return Costs(measured_train / 3600.0, measured_eval / 3600.0, "wall-clock hours",
                         "measured: median training time per seed from the train logs "
                         "(iterations only) and median 'seconds' per evaluation in result.json")
        return Costs(DEFAULT_TRAIN_COST, DEFAULT_EVAL_COST, "training runs",
                     f"defaults (train {DEFAULT_TRAIN_COST:g}, eval {DEFAULT_EVAL_COST:g}): the "
                     "sweep has no usable timings; set --train-cost/--eval-cost")
    notes = []
    if train_arg is None or eval_arg is None:
        missing = "--train-cost" if train_arg is None else "--eval-cost"
        notes.append(f"{missing} not given: its default is used, which is only right if the "
                     "given cost is in training-run units")
    return Costs(DEFAULT_TRAIN_COST if train_arg is None else train_arg,
                 DEFAULT_EVAL_COST if eval_arg is None else eval_arg,
                 "as given", "command-line arguments", notes)


@dataclass(frozen=True)
class Design(_AsDict):
    n_train: Optional[int]  # None: more than N_TRAIN_MAX training seeds would be needed
    n_eval: int
    cost: float  # per arm
    value: float  # the achieved half-width or MDE


def cheapest_design(n_train_for: Callable[[int], Optional[int]],
                    value_of: Callable[[int, int], float], costs: Costs,
                    max_eval: int = MAX_EVAL_SEEDS) -> tuple[Optional[Design], list[Design]]:
    """For each n_e in 1..max_eval take the smallest sufficient n_t, then the cheapest pair.
    Ties (e.g. free evaluations) go to fewer evaluations in total, then fewer eval seeds."""
    per_eval: list[Design] = []
    for n_e in range(1, max_eval + 1):
        n_t = n_train_for(n_e)
        per_eval.append(Design(n_t, n_e, costs.of(n_t, n_e) if n_t else NAN,
                               value_of(n_t, n_e) if n_t else NAN))
    feasible = [d for d in per_eval if d.n_train is not None]
    if not feasible:
        return None, per_eval
    best = min(feasible, key=lambda d: (round(d.cost, 9), d.n_train * d.n_eval, d.n_eval))
    return best, per_eval


# ------------------------------------------------------------------------------------------------
# the whole analysis for one evaluation protocol (JSON-ready; the report renders it)
# ------------------------------------------------------------------------------------------------
def _eval_choices(current: int, best: Optional[int], max_eval: int) -> list[int]:
    picks = {1, 2, 3, 5, 10, 20, max_eval, current} | ({best} if best else set())
    return sorted(n for n in picks if 1 <= n <= max_eval)


def _sample_sizes(model: PowerModel, kind: str, c: NestedComponents, opts: PowerOptions,
                  costs: Costs) -> list[dict[str, Any]]:
    """Rows: each Delta at one eval seed, at the current eval seeds, and at the cheapest n_e."""
    rows = []
    for delta in opts.deltas:
        def need(n_e: int, delta: float = delta) -> Optional[int]:
            return required_n_train(model, delta, n_e, opts.alpha, opts.power)
        best, _ = cheapest_design(need, lambda n_t, n_e: float(mde(model, n_t, n_e, opts.alpha,
                                                                   opts.power)),
                                  costs, opts.max_eval_seeds)
        choices = sorted({1, c.n_eval} | ({best.n_eval} if best else set()))
        for n_e in choices:
            n_t = need(n_e)
            rows.append({
                "delta": delta, "comparison": kind, "n_eval": n_e, "n_train": n_t,
                "n_train_normal": max(2, math.ceil(normal_n_train(model, delta, n_e, opts.alpha,
                                                                  opts.power) - 1e-9)),
                "n_train_normal_exact": normal_n_train(model, delta, n_e, opts.alpha, opts.power),
                "achieved_power": exact_power(model, delta, n_t, n_e, opts.alpha) if n_t else NAN,
                "cost_per_arm": costs.of(n_t, n_e) if n_t else NAN,
                "cheapest": best is not None and n_e == best.n_eval,
                "current_n_eval": n_e == c.n_eval})
    return rows


def _current(c: NestedComponents, models: Mapping[str, PowerModel],
             opts: PowerOptions) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_train": c.n_train, "n_eval": c.n_eval,
        "se_run_mean": math.sqrt(float(run_mean_variance(c.var_train, c.var_eval, c.n_train,
                                                         c.n_eval))),
        "ci_halfwidth": float(ci_halfwidth(c.var_train, c.var_eval, c.n_train, c.n_eval,
                                           opts.ci_level)),
        "mde": {}}
    for kind, m in models.items():
        out["mde"][kind] = {
            "t": float(mde(m, c.n_train, c.n_eval, opts.alpha, opts.power)),
            "normal": float(mde_normal(m, c.n_train, c.n_eval, opts.alpha, opts.power)),
            "t_one_eval": float(mde(m, c.n_train, 1, opts.alpha, opts.power))}
    return out


def _halfwidth_plan(c: NestedComponents, opts: PowerOptions, costs: Costs) -> dict[str, Any]:
    def need(n_e: int) -> Optional[int]:
        return required_n_train_for_halfwidth(c.var_train, c.var_eval, opts.target_halfwidth,
                                              n_e, opts.ci_level)

    def width(n_t: int, n_e: int) -> float:
        return float(ci_halfwidth(c.var_train, c.var_eval, n_t, n_e, opts.ci_level))

    best, per_eval = cheapest_design(need, width, costs, opts.max_eval_seeds)
    show = _eval_choices(c.n_eval, best.n_eval if best else None, opts.max_eval_seeds)
    return {"target": opts.target_halfwidth, "level": opts.ci_level, "best": best,
            "by_n_eval": [d for d in per_eval if d.n_eval in show]}


def analyse(c: NestedComponents, paired: PowerModel, opts: PowerOptions,
            costs: Costs) -> dict[str, Any]:
    """Everything the "How many seeds?" section shows for one evaluation protocol."""
    models = {"unpaired": unpaired_model(c), "paired": paired}
    return {
        "components": c, "sd_train": math.sqrt(c.var_train), "sd_eval": math.sqrt(c.var_eval),
        "models": models, "current": _current(c, models, opts),
        "sample_size": [row for kind, m in models.items()
                        for row in _sample_sizes(m, kind, c, opts, costs)],
        "halfwidth": _halfwidth_plan(c, opts, costs), "costs": costs}
