"""Formatting helpers and the line charts."""

from __future__ import annotations

import math

from nanochat_ckpt_tui.fmt import (
    fmt_duration,
    fmt_metric,
    human_age,
    human_bytes,
    human_count,
    sparkline,
)
from nanochat_ckpt_tui.tui.plot import line_chart


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(999) == "999 B"
    assert human_bytes(1234) == "1.2 kB"
    assert human_bytes(290_123) == "290 kB"
    assert human_bytes(1_120_000_000) == "1.1 GB"
    assert human_bytes(3.2e15) == "3.2 PB"
    assert human_bytes(None) == "?"


def test_human_count_age_metric_duration() -> None:
    assert human_count(82_002) == "82.0K"
    assert human_count(561_000_000) == "561M"
    assert human_count(1_580_000_000) == "1.6B"
    assert human_count(7) == "7"
    assert human_age(2) == "now"
    assert human_age(42) == "42s"
    assert human_age(3 * 3600 + 5) == "3h"
    assert human_age(12 * 86400) == "12d"
    assert human_age(-5) == "now"  # clock skew: never negative
    assert fmt_metric(None) == "-" and fmt_metric(math.inf) == "inf"
    assert fmt_metric(float("nan")) == "nan" and fmt_metric(0.82971) == "0.8297"
    assert fmt_duration(3725) == "1h 02m" and fmt_duration(65) == "1m 05s"
    assert fmt_duration(math.inf) == "-"


def test_sparkline() -> None:
    assert sparkline([1, 2, 3, 4]) == "▁▃▆█"
    assert sparkline([1.0, None, math.inf, 1.0]) == "▅  ▅"
    assert len(sparkline(list(range(100)), width=10)) == 10


def test_chart_has_axes_ticks_and_a_falling_line() -> None:
    """plotext draws the frame, y ticks and step ticks; a falling metric falls."""
    text = line_chart("val_bpb", [(0, 1.0), (5, 0.5), (10, 0.0)], width=40, height=4).plain
    lines = text.splitlines()
    assert "┌" in lines[1] and "└" in lines[-2]  # the frame
    plot = [ln.split("┤", 1)[1] for ln in lines if "┤" in ln]
    assert len(plot) == 4
    assert plot[0].strip("│ ")[:1] != "" and plot[0].index(plot[0].strip()[0]) < 3  # top left
    assert plot[-1].rstrip("│ ")[-1:] != "" and len(plot[-1].rstrip("│ ")) > 30  # bottom right
    assert lines[-1].split() == ["0", "2", "5", "8", "10"]  # whole-step ticks


def test_line_chart_labels_and_missing_values() -> None:
    text = line_chart("val_bpb", [(500, 1.2), (1000, None), (1500, 0.9), (2000, math.inf)],
                      width=40, height=4).plain
    assert "val_bpb" in text and "1.200┤" in text and "last 0.9000" in text  # y ticks: plotext
    assert "500" in text and "1500" in text and "(2 points)" in text
    assert "no values recorded" in line_chart("x", [(1, None)], width=40).plain
