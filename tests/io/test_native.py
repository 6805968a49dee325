"""segnext_jt.io.native: the native .npz checkpoint: bit-exact round trip of every dtype and layout,
atomic overwrite, clear read errors, and reading through read_any_checkpoint / load_checkpoint."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from helpers import TINY_DIR, FakeModel, bits_equal, tiny_state_dict

from segnext_jt.errors import CheckpointFormatError, CheckpointNotFoundError
from segnext_jt.io import load_checkpoint, load_npz, read_any_checkpoint, save_npz


def _native_arrays() -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    f32[0, :3] = [np.nan, -0.0, np.inf]
    f32[1, 0] = np.float32(1e-45)  # denormal
    return {
        "state_dict/backbone.block1.0.norm1.weight": f32,
        "state_dict/backbone.block1.0.norm1.num_batches_tracked": np.array(12345678901, dtype=np.int64),
        "optimizer/state/0/exp_avg": rng.standard_normal((2, 3)),  # float64
        "optimizer/state/0/step": np.array(7, dtype=np.int64),
        "rng/mt19937": rng.integers(0, 2 ** 32, size=624, dtype=np.uint32),
        "u8": np.array([0, 1, 255], dtype=np.uint8),
        "mask": np.array([[True, False, True]]),
        "f16": np.array([65504.0, -1.5e-7], dtype=np.float16),
        "i64.extremes": np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max]),
        "fortran": np.asfortranarray(rng.standard_normal((3, 2)).astype(np.float32)),
        "strided": f32[:, ::2],
        "big_endian": np.arange(4, dtype=">f4"),
        "empty": np.zeros((0, 5), np.float32),
        "scalar.f32": np.array(np.float32(0.1)),
    }


NATIVE_META = {
    "iter": 16000, "lr": 6e-05, "loss": 0.1 + 0.2, "big": 2 ** 100, "nan": float("nan"),
    "config": {"model": {"backbone": {"depths": [3, 3, 5, 2]}}}, "name": "ümlaut ✓", "none": None,
    "rng": {"python": [3, [1, 2, 624], None]},
}


def test_native_roundtrip_bit_exact(tmp_path: Path) -> None:
    arrays = _native_arrays()
    path = tmp_path / "ckpt.npz"
    save_npz(path, arrays, NATIVE_META)
    got, meta = load_npz(path)
    assert list(got) == list(arrays)
    for key, want in arrays.items():
        assert bits_equal(got[key], want), key
    assert got["fortran"].flags.f_contiguous
    assert got["big_endian"].dtype == np.dtype(">f4")
    assert json.dumps(meta, sort_keys=True) == json.dumps(NATIVE_META, sort_keys=True)
    assert meta["loss"] == 0.1 + 0.2 and meta["big"] == 2 ** 100 and np.isnan(meta["nan"])
    # a standard npz: numpy reads it without pickle as well
    with np.load(path, allow_pickle=False) as npz:
        assert bits_equal(npz["rng/mt19937"], arrays["rng/mt19937"])
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # no temp file left


def test_native_overwrite_is_atomic_and_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.npz"
    old = {"a": np.arange(3, dtype=np.int64)}
    save_npz(path, old, {"version": "old"})
    save_npz(path, {"a": np.arange(4, dtype=np.int64)}, {"version": "new"})  # overwrite
    assert load_npz(path)[1] == {"version": "new"}
    save_npz(path, old, {"version": "old"})

    calls = {"n": 0}
    real_write = np.lib.format.write_array

    def failing_write(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # fail mid-file, after meta and one array were written
            raise OSError("disk full (simulated)")
        real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="disk full"):
        save_npz(path, {"a": np.zeros(3), "b": np.ones(3), "c": np.ones(2)}, {"version": "broken"})
    monkeypatch.undo()
    arrays, meta = load_npz(path)
    assert meta == {"version": "old"} and bits_equal(arrays["a"], old["a"])
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]

    with pytest.raises(TypeError, match="'obj'"):
        save_npz(path, {"obj": np.array([{"x": 1}], dtype=object)}, {})
    with pytest.raises(TypeError, match="JSON"):
        save_npz(path, {"a": np.zeros(1)}, {"bad": {1, 2}})
    with pytest.raises(ValueError, match="reserved"):
        save_npz(path, {"__meta__": np.zeros(1)}, {})
    with pytest.raises(ValueError, match="'a.npy'"):
        save_npz(path, {"a.npy": np.zeros(1)}, {})
    assert load_npz(path)[1] == {"version": "old"}
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_native_read_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    with pytest.raises(CheckpointFormatError, match="__meta__"):
        load_npz(plain)
    good = tmp_path / "good.npz"
    save_npz(good, {"a": np.zeros(1000)}, {})
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(CheckpointFormatError, match="truncated"):
        load_npz(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"hello world, not a zip")
    with pytest.raises(CheckpointFormatError, match="not an .npz"):
        load_npz(garbage)
    with pytest.raises(CheckpointNotFoundError):
        load_npz(tmp_path / "missing.npz")


def test_native_through_read_any_and_load(tmp_path: Path) -> None:
    sd = tiny_state_dict()
    path = tmp_path / "model.npz"
    save_npz(path, {"state_dict/" + k: v for k, v in sd.items()} | {"optimizer/step": np.array(3)}, {"iter": 3})
    out, meta, source = read_any_checkpoint(path)
    assert source == "native" and meta == {"iter": 3} and list(out) == list(sd)
    assert all(bits_equal(out[k], sd[k]) for k in sd)
    model = FakeModel.from_keys(TINY_DIR)
    report = load_checkpoint(model, path, logger=None)
    assert report.ok and len(report.loaded) == len(sd)
    # a file with no 'state_dict/' group is all weights
    flat = tmp_path / "flat.npz"
    save_npz(flat, sd, {})
    assert list(read_any_checkpoint(flat)[0]) == list(sd)
