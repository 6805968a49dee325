"""The environment preparation (segnext_jt.environment) in fresh processes: what a user's script sees."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT


def _fresh_env(**overrides) -> dict:
    """This process's environment without what the project (or conftest) set for Jittor."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("nvcc_path", "SEGNEXT_DEVICE", "OMP_WAIT_POLICY", "use_cutlass")}
    env.update(overrides)
    return env


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_import_segnext_jt_then_jittor_works_without_importing_jittor_first():
    """README: `import segnext_jt` prepares the environment, so jittor can be imported after it.
    On these machines `nvcc` exists without a CUDA runtime, which crashes a bare `import jittor`."""
    code = ("import sys, segnext_jt; assert 'jittor' not in sys.modules, 'segnext_jt imported jittor'; "
            "import os, jittor; print('use_cuda', jittor.flags.use_cuda, 'nvcc_path', repr(os.environ['nvcc_path']), "
            "'omp', os.environ['OMP_WAIT_POLICY'])")
    proc = _python(code, _fresh_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    if shutil.which("nvcc"):  # the case the README warns about (no GPU on CI)
        assert "use_cuda 0 nvcc_path ''" in proc.stdout
    assert "omp PASSIVE" in proc.stdout


def test_user_settings_are_kept():
    code = "import os, segnext_jt; print(os.environ['OMP_WAIT_POLICY'])"
    proc = _python(code, _fresh_env(OMP_WAIT_POLICY="ACTIVE"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ACTIVE"


def test_bad_device_override_names_the_variable():
    proc = _python("import segnext_jt", _fresh_env(SEGNEXT_DEVICE="tpu"))
    assert proc.returncode != 0
    assert "SEGNEXT_DEVICE must be cpu, cuda or auto, got 'tpu'" in proc.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: CUDA is usable here")
def test_cuda_request_without_cuda_is_a_clear_error():
    proc = _python("import segnext_jt", _fresh_env(SEGNEXT_DEVICE="cuda"))
    assert proc.returncode != 0
    assert "SEGNEXT_DEVICE=cuda but no usable CUDA" in proc.stderr


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_child_started_with_child_env_dies_with_its_parent():
    import signal
    import time
    parent_code = ("import subprocess, sys, time; from segnext_jt.environment import child_env; "
                   "p = subprocess.Popen([sys.executable, '-c', 'import segnext_jt, time; time.sleep(120)'], "
                   "env=child_env()); print(p.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT, env=_fresh_env(),
                              stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(3)  # let the child import segnext_jt (either way it must die: see environment.py)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.time() + 60
    while _alive(child) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(child), "the child outlived its SIGKILLed parent"
