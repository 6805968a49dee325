"""Command-line tools: bad input ends with one `error:` line (exit 2) naming the file/key, checked
before any expensive work, never a traceback; outputs are written atomically and as valid JSON."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

DEMO_CFG = os.path.join(ROOT, "configs", "demo_mnist.yaml")
ENV = dict(os.environ, SEGNEXT_DEVICE="cpu")
ENV.pop("SEGNEXT_DEBUG", None)


def _tool(*parts):
    return [sys.executable, os.path.join(ROOT, *parts)]


def _run(cmd, env=ENV, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(ROOT))


def _one_error_line(proc, *needles, code=2):
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], err[-2000:])
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, err)


def _case(name, tmp):
    """(command, strings the one stderr line must contain) for each traceback class of issue #9."""
    ck = tmp / "ck.npz"  # existence is all the early checks need
    ck.write_bytes(b"x")
    afile = tmp / "afile"
    afile.write_text("x")
    adir = tmp / "adir"
    adir.mkdir()
    latin = tmp / "latin1.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    ev = _tool("tools", "eval.py")
    sweep = _tool("repro", "seed_sweep.py")
    if name == "yaml_not_utf8":
        return ev + [str(latin), str(ck)], [latin.name, "UTF-8"]
    if name == "sweep_yaml_not_utf8":
        return sweep + ["--config", str(latin), "--work-dir", str(tmp / "w"), "--seeds", "0", "--dry-run"], \
            [latin.name, "UTF-8"]
    if name == "override_not_yaml":
        return ev + [DEMO_CFG, str(ck), "--cfg-options", "x=[1"], ["x", "[1", "YAML"]
    if name == "section_then_subkey":
        return ev + [DEMO_CFG, str(ck), "--cfg-options", "train=1", "train.max_iters=3"], \
            ["train.max_iters", "train=1"]
    if name == "sweep_work_dir_is_file":
        return sweep + ["--config", DEMO_CFG, "--work-dir", str(afile), "--seeds", "0"], ["--work-dir", afile.name]
    if name == "json_parent_is_file":
        return ev + [DEMO_CFG, str(ck), "--json", str(afile / "m.json")], ["--json", afile.name]
    if name == "json_is_dir":
        return ev + [DEMO_CFG, str(ck), "--json", str(adir)], ["--json", adir.name, "directory"]
    if name == "out_dir_under_file":
        return ev + [DEMO_CFG, str(ck), "--out-dir", str(afile / "pred")], ["--out-dir", afile.name]
    if name == "infer_out_is_file":
        return _tool("tools", "infer.py") + [str(afile), "--config", DEMO_CFG, "--checkpoint", str(ck),
                                             "--out", str(afile)], ["--out", afile.name]
    if name == "convert_out_under_file":
        return _tool("tools", "convert_checkpoint.py") + [str(ck), str(afile / "x.npz")], [afile.name]
    if name == "seeds_huge":
        return sweep + ["--config", DEMO_CFG, "--work-dir", str(tmp / "w"), "--seeds", "0..2000000000",
                        "--dry-run"], ["--seeds", "2,000,000,001", "--max-seeds"]
    if name == "seeds_out_of_range":
        return sweep + ["--config", DEMO_CFG, "--work-dir", str(tmp / "w"), "--seeds", "0..3000000000",
                        "--dry-run"], ["--seeds", "bad seed list", "0..2147483647"]
    if name == "eval_seeds_bad":
        return sweep + ["--config", DEMO_CFG, "--work-dir", str(tmp / "w"), "--seeds", "0", "--eval-seeds", "4..2",
                        "--dry-run"], ["--eval-seeds", "bad seed list"]
    if name == "seeds_above_cap":
        return sweep + ["--config", DEMO_CFG, "--work-dir", str(tmp / "w"), "--seeds", "0..100000",
                        "--dry-run"], ["100,001", "--max-seeds"]
    if name == "sweep_result_not_utf8":
        (tmp / "w" / "seed_0").mkdir(parents=True)
        (tmp / "w" / "seed_0" / "result.json").write_bytes(b'{"seed": 0, "x": "\xff"}')
        return sweep + ["--config", DEMO_CFG, "--work-dir", str(tmp / "w"), "--seeds", "0", "--dry-run"], \
            ["result.json", "UTF-8"]
    if name == "sweep_result_is_dir":
        (tmp / "w" / "seed_0" / "result.json").mkdir(parents=True)
        return sweep + ["--config", DEMO_CFG, "--work-dir", str(tmp / "w"), "--seeds", "0", "--dry-run"], \
            ["result.json", "directory"]
    if name == "report_result_not_utf8":
        (tmp / "w" / "seed_0").mkdir(parents=True)
        (tmp / "w" / "seed_0" / "result.json").write_bytes(b'{"seed": 0, "x": "\xff"}')
        return _tool("repro", "report.py") + [str(tmp / "w")], ["result.json", "UTF-8"]
    if name == "report_result_is_dir":
        (tmp / "w" / "seed_0" / "result.json").mkdir(parents=True)
        return _tool("repro", "report.py") + [str(tmp / "w")], ["result.json", "directory"]
    if name == "compare_empty_log":
        empty = tmp / "empty.log.json"
        empty.write_text("")
        return _tool("repro", "compare_logs.py") + [str(empty), str(empty)], [empty.name, "no train or val"]
    if name == "compare_log_not_utf8":
        bad = tmp / "bad.log.json"
        bad.write_bytes(b'{"seed": 1}\n{"mode": "train", "\xff": 1}\n')
        return _tool("repro", "compare_logs.py") + [str(bad), str(bad)], [f"{bad.name}:2", "UTF-8"]
    raise KeyError(name)


CASES = ["yaml_not_utf8", "sweep_yaml_not_utf8", "override_not_yaml", "section_then_subkey",
         "sweep_work_dir_is_file", "json_parent_is_file", "json_is_dir", "out_dir_under_file",
         "infer_out_is_file", "convert_out_under_file", "seeds_huge", "seeds_out_of_range", "eval_seeds_bad",
         "seeds_above_cap",
         "sweep_result_not_utf8", "sweep_result_is_dir", "report_result_not_utf8", "report_result_is_dir",
         "compare_empty_log", "compare_log_not_utf8"]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_exit_2(tmp_path, name):
    cmd, needles = _case(name, tmp_path)
    started = time.monotonic()
    proc = _run(cmd)
    _one_error_line(proc, *needles)
    # checked before any expensive work: no Jittor import, no model (generous bound for a busy machine)
    assert time.monotonic() - started < 120


def test_debug_env_keeps_the_traceback(tmp_path):
    cmd, _ = _case("override_not_yaml", tmp_path)
    proc = _run(cmd, env=dict(ENV, SEGNEXT_DEBUG="1"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_config_errors_in_process(tmp_path):
    from segnext_jt.config import ConfigError, load_config, parse_overrides
    with pytest.raises(ConfigError, match=r"train\.max_iters=3: an earlier option set train=1"):
        parse_overrides(["train=1", "train.max_iters=3"])
    with pytest.raises(ConfigError, match=r"replaces the section 'train'"):
        parse_overrides(["train.max_iters=3", "train=1"])
    with pytest.raises(ConfigError, match=r"bad key"):
        parse_overrides(["train..max_iters=3"])
    with pytest.raises(ConfigError, match=r"finite"):
        load_config(DEMO_CFG, ["train.optimizer.lr=.nan"])
    with pytest.raises(ConfigError, match=r"eval\.batch_size must be >= 1"):
        load_config(DEMO_CFG, ["eval.batch_size=0"])
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy, ["train.max_iters=3"])
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1\n")
    with pytest.raises(ConfigError) as info:
        load_config(broken)
    assert "\n" not in str(info.value) and "broken.yaml" in str(info.value)


def test_output_path_checks_and_atomic_json(tmp_path):
    from segnext_jt.cli import UsageError, check_output_dir, check_output_file, check_work_dir
    from segnext_jt.io.files import write_json_atomic
    assert check_output_file(str(tmp_path / "new" / "deeper" / "m.json")).endswith("m.json")  # creatable
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        check_output_file(str(tmp_path / "f" / "m.json"), "--json")
    with pytest.raises(UsageError, match="is a directory"):
        check_output_file(str(tmp_path), "--json")
    with pytest.raises(UsageError, match="--work-dir .*is a file"):
        check_work_dir(str(tmp_path / "f"))
    with pytest.raises(UsageError, match="is a file"):
        check_output_dir(str(tmp_path / "f" / "a" / "b"), "--out-dir")
    out = tmp_path / "sub" / "r.json"
    write_json_atomic(str(out), {"a": float("nan"), "b": [1.0, float("inf")], "c": (1, 2)})
    assert json.loads(out.read_text()) == {"a": None, "b": [1.0, None], "c": [1, 2]}
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_eval_json_into_missing_dir_and_sigterm_leaves_no_partial_files(tmp_path, tiny_train_options,
                                                                        tiny_checkpoint):
    from segnext_jt.data.demo_mnist import build_demo_dataset
    build_demo_dataset(str(tmp_path / "data"), num_train=2, num_val=120, size=64, seed=1)
    options = tiny_train_options + [f"data.root={tmp_path / 'data' / 'ADEChallengeData2016'}"]
    # 1. a --json whose directory does not exist yet is created (only checked up front)
    small = _run(_tool("tools", "eval.py") + [DEMO_CFG, tiny_checkpoint, "--limit", "2", "--no-progress",
                                              "--json", str(tmp_path / "missing_dir" / "m.json"),
                                              "--cfg-options", *options], timeout=600)
    assert small.returncode == 0, small.stderr[-2000:]
    assert json.loads((tmp_path / "missing_dir" / "m.json").read_text())["num_images"] == 2
    # 2. SIGTERM in the middle of an evaluation: one line, quick exit, no partial outputs
    pred, out_json = tmp_path / "pred", tmp_path / "m.json"
    proc = subprocess.Popen(_tool("tools", "eval.py") + [DEMO_CFG, tiny_checkpoint, "--ms-flip", "--no-progress",
                                                         "--out-dir", str(pred), "--json", str(out_json),
                                                         "--cfg-options", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 600
        while not (pred.is_dir() and any(p.suffix == ".png" for p in pred.iterdir())):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no prediction written"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=120)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode == 0:
        pytest.skip("the evaluation finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "interrupted by SIGTERM" in err
    assert elapsed < 60  # the requirement is 10 s; generous for a loaded machine
    assert not out_json.exists(), "metrics written although interrupted"
    names = [p.name for p in pred.iterdir()]
    assert not [n for n in names if n.endswith(".tmp")], names
    from PIL import Image
    for p in pred.iterdir():
        with Image.open(p) as im:
            im.load()  # every file that is there is complete


def test_compare_logs_out_is_strict_json(tmp_path):
    log = tmp_path / "a.log.json"
    lines = [{"seed": 0, "config": "x"}, {"mode": "train", "iter": 10, "loss": 1.0, "lr": 0.1},
             {"mode": "val", "iter": 10, "mIoU": 0.5, "IoU.a": float("nan")}]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "o" / "cmp.json"
    proc = _run(_tool("repro", "compare_logs.py") + [str(log), str(log), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    bad = _run(_tool("repro", "compare_logs.py") + [str(log), str(log), "--out", str(tmp_path)])
    _one_error_line(bad, "--out", "directory")
