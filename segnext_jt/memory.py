"""Peak-memory probes shared by the trainer's log lines, tools/benchmark.py and tools/gpu_check.py.

No Jittor import here: the device probes read Jittor only if the process already imported it.

On CUDA the number is the peak of what Jittor's CUDA allocator holds for this process (its SFRL
caching allocator: blocks in use plus its cache). That is torch.cuda.max_memory_reserved's
counterpart, an upper bound of torch.cuda.max_memory_allocated (what mmcv logs). Jittor 1.3 has no
cheap counter of the allocated peak: its memory profiler (flag profile_memory_enable) walks the
whole graph at every new peak, which took over 4 minutes of SegNeXt-L's first training step on
the CPU instead of 30-40 s. Jittor frees cached blocks only on jt.gc() and when an allocation fails,
so the held amount read after a step is the peak up to then; `DeviceMemoryPeak` keeps the maximum
of its reads in case a gc came in between. On the CPU the number is the process's peak RSS.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from typing import Optional, Sequence

MB = 1 << 20
HOST_RSS = "host_rss_mb"                # peak resident set size of the process, MB
DEVICE_RESERVED = "device_reserved_mb"  # peak held by Jittor's CUDA allocator, MB


def peak_host_mb() -> float:
    """Peak resident memory (RSS) of this process since it started, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cuda_jittor():
    """The imported jittor module when it runs on CUDA, else None (never imports it)."""
    jt = sys.modules.get("jittor")
    try:
        return jt if jt is not None and int(jt.flags.use_cuda) else None
    except (AttributeError, TypeError, ValueError):
        return None


def device_reserved_mb() -> Optional[float]:
    """MB Jittor's CUDA allocator holds for this process now (None on the CPU or without Jittor)."""
    jt = _cuda_jittor()
    if jt is None:
        return None
    try:
        return float(jt.get_mem_info().total_cuda_used) / MB
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None


def memory_kind() -> str:
    """What `memory_mb` reports in this process: DEVICE_RESERVED on CUDA, else HOST_RSS."""
    return DEVICE_RESERVED if _cuda_jittor() is not None else HOST_RSS


class DeviceMemoryPeak:
    """Peak MB held by Jittor's CUDA allocator over the reads made (`read`, and on leaving a `with`
    block). ``peak_mb`` stays None on the CPU."""

    def __init__(self):
        self.peak_mb: Optional[float] = None

    def read(self) -> Optional[float]:
        now = device_reserved_mb()
        if now is not None:
            self.peak_mb = now if self.peak_mb is None else max(self.peak_mb, now)
        return self.peak_mb

    def __enter__(self) -> "DeviceMemoryPeak":
        self.read()
        return self

    def __exit__(self, *exc) -> None:
        self.read()


_process_peak = DeviceMemoryPeak()


def memory_mb() -> float:
    """The log lines' `memory` (mmseg's key): the allocator's peak on CUDA, peak RSS on the CPU;
    `memory_kind()` names which."""
    device = _process_peak.read()
    return device if device is not None else peak_host_mb()


# ------------------------------------------------------------------------------------------------
# Which physical GPU a CUDA ordinal is (for nvidia-smi's name and total memory)
# ------------------------------------------------------------------------------------------------
NVIDIA_SMI_FIELDS = ("index", "uuid", "pci.bus_id", "name", "memory.total")


def parse_nvidia_smi_gpus(text: str) -> list[dict]:
    """Rows of `nvidia-smi --query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits`."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(NVIDIA_SMI_FIELDS) or not cells[0].isdigit():
            continue
        row = dict(zip(NVIDIA_SMI_FIELDS, cells))
        try:
            row["memory.total"] = float(row["memory.total"])  # MiB
        except ValueError:
            row["memory.total"] = None
        rows.append(row)
    return rows


def _bus_key(bus_id: str) -> tuple:
    """'00000000:3B:00.0' -> (0, 0x3b, 0, 0): numeric PCI order (the case and the width vary)."""
    parts = bus_id.replace(".", ":").split(":")
    try:
        return tuple(int(p, 16) for p in parts)
    except ValueError:
        return (bus_id,)


def select_visible_gpu(gpus: Sequence[dict], cuda_visible_devices: Optional[str],
                       device_order: Optional[str], ordinal: int = 0) -> Optional[dict]:
    """The nvidia-smi row of CUDA device `ordinal` as this process sees it, or None if that cannot be
    known. CUDA_VISIBLE_DEVICES entries are indices in CUDA's enumeration order, GPU-UUIDs (or
    unique prefixes of them) or MIG-UUIDs (not an nvidia-smi GPU row: None); CUDA ignores the
    list from the first invalid entry on. CUDA numbers GPUs in PCI bus order only with
    CUDA_DEVICE_ORDER=PCI_BUS_ID; by default (FASTEST_FIRST) the order of a mixed machine is not
    knowable here, so an index maps only where every GPU is the same model (then the row's name
    and memory are right; `exact` says whether it is that very GPU). nvidia-smi's own index is
    never used: it is PCI order, not CUDA's."""
    by_bus = sorted(gpus, key=lambda g: _bus_key(g["pci.bus_id"]))
    if cuda_visible_devices is None:
        entries = [str(i) for i in range(len(by_bus))]
    else:
        entries = []
        for entry in cuda_visible_devices.split(","):
            entry = entry.strip()
            if not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
                break
            entries.append(entry)
    if not 0 <= ordinal < len(entries):
        return None
    entry = entries[ordinal]
    if entry.startswith("MIG-"):
        return None
    if entry.startswith("GPU-"):
        hits = [g for g in by_bus if g["uuid"].startswith(entry)]
        return dict(hits[0], exact=True) if len(hits) == 1 else None
    index = int(entry)
    if index >= len(by_bus):
        return None
    if (device_order or "").strip().upper() == "PCI_BUS_ID":
        return dict(by_bus[index], exact=True)
    if len({g["name"] for g in by_bus}) == 1:
        return dict(by_bus[index], exact=len(by_bus) == 1)
    return None


def visible_gpu(ordinal: int = 0, env: Optional[dict] = None) -> Optional[dict]:
    """nvidia-smi's row (name, memory.total in MiB, uuid, pci.bus_id) for CUDA device `ordinal` of a
    process started with `env` (default: this one's), or None (no nvidia-smi, or not knowable)."""
    env = os.environ if env is None else env
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return select_visible_gpu(parse_nvidia_smi_gpus(out), env.get("CUDA_VISIBLE_DEVICES"),
                              env.get("CUDA_DEVICE_ORDER"), ordinal)
