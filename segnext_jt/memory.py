"""Peak-memory probes shared by the trainer's log lines and tools/benchmark.py (no Jittor import)."""
from __future__ import annotations

import os
import resource
import subprocess
import threading
from typing import Optional


def peak_host_mb() -> float:
    """Peak resident memory (RSS) of this process since it started, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class DeviceMemoryPeak:
    """Peak GPU memory in use while the block runs, polled from nvidia-smi every 50 ms (it counts
    Jittor's cached allocator blocks too, so it is an upper bound of torch's max_memory_allocated).
    ``peak_mb`` stays None where nvidia-smi is missing or fails."""

    def __init__(self):
        self.peak_mb: Optional[float] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-i", os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]],
                                     capture_output=True, text=True, timeout=5).stdout
                used = float(out.strip().splitlines()[0])
                self.peak_mb = used if self.peak_mb is None else max(self.peak_mb, used)
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return  # no nvidia-smi: no device number
            self._stop.wait(0.05)

    def __enter__(self) -> "DeviceMemoryPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
