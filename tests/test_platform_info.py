"""segnext_jt.platform_info: the platform dict, the tools' first line and log.json's env_info lines."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from helpers import ROOT


def test_platform_info_on_this_cpu_host():
    from segnext_jt import platform_info as pi
    info = pi.platform_info()
    assert info["device"] == "cpu"  # tests run with SEGNEXT_DEVICE=cpu
    assert (info["gpu_count"], info["gpu_names"], info["cuda_runtime"], info["cudnn"]) == (0, [], None, None)
    import jittor
    import numpy
    assert info["jittor"] == jittor.__version__ and info["numpy"] == numpy.__version__
    assert info["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert info["threads"] >= 1 and info["cpu_count"] >= 1
    assert set(info["cpu_isa"]) <= set(pi.ISA_FLAGS)
    with open("/proc/cpuinfo") as f:
        text = f.read()
    if "avx2" in text.split():
        assert "avx2" in info["cpu_isa"]
    if "model name" in text:
        assert info["cpu_model"] and info["cpu_model"] in " ".join(text.split())
    assert len(info["platform_id"]) == 12 and info["platform_id"] == pi.platform_info()["platform_id"]
    json.dumps(info)  # JSON-ready
    host = socket.gethostname()
    if len(host) >= 4:
        assert host not in json.dumps(info)


def test_platform_id_changes_with_the_machine_kind_not_with_the_load(monkeypatch):
    from segnext_jt import platform_info as pi
    info = pi.platform_info()
    assert pi.platform_id(dict(info, threads=info["threads"] + 7, omp_num_threads="1")) == info["platform_id"]
    assert pi.platform_id(dict(info, cpu_model="Other CPU")) != info["platform_id"]
    assert pi.platform_id(dict(info, cpu_isa=info["cpu_isa"] + ["amx_tile"])) != info["platform_id"]
    assert pi.platform_id(dict(info, device="cuda", gpu_names=["NVIDIA H100"])) != info["platform_id"]


def test_thread_count_follows_omp_num_threads(monkeypatch):
    from segnext_jt.platform_info import thread_count
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert thread_count() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert thread_count() == len(os.sched_getaffinity(0))


def _cuda_info():
    from segnext_jt import platform_info as pi
    info = dict(pi.platform_info(), device="cuda", gpu_count=3,
                gpu_names=["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", "NVIDIA H100"],
                nvidia_driver="550.54.15", cuda_runtime="12.2", cudnn="8.9.7", nvcc="/usr/local/cuda/bin/nvcc",
                cpu_model="AMD EPYC 7742", cpu_isa=["avx2", "fma"], threads=16)
    info["platform_id"] = pi.platform_id(info)
    return info


def test_summary_line():
    from segnext_jt.platform_info import platform_info, summary_line
    line = summary_line()
    info = platform_info()
    assert line.startswith("device cpu | CPU ") and "\n" not in line
    assert f"| {info['threads']} threads |" in line and f"jittor {info['jittor']} numpy {info['numpy']}" in line
    assert line.endswith(f"platform {info['platform_id']}")
    line = summary_line(_cuda_info())
    assert line.startswith("device cuda | 2x NVIDIA A100-SXM4-80GB, 1x NVIDIA H100 (driver 550.54.15, CUDA 12.2, "
                           "cuDNN 8.9.7) | CPU AMD EPYC 7742 (avx2 fma) | 16 threads | ")


def test_env_info_lines_are_mmseg_style():
    from segnext_jt.platform_info import env_info_text
    lines = env_info_text(_cuda_info()).splitlines()
    assert all(": " in line for line in lines)
    assert lines[:3] == ["CUDA available: True", "GPU 0,1: NVIDIA A100-SXM4-80GB", "GPU 2: NVIDIA H100"]
    assert "cuDNN: 8.9.7" in lines and "CPU ISA: avx2 fma" in lines and "Threads: 16" in lines
    cpu_lines = env_info_text().splitlines()
    assert cpu_lines[0] == "CUDA available: False" and not any(l.startswith(("GPU", "cuDNN")) for l in cpu_lines)


def test_platform_info_does_not_import_jittor():
    code = ("import sys, json; from segnext_jt.platform_info import platform_info, summary_line; "
            "info = platform_info(); print(summary_line(info)); assert 'jittor' not in sys.modules; "
            "assert info['jittor'], info")
    env = dict(os.environ, SEGNEXT_DEVICE="cpu")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("device cpu | CPU ")


def test_fingerprint_names_what_each_library_runs_and_no_personal_data():
    import getpass
    import jittor  # noqa: F401  (loads oneDNN: its ISA is then read from the library)
    from segnext_jt import platform_info as pi
    info = pi.platform_info()
    assert info["platform_info_version"] == 2 and info["deterministic"] == "native"  # tests run native
    assert info["jittor_march"] == "native" and "-march=native" in info["jittor_codegen_flags"]
    assert all(f.startswith("-") and "/" not in f for f in info["jittor_codegen_flags"])  # no paths
    assert info["compiler"] and info["compiler"].startswith(("g++", "clang"))
    assert info["onednn_isa"] in pi._DNNL_ISA.values() and info["onednn_max_isa"] is None
    assert set(info["numpy_baseline"]) & {"SSE2", "NEON", "ASIMD"}
    assert set(info["numpy_dispatch"]) <= set(__import__("numpy").core._multiarray_umath.__cpu_dispatch__)
    assert len(info["bits_id"]) == 12 and info["bits_id"] != info["platform_id"]
    assert pi.bits_id(dict(info, threads=info["threads"] + 1)) != info["bits_id"]  # oneDNN splits by threads
    text = json.dumps(info)
    for personal in (socket.gethostname(), getpass.getuser(), os.path.expanduser("~")):
        if len(personal) >= 4:
            assert personal not in text
    lines = pi.env_info_text(info).splitlines()
    assert "Deterministic: native" in lines and f"Bits id: {info['bits_id']}" in lines


def test_bits_id_leaves_the_cpu_out_only_in_portable_mode():
    from segnext_jt import platform_info as pi
    info = dict(pi.platform_info(), deterministic="portable")
    other_cpu = dict(info, cpu_model="Intel Xeon", cpu_isa=["avx2", "fma"])
    assert pi.bits_id(other_cpu) == pi.bits_id(info)
    assert pi.bits_id(dict(other_cpu, deterministic="native")) != pi.bits_id(dict(info, deterministic="native"))
    assert pi.bits_id(dict(info, onednn_isa="avx512_core")) != pi.bits_id(info)
