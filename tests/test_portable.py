"""segnext_jt.portable: the variables portable mode sets, when it refuses, and that they take effect
before NumPy loads (fresh processes; Jittor is not imported here: its portable core compiles cold in
about 3 min, tests/tools/test_portable_golden.py pays that once)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT


def _fresh(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = dict(os.environ, SEGNEXT_DEVICE="cpu", PYTHONPATH=str(ROOT))
    for key in ("SEGNEXT_DETERMINISTIC", "SEGNEXT_PORTABLE_THREADS", "NPY_DISABLE_CPU_FEATURES", "cc_flags"):
        env.pop(key, None)
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_requested_mode_and_its_errors():
    from segnext_jt import portable
    assert portable.requested_mode({}) == "native"
    assert portable.requested_mode({"SEGNEXT_DETERMINISTIC": " Portable "}) == "portable"
    with pytest.raises(portable.PortableModeError, match=r"^SEGNEXT_DETERMINISTIC must be native or portable, "
                                                         r"got 'bitwise'$"):
        portable.requested_mode({"SEGNEXT_DETERMINISTIC": "bitwise"})
    with pytest.raises(portable.PortableModeError, match="SEGNEXT_PORTABLE_THREADS must be an integer"):
        portable.portable_environment({"SEGNEXT_PORTABLE_THREADS": "0"})


def test_portable_environment_pins_every_isa_choice():
    from segnext_jt import portable
    env = portable.portable_environment({"SEGNEXT_PORTABLE_THREADS": "3"})
    assert "-march=x86-64-v3" in env["cc_flags"] and "-ffp-contract=off" in env["cc_flags"]
    assert env["DNNL_MAX_CPU_ISA"] == env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert "AVX512F" in env["NPY_DISABLE_CPU_FEATURES"].split() and "AVX512_SKX" in env["NPY_DISABLE_CPU_FEATURES"]
    assert env["cache_name"] != "default" and env["kernel_flags"] == ""
    assert portable.portable_environment({})["OMP_NUM_THREADS"] == "1"


def test_host_without_avx2_is_refused(tmp_path):
    import platform
    from segnext_jt import portable
    if platform.machine() not in ("x86_64", "AMD64"):
        assert portable.host_problem().startswith("portable mode needs an x86-64 CPU")
        return
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx fma\n")
    assert portable.host_problem(str(fake)) == "portable mode needs a CPU with AVX2 and FMA; this one lacks avx2"
    fake.write_text("flags\t\t: fpu sse avx avx2 fma\n")
    assert portable.host_problem(str(fake)) is None


def test_gcc_takes_the_last_march_whole():
    """Jittor puts -march=native before our cc_flags: the target must then be x86-64-v3 and nothing of
    the host's (AVX-512, tuning, cache parameters) may remain."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("no g++ (Jittor needs one to compile anything)")

    def target(*flags):
        return subprocess.run([gxx, *flags, "-Q", "--help=target", "--help=params"], capture_output=True,
                              text=True, timeout=60).stdout
    from segnext_jt.portable import CC_FLAGS
    assert target("-march=native", *CC_FLAGS.split()) == target(*CC_FLAGS.split())
    assert "-mavx512f" not in " ".join(l.split()[0] for l in target(*CC_FLAGS.split()).splitlines()
                                       if l.split()[1:2] == ["[enabled]"])


def test_portable_mode_is_set_before_numpy_loads():
    from segnext_jt import portable
    if portable.host_problem():
        pytest.skip(portable.host_problem())
    code = ("import segnext_jt, numpy, json, os; from segnext_jt.platform_info import platform_info; "
            "i = platform_info(); print(json.dumps({k: i[k] for k in ('deterministic', 'numpy_dispatch', "
            "'jittor_march', 'onednn_max_isa', 'threads', 'bits_id')}))")
    proc = _fresh(code, SEGNEXT_DETERMINISTIC="portable", OMP_NUM_THREADS="7")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout.splitlines()[-1])
    assert info["deterministic"] == "portable" and info["jittor_march"] == "x86-64-v3"
    assert info["onednn_max_isa"] == "AVX2" and info["threads"] == 1  # the user's 7 is overridden
    assert not [f for f in info["numpy_dispatch"] if f.startswith("AVX512")]
    native = json.loads(_fresh(code, OMP_NUM_THREADS="1").stdout.splitlines()[-1])
    assert native["deterministic"] == "native" and native["jittor_march"] == "native"
    assert native["bits_id"] != info["bits_id"]


def test_numpy_imported_first_is_one_line_error_on_avx512_hosts():
    from segnext_jt import portable
    code = ("import numpy, segnext_jt.environment as e\n"
            "try:\n    e.require_device()\nexcept e.DeviceError as exc:\n    print('ERROR', exc)\n"
            "else:\n    print('OK')")
    proc = _fresh(code, SEGNEXT_DETERMINISTIC="portable")
    assert proc.returncode == 0, proc.stderr[-2000:]
    avx512 = portable.numpy_pinned() is False  # this process runs native: NumPy shows what the CPU offers
    if portable.host_problem():
        assert proc.stdout.startswith("ERROR") and "AVX2" in proc.stdout
    elif avx512:
        assert proc.stdout.strip() == ("ERROR SEGNEXT_DETERMINISTIC=portable must be set before NumPy is "
                                       "imported (start the process with it in the environment)")
    else:  # NumPy found no AVX-512 to dispatch to: nothing to undo
        assert proc.stdout.strip() == "OK"


def test_bad_mode_is_one_line_before_jittor():
    proc = _fresh("import segnext_jt.environment as e\ntry:\n    e.require_device()\n"
                  "except e.DeviceError as exc:\n    print('ERROR', exc)", SEGNEXT_DETERMINISTIC="yes")
    assert proc.stdout.strip() == "ERROR SEGNEXT_DETERMINISTIC must be native or portable, got 'yes'"


def test_config_key_and_trainer_check(monkeypatch):
    from segnext_jt import load_config, portable
    from segnext_jt.config import ConfigError
    demo = ROOT / "configs" / "demo_mnist.yaml"
    assert load_config(demo).train.deterministic == "native"
    assert load_config(demo, ["train.deterministic=portable"]).train.deterministic == "portable"
    with pytest.raises(ConfigError, match="train.deterministic"):
        load_config(demo, ["train.deterministic=exact"])
    monkeypatch.delenv("SEGNEXT_DETERMINISTIC", raising=False)
    assert portable.config_mismatch("native") is None
    assert "SEGNEXT_DETERMINISTIC=portable" in portable.config_mismatch("portable")
    portable.reexec_if_needed("native")  # a no-op (it would replace this process otherwise)


def test_active_mode_needs_the_variables_and_unpinned_numpy_reads_native(monkeypatch):
    from segnext_jt import portable
    monkeypatch.setenv("SEGNEXT_DETERMINISTIC", "portable")
    for key, value in portable.portable_environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(portable, "numpy_pinned", lambda: True)
    import jittor  # this test process imported it natively (-march=native only)
    assert portable.active_mode() == "native"
    monkeypatch.delitem(sys.modules, "jittor")  # as if not imported yet
    assert portable.active_mode() == "portable"
    monkeypatch.setattr(portable, "numpy_pinned", lambda: False)
    assert portable.active_mode() == "native"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(portable, "numpy_pinned", lambda: True)
    assert portable.active_mode() == "native"
    assert jittor
