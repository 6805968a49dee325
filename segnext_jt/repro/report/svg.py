"""Minimal SVG 1.1 plots built as strings (no plotting library): line plots, strip plots with a
mean ± CI and a reference band, and histograms. Every function returns the SVG text; use
:func:`write_svg` to save it. NaN points break a line instead of being drawn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union
from xml.sax.saxutils import escape

import numpy as np

from segnext_jt.files import write_text_atomic

__all__ = ["Series", "StripGroup", "PALETTE", "nice_ticks", "line_plot", "strip_plot",
           "histogram", "write_svg"]

# Tableau 10: distinguishable and colour-blind tolerant.
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]
REFERENCE_COLOR = "#d62728"
BAND_COLOR = "#fdd0a2"

_MARGIN_LEFT, _MARGIN_TOP, _MARGIN_BOTTOM = 72, 42, 56


@dataclass
class Series:
    """One line of a line plot."""
    name: str
    x: Sequence[float]
    y: Sequence[float]
    color: Optional[str] = None
    dashed: bool = False
    width: float = 1.5
    markers: bool = False


@dataclass
class StripGroup:
    """One column of a strip plot: per-seed values, optional point labels, mean and CI."""
    name: str
    values: Sequence[float]
    labels: Optional[Sequence[str]] = None
    ci: Optional[tuple[float, float]] = None
    color: Optional[str] = None
    extra_lines: list[str] = field(default_factory=list)  # shown under the column name


# ------------------------------------------------------------------------------------------------
# primitives
# ------------------------------------------------------------------------------------------------
def _n(v: float) -> str:
    """Compact coordinate."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, s: str, size: int = 12, anchor: str = "middle",
          rotate: Optional[float] = None, weight: str = "normal", fill: str = "#222") -> str:
    rot = f' transform="rotate({_n(rotate)} {_n(x)} {_n(y)})"' if rotate is not None else ""
    bold = ' font-weight="bold"' if weight != "normal" else ""
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}"{bold}{rot}>{escape(s)}</text>')


def _line(x1: float, y1: float, x2: float, y2: float, color: str = "#222", width: float = 1.0,
          dash: Optional[str] = None) -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{color}" '
            f'stroke-width="{_n(width)}"{d}/>')


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    head = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, '
            'sans-serif">\n'
            f'<title>{escape(title)}</title>\n'
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>\n')
    return head + "\n".join(body) + "\n</svg>\n"


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (steps 1, 2, 2.5 or 5 × 10^k) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(target - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_label(v: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(v) or 1.0
    if max(abs(t) for t in ticks) >= 10000 and step >= 1000:
        return f"{v / 1000:g}k"  # iterations: 160000 -> 160k
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if step * 10 ** decimals % 1 > 1e-6:  # steps like 2.5 need one more decimal
        decimals += 1
    return f"{v:.{decimals}f}"


class _Frame:
    """Maps data coordinates to pixels inside the plot area and draws axes."""

    def __init__(self, width: int, height: int, right: int, xlim: tuple[float, float],
                 ylim: tuple[float, float]) -> None:
        self.px0, self.px1 = _MARGIN_LEFT, width - right
        self.py0, self.py1 = height - _MARGIN_BOTTOM, _MARGIN_TOP  # py0 = bottom
        self.xlim, self.ylim = xlim, ylim

    def x(self, v: float) -> float:
        lo, hi = self.xlim
        return self.px0 + (v - lo) / (hi - lo) * (self.px1 - self.px0)

    def y(self, v: float) -> float:
        lo, hi = self.ylim
        return self.py0 - (v - lo) / (hi - lo) * (self.py0 - self.py1)

    def axes(self, xticks: Sequence[float], yticks: Sequence[float], xlabel: str, ylabel: str,
             title: str, xtick_labels: Optional[Sequence[str]] = None) -> list[str]:
        out = [f'<rect x="{_n(self.px0)}" y="{_n(self.py1)}" width="{_n(self.px1 - self.px0)}" '
               f'height="{_n(self.py0 - self.py1)}" fill="none" stroke="#444" stroke-width="1"/>']
        for i, t in enumerate(xticks):
            px = self.x(t)
            out.append(_line(px, self.py0, px, self.py1, "#e6e6e6", 1))
            out.append(_line(px, self.py0, px, self.py0 + 5, "#444", 1))
            label = xtick_labels[i] if xtick_labels is not None else _tick_label(t, xticks)
            out.append(_text(px, self.py0 + 18, label, 11))
        for t in yticks:
            py = self.y(t)
            out.append(_line(self.px0, py, self.px1, py, "#e6e6e6", 1))
            out.append(_line(self.px0 - 5, py, self.px0, py, "#444", 1))
            out.append(_text(self.px0 - 8, py + 4, _tick_label(t, yticks), 11, anchor="end"))
        mid_x = (self.px0 + self.px1) / 2
        out.append(_text(mid_x, self.py0 + 42, xlabel, 13))
        mid_y = (self.py0 + self.py1) / 2
        out.append(_text(18, mid_y, ylabel, 13, rotate=-90))
        out.append(_text(mid_x, 24, title, 15, weight="bold"))
        return out


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def _limits(values: np.ndarray, pad_frac: float = 0.05) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * pad_frac
    return lo - pad, hi + pad


def _expand_to_ticks(lim: tuple[float, float], target: int = 6) -> tuple[tuple[float, float],
                                                                         list[float]]:
    ticks = nice_ticks(lim[0], lim[1], target)
    return lim, [t for t in ticks if lim[0] - 1e-12 <= t <= lim[1] + 1e-12]


def _legend(entries: Sequence[tuple[str, str, bool, float, bool]], x: float, y: float) -> list[str]:
    """entries: (label, color, dashed, width, is_marker)."""
    out = []
    for i, (label, color, dashed, width, marker) in enumerate(entries):
        yy = y + i * 18
        if marker:
            out.append(f'<circle cx="{_n(x + 11)}" cy="{_n(yy)}" r="4" fill="{color}"/>')
        else:
            out.append(_line(x, yy, x + 22, yy, color, width, "7,4" if dashed else None))
        out.append(_text(x + 28, yy + 4, label, 11, anchor="start"))
    return out


def _no_data(width: int, height: int, title: str) -> str:
    return _svg(width, height, [_text(width / 2, 24, title, 15, weight="bold"),
                                _text(width / 2, height / 2, "no data", 14, fill="#888")], title)


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------
def line_plot(series: Sequence[Series], title: str, xlabel: str, ylabel: str,
              width: int = 780, height: int = 440, xlim: Optional[tuple[float, float]] = None,
              ylim: Optional[tuple[float, float]] = None) -> str:
    """Several series against a shared x axis, legend on the right."""
    xs = _finite(np.concatenate([np.asarray(s.x, dtype=np.float64) for s in series])) \
        if series else np.zeros(0)
    ys = _finite(np.concatenate([np.asarray(s.y, dtype=np.float64) for s in series])) \
        if series else np.zeros(0)
    if xs.size == 0 or ys.size == 0:
        return _no_data(width, height, title)
    legend_w = min(230, 40 + 7 * max(len(s.name) for s in series))
    xl = xlim or _limits(xs, 0.0)
    yl = ylim or _limits(ys)
    xl, xticks = _expand_to_ticks(xl)
    yl, yticks = _expand_to_ticks(yl)
    fr = _Frame(width, height, legend_w + 16, xl, yl)
    body = fr.axes(xticks, yticks, xlabel, ylabel, title)
    # clip so that user-given limits cannot draw outside the frame
    body.append(f'<clipPath id="plotarea"><rect x="{_n(fr.px0)}" y="{_n(fr.py1)}" '
                f'width="{_n(fr.px1 - fr.px0)}" height="{_n(fr.py0 - fr.py1)}"/></clipPath>')
    body.append('<g clip-path="url(#plotarea)">')
    entries = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        x = np.asarray(s.x, dtype=np.float64)
        y = np.asarray(s.y, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"line_plot: series '{s.name}' has {x.size} x and {y.size} y values")
        parts, pen_down = [], False
        for xv, yv in zip(x, y):
            if not (math.isfinite(xv) and math.isfinite(yv)):
                pen_down = False
                continue
            parts.append(f"{'L' if pen_down else 'M'}{_n(fr.x(xv))} {_n(fr.y(yv))}")
            pen_down = True
        dash = ' stroke-dasharray="8,5"' if s.dashed else ""
        if parts:
            body.append(f'<path d="{" ".join(parts)}" fill="none" stroke="{color}" '
                        f'stroke-width="{_n(s.width)}" stroke-linejoin="round"{dash}>'
                        f'<title>{escape(s.name)}</title></path>')
        if s.markers:
            for xv, yv in zip(x, y):
                if math.isfinite(xv) and math.isfinite(yv):
                    body.append(f'<circle cx="{_n(fr.x(xv))}" cy="{_n(fr.y(yv))}" r="3" '
                                f'fill="{color}"><title>{escape(s.name)}: {xv:g}, {yv:.4g}'
                                f'</title></circle>')
        entries.append((s.name, color, s.dashed, s.width, False))
    body.append("</g>")
    body.extend(_legend(entries, fr.px1 + 14, fr.py1 + 8))
    return _svg(width, height, body, title)


def strip_plot(groups: Sequence[StripGroup], title: str, ylabel: str,
               reference: Optional[float] = None,
               reference_range: Optional[tuple[float, float]] = None,
               reference_label: str = "reference", width: int = 560, height: int = 440,
               point_label: str = "per-seed value") -> str:
    """Per-seed dots per group, the mean as a bar, its CI as an error bar, and an optional
    shaded reference range with a dashed reference line."""
    vals = [_finite(g.values) for g in groups]
    pool = [v for v in vals if v.size]
    if not pool:
        return _no_data(width, height, title)
    everything = list(np.concatenate(pool))
    for g in groups:
        if g.ci is not None:
            everything += [c for c in g.ci if c is not None and math.isfinite(c)]
    if reference is not None:
        everything.append(reference)
    if reference_range is not None:
        everything += list(reference_range)
    yl, yticks = _expand_to_ticks(_limits(np.asarray(everything), 0.08), target=8)
    right = 160
    fr = _Frame(width, height, right, (0.0, float(len(groups))), yl)
    body = fr.axes([], yticks, "", ylabel, title)
    entries = []
    if reference_range is not None:
        lo, hi = sorted(reference_range)
        body.append(f'<rect x="{_n(fr.px0)}" y="{_n(fr.y(hi))}" width="{_n(fr.px1 - fr.px0)}" '
                    f'height="{_n(max(fr.y(lo) - fr.y(hi), 0.5))}" fill="{BAND_COLOR}" '
                    f'fill-opacity="0.55"><title>reference range {lo:g}–{hi:g}</title></rect>')
        entries.append((f"ref. range {lo:g}–{hi:g}", BAND_COLOR, False, 8.0, False))
    if reference is not None:
        body.append(_line(fr.px0, fr.y(reference), fr.px1, fr.y(reference), REFERENCE_COLOR, 2,
                          "7,4"))
        entries.append((f"{reference_label} {reference:g}", REFERENCE_COLOR, True, 2.0, False))
    for i, (g, v) in enumerate(zip(groups, vals)):
        color = g.color or PALETTE[i % len(PALETTE)]
        cx = fr.x(i + 0.5)
        body.append(_text(cx, fr.py0 + 18, g.name, 12, weight="bold"))
        for j, line in enumerate(g.extra_lines):
            body.append(_text(cx, fr.py0 + 32 + 12 * j, line, 10, fill="#555"))
        raw = np.asarray(g.values, dtype=np.float64).ravel()
        labels = list(g.labels) if g.labels is not None else [""] * raw.size
        finite_idx = [k for k in range(raw.size) if math.isfinite(raw[k])]
        m = len(finite_idx)
        for rank, k in enumerate(finite_idx):
            # deterministic horizontal spread so that equal values stay visible
            dx = (rank - (m - 1) / 2) * min(12.0, 70.0 / max(m, 1))
            px, py = cx - 30 + dx, fr.y(raw[k])
            tip = f"{labels[k]}: {raw[k]:.2f}" if labels[k] else f"{raw[k]:.2f}"
            body.append(f'<circle cx="{_n(px)}" cy="{_n(py)}" r="4.5" fill="{color}" '
                        f'fill-opacity="0.85" stroke="white" stroke-width="0.8">'
                        f'<title>{escape(tip)}</title></circle>')
            if labels[k] and m <= 12:
                body.append(_text(px - 7, py + 3.5, labels[k], 9, anchor="end", fill="#555"))
        if v.size:
            mean = float(v.mean())
            mx = cx + 28
            if g.ci is not None and all(c is not None and math.isfinite(c) for c in g.ci):
                lo, hi = g.ci
                body.append(_line(mx, fr.y(lo), mx, fr.y(hi), "#222", 1.5))
                body.append(_line(mx - 6, fr.y(lo), mx + 6, fr.y(lo), "#222", 1.5))
                body.append(_line(mx - 6, fr.y(hi), mx + 6, fr.y(hi), "#222", 1.5))
            body.append(f'<rect x="{_n(mx - 12)}" y="{_n(fr.y(mean) - 1.5)}" width="24" '
                        f'height="3" fill="#222"><title>mean {mean:.2f}</title></rect>')
    entries.append((point_label, groups[0].color or PALETTE[0], False, 1.0, True))
    has_ci = any(g.ci is not None for g in groups)
    entries.append(("mean ± 95% CI" if has_ci else "mean", "#222", False, 3.0, False))
    body.extend(_legend(entries, fr.px1 + 14, fr.py1 + 8))
    return _svg(width, height, body, title)


def histogram(values: Sequence[float], title: str, xlabel: str,
              bins: Union[int, Sequence[float], None] = None, reference: Optional[float] = None,
              reference_range: Optional[tuple[float, float]] = None,
              reference_label: str = "reference", width: int = 640, height: int = 400) -> str:
    """Counts per bin; ``bins`` defaults to max(5, ceil(sqrt(n))) equal bins."""
    v = _finite(values)
    if v.size == 0:
        return _no_data(width, height, title)
    if bins is None:
        bins = max(5, math.ceil(math.sqrt(v.size)))
    lo, hi = (float(v.min()), float(v.max()))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=bins, range=None if not isinstance(bins, int)
                                 else (lo, hi))
    x_all = [edges[0], edges[-1]]
    if reference is not None:
        x_all.append(reference)
    if reference_range is not None:
        x_all += list(reference_range)
    xl, xticks = _expand_to_ticks(_limits(np.asarray(x_all, dtype=np.float64), 0.04))
    ymax = float(counts.max())
    yl, yticks = _expand_to_ticks((0.0, ymax * 1.1 if ymax > 0 else 1.0))
    yticks = [t for t in yticks if float(t).is_integer()] or [0.0]
    right = 160 if reference is not None or reference_range is not None else 24
    fr = _Frame(width, height, right, xl, yl)
    body = fr.axes(xticks, yticks, xlabel, "count", title)
    entries = []
    if reference_range is not None:
        a, b = sorted(reference_range)
        band_w = max(fr.x(b) - fr.x(a), 0.5)
        body.append(f'<rect x="{_n(fr.x(a))}" y="{_n(fr.py1)}" width="{_n(band_w)}" '
                    f'height="{_n(fr.py0 - fr.py1)}" fill="{BAND_COLOR}" fill-opacity="0.55"/>')
        entries.append((f"ref. range {a:g}–{b:g}", BAND_COLOR, False, 8.0, False))
    for c, e0, e1 in zip(counts, edges[:-1], edges[1:]):
        if c == 0:
            continue
        body.append(f'<rect x="{_n(fr.x(e0))}" y="{_n(fr.y(c))}" width="{_n(fr.x(e1) - fr.x(e0))}" '
                    f'height="{_n(fr.py0 - fr.y(c))}" fill="{PALETTE[0]}" fill-opacity="0.8" '
                    f'stroke="white"><title>{e0:.3g}–{e1:.3g}: {int(c)}</title></rect>')
    if reference is not None:
        body.append(_line(fr.x(reference), fr.py0, fr.x(reference), fr.py1, REFERENCE_COLOR, 2,
                          "7,4"))
        entries.append((f"{reference_label} {reference:g}", REFERENCE_COLOR, True, 2.0, False))
    body.extend(_legend(entries, fr.px1 + 14, fr.py1 + 8))
    return _svg(width, height, body, title)


def write_svg(path: Union[str, Path], svg: str) -> Path:
    p = Path(path)
    write_text_atomic(p, svg)  # whole or not at all (an interrupted report leaves no torn SVG)
    return p
