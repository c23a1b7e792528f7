"""Line charts for metrics over steps: plotext (through Textualize's textual-plotext, the kept
library for plots in Textual apps) draws the axes, tick labels and braille lines; the result is
a Rich Text that the detail pane lays out with its other renderables."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text

from ..fmt import fmt_metric, plural


def line_chart(title: str, points: list[tuple[float, float | None]], width: int,
               height: int = 5, style: Style | str = "", digits: int = 4) -> Text:
    """A titled chart: the last and best values, then plotext's chart of ``height`` rows with
    y ticks on the left and step ticks below. Points with a missing or non-finite y are
    skipped; with none left, one line says so."""
    good = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
    out = Text()
    out.append(title, style="bold")
    if not good:
        out.append("  no values recorded", style="dim")
        return out
    lo = min(y for _, y in good)
    out.append(f"  last {fmt_metric(good[-1][1], digits)}  min {fmt_metric(lo, digits)}"
               f"  ({plural(len(good), 'point')})", style="dim")
    return out.append("\n").append_text(_plotext(good, width, height, style))


def _plotext(points: list[tuple[float, float]], width: int, height: int,
             style: Style | str) -> Text:
    """The chart drawn by plotext: y ticks on the left, x ticks (steps) below."""
    from textual_plotext.plot import Plot

    plt = Plot()
    plt.theme("clear")  # no background: the pane's own shows through
    plt.plotsize(max(20, width), height + 3)  # + frame and the x tick row
    xs, ys = [x for x, _ in points], [y for _, y in points]
    plt.plot(xs, ys, marker="braille")
    if len(set(xs)) > 1:
        plt.xticks(_ticks(min(xs), max(xs)))
    chart = Text.from_ansi(plt.build().rstrip())
    if style:
        chart.stylize(style)
    return chart


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """A few whole-step ticks from the first to the last step."""
    return sorted({round(lo + (hi - lo) * i / n) for i in range(n + 1)})
