"""segnext_jt/repro/report/svg.py: the SVG plots parse as SVG 1.1, NaNs break lines, empty inputs. No Jittor."""
from __future__ import annotations

import pytest

from helpers import parse_svg

from segnext_jt.repro.report import svg as plots


def test_svg_plots_parse():
    nan = float("nan")
    line = plots.line_plot([plots.Series("seed <0> & co", [0, 50, 100, 150], [2.0, nan, 1.5, 1.2]),
                            plots.Series("official", [0, 150], [2.1, 1.1], dashed=True, width=3,
                                         markers=True)], "loss <title>", "iteration", "loss")
    root = parse_svg(line)
    paths = root.findall(".//{http://www.w3.org/2000/svg}path")
    assert len(paths) == 2 and paths[0].get("d").count("M") == 2  # NaN breaks the line
    assert paths[1].get("stroke-dasharray")
    strip = plots.strip_plot([plots.StripGroup("ss", [50.1, 49.8, 50.5], ["0", "1", "2"],
                                               ci=(49.5, 50.9))], "strip", "mIoU", 50.99,
                             (49.6, 51.0))
    assert len(parse_svg(strip).findall(".//{http://www.w3.org/2000/svg}circle")) >= 3
    parse_svg(plots.histogram([1, 2, 2, 3, 4, 4, 4], "hist", "mIoU", reference=2.5,
                               reference_range=(2, 3)))
    parse_svg(plots.histogram([5.0], "one value", "x"))
    assert "no data" in plots.line_plot([], "empty", "x", "y")
    parse_svg(plots.strip_plot([plots.StripGroup("e", [])], "empty", "y"))
    assert plots.nice_ticks(0, 160000) == [0, 50000, 100000, 150000]
    assert plots.nice_ticks(49.6, 51.0, 8) == pytest.approx([49.6, 49.8, 50.0, 50.2, 50.4, 50.6,
                                                             50.8, 51.0])
