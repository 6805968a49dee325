"""Limits that keep a hostile or corrupt checkpoint from exhausting time, memory or the C stack.

A checkpoint is a few hundred bytes of description (pickle, zip directory, .npy headers) that say how
much data to build. Every reader checks those claims against what the file really holds *before*
allocating, and walks unpickled data with memoisation, a depth limit and cycle detection, so a small
file can neither ask for gigabytes nor make a walk exponential or recursive without bound.

The limits are far above what any real SegNeXt checkpoint needs (an mmseg SegNeXt-L file with its
optimizer state: ~2,000 tensors, ~80,000 pickle opcodes, nesting depth < 10, stored zip members).
"""
from __future__ import annotations

import contextlib
import os
import reprlib
import zipfile
from typing import Any, Dict, Iterator, Mapping, Optional, Set, Tuple

import numpy as np

from ..errors import CheckpointFormatError

__all__ = [
    "MAX_DEPTH",
    "MAX_PICKLE_OPS",
    "MAX_TUPLE_WEIGHT",
    "MAX_HASH_WORK",
    "MAX_PICKLE_BYTES",
    "MAX_JSON_BYTES",
    "MAX_META_VALUES",
    "MAX_ELEMENTS",
    "MAX_VIEW_AMPLIFICATION",
    "VIEW_FLOOR",
    "short_repr",
    "printable",
    "WalkGuard",
    "to_jsonable",
    "ZipGuard",
]

MAX_DEPTH = 100  # nesting of containers; real checkpoints stay below 10, Python's recursion limit is 1000
MAX_PICKLE_OPS = 500_000  # each opcode builds at most one object (<= ~250 bytes): <= ~125 MB; SegNeXt-L: ~80,000
# Tuples (and objects built from arguments) in a pickle, counted fully expanded (see pickle_scan):
# one object may hold this many, and all hashing during a load may visit this many in total. A
# torch tensor weighs ~10; a tuple of this weight is hashed in well under a millisecond.
MAX_TUPLE_WEIGHT = 10_000
MAX_HASH_WORK = 10_000_000
MAX_PICKLE_BYTES = 64 << 20  # a torch data.pkl; tensor data lives outside it
MAX_JSON_BYTES = 16 << 20  # our .npz's JSON header (json.loads may build ~4x that in Python objects)
MAX_META_VALUES = 1_000_000  # JSON values that checkpoint metadata may expand to (shared lists counted each time)
MAX_ELEMENTS = 1 << 48  # elements of one tensor/array; larger shapes are corrupt (and overflow numpy)
MAX_ZIP_RATIO = 100  # uncompressed:compressed; torch and save_npz store members uncompressed (1:1)
ZIP_RATIO_FLOOR = 16 << 20  # members that inflate to at most this are never a memory threat
ZIP_MEMBER_SLACK = 1 << 20  # a member may exceed what its tensor needs by this much, no more
# Tensors are copied out of their storages; views of one storage may overlap (tied weights), but all
# tensors together may not take more than this multiple of the storage bytes (plus the floor).
MAX_VIEW_AMPLIFICATION = 4
VIEW_FLOOR = 64 << 20


# --------------------------------------------------------------------------------------------------
# Messages about untrusted values
# --------------------------------------------------------------------------------------------------
class _ShortRepr(reprlib.Repr):
    """reprlib with small limits; objects it has no rule for are shown by type only.

    A plain repr() of unpickled data can recurse 100,000 levels or expand shared lists
    exponentially; reprlib stops at `maxlevel` and a few items per container.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, 60, 60, 40
        self.maxtuple = self.maxlist = self.maxdict = self.maxset = self.maxfrozenset = 6

    def repr_OrderedDict(self, x: Mapping[Any, Any], level: int) -> str:  # noqa: N802 - reprlib naming
        return self.repr_dict(x, level)  # type: ignore[arg-type]

    def repr_instance(self, x: Any, level: int) -> str:
        if isinstance(x, np.ndarray):
            return f"<ndarray {x.dtype} {x.shape}>"
        if x is None or isinstance(x, (float, complex, bytes, np.generic, np.dtype)):
            return super().repr_instance(x, level)
        return f"<{type(x).__name__}>"


_SHORT_REPR = _ShortRepr()


def short_repr(value: Any) -> str:
    """A bounded repr of untrusted data, for error messages (time and length are O(1))."""
    try:
        return _SHORT_REPR.repr(value)
    except Exception:  # noqa: BLE001 - e.g. ints beyond sys.get_int_max_str_digits()
        return f"<{type(value).__name__}>"


def printable(text: str, limit: int = 200) -> str:
    """`text` itself if it is short and printable (e.g. a module name), else a clipped repr of it."""
    if len(text) <= limit and text.isprintable():
        return text
    return short_repr(text[:limit])


# --------------------------------------------------------------------------------------------------
# Walking unpickled data
# --------------------------------------------------------------------------------------------------
class WalkGuard:
    """Depth limit and cycle detection for a recursive walk over containers from a file."""

    def __init__(self, what: str, max_depth: int = MAX_DEPTH) -> None:
        self.what = what
        self.max_depth = max_depth
        self._active: Set[int] = set()

    @contextlib.contextmanager
    def entering(self, container: Any, depth: int) -> Iterator[None]:
        if depth > self.max_depth:
            raise CheckpointFormatError(
                f"{self.what} is nested more than {self.max_depth} levels deep (corrupt or hostile file?)"
            )
        if id(container) in self._active:
            raise CheckpointFormatError(
                f"{self.what} contains a {type(container).__name__} that contains itself; "
                f"recursive data is not supported"
            )
        self._active.add(id(container))
        try:
            yield
        finally:
            self._active.discard(id(container))


class _Jsonable:
    """`to_jsonable` with an id-memo: a container shared N times is converted once, counted N times."""

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self.count = 0
        self.memo: Dict[int, Tuple[Any, int]] = {}  # id -> (converted, values it expands to)
        self.guard = WalkGuard("checkpoint metadata")

    def spend(self, n: int) -> None:
        self.count += n
        if self.count > self.max_values:
            raise CheckpointFormatError(
                f"checkpoint metadata expands to more than {self.max_values:,} values "
                f"(lists shared many times over, or huge arrays in the meta?)"
            )

    def convert(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            self.spend(1)
            return value
        if isinstance(value, np.generic):
            return self.convert(value.item(), depth)
        if isinstance(value, (bytes, bytearray)):
            self.spend(1)
            return bytes(value).decode("utf-8", errors="replace")
        if not isinstance(value, (Mapping, list, tuple, set, frozenset, np.ndarray)):
            self.spend(1)
            return short_repr(value)
        if id(value) in self.memo:
            converted, size = self.memo[id(value)]
            self.spend(size)
            return converted
        before = self.count
        with self.guard.entering(value, depth):
            converted = self.convert_container(value, depth + 1)
        self.memo[id(value)] = (converted, self.count - before)
        return converted

    def convert_container(self, value: Any, depth: int) -> Any:
        if isinstance(value, np.ndarray):
            if value.size > self.max_values - self.count:  # refuse before tolist() builds them all
                self.spend(value.size)
            return self.convert(value.tolist(), depth)
        self.spend(1)
        if isinstance(value, Mapping):
            return {_json_key(k): self.convert(v, depth) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.convert(v, depth) for v in value]
        return sorted((self.convert(v, depth) for v in value), key=repr)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float, np.generic)):
        return str(key)
    return short_repr(key)


def to_jsonable(value: Any, max_values: int = MAX_META_VALUES) -> Any:
    """Best-effort conversion of checkpoint meta (numpy scalars, tuples, sets...) to JSON types.

    Raises `CheckpointFormatError` for data nested deeper than `MAX_DEPTH`, containing itself, or
    expanding to more than `max_values` values; containers shared in the input stay shared in the
    output, whose fully expanded size is therefore what `max_values` bounds.
    """
    return _Jsonable(max_values).convert(value, 0)


# --------------------------------------------------------------------------------------------------
# Zip archives (torch >= 1.6 checkpoints, our .npz)
# --------------------------------------------------------------------------------------------------
class ZipGuard:
    """Reads members of one zip archive only as far as needed, refusing zip bombs.

    Three claims of the central directory are checked before inflating anything: a member's
    uncompressed size against what the caller needs from it, its compression ratio, and the sum of
    compressed sizes against the file size (overlapping members reuse one compressed stream many times).
    """

    def __init__(self, zf: zipfile.ZipFile, path: str) -> None:
        self.zf = zf
        self.path = path
        self._disk_bytes = os.path.getsize(path)
        self._claimed = 0
        self._admitted: Set[str] = set()

    def info(self, name: str) -> zipfile.ZipInfo:
        try:
            return self.zf.getinfo(name)
        except KeyError:
            raise CheckpointFormatError(f"{self.path}: missing zip entry '{printable(name)}'") from None

    def admit(self, info: zipfile.ZipInfo) -> None:
        """Refuse a member whose ratio, or whose compressed bytes with those already read, are implausible."""
        if info.filename in self._admitted:
            return
        name = printable(info.filename)
        if info.file_size > ZIP_RATIO_FLOOR and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise CheckpointFormatError(
                f"{self.path}: zip entry '{name}' inflates {info.compress_size:,} bytes to {info.file_size:,} "
                f"(more than {MAX_ZIP_RATIO}:1); refusing a likely zip bomb"
            )
        self._claimed += info.compress_size
        if self._claimed > self._disk_bytes:
            raise CheckpointFormatError(
                f"{self.path}: zip entries claim more compressed bytes ({self._claimed:,}) than the file has "
                f"({self._disk_bytes:,}): overlapping entries (zip bomb) or a corrupt directory"
            )
        self._admitted.add(info.filename)

    def check_size(self, info: zipfile.ZipInfo, need: int, what: str) -> None:
        """`info` must hold the `need` bytes of `what`, and not hugely more."""
        name = printable(info.filename)
        if info.file_size < need:
            raise CheckpointFormatError(
                f"{self.path}: zip entry '{name}' holds {info.file_size:,} bytes but {what} needs {need:,} "
                f"(truncated or corrupt file?)"
            )
        if info.file_size - need > ZIP_MEMBER_SLACK:
            raise CheckpointFormatError(
                f"{self.path}: zip entry '{name}' declares {info.file_size:,} bytes, far more than the {need:,} "
                f"{what} needs (zip bomb or corrupt file?)"
            )

    def read(self, name: str, need: Optional[int] = None, limit: int = MAX_PICKLE_BYTES, what: str = "") -> bytes:
        """Exactly `need` bytes of member `name`, or all of it when `need` is None (then at most `limit`)."""
        info = self.info(name)
        if need is None:
            if info.file_size > limit:
                raise CheckpointFormatError(
                    f"{self.path}: zip entry '{printable(name)}' is {info.file_size:,} bytes, more than the "
                    f"{limit:,} allowed for {what or 'it'}"
                )
            need = info.file_size
        else:
            self.check_size(info, need, what or "the checkpoint")
        self.admit(info)
        try:
            with self.zf.open(info) as member:
                data = member.read(need)
        except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError...
            raise CheckpointFormatError(
                f"{self.path}: cannot read zip entry '{printable(name)}' (truncated or corrupt file?): "
                f"{type(exc).__name__}: {printable(str(exc))}"
            ) from exc
        if len(data) != need:
            raise CheckpointFormatError(
                f"{self.path}: zip entry '{printable(name)}' ended after {len(data):,} of {need:,} bytes "
                f"(truncated or corrupt file?)"
            )
        return data
