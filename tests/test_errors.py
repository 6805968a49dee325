"""segnext_jt.errors: the one `one_line` (for every `error:` line), `quote`, and the error types'
places in the builtin hierarchy that the tools' exit codes rely on."""
from __future__ import annotations

import pytest

from segnext_jt import errors
from segnext_jt.errors import (CheckpointError, CheckpointFormatError, CheckpointMismatchError, CheckpointNotFoundError,
                               ConfigError, DataError, UnsafeCheckpointError, one_line, quote)


@pytest.mark.parametrize("text, expected", [
    ("plain", "plain"),
    ("a\nb", "a b"),
    ("a\r\nb", "a b"),            # one break, one space (the cli's old one_line made two)
    ("a\rb", "a b"),
    ("a\n\nb", "a b"),            # blank lines dropped
    ("while parsing\n  in line 1", "while parsing in line 1"),  # indentation after a break dropped
    ("two  spaces", "two  spaces"),  # blanks inside a line stay
    ("a\x0bb\x0cc", "a b c"),     # vertical tab, form feed
    ("a\x1cb\x1dc\x1ed", "a b c d"),
    ("a\x85b\u2028c\u2029d", "a b c d"),  # breaks the old cli version let through
    ("  padded \n", "padded"),    # the ends are stripped (the old io version kept them)
    ("tab\tstays", "tab\tstays"),
    ("", ""),
])
def test_one_line_turns_every_line_break_into_a_space(text, expected):
    assert one_line(text) == expected


def test_one_line_takes_an_exception():
    exc = OSError(2, "No such file\nor directory")
    assert one_line(exc) == "[Errno 2] No such file or directory"


def test_quote_is_short_for_hostile_values():
    assert quote("abc") == "'abc'"
    assert len(quote("x" * 20_000_000)) < 100
    assert len(quote(list(range(100_000)))) < 100
    assert quote(1 << 40_000) == "<an integer of 40001 bits>"


def test_error_types_keep_their_builtin_bases():
    # tools map ValueError/OSError to exit 2 and CheckpointError to exit 1; callers catch these bases
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)
    assert issubclass(CheckpointFormatError, ValueError)
    assert issubclass(CheckpointMismatchError, RuntimeError)
    for cls in (CheckpointNotFoundError, CheckpointFormatError, UnsafeCheckpointError, CheckpointMismatchError):
        assert issubclass(cls, CheckpointError)
    assert not issubclass(UnsafeCheckpointError, ValueError)


def test_every_exported_name_is_defined_here():
    for name in errors.__all__:
        assert getattr(errors, name).__module__ == "segnext_jt.errors", name
