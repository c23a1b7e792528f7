"""The tree's filter, without the app: the rows it lets through."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.tui.tree_filter import filter_view, matches, parse_filter


@pytest.mark.parametrize("text", ["d4", "D4 1500", "@", "@15", "2000", ">1000", "d4 <=1500",
                                  "base 4", "mid", "legacy", "zz", "d6 @12 >100", "=200",
                                  "rl d4 @1"])
def test_filter_rows_are_those_every_step_is_matched_for(demo_master: Path, text: str) -> None:
    """The filter settles whole tags by their names where it can (a word in the names holds
    for every step, a word that is no number for none): the rows are still exactly the steps
    ``matches`` keeps, asked step by step."""
    cat = scan(demo_master)
    shown, counts, _ = filter_view(cat, text)
    terms = parse_filter(text)
    want = {}
    for stage in cat.stages:
        for tag in stage.tags:
            hay = f"{stage.label} {stage.dirname} {tag.name}".lower()
            keys = [c.key for c in tag.checkpoints if matches(terms, hay, c)]
            if keys:
                want[f"{tag.stage}/{tag.name}"] = keys
    assert {k: v for k, v in counts.items() if v} == {k: len(v) for k, v in want.items()}
    assert shown is not None
    assert {k for k in shown if "@" in k} == {k for v in want.values() for k in v}
