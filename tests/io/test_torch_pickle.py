"""segnext_jt.io.torch_pickle: the torch-free readers of PyTorch .pth (zip and legacy containers) and
JSeg .pkl files, and their clear errors for bad files.

No torch and no jittor: torch-format files are either the real fixtures (written by torch 2.x from
mmseg 1.2.2) or written by `tests/_torch_writer.py`, which emits the same pickle opcodes.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import pytest

import _torch_writer as tw
from helpers import FIXTURES, TINY_DIR, as_tensors, key_list

from segnext_jt.errors import CheckpointFormatError, CheckpointNotFoundError
from segnext_jt.io import read_any_checkpoint, read_jittor_pickle, read_torch_checkpoint
from segnext_jt.io import torch_pickle


CKPT_DIRS = sorted(p.name for p in FIXTURES.iterdir() if (p / "checkpoint.pth").is_file())


# ---------------------------------------------------------------------------------------------------
# real torch fixtures
# ---------------------------------------------------------------------------------------------------


def test_fixtures_are_present() -> None:
    assert len(CKPT_DIRS) == 5, CKPT_DIRS
    for name in ("t", "s", "b", "l"):
        assert (FIXTURES / "keys" / f"{name}.json").is_file()


@pytest.mark.parametrize("name", CKPT_DIRS)
def test_fixture_checkpoint_keys_dtypes_and_values(name: str) -> None:
    folder = FIXTURES / name
    meta_json = json.loads((folder / "meta.json").read_text())
    digest = hashlib.sha256((folder / "checkpoint.pth").read_bytes()).hexdigest()
    assert digest == meta_json["files"]["checkpoint.pth"]["sha256"], "fixture file differs from the shared one"

    obj = read_torch_checkpoint(folder / "checkpoint.pth")
    assert set(obj) == {"meta", "state_dict"}
    sd = obj["state_dict"]
    assert isinstance(sd, OrderedDict)
    expected = key_list(folder)
    assert list(sd) == [k for k, _, _ in expected]
    for key, shape, dtype in expected:
        value = sd[key]
        assert isinstance(value, np.ndarray) and value.shape == shape and str(value.dtype) == dtype, key
        assert value.flags.c_contiguous and value.flags.writeable, key
        if key.endswith("num_batches_tracked"):
            assert value.dtype == np.int64 and value.ndim == 0 and int(value) >= 0, key
        else:
            assert np.isfinite(value).all() and np.abs(value).max() < 100, key
        if key.endswith("running_var"):
            assert (value > 0).all(), key
    n_bn = sum(k.endswith("running_mean") for k, _, _ in expected)
    assert sum(k.endswith("num_batches_tracked") for k, _, _ in expected) == n_bn > 0
    # the OrderedDict's `_metadata` attribute (BN versions) survives the restricted BUILD
    assert isinstance(getattr(sd, "_metadata", None), dict)

    meta = obj["meta"]
    assert meta["mmseg_version"] == "1.2.2"
    config = json.loads(meta["config"])
    assert config["decode_head"]["num_classes"] == sd["decode_head.conv_seg.weight"].shape[0]


# ---------------------------------------------------------------------------------------------------
# files written by the test writer: zip and legacy containers
# ---------------------------------------------------------------------------------------------------


BF16_VALUES = np.array([1.0, -2.5, 0.15625, 2.0 ** 100, -0.0], dtype=np.float32)


def _writer_object() -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    base = np.arange(24, dtype=np.float32).reshape(4, 6) * 0.5 - 3.0
    shared = tw.Storage(base)
    bf16_raw = (BF16_VALUES.view(np.uint32) >> 16).astype(np.uint16)
    rng = np.random.default_rng(0)
    arrays = {
        "f64": rng.standard_normal((3, 2)),
        "f16": rng.standard_normal(5).astype(np.float16),
        "i32": np.array([-(2 ** 31), 2 ** 31 - 1, 7], dtype=np.int32),
        "i16": np.array([-3, 4], dtype=np.int16),
        "i8": np.array([-128, 127], dtype=np.int8),
        "u8": np.array([0, 255, 3], dtype=np.uint8),
        "bool": np.array([[True, False], [False, True]]),
        "long": np.array([2 ** 62, -5], dtype=np.int64),
    }
    obj: Dict[str, Any] = {
        "meta": {"seed": np.int64(3), "best": np.float64(0.25), "classes": ("a", "b"), "tags": {"x"}},
        "state_dict": OrderedDict(
            [
                ("contig", tw.Tensor(shared, 0, (4, 6), (6, 1))),
                ("transposed", tw.Tensor(shared, 0, (6, 4), (1, 6))),  # non-contiguous view
                ("offset", tw.Tensor(shared, 7, (2, 3), (6, 1))),  # storage offset
                ("broadcast", tw.Tensor(shared, 2, (3, 2), (0, 1))),  # stride 0 (expand)
                ("scalar", tw.tensor(np.array(41, dtype=np.int64))),
                ("empty", tw.tensor(np.zeros((0, 3), dtype=np.float32))),
                ("param", tw.tensor(base[:2], parameter=True)),
                ("bf16", tw.Tensor(tw.Storage(bf16_raw, "BFloat16Storage"), 0, (5,), (1,))),
            ]
            + [(k, tw.tensor(v)) for k, v in arrays.items()]
        ),
        "nested": [tw.tensor(np.array([1.5], np.float32)), (tw.Tensor(shared, 23, (), ()), "text")],
    }
    expected = {
        "contig": base, "transposed": base.T, "offset": base[1:3, 1:4],
        "broadcast": np.broadcast_to(base.ravel()[2:4], (3, 2)), "scalar": np.array(41, dtype=np.int64),
        "empty": np.zeros((0, 3), np.float32), "param": base[:2], "bf16": BF16_VALUES, **arrays,
    }
    return obj, expected


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_writer_roundtrip_dtypes_strides_offsets(kind: str, tmp_path: Path) -> None:
    obj, expected = _writer_object()
    path = tmp_path / f"ckpt_{kind}.pth"
    (tw.write_zip if kind == "zip" else tw.write_legacy)(str(path), obj)
    assert torch_pickle.sniff_container(path) == ("zip" if kind == "zip" else "torch-legacy")

    out = read_torch_checkpoint(path)
    sd = out["state_dict"]
    assert list(sd) == list(expected)
    for key, want in expected.items():
        got = sd[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert np.array_equal(got, want), key
        assert got.flags.c_contiguous and got.flags.writeable, key
    assert sd["bf16"].dtype == np.float32
    assert np.signbit(sd["bf16"][-1])  # -0.0 kept bit-exactly
    assert sd["scalar"].ndim == 0
    # views of one storage become independent arrays
    sd["contig"][0, 0] = 99.0
    assert sd["transposed"][0, 0] != 99.0
    assert out["nested"][0].tolist() == [1.5]
    assert out["nested"][1][0].shape == () and float(out["nested"][1][0]) == 8.5
    assert out["nested"][1][1] == "text"
    assert out["meta"]["seed"] == 3 and out["meta"]["classes"] == ("a", "b") and out["meta"]["tags"] == {"x"}


def test_zip_archive_name_and_big_endian(tmp_path: Path) -> None:
    obj, expected = _writer_object()
    path = tmp_path / "big.pth"
    tw.write_zip(str(path), obj, archive="some_other_name", byteorder="big")
    sd = read_torch_checkpoint(path)["state_dict"]
    for key, want in expected.items():
        assert np.array_equal(sd[key], want) and sd[key].dtype.isnative, key


def test_legacy_with_protocol4_headers(tmp_path: Path) -> None:
    path = tmp_path / "p4.pth"
    tw.write_legacy(str(path), {"w": tw.tensor(np.arange(3, dtype=np.float32))}, header_protocol=4)
    assert torch_pickle.sniff_container(path) == "torch-legacy"
    assert read_torch_checkpoint(path)["w"].tolist() == [0.0, 1.0, 2.0]


def test_legacy_storage_views(tmp_path: Path) -> None:
    base = np.arange(24, dtype=np.float32)
    root = tw.Storage(base)
    view = tw.StorageView(root, 6, 12)
    obj = {"v": tw.Tensor(view, 1, (2, 5), (6, 1)), "whole": tw.Tensor(root, 0, (24,), (1,))}
    path = tmp_path / "views.pth"
    tw.write_legacy(str(path), obj)
    out = read_torch_checkpoint(path)
    view_elems = base[6:18]  # the tensor indexes the view, not the root storage
    assert np.array_equal(out["v"], np.stack([view_elems[1:6], view_elems[7:12]]))
    assert np.array_equal(out["whole"], base)


# ---------------------------------------------------------------------------------------------------
# JSeg pickles (jt.save)
# ---------------------------------------------------------------------------------------------------


def test_jseg_pickle_checksum_and_plain_pickle(tmp_path: Path) -> None:
    path = tmp_path / "bad.pkl"
    tw.jseg_save(str(path), {"model": {"backbone.norm1.weight": np.ones(3, np.float32)}})
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointFormatError, match="checksum"):
        read_jittor_pickle(path)
    plain = tmp_path / "plain.pkl"  # a pickle without the jt.save trailer also reads
    plain.write_bytes(pickle.dumps({"model": {"backbone.norm1.weight": np.ones(3, np.float32)}}, 4))
    _, _, source = read_any_checkpoint(plain)
    assert source == "jseg"


# ---------------------------------------------------------------------------------------------------
# clear errors for bad files
# ---------------------------------------------------------------------------------------------------


def test_not_a_file(tmp_path: Path) -> None:
    for reader in (read_torch_checkpoint, read_jittor_pickle, read_any_checkpoint):
        with pytest.raises(CheckpointNotFoundError, match="not found"):
            reader(tmp_path / "nope.pth")
        with pytest.raises(CheckpointNotFoundError, match="not a regular file"):
            reader(tmp_path)
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for generic callers
        read_any_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_zip(tmp_path: Path, cut: float) -> None:
    data = (TINY_DIR / "checkpoint.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointFormatError, match="truncated") as info:
        read_any_checkpoint(path)
    assert str(path) in str(info.value)


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointFormatError, match="unrecognised checkpoint format"):
        read_any_checkpoint(garbage)
    with pytest.raises(CheckpointFormatError, match="not a PyTorch checkpoint"):
        read_torch_checkpoint(garbage)
    with pytest.raises(CheckpointFormatError, match="not a pickle"):
        read_jittor_pickle(garbage)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointFormatError, match="empty"):
        read_any_checkpoint(empty)
    bad_pickle = tmp_path / "bad.pkl"
    bad_pickle.write_bytes(pickle.dumps({"model": {"a": np.ones(3)}}, 4)[:-20])
    with pytest.raises(CheckpointFormatError, match="cannot unpickle"):
        read_any_checkpoint(bad_pickle)


def test_zip_without_data_pkl_and_missing_storage(tmp_path: Path) -> None:
    path = tmp_path / "nodata.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/other.txt", "x")
    with pytest.raises(CheckpointFormatError, match="data.pkl"):
        read_any_checkpoint(path)

    good = tmp_path / "good.pth"
    tw.write_zip(str(good), {"state_dict": as_tensors({"backbone.x": np.ones(3, np.float32)})})
    broken = tmp_path / "missing_storage.pth"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("data/0"):
                dst.writestr(item, src.read(item))
    with pytest.raises(CheckpointFormatError, match="archive/data/0"):
        read_torch_checkpoint(broken)


def test_unknown_storage_type_and_out_of_bounds_tensor(tmp_path: Path) -> None:
    storage = tw.Storage(np.zeros(4, np.int8), type_name="QInt8Storage")
    path = tmp_path / "qint.pth"
    tw.write_zip(str(path), {"w": tw.Tensor(storage, 0, (4,), (1,))})
    with pytest.raises(CheckpointFormatError, match=r"unknown storage type torch\.QInt8Storage"):
        read_torch_checkpoint(path)

    # strides that would read past the storage must be refused, not read out of bounds
    oob = tmp_path / "oob.pth"
    tw.write_zip(str(oob), {"w": tw.Tensor(tw.Storage(np.zeros(24, np.float32)), 20, (3, 3), (6, 1))})
    with pytest.raises(CheckpointFormatError, match="reads element"):
        read_torch_checkpoint(oob)


def test_truncated_legacy_file(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pth"
    tw.write_legacy(str(path), {"state_dict": as_tensors({"backbone.x": np.ones(100, np.float32)})})
    data = path.read_bytes()
    for cut in (len(data) - 10, len(data) - 400, 40):
        short = tmp_path / f"short{cut}.pth"
        short.write_bytes(data[:cut])
        with pytest.raises(CheckpointFormatError) as info:
            read_any_checkpoint(short)
        assert str(short) in str(info.value)
