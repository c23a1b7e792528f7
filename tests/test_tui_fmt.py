"""Formatting helpers and the braille chart."""

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
from nanochat_ckpt_tui.tui.plot import braille_rows, line_chart


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


def test_braille_chart_draws_a_falling_line() -> None:
    rows = braille_rows([(0, 1.0), (10, 0.0)], width=10, height=3, x_range=(0, 10),
                        y_range=(0.0, 1.0))
    assert len(rows) == 3 and all(len(r) == 10 for r in rows)
    assert rows[0][0] != " " and rows[0][-1] == " "  # starts top left
    assert rows[-1][-1] != " " and rows[-1][0] == " "  # ends bottom right


def test_line_chart_labels_and_missing_values() -> None:
    text = line_chart("val_bpb", [(500, 1.2), (1000, None), (1500, 0.9), (2000, math.inf)],
                      width=40, height=4).plain
    assert "val_bpb" in text and "1.2000" in text and "0.9000" in text
    assert "500" in text and "1500" in text and "(2 points)" in text
    assert "no values recorded" in line_chart("x", [(1, None)], width=40).plain
