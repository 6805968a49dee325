"""Read PyTorch and Jittor (JSeg) checkpoints without torch and without executing pickled code.

A pickle can call any importable function while it loads (`os.system`, `eval`, ...). We therefore
unpickle with `_RestrictedUnpickler`, whose `find_class` returns only objects from an explicit
allow-list: inert markers for torch storage types, our own tensor-rebuild functions (they build
placeholders, never touch torch), container types and numpy's array/scalar reconstructors. Any
other global raises `UnsafeCheckpointError` before the pickle can call it.

Formats:
* torch >= 1.6 zip: `<top>/data.pkl` + one raw little-endian record per storage in `<top>/data/<key>`;
  persistent ids are `('storage', storage_type, key, location, numel)`.
* torch legacy (< 1.6 or `_use_new_zipfile_serialization=False`): pickled magic number, protocol
  version and sys_info, then the object pickle, then the pickled list of storage keys, then each
  storage as an int64 element count followed by its raw bytes. Persistent ids are
  `('storage', storage_type, root_key, location, numel, view_metadata)`.
* Jittor `jt.save` (.pkl): a protocol-4 pickle of numpy arrays and containers, optionally followed by
  a 20-byte SHA-1 of the pickle and the 8-byte marker `HCAJSLHD`.

Tensors come back as C-contiguous, writable `numpy.ndarray`s of the storage dtype (bfloat16 is widened
to float32, which is exact); 0-d tensors (e.g. `num_batches_tracked`) stay 0-d.
"""
from __future__ import annotations

import _compat_pickle
import collections
import hashlib
import io
import os
import pickle
import zipfile
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from .errors import CheckpointError, CheckpointFormatError, UnsafeCheckpointError, ensure_file

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
class _Inert:
    """Immutable, unhashable, no `__dict__`: a pickle BUILD opcode cannot alter these objects."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} objects are read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} objects are read-only")

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled")


class _StorageType(_Inert):
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


class _StorageRef(_Inert):
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


class _PendingTensor(_Inert):
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


class _SafeCallable(_Inert):
    """A frozen wrapper so that the functions we expose to pickles cannot be modified by them."""

    __slots__ = ("qualname", "_fn")
    qualname: str
    _fn: Callable[..., Any]

    def __init__(self, qualname: str, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "qualname", qualname)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __repr__(self) -> str:
        return f"<safe {self.qualname}>"


# --------------------------------------------------------------------------------------------------
# Replacements for the torch functions named in checkpoints
# --------------------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value):
        raise CheckpointFormatError(f"tensor {what} must be a tuple of ints, got {value!r}")
    return tuple(value)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any) -> _PendingTensor:
    # Signature of torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
    # requires_grad, backward_hooks[, metadata]); requires_grad/hooks/metadata do not affect values.
    if not isinstance(storage, _StorageRef):
        raise CheckpointFormatError(f"tensor storage must come from a persistent id, got {type(storage).__name__}")
    if storage.stype.name == "UntypedStorage":
        raise CheckpointFormatError("tensor built on an UntypedStorage (no dtype recorded); not supported")
    if not _is_int(storage_offset) or storage_offset < 0:
        raise CheckpointFormatError(f"tensor storage_offset must be a non-negative int, got {storage_offset!r}")
    size_t = _int_tuple(size, "size")
    stride_t = _int_tuple(stride, "stride")
    if len(size_t) != len(stride_t):
        raise CheckpointFormatError(f"tensor size {size_t} and stride {stride_t} have different lengths")
    if any(n < 0 for n in size_t) or any(s < 0 for s in stride_t):
        raise CheckpointFormatError(f"tensor size {size_t} / stride {stride_t} must be non-negative")
    return _PendingTensor(storage, storage_offset, size_t, stride_t)


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks[, state]): a Parameter is
    # just its tensor for our purposes.
    if not isinstance(data, _PendingTensor):
        raise CheckpointFormatError(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


def _codecs_encode(text: Any, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles spell `bytes` objects as _codecs.encode(str, 'latin1'); allow only that.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointFormatError(f"_codecs.encode is only allowed as encode(str, 'latin1'), got encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_multiarray() -> Any:
    try:  # numpy >= 2 (1.26 also ships this alias)
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _container_globals() -> Dict[Tuple[str, str], Any]:
    """Globals that only build plain data: containers, numpy arrays/scalars/dtypes, bytes."""
    multiarray = _numpy_multiarray()
    allowed: Dict[Tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _SafeCallable("_codecs.encode", _codecs_encode),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for name, obj in (("set", set), ("frozenset", frozenset), ("slice", slice), ("complex", complex)):
        allowed[("builtins", name)] = obj  # '__builtin__.*' (Python 2 spelling) is mapped in find_class
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


def _torch_globals() -> Dict[Tuple[str, str], Any]:
    """Container globals plus the tensor/storage names torch.save writes."""
    allowed = _container_globals()
    allowed[("torch._utils", "_rebuild_tensor_v2")] = _SafeCallable("torch._utils._rebuild_tensor_v2", _rebuild_tensor)
    allowed[("torch._utils", "_rebuild_tensor")] = _SafeCallable("torch._utils._rebuild_tensor", _rebuild_tensor)
    allowed[("torch._utils", "_rebuild_parameter")] = _SafeCallable("torch._utils._rebuild_parameter", _rebuild_parameter)
    allowed[("torch._utils", "_rebuild_parameter_with_state")] = _SafeCallable(
        "torch._utils._rebuild_parameter_with_state", _rebuild_parameter
    )
    for name in _STORAGE_DTYPES:
        allowed[("torch", name)] = _StorageType(name)
    for module in ("torch", "torch.storage"):
        allowed[(module, "UntypedStorage")] = _StorageType("UntypedStorage")
    return allowed


# --------------------------------------------------------------------------------------------------
# The restricted unpickler
# --------------------------------------------------------------------------------------------------
PersistentLoad = Callable[[Any], Any]


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self,
        file: Any,
        *,
        path: str,
        record: str,
        allowed: Mapping[Tuple[str, str], Any],
        persistent_load: Optional[PersistentLoad] = None,
    ) -> None:
        # latin1 lets Python-2 era pickles of numpy arrays decode their byte strings.
        super().__init__(file, encoding="latin1")
        self._path = path
        self._record = record
        self._allowed = allowed
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles may carry Python 2 names ('__builtin__.eval', 'commands.call'); map them
        # the way pickle's default find_class would, so the allow-list and messages use real names.
        written = f"{module}.{name}"
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        if module in ("torch", "torch.storage") and name.endswith("Storage"):
            raise CheckpointFormatError(
                f"{self._path}: unknown storage type {module}.{name} in {self._record}; "
                f"supported: {', '.join(sorted(_STORAGE_DTYPES))}"
            )
        spelled = f" (written as '{written}')" if written != f"{module}.{name}" else ""
        raise UnsafeCheckpointError(
            f"{self._path}: refused to load {self._record}: it references the global '{module}.{name}'{spelled}, "
            f"which is not on the allow-list of tensor/container types (nothing was executed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise CheckpointFormatError(f"{self._path}: unexpected persistent id {pid!r} in {self._record}")
        return self._persistent(pid)


def _unpickle(
    source: Any,
    *,
    path: str,
    record: str,
    allowed: Mapping[Tuple[str, str], Any],
    persistent_load: Optional[PersistentLoad] = None,
) -> Any:
    """Run the restricted unpickler on bytes or a binary file; wrap low-level failures."""
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    unpickler = _RestrictedUnpickler(stream, path=path, record=record, allowed=allowed, persistent_load=persistent_load)
    try:
        return unpickler.load()
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt/truncated file
        raise CheckpointFormatError(
            f"{path}: cannot unpickle {record} (truncated or corrupt file?): {type(exc).__name__}: {exc}"
        ) from exc


# --------------------------------------------------------------------------------------------------
# Turning placeholders into numpy arrays
# --------------------------------------------------------------------------------------------------
StorageReader = Callable[[str], bytes]


def _tensor_to_numpy(t: _PendingTensor, raw: bytes, path: str, little_endian: bool) -> np.ndarray:
    st = t.storage.stype
    dtype = st.raw_dtype if little_endian else st.raw_dtype.newbyteorder(">")
    itemsize = dtype.itemsize
    available = len(raw) // itemsize
    view_end = t.storage.offset + t.storage.numel
    if view_end > available:
        raise CheckpointFormatError(
            f"{path}: storage '{t.storage.key}' has {available} {st!r} elements but the checkpoint "
            f"needs {view_end} (truncated file?)"
        )
    flat = np.frombuffer(raw, dtype=dtype, count=t.storage.numel, offset=t.storage.offset * itemsize)
    if any(n == 0 for n in t.size):
        out = np.zeros(t.size, dtype=dtype)
    else:
        last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
        if last >= flat.size:
            raise CheckpointFormatError(
                f"{path}: tensor (size {t.size}, stride {t.stride}, offset {t.offset}) reads element {last} "
                f"of storage '{t.storage.key}', which has only {flat.size}"
            )
        # Bounds were checked above, so as_strided only reads inside `flat`; the copy makes the
        # result contiguous, writable and independent of other views of the same storage.
        view = np.lib.stride_tricks.as_strided(
            flat[t.offset:], shape=t.size, strides=tuple(s * itemsize for s in t.stride), writeable=False
        )
        out = np.array(view, copy=True, order="C")
    if not out.dtype.isnative:
        out = out.astype(out.dtype.newbyteorder("="))
    if st.is_bfloat16:
        # bfloat16 is the top half of a float32: shifting the bits up is an exact conversion.
        out = (out.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return out


def _storage_to_numpy(ref: _StorageRef, raw: bytes, path: str, little_endian: bool) -> np.ndarray:
    # A bare storage in the pickle (rare): return it as a flat 1-D array.
    return _tensor_to_numpy(_PendingTensor(ref, 0, (ref.numel,), (1,)), raw, path, little_endian)


def _materialize(obj: Any, read_storage: StorageReader, path: str, little_endian: bool) -> Any:
    """Replace every placeholder inside containers (in place where possible) by a numpy array."""
    cache: Dict[str, bytes] = {}
    done: Dict[int, Any] = {}
    visiting: set = set()

    def raw_for(ref: _StorageRef) -> bytes:
        if ref.key not in cache:
            cache[ref.key] = read_storage(ref.key)
        return cache[ref.key]

    def walk(x: Any) -> Any:
        if isinstance(x, (_PendingTensor, _StorageRef)):
            if id(x) not in done:
                if isinstance(x, _PendingTensor):
                    done[id(x)] = _tensor_to_numpy(x, raw_for(x.storage), path, little_endian)
                else:
                    done[id(x)] = _storage_to_numpy(x, raw_for(x), path, little_endian)
            return done[id(x)]
        if isinstance(x, _Inert):
            raise CheckpointFormatError(f"{path}: checkpoint contains a bare {x!r} where data was expected")
        if isinstance(x, (dict, list, tuple)):
            if id(x) in visiting:  # self-referencing container: already being handled
                return x
            visiting.add(id(x))
            if isinstance(x, dict):
                for k, v in list(x.items()):
                    new = walk(v)
                    if new is not v:
                        x[k] = new
            elif isinstance(x, list):
                for i, v in enumerate(x):
                    x[i] = walk(v)
            else:
                items = tuple(walk(v) for v in x)
                if any(a is not b for a, b in zip(items, x)):
                    x = items
            return x
        return x

    return walk(obj)


# --------------------------------------------------------------------------------------------------
# torch >= 1.6 zip format
# --------------------------------------------------------------------------------------------------
def _zip_prefix(zf: zipfile.ZipFile, path: str) -> str:
    names = zf.namelist()
    for name in names:
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == "data.pkl":
            return parts[0] + "/"
    shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    raise CheckpointFormatError(
        f"{path}: zip archive without '<name>/data.pkl', so not a torch>=1.6 checkpoint (entries: {shown or 'none'})"
    )


def _zip_member(zf: zipfile.ZipFile, name: str, path: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise CheckpointFormatError(f"{path}: missing zip entry '{name}'") from None
    except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError...
        raise CheckpointFormatError(
            f"{path}: cannot read zip entry '{name}' (truncated or corrupt file?): {type(exc).__name__}: {exc}"
        ) from exc


def _read_torch_zip(path: str) -> Any:
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - BadZipFile / OSError / ValueError on damaged archives
        raise CheckpointFormatError(
            f"{path}: not a readable zip archive (truncated or corrupt torch checkpoint?): {exc}"
        ) from exc
    with zf:
        prefix = _zip_prefix(zf, path)
        little_endian = True
        if prefix + "byteorder" in zf.namelist():
            order = _zip_member(zf, prefix + "byteorder", path).decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise CheckpointFormatError(f"{path}: '{prefix}byteorder' is {order!r}, expected 'little' or 'big'")
            little_endian = order == "little"

        storages: Dict[str, _StorageRef] = {}

        def persistent_load(pid: Any) -> _StorageRef:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise CheckpointFormatError(
                    f"{path}: persistent id {pid!r} is not ('storage', type, key, location, numel)"
                )
            _, stype, key, _location, numel = pid
            if not isinstance(stype, _StorageType):
                raise CheckpointFormatError(f"{path}: storage type {stype!r} is not a torch storage class")
            if not isinstance(key, str) or not _is_int(numel) or numel < 0:
                raise CheckpointFormatError(f"{path}: bad storage key/numel in persistent id {pid!r}")
            if key not in storages:
                storages[key] = _StorageRef(stype, key, 0, numel)
            return storages[key]

        data = _zip_member(zf, prefix + "data.pkl", path)
        obj = _unpickle(data, path=path, record=f"'{prefix}data.pkl'", allowed=_torch_globals(),
                        persistent_load=persistent_load)
        return _materialize(obj, lambda key: _zip_member(zf, f"{prefix}data/{key}", path), path, little_endian)


# --------------------------------------------------------------------------------------------------
# torch legacy format
# --------------------------------------------------------------------------------------------------
def _read_torch_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        magic = _unpickle(f, path=path, record="the legacy magic number", allowed={})
        if magic != LEGACY_MAGIC:
            raise CheckpointFormatError(f"{path}: legacy magic number is {magic!r}, expected {LEGACY_MAGIC:#x}")
        version = _unpickle(f, path=path, record="the legacy protocol version", allowed={})
        if version != LEGACY_PROTOCOL_VERSION:
            raise CheckpointFormatError(
                f"{path}: legacy protocol version {version!r}, expected {LEGACY_PROTOCOL_VERSION}"
            )
        sys_info = _unpickle(f, path=path, record="the legacy sys_info", allowed={})
        if not isinstance(sys_info, dict):
            raise CheckpointFormatError(f"{path}: legacy sys_info should be a dict, got {type(sys_info).__name__}")
        little_endian = bool(sys_info.get("little_endian", True))

        roots: Dict[str, _StorageRef] = {}
        views: Dict[str, _StorageRef] = {}

        def persistent_load(pid: Any) -> _StorageRef:
            if isinstance(pid, tuple) and pid and pid[0] == "module":
                raise CheckpointFormatError(f"{path}: contains a pickled nn.Module, only state dicts are supported")
            if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
                raise CheckpointFormatError(
                    f"{path}: persistent id {pid!r} is not ('storage', type, key, location, numel, view)"
                )
            _, stype, key, _location, numel, view = pid
            if not isinstance(stype, _StorageType):
                raise CheckpointFormatError(f"{path}: storage type {stype!r} is not a torch storage class")
            if not isinstance(key, str) or not _is_int(numel) or numel < 0:
                raise CheckpointFormatError(f"{path}: bad storage key/numel in persistent id {pid!r}")
            root = roots.setdefault(key, _StorageRef(stype, key, 0, numel))
            if view is None:
                return root
            if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                    and _is_int(view[1]) and _is_int(view[2])):
                raise CheckpointFormatError(f"{path}: bad storage view metadata {view!r}")
            view_key, offset, view_numel = view
            if offset < 0 or view_numel < 0 or offset + view_numel > root.numel:
                raise CheckpointFormatError(f"{path}: storage view {view!r} exceeds root storage '{key}'")
            return views.setdefault(view_key, _StorageRef(stype, key, offset, view_numel))

        obj = _unpickle(f, path=path, record="the legacy object pickle", allowed=_torch_globals(),
                        persistent_load=persistent_load)
        keys = _unpickle(f, path=path, record="the legacy storage key list", allowed={})
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointFormatError(f"{path}: legacy storage key list should be a list of str, got {keys!r:.80}")

        raw: Dict[str, bytes] = {}
        for key in keys:
            if key not in roots:
                raise CheckpointFormatError(f"{path}: storage '{key}' is listed but never referenced by the pickle")
            header = f.read(8)
            if len(header) != 8:
                raise CheckpointFormatError(f"{path}: truncated file: missing size header of storage '{key}'")
            count = int.from_bytes(header, "little" if little_endian else "big", signed=True)
            if count < 0:
                raise CheckpointFormatError(f"{path}: storage '{key}' has negative element count {count}")
            nbytes = count * roots[key].stype.raw_dtype.itemsize
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise CheckpointFormatError(
                    f"{path}: truncated file: storage '{key}' should have {nbytes} bytes, found {len(data)}"
                )
            raw[key] = data

    def read_storage(key: str) -> bytes:
        if key not in raw:
            raise CheckpointFormatError(f"{path}: storage '{key}' is referenced but has no data in the file")
        return raw[key]

    return _materialize(obj, read_storage, path, little_endian)


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------
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


def read_torch_checkpoint(path: "str | os.PathLike[str]") -> Any:
    """Load a file written by `torch.save` (zip or legacy format) without torch.

    Containers come back as dict / OrderedDict / list / tuple; tensors and parameters as numpy arrays.
    Raises `UnsafeCheckpointError` if the pickle references anything but tensors and plain data.
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
    return _unpickle(data, path=p, record="the pickle", allowed=_container_globals())

