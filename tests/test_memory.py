"""segnext_jt/memory.py: the device-memory reader on the CPU and with a simulated CUDA Jittor, and the
CUDA-ordinal -> nvidia-smi GPU mapping with fake nvidia-smi outputs (no GPU needed)."""
from __future__ import annotations

import os
import stat
import sys
import types

import pytest

from segnext_jt import memory

SMI = """\
0, GPU-aaaa1111-0000-0000-0000-000000000000, 00000000:3B:00.0, NVIDIA A100-SXM4-40GB, 40960
1, GPU-bbbb2222-0000-0000-0000-000000000000, 00000000:5E:00.0, NVIDIA H100 80GB HBM3, 81559
2, GPU-cccc3333-0000-0000-0000-000000000000, 00000000:AF:00.0, NVIDIA H100 80GB HBM3, 81559
"""
GPUS = memory.parse_nvidia_smi_gpus(SMI + "garbage line\n")


def _fake_jittor(monkeypatch, use_cuda, held_bytes):
    state = {"held": held_bytes}
    fake = types.SimpleNamespace(flags=types.SimpleNamespace(use_cuda=use_cuda),
                                 get_mem_info=lambda: types.SimpleNamespace(total_cuda_used=state["held"]))
    monkeypatch.setitem(sys.modules, "jittor", fake)
    monkeypatch.setattr(memory, "_process_peak", memory.DeviceMemoryPeak())
    return state


def test_on_the_cpu_memory_is_host_rss(monkeypatch):
    _fake_jittor(monkeypatch, 0, 123 * memory.MB)
    assert memory.device_reserved_mb() is None and memory.memory_kind() == memory.HOST_RSS
    with memory.DeviceMemoryPeak() as peak:
        pass
    assert peak.peak_mb is None
    assert memory.memory_mb() == pytest.approx(memory.peak_host_mb(), rel=0.05) and memory.memory_mb() > 10
    monkeypatch.delitem(sys.modules, "jittor")  # Jittor not imported: never imported by a probe
    assert memory.device_reserved_mb() is None and memory.memory_kind() == memory.HOST_RSS
    assert "jittor" not in sys.modules


def test_on_cuda_memory_is_the_allocator_peak(monkeypatch):
    state = _fake_jittor(monkeypatch, 1, 3 * 1024 * memory.MB)
    assert memory.memory_kind() == memory.DEVICE_RESERVED
    assert memory.device_reserved_mb() == 3072.0 and memory.memory_mb() == 3072.0
    state["held"] = 1024 * memory.MB  # jt.gc() released the cache: the logged peak stays
    assert memory.memory_mb() == 3072.0
    with memory.DeviceMemoryPeak() as peak:
        state["held"] = 5000 * memory.MB
    assert peak.peak_mb == 5000.0 and memory.memory_mb() == 5000.0


def test_a_broken_allocator_reader_gives_none(monkeypatch):
    def boom():
        raise RuntimeError("no CUDA context")
    monkeypatch.setitem(sys.modules, "jittor", types.SimpleNamespace(flags=types.SimpleNamespace(use_cuda=1),
                                                                     get_mem_info=boom))
    assert memory.device_reserved_mb() is None


def test_parse_nvidia_smi_rows():
    assert [g["index"] for g in GPUS] == ["0", "1", "2"]
    assert GPUS[1]["name"] == "NVIDIA H100 80GB HBM3" and GPUS[0]["memory.total"] == 40960.0


@pytest.mark.parametrize("visible,order,ordinal,want", [
    (None, "PCI_BUS_ID", 0, "GPU-aaaa"),
    ("2", "PCI_BUS_ID", 0, "GPU-cccc"),
    ("2,0", "PCI_BUS_ID", 1, "GPU-aaaa"),
    ("GPU-bbbb2222-0000-0000-0000-000000000000", None, 0, "GPU-bbbb"),
    ("GPU-cccc", None, 0, "GPU-cccc"),            # a unique UUID prefix
    ("GPU-", None, 0, None),                      # ambiguous prefix
    ("MIG-0a1b2c3d-0000-0000-0000-000000000000", "PCI_BUS_ID", 0, None),  # a MIG slice: no GPU row
    ("1", None, 0, None),                         # FASTEST_FIRST on a mixed machine: unknowable
    ("", "PCI_BUS_ID", 0, None),                  # no device visible
    ("0,x,2", "PCI_BUS_ID", 2, None),             # CUDA stops at the invalid entry
    ("7", "PCI_BUS_ID", 0, None),                 # no such GPU
])
def test_select_visible_gpu(visible, order, ordinal, want):
    row = memory.select_visible_gpu(GPUS, visible, order, ordinal)
    assert (row["uuid"][:8] if row else None) == want
    if row:
        assert row["exact"] is True


def test_pci_order_is_numeric_not_nvidia_smi_order():
    shuffled = [dict(g, index=str(i)) for i, g in enumerate(reversed(GPUS))]
    shuffled[0]["pci.bus_id"] = "0000:af:00.0"  # another width and case, as some drivers print
    assert memory.select_visible_gpu(shuffled, "0", "PCI_BUS_ID")["uuid"].startswith("GPU-aaaa")


def test_same_model_machine_maps_an_index_without_claiming_the_exact_gpu():
    same = [g for g in GPUS if "H100" in g["name"]]
    row = memory.select_visible_gpu(same, "1", None)
    assert row["name"] == "NVIDIA H100 80GB HBM3" and row["exact"] is False
    assert memory.select_visible_gpu(same[:1], "0", None)["exact"] is True


def test_visible_gpu_runs_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\ncat <<'EOF'\n" + SMI + "EOF\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": "1",
           "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    monkeypatch.setenv("PATH", env["PATH"])
    assert memory.visible_gpu(env=env)["name"] == "NVIDIA H100 80GB HBM3"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert memory.visible_gpu(env=env) is None
