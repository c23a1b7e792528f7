"""Small formatting helpers shared by the TUI and the CLI (no textual/rich imports here)."""

from __future__ import annotations

import math

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_bytes(n: int | float | None) -> str:
    """``1234567`` → ``'1.2 MB'`` (decimal units, as ``ls -h --si`` and disk vendors)."""
    if n is None:
        return "?"
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in _UNITS:
        if n < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{sign}{int(n)} B"
            return f"{sign}{n:.1f} {unit}" if n < 100 else f"{sign}{n:.0f} {unit}"
        n /= 1000
    return f"{sign}{n:.0f} PB"  # pragma: no cover - loop always returns


def human_count(n: int | None) -> str:
    """Parameter counts: ``561_000_000`` → ``'561M'``, ``12_345`` → ``'12.3K'``."""
    if n is None:
        return "?"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}{suffix}" if v < 100 else f"{v:.0f}{suffix}"
    return str(n)


def human_age(seconds: float | None) -> str:
    """A short age: ``'now'``, ``'42s'``, ``'5m'``, ``'3h'``, ``'12d'``, ``'2y'``."""
    if seconds is None or math.isnan(seconds):
        return "?"
    s = max(0.0, seconds)
    if s < 5:
        return "now"
    for div, suffix in ((365 * 86400, "y"), (86400, "d"), (3600, "h"), (60, "m")):
        if s >= div:
            return f"{int(s // div)}{suffix}"
    return f"{int(s)}s"


def fmt_metric(v: float | None, digits: int = 4) -> str:
    """A metric value, or ``'-'`` for missing, ``'inf'``/``'nan'`` spelled out."""
    if v is None:
        return "-"
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def ellipsize(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: cut with an ellipsis (…) when longer."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


def fmt_duration(seconds: float | None) -> str:
    """Training time: ``'1h 02m'``, ``'3m 05s'``, ``'12s'``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {sec:02d}s"
    return f"{sec}s"


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], width: int | None = None) -> str:
    """A one-line block sparkline; missing or non-finite values are blanks.

    With ``width`` smaller than the number of values, values are bucketed (mean per bucket).
    """
    if width is not None and width > 0 and len(values) > width:
        buckets: list[float | None] = []
        for i in range(width):
            lo, hi = i * len(values) // width, (i + 1) * len(values) // width
            chunk = [v for v in values[lo:hi] if v is not None and math.isfinite(v)]
            buckets.append(sum(chunk) / len(chunk) if chunk else None)
        values = buckets
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    span = hi - lo
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif span == 0:
            out.append(_SPARK[len(_SPARK) // 2])
        else:
            out.append(_SPARK[min(len(_SPARK) - 1, int((v - lo) / span * len(_SPARK)))])
    return "".join(out)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, 'step')`` → ``'1 step'``, ``plural(6000, 'step')`` → ``'6,000 steps'``;
    ``many`` for irregular words (``plural(n, 'entry', 'entries')``)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def human_span(seconds: float | None) -> str:
    """A time between two events: ``'0.4 s'``, ``'3 s'``, ``'12 min'``, ``'5 h'``, ``'3 days'``
    (``human_age`` says ``'now'`` below 5 s: right for an age, wrong for a gap)."""
    if seconds is None or math.isnan(seconds):
        return "?"
    s = abs(seconds)
    if s < 1:
        return "0 s" if s == 0 else f"{s:.1f} s"
    if s < 120:
        return f"{round(s)} s"
    if s < 120 * 60:
        return f"{round(s / 60)} min"
    if s < 48 * 3600:
        return f"{round(s / 3600)} h"
    return f"{round(s / 86400)} days"
