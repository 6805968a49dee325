"""Read PyTorch and Jittor (JSeg) checkpoints without torch and without executing pickled code.

Pickles are loaded with the restricted unpickler (`unpickler.py`), whose `find_class` returns only
objects from an explicit allow-list: inert markers for torch storage types, our own tensor-rebuild
functions (they build placeholders, never touch torch), container types and checking stand-ins for
numpy's array/scalar reconstructors. Any other global raises `UnsafeCheckpointError` before the
pickle can call it. The tensor side (storage types, rebuild stand-ins, placeholders to numpy) is
`torch_tensors.py`; this module reads the containers around it.

Formats:
* torch >= 1.6 zip: `<top>/data.pkl` + one raw little-endian record per storage in `<top>/data/<key>`;
  persistent ids are `('storage', storage_type, key, location, numel)`.
* torch legacy (< 1.6 or `_use_new_zipfile_serialization=False`): pickled magic number, protocol
  version and sys_info, then the object pickle, then the pickled list of storage keys, then each
  storage as an int64 element count followed by its raw bytes. Persistent ids are
  `('storage', storage_type, root_key, location, numel, view_metadata)`.
* Jittor `jt.save` (.pkl): a protocol-4 pickle (protocol 5 under newer Pythons: contiguous arrays as
  numpy's `_frombuffer`) of numpy arrays and containers, optionally followed by a 20-byte SHA-1 of the
  pickle and the 8-byte marker `HCAJSLHD`.

Tensors come back as C-contiguous, writable `numpy.ndarray`s of the storage dtype (bfloat16 is widened
to float32, which is exact); 0-d tensors (e.g. `num_batches_tracked`) stay 0-d.

Hostile files (see `limits.py`): a tensor's size/stride/offset are checked against its storage's element
count when the pickle builds it, before anything is allocated; a tensor may not have more elements
than its storage (stride-0 "expanded" tensors larger than their storage are refused: torch.save never
writes them for parameters or buffers), and all tensors together may not take more than
`MAX_VIEW_AMPLIFICATION` times the storage bytes. Storage records are read only as far as the pickle
says they need, after the zip directory's sizes and compression ratios were checked; legacy element
counts are checked against the bytes left in the file. Every error is one line naming the file.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from typing import Any, Dict, Tuple

from ..errors import CheckpointFormatError
from .limits import MAX_PICKLE_BYTES, ZipGuard, printable, short_repr
from .reading import ensure_file, names_file
from .torch_tensors import TensorRebuilder, _StorageRef, storage_pid, unpickle_torch
from .unpickler import Rebuilder, container_globals, is_int, unpickle

__all__ = [
    "read_torch_checkpoint",
    "read_jittor_pickle",
    "sniff_container",
    "LEGACY_MAGIC",
]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_LEGACY_MAGIC_BYTES = LEGACY_MAGIC.to_bytes(10, "little")
_JITTOR_TRAILER = b"HCAJSLHD"
_SHA1_LEN = 20
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # local file header / empty archive


# --------------------------------------------------------------------------------------------------
# torch >= 1.6 zip format
# --------------------------------------------------------------------------------------------------
def _zip_prefix(zf: zipfile.ZipFile) -> str:
    names = zf.namelist()
    for name in names:
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == "data.pkl":
            return parts[0] + "/"
    shown = ", ".join(printable(n, 60) for n in names[:10]) + (" ..." if len(names) > 10 else "")
    raise CheckpointFormatError(
        f"zip archive without '<name>/data.pkl', so not a torch>=1.6 checkpoint (entries: {shown or 'none'})"
    )


def _zip_little_endian(guard: ZipGuard, prefix: str) -> bool:
    name = prefix + "byteorder"
    if name not in guard.zf.namelist():
        return True
    order = guard.read(name, limit=16, what="the byteorder record").decode("ascii", "replace").strip()
    if order not in ("little", "big"):
        raise CheckpointFormatError(f"'{printable(name)}' is {short_repr(order)}, expected 'little' or 'big'")
    return order == "little"


def _read_torch_zip(path: str) -> Any:
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - BadZipFile / OSError / ValueError on damaged archives
        raise CheckpointFormatError(
            f"not a readable zip archive (truncated or corrupt torch checkpoint?): {printable(str(exc))}"
        ) from exc
    with zf:
        guard = ZipGuard(zf, path)
        prefix = _zip_prefix(zf)
        little_endian = _zip_little_endian(guard, prefix)
        storages: Dict[str, _StorageRef] = {}

        def persistent_load(pid: Any) -> _StorageRef:
            stype, key, numel = storage_pid(pid, 5, "('storage', type, key, location, numel)")
            return storages.setdefault(key, _StorageRef(stype, key, 0, numel))

        def read_storage(ref: _StorageRef) -> bytes:
            return guard.read(f"{prefix}data/{ref.key}", need=ref.nbytes, what=f"storage '{printable(ref.key)}'")

        data = guard.read(prefix + "data.pkl", limit=MAX_PICKLE_BYTES, what="the pickle")
        obj, _ = unpickle_torch(data, 0, f"'{printable(prefix)}data.pkl'", persistent_load)
        return TensorRebuilder(read_storage, little_endian).walk(obj)


# --------------------------------------------------------------------------------------------------
# torch legacy format
# --------------------------------------------------------------------------------------------------
class _LegacyIds:
    """persistent_load of the legacy format: root storages and views of them."""

    def __init__(self) -> None:
        self.roots: Dict[str, _StorageRef] = {}
        self.views: Dict[str, _StorageRef] = {}

    def __call__(self, pid: Any) -> _StorageRef:
        stype, key, numel = storage_pid(pid, 6, "('storage', type, key, location, numel, view)")
        root = self.roots.setdefault(key, _StorageRef(stype, key, 0, numel))
        view = pid[5]
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and is_int(view[1]) and is_int(view[2])):
            raise CheckpointFormatError(f"bad storage view metadata {short_repr(view)}")
        view_key, offset, view_numel = view
        if offset < 0 or view_numel < 0 or offset + view_numel > root.numel:
            raise CheckpointFormatError(f"storage view {short_repr(view)} exceeds root storage '{printable(key)}'")
        return self.views.setdefault(view_key, _StorageRef(stype, key, offset, view_numel))


def _legacy_header(data: bytes) -> Tuple[bool, int]:
    """Check magic number, protocol version and sys_info; return (little_endian, offset after them)."""
    magic, pos = unpickle(data, 0, record="the legacy magic number", allowed={})
    if not is_int(magic) or magic != LEGACY_MAGIC:
        raise CheckpointFormatError(f"legacy magic number is {short_repr(magic)}, expected {LEGACY_MAGIC:#x}")
    version, pos = unpickle(data, pos, record="the legacy protocol version", allowed={})
    if not is_int(version) or version != LEGACY_PROTOCOL_VERSION:
        raise CheckpointFormatError(
            f"legacy protocol version {short_repr(version)}, expected {LEGACY_PROTOCOL_VERSION}"
        )
    sys_info, pos = unpickle(data, pos, record="the legacy sys_info", allowed={})
    if not isinstance(sys_info, dict):
        raise CheckpointFormatError(f"legacy sys_info should be a dict, got {type(sys_info).__name__}")
    little_endian = sys_info.get("little_endian", True)
    if not isinstance(little_endian, bool):
        raise CheckpointFormatError(f"legacy sys_info 'little_endian' is {short_repr(little_endian)}, expected a bool")
    return little_endian, pos


def _legacy_storages(data: bytes, pos: int, keys: Any, roots: Dict[str, _StorageRef],
                     little_endian: bool) -> Dict[str, memoryview]:
    """Locate each storage record (int64 element count, raw bytes); counts are checked against the file."""
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointFormatError(f"legacy storage key list should be a list of str, got {short_repr(keys)}")
    view, raw = memoryview(data), {}
    for key in keys:
        name = printable(key)
        if key not in roots:
            raise CheckpointFormatError(f"storage '{name}' is listed but never referenced by the pickle")
        if len(data) - pos < 8:
            raise CheckpointFormatError(f"truncated file: missing size header of storage '{name}'")
        count = int.from_bytes(data[pos:pos + 8], "little" if little_endian else "big", signed=True)
        pos += 8
        if count < 0:
            raise CheckpointFormatError(f"storage '{name}' has negative element count {count}")
        nbytes = count * roots[key].stype.raw_dtype.itemsize
        if nbytes > len(data) - pos:
            raise CheckpointFormatError(
                f"truncated file: storage '{name}' should have {nbytes:,} bytes, only {len(data) - pos:,} remain"
            )
        raw[key] = view[pos:pos + nbytes]
        pos += nbytes
    return raw


def _read_torch_legacy(path: str) -> Any:
    # The whole file is read once: storages are sliced out of it without further copies.
    with open(path, "rb") as f:
        data = f.read()
    little_endian, pos = _legacy_header(data)
    ids = _LegacyIds()
    obj, pos = unpickle_torch(data, pos, "the legacy object pickle", ids)
    keys, pos = unpickle(data, pos, record="the legacy storage key list", allowed={})
    raw = _legacy_storages(data, pos, keys, ids.roots, little_endian)

    def read_storage(ref: _StorageRef) -> memoryview:
        if ref.key not in raw:
            raise CheckpointFormatError(f"storage '{printable(ref.key)}' is referenced but has no data in the file")
        return raw[ref.key]

    return TensorRebuilder(read_storage, little_endian).walk(obj)


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------
@names_file
def sniff_container(path: "str | os.PathLike[str]") -> str:
    """Classify a file by its first bytes: 'zip', 'torch-legacy', 'pickle' or 'unknown'.

    'zip' covers both torch>=1.6 checkpoints and our native .npz; the caller looks inside.
    """
    p = ensure_file(path)
    with open(p, "rb") as f:
        head = f.read(32)
    if not head:
        raise CheckpointFormatError(f"{p}: file is empty")
    if head.startswith(_ZIP_MAGICS):
        return "zip"
    # Legacy torch files start with the magic number pickled as a 10-byte LONG1 (after a FRAME
    # opcode when saved with pickle protocol >= 4).
    if head[:1] == b"\x80" and _LEGACY_MAGIC_BYTES in head:
        return "torch-legacy"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


@names_file
def read_torch_checkpoint(path: "str | os.PathLike[str]") -> Any:
    """Load a file written by `torch.save` (zip or legacy format) without torch.

    Containers come back as dict / OrderedDict / list / tuple; tensors and parameters as numpy arrays.
    Raises `UnsafeCheckpointError` if the pickle references anything but tensors and plain data, and
    `CheckpointFormatError` (one line, naming the file) for anything truncated, corrupt or hostile.
    """
    p = ensure_file(path)
    kind = sniff_container(p)
    if kind == "zip":
        return _read_torch_zip(p)
    if kind == "torch-legacy":
        return _read_torch_legacy(p)
    with open(p, "rb") as f:
        head = f.read(8)
    raise CheckpointFormatError(
        f"{p}: not a PyTorch checkpoint: expected a zip archive (torch>=1.6) or a legacy pickle starting "
        f"with magic number {LEGACY_MAGIC:#x}; first bytes are {head!r}"
    )


@names_file
def read_jittor_pickle(path: "str | os.PathLike[str]") -> Any:
    """Load a `jt.save` pickle (JSeg `.pkl`: numpy arrays in dicts) with the restricted unpickler."""
    p = ensure_file(path)
    with open(p, "rb") as f:
        data = f.read()
    if not data:
        raise CheckpointFormatError(f"{p}: file is empty")
    if data.endswith(_JITTOR_TRAILER):
        # jt.save appends sha1(pickle) + marker; check it so corruption is reported as such.
        end = len(data) - len(_JITTOR_TRAILER)
        checksum, data = data[end - _SHA1_LEN:end], data[:end - _SHA1_LEN]
        if hashlib.sha1(data).digest() != checksum:
            raise CheckpointFormatError(f"{p}: Jittor pickle checksum mismatch (corrupt or truncated download)")
    if data[:1] != b"\x80":
        raise CheckpointFormatError(
            f"{p}: not a pickle (expected protocol >= 2 header byte 0x80); first bytes are {data[:8]!r}"
        )
    obj, _ = unpickle(data, record="the pickle", allowed=container_globals())
    return Rebuilder("the pickle").walk(obj)
