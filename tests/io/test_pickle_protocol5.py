"""JSeg .pkl files written with pickle protocol 5 (numpy arrays as `_frombuffer(buffer, dtype, shape,
order)`) load under the same restrictions as protocols 2-4: plain dtypes only, the shape must match
the bytes exactly, and every global outside the allow-list is still refused (issue 18)."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

import _torch_writer as tw
from helpers import bits_equal, payloads

from segnext_jt.errors import CheckpointFormatError, UnsafeCheckpointError
from segnext_jt.io import read_any_checkpoint, read_jittor_pickle

ARRAYS = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
    "big_endian": np.arange(5, dtype=">f4"),
    "f64": np.linspace(0, 1, 7),
    "f16": np.ones(3, np.float16),
    "i64": np.arange(-3, 3, dtype=np.int64),
    "bool": np.array([True, False]),
    "u8": np.arange(256, dtype=np.uint8),
    "empty": np.zeros((0, 3), np.float32),
    "zero_d": np.array(2.5, np.float32),
    "readonly": np.frombuffer(b"\x00\x00\x80?" * 4, dtype=np.float32),
    "strided_view": np.arange(20, dtype=np.float32)[::3],  # not contiguous: numpy's protocol-2 path
    "scalar": np.float64(1.25),
}


@pytest.mark.parametrize("trailer", [True, False])
def test_protocol5_pickles_load_like_protocol4(tmp_path: Path, trailer: bool) -> None:
    obj = {"state_dict": dict(ARRAYS), "meta": {"iter": 5, "names": ("a", "b")}}
    path = tmp_path / "p5.pkl"
    if trailer:
        tw.jseg_save(str(path), obj, protocol=5)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=5))
    assert path.read_bytes()[:2] == b"\x80\x05" and b"_frombuffer" in path.read_bytes()
    out = read_jittor_pickle(path)
    for key, want in ARRAYS.items():
        got = out["state_dict"][key]
        assert isinstance(got, (np.ndarray, np.generic)) and got.dtype == want.dtype and got.shape == want.shape, key
        assert bits_equal(np.asarray(got), np.asarray(want)), key
        if isinstance(got, np.ndarray):
            assert got.flags.writeable, key  # owns its memory, like the protocol-4 path
    assert out["state_dict"]["fortran"].flags.f_contiguous
    assert out["meta"] == {"iter": 5, "names": ("a", "b")}
    # as a checkpoint, the dtype policy applies (io/dtype_policy.py): weights are floats
    with pytest.raises(CheckpointFormatError, match="'i64' has dtype int64"):
        read_any_checkpoint(path)
    floats = tmp_path / "p5_floats.pkl"
    floats.write_bytes(pickle.dumps({"state_dict": {k: v for k, v in ARRAYS.items()
                                                    if np.asarray(v).dtype.kind == "f"}}, protocol=5))
    _, _, source = read_any_checkpoint(floats)
    assert source == "jseg"


@pytest.mark.parametrize("payload_name", ["os.system", "builtins.eval", "subprocess.call"])
def test_malicious_protocol5_pickle_is_refused(tmp_path: Path, payload_name: str) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    tw.jseg_save(str(path), {"model": dict(ARRAYS), "meta": {"evil": payloads(sentinel)[payload_name]}}, protocol=5)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_jittor_pickle(path)
    assert str(path) in str(info.value)
    assert not sentinel.exists()


# --------------------------------------------------------------------------- hand-written _frombuffer calls
def _piece(obj) -> bytes:
    """The opcodes that push `obj` (a protocol-2 pickle without its header and STOP)."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93"


def _frombuffer_pickle(buffer_ops: bytes, dtype_ops: bytes, shape, order="C",
                       module="numpy.core.numeric", name="_frombuffer") -> bytes:
    return (b"\x80\x05" + _global(module, name) + b"(" + buffer_ops + dtype_ops + _piece(shape) + _piece(order)
            + b"tR.")


def _bytearray8(data: bytes) -> bytes:
    return b"\x96" + struct.pack("<Q", len(data)) + data


def _dtype(spec: str) -> bytes:
    return _global("numpy", "dtype") + _piece((spec, False, True)) + b"R"


def test_handwritten_frombuffer_matches_numpy(tmp_path: Path) -> None:
    path = tmp_path / "ok.pkl"
    path.write_bytes(_frombuffer_pickle(_bytearray8(np.arange(6, dtype="<f4").tobytes()), _dtype("f4"), (2, 3)))
    assert bits_equal(read_jittor_pickle(path), np.arange(6, dtype=np.float32).reshape(2, 3))
    path.write_bytes(_frombuffer_pickle(_bytearray8(b"\x01" * 8), _dtype("f4"), (2,), module="numpy._core.numeric"))
    assert read_jittor_pickle(path).shape == (2,)


@pytest.mark.parametrize("case, buffer_ops, dtype_ops, shape, order, match", [
    ("object dtype", _bytearray8(b"\x00" * 8), _dtype("O"), (1,), "C", "not supported"),
    ("huge shape, tiny buffer", _bytearray8(b"\x00" * 8), _dtype("f4"), (10 ** 12, 10 ** 6), "C", "shape|match"),
    ("shape too small", _bytearray8(b"\x00" * 16), _dtype("f4"), (2,), "C", "does not match"),
    ("negative dim", _bytearray8(b"\x00" * 8), _dtype("f4"), (-2,), "C", "shape"),
    ("float dim", _bytearray8(b"\x00" * 8), _dtype("f4"), (2.0,), "C", "shape"),
    ("shape not a tuple", _bytearray8(b"\x00" * 8), _dtype("f4"), [2], "C", "shape"),
    ("33 dims", _bytearray8(b"\x00" * 4), _dtype("f4"), (1,) * 33, "C", "shape"),
    ("order K", _bytearray8(b"\x00" * 8), _dtype("f4"), (2,), "K", "order"),
    ("buffer is a str", _piece("x" * 8), _dtype("f4"), (2,), "C", "buffer"),
    ("buffer is a list", _piece([0] * 8), _dtype("f4"), (2,), "C", "buffer"),
    ("dtype is a list", _bytearray8(b"\x00" * 8), _piece(["f4"]), (2,), "C", "dtype"),
    ("structured dtype", _bytearray8(b"\x00" * 8), _piece("f4,i4"), (1,), "C", "not supported|dtype"),
    ("out-of-band buffer", b"\x97", _dtype("f4"), (2,), "C", "unpickle|buffer"),
])
def test_hostile_frombuffer_calls_are_refused(tmp_path: Path, case, buffer_ops, dtype_ops, shape, order,
                                              match) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(_frombuffer_pickle(buffer_ops, dtype_ops, shape, order))
    with pytest.raises(CheckpointFormatError, match=match) as info:
        read_jittor_pickle(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("module, name", [("numpy.core.numeric", "frombuffer"), ("numpy", "frombuffer"),
                                          ("numpy.core.numeric", "_frombuffer_evil"), ("pickle", "PickleBuffer")])
def test_near_miss_globals_stay_refused(tmp_path: Path, module: str, name: str) -> None:
    path = tmp_path / "near.pkl"
    path.write_bytes(_frombuffer_pickle(_bytearray8(b"\x00" * 8), _dtype("f4"), (2,), module=module, name=name))
    with pytest.raises(UnsafeCheckpointError, match=f"{module}.{name}"):
        read_jittor_pickle(path)
