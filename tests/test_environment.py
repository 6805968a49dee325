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


def test_bad_device_override_is_recorded_and_raised_where_jittor_is_imported():
    """A bare `import segnext_jt` must not fail (the tools report the error as one line); importing
    segnext_jt.runtime (what builds a model) raises it."""
    proc = _python("import segnext_jt; print('imported')", _fresh_env(SEGNEXT_DEVICE="tpu"))
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr[-2000:]
    proc = _python("import segnext_jt.runtime", _fresh_env(SEGNEXT_DEVICE="tpu"))
    assert proc.returncode != 0
    assert "DeviceError: SEGNEXT_DEVICE must be auto, cpu or cuda, got 'tpu'" in proc.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: CUDA is usable here")
def test_cuda_request_without_cuda_is_a_clear_error():
    proc = _python("import segnext_jt.runtime", _fresh_env(SEGNEXT_DEVICE="cuda"))
    assert proc.returncode != 0
    assert "DeviceError: SEGNEXT_DEVICE=cuda cannot be used: " in proc.stderr


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


# ------------------------------------------------------------------------------------------------
# the device decision (segnext_jt.environment.decide_device) with simulated machines
# ------------------------------------------------------------------------------------------------
FAKE_NVCC = "/fake/cuda/bin/nvcc"
MACHINES = {  # name -> the probes' answers, in the order environment.probe_cuda asks them
    "no_driver": dict(driver=(0, "no NVIDIA driver (libcuda.so.1 cannot be loaded)")),
    "driver_no_gpu": dict(driver=(0, None)),
    "gpu_no_nvcc": dict(driver=(1, None), nvcc=(None, "no nvcc (Jittor compiles its CUDA kernels with it)")),
    "gpu_no_runtime": dict(driver=(1, None), nvcc=(FAKE_NVCC, None),
                           runtime=(None, "no CUDA runtime next to nvcc /fake/cuda/bin/nvcc")),
    "gpu_old_driver": dict(driver=(1, None), driver_api="11.8", nvcc=(FAKE_NVCC, None), runtime=("12.4", None)),
    "gpu_cudnn9_only": dict(driver=(1, None), nvcc=(FAKE_NVCC, None), runtime=("12.4", None),
                            cudnn=("9.1.0", "cuDNN 9.1.0 found, but Jittor 1.3.11 knows only cuDNN 8's library names")),
    "gpu_no_cudnn": dict(driver=(2, None), nvcc=(FAKE_NVCC, None), runtime=("12.4", None),
                         cudnn=(None, "no cuDNN: Jittor looks for cudnn.h in ...")),
    "all_fine": dict(driver=(2, None), nvcc=(FAKE_NVCC, None), runtime=("12.4", None), cudnn=("8.9.7", None)),
}
# why CUDA cannot be used on each machine (None: it can), and whether a GPU is there (auto warns)
REASONS = {"no_driver": ("no NVIDIA driver", False), "driver_no_gpu": ("reports no GPU", False),
           "gpu_no_nvcc": ("no nvcc", True), "gpu_no_runtime": ("no CUDA runtime", True),
           "gpu_old_driver": ("supports CUDA 11.8 but nvcc", True), "gpu_cudnn9_only": ("cuDNN 9.1.0 found", True),
           "gpu_no_cudnn": ("no cuDNN", True), "all_fine": (None, True)}


def _simulate(monkeypatch, machine: str) -> list:
    """Monkeypatch the probes to answer as `machine`; returns the list of probes called."""
    from segnext_jt import cuda_probes
    answers, called = MACHINES[machine], []

    def probe(name, value):
        def fake(*args):
            called.append(name)
            if value is None:
                raise AssertionError(f"probe {name} called after an earlier problem")
            return value
        monkeypatch.setattr(cuda_probes, name, fake)

    probe("probe_driver", answers["driver"])
    probe("probe_gpu_names", ["NVIDIA Fake GPU"] * answers["driver"][0])
    probe("probe_driver_version", answers.get("driver_api", "12.4"))
    probe("probe_nvidia_driver_version", "550.54.15")
    probe("probe_nvcc", answers.get("nvcc"))
    probe("probe_cuda_runtime", answers.get("runtime"))
    probe("probe_cudnn", answers.get("cudnn"))
    return called


@pytest.mark.parametrize("machine", sorted(MACHINES))
@pytest.mark.parametrize("requested", ["auto", "cpu", "cuda", None])
def test_decision_table(monkeypatch, machine, requested):
    from segnext_jt.environment import decide_device
    called = _simulate(monkeypatch, machine)
    reason, gpu_present = REASONS[machine]
    d = decide_device(requested, "SEGNEXT_DEVICE")
    if requested == "cpu":  # nothing probed, nothing said
        assert (d.device, d.error, d.warning, called) == ("cpu", None, None, [])
        return
    if reason is None:  # CUDA usable: auto and cuda both take it
        assert (d.device, d.error, d.warning) == ("cuda", None, None)
        assert d.cuda.gpu_names == ["NVIDIA Fake GPU"] * 2 and d.cuda.cudnn == "8.9.7"
        return
    assert d.device == "cpu"
    if requested == "cuda":  # an error naming the reason, no warning
        assert d.warning is None and d.error.startswith("SEGNEXT_DEVICE=cuda cannot be used: ")
        assert reason in d.error and "\n" not in d.error
    elif gpu_present:  # auto with an unusable GPU: one warning line with the reason, then the CPU
        assert d.error is None and d.warning.startswith("warning: ") and reason in d.warning
        assert "\n" not in d.warning and "running on the CPU" in d.warning
    else:  # auto without a GPU: the CPU, silently
        assert (d.error, d.warning) == (None, None)


@pytest.mark.parametrize("value", ["bogus", "GPU", "cuda:0"])
def test_bogus_request_is_one_line_error_without_probing(monkeypatch, value):
    from segnext_jt.environment import decide_device
    called = _simulate(monkeypatch, "all_fine")
    d = decide_device(value, "--device")
    assert d.device == "cpu" and not called
    assert d.error == f"--device must be auto, cpu or cuda, got {value!r}"


def _fake_cuda_tree(root, cuda="12.4", cudnn=None, cudnn_libs=(), runtime=True):
    """A CUDA toolkit directory as Jittor sees it: bin/nvcc, lib64/libcudart.so (a copy of a real
    loadable library is not needed: the runtime probe is tested on the real one below), include/."""
    import stat
    (root / "bin").mkdir(parents=True)
    (root / "lib64").mkdir()
    (root / "include").mkdir()
    nvcc = root / "bin" / "nvcc"
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {cuda}, V{cuda}.1'\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IXUSR)
    if runtime:
        (root / "lib64" / "libcudart.so").write_bytes(b"")
    if cudnn:
        major, minor, patch = cudnn.split(".")
        (root / "include" / "cudnn.h").write_text('#include "cudnn_version.h"\n')
        (root / "include" / "cudnn_version.h").write_text(
            f"#define CUDNN_MAJOR {major}\n#define CUDNN_MINOR {minor}\n#define CUDNN_PATCHLEVEL {patch}\n")
    for name in cudnn_libs:
        (root / "lib64" / name).write_bytes(b"")
    return str(nvcc)


CUDNN8_LIBS = ("libcudnn.so", "libcudnn_ops_infer.so", "libcudnn_ops_train.so", "libcudnn_cnn_infer.so",
               "libcudnn_cnn_train.so")
CUDNN9_LIBS = ("libcudnn.so", "libcudnn.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_graph.so.9")
_SYSTEM_CUDNN = any(os.path.exists(p) for p in ("/usr/include/cudnn.h", "/usr/include/x86_64-linux-gnu/cudnn.h"))


def test_cudnn_probe_reads_what_jittor_links(tmp_path):
    from segnext_jt.cuda_probes import probe_cudnn
    nvcc = _fake_cuda_tree(tmp_path / "c8", cudnn="8.9.7", cudnn_libs=CUDNN8_LIBS)
    assert probe_cudnn(nvcc, "12.4") == ("8.9.7", None)
    nvcc = _fake_cuda_tree(tmp_path / "c9", cudnn="9.1.0", cudnn_libs=CUDNN9_LIBS)
    version, problem = probe_cudnn(nvcc, "12.4")
    assert version == "9.1.0" and problem.startswith("cuDNN 9.1.0 found, but Jittor ")
    assert "libcudnn_ops_infer.so" in problem and "jittor_utils.install_cuda" in problem
    # cuDNN 8 runtime only (libcudnn.so.8, no unversioned development names) with CUDA 12: Jittor
    # looks for the bare names
    nvcc = _fake_cuda_tree(tmp_path / "c8rt", cudnn="8.9.7",
                           cudnn_libs=[n + ".8" for n in CUDNN8_LIBS])
    version, problem = probe_cudnn(nvcc, "12.4")
    assert "libcudnn.so not found" in problem
    # ... which CUDA 11 accepts (Jittor prefers the .so.8 names there)
    assert probe_cudnn(nvcc, "11.8") == ("8.9.7", None)
    if not _SYSTEM_CUDNN:
        nvcc = _fake_cuda_tree(tmp_path / "none")
        version, problem = probe_cudnn(nvcc, "12.4")
        assert version is None and problem.startswith("no cuDNN: Jittor looks for cudnn.h in ")


def test_nvcc_probe_follows_jittors_order(tmp_path, monkeypatch):
    from segnext_jt import cuda_probes
    system = _fake_cuda_tree(tmp_path / "system")
    monkeypatch.setenv("JITTOR_HOME", str(tmp_path / "jhome"))
    monkeypatch.setenv("PATH", os.path.dirname(system))
    monkeypatch.delenv("nvcc_path", raising=False)
    monkeypatch.delenv("JTCUDA_VERSION", raising=False)
    monkeypatch.setattr(cuda_probes, "SYSTEM_NVCC", ())
    assert cuda_probes.probe_nvcc("12.4") == (system, None)  # PATH
    # Jittor's own CUDA wins once its jtcuda directory exists ...
    jtcuda = tmp_path / "jhome" / ".cache" / "jittor" / "jtcuda"
    jtcuda.mkdir(parents=True)
    path, problem = cuda_probes.probe_nvcc("12.4")
    assert path is None and "cuda12.2_cudnn8_linux/bin/nvcc" in problem and "download" in problem
    own = _fake_cuda_tree(jtcuda / "cuda12.2_cudnn8_linux")
    assert cuda_probes.probe_nvcc("12.4") == (own, None)
    assert cuda_probes.jtcuda_package("11.4") == "cuda11.2_cudnn8_linux"
    assert cuda_probes.jtcuda_package("9.2") is None
    # ... and $nvcc_path wins over both; '' is Jittor's CPU switch
    monkeypatch.setenv("nvcc_path", system)
    assert cuda_probes.probe_nvcc("12.4") == (system, None)
    monkeypatch.setenv("nvcc_path", "")
    assert "nvcc_path is set to ''" in cuda_probes.probe_nvcc("12.4")[1]
    monkeypatch.delenv("nvcc_path")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    jtcuda_dir = str(jtcuda)
    import shutil as sh
    sh.rmtree(jtcuda_dir)
    path, problem = cuda_probes.probe_nvcc("12.4")
    assert path is None and problem.startswith("no nvcc") and "nvcc_path=" in problem


def test_runtime_probe_loads_the_library_next_to_nvcc(tmp_path):
    from segnext_jt.cuda_probes import cuda_dirs, probe_cuda_runtime
    nvcc = _fake_cuda_tree(tmp_path / "noruntime", runtime=False)
    version, problem = probe_cuda_runtime(nvcc)
    assert version is None and str(tmp_path / "noruntime" / "lib64" / "libcudart.so") in problem
    nvcc = _fake_cuda_tree(tmp_path / "broken")  # an empty file is no library
    version, problem = probe_cuda_runtime(nvcc)
    assert version is None and "cannot be loaded" in problem
    link = tmp_path / "bin_link"
    link.mkdir()
    os.symlink(nvcc, link / "nvcc")  # a symlinked nvcc: Jittor follows it to the toolkit
    assert cuda_dirs(str(link / "nvcc"))["lib"] == str(tmp_path / "broken" / "lib64")
    real = "/usr/local/cuda/bin/nvcc"
    if os.path.isfile("/usr/local/cuda/lib64/libcudart.so"):  # a real toolkit without a GPU (this CI)
        version, problem = probe_cuda_runtime(real)
        assert problem is None and version[0].isdigit()


# ------------------------------------------------------------------------------------------------
# the decision applied: environment variables, --device, the tools (fresh processes)
# ------------------------------------------------------------------------------------------------
_PATCH_ALL_FINE = ("import segnext_jt.cuda_probes as p; "
                   "p.probe_driver = lambda: (1, None); p.probe_gpu_names = lambda n: ['NVIDIA Fake']; "
                   "p.probe_driver_version = lambda: '12.4'; p.probe_nvidia_driver_version = lambda: '550.1'; "
                   "p.probe_nvcc = lambda v: ('/fake/bin/nvcc', None); "
                   "p.probe_cuda_runtime = lambda n: ('12.4', None); p.probe_cudnn = lambda n, v: ('8.9.7', None); ")


def test_select_device_decides_again_and_undoes_our_cpu_settings():
    """`import segnext_jt` on this CPU host set nvcc_path='' for the CPU; --device cuda on a (simulated)
    usable GPU must remove it again (Jittor would stay on the CPU) and keep the user's other settings."""
    code = (_PATCH_ALL_FINE + "import os, sys; from segnext_jt import environment as e; "
            "before = os.environ.get('nvcc_path'); "
            "print(e.select_device('cuda'), repr(before), repr(os.environ.get('nvcc_path')), "
            "os.environ['SEGNEXT_DEVICE'], os.environ.get('use_cutlass'), 'jittor' in sys.modules)")
    proc = _python(code, _fresh_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    if shutil.which("nvidia-smi") is None:
        assert proc.stdout.split() == ["cuda", "''", "None", "cuda", "0", "False"]


def test_auto_with_an_unusable_gpu_warns_once_and_runs_on_the_cpu():
    code = ("import segnext_jt.cuda_probes as p; p.probe_driver = lambda: (2, None); "
            "p.probe_nvcc = lambda v: (None, 'no nvcc (simulated)'); "
            "from segnext_jt.cli import apply_device; apply_device('auto'); "
            "import segnext_jt.runtime as r, jittor; print('device', r.DEVICE, jittor.flags.use_cuda)")
    proc = _python(code, _fresh_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["device", "cpu", "0"]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "2 GPUs found but CUDA cannot be used (no nvcc (simulated))" in warnings[0]


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_jittor_without_cuda_after_a_cuda_decision_is_never_silent(requested):
    """The probes said CUDA, but Jittor's import gives has_cuda false (simulated with nvcc_path=''):
    an error when cuda was requested, one warning and the CPU under auto."""
    code = (_PATCH_ALL_FINE + "import os; from segnext_jt.cli import apply_device; "
            f"print(apply_device('{requested}')); os.environ['nvcc_path'] = ''; "
            "import segnext_jt.runtime as r, jittor; print('device', r.DEVICE, jittor.flags.use_cuda)")
    proc = _python(code, _fresh_env())
    if requested == "cuda":
        assert proc.returncode != 0
        assert "DeviceError: --device=cuda cannot be used: Jittor could not set up CUDA" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split() == ["cuda", "device", "cpu", "0"]
        warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "Jittor could not set up CUDA" in warnings[0]


def _tool(name, *args, env):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: CUDA is usable here")
@pytest.mark.parametrize("tool", ["train.py", "eval.py"])
@pytest.mark.parametrize("how", ["env_cuda", "env_bogus", "flag_cuda"])
def test_tools_refuse_an_unusable_device_with_one_line(tmp_path, tool, how):
    from helpers import DEMO_CFG, one_error_line
    env = _fresh_env(SEGNEXT_DEVICE={"env_cuda": "cuda", "env_bogus": "bogus", "flag_cuda": "cpu"}[how])
    env.pop("SEGNEXT_DEBUG", None)
    flags = ["--device", "cuda"] if how == "flag_cuda" else []
    work = tmp_path / "work"
    if tool == "train.py":
        args = [DEMO_CFG, "--work-dir", str(work), *flags]
    else:
        ck = tmp_path / "ck.npz"
        ck.write_bytes(b"x")
        args = [DEMO_CFG, str(ck), "--json", str(work / "m.json"), "--out-dir", str(work / "pred"), *flags]
    proc = _tool(tool, *args, env=env)
    needle = "must be auto, cpu or cuda, got 'bogus'" if how == "env_bogus" else "=cuda cannot be used: "
    one_error_line(proc, needle, "--device" if how == "flag_cuda" else "SEGNEXT_DEVICE")
    assert not work.exists(), "the tool wrote something before refusing the device"


def test_device_cpu_flag_overrides_a_bad_environment(tmp_path):
    """--device cpu wins over SEGNEXT_DEVICE=bogus: the run gets as far as its next check (here a
    checkpoint that is not one) and prints the platform line first."""
    from helpers import DEMO_CFG
    ck = tmp_path / "ck.npz"
    ck.write_bytes(b"not a checkpoint")
    env = _fresh_env(SEGNEXT_DEVICE="bogus")
    env.pop("SEGNEXT_DEBUG", None)
    proc = _tool("eval.py", DEMO_CFG, str(ck), "--device", "cpu", "--limit", "1", "--no-progress", env=env)
    assert "SEGNEXT_DEVICE" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.startswith("device cpu | CPU "), proc.stdout[-2000:]
    assert proc.returncode == 1 and proc.stderr.startswith("error: ")


@pytest.mark.slow
def test_seed_sweep_passes_device_to_its_runs(tmp_path):
    from helpers import DEMO_CFG, one_error_line
    env = _fresh_env(SEGNEXT_DEVICE="cpu")
    env.pop("SEGNEXT_DEBUG", None)
    sweep = [sys.executable, os.path.join(ROOT, "repro", "seed_sweep.py"), "--config", DEMO_CFG,
             "--work-dir", str(tmp_path / "w"), "--seeds", "0,1", "--dry-run"]
    proc = subprocess.run(sweep + ["--device", "cpu"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    workers = [line for line in proc.stdout.splitlines() if "--_one-seed" in line]
    assert len(workers) == 2 and all(line.rstrip().endswith("--device cpu") or "--device cpu " in line
                                     for line in workers)
    if shutil.which("nvidia-smi") is None:
        proc = subprocess.run(sweep + ["--device", "cuda"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        one_error_line(proc, "--device=cuda cannot be used: ")
        assert not (tmp_path / "w").exists()
