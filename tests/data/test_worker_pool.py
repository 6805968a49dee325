"""segnext_jt.data.worker_pool: loader workers are light spawned processes (segnext_jt.data only, no
jittor), never forked; the data package imports nothing heavy.

Keep this module's imports light: the workers import it to run `_probe_worker_modules`.
"""
from __future__ import annotations

import os
import sys

import pytest

from helpers import ROOT

from segnext_jt.data import Compose, DemoMNISTDataset, TrainLoader, ValLoader


def test_data_package_does_not_import_heavy_modules():
    code = ("import sys; import segnext_jt.data; "
            "bad = [m for m in ('jittor', 'cv2', 'torch') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    import subprocess
    res = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def _probe_worker_modules(raw):
    """Runs in a loader worker: what did that process import?"""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return "jittor" in sys.modules, os.path.basename(main_file or ""), raw.img.shape


def test_workers_are_light_spawned_processes(small_demo_dir):
    ds = DemoMNISTDataset(str(small_demo_dir / "ADEChallengeData2016"), "validation")
    out = [x for batch in ValLoader(ds, batch_size=2, num_workers=1, transform=_probe_worker_modules) for x in batch]
    assert len(out) == 4
    for has_jittor, main_file, shape in out:
        assert not has_jittor and main_file == "_worker_boot.py" and len(shape) == 3
    with pytest.raises(ValueError, match="never 'fork'"):
        TrainLoader(ds, Compose([]), batch_size=1, seed=0, num_workers=1, mp_context="fork")

    class FromMain:
        def __call__(self, results, rng):
            return results

    with pytest.raises(ValueError, match="picklable dataset and pipeline"):
        TrainLoader(ds, Compose([FromMain()]), batch_size=1, seed=0, num_workers=1)  # a local class
    FromMain.__module__ = "__main__"
    with pytest.raises(ValueError, match="defined in the main script"):
        TrainLoader(ds, Compose([FromMain()]), batch_size=1, seed=0, num_workers=1)
