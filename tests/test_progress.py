"""segnext_jt.progress: the first step's compile notice and a tqdm rate that leaves it out."""
from __future__ import annotations

import io
import re

from segnext_jt.progress import first_step_notice, kernel_cache_dir, restart_rate
from tqdm import tqdm


def test_restart_rate_keeps_the_position_and_drops_the_first_iteration_from_the_eta():
    clock = {"t": 0.0}
    bar = tqdm(total=100, initial=10, file=io.StringIO(), mininterval=0, smoothing=0)
    bar._time = lambda: clock["t"]  # a fake clock: the test does not sleep
    bar.start_t = bar.last_print_t = 0.0
    clock["t"] = 100.0  # the first iteration compiles for 100 s
    bar.update(1)
    assert bar.format_dict["elapsed"] == 100.0
    restart_rate(bar)
    for _ in range(4):  # then 0.5 s per iteration
        clock["t"] += 0.5
        bar.update(1)
    d = bar.format_dict
    assert d["n"] == 15 and d["initial"] == 11
    assert d["rate"] is None or abs(d["rate"] - 2.0) < 1e-9
    assert abs((d["n"] - d["initial"]) / d["elapsed"] - 2.0) < 1e-9  # what tqdm's ETA divides by
    assert "[00:02<00:42" in bar.__str__()  # 85 remaining iterations at 2 it/s, not at 0.05 it/s
    bar.close()


def test_restart_rate_on_a_disabled_bar_is_a_no_op():
    bar = tqdm(total=5, disable=True)
    bar.update(1)
    restart_rate(bar)


def test_first_step_notice_names_the_cache_and_the_time():
    lines = []
    with first_step_notice(lines.append, True, "first step"):
        pass
    assert lines[0] == f"compiling kernels for the first step (cached in {kernel_cache_dir()}) ..."
    assert re.fullmatch(r"first step took \d+\.\d s \((\d+ new kernels compiled|no new kernels: all were cached)\)",
                        lines[1]), lines
    quiet = []
    with first_step_notice(quiet.append, False):
        pass
    assert quiet == []
