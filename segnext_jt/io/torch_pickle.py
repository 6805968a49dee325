"""Read PyTorch and Jittor (JSeg) checkpoints without torch and without executing pickled code.

Pickles are loaded with the restricted unpickler (`unpickler.py`), whose `find_class` returns only
objects from an explicit allow-list: inert markers for torch storage types, our own tensor-rebuild
functions (they build placeholders, never touch torch), container types and checking stand-ins for
numpy's array/scalar reconstructors. Any other global raises `UnsafeCheckpointError` before the
pickle can call it.

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
import math
import os
import zipfile
from typing import Any, Callable, Dict, Tuple

import numpy as np

from .errors import CheckpointFormatError, ensure_file, names_file
from .limits import MAX_ELEMENTS, MAX_PICKLE_BYTES, MAX_VIEW_AMPLIFICATION, VIEW_FLOOR, ZipGuard, printable, short_repr
from .unpickler import Inert, Rebuilder, SafeCallable, container_globals, is_int, unpickle

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
_MAX_NDIM = 32  # numpy 1.x's limit; torch tensors in checkpoints have at most 5

# Raw on-disk dtype of each torch storage class (little-endian; byte order is fixed up per file).
_STORAGE_DTYPES: Dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",  # raw bit pattern, widened to float32 after reading
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "|i1",
    "ByteStorage": "|u1",
    "BoolStorage": "|b1",
    "ComplexFloatStorage": "<c8",
    "ComplexDoubleStorage": "<c16",
    "UntypedStorage": "|u1",  # bytes; a tensor cannot be rebuilt from it (no dtype)
}


# --------------------------------------------------------------------------------------------------
# Inert objects handed out to the unpickler
# --------------------------------------------------------------------------------------------------
class _StorageType(Inert):
    """Stands in for `torch.FloatStorage` & co.: only its name and element dtype matter."""

    __slots__ = ("name", "raw_dtype")
    name: str
    raw_dtype: np.dtype

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "raw_dtype", np.dtype(_STORAGE_DTYPES[name]))

    @property
    def is_bfloat16(self) -> bool:
        return self.name == "BFloat16Storage"

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _StorageRef(Inert):
    """A storage named by a persistent id: elements [offset, offset + numel) of root record `key`."""

    __slots__ = ("stype", "key", "offset", "numel")
    stype: _StorageType
    key: str
    offset: int
    numel: int

    def __init__(self, stype: _StorageType, key: str, offset: int, numel: int) -> None:
        object.__setattr__(self, "stype", stype)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "numel", numel)

    @property
    def nbytes(self) -> int:
        return self.numel * self.stype.raw_dtype.itemsize


class _PendingTensor(Inert):
    """What `_rebuild_tensor_v2` returns; turned into an ndarray once the storage bytes are known."""

    __slots__ = ("storage", "offset", "size", "stride")
    storage: _StorageRef
    offset: int
    size: Tuple[int, ...]
    stride: Tuple[int, ...]

    def __init__(self, storage: _StorageRef, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]) -> None:
        object.__setattr__(self, "storage", storage)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "stride", stride)


# --------------------------------------------------------------------------------------------------
# Replacements for the torch functions named in checkpoints
# --------------------------------------------------------------------------------------------------
def _int_tuple(value: Any, what: str) -> Tuple[int, ...]:
    if not (isinstance(value, (tuple, list)) and len(value) <= _MAX_NDIM and all(is_int(v) for v in value)):
        raise CheckpointFormatError(
            f"tensor {what} must be a tuple of at most {_MAX_NDIM} ints, got {short_repr(value)}"
        )
    if any(abs(v) > MAX_ELEMENTS for v in value):
        raise CheckpointFormatError(
            f"tensor {what} {short_repr(value)} is implausibly large (corrupt or hostile file?)"
        )
    return tuple(value)


def _check_layout(storage: _StorageRef, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]) -> None:
    """Refuse a tensor that would read outside its storage or be larger than it, before allocating."""
    where = f"storage '{printable(storage.key)}'"
    if len(size) != len(stride):
        raise CheckpointFormatError(f"tensor size {size} and stride {stride} have different lengths")
    if any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise CheckpointFormatError(f"tensor size {size} / stride {stride} must be non-negative")
    if 0 in size:  # reads nothing; numpy still needs the other dimensions to fit in memory sizes
        if math.prod(n for n in size if n) > MAX_ELEMENTS:
            raise CheckpointFormatError(f"empty tensor size {size} is implausibly large")
        return
    count = math.prod(size)
    if count > storage.numel:
        raise CheckpointFormatError(
            f"tensor of size {size} (stride {stride}) has {count:,} elements but its {where} holds only "
            f"{storage.numel:,}; tensors larger than their storage (stride-0 expansion) are not supported"
        )
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.numel:
        raise CheckpointFormatError(
            f"tensor (size {size}, stride {stride}, offset {offset}) reads element {last} "
            f"of {where}, which has only {storage.numel}"
        )


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any) -> _PendingTensor:
    # Signature of torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
    # requires_grad, backward_hooks[, metadata]); requires_grad/hooks/metadata do not affect values.
    if not isinstance(storage, _StorageRef):
        raise CheckpointFormatError(f"tensor storage must come from a persistent id, got {type(storage).__name__}")
    if storage.stype.name == "UntypedStorage":
        raise CheckpointFormatError("tensor built on an UntypedStorage (no dtype recorded); not supported")
    if not is_int(storage_offset) or not 0 <= storage_offset <= MAX_ELEMENTS:
        raise CheckpointFormatError(
            f"tensor storage_offset must be a non-negative int, got {short_repr(storage_offset)}"
        )
    size_t, stride_t = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    _check_layout(storage, storage_offset, size_t, stride_t)
    return _PendingTensor(storage, storage_offset, size_t, stride_t)


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks[, state]): a Parameter is
    # just its tensor for our purposes.
    if not isinstance(data, _PendingTensor):
        raise CheckpointFormatError(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


def _unknown_torch_global(module: str, name: str) -> None:
    if module in ("torch", "torch.storage") and name.endswith("Storage"):
        raise CheckpointFormatError(
            f"unknown storage type {printable(module + '.' + name)}; supported: {', '.join(sorted(_STORAGE_DTYPES))}"
        )


def _torch_globals() -> Dict[Tuple[str, str], Any]:
    """Container globals plus the tensor/storage names torch.save writes."""
    allowed = container_globals()
    allowed[("torch._utils", "_rebuild_tensor_v2")] = SafeCallable("torch._utils._rebuild_tensor_v2", _rebuild_tensor)
    allowed[("torch._utils", "_rebuild_tensor")] = SafeCallable("torch._utils._rebuild_tensor", _rebuild_tensor)
    allowed[("torch._utils", "_rebuild_parameter")] = SafeCallable(
        "torch._utils._rebuild_parameter", _rebuild_parameter
    )
    allowed[("torch._utils", "_rebuild_parameter_with_state")] = SafeCallable(
        "torch._utils._rebuild_parameter_with_state", _rebuild_parameter
    )
    for name in _STORAGE_DTYPES:
        allowed[("torch", name)] = _StorageType(name)
    for module in ("torch", "torch.storage"):
        allowed[(module, "UntypedStorage")] = _StorageType("UntypedStorage")
    return allowed


def _unpickle_torch(data: bytes, start: int, record: str, persistent_load: Callable[[Any], Any]) -> Tuple[Any, int]:
    return unpickle(data, start, record=record, allowed=_torch_globals(), persistent_load=persistent_load,
                    unknown_global=_unknown_torch_global)


def _storage_pid(pid: Any, fields: int, layout: str) -> Tuple[_StorageType, str, int]:
    """Validate a storage persistent id with `fields` entries; return (type, key, numel)."""
    if not (isinstance(pid, tuple) and len(pid) == fields and isinstance(pid[0], str) and pid[0] == "storage"):
        if isinstance(pid, tuple) and pid and isinstance(pid[0], str) and pid[0] == "module":
            raise CheckpointFormatError("contains a pickled nn.Module, only state dicts are supported")
        raise CheckpointFormatError(f"persistent id {short_repr(pid)} is not {layout}")
    stype, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(stype, _StorageType):
        raise CheckpointFormatError(f"storage type {short_repr(stype)} is not a torch storage class")
    if not isinstance(key, str) or not is_int(numel) or not 0 <= numel <= MAX_ELEMENTS:
        raise CheckpointFormatError(f"bad storage key/numel in persistent id {short_repr(pid)}")
    return stype, key, numel


# --------------------------------------------------------------------------------------------------
# Turning placeholders into numpy arrays
# --------------------------------------------------------------------------------------------------
StorageReader = Callable[[_StorageRef], Any]  # root storage -> its bytes (bytes or memoryview)


def _tensor_to_numpy(t: _PendingTensor, raw: Any, little_endian: bool) -> np.ndarray:
    # The layout was checked against the storage's numel by _rebuild_tensor; here only the bytes
    # actually present in the file are checked.
    st = t.storage.stype
    dtype = st.raw_dtype if little_endian else st.raw_dtype.newbyteorder(">")
    itemsize = dtype.itemsize
    available = len(raw) // itemsize
    view_end = t.storage.offset + t.storage.numel
    if view_end > available:
        raise CheckpointFormatError(
            f"storage '{printable(t.storage.key)}' has {available} {st!r} elements but the checkpoint "
            f"needs {view_end} (truncated file?)"
        )
    if 0 in t.size:
        out = np.zeros(t.size, dtype=dtype)
    else:
        flat = np.frombuffer(raw, dtype=dtype, count=t.storage.numel, offset=t.storage.offset * itemsize)
        # Strides of size-1 dimensions are never applied (torch writes arbitrary ones there).
        strides = tuple(s * itemsize if n > 1 else 0 for n, s in zip(t.size, t.stride))
        view = np.lib.stride_tricks.as_strided(flat[t.offset:], shape=t.size, strides=strides, writeable=False)
        # The copy makes the result contiguous, writable and independent of other views of the storage.
        out = np.array(view, copy=True, order="C")
    if not out.dtype.isnative:
        out = out.astype(out.dtype.newbyteorder("="))
    if st.is_bfloat16:
        # bfloat16 is the top half of a float32: shifting the bits up is an exact conversion.
        out = (out.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return out


class _TensorRebuilder(Rebuilder):
    """Replaces tensor placeholders by arrays, reading each storage once, within a byte budget."""

    def __init__(self, read_storage: StorageReader, little_endian: bool) -> None:
        super().__init__("the checkpoint")
        self._read_storage = read_storage
        self._little_endian = little_endian
        self._raw: Dict[str, Any] = {}
        self._storage_bytes = 0
        self._tensor_bytes = 0

    def replace(self, x: Any) -> Any:
        if isinstance(x, _StorageRef):  # a bare storage in the pickle (rare): a flat 1-D array
            x = _PendingTensor(x, 0, (x.numel,), (1,))
        if isinstance(x, _PendingTensor):
            raw = self._raw_for(x.storage)
            self._spend(x)
            return _tensor_to_numpy(x, raw, self._little_endian)
        return super().replace(x)

    def _raw_for(self, ref: _StorageRef) -> Any:
        if ref.key not in self._raw:
            raw = self._read_storage(ref)
            self._raw[ref.key] = raw
            self._storage_bytes += len(raw)
        return self._raw[ref.key]

    def _spend(self, t: _PendingTensor) -> None:
        self._tensor_bytes += math.prod(t.size) * t.storage.stype.raw_dtype.itemsize
        allowed = MAX_VIEW_AMPLIFICATION * self._storage_bytes + VIEW_FLOOR
        if self._tensor_bytes > allowed:
            raise CheckpointFormatError(
                f"its tensors would take more than {allowed:,} bytes, {MAX_VIEW_AMPLIFICATION}x the "
                f"{self._storage_bytes:,} bytes of storage data they view (plus {VIEW_FLOOR:,}); "
                f"refusing many overlapping views of the same storage"
            )


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
            stype, key, numel = _storage_pid(pid, 5, "('storage', type, key, location, numel)")
            return storages.setdefault(key, _StorageRef(stype, key, 0, numel))

        def read_storage(ref: _StorageRef) -> bytes:
            return guard.read(f"{prefix}data/{ref.key}", need=ref.nbytes, what=f"storage '{printable(ref.key)}'")

        data = guard.read(prefix + "data.pkl", limit=MAX_PICKLE_BYTES, what="the pickle")
        obj, _ = _unpickle_torch(data, 0, f"'{printable(prefix)}data.pkl'", persistent_load)
        return _TensorRebuilder(read_storage, little_endian).walk(obj)


# --------------------------------------------------------------------------------------------------
# torch legacy format
# --------------------------------------------------------------------------------------------------
class _LegacyIds:
    """persistent_load of the legacy format: root storages and views of them."""

    def __init__(self) -> None:
        self.roots: Dict[str, _StorageRef] = {}
        self.views: Dict[str, _StorageRef] = {}

    def __call__(self, pid: Any) -> _StorageRef:
        stype, key, numel = _storage_pid(pid, 6, "('storage', type, key, location, numel, view)")
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
    obj, pos = _unpickle_torch(data, pos, "the legacy object pickle", ids)
    keys, pos = unpickle(data, pos, record="the legacy storage key list", allowed={})
    raw = _legacy_storages(data, pos, keys, ids.roots, little_endian)

    def read_storage(ref: _StorageRef) -> memoryview:
        if ref.key not in raw:
            raise CheckpointFormatError(f"storage '{printable(ref.key)}' is referenced but has no data in the file")
        return raw[ref.key]

    return _TensorRebuilder(read_storage, little_endian).walk(obj)


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
