"""Small shared pieces of the report's renderers: number formats, protocol names, and the list of
figures a rendering produces (written to files only by repro/report.py)."""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_LABEL = {"ss": "single-scale", "msflip": "ms+flip"}


def fmt(v: Any, spec: str = ".2f") -> str:
    """A number for a table cell; None and NaN are an en dash."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # inline syntax; values never start a line
_MD_TEXT_LIMIT = 300


def md_text(value: Any, limit: int = _MD_TEXT_LIMIT) -> str:
    """A value from an input file (a class name, a path, a label, a warning) as literal Markdown
    text, safe in a table cell: HTML is escaped (`<script>`, `<!--` render as text), Markdown
    punctuation is backslash-escaped (`a|b` stays one cell, `*x*` is not emphasis), line breaks
    become spaces and very long values are shortened."""
    text = " ".join(str(value).splitlines())
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text):,} characters)"
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def md_code(value: Any, limit: int = _MD_TEXT_LIMIT) -> str:
    """A path or name as an inline code span that no backtick in it can end early (CommonMark:
    the fence is one backtick longer than the longest run inside). HTML is not interpreted in
    code spans; a `|` would still split a table cell, so use md_text in tables."""
    text = " ".join(str(value).splitlines())
    if len(text) > limit:
        text = text[:limit] + "…"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fmt_cost(v: float) -> str:
    """Costs span 0.02 (one eval, default unit) to 1e5 (seconds): 3 significant digits, no
    exponent."""
    if not math.isfinite(v):
        return "–"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


@dataclass
class Figures:
    """SVG figures in the order the Markdown shows them: (file name, SVG text)."""
    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, svg: str) -> str:
        self.items.append((name, svg))
        return name

    def image(self, alt: str, name: str, svg: str) -> str:
        """Add a figure; return its Markdown image line."""
        return f"![{alt}]({self.add(name, svg)})"

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.items]
