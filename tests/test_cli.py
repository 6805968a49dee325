"""Command-line tools (segnext_jt.cli): bad input ends with one `error:` line (exit 2) naming the
file/key, checked before any expensive work, never a traceback; outputs are written atomically and as
valid JSON."""
from __future__ import annotations

import json
import time

import pytest

from helpers import CLI_ENV, DEMO_CFG, one_error_line, run_cli, tool_cmd


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
    ev = tool_cmd("tools", "eval.py")
    sweep = tool_cmd("repro", "seed_sweep.py")
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
        return tool_cmd("tools", "infer.py") + [str(afile), "--config", DEMO_CFG, "--checkpoint", str(ck),
                                             "--out", str(afile)], ["--out", afile.name]
    if name == "convert_out_under_file":
        return tool_cmd("tools", "convert_checkpoint.py") + [str(ck), str(afile / "x.npz")], [afile.name]
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
        return tool_cmd("repro", "report.py") + [str(tmp / "w")], ["result.json", "UTF-8"]
    if name == "report_result_is_dir":
        (tmp / "w" / "seed_0" / "result.json").mkdir(parents=True)
        return tool_cmd("repro", "report.py") + [str(tmp / "w")], ["result.json", "directory"]
    if name == "compare_empty_log":
        empty = tmp / "empty.log.json"
        empty.write_text("")
        return tool_cmd("repro", "compare_logs.py") + [str(empty), str(empty)], [empty.name, "no train or val"]
    if name == "compare_log_not_utf8":
        bad = tmp / "bad.log.json"
        bad.write_bytes(b'{"seed": 1}\n{"mode": "train", "\xff": 1}\n')
        return tool_cmd("repro", "compare_logs.py") + [str(bad), str(bad)], [f"{bad.name}:2", "UTF-8"]
    raise KeyError(name)


CASES = ["yaml_not_utf8", "sweep_yaml_not_utf8", "override_not_yaml", "section_then_subkey",
         "sweep_work_dir_is_file", "json_parent_is_file", "json_is_dir", "out_dir_under_file",
         "infer_out_is_file", "convert_out_under_file", "seeds_huge", "seeds_out_of_range", "eval_seeds_bad",
         "seeds_above_cap",
         "sweep_result_not_utf8", "sweep_result_is_dir", "report_result_not_utf8", "report_result_is_dir",
         "compare_empty_log", "compare_log_not_utf8"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_exit_2(tmp_path, name):
    cmd, needles = _case(name, tmp_path)
    started = time.monotonic()
    proc = run_cli(cmd)
    one_error_line(proc, *needles)
    # checked before any expensive work: no Jittor import, no model (generous bound for a busy machine)
    assert time.monotonic() - started < 120


@pytest.mark.slow
def test_debug_env_keeps_the_traceback(tmp_path):
    cmd, _ = _case("override_not_yaml", tmp_path)
    proc = run_cli(cmd, env=dict(CLI_ENV, SEGNEXT_DEBUG="1"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_output_path_checks_and_atomic_json(tmp_path):
    from segnext_jt.cli import UsageError, check_output_dir, check_output_file, check_work_dir
    from segnext_jt.files import write_json_atomic
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


def test_run_tool_reports_an_interrupt_in_one_line(monkeypatch, capsys):
    """A plain interrupt: `error: interrupted by <signal>; <message>`; one that carries its own exit
    code (TrainingInterrupted, as tools/train.py raises it) is printed as it words itself."""
    import signal

    from segnext_jt import cli
    from segnext_jt.interrupts import TrainingInterrupted
    monkeypatch.delenv("SEGNEXT_DEBUG", raising=False)
    left = []
    monkeypatch.setattr(cli, "leave_now", left.append)  # Jittor is imported here: run_tool would end the process

    def raising(exc):
        def fn():
            raise exc
        return fn
    assert cli.run_tool(raising(KeyboardInterrupt()), interrupted_message="nothing written") == 130
    assert capsys.readouterr().err == "error: interrupted by SIGINT; nothing written\n"
    stopped = TrainingInterrupted(signal.SIGTERM, 7, "/w/iter_6.npz")
    assert cli.run_tool(raising(stopped), interrupted_message="nothing written") == 143
    assert capsys.readouterr().err == ("interrupted by SIGTERM at iteration 7 (latest checkpoint iter_6.npz); "
                                       "resume with --resume\n")
    assert left == [130, 143]
