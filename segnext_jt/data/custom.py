"""Your own labelled folders (``data.dataset: custom``): class names from the config or a
``classes.txt``, a palette from the config or generated.

A ``classes.txt`` holds one class name per line, in class-id order (line 1 = id 0); surrounding
whitespace is stripped and trailing blank lines are ignored. A relative ``data.classes`` path is
resolved against ``data.root``, so a dataset folder carries its own class list.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

from ..errors import ConfigError, DataError, quote
from ..files import read_regular_file
from .dataset import _lines

__all__ = ["checked_palette", "classes_path", "generated_palette", "read_classes_file", "resolve_classes"]


def classes_path(classes: str, root: str) -> str:
    """Where a ``data.classes`` file is: absolute as given, else under ``data.root``."""
    return classes if os.path.isabs(classes) else os.path.join(root, classes)


# A classes.txt holds at most MAX_CLASSES names (255); 1 MiB is 4 kB a name, so only a wrong file
# (a dataset archive, /dev/zero) is refused.
MAX_CLASSES_FILE_BYTES = 1 << 20


def read_classes_file(path: str) -> Tuple[str, ...]:
    """Class names from a classes.txt (see the module docstring); a missing or malformed file is a
    one-line DataError naming it. Only a regular file of at most MAX_CLASSES_FILE_BYTES is read (a
    FIFO or /dev/zero is refused before reading), and a UTF-8 BOM before the first name is dropped."""
    data = read_regular_file(path, MAX_CLASSES_FILE_BYTES, DataError, "classes file",
                             missing=" (data.classes; a relative path is resolved against data.root)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the classes "
                        "file as UTF-8") from None
    lines = [line.strip() for line in _lines(text)]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DataError(f"{path}: the classes file is empty; expected one class name per line")
    if "" in lines:
        raise DataError(f"{path}: line {lines.index('') + 1} is blank; a class name per line is expected "
                        "(a blank line would shift every later class id)")
    seen = set()
    for number, name in enumerate(lines, 1):
        if name in seen:
            raise DataError(f"{path}: line {number}: class {quote(name)} appears twice")
        seen.add(name)
    return tuple(lines)


def resolve_classes(classes: Union[Sequence[str], str, None], root: str) -> Tuple[Tuple[str, ...], str]:
    """(names, where they came from) for ``data.classes``: a list as given, or a file's lines."""
    if classes is None:
        raise DataError("data.classes: dataset 'custom' needs the class names (a list, or a path to a "
                        "classes.txt with one name per line)")
    if isinstance(classes, str):
        path = classes_path(classes, root)
        return read_classes_file(path), path
    return tuple(classes), "data.classes"


def generated_palette(num_classes: int) -> Tuple[Tuple[int, int, int], ...]:
    """A fixed colour per class id: the Pascal VOC colour map (bits of the id spread over the high
    bits of R, G, B), started at 1 so that no class is black, the colour of ignored pixels."""
    palette = []
    for class_id in range(num_classes):
        code, rgb = class_id + 1, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << (7 - bit)
            code >>= 3
        palette.append((rgb[0], rgb[1], rgb[2]))
    return tuple(palette)


def checked_palette(palette: Optional[Sequence[Sequence[int]]], num_classes: int,
                    where: str) -> Tuple[Tuple[int, int, int], ...]:
    """The configured palette (checked against the class count) or the generated one."""
    if palette is None:
        return generated_palette(num_classes)
    if len(palette) != num_classes:
        raise ConfigError(f"data.palette has {len(palette)} colours but {where} declares {num_classes} classes")
    return tuple((int(c[0]), int(c[1]), int(c[2])) for c in palette)
