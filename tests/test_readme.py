"""The README's claims about the tree: its Layout section lists every module and script, and every
file it names exists."""
from __future__ import annotations

import re

from helpers import ROOT


def _layout_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3:section.index("```", section.index("```") + 3)]


def test_layout_lists_every_module_and_script():
    listed = set(re.findall(r"([A-Za-z_0-9]+)\.py", _layout_block()))
    wanted = [p for folder in ("segnext_jt", "tools", "repro", "bench") for p in (ROOT / folder).rglob("*.py")
              if p.name != "__init__.py" and "__pycache__" not in p.parts]
    missing = sorted(str(p.relative_to(ROOT)) for p in wanted if p.stem not in listed)
    assert not missing, f"README Layout does not list: {missing}"


def test_every_file_the_layout_names_exists():
    names = set(re.findall(r"([A-Za-z_0-9]+\.py)", _layout_block()))
    existing = {p.name for p in ROOT.rglob("*.py") if ".venv" not in p.parts}
    assert not names - existing, f"README Layout names files that do not exist: {sorted(names - existing)}"
    for folder in ("models", "data", "engine", "evaluation", "io"):
        assert f"  {folder}/" in _layout_block() and (ROOT / "segnext_jt" / folder).is_dir()
