"""segnext_jt/repro/report/logs.py: parsing synthetic training logs in both mmseg formats, errors naming file and line,
resumed logs, HAM settings, binned means. No Jittor."""
from __future__ import annotations

import json
import math

import pytest

from helpers import LOGS

from segnext_jt.repro.report.log_parsing import LogParseError, parse_log
from segnext_jt.repro.report.logs import binned_mean, extract_ham_settings


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


@pytest.mark.parametrize("meta,kind", [
    ({"seed": 0, "mmseg_version": "segnext_jt 0.5", "memory_kind": "device_reserved_mb"}, "device_reserved_mb"),
    ({"seed": 0, "mmseg_version": "segnext_jt 0.5", "memory_kind": "host_rss_mb"}, "host_rss_mb"),
    ({"seed": 0, "mmseg_version": "segnext_jt 0.4"}, "host_rss_mb"),    # ours before the key: RSS
    ({"seed": 0, "mmseg_version": "0.30.0"}, "device_allocated_mb"),  # mmcv: max_memory_allocated
])
def test_memory_kind_from_the_metadata(tmp_path, meta, kind):
    path = tmp_path / "log.json"
    lines = [meta, {"mode": "train", "epoch": 1, "iter": 10, "lr": 0.1, "memory": 1234, "loss": 1.0}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    log = parse_log(path)
    assert log.meta == meta and log.train[0].memory == 1234 and log.memory_kind == kind
    assert "memory_kind" not in log.train[0].extra
    path.write_text("\n".join(json.dumps(x) for x in [meta, {"mode": "train", "iter": 10, "loss": 1.0}]) + "\n")
    assert parse_log(path).memory_kind is None  # no memory logged (mmcv on the CPU)


def test_metadata_line_with_only_memory_kind_is_metadata(tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"memory_kind": "host_rss_mb"}) + "\n")
    log = parse_log(path)
    assert log.format == "mmseg0" and log.meta == {"memory_kind": "host_rss_mb"} and log.n_other_lines == 0
