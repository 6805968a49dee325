"""segnext_jt.io.convert: any checkpoint kind (mmseg, original release, JSeg, backbone pretrain) read
into mmseg keys, parameter counts, and matching/loading into a model (duck-typed: no jittor)."""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

import _torch_writer as tw
from helpers import (FIXTURES, TINY_DIR, FakeModel, as_tensors, bits_equal, key_list, tiny_state_dict,
                     to_orig_names)

from segnext_jt.errors import CheckpointMismatchError
from segnext_jt.io import (
    count_parameters,
    load_checkpoint,
    match_state_dict,
    read_any_checkpoint,
    read_checkpoint,
    read_jittor_pickle,
)


# ---------------------------------------------------------------------------------------------------
# mmseg checkpoints
# ---------------------------------------------------------------------------------------------------


def test_fixture_read_any_checkpoint_is_mmseg() -> None:
    sd, meta, source = read_any_checkpoint(TINY_DIR / "checkpoint.pth")
    assert source == "mmseg"
    assert list(sd) == [k for k, _, _ in key_list(TINY_DIR)]
    assert meta["seed"] == 0 and "config" in meta
    json.dumps(meta)  # JSON-able
    contents = read_checkpoint(TINY_DIR / "checkpoint.pth")
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


# ---------------------------------------------------------------------------------------------------
# conversion: ORIG, JSEG, backbone pretrain, module. prefix
# ---------------------------------------------------------------------------------------------------


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
    model = FakeModel.from_keys(TINY_DIR)
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
    bare = FakeModel({k[len("backbone."):]: (s, d) for k, s, d in key_list(TINY_DIR) if k.startswith("backbone.")})
    report = load_checkpoint(bare, path, logger=None)
    assert len(report.loaded) == len(backbone_keys) and report.ok


# ---------------------------------------------------------------------------------------------------
# matching and loading into a model
# ---------------------------------------------------------------------------------------------------


def test_match_state_dict() -> None:
    model = {"a": (2, 3), "b": (4,), "c": (), "d": (5,)}
    ckpt = {"a": np.zeros((2, 3)), "b": np.zeros(5), "c": np.zeros(1), "e": np.zeros(1)}
    report = match_state_dict(model, ckpt)
    assert report.matched == ["a", "c"]  # () vs (1,) scalars are compatible
    assert report.missing == ["d"] and report.unexpected == ["e"]
    assert report.mismatched == [("b", (4,), (5,))] and not report.ok


def test_load_fixture_into_model_strict(tmp_path: Path) -> None:
    model = FakeModel.from_keys(TINY_DIR)
    messages: List[str] = []
    report = load_checkpoint(model, TINY_DIR / "checkpoint.pth", logger=messages.append)
    assert report.ok and report.source == "mmseg" and len(report.loaded) == len(model.params)
    sd = tiny_state_dict()
    for k in sd:
        assert bits_equal(model.params[k], sd[k]), k
    assert model.load_calls == 1 and "246/246" in messages[0]


def test_strict_mismatch_lists_names_and_shapes(tmp_path: Path) -> None:
    spec = {k: (s, d) for k, s, d in key_list(TINY_DIR)}
    spec.pop("backbone.block1.0.layer_scale_1")
    spec["decode_head.extra.weight"] = ((3,), "float32")
    spec["decode_head.conv_seg.weight"] = ((150, 16, 1, 1), "float32")
    model = FakeModel(spec)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, TINY_DIR / "checkpoint.pth", logger=None)
    msg = str(info.value)
    assert str(TINY_DIR / "checkpoint.pth") in msg
    assert "missing in checkpoint (1)" in msg and "decode_head.extra.weight" in msg
    assert "unexpected in checkpoint (1)" in msg and "backbone.block1.0.layer_scale_1" in msg
    assert "decode_head.conv_seg.weight: model (150, 16, 1, 1) vs checkpoint (5, 16, 1, 1)" in msg
    assert "num_classes" in msg
    assert model.load_calls == 0  # nothing half-loaded

    report = load_checkpoint(model, TINY_DIR / "checkpoint.pth", strict=False, logger=None)
    assert report.missing == ["decode_head.extra.weight"]
    assert report.unexpected == ["backbone.block1.0.layer_scale_1"]
    assert [m[0] for m in report.mismatched] == ["decode_head.conv_seg.weight"]
    assert len(report.loaded) == len(spec) - 2
    assert (model.params["decode_head.conv_seg.weight"] == -7).all()


def test_mismatch_message_truncates_long_lists(tmp_path: Path) -> None:
    spec = {k: (s, d) for k, s, d in key_list(TINY_DIR)}
    spec.update({f"decode_head.new{i}.weight": ((2,), "float32") for i in range(30)})
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(FakeModel(spec), TINY_DIR / "checkpoint.pth", logger=None)
    msg = str(info.value)
    assert "missing in checkpoint (30)" in msg and "... and 10 more" in msg
    assert "decode_head.new19.weight" in msg and "decode_head.new29.weight" not in msg


def test_dtype_cast_and_model_without_num_batches_tracked(tmp_path: Path) -> None:
    sd = tiny_state_dict()
    as_f64 = OrderedDict((k, v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in sd.items())
    path = tmp_path / "f64.pth"
    tw.write_zip(str(path), {"state_dict": as_tensors(as_f64)})
    model = FakeModel.from_keys(TINY_DIR, drop_nbt=True)  # Jittor-style BN without the counter
    report = load_checkpoint(model, path, strict=True, logger=None)
    assert report.ok and len(report.ignored) == sum(k.endswith("num_batches_tracked") for k in sd)
    for k, v in model.params.items():
        assert v.dtype == np.float32 and np.array_equal(v, sd[k]), k


def test_scalar_buffer_shape_compat(tmp_path: Path) -> None:
    # older Jittor has no 0-d vars: a (1,) model buffer takes the 0-d int64 counter
    spec = {k: ((1,) if k.endswith("num_batches_tracked") else s, d) for k, s, d in key_list(TINY_DIR)}
    model = FakeModel(spec)
    report = load_checkpoint(model, TINY_DIR / "checkpoint.pth", logger=None)
    assert report.ok
    nbt = "backbone.patch_embed1.proj.1.num_batches_tracked"
    assert model.params[nbt].shape == (1,) and int(model.params[nbt][0]) == int(tiny_state_dict()[nbt])
