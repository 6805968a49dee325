"""What a run ran on, as a flat dict that can grow (no Jittor import here; cheap: no subprocess).

`platform_info()` gives the device and, on CUDA, the GPUs, driver, CUDA runtime and cuDNN versions
(None on the CPU: they are what segnext_jt.environment's probes found, not probed again), the Jittor,
NumPy and Python versions, the CPU model and the ISA flags that decide which kernels run, the thread
count, and `platform_id`: a short hash of all of that (no host name), equal for two runs on the same
kind of machine and software. Version 2 adds what each library actually runs (`library_isa`: the
deterministic mode, Jittor's compiler and -march, oneDNN's ISA, NumPy's SIMD dispatch) and `bits_id`,
equal for runs expected to give the same bits (see segnext_jt.portable). `summary_line()` is the
first line the tools print when they start work; `env_info_text()` the lines added to log.json's
`env_info` (mmseg's "key: value" lines).
Add new keys at the end; keep the old ones, since logs and reports are compared across versions.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from typing import Optional

INFO_VERSION = 2
# x86 flags that change which kernels oneDNN / the compiler use (and so the last bits of results)
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "neon", "asimd", "sve")
# the ones the tools' first line shows (the dict keeps all of ISA_FLAGS that the CPU has)
SUMMARY_ISA = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "asimd", "sve")
# what the platform id hashes (the machine kind and software, not its name or load)
ID_KEYS = ("device", "gpu_names", "nvidia_driver", "cuda_runtime", "cudnn", "cpu_model", "cpu_isa",
           "jittor", "numpy", "python", "machine")


def _cpuinfo() -> tuple[Optional[str], list]:
    """(model name, ISA flags of interest) from /proc/cpuinfo (Linux); platform.processor() elsewhere."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and model is None:
                    model = " ".join(value.split())
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or None, [f for f in ISA_FLAGS if f in flags]


def thread_count() -> int:
    """Threads the kernels use: OMP_NUM_THREADS if set, else the CPUs this process may run on."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _jittor_version() -> Optional[str]:
    if "jittor" in sys.modules:
        return getattr(sys.modules["jittor"], "__version__", None)
    try:
        from importlib.metadata import version
        return version("jittor")
    except Exception:  # noqa: BLE001 - not installed: say None
        return None


def _device() -> str:
    runtime = sys.modules.get("segnext_jt.runtime")
    if runtime is not None and getattr(runtime, "DEVICE", ""):
        return runtime.DEVICE  # after Jittor's import: the final word
    from . import environment
    return environment.prepare_environment()


def platform_info() -> dict:
    """The platform as a flat JSON-ready dict (see the module docstring)."""
    import numpy as np
    from . import environment
    device = _device()
    status = environment.DECISION.cuda if environment.DECISION is not None else None
    on_cuda = device == "cuda" and status is not None
    model, isa = _cpuinfo()
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    info = {
        "platform_info_version": INFO_VERSION,
        "device": device,
        "device_requested": environment.DECISION.requested if environment.DECISION is not None else None,
        "gpu_count": status.gpu_count if on_cuda else 0,
        "gpu_names": list(status.gpu_names) if on_cuda else [],
        "nvidia_driver": status.nvidia_driver if on_cuda else None,
        "cuda_driver_api": status.driver_api if on_cuda else None,
        "cuda_runtime": status.cuda_runtime if on_cuda else None,
        "cudnn": status.cudnn if on_cuda else None,
        "nvcc": status.nvcc if on_cuda else None,
        "jittor": _jittor_version(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_model": model,
        "cpu_isa": isa,
        "threads": thread_count(),
        "cpu_affinity": affinity,
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
    }
    info["platform_id"] = platform_id(info)
    info.update(library_isa())
    info["bits_id"] = bits_id(info)
    return info


def library_isa() -> dict:
    """What each library actually runs (keys added in platform_info_version 2): the deterministic
    mode, the C library, Jittor's compiler and code-generation flags, oneDNN's ISA, NumPy's dispatch."""
    from . import portable
    return {"deterministic": portable.active_mode(), "libc": _libc(), **_jittor_build(),
            **_onednn_isa(), **_numpy_dispatch()}


def _libc() -> Optional[str]:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None


_CODEGEN_FLAG = re.compile(r"^-(march|mtune|mcpu|O\w*|ffast-math|ffp-contract|fopenmp|m(no-)?(avx|fma|sse)\w*)")


def _jittor_build() -> dict:
    """Compiler and code-generation flags of Jittor's kernels: from jt.flags once Jittor is imported,
    else what the environment will give it (Jittor puts -march=native first, cc_flags after it). Only
    the code-generation flags are kept: the rest holds paths (user names)."""
    jt = sys.modules.get("jittor")
    if jt is not None:
        flags = str(jt.flags.cc_flags).split()
    else:
        flags = ["-march=native"] + os.environ.get("cc_flags", "").split() + ["-fopenmp", "-Ofast"]
    codegen = [f for f in flags if _CODEGEN_FLAG.match(f)]
    march = [f.split("=", 1)[1] for f in codegen if f.startswith("-march=")]
    return {"compiler": _jittor_compiler(), "jittor_march": march[-1] if march else None,
            "jittor_codegen_flags": codegen}


def _jittor_compiler() -> Optional[str]:
    """'g++12.2.0': the compiler key Jittor puts in its cache path (no subprocess)."""
    utils = sys.modules.get("jittor_utils")
    match = re.search(r"/((?:g\+\+|clang|icc|cl)[\d.]*)/", str(getattr(utils, "cache_path", "") or ""))
    return match.group(1) if match else None


_DNNL_ISA = {0x0: "all", 0x1: "sse41", 0x3: "avx", 0x7: "avx2", 0xF: "avx512_mic", 0x1F: "avx512_mic_4ops",
             0x27: "avx512_core", 0x67: "avx512_core_vnni", 0xE7: "avx512_core_bf16", 0x3E7: "avx512_core_amx",
             0x407: "avx2_vnni"}


def _onednn_isa() -> dict:
    """oneDNN's cap (DNNL_MAX_CPU_ISA, ONEDNN_MAX_CPU_ISA) and, if the library is loaded (Jittor's CPU
    ops), the ISA it dispatches to (dnnl_get_effective_cpu_isa)."""
    cap = os.environ.get("DNNL_MAX_CPU_ISA") or os.environ.get("ONEDNN_MAX_CPU_ISA") or None
    used = None
    try:
        with open("/proc/self/maps") as f:
            path = next((line.split()[-1] for line in f if "libdnnl.so" in line), None)
        if path:
            import ctypes
            used = int(ctypes.CDLL(path).dnnl_get_effective_cpu_isa())
            used = _DNNL_ISA.get(used, hex(used))
    except (OSError, AttributeError, ValueError):
        used = None
    return {"onednn_max_isa": cap, "onednn_isa": used}


def _numpy_dispatch() -> dict:
    """NumPy's compiled-in baseline and the dispatched SIMD targets it enabled on this CPU."""
    try:
        from numpy.core import _multiarray_umath as umath
    except ImportError:  # NumPy 2
        from numpy._core import _multiarray_umath as umath
    features = getattr(umath, "__cpu_features__", {})
    return {"numpy_baseline": list(getattr(umath, "__cpu_baseline__", [])),
            "numpy_dispatch": [f for f in getattr(umath, "__cpu_dispatch__", []) if features.get(f)],
            "numpy_disabled": os.environ.get("NPY_DISABLE_CPU_FEATURES") or None}


# what decides the bits of a CPU result: runs with the same bits_id should agree exactly
BITS_KEYS = ("deterministic", "device", "gpu_names", "cuda_runtime", "cudnn", "jittor", "numpy", "python",
             "machine", "libc", "compiler", "jittor_codegen_flags", "onednn_isa", "numpy_dispatch", "threads")


def bits_id(info: dict) -> str:
    """12 hex digits over BITS_KEYS, and in native mode the CPU model and ISA too (its kernels are
    built for this CPU): equal ids, equal bits expected; portable mode leaves the CPU out."""
    keys = BITS_KEYS + (() if info.get("deterministic") == "portable" else ("cpu_model", "cpu_isa"))
    text = json.dumps({k: info.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def platform_id(info: dict) -> str:
    """12 hex digits of SHA-256 over the machine-kind and software fields (ID_KEYS)."""
    text = json.dumps({k: info.get(k) for k in ID_KEYS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _gpu_text(info: dict) -> str:
    names = info["gpu_names"] or ["unknown GPU"]
    kinds = sorted(set(names), key=names.index)
    gpus = ", ".join(f"{names.count(n)}x {n}" for n in kinds)
    return (f"{gpus} (driver {info['nvidia_driver'] or '?'}, CUDA {info['cuda_runtime'] or '?'}, "
            f"cuDNN {info['cudnn'] or '?'})")


def summary_line(info: Optional[dict] = None) -> str:
    """'device cpu | CPU AMD EPYC (avx2 fma avx512f) | 2 threads | jittor 1.3.11 numpy 1.26.4 | platform ab12...'"""
    info = info or platform_info()
    parts = [f"device {info['device']}"]
    if info["device"] == "cuda":
        parts.append(_gpu_text(info))
    shown = [f for f in info["cpu_isa"] if f in SUMMARY_ISA]
    isa = f" ({' '.join(shown)})" if shown else ""
    parts += [f"CPU {info['cpu_model'] or 'unknown'}{isa}", f"{info['threads']} threads",
              f"jittor {info['jittor']} numpy {info['numpy']} python {info['python']}",
              f"platform {info['platform_id']}"]
    if info.get("deterministic") == "portable":
        parts.insert(-1, "portable deterministic mode")
    return " | ".join(parts)


def env_info_text(info: Optional[dict] = None) -> str:
    """mmseg-style env_info lines ("key: value"), GPUs grouped as mmcv does ("GPU 0,1: name")."""
    info = info or platform_info()
    lines = [f"CUDA available: {info['device'] == 'cuda'}"]
    names = info["gpu_names"]
    for name in sorted(set(names), key=names.index):
        ids = ",".join(str(i) for i, n in enumerate(names) if n == name)
        lines.append(f"GPU {ids}: {name}")
    if info["device"] == "cuda":
        lines += [f"NVIDIA driver: {info['nvidia_driver']}", f"CUDA runtime: {info['cuda_runtime']}",
                  f"cuDNN: {info['cudnn']}", f"NVCC: {info['nvcc']}"]
    lines += [f"CPU: {info['cpu_model']}", f"CPU ISA: {' '.join(info['cpu_isa'])}",
              f"Threads: {info['threads']}", f"Platform id: {info['platform_id']}"]
    if "bits_id" in info:
        lines += [f"Deterministic: {info['deterministic']}", f"Compiler: {info['compiler']} "
                  f"{' '.join(info['jittor_codegen_flags'])}",
                  f"oneDNN ISA: {info['onednn_isa']} (max {info['onednn_max_isa'] or 'unset'})",
                  f"NumPy dispatch: {' '.join(info['numpy_dispatch'])}", f"Bits id: {info['bits_id']}"]
    return "\n".join(lines)
