"""The first step's kernel compilation made visible, and kept out of the progress bar's ETA.

Jittor compiles a kernel the first time a graph needs it and caches it on disk; on a fresh cache
the first training step (or evaluation batch) can take minutes, which a tqdm bar shows as a
"133 s/it" rate and an ETA of hours. Jittor holds the GIL while it compiles, so no Python thread
can tick a timer meanwhile: we print a line before and one after (with the time and the number of
new kernels), and Jittor's parallel compiler prints its own "Compiling Operators(i/n) used: ...s"
progress while it works (segnext_jt/runtime.py keeps it on where it is safe).
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterator, Optional


def kernel_cache_dir() -> str:
    """Where Jittor keeps its compiled kernels (<cache_path>/jit; see jittor_utils.find_cache_path)."""
    import jittor_utils
    return os.path.join(jittor_utils.cache_path, "jit")


def _count_kernels(folder: str) -> Optional[int]:
    try:
        return sum(1 for name in os.listdir(folder) if name.endswith(".so"))
    except OSError:
        return None


@contextlib.contextmanager
def first_step_notice(write: Callable[[str], None], active: bool, what: str = "first step") -> Iterator[None]:
    """Around the first execution of a graph (`active`): say that kernels compile and where they are
    cached, then how long it took and how many kernels were new."""
    if not active:
        yield
        return
    folder = kernel_cache_dir()
    before = _count_kernels(folder)
    write(f"compiling kernels for the {what} (cached in {folder}) ...")
    t0 = time.perf_counter()
    yield
    seconds = time.perf_counter() - t0
    after = _count_kernels(folder)
    new = None if before is None or after is None else max(after - before, 0)
    detail = ("kernel compile" if new is None else
              f"{new} new kernels compiled" if new else "no new kernels: all were cached")
    write(f"{what} took {seconds:.1f} s ({detail})")


def restart_rate(bar) -> None:
    """Make a tqdm bar measure its rate and ETA from now on, keeping its position: called after the
    first iteration, whose time is mostly kernel compilation."""
    if bar.disable:
        return
    n = bar.n
    bar.reset()           # start time, last print and the smoothed rate start again
    bar.initial = bar.n = bar.last_print_n = n  # the rate counts the iterations after this one
    bar.refresh()
