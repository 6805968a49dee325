"""Small shared pieces of the report's renderers: number formats, mode names, and the list of
figures a rendering produces (written to files only by repro/report.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MODE_LABEL = {"ss": "single-scale", "msflip": "ms+flip"}


def fmt(v: Any, spec: str = ".2f") -> str:
    """A number for a table cell; None and NaN are an en dash."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


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
