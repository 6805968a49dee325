"""segnext_jt.runtime keeps Jittor's parallel kernel compiler on, except in children forked after it
ran: their copy of the compiler's thread pool has no threads, and Jittor would wait for them forever.
Each case runs a small script in a fresh process; the forked child compiles kernels that never
existed (a unique comment in their source), so the compile cannot be a cache hit."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import CPU_ENV, ROOT

pytestmark = pytest.mark.slow  # each test compiles new kernels in a forked child of a subprocess (tests/README.md)

SCRIPT = r"""
import os, signal, sys, uuid
import numpy as np
import segnext_jt.runtime  # noqa: F401
import jittor as jt

def new_kernels(n=3):
    x = jt.array(np.arange(8, dtype=np.float32))
    tag = uuid.uuid4().hex
    return [jt.code(x.shape, x.dtype, [x],
                    cpu_src=f"// {tag} {i}\n for (int j = 0; j < in0_shape0; j++) @out(j) = @in0(j) + {i};")
            for i in range(n)]

threads = jt.flags.use_parallel_op_compiler
jt.sync(new_kernels())  # compiled by the thread pool, which exists from now on
pid = os.fork()
if pid == 0:
    if sys.argv[1] == "unguarded":
        jt.flags.use_parallel_op_compiler = threads  # undo runtime's at-fork hook
    print("child compiler threads", jt.flags.use_parallel_op_compiler, flush=True)
    signal.alarm(int(sys.argv[2]))  # default action: the child dies with SIGALRM
    out = jt.concat(new_kernels()).numpy()
    os._exit(0 if out.tolist()[:2] == [0.0, 1.0] else 3)
_, status = os.waitpid(pid, 0)
print("parent compiler threads", threads, "child exit", os.waitstatus_to_exitcode(status), flush=True)
"""


def _run(mode: str, alarm_s: int) -> str:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(alarm_s)], cwd=ROOT, env=CPU_ENV,
                          capture_output=True, text=True, timeout=alarm_s + 300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.skipif(not hasattr(os, "register_at_fork") or (os.cpu_count() or 1) < 2,
                    reason="needs fork and at least 2 cores (one core compiles in the calling thread)")
def test_forked_child_compiles_serially_and_finishes():
    out = _run("guarded", 240)
    assert "child compiler threads 0" in out and "child exit 0" in out, out
    assert "parent compiler threads 1 " not in out, out  # the parent compiled in parallel


@pytest.mark.skipif(not hasattr(os, "register_at_fork") or (os.cpu_count() or 1) < 2,
                    reason="needs fork and at least 2 cores (one core compiles in the calling thread)")
def test_forked_child_would_hang_in_the_parallel_compiler():
    """The cause, kept as a test: without the hook the child never finishes compiling 3 small
    kernels (serially they take seconds), and dies of the 20 s alarm."""
    out = _run("unguarded", 20)
    assert "child exit -14" in out, out  # -SIGALRM
