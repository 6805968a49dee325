"""The restricted unpickler shared by the torch and Jittor readers.

A pickle can call any importable function while it loads (`os.system`, `eval`, ...). `RestrictedUnpickler`
therefore returns, from `find_class`, only objects of an explicit allow-list; any other global raises
`UnsafeCheckpointError` before the pickle can call it.

Allowed callables must also be safe for *every* argument a pickle can give them, and numpy's own
reconstructors are not: `ndarray.__setstate__` with an object dtype and a short list crashes the
interpreter, `dtype.__setstate__` accepts field offsets far outside the item (reads out of bounds), and
`ndarray(shape)` allocates whatever shape it is given. The numpy names are therefore mapped to
checking wrappers that accept exactly what `pickle.dumps(array)` writes for plain (non-object,
non-structured) arrays, scalars and dtypes; `Rebuilder` swaps their placeholders for real numpy objects.

`unpickle` scans the opcode stream first (`pickle_scan`), so the C unpickler only ever runs pickles of
bounded size and nesting.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import pickle
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from ..errors import CheckpointError, CheckpointFormatError, UnsafeCheckpointError
from .limits import MAX_ELEMENTS, WalkGuard, printable, short_repr
from .pickle_scan import scan_pickle

__all__ = ["Inert", "SafeCallable", "RestrictedUnpickler", "Rebuilder", "container_globals", "unpickle", "is_int"]

PersistentLoad = Callable[[Any], Any]
_MAX_NDIM = 32  # numpy 1.x's limit
_SIMPLE_DTYPE_KINDS = "biufcSU"  # bool, integers, floats, complex, bytes, str


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------------
# Inert objects handed out to the unpickler
# --------------------------------------------------------------------------------------------------
class Inert:
    """Immutable, unhashable, no `__dict__`: a pickle BUILD opcode cannot alter these objects."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} objects are read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} objects are read-only")

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled")


class SafeCallable(Inert):
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
# numpy: checking stand-ins for ndarray / dtype / scalar reconstruction
# --------------------------------------------------------------------------------------------------
def _simple_dtype(spec: Any) -> np.dtype:
    """`np.dtype(spec)` for a dtype string naming a plain (non-object, non-structured) type."""
    if isinstance(spec, bytes):  # numpy writes `_reconstruct(ndarray, (0,), b'b')`
        spec = spec.decode("latin1")
    if not isinstance(spec, str) or len(spec) > 32:
        raise CheckpointFormatError(f"numpy dtype spec {short_repr(spec)} is not a plain dtype string")
    dtype = np.dtype(spec)
    if dtype.kind not in _SIMPLE_DTYPE_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointFormatError(
            f"numpy dtype {dtype} is not supported in checkpoints (object, structured and sub-array dtypes "
            f"need pickled Python objects or unchecked layouts)"
        )
    return dtype


class DtypeSpec(Inert):
    """What `numpy.dtype(...)` gives a pickle: BUILD may only set the byte order of a plain dtype."""

    __slots__ = ("base", "byteorder")
    base: np.dtype
    byteorder: str

    def __init__(self, spec: Any, *_align_copy: Any) -> None:
        object.__setattr__(self, "base", _simple_dtype(spec))
        object.__setattr__(self, "byteorder", "=")

    def __setstate__(self, state: Any) -> None:
        reference = self.base.__reduce__()[2]
        if not (isinstance(state, tuple) and len(state) == len(reference) and isinstance(state[1], str)
                and state[1] in ("<", ">", "|", "=")
                and state[:1] + state[2:] == reference[:1] + reference[2:]):
            raise CheckpointFormatError(f"numpy dtype state {short_repr(state)} does not describe a plain {self.base}")
        object.__setattr__(self, "byteorder", state[1])

    def resolve(self) -> np.dtype:
        return self.base if self.byteorder in ("=", "|") else self.base.newbyteorder(self.byteorder)


def _resolve_dtype(value: Any) -> np.dtype:
    return value.resolve() if isinstance(value, DtypeSpec) else _simple_dtype(value)


def _array_state(state: Any) -> Tuple[Tuple[int, ...], np.dtype, bool, Any]:
    """Validate `ndarray.__setstate__`'s (version, shape, dtype, is_fortran, data)."""
    if isinstance(state, tuple) and len(state) == 4:  # version 0 pickles omit the version
        state = (0, *state)
    if not (isinstance(state, tuple) and len(state) == 5 and is_int(state[0])):
        raise CheckpointFormatError(
            f"numpy array state {short_repr(state)} is not (version, shape, dtype, order, data)"
        )
    _, shape, dtype_spec, fortran, data = state
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_NDIM
            and all(is_int(n) and 0 <= n <= MAX_ELEMENTS for n in shape)):
        raise CheckpointFormatError(f"numpy array shape {short_repr(shape)} is invalid")
    dtype = _resolve_dtype(dtype_spec)
    count = math.prod(shape)
    if count > MAX_ELEMENTS or not isinstance(fortran, bool) or not isinstance(data, (bytes, str)) \
            or len(data) != count * dtype.itemsize:
        raise CheckpointFormatError(
            f"numpy array of shape {shape} and dtype {dtype} does not match its data "
            f"({type(data).__name__} of length {len(data) if isinstance(data, (bytes, str)) else '?'})"
        )
    return shape, dtype, fortran, data


class CheckedArray(np.ndarray):
    """The ndarray a pickle gets from `_reconstruct`; its `__setstate__` checks the state first."""

    def __setstate__(self, state: Any) -> None:
        shape, dtype, fortran, data = _array_state(state)
        super().__setstate__((1, shape, dtype, fortran, data))


class _NdarrayClass(Inert):
    """`numpy.ndarray` as a pickle sees it: only an argument of `_reconstruct`, never called."""

    __slots__ = ()

    def __call__(self, *args: Any) -> Any:
        raise CheckpointFormatError("numpy.ndarray may only be used through numpy's _reconstruct")


_NDARRAY = _NdarrayClass()


def _numpy_multiarray() -> Any:
    try:  # numpy >= 2 (1.26 also ships this alias)
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> CheckedArray:
    # numpy pickles arrays as _reconstruct(ndarray, (0,), b'b') followed by BUILD(state).
    if subtype is not _NDARRAY or not (isinstance(shape, tuple) and len(shape) == 1 and is_int(shape[0])
                                       and shape[0] == 0):
        raise CheckpointFormatError(
            f"numpy _reconstruct{short_repr((subtype, shape))} is not how numpy pickles arrays "
            f"(expected (numpy.ndarray, (0,), dtype))"
        )
    return _numpy_multiarray()._reconstruct(CheckedArray, (0,), _resolve_dtype(dtype))


def _scalar(dtype_spec: Any, data: Any = None) -> Any:
    dtype = _resolve_dtype(dtype_spec)
    if not isinstance(data, (bytes, str)) or len(data) != dtype.itemsize:
        raise CheckpointFormatError(
            f"numpy scalar of dtype {dtype} needs {dtype.itemsize} bytes, got {short_repr(data)}"
        )
    return _numpy_multiarray().scalar(dtype, data)


_FROMBUFFER_ORDERS = ("C", "F")


def _frombuffer(buffer: Any, dtype_spec: Any, shape: Any, order: Any) -> np.ndarray:
    """What numpy writes for a contiguous array under pickle protocol 5 (`_frombuffer(buf, dtype,
    shape, order)`, the buffer in-band as BYTEARRAY8 or BINBYTES): the same checks as
    `_array_state` (a plain dtype, a valid shape whose size matches the buffer exactly), and a copy,
    so the array owns writable memory like the protocol-2..4 path gives."""
    if isinstance(buffer, memoryview):
        buffer = buffer.tobytes()
    if not isinstance(buffer, (bytes, bytearray)):
        raise CheckpointFormatError(f"numpy _frombuffer needs an in-band byte buffer, got {short_repr(buffer)}")
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_NDIM
            and all(is_int(n) and 0 <= n <= MAX_ELEMENTS for n in shape)):
        raise CheckpointFormatError(f"numpy array shape {short_repr(shape)} is invalid")
    if order not in _FROMBUFFER_ORDERS:
        raise CheckpointFormatError(f"numpy _frombuffer order {short_repr(order)} is not 'C' or 'F'")
    dtype = _resolve_dtype(dtype_spec)
    count = math.prod(shape)
    if count > MAX_ELEMENTS or len(buffer) != count * dtype.itemsize:
        raise CheckpointFormatError(
            f"numpy array of shape {shape} and dtype {dtype} does not match its data ({len(buffer)} bytes)")
    flat = np.frombuffer(bytearray(buffer), dtype=dtype)
    return flat.reshape(shape, order=order)


def _codecs_encode(text: Any, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles spell `bytes` objects as _codecs.encode(str, 'latin1'); allow only that.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointFormatError(
            f"_codecs.encode is only allowed as encode(str, 'latin1'), got encoding {short_repr(encoding)}"
        )
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    # Protocol-2 pickles spell b'' as bytes(); bytes(n) would allocate n bytes, so nothing else is allowed.
    if args:
        raise CheckpointFormatError(f"builtins.bytes is only allowed without arguments, got {short_repr(args)}")
    return b""


def container_globals() -> Dict[Tuple[str, str], Any]:
    """Globals that only build plain data: containers, numpy arrays/scalars/dtypes, bytes."""
    allowed: Dict[Tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): SafeCallable("_codecs.encode", _codecs_encode),
        ("builtins", "bytes"): SafeCallable("builtins.bytes", _empty_bytes),
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): SafeCallable("numpy.dtype", DtypeSpec),
    }
    for name, obj in (("set", set), ("frozenset", frozenset), ("slice", slice), ("complex", complex)):
        allowed[("builtins", name)] = obj  # '__builtin__.*' (Python 2 spelling) is mapped in find_class
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = SafeCallable(f"{module}._reconstruct", _reconstruct)
        allowed[(module, "scalar")] = SafeCallable(f"{module}.scalar", _scalar)
    for module in ("numpy.core.numeric", "numpy._core.numeric"):  # pickle protocol 5 arrays
        allowed[(module, "_frombuffer")] = SafeCallable(f"{module}._frombuffer", _frombuffer)
    return allowed


# --------------------------------------------------------------------------------------------------
# The restricted unpickler
# --------------------------------------------------------------------------------------------------
class RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self,
        file: Any,
        *,
        record: str,
        allowed: Mapping[Tuple[str, str], Any],
        persistent_load: Optional[PersistentLoad] = None,
        unknown_global: Optional[Callable[[str, str], None]] = None,
    ) -> None:
        # latin1 lets Python-2 era pickles of numpy arrays decode their byte strings.
        super().__init__(file, encoding="latin1")
        self._record = record
        self._allowed = allowed
        self._persistent = persistent_load
        self._unknown_global = unknown_global

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles may carry Python 2 names ('__builtin__.eval', 'commands.call'); map them
        # the way pickle's default find_class would, so the allow-list and messages use real names.
        written = printable(f"{module}.{name}")
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        if self._unknown_global is not None:
            self._unknown_global(module, name)  # may raise a more specific error
        real = printable(f"{module}.{name}")
        spelled = f" (written as '{written}')" if written != real else ""
        raise UnsafeCheckpointError(
            f"refused to load {self._record}: it references the global '{real}'{spelled}, "
            f"which is not on the allow-list of tensor/container types (nothing was executed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise CheckpointFormatError(f"unexpected persistent id {short_repr(pid)} in {self._record}")
        return self._persistent(pid)


def unpickle(
    data: bytes,
    start: int = 0,
    *,
    record: str,
    allowed: Mapping[Tuple[str, str], Any],
    persistent_load: Optional[PersistentLoad] = None,
    unknown_global: Optional[Callable[[str, str], None]] = None,
) -> Tuple[Any, int]:
    """Scan, then run the restricted unpickler on the pickle at `data[start:]`; return (object, end offset).

    Errors name `record` but not the file: the public readers add the path (`errors.names_file`).
    """
    end = scan_pickle(data, start, record)
    stream = io.BytesIO(data)  # shares the bytes, no copy
    stream.seek(start)
    unpickler = RestrictedUnpickler(stream, record=record, allowed=allowed, persistent_load=persistent_load,
                                    unknown_global=unknown_global)
    try:
        return unpickler.load(), end
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt/truncated file
        raise CheckpointFormatError(
            f"cannot unpickle {record} (truncated or corrupt file?): {type(exc).__name__}: {printable(str(exc))}"
        ) from exc


# --------------------------------------------------------------------------------------------------
# After unpickling: one bounded walk that swaps placeholders for real objects
# --------------------------------------------------------------------------------------------------
_ATOMS = (str, bytes, int, float, complex, type(None))


class Rebuilder:
    """Walks unpickled data once, replacing placeholders (in place where possible).

    Memoised by id (shared containers are visited once, so shared-list bombs stay linear), refuses
    data nested deeper than `limits.MAX_DEPTH` and containers that contain themselves. Subclasses
    extend `replace` for their own placeholders (torch tensors).
    """

    def __init__(self, what: str) -> None:
        self.guard = WalkGuard(what)
        self._done: Dict[int, Tuple[Any, Any]] = {}  # id -> (original, result); keeps ids from being reused

    def replace(self, x: Any) -> Any:
        if isinstance(x, CheckedArray):
            return x.view(np.ndarray)
        if isinstance(x, DtypeSpec):
            return x.resolve()
        if isinstance(x, Inert):
            raise CheckpointFormatError(f"{self.guard.what} contains a bare {x!r} where data was expected")
        return x

    def walk(self, x: Any, depth: int = 0) -> Any:
        if isinstance(x, _ATOMS):
            return x
        if id(x) in self._done:
            return self._done[id(x)][1]
        if isinstance(x, (dict, list, tuple)):
            with self.guard.entering(x, depth):
                result = self._walk_container(x, depth + 1)
        else:
            result = self.replace(x)
        self._done[id(x)] = (x, result)
        return result

    def _walk_container(self, x: Any, depth: int) -> Any:
        if isinstance(x, dict):
            for key, value in list(x.items()):
                new = self.walk(value, depth)
                if new is not value:
                    x[key] = new
            return x
        if isinstance(x, list):
            for i, value in enumerate(x):
                x[i] = self.walk(value, depth)
            return x
        items = tuple(self.walk(v, depth) for v in x)
        return items if any(a is not b for a, b in zip(items, x)) else x
