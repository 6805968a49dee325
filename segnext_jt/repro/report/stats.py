"""Statistics for seed sweeps: summaries, where a reference number falls, the train-seed / eval-seed
variance split, and paired comparisons between two sweeps.

Everything returns frozen dataclasses (``.as_dict()`` gives dicts; segnext_jt.files.json_safe
makes them strict JSON). Random resampling
uses fixed seeds so that a report regenerated from the same inputs is byte-identical.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Hashable, Mapping, Optional, Sequence, Union

import numpy as np
from scipy import stats as sps

__all__ = [
    "BOOTSTRAP_SEED", "Summary", "ReferencePosition", "VarianceDecomposition",
    "PairedComparison", "summary", "bootstrap_ci", "t_interval", "interquartile_mean",
    "reference_position", "variance_decomposition", "paired_comparison",
    "NestedDecomposition", "nested_variance_decomposition",
]

# Fixed resampling seed: reproducible reports (the CI is a property of the data, not of the run).
BOOTSTRAP_SEED = 0
N_RESAMPLES = 9999
NAN = math.nan


class _AsDict:
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


def _as_values(values: Sequence[float] | np.ndarray, what: str = "values") -> np.ndarray:
    """1-D float64 array of finite numbers; anything else is a caller bug worth a clear error."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{what}: non-finite value {arr[bad[0]]!r} at position {int(bad[0])} "
                         f"(drop missing seeds before calling)")
    return arr


# ------------------------------------------------------------------------------------------------
# confidence intervals
# ------------------------------------------------------------------------------------------------
def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean: mean ± t_{(1+level)/2, n-1} · s / sqrt(n). NaN for n < 2."""
    x = _as_values(values)
    n = x.size
    if n < 2:
        return NAN, NAN
    half = sps.t.ppf(0.5 + level / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n)
    mean = float(x.mean())
    return mean - float(half), mean + float(half)


def bootstrap_ci(values: Sequence[float] | np.ndarray,
                 statistic: Callable[..., Any] = np.mean, level: float = 0.95,
                 method: str = "BCa", seed: int = BOOTSTRAP_SEED,
                 n_resamples: int = N_RESAMPLES) -> tuple[float, float, str, Optional[str]]:
    """Bootstrap CI of ``statistic`` (``scipy.stats.bootstrap``, fixed seed).

    Returns (low, high, method_used, note). n < 3 gives NaN (a resampling distribution from two
    points is meaningless); identical values give the degenerate interval [v, v]; if BCa fails
    (NaN, e.g. with heavy ties) it falls back to the percentile method and says so.
    """
    x = _as_values(values)
    if x.size < 3:
        return NAN, NAN, "none", f"n={x.size} < 3: no bootstrap CI"
    if np.all(x == x[0]):
        v = float(statistic(x))
        return v, v, "degenerate", "all values identical: zero-width interval"
    for meth in ([method, "percentile"] if method != "percentile" else ["percentile"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning etc.: judged below instead
            res = sps.bootstrap((x,), statistic, n_resamples=n_resamples, confidence_level=level,
                                method=meth, rng=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            note = None if meth == method else f"{method} failed; percentile bootstrap used"
            return lo, hi, f"{meth} bootstrap", note
    return NAN, NAN, "none", "bootstrap failed"


def interquartile_mean(values: Sequence[float] | np.ndarray) -> float:
    """Mean of the middle 50 %: ``scipy.stats.trim_mean(x, 0.25)``.

    Precisely: sort, drop floor(0.25·n) values at each end, average the rest. For n < 4 nothing is
    dropped (plain mean); n = 5 averages the middle 3; n = 8 the middle 4.
    """
    x = _as_values(values)
    return float(sps.trim_mean(x, 0.25)) if x.size else NAN


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary(_AsDict):
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    median: float
    min: float
    max: float
    range: float
    iqm: float  # interquartile mean, see interquartile_mean()
    ci_level: float
    ci_low: float  # bootstrap CI of the mean
    ci_high: float
    ci_method: str
    t_ci_low: float  # Student-t CI of the mean (the bootstrap is too narrow for n ~ 5)
    t_ci_high: float
    notes: list[str] = field(default_factory=list)


def summary(values: Sequence[float] | np.ndarray, level: float = 0.95,
            seed: int = BOOTSTRAP_SEED) -> Summary:
    """Descriptive statistics of per-seed results (e.g. mIoU in %)."""
    x = _as_values(values)
    n = int(x.size)
    if n == 0:
        return Summary(0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, level, NAN, NAN, "none", NAN, NAN,
                       ["no values"])
    notes: list[str] = []
    lo, hi, method, note = bootstrap_ci(x, level=level, seed=seed)
    if note:
        notes.append(note)
    t_lo, t_hi = t_interval(x, level)
    if n < 2:
        notes.append("n=1: no spread statistics")
    return Summary(
        n=n, mean=float(x.mean()), std=float(x.std(ddof=1)) if n > 1 else NAN,
        median=float(np.median(x)), min=float(x.min()), max=float(x.max()),
        range=float(x.max() - x.min()), iqm=interquartile_mean(x), ci_level=level,
        ci_low=lo, ci_high=hi, ci_method=method, t_ci_low=t_lo, t_ci_high=t_hi, notes=notes)


# ------------------------------------------------------------------------------------------------
# reference position
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferencePosition(_AsDict):
    reference: float
    n: int
    percentile: float  # percentileofscore(values, reference, kind='mean'), 0..100
    n_below: int
    n_equal: int
    n_above: int
    observed_min: float
    observed_max: float
    inside_observed_range: bool  # observed_min <= reference <= observed_max
    delta_mean: float  # mean(values) - reference
    z: float  # (reference - mean) / std, NaN for n < 2 or std 0
    reference_range: Optional[tuple[float, float]]
    ranges_overlap: Optional[bool]  # [min, max] intersects reference_range
    n_inside_reference_range: Optional[int]


def reference_position(values: Sequence[float] | np.ndarray, ref: float,
                       ref_range: Optional[Sequence[float]] = None) -> ReferencePosition:
    """Where a reported number sits among our per-seed results."""
    x = _as_values(values)
    if x.size == 0:
        raise ValueError("reference_position: no values")
    ref = float(ref)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else NAN
    rr: Optional[tuple[float, float]] = None
    overlap: Optional[bool] = None
    n_in: Optional[int] = None
    if ref_range is not None:
        if len(ref_range) != 2:
            raise ValueError(f"reference_position: ref_range needs 2 numbers, got {ref_range!r}")
        lo, hi = sorted(float(v) for v in ref_range)
        rr = (lo, hi)
        overlap = bool(max(x.min(), lo) <= min(x.max(), hi))
        n_in = int(((x >= lo) & (x <= hi)).sum())
    return ReferencePosition(
        reference=ref, n=int(x.size),
        percentile=float(sps.percentileofscore(x, ref, kind="mean")),
        n_below=int((x < ref).sum()), n_equal=int((x == ref).sum()), n_above=int((x > ref).sum()),
        observed_min=float(x.min()), observed_max=float(x.max()),
        inside_observed_range=bool(x.min() <= ref <= x.max()),
        delta_mean=mean - ref,
        z=(ref - mean) / std if std > 0 else NAN,
        reference_range=rr, ranges_overlap=overlap, n_inside_reference_range=n_in)


# ------------------------------------------------------------------------------------------------
# variance decomposition (training seed vs evaluation seed)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VarianceDecomposition(_AsDict):
    n_groups: int  # training seeds with at least one value
    n_total: int  # cells with a value
    group_sizes: dict[str, int]
    balanced: bool
    n0: float  # effective group size (= n when balanced)
    grand_mean: float
    group_means: dict[str, float]
    ss_between: float
    ss_within: float
    df_between: int
    df_within: int
    ms_between: float
    ms_within: float
    var_within: float  # eval-seed variance sigma_e^2 = MS_within
    var_between_raw: float  # (MS_between - MS_within) / n0, may be negative
    var_between: float  # clamped at 0: training-seed variance sigma_t^2
    var_total: float  # sigma_t^2 + sigma_e^2: variance of one (train seed, eval seed) result
    share_within: float
    share_between: float
    icc: float  # sigma_t^2 / (sigma_t^2 + sigma_e^2)
    sd_within: float
    sd_between: float
    f_stat: float
    p_value: float  # H0: sigma_t^2 = 0
    notes: list[str] = field(default_factory=list)


TableLike = Union[Mapping[Hashable, Mapping[Hashable, float]], Mapping[Hashable, Sequence[float]],
                  Sequence[Sequence[float]], np.ndarray]


def _groups_from_table(table: TableLike) -> dict[str, np.ndarray]:
    """Rows (training seeds) -> finite values (one per evaluation seed); NaN/None = missing cell."""
    if isinstance(table, Mapping):
        items = [(str(k), list(v.values()) if isinstance(v, Mapping) else list(v))
                 for k, v in table.items()]
    else:
        arr = np.asarray(table, dtype=object)
        if arr.ndim != 2:
            raise ValueError(f"variance_decomposition: table must be 2-D (rows = training seeds, "
                             f"columns = eval seeds), got {arr.ndim}-D")
        items = [(str(i), list(row)) for i, row in enumerate(arr)]
    groups: dict[str, np.ndarray] = {}
    for key, row in items:
        vals = np.asarray([NAN if v is None else float(v) for v in row], dtype=np.float64)
        if np.isinf(vals).any():
            raise ValueError(f"variance_decomposition: infinite value in row {key}")
        vals = vals[np.isfinite(vals)]
        if vals.size:
            groups[key] = vals
    return groups


def variance_decomposition(table: TableLike) -> VarianceDecomposition:
    """One-way random-effects ANOVA of a nested design: y_ij = mu + t_i + e_ij.

    Rows are training seeds (random effect t_i, variance sigma_t^2) and the cells of a row are
    evaluations of that checkpoint with different eval (NMF) seeds (e_ij, variance sigma_e^2).
    Method-of-moments (ANOVA) estimates, valid for unbalanced rows too:
    sigma_e^2 = MS_within, sigma_t^2 = (MS_between - MS_within) / n0 with
    n0 = (N - sum n_i^2 / N) / (a - 1). Missing cells (NaN/None) are dropped; a row with a single
    value still informs the between-seed part. Needs >= 2 rows and >= 1 within-row degree of
    freedom (some training seed evaluated with >= 2 eval seeds).
    """
    groups = _groups_from_table(table)
    a = len(groups)
    sizes = {k: int(v.size) for k, v in groups.items()}
    n_total = sum(sizes.values())
    if a < 2:
        raise ValueError(f"variance_decomposition: needs >= 2 training seeds with values, got {a}")
    df_w = n_total - a
    if df_w < 1:
        raise ValueError("variance_decomposition: no training seed has >= 2 eval-seed values, "
                         "so the eval-seed variance cannot be estimated")
    notes: list[str] = []
    balanced = len(set(sizes.values())) == 1
    if not balanced:
        notes.append("unbalanced rows: method-of-moments estimate with effective size n0")
    if any(s == 1 for s in sizes.values()):
        notes.append("some training seeds have a single eval value (between part only)")

    all_vals = np.concatenate(list(groups.values()))
    grand = float(all_vals.mean())
    means = {k: float(v.mean()) for k, v in groups.items()}
    ss_b = float(sum(sizes[k] * (means[k] - grand) ** 2 for k in groups))
    ss_w = float(sum(((v - means[k]) ** 2).sum() for k, v in groups.items()))
    df_b = a - 1
    ms_b, ms_w = ss_b / df_b, ss_w / df_w
    n0 = (n_total - sum(s * s for s in sizes.values()) / n_total) / df_b
    var_b_raw = (ms_b - ms_w) / n0
    var_b = max(var_b_raw, 0.0)
    if var_b_raw < 0:
        notes.append("between-seed estimate negative (training-seed variance indistinguishable "
                     "from eval noise); clamped to 0")
    var_w = ms_w
    total = var_b + var_w
    if ms_w > 0:
        f_stat = ms_b / ms_w
        p = float(sps.f.sf(f_stat, df_b, df_w))
    else:
        f_stat, p = (math.inf, 0.0) if ms_b > 0 else (NAN, NAN)
        notes.append("zero within-seed variance: eval seeds change nothing")
    return VarianceDecomposition(
        n_groups=a, n_total=n_total, group_sizes=sizes, balanced=balanced, n0=float(n0),
        grand_mean=grand, group_means=means, ss_between=ss_b, ss_within=ss_w,
        df_between=df_b, df_within=df_w, ms_between=ms_b, ms_within=ms_w,
        var_within=var_w, var_between_raw=var_b_raw, var_between=var_b, var_total=total,
        share_within=var_w / total if total > 0 else NAN,
        share_between=var_b / total if total > 0 else NAN,
        icc=var_b / total if total > 0 else NAN,
        sd_within=math.sqrt(var_w), sd_between=math.sqrt(var_b),
        f_stat=float(f_stat), p_value=p, notes=notes)


# ------------------------------------------------------------------------------------------------
# paired comparison of two sweeps over common seeds
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedComparison(_AsDict):
    seeds: list[str]  # common seeds, sorted
    a: list[float]
    b: list[float]
    deltas: list[float]  # a - b per seed
    only_in_a: list[str]
    only_in_b: list[str]
    n: int
    mean_delta: float
    std_delta: float
    ci_level: float
    t_ci_low: float
    t_ci_high: float
    boot_ci_low: float
    boot_ci_high: float
    boot_method: str
    t_stat: float
    p_ttest: float  # paired t-test, two-sided
    wilcoxon_stat: float
    p_wilcoxon: float  # Wilcoxon signed-rank, two-sided
    notes: list[str] = field(default_factory=list)


def _seed_sort_key(seed: str) -> tuple[int, Any]:
    try:
        return (0, int(seed))
    except ValueError:
        return (1, seed)


def paired_comparison(a: Mapping[Any, float], b: Mapping[Any, float], level: float = 0.95,
                      seed: int = BOOTSTRAP_SEED) -> PairedComparison:
    """Compare two sweeps seed by seed (delta = a - b): same seed means same data order and
    initialisation, so pairing removes that part of the variance."""
    a_s = {str(k): float(v) for k, v in a.items() if v is not None and math.isfinite(float(v))}
    b_s = {str(k): float(v) for k, v in b.items() if v is not None and math.isfinite(float(v))}
    common = sorted(set(a_s) & set(b_s), key=_seed_sort_key)
    only_a = sorted(set(a_s) - set(b_s), key=_seed_sort_key)
    only_b = sorted(set(b_s) - set(a_s), key=_seed_sort_key)
    av = np.array([a_s[s] for s in common])
    bv = np.array([b_s[s] for s in common])
    d = av - bv
    n = int(d.size)
    notes: list[str] = []
    mean_d = float(d.mean()) if n else NAN
    std_d = float(d.std(ddof=1)) if n > 1 else NAN
    t_lo, t_hi = t_interval(d, level) if n > 1 else (NAN, NAN)
    b_lo, b_hi, b_meth, b_note = bootstrap_ci(d, level=level, seed=seed) if n else \
        (NAN, NAN, "none", "no common seeds")
    if b_note:
        notes.append(b_note)
    t_stat = p_t = NAN
    if n >= 2 and std_d > 0:
        res = sps.ttest_rel(av, bv)
        t_stat, p_t = float(res.statistic), float(res.pvalue)
    elif n >= 2:
        notes.append("all deltas identical: t-test undefined")
    else:
        notes.append(f"n={n} common seeds: no test")
    w_stat = p_w = NAN
    if n >= 2 and np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res_w = sps.wilcoxon(d)
                w_stat, p_w = float(res_w.statistic), float(res_w.pvalue)
            except ValueError as exc:  # e.g. too few non-zero deltas
                notes.append(f"Wilcoxon not computed: {exc}")
        if n < 6:
            notes.append(f"n={n}: the smallest possible two-sided Wilcoxon p is "
                         f"{2 / 2 ** n:.3g}, so it cannot reach 0.05")
    return PairedComparison(
        seeds=common, a=av.tolist(), b=bv.tolist(), deltas=d.tolist(), only_in_a=only_a,
        only_in_b=only_b, n=n, mean_delta=mean_d, std_delta=std_d, ci_level=level,
        t_ci_low=t_lo, t_ci_high=t_hi, boot_ci_low=b_lo, boot_ci_high=b_hi, boot_method=b_meth,
        t_stat=t_stat, p_ttest=p_t, wilcoxon_stat=w_stat, p_wilcoxon=p_w, notes=notes)


# ------------------------------------------------------------------------------------------------
# platform / training seed / evaluation seed (three-level nested design)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NestedDecomposition(_AsDict):
    n_platforms: int
    n_train_seeds: int
    n_total: int
    seeds_per_platform: dict[str, int]
    df_platform: int
    df_train: int
    df_eval: int
    ms_platform: float
    ms_train: float
    ms_eval: float
    k_train: float  # E[MS_train] = var_eval + k_train * var_train
    k_platform_train: float  # E[MS_platform] = var_eval + k_platform_train * var_train
    k_platform: float  # ... + k_platform * var_platform
    var_eval: float
    var_train_raw: float
    var_platform_raw: float
    var_train: float  # clamped at 0
    var_platform: float  # clamped at 0
    share_platform: float
    share_train: float
    share_eval: float
    f_platform: float  # MS_platform / MS_train (exact test when balanced)
    p_platform: float
    f_train: float  # MS_train / MS_eval
    p_train: float
    notes: list[str] = field(default_factory=list)


def nested_variance_decomposition(
        table: Mapping[Hashable, Mapping[Hashable, Sequence[float]]]) -> NestedDecomposition:
    """Random-effects ANOVA of y_pte = mu + P_p + T_t(p) + E_pte, method of moments.

    ``table`` is {platform: {training seed: [values over eval seeds]}} (NaN/None = missing). The
    expected mean squares of the unbalanced nested design (Sokal & Rohlf, Biometry, ch. 10) give
    var_eval = MS_eval, var_train = (MS_train - MS_eval) / k_train and var_platform =
    (MS_platform - MS_eval - k_platform_train * var_train) / k_platform; negative estimates are
    reported raw and clamped at 0. Needs >= 2 platforms, a platform with >= 2 training seeds and
    a training seed with >= 2 values.
    """
    groups = {str(p): _groups_from_table(seeds) for p, seeds in table.items()}
    groups = {p: g for p, g in groups.items() if g}
    a = len(groups)
    n_b = sum(len(g) for g in groups.values())
    sizes = [np.array([v.size for v in g.values()], dtype=np.float64) for g in groups.values()]
    big_n = float(sum(s.sum() for s in sizes))
    df_p, df_t, df_e = a - 1, n_b - a, int(big_n) - n_b
    if a < 2 or df_t < 1 or df_e < 1:
        raise ValueError(f"nested_variance_decomposition: needs >= 2 platforms ({a}), more training "
                         f"seeds than platforms ({n_b}) and a seed with >= 2 values")
    grand = float(np.concatenate([v for g in groups.values() for v in g.values()]).mean())
    ss_p = ss_t = ss_e = 0.0
    for g in groups.values():
        vals = np.concatenate(list(g.values()))
        p_mean = float(vals.mean())
        ss_p += vals.size * (p_mean - grand) ** 2
        for v in g.values():
            ss_t += v.size * (float(v.mean()) - p_mean) ** 2
            ss_e += float(((v - v.mean()) ** 2).sum())
    ms_p, ms_t, ms_e = ss_p / df_p, ss_t / df_t, ss_e / df_e
    sum_sq_within = float(sum((s ** 2).sum() / s.sum() for s in sizes))  # sum_p sum_t n_pt^2 / N_p
    sum_sq_all = float(sum((s ** 2).sum() for s in sizes)) / big_n
    k_t = (big_n - sum_sq_within) / df_t
    k_pt = (sum_sq_within - sum_sq_all) / df_p
    k_p = (big_n - float(sum(s.sum() ** 2 for s in sizes)) / big_n) / df_p
    var_t_raw = (ms_t - ms_e) / k_t
    var_p_raw = (ms_p - ms_e - k_pt * var_t_raw) / k_p
    var_t, var_p = max(var_t_raw, 0.0), max(var_p_raw, 0.0)
    total = var_p + var_t + ms_e
    notes = [f"{name} variance estimate negative ({raw:.4g}); clamped to 0"
             for name, raw in (("platform", var_p_raw), ("train-seed", var_t_raw)) if raw < 0]
    if a < 4:
        notes.append(f"only {a} platforms: the platform variance has {df_p} degree(s) of freedom "
                     f"and is a rough estimate")

    def f_test(num: float, den: float, d1: int, d2: int) -> tuple[float, float]:
        if den > 0:
            return num / den, float(sps.f.sf(num / den, d1, d2))
        return (math.inf, 0.0) if num > 0 else (NAN, NAN)

    f_p, p_p = f_test(ms_p, ms_t, df_p, df_t)
    f_t, p_t = f_test(ms_t, ms_e, df_t, df_e)
    return NestedDecomposition(
        n_platforms=a, n_train_seeds=n_b, n_total=int(big_n),
        seeds_per_platform={p: len(g) for p, g in groups.items()},
        df_platform=df_p, df_train=df_t, df_eval=df_e, ms_platform=ms_p, ms_train=ms_t,
        ms_eval=ms_e, k_train=k_t, k_platform_train=k_pt, k_platform=k_p, var_eval=ms_e,
        var_train_raw=var_t_raw, var_platform_raw=var_p_raw, var_train=var_t, var_platform=var_p,
        share_platform=var_p / total if total > 0 else NAN,
        share_train=var_t / total if total > 0 else NAN,
        share_eval=ms_e / total if total > 0 else NAN,
        f_platform=f_p, p_platform=p_p, f_train=f_t, p_train=p_t, notes=notes)
