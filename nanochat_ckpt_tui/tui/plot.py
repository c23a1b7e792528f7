"""A small braille line chart for metrics over steps (pure text, no widget)."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text

from ..fmt import fmt_metric

# braille dot bits by (row within the cell, column within the cell)
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_LABEL_W = 8


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """Bresenham's line between two canvas dots."""
    pts = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        pts.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return pts
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def braille_rows(points: list[tuple[float, float]], width: int, height: int,
                 x_range: tuple[float, float], y_range: tuple[float, float]) -> list[str]:
    """Rows of braille characters drawing ``points`` (x, y) joined by lines."""
    cols, rows = width * 2, height * 4
    grid = [[0] * width for _ in range(height)]
    (x_lo, x_hi), (y_lo, y_hi) = x_range, y_range
    x_span, y_span = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0

    def to_dot(x: float, y: float) -> tuple[int, int]:
        cx = round((x - x_lo) / x_span * (cols - 1))
        cy = rows - 1 - round((y - y_lo) / y_span * (rows - 1)) if y_hi != y_lo else rows // 2
        return min(max(cx, 0), cols - 1), min(max(cy, 0), rows - 1)

    dots = [to_dot(x, y) for x, y in points]
    segments = list(zip(dots, dots[1:], strict=False)) or [(d, d) for d in dots]
    for (x0, y0), (x1, y1) in segments:
        for cx, cy in _line(x0, y0, x1, y1):
            grid[cy // 4][cx // 2] |= _DOTS[cy % 4][cx % 2]
    return ["".join(chr(0x2800 + b) if b else " " for b in row) for row in grid]


def line_chart(title: str, points: list[tuple[float, float | None]], width: int,
               height: int = 5, style: Style | str = "", digits: int = 4) -> Text:
    """A titled chart: y labels (max/min) on the left, first/last x under the plot.

    Points with a missing or non-finite y are skipped; with none left, one line says so.
    """
    good = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
    out = Text()
    out.append(title, style="bold")
    if not good:
        out.append("  no values recorded", style="dim")
        return out
    ys = [y for _, y in good]
    xs = [x for x, _ in good]
    lo, hi = min(ys), max(ys)
    out.append(f"  last {fmt_metric(good[-1][1], digits)}  min {fmt_metric(lo, digits)}"
               f"  ({len(good)} points)", style="dim")
    plot_w = max(8, width - _LABEL_W - 2)
    rows = braille_rows(good, plot_w, height, (min(xs), max(xs)), (lo, hi))
    for i, row in enumerate(rows):
        label = fmt_metric(hi, digits) if i == 0 else fmt_metric(lo, digits) \
            if i == height - 1 else ""
        out.append("\n")
        out.append(f"{label:>{_LABEL_W}} ", style="dim")
        out.append("┤" if label else "│", style="dim")
        out.append(row, style=style)
    first, last = f"{min(xs):g}", f"{max(xs):g}"
    gap = max(1, plot_w - len(first) - len(last) + 1)
    out.append("\n" + " " * (_LABEL_W + 1) + first + " " * gap + last, style="dim")
    return out
