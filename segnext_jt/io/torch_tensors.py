"""How a torch pickle describes tensors, and how they become numpy arrays, without torch.

The restricted unpickler (`unpickler.py`) is given `torch_globals()`: inert markers for the torch
storage classes and our stand-ins for torch's tensor-rebuild functions. Those build placeholders
(`_PendingTensor` over a `_StorageRef`) whose size, stride and offset are checked against the
storage's element count before anything is allocated; `TensorRebuilder` then replaces each
placeholder by a C-contiguous, writable ndarray once the container reader (`torch_pickle.py`: zip
or legacy) supplies the storage bytes, within the `MAX_VIEW_AMPLIFICATION` budget of `limits.py`.

The placeholder classes keep their leading underscores: their names appear in error messages.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Tuple

import numpy as np

from ..errors import CheckpointFormatError
from .limits import MAX_ELEMENTS, MAX_VIEW_AMPLIFICATION, VIEW_FLOOR, printable, short_repr
from .unpickler import Inert, Rebuilder, SafeCallable, container_globals, is_int, unpickle

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


def torch_globals() -> Dict[Tuple[str, str], Any]:
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


def unpickle_torch(data: bytes, start: int, record: str, persistent_load: Callable[[Any], Any]) -> Tuple[Any, int]:
    return unpickle(data, start, record=record, allowed=torch_globals(), persistent_load=persistent_load,
                    unknown_global=_unknown_torch_global)


def storage_pid(pid: Any, fields: int, layout: str) -> Tuple[_StorageType, str, int]:
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


class TensorRebuilder(Rebuilder):
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
