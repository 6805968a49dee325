"""Hostile checkpoint files (issue #9): each must be refused quickly, with little memory, by one
`CheckpointError` line that names the file; never by a raw traceback, a huge allocation or a crash.

Every file is built here, on the fly (torch formats by `tests/_torch_writer.py`, without torch). The
classes: tensor layouts that ask for more than their storage holds, shared/recursive/deep containers,
zip bombs (members larger than needed, high ratios, overlapping entries, an oversized data.pkl),
lying legacy element counts, truncated files, pickles with too many opcodes or crash-deep tuples,
numpy reconstructors misused, and native .npz headers that lie.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

import _torch_writer as tw
from helpers import Reduce

from segnext_jt.errors import CheckpointError, UnsafeCheckpointError
from segnext_jt.io import load_npz, read_any_checkpoint, read_jittor_pickle, read_torch_checkpoint, save_npz
from segnext_jt.io.limits import MAX_DEPTH, MAX_PICKLE_OPS, to_jsonable

MEMORY_LIMIT = 200 << 20  # bytes traced while refusing one file (the unpatched readers asked for 37 GiB)
TIME_LIMIT = 5.0  # seconds; refusals take well under one, the margin is for loaded machines
GiB = 1 << 30
WEIGHTS = {"backbone.norm1.weight": np.ones(4, np.float32)}

Reader = Callable[[Any], Any]


def refused(reader: Reader, path: Path, match: Optional[str] = None, error: type = CheckpointError) -> str:
    """Assert `reader(path)` raises `error`: one line naming `path`, fast, with little memory."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error) as info:
            reader(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert str(path) in message, message
    assert len(message.splitlines()) == 1, message
    if match is not None:
        assert re.search(match, message), message
    assert peak < MEMORY_LIMIT, f"{peak / 2 ** 20:.0f} MiB traced while refusing {path.name}"
    assert elapsed < TIME_LIMIT, f"{elapsed:.1f} s to refuse {path.name}"
    return message


def write_pkl_bytes(path: Path, data: bytes) -> Path:
    """A jt.save file around an arbitrary (hand-written) pickle."""
    path.write_bytes(data + hashlib.sha1(data).digest() + b"HCAJSLHD")
    return path


def write_torch(kind: str, path: Path, obj: Any = None, raw_pickle: Optional[bytes] = None) -> Path:
    if kind == "zip":
        tw.write_zip(str(path), obj if obj is not None else {}, data_pkl=raw_pickle)
    else:
        tw.write_legacy(str(path), obj if obj is not None else {}, object_pickle=raw_pickle)
    return path


def write_any(kind: str, path: Path, obj: Any = None, raw_pickle: Optional[bytes] = None) -> Path:
    """The same content as a torch zip, torch legacy or JSeg .pkl file."""
    if kind == "pkl":
        return write_pkl_bytes(path, raw_pickle if raw_pickle is not None else pickle.dumps(obj, 4))
    return write_torch(kind, path, obj, raw_pickle)


# ------------------------------------------------------------------------------------------------
# 1. tensor layouts: size / stride / offset against the storage, before allocating
# ------------------------------------------------------------------------------------------------
LAYOUTS = {
    # name: (storage numel, offset, size, stride, expected message)
    "issue_37GiB_broadcast": (1, 0, (100000, 100000), (0, 0), "holds only 1;.*stride-0"),
    "broadcast_1d": (1, 0, (1 << 24,), (0,), "holds only 1"),
    "broadcast_one_dim": (16, 0, (16, 1 << 30), (1, 0), "holds only 16"),
    "product_overflows_int64": (1, 0, (1 << 40, 1 << 40), (0, 0), "holds only 1"),
    "negative_stride": (16, 0, (4, 4), (-1, 1), r"size \(4, 4\) / stride \(-1, 1\) must be non-negative"),
    "negative_size": (16, 0, (-4, 4), (4, 1), "must be non-negative"),
    "reads_past_end": (16, 4, (4, 4), (4, 1), "reads element 19"),
    "offset_past_end": (16, 16, (1,), (1,), "reads element 16"),
    "huge_offset": (16, 1 << 70, (1,), (1,), "storage_offset"),
    "huge_stride": (16, 0, (2, 2), (1 << 62, 1), "implausibly large"),
    "too_many_dims": (16, 0, (1,) * 40, (1,) * 40, "at most 32"),
    "empty_but_huge": (16, 0, (0, 1 << 47, 1 << 47), (1, 1, 1), "implausibly large"),
    "rank_mismatch": (16, 0, (4, 4), (1,), "different lengths"),
}


@pytest.mark.parametrize("kind", ["zip", "legacy"])
@pytest.mark.parametrize("case", sorted(LAYOUTS))
def test_tensor_layout_outside_storage_is_refused(kind: str, case: str, tmp_path: Path) -> None:
    numel, offset, size, stride, match = LAYOUTS[case]
    storage = tw.Storage(np.zeros(numel, np.float32))
    path = write_torch(kind, tmp_path / f"{case}.pth", {"state_dict": {"w": tw.Tensor(storage, offset, size, stride)}})
    refused(read_torch_checkpoint, path, match)
    refused(read_any_checkpoint, path, match)


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_views_real_checkpoints_use_still_load(kind: str, tmp_path: Path) -> None:
    base = np.arange(12, dtype=np.float32)
    storage = tw.Storage(base)
    obj = {
        "w": tw.Tensor(storage, 0, (3, 4), (4, 1)),
        "tied": tw.Tensor(storage, 0, (3, 4), (4, 1)),  # a second tensor on the same storage
        "unsqueezed": tw.Tensor(storage, 4, (1, 4), (1 << 40, 1)),  # size-1 dims may carry any stride
        "rows": tw.Tensor(storage, 0, (3, 4), (0, 1)),  # stride 0, but no larger than the storage
        "t": tw.Tensor(storage, 1, (4, 2), (1, 5)),
        "tuple": tuple(tw.tensor(np.full(2, i, np.float32)) for i in range(300)),  # ~3,000 weight to hash
    }
    out = read_torch_checkpoint(write_torch(kind, tmp_path / "views.pth", obj))
    assert np.array_equal(out["w"], base.reshape(3, 4)) and np.array_equal(out["tied"], out["w"])
    assert out["tied"] is not out["w"]
    assert np.array_equal(out["unsqueezed"], base[None, 4:8])
    assert np.array_equal(out["rows"], np.broadcast_to(base[:4], (3, 4)))
    assert np.array_equal(out["t"], np.array([[1, 6], [2, 7], [3, 8], [4, 9]], np.float32))
    assert [float(t[0]) for t in out["tuple"]] == list(range(300))


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_many_views_of_one_storage_are_bounded(kind: str, tmp_path: Path) -> None:
    # 4 MB of storage viewed whole by 40 tensors would be 160 MB of copies (and 4 GB with 1000).
    storage = tw.Storage(np.zeros(1 << 20, np.float32))
    obj = {f"w{i}": tw.Tensor(storage, 0, (1 << 20,), (1,)) for i in range(40)}
    path = write_torch(kind, tmp_path / "views.pth", obj)
    refused(read_torch_checkpoint, path, "overlapping views of the same storage")


@pytest.mark.parametrize("kind", ["zip", "legacy"])
@pytest.mark.parametrize("numel", [1 << 40, 1 << 70])
def test_storage_numel_larger_than_the_data_is_refused(kind: str, numel: int, tmp_path: Path) -> None:
    storage = tw.Storage(np.zeros(4, np.float32), numel=numel)
    path = write_torch(kind, tmp_path / "numel.pth", {"w": tw.Tensor(storage, 0, (4,), (1,))})
    refused(read_torch_checkpoint, path, "needs|numel")


# ------------------------------------------------------------------------------------------------
# 2. shared, recursive and deeply nested containers
# ------------------------------------------------------------------------------------------------
def shared_lists(levels: int) -> List[Any]:
    """Each level is a list holding the previous one twice: 2**levels leaves for a naive walk."""
    x: List[Any] = [1]
    for _ in range(levels):
        x = [x, x]
    return x


@pytest.mark.parametrize("kind", ["pkl", "zip", "legacy"])
def test_shared_list_bomb_in_meta(kind: str, tmp_path: Path) -> None:
    weights = WEIGHTS if kind == "pkl" else {k: tw.tensor(v) for k, v in WEIGHTS.items()}
    path = write_any(kind, tmp_path / f"shared.{kind}", {"model": weights, "meta": {"bomb": shared_lists(26)}})
    assert path.stat().st_size < 10_000
    refused(read_any_checkpoint, path, "expands to more than")
    start = time.perf_counter()  # reading the raw object walks each shared list once
    raw = (read_jittor_pickle if kind == "pkl" else read_torch_checkpoint)(path)
    assert time.perf_counter() - start < TIME_LIMIT
    bomb = raw["meta"]["bomb"]
    assert bomb[0] is bomb[1]


@pytest.mark.parametrize("kind", ["pkl", "zip", "legacy"])
def test_self_containing_list_is_refused(kind: str, tmp_path: Path) -> None:
    loop: List[Any] = [1]
    loop.append(loop)
    path = write_any(kind, tmp_path / f"loop.{kind}", {"model": {}, "meta": {"loop": loop}})
    refused(read_any_checkpoint, path, "contains itself")


def deep_lists_pickle(depth: int) -> bytes:
    # pickle.dumps itself recurses; these opcodes push `depth` lists and append each into the one below.
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


@pytest.mark.parametrize("kind", ["pkl", "zip", "legacy"])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 2, 100_000])
def test_deeply_nested_lists_are_refused(kind: str, depth: int, tmp_path: Path) -> None:
    path = write_any(kind, tmp_path / f"deep.{kind}", raw_pickle=deep_lists_pickle(depth))
    refused(read_any_checkpoint, path, f"nested more than {MAX_DEPTH} levels")


def shared_tuples_key(levels: int) -> bytes:
    """{t: None} where each level of t holds the previous level twice (memo): hashing t takes 2**levels."""
    body = b"K\x01\x85q\x00"  # (1,), memo 0
    for _ in range(levels):
        body += b"h\x00h\x00\x86q\x00"  # (memo0, memo0) -> memo 0
    return b"\x80\x02}" + body + b"Ns."


def repeated_heavy_key(items: int) -> bytes:
    """A dict with `items` entries keyed by one tuple of 2,500 1-tuples: each insertion hashes 2,501 tuples."""
    heavy = b"(" + b"K\x01\x85" * 2500 + b"tq\x00"
    return b"\x80\x02}" + heavy + b"0(" + b"h\x00N" * items + b"u."


TUPLE_BOMBS = {
    "deep_chain": b"\x80\x02)" + b"\x85" * 100_000 + b".",
    "shared_dict_key": shared_tuples_key(40),
    "one_heavy_tuple": b"\x80\x02(" + b"K\x01\x85" * 10_001 + b"t.",
    "repeated_heavy_key": repeated_heavy_key(20_000),
}


@pytest.mark.parametrize("kind", ["pkl", "zip", "legacy"])
@pytest.mark.parametrize("case", sorted(TUPLE_BOMBS))
def test_tuples_too_heavy_to_hash_are_refused_before_unpickling(kind: str, case: str, tmp_path: Path) -> None:
    # Unrefused, 'shared_dict_key' hashes for hours and 'deep_chain' as a key crashes the interpreter.
    path = write_any(kind, tmp_path / f"tuples.{kind}", raw_pickle=TUPLE_BOMBS[case])
    refused(read_any_checkpoint, path, "nests tuples|nested parts")


def test_deep_tuple_dict_key_does_not_crash_python(tmp_path: Path) -> None:
    # Hashing a tuple nested 300,000 deep overflows the C stack (segmentation fault). The read runs in
    # a child process so that a regression fails this test instead of killing the test session.
    path = write_pkl_bytes(tmp_path / "key.pkl", b"\x80\x02}" + b")" + b"\x85" * 300_000 + b"Ns.")
    script = (
        "import sys\n"
        "from segnext_jt.errors import CheckpointError\n"
        "from segnext_jt.io import read_jittor_pickle\n"
        "try:\n    read_jittor_pickle(sys.argv[1])\nexcept CheckpointError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(path) in result.stdout and "refused before unpickling" in result.stdout


def test_to_jsonable_is_memoised_and_bounded() -> None:
    x = [1, 2]
    out = to_jsonable({"a": [x, x], "t": (1, (2,)), "s": {3, 1}, "n": np.float32(0.5), "b": b"hi"})
    assert out == {"a": [[1, 2], [1, 2]], "t": [1, [2]], "s": [1, 3], "n": 0.5, "b": "hi"}
    json.dumps(out)
    big = np.zeros(10_000_000, np.uint8)  # 10 MB; .tolist() would build 80+ MB of Python ints
    cases = [(shared_lists(40), "expands to more than"), (big, "expands to more than")]
    loop: List[Any] = []
    loop.append(loop)
    cases.append((loop, "contains itself"))
    deep: List[Any] = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    cases.append((deep, "nested more than"))
    for value, match in cases:
        tracemalloc.start()
        start = time.perf_counter()
        try:
            with pytest.raises(CheckpointError, match=match):
                to_jsonable(value)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert time.perf_counter() - start < TIME_LIMIT and peak < MEMORY_LIMIT


# ------------------------------------------------------------------------------------------------
# 3. zip bombs and lying zip directories
# ------------------------------------------------------------------------------------------------
def bomb_archive(path: Path, obj: Any, storage_entry: tw.RawEntry, extra: Tuple[tw.RawEntry, ...] = ()) -> Path:
    data, _ = tw.dump(obj)
    tw.write_raw_zip(str(path), [tw.RawEntry("archive/data.pkl", data), tw.RawEntry("archive/byteorder", b"little"),
                                 storage_entry, *extra])
    return path


def test_zip_member_far_larger_than_its_tensor_is_refused(tmp_path: Path) -> None:
    # 3 GiB of zeros (3 MB compressed) behind a tensor that needs 4 bytes: never inflated.
    obj = {"w": tw.tensor(np.zeros(1, np.float32))}
    zeros = tw.RawEntry("archive/data/0", tw.deflated_zeros(3072), zipfile.ZIP_DEFLATED, file_size=3 * GiB)
    path = bomb_archive(tmp_path / "zeros.pth", obj, zeros)
    refused(read_torch_checkpoint, path, "far more than the 4")


def test_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    # The pickle claims a 3 GiB storage and the member holds it, compressed 1000:1.
    numel = 3 * GiB // 4
    obj = {"w": tw.Tensor(tw.Storage(np.zeros(1, np.float32), numel=numel), 0, (numel,), (1,))}
    zeros = tw.RawEntry("archive/data/0", tw.deflated_zeros(3072), zipfile.ZIP_DEFLATED, file_size=3 * GiB)
    path = bomb_archive(tmp_path / "ratio.pth", obj, zeros)
    refused(read_torch_checkpoint, path, "zip bomb")


def test_overlapping_zip_entries_are_refused(tmp_path: Path) -> None:
    # Two storages whose directory entries share one stored record: each read alone looks fine.
    a, b = (tw.Storage(np.zeros(1 << 18, np.float32)) for _ in range(2))
    obj = {"a": tw.Tensor(a, 0, (1 << 18,), (1,)), "b": tw.Tensor(b, 0, (1 << 18,), (1,))}
    record = tw.RawEntry("archive/data/0", bytes(1 << 20))
    alias = tw.RawEntry("archive/data/1", b"", same_data_as="archive/data/0")
    path = bomb_archive(tmp_path / "overlap.pth", obj, record, (alias,))
    refused(read_torch_checkpoint, path, "overlapping entries")


def test_oversized_data_pkl_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big_pickle.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02N." + bytes(65 << 20))
    refused(read_torch_checkpoint, path, "more than the 67,108,864 allowed")


def test_deflated_data_pkl_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickle_bomb.pth"
    tw.write_raw_zip(str(path), [tw.RawEntry("archive/data.pkl", tw.deflated_zeros(1024), zipfile.ZIP_DEFLATED,
                                             file_size=GiB)])
    refused(read_torch_checkpoint, path, "more than the 67,108,864 allowed for the pickle")


def test_storage_missing_from_archive(tmp_path: Path) -> None:
    data, _ = tw.dump({"w": tw.tensor(np.ones(3, np.float32))})
    path = tmp_path / "missing.pth"
    tw.write_raw_zip(str(path), [tw.RawEntry("archive/data.pkl", data)])
    refused(read_torch_checkpoint, path, "missing zip entry 'archive/data/0'")


# ------------------------------------------------------------------------------------------------
# 4. legacy format: element counts against the file, storages referenced but absent
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1 << 62, (1 << 63) - 1, 10 ** 12, -1])
def test_legacy_huge_or_negative_storage_count(count: int, tmp_path: Path) -> None:
    path = tmp_path / "count.pth"
    tw.write_legacy(str(path), {"w": tw.tensor(np.ones(4, np.float32))}, counts={"0": count})
    refused(read_torch_checkpoint, path, "remain|negative element count")


def test_legacy_storage_referenced_but_absent(tmp_path: Path) -> None:
    path = tmp_path / "absent.pth"
    data, _ = tw.dump({"w": tw.tensor(np.ones(4, np.float32))}, legacy=True)
    tw.write_legacy(str(path), {}, object_pickle=data)  # its key list is empty
    refused(read_torch_checkpoint, path, "referenced but has no data")


# ------------------------------------------------------------------------------------------------
# 5. truncated files of every format
# ------------------------------------------------------------------------------------------------
def _full_files(tmp_path: Path) -> Dict[str, Tuple[Path, int]]:
    """name -> (file, how many bytes at the end may be cut without losing data)."""
    weights = {"backbone.norm1.weight": np.arange(64, dtype=np.float32), "backbone.norm1.num_batches_tracked": np.array(3)}
    tensors = {k: tw.tensor(v) for k, v in weights.items()}
    files = {"zip": tmp_path / "full.pth", "legacy": tmp_path / "full_legacy.pth", "pkl": tmp_path / "full.pkl",
             "npz": tmp_path / "full.npz"}
    tw.write_zip(str(files["zip"]), {"state_dict": tensors, "meta": {"seed": 1}})
    tw.write_legacy(str(files["legacy"]), {"state_dict": tensors, "meta": {"seed": 1}})
    tw.jseg_save(str(files["pkl"]), {"model": weights, "meta": {"seed": 1}})
    save_npz(files["npz"], weights, {"seed": 1})
    # jt.save's 28-byte trailer may go: the pickle is complete without it.
    return {k: (p, 28 if k == "pkl" else 0) for k, p in files.items()}


@pytest.mark.parametrize("kind", ["zip", "legacy", "pkl", "npz"])
def test_truncated_files_are_refused_at_every_length(kind: str, tmp_path: Path) -> None:
    full, spare = _full_files(tmp_path)[kind]
    data = full.read_bytes()
    read_any_checkpoint(full)
    cuts = sorted(set(np.linspace(1, len(data) - spare - 1, 40).astype(int).tolist()))
    for cut in cuts:
        short = tmp_path / f"cut_{cut}.{kind}"
        short.write_bytes(data[:cut])
        refused(read_any_checkpoint, short)
        short.unlink()


# ------------------------------------------------------------------------------------------------
# 6. pickles: opcode count, messages that name the file, numpy reconstructors
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pkl", "zip"])
def test_too_many_pickle_opcodes_are_refused(kind: str, tmp_path: Path) -> None:
    data = b"\x80\x02](" + b"N" * (MAX_PICKLE_OPS + 10) + b"e."
    path = write_any(kind, tmp_path / f"ops.{kind}", raw_pickle=data)
    refused(read_any_checkpoint, path, f"more than {MAX_PICKLE_OPS:,} pickle opcodes")


@pytest.mark.parametrize("data,match,error", [
    (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.", "encode", CheckpointError),
    (b"\x80\x02cos\rpath\nsystem\n)R.", "refused to load", UnsafeCheckpointError),
    (b"\x80\x02X\x00\x00\x00\x80N.", "ends inside BINUNICODE", CheckpointError),
    (b"\x80\x02\xff.", "unknown opcode 0xff", CheckpointError),
    (b"\x80\x02Ns", "stack underflow", CheckpointError),
    (b"\x80\x02h\x05.", "never stored", CheckpointError),
], ids=["codecs_encode", "global_with_carriage_return", "truncated_opcode", "unknown_opcode", "underflow",
        "unknown_memo"])
def test_pickle_errors_name_the_file(data: bytes, match: str, error: type, tmp_path: Path) -> None:
    path = write_pkl_bytes(tmp_path / "odd.pkl", data)
    refused(read_jittor_pickle, path, match, error)
    zipped = write_torch("zip", tmp_path / "odd.pth", raw_pickle=data)
    refused(read_torch_checkpoint, zipped, match, error)


try:  # numpy >= 2 (1.26 also ships this alias)
    from numpy._core import multiarray as _MULTIARRAY
except ImportError:  # pragma: no cover - older numpy
    from numpy.core import multiarray as _MULTIARRAY  # type: ignore[no-redef]


@pytest.mark.parametrize("value,match", [
    (np.array([1, None], dtype=object), "not supported"),
    (np.zeros(2, dtype=[("a", "<f4")]), "not supported"),
    (Reduce(np.dtype, ("V16", False, True), (3, "|", None, ("a",), {"a": (np.dtype("f4"), 1 << 40)}, 16, 1, 16)),
     "not supported"),
    (Reduce(np.dtype, ("f4", False, True), (3, "<", (np.dtype("f4"), (1 << 20, 1 << 20)), None, None, 4, 4, 0)),
     "does not describe a plain"),
    (Reduce(_MULTIARRAY._reconstruct, (np.ndarray, (10 ** 9,), b"b")), "is not how numpy pickles arrays"),
    (Reduce(np.ndarray, ((10 ** 9,),)), "only be used through"),
    (Reduce(_MULTIARRAY._reconstruct, (np.ndarray, (0,), b"b"), (1, (10 ** 9,), np.dtype("f4"), False, b"")),
     "does not match its data"),
    (Reduce(_MULTIARRAY._reconstruct, (np.ndarray, (0,), b"b"), (1, (3,), np.dtype("O"), False, [1])),
     "not supported"),
    (Reduce(_MULTIARRAY.scalar, (np.dtype("f8"), b"\x00")), "needs 8 bytes"),
], ids=["object_array", "structured_array", "dtype_field_out_of_bounds", "dtype_subarray_state",
        "reconstruct_huge_shape", "ndarray_called", "state_without_data", "object_state", "short_scalar"])
def test_numpy_reconstructors_refuse_what_numpy_never_writes(value: Any, match: str, tmp_path: Path) -> None:
    path = write_pkl_bytes(tmp_path / "numpy.pkl", pickle.dumps({"model": {"w": value}}, 2))
    refused(read_jittor_pickle, path, match)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_plain_numpy_data_still_loads(protocol: int, tmp_path: Path) -> None:
    arrays = {str(dt): (np.arange(6) % 2).astype(dt).reshape(2, 3)
              for dt in ["bool", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16"]}
    arrays.update({
        "big_endian": np.arange(4, dtype=">f4"), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "scalar0d": np.array(7, np.int64), "empty": np.zeros((0, 4), np.float32),
        "bytes": np.array([b"ab", b"c"]), "text": np.array(["ümlaut", "x"]),
    })
    scalars = {"f": np.float32(1.5), "i": np.int64(-3), "b": np.bool_(True), "c": np.complex64(1 + 2j)}
    data = pickle.dumps({"model": arrays, "meta": scalars}, protocol)
    out, trusted = read_jittor_pickle(write_pkl_bytes(tmp_path / "plain.pkl", data)), pickle.loads(data)
    for key, want in trusted["model"].items():  # exactly what numpy's own unpickling gives
        got = out["model"][key]
        assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape, key
        assert np.array_equal(got, want) and np.array_equal(got, arrays[key]), key
        assert got.flags.f_contiguous == want.flags.f_contiguous, key
    for key, want in scalars.items():
        assert type(out["meta"][key]) is type(want) and out["meta"][key] == want, key


# ------------------------------------------------------------------------------------------------
# 7. native .npz: headers and sizes that lie, JSON metadata that nests
# ------------------------------------------------------------------------------------------------
def npy_bytes(header: Dict[str, Any], payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


def meta_npy(meta_json: str) -> bytes:
    text = ('{"format": "segnext_jt.native", "version": 1, "meta": ' + meta_json + "}").encode()
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(text, np.uint8))
    return buf.getvalue()


def write_npz(path: Path, members: List[tw.RawEntry], meta_json: str = "{}") -> Path:
    tw.write_raw_zip(str(path), [tw.RawEntry("__meta__.npy", meta_npy(meta_json)), *members])
    return path


def test_npz_header_larger_than_member_is_refused(tmp_path: Path) -> None:
    header = {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)}
    path = write_npz(tmp_path / "header.npz", [tw.RawEntry("w.npy", npy_bytes(header, bytes(16)))])
    refused(load_npz, path, "holds .* bytes but its .npy header")
    refused(read_any_checkpoint, path, "holds .* bytes but its .npy header")


def test_npz_object_member_and_stray_member_are_refused(tmp_path: Path) -> None:
    header = {"descr": "|O", "fortran_order": False, "shape": (2,)}
    path = write_npz(tmp_path / "object.npz", [tw.RawEntry("w.npy", npy_bytes(header, bytes(16)))])
    refused(load_npz, path, "Python objects")
    stray = write_npz(tmp_path / "stray.npz", [tw.RawEntry("notes.txt", b"hello")])
    refused(load_npz, stray, "unexpected or duplicate member 'notes.txt'")


def test_npz_meta_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta_bomb.npz"
    tw.write_raw_zip(str(path), [tw.RawEntry("__meta__.npy", tw.deflated_zeros(2048), zipfile.ZIP_DEFLATED,
                                             file_size=2 * GiB)])
    refused(load_npz, path, "zip bomb")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 100_000])
def test_npz_deep_json_meta_is_refused(depth: int, tmp_path: Path) -> None:
    path = write_npz(tmp_path / "deep_meta.npz", [], '{"x": ' + "[" * depth + "]" * depth + "}")
    refused(load_npz, path, "nested")


def test_every_reader_prefixes_the_path(tmp_path: Path) -> None:
    # Errors raised deep inside (no path known there) still come out naming the file, on one line.
    path = write_torch("zip", tmp_path / "neg.pth", {"w": tw.Tensor(tw.Storage(np.zeros(16, np.float32)), 0, (4, 4),
                                                                      (-1, 1))})
    message = refused(read_torch_checkpoint, path)
    assert message.startswith(f"{path}: tensor size (4, 4) / stride (-1, 1)")
