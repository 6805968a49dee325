"""repro/: statistics against hand calculations and SciPy, log parsing of synthetic samples in both
mmseg formats, compare_logs, SVG plots, and report.py end to end on synthetic sweeps.
No Jittor."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) does not add the repo root
    sys.path.insert(0, str(ROOT))

from repro import compare_logs as compare_cli  # noqa: E402
from repro import plots, report, stats  # noqa: E402
from repro.logs import (LogParseError, binned_mean, compare_logs,  # noqa: E402
                        extract_ham_settings, parse_log)

LOGS = ROOT / "tests" / "fixtures" / "logs"


# ------------------------------------------------------------------------------------------------
# stats
# ------------------------------------------------------------------------------------------------
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


def test_jsonable():
    out = stats.jsonable({"a": np.float64("nan"), "b": (1, np.int64(2)), "c": stats.summary([1.0])})
    assert out["a"] is None and out["b"] == [1, 2] and out["c"]["n"] == 1
    json.dumps(out, allow_nan=False)


# ------------------------------------------------------------------------------------------------
# logs
# ------------------------------------------------------------------------------------------------
def test_parse_mmseg0_eval_iter_num_convention():
    lg = parse_log(LOGS / "mm0_seed0.log.json")
    assert lg.format == "mmseg0" and lg.seed == 0
    assert lg.meta["exp_name"].startswith("segnext_mscan-l")
    assert [r.iter for r in lg.train] == list(range(50, 401, 50))
    t0 = lg.train[0]
    assert (t0.loss, t0.loss_ce, t0.acc_seg, t0.memory, t0.epoch) == (1.9, 1.9, 42.5, 43320, 1)
    assert t0.lr == 0.0 and t0.time == 0.51234  # mmcv rounds 2e-6 to 5 decimals
    # val "iter" is len(val dataloader) = 3: re-keyed to the train iteration before it
    assert [v.iter for v in lg.val] == [200, 400] and lg.val[0].raw_iter == 3
    v = lg.val[0]
    assert (v.mIoU, v.aAcc, v.mAcc) == (30.125, 61.234, 40.565)  # fractions -> percent
    assert v.per_class_iou["bed "] == 10.25  # class name with its trailing space
    assert math.isnan(v.per_class_iou["flag"]) and v.per_class_acc["wall"] == 70.0
    x, y = lg.series("decode.loss_ce")
    assert x[0] == 50 and y[0] == 1.9
    assert extract_ham_settings(lg.meta)["md_r"] == "16"


def test_parse_mmseg0_old_convention_and_mmseg1():
    old = parse_log(LOGS / "mm0_seed1.log.json")
    assert [v.iter for v in old.val] == [200, 400] and old.val[1].mIoU == 36.0
    m1 = parse_log(LOGS / "mm1_scalars.json")
    assert m1.format == "mmseg1" and m1.meta == {} and m1.seed is None
    assert [r.iter for r in m1.train] == list(range(50, 401, 50))
    assert m1.train[0].extra["base_lr"] == 6e-05
    assert [(v.iter, v.mIoU, v.aAcc) for v in m1.val] == [(200, 32.0, 63.5), (400, 34.0, 65.5)]


def test_parse_errors_name_file_and_line(tmp_path):
    with pytest.raises(LogParseError, match=r"mm0_malformed\.log\.json:3: not valid JSON"):
        parse_log(LOGS / "mm0_malformed.log.json")
    cases = {
        "list.json": ('{"env_info": "x", "seed": 1}\n[1, 2]\n', r"list\.json:2: expected a JSON"),
        "iter.json": ('{"mode": "train", "iter": "50", "loss": 1.0}\n',
                      r"iter\.json:1: key 'iter' should be a number"),
        "pct.json": ('{"mode": "val", "iter": 50, "mIoU": 41.5}\n',
                     r"pct\.json:1: mIoU 41.5 > 1"),
        "mode.json": ('\n\n{"mode": "test", "iter": 5}\n', r"mode\.json:3: unknown mode"),
        "noiter.json": ('{"mode": "train", "loss": 1.0}\n', r"noiter\.json:1: missing key 'iter'"),
    }
    for name, (text, pattern) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(LogParseError, match=pattern):
            parse_log(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        parse_log(tmp_path / "absent.json")


def test_duplicate_iterations_keep_last(tmp_path):
    p = tmp_path / "resumed.log.json"
    lines = [{"seed": 3, "config": "x"}, {"mode": "train", "iter": 50, "loss": 2.0},
             {"mode": "train", "iter": 100, "loss": 1.5},
             {"mode": "train", "iter": 50, "loss": 1.9}]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    lg = parse_log(p)
    assert [(r.iter, r.loss) for r in lg.train] == [(50, 1.9), (100, 1.5)]
    assert lg.warnings and "duplicate" in lg.warnings[0]


def test_ham_settings_from_yaml_and_dict():
    yaml_text = "model:\n  head:\n    ham:\n      md_r: 64\n      md_s: 1\n    channels: 1024\n"
    assert extract_ham_settings({"config": yaml_text}) == {"md_r": "64", "md_s": "1"}
    assert extract_ham_settings({"config": {"model": {"head": {"ham": {"md_r": 16}}}}}) == \
        {"md_r": "16"}
    assert extract_ham_settings({}) is None


def test_binned_mean():
    x, y = binned_mean([50, 100, 150, 200, 250], [1.0, 2.0, 3.0, 4.0, 5.0], 100)
    assert x.tolist() == [100, 200, 300] and y.tolist() == [1.5, 3.5, 5.0]


def test_compare_logs_and_cli(tmp_path, capsys):
    a, b = parse_log(LOGS / "mm0_seed0.log.json"), parse_log(LOGS / "mm0_seed1.log.json")
    res = compare_logs(a, b, window=100)
    s = res["summary"]
    assert s["n_shared_train_iters"] == 8 and s["mean_loss_diff"] == pytest.approx(-0.05)
    assert s["max_rel_lr_diff"] == 0.0 and s["max_abs_lr_diff"] == 0.0
    assert s["n_shared_windows"] == 4
    assert [(r["iter"], round(r["mIoU_diff"], 3)) for r in res["val"]] == [(200, 0.625),
                                                                           (400, -0.5)]
    assert res["meta"]["config_differs"] and res["meta"]["ham_differs"]
    assert any("MD_R=64" in line for line in res["meta"]["config_diff"])
    out = tmp_path / "cmp.json"
    rc = compare_cli.main([str(LOGS / "mm0_seed0.log.json"), str(LOGS / "mm1_scalars.json"),
                           "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mIoU (%) at shared evaluation iterations" in printed and "not present" in printed
    saved = json.loads(out.read_text())
    assert saved["summary"]["n_shared_val_iters"] == 2
    assert compare_cli.main([str(LOGS / "mm0_malformed.log.json"),
                             str(LOGS / "mm1_scalars.json")]) == 2
    assert "mm0_malformed.log.json:3" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------
def _parse_svg(text: str) -> ET.Element:
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("version") == "1.1"
    return root


def test_svg_plots_parse():
    nan = float("nan")
    line = plots.line_plot([plots.Series("seed <0> & co", [0, 50, 100, 150], [2.0, nan, 1.5, 1.2]),
                            plots.Series("official", [0, 150], [2.1, 1.1], dashed=True, width=3,
                                         markers=True)], "loss <title>", "iteration", "loss")
    root = _parse_svg(line)
    paths = root.findall(".//{http://www.w3.org/2000/svg}path")
    assert len(paths) == 2 and paths[0].get("d").count("M") == 2  # NaN breaks the line
    assert paths[1].get("stroke-dasharray")
    strip = plots.strip_plot([plots.StripGroup("ss", [50.1, 49.8, 50.5], ["0", "1", "2"],
                                               ci=(49.5, 50.9))], "strip", "mIoU", 50.99,
                             (49.6, 51.0))
    assert len(_parse_svg(strip).findall(".//{http://www.w3.org/2000/svg}circle")) >= 3
    _parse_svg(plots.histogram([1, 2, 2, 3, 4, 4, 4], "hist", "mIoU", reference=2.5,
                               reference_range=(2, 3)))
    _parse_svg(plots.histogram([5.0], "one value", "x"))
    assert "no data" in plots.line_plot([], "empty", "x", "y")
    _parse_svg(plots.strip_plot([plots.StripGroup("e", [])], "empty", "y"))
    assert plots.nice_ticks(0, 160000) == [0, 50000, 100000, 150000]
    assert plots.nice_ticks(49.6, 51.0, 8) == pytest.approx([49.6, 49.8, 50.0, 50.2, 50.4, 50.6,
                                                             50.8, 51.0])


# ------------------------------------------------------------------------------------------------
# report.py end to end
# ------------------------------------------------------------------------------------------------
def _write_result(d: Path, seed, evals, train_log=None, final_loss=None, name="result.json"):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps({
        "seed": seed, "config": "configs/segnext_mscan-l_ade20k_160k.yaml",
        "checkpoint": f"work_dirs/seed_{seed}/iter_160000.npz", "final_loss": final_loss,
        "train_log": train_log, "eval": evals}))


def _evals(seed: int, eval_seeds, base: float, msflip: bool = True):
    out = [{"eval_seed": e, "mode": "ss", "mIoU": round(base + 0.1 * e, 2), "aAcc": 82.5,
            "mAcc": 62.0, "per_class_iou": [base + seed, None, 30.0 - seed]}
           for e in eval_seeds]
    if msflip:
        out.append({"eval_seed": eval_seeds[0], "mode": "msflip", "mIoU": base + 1.1})
    return out


def _make_sweep(root: Path, bases: dict[int, float], planned=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if planned is not None:
        (root / "sweep.json").write_text(json.dumps({
            "config": "configs/segnext_mscan-l_ade20k_160k.yaml", "seeds": planned,
            "eval_seeds": [0, 1, 2], "created": "2025-01-01T00:00:00Z"}))
    for seed, base in bases.items():
        _write_result(root / f"seed_{seed}", seed, _evals(seed, [0, 1, 2], base))
    return root


def test_report_end_to_end(tmp_path):
    sweep = _make_sweep(tmp_path / "sweep", {0: 50.2, 1: 49.7, 2: 50.6}, planned=[0, 1, 2, 3, 4, 5])
    shutil.copy(LOGS / "mm0_seed0.log.json", sweep / "seed_0" / "log.json")
    logs_dir = sweep / "logs"
    logs_dir.mkdir()
    shutil.copy(LOGS / "mm0_seed1.log.json", logs_dir / "seed1.log.json")
    _write_result(sweep / "seed_0", 0, _evals(0, [0, 1, 2], 50.2), train_log="log.json",
                  final_loss=0.41)
    _write_result(sweep / "seed_1", 1, _evals(1, [0, 1, 2], 49.7),
                  train_log="logs/seed1.log.json")  # resolved against DIR
    _write_result(sweep / "seed_2", 2, _evals(2, [0, 1, 2], 50.6), train_log="gone.json")
    _write_result(sweep / "seed_3", 3, [])  # trained, not evaluated
    (sweep / "seed_4").mkdir()  # started, unfinished; seed 5 never started
    other = _make_sweep(tmp_path / "other", {0: 50.0, 1: 49.6, 2: 50.3, 7: 48.0})
    out = tmp_path / "out"
    rc = report.main([str(sweep), "--official", str(LOGS / "mm1_scalars.json"),
                      "--compare", str(other), "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    assert data["runs"]["missing"] == [4, 5] and data["runs"]["not_evaluated"] == [3]
    assert "**missing**" in md and "| 4 | missing" in md and "| 5 | missing" in md
    # selection rule: the eval whose eval_seed equals the training seed
    assert [(r["seed"], r["ss"]["eval_seed"]) for r in data["per_seed"][:3]] == [(0, 0), (1, 1),
                                                                                (2, 2)]
    assert data["per_seed"][1]["ss"]["mIoU"] == pytest.approx(49.8)
    assert data["per_seed"][0]["final_loss"] == 0.41
    assert data["per_seed"][1]["final_loss"] == pytest.approx(1.25)  # from the train log
    ss = data["summary"]["ss"]
    assert ss["n"] == 3 and ss["mean"] == pytest.approx(np.mean([50.2, 49.8, 50.8]))
    assert data["reference"]["ss"] == 50.99 and data["reference"]["ss_range"] == [49.6, 51.0]
    assert data["reference_position"]["ss"]["percentile"] == 100.0
    vd = data["variance_decomposition"]["ss"]
    assert vd["n_groups"] == 3 and vd["var_within"] == pytest.approx(0.01)
    assert "msflip" not in data["variance_decomposition"]  # one eval seed per checkpoint
    comp = data["comparison"]["ss"]
    assert comp["n"] == 3 and comp["only_in_b"] == ["7"]
    assert data["learning_curves"]["seeds_with_logs"] == [0, 1]
    assert any("gone.json" in w for w in data["warnings"])
    assert data["per_class_iou_sd_top10"][0]["class_index"] in (0, 2)
    for name in data["plots"]:
        _parse_svg((out / name).read_text())
    assert {"strip_ss.svg", "strip_msflip.svg", "eval_spread_ss.svg", "hist_ss.svg",
            "loss_curves.svg", "miou_curves.svg", "compare_ss.svg"} <= set(data["plots"])
    assert "eval-seed" in md and "percentile" in md and "Paired comparison" in md
    # reproducible: same inputs, same bytes
    out2 = tmp_path / "out2"
    assert report.main([str(sweep), "--official", str(LOGS / "mm1_scalars.json"),
                        "--compare", str(other), "--out", str(out2)]) == 0
    assert (out2 / "report.json").read_text() == (out / "report.json").read_text()


def test_report_checkpoint_only_and_script(tmp_path):
    sweep = tmp_path / "ckpt"
    evals = [{"eval_seed": e, "mode": "ss", "mIoU": 50.5 + 0.05 * ((e * 7) % 5)}
             for e in range(8)]
    _write_result(sweep / "checkpoint_eval", None, evals)
    proc = subprocess.run([sys.executable, "repro/report.py", str(sweep), "--reference", "50.99",
                           "--reference-range", "49.60,51.0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((sweep / "report.json").read_text())
    ck = data["checkpoint_eval"]["modes"]["ss"]
    assert ck["summary"]["n"] == 8 and ck["reference_position"]["ranges_overlap"] is True
    assert data["per_seed"] == [] and data["summary"] == {}
    assert "Evaluation-only spread" in (sweep / "report.md").read_text()
    for name in data["plots"]:
        _parse_svg((sweep / name).read_text())
    assert "checkpoint_eval_hist_ss.svg" in data["plots"]


@pytest.mark.parametrize("mutate, pattern", [
    (lambda r: r.update(seed=9), r"seed_1[/\\]result\.json: 'seed' is 9"),
    (lambda r: r.pop("eval"), r"'eval' must be a list"),
    (lambda r: r["eval"][0].update(mIoU=150.0), r"eval\[0\]: 'mIoU' must be a percentage"),
    (lambda r: r["eval"][0].update(mode="ms"), r"eval\[0\]: 'mode' must be one of"),
    (lambda r: r["eval"].append(dict(r["eval"][0])), r"duplicate entry for eval_seed 0"),
    (lambda r: r.update(final_loss="low"), r"'final_loss' must be a finite number"),
])
def test_report_strict_errors(tmp_path, capsys, mutate, pattern):
    sweep = _make_sweep(tmp_path / "bad", {1: 50.0})
    path = sweep / "seed_1" / "result.json"
    obj = json.loads(path.read_text())
    mutate(obj)
    path.write_text(json.dumps(obj))
    assert report.main([str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "result.json" in err
    with pytest.raises(report.ReportInputError, match=pattern):
        report.load_sweep(sweep)


def test_report_empty_dir_and_reference_inference(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(report.ReportInputError, match="no seed_<k>/result.json"):
        report.load_sweep(tmp_path / "empty")
    mm1_name = "configs/segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py"
    assert report.infer_size([mm1_name]) == "t"
    assert report.infer_size(["segnext_large_512x512_ade_160k.pkl"]) == "l"
    assert report.infer_size(["something.yaml"]) is None
