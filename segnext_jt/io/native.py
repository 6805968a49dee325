"""The project's own checkpoint format: one `.npz` of arrays plus JSON metadata, no pickle anywhere.

Layout: a standard numpy `.npz` (zip of `.npy` members, readable by `np.load(..., allow_pickle=False)`).
Each array is stored under its key; the reserved member `__meta__` holds a uint8 array with the UTF-8
JSON document `{"format": "segnext_jt.native", "version": 1, "meta": <meta>}`.

Keys may contain dots and slashes (zip member names). Arrays round-trip bit-exactly with their dtype,
byte order, shape (0-d included) and memory order, so the file can hold model weights, optimizer state
and RNG state for resumable training. Convention used by `convert.read_any_checkpoint`: model weights
live under `state_dict/<name>`; a file without any `state_dict/` key is all model weights.

Writes are atomic: a temporary file in the destination directory is written, fsync'ed and renamed over
the target with `os.replace`, so readers see either the old file or the complete new one.

Reading never trusts the file's own sizes: each member's `.npy` header (shape, dtype) is checked against
the member's size in the zip directory, and the zip directory against the file (`limits.ZipGuard`),
before an array is allocated; the JSON header is bounded in size, nesting and number of values.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from ..errors import CheckpointFormatError
from ..files import atomic_file
from .reading import ensure_file, names_file
from .limits import MAX_ELEMENTS, MAX_JSON_BYTES, ZipGuard, printable, short_repr, to_jsonable

__all__ = ["save_npz", "load_npz", "is_native_npz", "META_KEY", "STATE_DICT_PREFIX", "OPTIMIZER_PREFIX",
           "FROZEN_BASES_KEY", "FORMAT_NAME"]

META_KEY = "__meta__"
STATE_DICT_PREFIX = "state_dict/"
OPTIMIZER_PREFIX = "optimizer/"  # AdamW moments in training checkpoints (engine/checkpoint.py)
# NMF bases stored with the weights (rand_init: false; tools/freeze_nmf_bases.py writes them)
FROZEN_BASES_KEY = "decode_head.hamburger.ham.bases"
FORMAT_NAME = "segnext_jt.native"
FORMAT_VERSION = 1
_NPY_SUFFIX = ".npy"


def _validate_arrays(arrays: Mapping[str, Any], path: str) -> Dict[str, np.ndarray]:
    out: Dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{path}: array keys must be non-empty strings, got {key!r}")
        if key == META_KEY:
            raise ValueError(f"{path}: key '{META_KEY}' is reserved for the metadata")
        if key.endswith(_NPY_SUFFIX):
            # np.load strips '.npy' from member names, so 'a.npy' would be ambiguous with 'a'.
            raise ValueError(f"{path}: array key {key!r} must not end with '{_NPY_SUFFIX}'")
        if key.startswith("/") or "\\" in key or any(part in ("", ".", "..") for part in key.split("/")):
            raise ValueError(f"{path}: array key {key!r} is not a clean relative name (no empty, '.' or '..' parts)")
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{path}: value of key {key!r} must be a numpy.ndarray, got {type(value).__name__}")
        if value.dtype.hasobject:
            raise TypeError(f"{path}: array {key!r} has dtype {value.dtype} (Python objects); only plain dtypes can be saved")
        out[key] = value
    return out


def _encode_meta(meta: Mapping[str, Any], path: str) -> np.ndarray:
    if not isinstance(meta, Mapping):
        raise TypeError(f"{path}: meta must be a dict, got {type(meta).__name__}")
    document = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "meta": dict(meta)}
    try:
        text = json.dumps(document, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{path}: meta is not JSON-serialisable ({exc}); store arrays as arrays, not in meta") from exc
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem, so best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_npz(
    path: "str | os.PathLike[str]",
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    *,
    compress: bool = False,
) -> None:
    """Atomically write `arrays` and JSON-able `meta` to `path` (an `.npz`; no suffix is added)."""
    target = os.fspath(path)
    checked = _validate_arrays(arrays, target)
    meta_array = _encode_meta(meta, target)
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{target}: directory {directory} does not exist")

    with atomic_file(target, "wb") as f:
        compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zipfile.ZipFile(f, mode="w", compression=compression, allowZip64=True) as zf:
            for key, value in [(META_KEY, meta_array), *checked.items()]:
                # force_zip64: the member size is unknown when streaming, and may exceed 2 GiB.
                with zf.open(key + _NPY_SUFFIX, mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)
    _fsync_directory(directory)


@names_file
def is_native_npz(path: "str | os.PathLike[str]") -> bool:
    """True if `path` is a zip archive holding our `__meta__.npy` member."""
    p = ensure_file(path)
    try:
        with zipfile.ZipFile(p) as zf:
            return META_KEY + _NPY_SUFFIX in zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _decode_meta(raw: np.ndarray) -> Dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointFormatError(f"'{META_KEY}' should be a 1-D uint8 array, got {raw.dtype} {raw.shape}")
    try:
        document = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(f"'{META_KEY}' is not valid UTF-8 JSON: {exc}") from exc
    except RecursionError:
        raise CheckpointFormatError(f"'{META_KEY}' JSON is nested too deeply (corrupt or hostile file?)") from None
    if not (isinstance(document, dict) and document.get("format") == FORMAT_NAME and isinstance(document.get("meta"), dict)):
        raise CheckpointFormatError(f"'{META_KEY}' is not a {FORMAT_NAME} header")
    if document.get("version") != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{FORMAT_NAME} version {short_repr(document.get('version'))} is not supported (expected {FORMAT_VERSION})"
        )
    return to_jsonable(document["meta"])  # the same data, with nesting depth and size bounded


def _npy_header(member: Any, name: str) -> Tuple[Tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:  # save_npz writes 1.0 (2.0 for huge headers); 3.0 is only for structured utf-8 field names
        raise CheckpointFormatError(f"member '{name}' has .npy format version {version}, expected 1.0 or 2.0")
    if dtype.hasobject:
        raise CheckpointFormatError(f"member '{name}' holds Python objects (dtype {dtype}), which need pickle; refused")
    if len(shape) > 32 or not all(0 <= n <= MAX_ELEMENTS for n in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise CheckpointFormatError(f"member '{name}' declares an implausible shape {short_repr(shape)}")
    return shape, dtype


def _read_member(guard: ZipGuard, info: zipfile.ZipInfo, limit: Optional[int] = None) -> np.ndarray:
    """One `.npy` member; its header is checked against the member's size before the array is allocated."""
    name = printable(info.filename)
    guard.admit(info)  # compression ratio and overlapping entries, before inflating the header
    with guard.zf.open(info) as member:
        shape, dtype = _npy_header(member, name)
        need = member.tell() + math.prod(shape) * dtype.itemsize
        if limit is not None and need > limit:
            raise CheckpointFormatError(f"member '{name}' needs {need:,} bytes, more than the {limit:,} allowed")
        guard.check_size(info, need, f"its .npy header (shape {shape}, dtype {dtype})")
        member.seek(0)
        return np.lib.format.read_array(member, allow_pickle=False)


def _read_members(zf: zipfile.ZipFile, path: str) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """(arrays in file order, the raw `__meta__` array)."""
    names = zf.namelist()
    if META_KEY + _NPY_SUFFIX not in names:
        shown = [printable(n[: -len(_NPY_SUFFIX)], 60) for n in names[:10]]
        raise CheckpointFormatError(f".npz without '{META_KEY}', so not a {FORMAT_NAME} checkpoint (keys: {shown})")
    seen = set()
    for name in names:
        if not name.endswith(_NPY_SUFFIX) or name in seen:
            raise CheckpointFormatError(f"unexpected or duplicate member '{printable(name)}' in the .npz")
        seen.add(name)
    guard = ZipGuard(zf, path)
    raw_meta = _read_member(guard, zf.getinfo(META_KEY + _NPY_SUFFIX), MAX_JSON_BYTES)
    arrays = {info.filename[: -len(_NPY_SUFFIX)]: _read_member(guard, info) for info in zf.infolist()
              if info.filename != META_KEY + _NPY_SUFFIX}
    return arrays, raw_meta


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over named arrays: name (sorted), dtype, shape and C-order bytes of each. Equal iff the
    arrays are bit-identical (portable mode's golden hash, repro/replicate.py's comparison)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode() + a.tobytes(order="C"))
    return digest.hexdigest()


@names_file
def load_npz(path: "str | os.PathLike[str]") -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """Read a file written by `save_npz`: returns (arrays in file order, meta). Never unpickles."""
    p = ensure_file(path)
    with open(p, "rb") as f:
        head = f.read(4)
    if not head.startswith(b"PK"):
        raise CheckpointFormatError(f"{p}: not an .npz (zip) file; first bytes are {head!r}")
    try:
        with zipfile.ZipFile(p) as zf:
            arrays, raw_meta = _read_members(zf, p)
        meta = _decode_meta(raw_meta)
    except CheckpointFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - BadZipFile, truncated members, bad .npy headers...
        raise CheckpointFormatError(
            f"{p}: cannot read .npz (truncated or corrupt?): {type(exc).__name__}: {printable(str(exc))}"
        ) from exc
    return arrays, meta
