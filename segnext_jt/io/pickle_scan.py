"""Check a pickle's opcode stream before the C unpickler runs it.

The restricted unpickler decides *which objects* a pickle may build; this scan bounds *how many* and
*how big*, which the unpickler cannot:

* CPython hashes a tuple by hashing its items, recursively, in C, without a depth check and without
  caching. A 300 KB pickle that nests a tuple 150,000 levels deep and uses it as a dict key kills the
  interpreter (segmentation fault, which no `except` can catch); a 200-byte one that shares tuples
  (each level holding the previous one twice, via the memo) makes one hash take 2**levels steps.
  The scan follows the unpickler's stack and gives every item a *weight*: the number of tuples (and
  objects built from arguments, which may keep them) it holds when fully expanded. An object heavier
  than `MAX_TUPLE_WEIGHT`, or a pickle whose opcodes consume more than `MAX_HASH_WORK` weight in
  total (what all hashing during the load can cost), is refused.
* Every opcode builds at most one object, so `MAX_PICKLE_OPS` bounds the memory and the time the
  unpickler and the walks after it can take, whatever the pickle's size.

The scan mirrors the C unpickler's stack discipline (marks, and POP at a mark); opcodes it cannot
follow make it refuse the file, so it never lets through something it did not understand.
"""
from __future__ import annotations

import itertools
import pickletools
from typing import Dict, List, NamedTuple, Optional

from ..errors import CheckpointFormatError
from .limits import MAX_HASH_WORK, MAX_PICKLE_OPS, MAX_TUPLE_WEIGHT

__all__ = ["scan_pickle"]

# How each opcode moves the stack. NESTING: builds an object from its inputs, which it may keep, so
# its weight is 1 + theirs. IN_PLACE: changes the object below its inputs, which stays (lists, dicts
# and sets cannot be hashed, so what they hold does not add to their weight).
_PLAIN, _NESTING, _IN_PLACE, _MARK, _POP, _DUP, _GET, _PUT, _MEMOIZE, _STOP = range(10)
_KINDS = {
    **dict.fromkeys(("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST",
                     "BINPERSID", "FROZENSET"), _NESTING),
    **dict.fromkeys(("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD", "READONLY_BUFFER"), _IN_PLACE),
    **dict.fromkeys(("GET", "BINGET", "LONG_BINGET"), _GET),
    **dict.fromkeys(("PUT", "BINPUT", "LONG_BINPUT"), _PUT),
    "MARK": _MARK, "POP": _POP, "DUP": _DUP, "MEMOIZE": _MEMOIZE, "STOP": _STOP,
}
_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
           pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}
_LINE, _TWO_LINES = -1, -2  # argument runs to the end of one / two text lines; -(10 + k): k-byte length


class _Op(NamedTuple):
    name: str
    kind: int
    arg_len: int  # fixed argument length, _LINE, _TWO_LINES or -(10 + k)
    signed_len: bool  # the length prefix is signed (BINSTRING, LONG4)
    to_mark: bool  # pops everything above the topmost mark, and the mark
    n_pop: int  # further items popped (below the mark when to_mark)
    n_push: int


def _op_table() -> List[Optional[_Op]]:
    table: List[Optional[_Op]] = [None] * 256
    for info in pickletools.opcodes:
        arg = info.arg
        if arg is None:
            arg_len = 0
        elif arg.n == pickletools.UP_TO_NEWLINE:
            arg_len = _TWO_LINES if arg.name == "stringnl_noescape_pair" else _LINE
        else:
            arg_len = -(10 + _PREFIX[arg.n]) if arg.n in _PREFIX else arg.n
        before = info.stack_before
        to_mark = pickletools.markobject in before
        fixed = before[:before.index(pickletools.markobject)] if to_mark else before
        signed = arg is not None and arg.n == pickletools.TAKEN_FROM_ARGUMENT4
        table[ord(info.code)] = _Op(info.name, _KINDS.get(info.name, _PLAIN), arg_len, signed, to_mark,
                                    len(fixed), len(info.stack_after))
    return table


_TABLE = _op_table()


class _Scan:
    """One pass over a pickle: the stack (as item weights), mark positions and memo of the C unpickler."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.where = data, where
        self.stack: List[int] = []
        self.marks: List[int] = []
        self.memo: Dict[int, int] = {}
        self.work = 0  # total weight of the items opcodes consumed: a bound on all hashing

    def fail(self, why: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"cannot unpickle {self.where} (truncated or corrupt file?): {why}")

    def skip_argument(self, op: _Op, start: int) -> int:
        """Return the offset just past the argument of `op`, which starts at `start`."""
        data = self.data
        if op.arg_len >= 0:
            end = start + op.arg_len
        elif op.arg_len >= _TWO_LINES:
            end = data.find(b"\n", start)
            if op.arg_len == _TWO_LINES and end >= 0:
                end = data.find(b"\n", end + 1)
            if end < 0:
                raise self.fail(f"{op.name} at byte {start - 1} has no end of line")
            end += 1
        else:
            width = -op.arg_len - 10
            n = int.from_bytes(data[start:start + width], "little", signed=op.signed_len)
            if n < 0:
                raise self.fail(f"{op.name} at byte {start - 1} has negative length {n}")
            end = start + width + n
        if end > len(data):
            raise self.fail(f"the pickle ends inside {op.name} at byte {start - 1}")
        return end

    def memo_index(self, op: _Op, start: int, end: int) -> int:
        raw = self.data[start:end]
        if op.arg_len != _LINE:  # BINGET / LONG_BINPUT & co.: little-endian unsigned
            return int.from_bytes(raw, "little")
        try:
            index = int(raw)
        except ValueError:
            raise self.fail(f"{op.name} argument {raw[:20]!r} is not an integer") from None
        if index < 0:
            raise self.fail(f"negative {op.name} argument {index}")
        return index

    def pop(self, op: _Op, keep_base: bool) -> int:
        """Remove the inputs of `op` (but its lowest fixed input if `keep_base`); return their weight."""
        stack, weight = self.stack, 0
        if op.to_mark:
            if not self.marks:
                raise self.fail(f"{op.name} without a MARK")
            mark = self.marks.pop()
            weight = sum(stack[mark:])
            del stack[mark:]
        if len(stack) < op.n_pop:
            raise self.fail(f"stack underflow at {op.name}")
        n = op.n_pop - keep_base
        if n == 1:  # APPEND, BUILD, TUPLE1, BINPERSID: the common case, without slicing
            weight += stack.pop()
        elif n:
            weight += sum(stack[-n:])
            del stack[-n:]
        self.work += weight
        return weight

    def step(self, op: _Op, start: int, end: int) -> None:
        """Opcodes that only move stack items: MARK, POP, DUP and the memo (PUT / MEMOIZE / GET)."""
        stack, kind = self.stack, op.kind
        if kind == _MARK:
            self.marks.append(len(stack))
        elif kind == _POP:  # the C unpickler's POP right at a mark removes the mark, not an object
            if self.marks and self.marks[-1] == len(stack):
                self.marks.pop()
            elif len(stack) <= (self.marks[-1] if self.marks else 0):
                raise self.fail("stack underflow at POP")
            else:
                stack.pop()
        elif kind in (_DUP, _PUT, _MEMOIZE):
            if not stack:
                raise self.fail(f"stack underflow at {op.name}")
            if kind == _DUP:
                stack.append(stack[-1])
            else:
                index = len(self.memo) if kind == _MEMOIZE else self.memo_index(op, start, end)
                self.memo[index] = stack[-1]
        elif kind == _GET:
            index = self.memo_index(op, start, end)
            if index not in self.memo:
                raise self.fail(f"{op.name} of memo entry {index}, which was never stored")
            stack.append(self.memo[index])

    def build(self, op: _Op, opcode_at: int) -> None:
        """Opcodes that pop inputs and push a new object, or change the object below their inputs."""
        weight = self.pop(op, keep_base=op.kind == _IN_PLACE)
        if self.work > MAX_HASH_WORK:
            raise self.refuse(f"shares or nests tuples more than {MAX_HASH_WORK:,} times in total", opcode_at)
        if op.kind == _NESTING:
            if weight >= MAX_TUPLE_WEIGHT:
                raise self.refuse(f"builds a tuple or object of more than {MAX_TUPLE_WEIGHT:,} nested parts", opcode_at)
            self.stack.append(weight + 1)
        elif op.kind != _IN_PLACE:
            self.stack.extend([0] * op.n_push)

    def refuse(self, what: str, opcode_at: int) -> CheckpointFormatError:
        return CheckpointFormatError(
            f"{self.where} {what} (at byte {opcode_at}); refused before unpickling, because hashing such "
            f"data hangs or crashes Python (corrupt or hostile file?)"
        )


def scan_pickle(data: bytes, start: int, where: str) -> int:
    """Check the pickle at `data[start:]`; return the offset just past its STOP opcode.

    Raises `CheckpointFormatError` (without the file name; the readers add it) for a pickle with more
    than `MAX_PICKLE_OPS` opcodes, tuples too heavy to hash (see the module docstring), or a malformed
    opcode stream.
    """
    scan, table, size, pos = _Scan(data, where), _TABLE, len(data), start
    push = scan.stack.append
    for _ in itertools.repeat(None, MAX_PICKLE_OPS):  # no int object per opcode
        if pos >= size:
            raise scan.fail("the pickle ends without a STOP opcode")
        op = table[data[pos]]
        if op is None:
            raise scan.fail(f"unknown opcode {data[pos]:#04x} at byte {pos}")
        end = scan.skip_argument(op, pos + 1) if op.arg_len else pos + 1
        if op.kind == _PLAIN and not op.n_pop and not op.to_mark:  # constants: most opcodes, kept fast
            if op.n_push:
                push(0)
        elif op.kind == _STOP:
            return end
        elif op.kind in (_NESTING, _IN_PLACE, _PLAIN):
            scan.build(op, pos)
        else:
            scan.step(op, pos + 1, end)
        pos = end
    raise CheckpointFormatError(
        f"{where} has more than {MAX_PICKLE_OPS:,} pickle opcodes; refused (no SegNeXt checkpoint comes near "
        f"this; hostile or corrupt file?)"
    )
