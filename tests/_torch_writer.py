"""A tiny writer of `torch.save`-compatible files, for tests only (torch is not installed).

It emits the same pickle opcodes torch does: `GLOBAL 'torch._utils _rebuild_tensor_v2'` with a
persistent id per storage, `GLOBAL 'torch FloatStorage'` & co. inside the persistent ids, and the
zip (torch >= 1.6) or legacy container around them. Module names are written as raw GLOBAL opcodes,
so nothing named `torch` is ever imported or faked in `sys.modules`.
"""
from __future__ import annotations

import hashlib
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

_TYPE_NAMES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


class GlobalRef:
    """Pickled as `GLOBAL 'module name'` without importing `module`."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # pickle's save_reduce wants a callable
        raise TypeError("placeholder only")


class Storage:
    """A flat storage. `type_name` defaults from the dtype; pass raw uint16 + 'BFloat16Storage' for bf16.

    `numel` overrides the element count written in the persistent id (for files that lie about it).
    """

    def __init__(self, flat: np.ndarray, type_name: Optional[str] = None, numel: Optional[int] = None) -> None:
        self.flat = np.ascontiguousarray(flat).reshape(-1)
        self.type_name = type_name or _TYPE_NAMES[self.flat.dtype]
        self.numel = self.flat.size if numel is None else numel

    def raw_bytes(self, byteorder: str = "little") -> bytes:
        dtype = self.flat.dtype.newbyteorder("<" if byteorder == "little" else ">")
        return self.flat.astype(dtype).tobytes()


class StorageView:
    """Legacy-format view of a root storage (persistent id with view metadata)."""

    def __init__(self, root: Storage, offset: int, numel: int) -> None:
        self.root, self.offset, self.numel = root, offset, numel


class Tensor:
    def __init__(self, storage: Any, offset: int, size: Sequence[int], stride: Sequence[int],
                 parameter: bool = False) -> None:
        self.storage, self.offset = storage, offset
        self.size, self.stride, self.parameter = tuple(size), tuple(stride), parameter

    def __reduce_ex__(self, protocol: int) -> Any:
        hooks: "OrderedDict[str, Any]" = OrderedDict()
        if self.parameter:
            data = Tensor(self.storage, self.offset, self.size, self.stride)
            return (GlobalRef("torch._utils", "_rebuild_parameter"), (data, True, hooks))
        args = (self.storage, self.offset, self.size, self.stride, False, hooks)
        return (GlobalRef("torch._utils", "_rebuild_tensor_v2"), args)


def tensor(array: np.ndarray, parameter: bool = False) -> Tensor:
    """A contiguous tensor holding `array` (its own storage)."""
    a = np.array(array, order="C")  # not ascontiguousarray: that turns 0-d into 1-d
    strides = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
    return Tensor(Storage(a), 0, a.shape, strides, parameter=parameter)


class _TorchPickler(pickle._Pickler):  # the pure-Python pickler lets us add dispatch entries
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file: Any, legacy: bool) -> None:
        super().__init__(file, protocol=2)
        self.legacy = legacy
        self.storages: Dict[int, Tuple[str, Storage]] = {}
        self.view_keys: Dict[int, str] = {}

    def _key(self, storage: Storage) -> str:
        if id(storage) not in self.storages:
            self.storages[id(storage)] = (str(len(self.storages)), storage)
        return self.storages[id(storage)][0]

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, StorageView):
            root_key = self._key(obj.root)
            view_key = self.view_keys.setdefault(id(obj), f"view{len(self.view_keys)}")
            return ("storage", GlobalRef("torch", obj.root.type_name), root_key, "cpu", obj.root.numel,
                    (view_key, obj.offset, obj.numel))
        if isinstance(obj, Storage):
            key = self._key(obj)
            if self.legacy:
                return ("storage", GlobalRef("torch", obj.type_name), key, "cpu", obj.numel, None)
            return ("storage", GlobalRef("torch", obj.type_name), key, "cpu", obj.numel)
        return None

    def _save_global_ref(self, obj: GlobalRef) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("utf-8"))
        self.memoize(obj)

    dispatch[GlobalRef] = _save_global_ref


def dump(obj: Any, legacy: bool = False) -> Tuple[bytes, List[Tuple[str, Storage]]]:
    """The pickle torch.save would write for `obj`, and its storages as (key, storage)."""
    return _dump(obj, legacy)


def _dump(obj: Any, legacy: bool) -> Tuple[bytes, List[Tuple[str, Storage]]]:
    import io

    buf = io.BytesIO()
    pickler = _TorchPickler(buf, legacy=legacy)
    pickler.dump(obj)
    return buf.getvalue(), list(pickler.storages.values())


def write_zip(path: str, obj: Any, archive: str = "archive", byteorder: str = "little",
              data_pkl: Optional[bytes] = None) -> None:
    """torch >= 1.6 layout; `data_pkl` replaces the pickle (for malicious-file tests)."""
    data, storages = _dump(obj, legacy=False)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", data if data_pkl is None else data_pkl)
        zf.writestr(f"{archive}/byteorder", byteorder)
        for key, storage in storages:
            zf.writestr(f"{archive}/data/{key}", storage.raw_bytes(byteorder))
        zf.writestr(f"{archive}/version", "3\n")


def write_legacy(path: str, obj: Any, object_pickle: Optional[bytes] = None, header_protocol: int = 2,
                 counts: Optional[Dict[str, int]] = None) -> None:
    """Legacy layout: magic, version, sys_info, object pickle, key list, then (int64 numel, bytes) per storage.

    `header_protocol` > 3 mimics `torch.save(..., pickle_protocol=4)`, whose pickles start with a FRAME.
    `counts` overrides the element count written before a storage's bytes (for files that lie about it).
    """
    data, storages = _dump(obj, legacy=True)
    sys_info = {"protocol_version": LEGACY_PROTOCOL_VERSION, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    by_key = dict(storages)
    keys = sorted(by_key)
    with open(path, "wb") as f:
        f.write(pickle.dumps(LEGACY_MAGIC, protocol=header_protocol))
        f.write(pickle.dumps(LEGACY_PROTOCOL_VERSION, protocol=header_protocol))
        f.write(pickle.dumps(sys_info, protocol=header_protocol))
        f.write(data if object_pickle is None else object_pickle)
        f.write(pickle.dumps(keys, protocol=2))
        for key in keys:
            storage = by_key[key]
            count = (counts or {}).get(key, storage.flat.size)
            f.write(int(count).to_bytes(8, "little", signed=True))
            f.write(storage.raw_bytes("little"))


def jseg_save(path: str, obj: Any, protocol: int = 4) -> None:
    """What `jt.save` writes: a protocol-4 pickle (5 under some Python/Jittor versions) + sha1 + b'HCAJSLHD'."""
    s = pickle.dumps(obj, protocol)
    with open(path, "wb") as f:
        f.write(s + hashlib.sha1(s).digest() + b"HCAJSLHD")


# ------------------------------------------------------------------------------------------------
# Hand-made zip archives whose directory may lie (zip bombs, overlapping entries)
# ------------------------------------------------------------------------------------------------
@dataclass
class RawEntry:
    """A zip entry written byte by byte. `payload` is what lies in the file (already compressed for
    method 8); `file_size` / `compress_size` / `crc` are what the directory claims (default: true
    values); `same_data_as` makes the directory entry point at another entry's local header."""

    name: str
    payload: bytes
    method: int = zipfile.ZIP_STORED
    file_size: Optional[int] = None
    compress_size: Optional[int] = None
    crc: Optional[int] = None
    same_data_as: Optional[str] = None


def deflated_zeros(mib: int) -> bytes:
    """A raw deflate stream of `mib` MiB of zeros, built from one compressed 1 MiB block (fast)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, self-contained
    return block * mib + c.flush()


def write_raw_zip(path: str, entries: Sequence[RawEntry]) -> None:
    """A zip archive with exactly the given (possibly lying) local headers and central directory."""
    body, offsets, directory = bytearray(), {}, bytearray()
    for e in entries:
        if e.same_data_as is not None:
            continue
        offsets[e.name] = len(body)
        name = e.name.encode()
        crc = zlib.crc32(e.payload) if e.crc is None and e.method == zipfile.ZIP_STORED else (e.crc or 0)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, e.method, 0, 0x21, crc, len(e.payload),
                            len(e.payload) if e.file_size is None else e.file_size, len(name), 0)
        body += name + e.payload
    for e in entries:
        source = next(x for x in entries if x.name == (e.same_data_as or e.name))
        name = e.name.encode()
        crc = zlib.crc32(source.payload) if e.crc is None and e.method == zipfile.ZIP_STORED else (e.crc or 0)
        csize = len(source.payload) if e.compress_size is None else e.compress_size
        usize = len(source.payload) if e.file_size is None else e.file_size
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, e.method, 0, 0x21, crc, csize, usize,
                                 len(name), 0, 0, 0, 0, 0, offsets[source.name])
        directory += name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), len(body), 0)
    with open(path, "wb") as f:
        f.write(bytes(body) + bytes(directory) + end)
