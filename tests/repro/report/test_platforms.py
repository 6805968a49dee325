"""The report and platforms: one platform changes nothing; mixed platforms are flagged at the top and,
with >= 2 seeds per platform, split out of the variance. No Jittor."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from segnext_jt.repro.report import command as report
from segnext_jt.repro.report.platforms import CONFOUNDED, UNKNOWN, seed_platform
from segnext_jt.repro.sweep.results import load_result


def _sweep(root: Path, platforms: dict[int, object], log_ids: dict[int, str] = None) -> Path:
    """Seeds with ss evals under eval seeds 0..2; platforms[seed] goes to result.json's "platform"
    (a str is wrapped as {"platform_id": str}); log_ids[seed] into log.json's env_info."""
    log_ids = log_ids or {}
    for seed, plat in platforms.items():
        d = root / f"seed_{seed}"
        d.mkdir(parents=True)
        evals = [{"eval_seed": e, "mode": "ss", "mIoU": 40.0 + seed * 0.7 + (seed >= 2) * 3 + 0.1 * e}
                 for e in range(3)]
        obj = {"seed": seed, "config": "configs/demo_mnist.yaml", "checkpoint": None,
               "final_loss": 0.5, "train_log": "log.json" if seed in log_ids else None, "eval": evals}
        if plat is not None:
            obj["platform"] = {"platform_id": plat} if isinstance(plat, str) else plat
        (d / "result.json").write_text(json.dumps(obj))
        if seed in log_ids:
            meta = {"env_info": f"CPU: x\nPlatform id: {log_ids[seed]}", "seed": seed,
                    "mmseg_version": "segnext_jt 0.1.0"}
            (d / "log.json").write_text(json.dumps(meta) + "\n" + json.dumps(
                {"mode": "train", "iter": 1, "lr": 0.1, "loss": 1.0}) + "\n")
    return root


def _report(sweep: Path, out: Path):
    assert report.main([str(sweep), "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_platform_id_sources_in_order(tmp_path):
    sweep = _sweep(tmp_path / "s", {0: {"id": "aaa"}, 1: None, 2: None},
                   log_ids={1: "bbb", 0: "zzz"})
    from segnext_jt.repro.report.log_parsing import parse_log
    runs = {s: load_result(sweep / f"seed_{s}" / "result.json", s) for s in range(3)}
    assert seed_platform(runs[0], parse_log(sweep / "seed_0" / "log.json")) == "aaa"  # result.json wins
    assert seed_platform(runs[1], parse_log(sweep / "seed_1" / "log.json")) == "bbb"  # env_info
    assert seed_platform(runs[2], None) == UNKNOWN
    hostile = _sweep(tmp_path / "h", {0: {"platform_id": "a b\n# injected"}})
    assert seed_platform(load_result(hostile / "seed_0" / "result.json", 0), None) == UNKNOWN


def test_single_platform_report_has_no_platform_section(tmp_path):
    one = _sweep(tmp_path / "one" / "s", {s: "p1" for s in range(4)})
    none = _sweep(tmp_path / "none" / "s", {s: None for s in range(4)})
    for sweep in (one, none):
        data, md = _report(sweep, sweep.parent / "out")
        assert "platforms" not in data and "latform" not in md.replace(str(tmp_path), "")
    # the same numbers with and without a recorded platform give the same bytes
    assert (tmp_path / "one" / "out" / "report.md").read_text().replace("/one/", "/none/") == \
        (tmp_path / "none" / "out" / "report.md").read_text()


def test_two_platforms_two_seeds_each_are_decomposed(tmp_path):
    sweep = _sweep(tmp_path / "s", {0: "intel", 1: "intel", 2: "amd", 3: "amd"})
    data, md = _report(sweep, tmp_path / "out")
    assert data["platforms"]["groups"] == {"intel": [0, 1], "amd": [2, 3]}
    assert data["platforms"]["separable"] is True
    nd = data["platforms"]["nested_decomposition"]["ss"]
    assert (nd["df_platform"], nd["df_train"], nd["df_eval"]) == (1, 2, 8)
    # eval spread 0.1 per step: var_eval = 0.01; platform offset 3 dominates
    assert nd["var_eval"] == pytest.approx(0.01) and nd["share_platform"] > 0.8
    head = md.split("## Runs")[0]
    assert "**Mixed platforms:**" in head and "intel: seeds [0, 1]; amd: seeds [2, 3]" in head
    assert "## Platform vs training seed vs evaluation seed" in md
    assert any("2 different platforms" in w for w in data["warnings"])


def test_mixed_but_inseparable_says_the_train_variance_includes_platform_noise(tmp_path):
    sweep = _sweep(tmp_path / "s", {0: "intel", 1: "intel", 2: "amd", 3: None})
    data, md = _report(sweep, tmp_path / "out")
    assert data["platforms"]["separable"] is False and data["platforms"]["note"] == CONFOUNDED
    assert data["platforms"]["groups"][UNKNOWN] == [3]
    assert CONFOUNDED in md.split("## Runs")[0]
