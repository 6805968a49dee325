"""tests/README.md's claim about the tests: every module of segnext_jt/ has its mirror test file or a
row in the README's table saying which tests cover it, and every row names things that exist."""
from __future__ import annotations

import re

from helpers import ROOT

TESTS = ROOT / "tests"
PACKAGE = ROOT / "segnext_jt"


def _modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                  if p.name != "__init__.py" and "__pycache__" not in p.parts)


def _mirror_exists(module: str) -> bool:
    """segnext_jt/<area>/.../<m>.py: tests/<area>/**/test_<m>.py; segnext_jt/<m>.py: tests/test_<m>.py."""
    parts = module.split("/")[1:]
    test_name = f"test_{parts[-1]}"
    if len(parts) == 1:
        return (TESTS / test_name).is_file()
    return any((TESTS / parts[0]).rglob(test_name))


def _table() -> dict[str, list[str]]:
    """module -> the test files its row names."""
    rows = {}
    for line in (TESTS / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`segnext_jt/"):
            rows[cells[0].strip("`")] = re.findall(r"`(tests/[^`]+\.py)`", cells[1])
    return rows


def test_every_module_has_a_mirror_test_or_a_row_in_the_readme():
    rows = _table()
    missing = [m for m in _modules() if not _mirror_exists(m) and m not in rows]
    assert not missing, (f"{missing}: no tests/<area>/test_<module>.py; add one, or a row in tests/README.md's "
                         f"table naming the tests that cover the module")


def test_every_row_names_an_unmirrored_module_and_existing_tests():
    rows = _table()
    assert len(rows) >= 10, "tests/README.md's table was not found"
    modules = set(_modules())
    gone = [m for m in rows if m not in modules]
    assert not gone, f"tests/README.md lists modules that do not exist (moved or renamed?): {gone}"
    mirrored = [m for m in rows if _mirror_exists(m)]
    assert not mirrored, f"tests/README.md lists modules that now have their own test file: {mirrored}"
    for module, tests in rows.items():
        assert tests, f"tests/README.md: the row of {module} names no test file"
        absent = [t for t in tests if not (ROOT / t).is_file()]
        assert not absent, f"tests/README.md: the row of {module} names missing test files {absent}"
