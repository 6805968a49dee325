"""Reports and logs against hostile inputs (issue 18, class 8): huge numbers, class names that are
Markdown or HTML, train_log paths that point anywhere, interrupts. Each ends in one line (exit 2) or
a warning, never a traceback, a hang or a partial report. No Jittor."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import LOGS, ROOT

from segnext_jt.repro.report import compare_logs

from segnext_jt.repro.report import command as report

HUGE = "9" * 5001  # more digits than Python converts from text (sys.get_int_max_str_digits)




def _result(seed=1, **over):
    obj = {"seed": seed, "config": "configs/segnext_mscan-l_ade20k_160k.yaml", "checkpoint": "c.npz",
           "final_loss": 0.4, "train_log": None,
           "eval": [{"eval_seed": e, "mode": "ss", "mIoU": 50.0 + e, "aAcc": 80.0, "mAcc": 60.0,
                     "per_class_iou": [40.0 + e, 50.0, 60.0], "class_names": ["road", "sky", "car"]}
                    for e in range(3)]}
    obj.update(over)
    return obj


def _sweep(root: Path, results: dict[int, object]) -> Path:
    for seed, obj in results.items():
        (root / f"seed_{seed}").mkdir(parents=True, exist_ok=True)
        text = obj if isinstance(obj, str) else json.dumps(obj)
        (root / f"seed_{seed}" / "result.json").write_text(text)
    return root


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and len(err[0]) < 600, err
    for needle in needles:
        assert needle in err[0], err
    return err[0]


@pytest.mark.parametrize("text", [
    '{"seed": 1, "eval": [], "final_loss": %s}' % HUGE,
    '{"seed": %s, "eval": []}' % HUGE,
    '[%s]' % HUGE,
], ids=["final_loss", "seed", "list"])
def test_result_json_with_a_5001_digit_integer(tmp_path, capsys, text):
    sweep = _sweep(tmp_path / "s", {1: text})
    assert report.main([str(sweep)]) == 2
    _one_error_line(capsys, "result.json", "4300 digits")


@pytest.mark.parametrize("field, value", [
    ("final_loss", 10 ** 400), ("final_loss", -10 ** 4000), ("mIoU", 10 ** 309), ("seed", 10 ** 4000),
    ("eval_seed", "x" * 100_000), ("mode", ["ss"] * 100_000),
], ids=["loss-400-digits", "loss-minus-4000-digits", "mIoU-310-digits", "seed-4000-digits", "eval_seed-long-str",
        "mode-long-list"])
def test_result_json_with_absurd_numbers_is_one_short_line(tmp_path, capsys, field, value):
    obj = _result()
    if field in ("final_loss", "seed"):
        obj[field] = value
    else:
        obj["eval"][0][field] = value
    sweep = _sweep(tmp_path / "s", {1: obj})
    assert report.main([str(sweep)]) == 2
    _one_error_line(capsys, "result.json", field)


LOG_META = '{"seed": 1, "config": "x"}\n'


@pytest.mark.parametrize("bad_iter", ["1e308", "1e400", "-1", '"x"', "[1]", HUGE, "9007199254740993", "2.5"],
                         ids=["1e308", "1e400", "-1", "str", "list", "5001-digits", "2^53+1", "2.5"])
def test_log_iter_that_is_not_an_iteration(tmp_path, capsys, bad_iter):
    good = tmp_path / "good.json"
    good.write_text(LOG_META + '{"mode": "train", "iter": 10, "lr": 0.1, "loss": 1.0}\n')
    bad = tmp_path / "bad.json"
    bad.write_text(LOG_META + '{"mode": "train", "iter": 10, "lr": 0.1, "loss": 1.0}\n'
                   '{"mode": "train", "iter": %s, "lr": 0.1, "loss": 1.0}\n' % bad_iter)
    assert compare_logs.main([str(good), str(bad)]) == 2
    _one_error_line(capsys, f"{bad}:3")
    # in a sweep report the same log is a warning naming it, and the report is written
    sweep = _sweep(tmp_path / "s", {1: _result(train_log="log.json")})
    (sweep / "seed_1" / "log.json").write_bytes(bad.read_bytes())
    assert report.main([str(sweep), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "train_log unreadable" in err and "log.json:3" in err


def test_number_beyond_float_range_in_a_log(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(LOG_META + '{"mode": "train", "iter": 10, "lr": 0.1, "loss": %s}\n' % ("9" * 400))
    assert compare_logs.main([str(bad), str(bad)]) == 2
    _one_error_line(capsys, f"{bad}:2", "loss")


HOSTILE_NAMES = ["a|b", "<!-- hidden", "<script>alert(1)</script>", "x`y", "*bold*", "[l](http://e)", "c\\|d",
                 "line\nbreak", "&amp;", "_u_", "~~s~~"]


def test_class_names_are_escaped_in_report_md(tmp_path, capsys):
    names = HOSTILE_NAMES
    results = {}
    for seed in (1, 2, 3):
        obj = _result(seed)
        for e, ev in enumerate(obj["eval"]):
            ev["per_class_iou"] = [10.0 * seed + e + i for i in range(len(names))]
            ev["class_names"] = names
        results[seed] = obj
    sweep = _sweep(tmp_path / "s", results)
    assert report.main([str(sweep), "--out", str(tmp_path / "o"), "--label", "<b>mine|x</b>"]) == 0
    md = (tmp_path / "o" / "report.md").read_text()
    assert "<script" not in md and "<!--" not in md and "<b>" not in md
    table = md[md.index("| class | mean IoU"):].split("\n\n")[0].splitlines()[2:]
    assert table, md
    for row in table:  # every row has exactly 3 cells: unescaped pipes would add columns
        cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
        assert len(cells) == 3, row
    shown = " ".join(table)
    assert "&lt;script&gt;" in shown and "a\\|b" in shown and "&amp;amp;" in shown


@pytest.mark.parametrize("plant", ["../../../../../../etc/passwd", "/etc/passwd", "/dev/zero", "fifo",
                                   "symlink out", "symlink to fifo", "too big", "directory", "absolute inside"])
def test_train_log_is_confined_to_the_sweep_and_regular_files(tmp_path, capsys, alarm, plant):
    sweep = tmp_path / "s"
    seed_dir = sweep / "seed_1"
    seed_dir.mkdir(parents=True)
    outside = tmp_path / "outside.log.json"
    outside.write_bytes((LOGS / "mm0_seed0.log.json").read_bytes())
    train_log = plant
    if plant == "fifo":
        os.mkfifo(seed_dir / "log.json")
        train_log = "log.json"
    elif plant == "symlink out":
        (seed_dir / "log.json").symlink_to(outside)
        train_log = "log.json"
    elif plant == "symlink to fifo":
        os.mkfifo(tmp_path / "f")
        (seed_dir / "log.json").symlink_to(tmp_path / "f")
        train_log = "log.json"
    elif plant == "too big":
        with open(seed_dir / "log.json", "wb") as f:
            f.truncate(report_inputs_cap() + 1)
        train_log = "log.json"
    elif plant == "directory":
        (seed_dir / "log.json").mkdir()
        train_log = "log.json"
    elif plant == "absolute inside":  # allowed: an absolute path inside the sweep
        (seed_dir / "log.json").write_bytes((LOGS / "mm0_seed0.log.json").read_bytes())
        train_log = str(seed_dir / "log.json")
    (seed_dir / "result.json").write_text(json.dumps(_result(train_log=train_log)))
    assert report.main([str(sweep), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if plant == "absolute inside":
        assert "train_log" not in err
        return
    warning = [line for line in err.splitlines() if "train_log" in line]
    assert len(warning) == 1 and len(warning[0]) < 600, err
    assert "root:" not in (tmp_path / "o" / "report.md").read_text()


def report_inputs_cap():
    from segnext_jt.repro.report.inputs import MAX_TRAIN_LOG_BYTES
    return MAX_TRAIN_LOG_BYTES


def _slow_sweep(tmp_path: Path) -> Path:
    """A sweep whose train log takes a few seconds to parse (time to send a signal)."""
    sweep = _sweep(tmp_path / "s", {1: _result(train_log="log.json")})
    line = '{"mode": "train", "epoch": 1, "iter": %d, "lr": 6e-05, "loss": 0.5, "time": 0.3}\n'
    with open(sweep / "seed_1" / "log.json", "w") as f:
        f.write(LOG_META)
        for start in range(1, 600_001, 10_000):
            f.write("".join(line % i for i in range(start, start + 10_000)))
    return sweep


def _handlers_installed(pid: int) -> bool:
    """SIGTERM is caught (install_signal_handlers ran) according to /proc/<pid>/status."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status).group(1), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("out_exists", [False, True])
def test_interrupted_report_is_one_line_and_leaves_the_previous_report(tmp_path, sig, out_exists):
    sweep = _slow_sweep(tmp_path)
    out = tmp_path / "out"
    if out_exists:
        out.mkdir()
        (out / "report.md").write_text("previous report\n")
    proc = subprocess.Popen([sys.executable, str(ROOT / "repro" / "report.py"), str(sweep), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.time() + 60
    while not _handlers_installed(proc.pid) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(sig)
    out_text, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert err.strip().splitlines() == [f"error: interrupted by {signal.Signals(sig).name}; no report written "
                                        "(a previous one is left as it was)"], err
    if out_exists:
        assert sorted(p.name for p in out.iterdir()) == ["report.md"]
        assert (out / "report.md").read_text() == "previous report\n"
    else:
        assert not out.exists()
