"""Tests of segnext_jt.io: torch/JSeg readers, native .npz, key conversion, loading, the CLI tool.

No torch and no jittor: torch-format files are either the real fixtures (written by torch 2.x from
mmseg 1.2.2) or written by `tests/_torch_writer.py`, which emits the same pickle opcodes.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for _p in (str(REPO_ROOT), str(TESTS_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import _torch_writer as tw  # noqa: E402

from segnext_jt.io import (  # noqa: E402
    CheckpointFormatError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
    count_parameters,
    load_checkpoint,
    load_npz,
    match_state_dict,
    read_any_checkpoint,
    read_checkpoint,
    read_jittor_pickle,
    read_torch_checkpoint,
    save_npz,
)
from segnext_jt.io import torch_pickle  # noqa: E402

FIXTURES = TESTS_DIR / "fixtures"
CKPT_DIRS = sorted(p.name for p in FIXTURES.iterdir() if (p / "checkpoint.pth").is_file())
TINY = FIXTURES / "tiny-test_eval_64x64"
TOOL = REPO_ROOT / "tools" / "convert_checkpoint.py"
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def key_list(folder: Path) -> List[Tuple[str, Tuple[int, ...], str]]:
    data = json.loads((folder / "state_dict_keys.json").read_text())
    return [(k, tuple(shape), dtype) for k, shape, dtype in data["keys"]]


_SD_CACHE: Dict[str, "OrderedDict[str, np.ndarray]"] = {}


def tiny_state_dict() -> "OrderedDict[str, np.ndarray]":
    if "tiny" not in _SD_CACHE:
        _SD_CACHE["tiny"] = read_torch_checkpoint(TINY / "checkpoint.pth")["state_dict"]
    return OrderedDict((k, v.copy()) for k, v in _SD_CACHE["tiny"].items())


def to_orig_names(sd: Dict[str, np.ndarray]) -> "OrderedDict[str, np.ndarray]":
    return OrderedDict((k.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv."), v) for k, v in sd.items())


def as_tensors(sd: Dict[str, np.ndarray]) -> "OrderedDict[str, Any]":
    return OrderedDict((k, tw.tensor(v)) for k, v in sd.items())


class FakeModel:
    """Duck-typed stand-in for a Jittor Module: state_dict() / load_state_dict() over numpy arrays."""

    def __init__(self, spec: Dict[str, Tuple[Tuple[int, ...], str]]) -> None:
        self.params = OrderedDict((k, np.full(shape, -7, dtype=dtype)) for k, (shape, dtype) in spec.items())
        self.load_calls = 0

    @classmethod
    def from_keys(cls, folder: Path, drop_nbt: bool = False) -> "FakeModel":
        return cls({k: (s, d) for k, s, d in key_list(folder) if not (drop_nbt and k.endswith("num_batches_tracked"))})

    def state_dict(self) -> Dict[str, np.ndarray]:
        return dict(self.params)

    def load_state_dict(self, sd: Dict[str, np.ndarray]) -> None:
        self.load_calls += 1
        for k, v in sd.items():
            assert k in self.params, k
            assert isinstance(v, np.ndarray) and v.shape == self.params[k].shape, k
            self.params[k] = v


class Reduce:
    """An object whose unpickling calls `func(*args)`: the classic pickle exploit."""

    def __init__(self, func: Any, args: Tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> Any:
        return (self.func, self.args)


def payloads(sentinel: Path) -> Dict[str, Reduce]:
    import builtins
    import subprocess as sp

    return {
        "os.system": Reduce(os.system, (f"touch {shlex.quote(str(sentinel))}",)),
        "builtins.eval": Reduce(builtins.eval, (f"__import__('os').system('touch {sentinel}')",)),
        "subprocess.call": Reduce(sp.call, (["touch", str(sentinel)],)),
    }


def write_malicious(kind: str, path: Path, payload: Reduce) -> None:
    weights = {"backbone.norm1.weight": np.ones(4, np.float32)}
    if kind == "zip":
        tw.write_zip(str(path), {"state_dict": as_tensors(weights), "meta": {"evil": payload}})
    elif kind == "legacy":
        tw.write_legacy(str(path), {"state_dict": as_tensors(weights), "meta": {"evil": payload}})
    else:
        tw.jseg_save(str(path), {"model": weights, "meta": {"evil": payload}})


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------------------------------------
# real torch fixtures
# ------------------------------------------------------------------------------------------------
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


def test_fixture_read_any_checkpoint_is_mmseg() -> None:
    sd, meta, source = read_any_checkpoint(TINY / "checkpoint.pth")
    assert source == "mmseg"
    assert list(sd) == [k for k, _, _ in key_list(TINY)]
    assert meta["seed"] == 0 and "config" in meta
    json.dumps(meta)  # JSON-able
    contents = read_checkpoint(TINY / "checkpoint.pth")
    assert contents.container == "torch-zip" and not contents.renamed and not contents.added


@pytest.mark.parametrize("size,params,backbone", [
    ("t", 4_263_414, 3_903_584), ("s", 13_932_886, 13_450_176),
    ("b", 27_636_310, 26_277_824), ("l", 48_926_550, 44_636_864),
])
def test_count_parameters_matches_spec(size: str, params: int, backbone: int) -> None:
    keys = json.loads((FIXTURES / "keys" / f"{size}.json").read_text())["keys"]
    # zero-stride views: shapes without allocating 200 MB for L
    sd = {k: np.broadcast_to(np.float32(0), tuple(s)) for k, s, _ in keys}
    assert count_parameters(sd) == params
    assert count_parameters({k: v for k, v in sd.items() if k.startswith("backbone.")}) == backbone


# ------------------------------------------------------------------------------------------------
# files written by the test writer: zip and legacy containers
# ------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------
# conversion: ORIG, JSEG, backbone pretrain, module. prefix
# ------------------------------------------------------------------------------------------------
def test_orig_checkpoint_converts_to_mmseg_keys(tmp_path: Path) -> None:
    sd = tiny_state_dict()
    orig = to_orig_names(sd)
    n_dw = sum(".mlp.dwconv.dwconv." in k for k in orig)
    assert n_dw > 0
    wrapped = OrderedDict(("module." + k, v) for k, v in orig.items())  # DataParallel-style too
    path = tmp_path / "orig.pth"
    tw.write_legacy(str(path), {"meta": {"CLASSES": ("a", "b"), "seed": np.int64(5), "config": "cfg text"},
                                "state_dict": as_tensors(wrapped)})
    out, meta, source = read_any_checkpoint(path)
    assert source == "orig"
    assert list(out) == list(sd)
    for k in sd:
        assert bits_equal(out[k], sd[k]), k
    assert meta == {"CLASSES": ["a", "b"], "seed": 5, "config": "cfg text"}
    contents = read_checkpoint(path)
    assert len(contents.renamed) == n_dw and contents.stripped_prefix == len(sd)
    assert contents.container == "torch-legacy"


def _jseg_model(sd: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    # Jittor BN has no num_batches_tracked; JSeg keeps the ORIG dwconv naming.
    return {k: v for k, v in to_orig_names(sd).items() if not k.endswith("num_batches_tracked")}


def test_jseg_pickle_converts_to_mmseg_keys(tmp_path: Path) -> None:
    sd = tiny_state_dict()
    path = tmp_path / "ckpt_160000.pkl"
    tw.jseg_save(str(path), {
        "meta": {"jseg_version": "0.1", "iter": 160000, "config": "yaml text"},
        "model": _jseg_model(sd), "scheduler": {"cur_iter": 3}, "optimizer": {"lr": 1e-4},
    })
    raw = read_jittor_pickle(path)
    assert set(raw) == {"meta", "model", "scheduler", "optimizer"}

    out, meta, source = read_any_checkpoint(path)
    assert source == "jseg"
    assert list(out) == list(sd)  # same keys, same order as the mmseg checkpoint
    for k in sd:
        if k.endswith("num_batches_tracked"):
            assert out[k].dtype == np.int64 and out[k].shape == () and int(out[k]) == 0, k
        else:
            assert bits_equal(out[k], sd[k]), k
    assert meta["iter"] == 160000
    contents = read_checkpoint(path)
    assert len(contents.added) == sum(k.endswith("running_mean") for k in sd)


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


def test_numpy2_module_spelling_and_protocol2_bytes(tmp_path: Path) -> None:
    # numpy >= 2 pickles name `numpy._core.multiarray`; protocol 2 spells bytes via `_codecs.encode`.
    weights = {"backbone.norm1.weight": np.arange(4, dtype=np.float32), "n": np.float64(2.5)}
    data = pickle.dumps({"model": weights}, protocol=2)
    assert b"numpy.core.multiarray\n" in data and b"_codecs\nencode\n" in data
    path = tmp_path / "np2.pkl"
    path.write_bytes(data.replace(b"numpy.core.multiarray\n", b"numpy._core.multiarray\n"))
    out = read_jittor_pickle(path)["model"]
    assert bits_equal(out["backbone.norm1.weight"], weights["backbone.norm1.weight"])
    assert out["n"] == 2.5 and out["n"].dtype == np.float64


def _pretrain_weights(orig_naming: bool) -> "OrderedDict[str, np.ndarray]":
    sd = tiny_state_dict()
    bb = OrderedDict((k[len("backbone."):], v) for k, v in sd.items() if k.startswith("backbone."))
    if orig_naming:
        bb = to_orig_names(bb)
    bb["head.weight"] = np.ones((1000, 64), np.float32)
    bb["head.bias"] = np.zeros(1000, np.float32)
    return bb


def test_backbone_pretrain_detection_torch(tmp_path: Path) -> None:
    path = tmp_path / "mscan_tiny.pth"
    tw.write_zip(str(path), {"state_dict": as_tensors(_pretrain_weights(orig_naming=False))})
    out, _, source = read_any_checkpoint(path)
    assert source == "backbone_pretrain"
    expected = [k for k in tiny_state_dict() if k.startswith("backbone.")]
    assert list(out) == expected
    contents = read_checkpoint(path)
    assert contents.dropped == ["head.weight", "head.bias"] and contents.backbone_only


def test_backbone_pretrain_detection_orig_bare_dict_and_jseg(tmp_path: Path) -> None:
    expected = [k for k in tiny_state_dict() if k.startswith("backbone.")]
    bare = tmp_path / "mscan_orig.pth"
    tw.write_legacy(str(bare), as_tensors(_pretrain_weights(orig_naming=True)))  # no wrapper dict
    out, _, source = read_any_checkpoint(bare)
    assert source == "backbone_pretrain" and list(out) == expected
    jseg = tmp_path / "mscan_t.pkl"
    weights = {k: v for k, v in _pretrain_weights(True).items() if not k.endswith("num_batches_tracked")}
    tw.jseg_save(str(jseg), weights)
    out, _, source = read_any_checkpoint(jseg)
    assert source == "backbone_pretrain" and list(out) == expected


def test_load_backbone_pretrain_is_non_strict_and_backbone_only(tmp_path: Path) -> None:
    path = tmp_path / "mscan_tiny.pth"
    tw.write_zip(str(path), {"state_dict": as_tensors(_pretrain_weights(orig_naming=False))})
    model = FakeModel.from_keys(TINY)
    messages: List[str] = []
    report = load_checkpoint(model, path, strict=True, logger=messages.append)
    sd = tiny_state_dict()
    backbone_keys = [k for k in sd if k.startswith("backbone.")]
    assert report.source == "backbone_pretrain" and not report.strict
    assert sorted(report.loaded) == sorted(backbone_keys) and not report.missing and not report.unexpected
    assert report.dropped == ["head.weight", "head.bias"]
    for k in backbone_keys:
        assert np.array_equal(model.params[k], sd[k]), k
    assert (model.params["decode_head.conv_seg.weight"] == -7).all()  # head untouched
    assert any("head.weight" in m for m in messages)

    # a backbone-only model (keys without the prefix) takes the same file
    bare = FakeModel({k[len("backbone."):]: (s, d) for k, s, d in key_list(TINY) if k.startswith("backbone.")})
    report = load_checkpoint(bare, path, logger=None)
    assert len(report.loaded) == len(backbone_keys) and report.ok


# ------------------------------------------------------------------------------------------------
# malicious pickles
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["zip", "legacy", "pkl"])
@pytest.mark.parametrize("payload_name", ["os.system", "builtins.eval", "subprocess.call"])
def test_malicious_checkpoint_is_refused(kind: str, payload_name: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / f"evil.{'pkl' if kind == 'pkl' else 'pth'}"
    write_malicious(kind, path, payloads(sentinel)[payload_name])
    reader = read_jittor_pickle if kind == "pkl" else read_torch_checkpoint
    with pytest.raises(UnsafeCheckpointError) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message
    refused = {"os.system": ("posix.system", "os.system", "nt.system"),
               "builtins.eval": ("builtins.eval",), "subprocess.call": ("subprocess.call",)}[payload_name]
    assert any(name in message for name in refused), message
    with pytest.raises(UnsafeCheckpointError):
        read_any_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(FakeModel({}), path, logger=None)
    assert not sentinel.exists()


def test_malicious_payload_is_live_with_plain_pickle(tmp_path: Path) -> None:
    # Proves the refusal tests above are meaningful: the same bytes do run code with pickle.loads.
    sentinel = tmp_path / "pwned"
    data = pickle.dumps(payloads(sentinel)["os.system"], protocol=2)
    pickle.loads(data)
    assert sentinel.exists()


def test_handwritten_reduce_pickle_in_zip_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    cmd = f"touch {sentinel}".encode()
    evil = (b"\x80\x02cos\nsystem\n(X" + len(cmd).to_bytes(4, "little") + cmd + b"tR.")
    path = tmp_path / "evil.pth"
    tw.write_zip(str(path), {}, data_pkl=evil)
    with pytest.raises(UnsafeCheckpointError, match=r"os\.system"):
        read_torch_checkpoint(path)
    assert not sentinel.exists()


def test_allowed_callables_cannot_be_modified_by_build(tmp_path: Path) -> None:
    # GLOBAL rebuild fn; BUILD (None, {'qualname': 'hacked'}) would setattr on our function object.
    state = b"N}X\x08\x00\x00\x00qualnameX\x06\x00\x00\x00hackeds\x86b."
    evil = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + state
    path = tmp_path / "build.pth"
    tw.write_zip(str(path), {}, data_pkl=evil)
    with pytest.raises(CheckpointFormatError):
        read_torch_checkpoint(path)
    fn = torch_pickle._torch_globals()[("torch._utils", "_rebuild_tensor_v2")]
    assert fn.qualname == "torch._utils._rebuild_tensor_v2"


# ------------------------------------------------------------------------------------------------
# native .npz
# ------------------------------------------------------------------------------------------------
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
    model = FakeModel.from_keys(TINY)
    report = load_checkpoint(model, path, logger=None)
    assert report.ok and len(report.loaded) == len(sd)
    # a file with no 'state_dict/' group is all weights
    flat = tmp_path / "flat.npz"
    save_npz(flat, sd, {})
    assert list(read_any_checkpoint(flat)[0]) == list(sd)


# ------------------------------------------------------------------------------------------------
# clear errors for bad files
# ------------------------------------------------------------------------------------------------
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
    data = (TINY / "checkpoint.pth").read_bytes()
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


# ------------------------------------------------------------------------------------------------
# matching and loading into a model
# ------------------------------------------------------------------------------------------------
def test_match_state_dict() -> None:
    model = {"a": (2, 3), "b": (4,), "c": (), "d": (5,)}
    ckpt = {"a": np.zeros((2, 3)), "b": np.zeros(5), "c": np.zeros(1), "e": np.zeros(1)}
    report = match_state_dict(model, ckpt)
    assert report.matched == ["a", "c"]  # () vs (1,) scalars are compatible
    assert report.missing == ["d"] and report.unexpected == ["e"]
    assert report.mismatched == [("b", (4,), (5,))] and not report.ok


def test_load_fixture_into_model_strict(tmp_path: Path) -> None:
    model = FakeModel.from_keys(TINY)
    messages: List[str] = []
    report = load_checkpoint(model, TINY / "checkpoint.pth", logger=messages.append)
    assert report.ok and report.source == "mmseg" and len(report.loaded) == len(model.params)
    sd = tiny_state_dict()
    for k in sd:
        assert bits_equal(model.params[k], sd[k]), k
    assert model.load_calls == 1 and "246/246" in messages[0]


def test_strict_mismatch_lists_names_and_shapes(tmp_path: Path) -> None:
    spec = {k: (s, d) for k, s, d in key_list(TINY)}
    spec.pop("backbone.block1.0.layer_scale_1")
    spec["decode_head.extra.weight"] = ((3,), "float32")
    spec["decode_head.conv_seg.weight"] = ((150, 16, 1, 1), "float32")
    model = FakeModel(spec)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, TINY / "checkpoint.pth", logger=None)
    msg = str(info.value)
    assert str(TINY / "checkpoint.pth") in msg
    assert "missing in checkpoint (1)" in msg and "decode_head.extra.weight" in msg
    assert "unexpected in checkpoint (1)" in msg and "backbone.block1.0.layer_scale_1" in msg
    assert "decode_head.conv_seg.weight: model (150, 16, 1, 1) vs checkpoint (5, 16, 1, 1)" in msg
    assert "num_classes" in msg
    assert model.load_calls == 0  # nothing half-loaded

    report = load_checkpoint(model, TINY / "checkpoint.pth", strict=False, logger=None)
    assert report.missing == ["decode_head.extra.weight"]
    assert report.unexpected == ["backbone.block1.0.layer_scale_1"]
    assert [m[0] for m in report.mismatched] == ["decode_head.conv_seg.weight"]
    assert len(report.loaded) == len(spec) - 2
    assert (model.params["decode_head.conv_seg.weight"] == -7).all()


def test_mismatch_message_truncates_long_lists(tmp_path: Path) -> None:
    spec = {k: (s, d) for k, s, d in key_list(TINY)}
    spec.update({f"decode_head.new{i}.weight": ((2,), "float32") for i in range(30)})
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(FakeModel(spec), TINY / "checkpoint.pth", logger=None)
    msg = str(info.value)
    assert "missing in checkpoint (30)" in msg and "... and 10 more" in msg
    assert "decode_head.new19.weight" in msg and "decode_head.new29.weight" not in msg


def test_dtype_cast_and_model_without_num_batches_tracked(tmp_path: Path) -> None:
    sd = tiny_state_dict()
    as_f64 = OrderedDict((k, v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in sd.items())
    path = tmp_path / "f64.pth"
    tw.write_zip(str(path), {"state_dict": as_tensors(as_f64)})
    model = FakeModel.from_keys(TINY, drop_nbt=True)  # Jittor-style BN without the counter
    report = load_checkpoint(model, path, strict=True, logger=None)
    assert report.ok and len(report.ignored) == sum(k.endswith("num_batches_tracked") for k in sd)
    for k, v in model.params.items():
        assert v.dtype == np.float32 and np.array_equal(v, sd[k]), k


def test_scalar_buffer_shape_compat(tmp_path: Path) -> None:
    # older Jittor has no 0-d vars: a (1,) model buffer takes the 0-d int64 counter
    spec = {k: ((1,) if k.endswith("num_batches_tracked") else s, d) for k, s, d in key_list(TINY)}
    model = FakeModel(spec)
    report = load_checkpoint(model, TINY / "checkpoint.pth", logger=None)
    assert report.ok
    nbt = "backbone.patch_embed1.proj.1.num_batches_tracked"
    assert model.params[nbt].shape == (1,) and int(model.params[nbt][0]) == int(tiny_state_dict()[nbt])


# ------------------------------------------------------------------------------------------------
# tools/convert_checkpoint.py
# ------------------------------------------------------------------------------------------------
def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=str(REPO_ROOT),
                          capture_output=True, text=True, timeout=300)


def test_convert_tool_on_fixture(tmp_path: Path) -> None:
    out = tmp_path / "tiny.npz"
    result = run_tool(str(TINY / "checkpoint.pth"), str(out))
    assert result.returncode == 0, result.stderr
    sd = tiny_state_dict()
    assert "source: mmseg" in result.stdout
    assert f"tensors: {len(sd)}" in result.stdout
    assert f"parameters: {count_parameters(sd):,}" in result.stdout
    arrays, meta = load_npz(out)
    assert list(arrays) == ["state_dict/" + k for k in sd]
    assert all(bits_equal(arrays["state_dict/" + k], v) for k, v in sd.items())
    assert meta["checkpoint_kind"] == "model" and meta["converted_from"]["source"] == "mmseg"
    assert meta["checkpoint_meta"]["seed"] == 0
    got, _, source = read_any_checkpoint(out)
    assert source == "native" and list(got) == list(sd)


def test_convert_tool_orig_backbone_only_and_bad_output(tmp_path: Path) -> None:
    orig = tmp_path / "orig.pth"
    tw.write_zip(str(orig), {"state_dict": as_tensors(to_orig_names(tiny_state_dict()))})
    out = tmp_path / "bb.npz"
    result = run_tool(str(orig), str(out), "--backbone-only")
    assert result.returncode == 0, result.stderr
    assert "source: orig" in result.stdout and "renamed: " in result.stdout and ".mlp.dwconv.dwconv." in result.stdout
    # a backbone-only native file loads like a pretrain file: backbone keys only, non-strict
    model = FakeModel.from_keys(TINY)
    report = load_checkpoint(model, out, strict=True, logger=None)
    assert report.ok and all(k.startswith("backbone.") for k in report.loaded)
    assert (model.params["decode_head.conv_seg.weight"] == -7).all()

    bad = run_tool(str(TINY / "checkpoint.pth"), str(tmp_path / "out.pth"))
    assert bad.returncode == 2 and ".npz" in bad.stderr
    assert not (tmp_path / "out.pth").exists()
    evil = tmp_path / "evil.pth"
    write_malicious("zip", evil, payloads(tmp_path / "pwned")["os.system"])
    refused = run_tool(str(evil), str(tmp_path / "evil.npz"))
    assert refused.returncode == 1 and "refused" in refused.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "evil.npz").exists()
