"""Your own labelled folders (``data.dataset: custom``): class names from the config or a
``classes.txt``, a palette from the config or generated.

A ``classes.txt`` holds one class name per line, in class-id order (line 1 = id 0); surrounding
whitespace is stripped and trailing blank lines are ignored. A relative ``data.classes`` path is
resolved against ``data.root``, so a dataset folder carries its own class list.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

from ..config import ConfigError
from .dataset import DataError

__all__ = ["checked_palette", "classes_path", "generated_palette", "read_classes_file", "resolve_classes"]


def classes_path(classes: str, root: str) -> str:
    """Where a ``data.classes`` file is: absolute as given, else under ``data.root``."""
    return classes if os.path.isabs(classes) else os.path.join(root, classes)


def read_classes_file(path: str) -> Tuple[str, ...]:
    """Class names from a classes.txt (see the module docstring); a missing or malformed file is a
    one-line DataError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except FileNotFoundError:
        raise DataError(f"{path}: classes file not found (data.classes; a relative path is resolved "
                        f"against data.root)") from None
    except IsADirectoryError:
        raise DataError(f"{path}: data.classes names a folder, expected a text file with one class name "
                        "per line") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the classes file ({e})") from e
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
            raise DataError(f"{path}: line {number}: class {name!r} appears twice")
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
