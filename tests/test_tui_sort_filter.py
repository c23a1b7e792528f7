"""Sort (one meaning for the arrow, s cycles keys, S reverses) and filter (matches expanded
and counted) on the demo data (issue 14, items 6 and 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_tui_app import many_steps

from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.help import HelpScreen
from nanochat_ckpt_tui.tui.status import StatusBar
from nanochat_ckpt_tui.tui.testing import settle
from nanochat_ckpt_tui.tui.tree import SORT_KEYS, CheckpointTree

pytestmark = pytest.mark.asyncio
SIZE = (120, 40)
README = Path(__file__).parent.parent / "README.md"


def make_app(base: Path, **kw: object) -> CkptApp:
    return CkptApp(base, watch=False, display_name="demo", **kw)  # type: ignore[arg-type]


def steps_of(tree: CheckpointTree, tag: str) -> list[int]:
    return [int(k.rsplit("@", 1)[1]) for k in tree.visible_keys()
            if k.startswith(f"base_checkpoints/{tag}@")]


def status(app: CkptApp) -> str:
    return app.query_one(StatusBar).text


async def test_arrow_means_ascending_for_every_key(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        tree.focus()
        cat = app.catalog
        assert cat is not None
        d6 = cat.stage("base").tag("d6")
        size = {c.step: c.total_bytes for c in d6.checkpoints}
        mtime = {c.step: c.mtime for c in d6.checkpoints}
        seen = []
        for _ in SORT_KEYS:  # s cycles the keys, each in its natural direction
            seen.append(tree.sort_label)
            order = steps_of(tree, "d6")
            if tree.sort_key == "size":
                assert [size[s] for s in order] == sorted(size.values(), reverse=True)
            if tree.sort_key == "age":
                assert [mtime[s] for s in order] == sorted(mtime.values(), reverse=True)
            await pilot.press("s")
        assert seen == ["step ↑", "size ↓", "val_bpb ↑", "age ↓"]
        assert tree.sort_label == "step ↑"  # and around again
        # S flips the direction of the key in use: ↑ is smallest / oldest / first on top
        for key, values in (("size", size), ("age", mtime)):
            tree.set_sort(key)
            await pilot.press("S")
            assert tree.sort_label == f"{key} ↑"
            order = steps_of(tree, "d6")
            assert [values[s] for s in order] == sorted(values.values()), key
        await pilot.press("s")  # after age comes step again, in its own natural order
        assert tree.sort_label == "step ↑" and steps_of(tree, "d6") == [400, 800, 1200]
        await pilot.press("S")
        assert tree.sort_label == "step ↓" and steps_of(tree, "d6") == [1200, 800, 400]
        # val_bpb: best (lowest) first; the steps without one last in both directions
        tree.set_sort("val_bpb")
        await settle(pilot)
        assert steps_of(tree, "d4") == [3000, 2500, 2000, 1500, 1000, 500]
        await pilot.press("S")
        assert tree.sort_label == "val_bpb ↓"
        assert steps_of(tree, "d4") == [500, 1000, 1500, 2000, 2500, 3000]
        assert steps_of(tree, "d2_legacy")  # (no val_bpb at all: still listed)


async def test_status_help_and_readme_say_the_same(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        tree.focus()
        assert "sort step ↑ first step on top" in status(app)
        await pilot.press("s")
        await pilot.pause()
        assert "sort size ↓ largest first" in status(app)
        await pilot.press("S")
        await pilot.pause()
        assert "sort size ↑ smallest first" in status(app)
        keys = {ab.binding.key: ab.binding for ab in app.active_bindings.values()}
        assert keys["s"].description == "Sort" and keys["s"].show  # in the footer
        assert keys["S"].description == "Reverse sort"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(f"{w} {k} {d}" for w, k, d in app.screen.rows)
        order = "step ↑ (first step on top) → size ↓ (largest first) → val_bpb ↑ (best " \
                "first) → age ↓ (newest first) → step"
        assert order in text and "↑ is ascending for every key" in text
    readme = README.read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `s` / `S`"))
    assert re.search(r"step ↑, size ↓ \(largest first\), val_bpb ↑ \(best first\), "
                     r"age ↓ \(newest first\) / reverse it", row), row
    assert "↑ is ascending for every key" in row


def filter_count(app: CkptApp) -> str:
    return str(app.query_one("#filter-count").render())


def tree_header(app: CkptApp) -> str:
    return str(app.query_one("#tree-header").render())


async def test_a_step_filter_opens_the_tags_holding_matches(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        app.expand_all(False)  # every stage and tag closed
        await settle(pilot)
        assert tree.visible_keys() == [f"stage:{s}_checkpoints" for s in
                                       ("base", "mid", "chatsft", "chatrl")]
        tree.focus()
        await pilot.press("slash", *">1000")
        await settle(pilot)
        keys = tree.visible_keys()
        steps = [k for k in keys if "@" in k]
        assert steps == ["base_checkpoints/d2_legacy@2000"] + [
            f"base_checkpoints/d4@{s}" for s in (1500, 2000, 2500, 3000)] + [
            "base_checkpoints/d6@1200"]
        assert not any(k.startswith("stage:mid") for k in keys)
        assert filter_count(app) == "6 matches in 3 tags"
        d4 = tree._tag_label(tree.objects["base_checkpoints/d4"]).plain  # type: ignore[arg-type]
        assert "4/6 steps" in d4
        # "=3000": one match; the tags without one close again
        for _ in range(5):
            await pilot.press("backspace")
        await pilot.press(*"=3000")
        await settle(pilot)
        assert [k for k in tree.visible_keys() if "@" in k] == ["base_checkpoints/d4@3000"]
        assert filter_count(app) == "1 match in 1 tag"
        assert not tree.node_for("base_checkpoints/d6").is_expanded  # type: ignore[union-attr]
        # no match: said in the filter bar and where the tree was
        for _ in range(5):
            await pilot.press("backspace")
        await pilot.press(*"foo")
        await settle(pilot)
        assert tree.visible_keys() == []
        assert filter_count(app) == "no matches for 'foo'"
        assert "no matches for 'foo'" in tree_header(app)
        # cleared: the view as it was, every tag closed again
        await pilot.press("escape")
        await settle(pilot)
        assert filter_count(app) == "" and "step" in tree_header(app)
        assert tree.visible_keys() == [f"stage:{s}_checkpoints" for s in
                                       ("base", "mid", "chatsft", "chatrl")]


async def test_a_name_filter_leaves_tags_closed_and_the_cursor_keeps_its_row(
        demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        app.expand_all(False)
        await settle(pilot)
        tree.set_filter("d6")  # the tag's name matches: its row shows, closed
        await settle(pilot)
        assert tree.visible_keys() == ["stage:base_checkpoints", "base_checkpoints/d6"]
        assert tree.filter_summary() == "3 matches in 1 tag"
        tree.set_filter("=2500")  # a step: d4 opens; the cursor goes onto the step
        await settle(pilot)
        tree.move_cursor(tree.node_for("base_checkpoints/d4@2500"))
        await settle(pilot)
        tree.set_filter("")  # cleared: d4 stays open around the cursor, d6 stays closed
        await settle(pilot)
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4@2500"
        assert not tree.node_for("base_checkpoints/d6").is_expanded  # type: ignore[union-attr]
        # a tag closed by hand under a filter stays closed for that filter
        tree.set_filter(">2000")
        await settle(pilot)
        tree.move_cursor(tree.node_for("base_checkpoints/d4"))
        tree.focus()
        await pilot.press("h")
        await settle(pilot)
        tree.set_filter(">200")
        await settle(pilot)
        assert not tree.node_for("base_checkpoints/d4").is_expanded  # type: ignore[union-attr]


async def test_filter_opens_tags_with_a_bounded_number_of_new_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter keystroke makes at most AUTO_POPULATE step rows of tags never opened; the
    tags left closed say how many of their steps match."""
    from nanochat_ckpt_tui.tui import tree_sync as tree_module

    monkeypatch.setattr(tree_module, "AUTO_POPULATE", 200)
    many_steps(tmp_path, tags=3, steps=150)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        assert tree.node_for("base_checkpoints/d1@1") is None  # closed, never opened
        tree.set_filter(">145")
        await settle(pilot)
        assert tree.node_for("base_checkpoints/d1").is_expanded  # type: ignore[union-attr]
        assert not tree.node_for("base_checkpoints/d2").is_expanded  # type: ignore[union-attr]
        assert tree.node_for("base_checkpoints/d2@1") is None
        label = tree._tag_label(tree.objects["base_checkpoints/d2"]).plain  # type: ignore[arg-type]
        assert "5/150 steps" in label
        assert tree.filter_summary() == "15 matches in 3 tags"
        steps = [k for k in tree.visible_keys() if "@" in k]
        assert len(steps) == 10 and all(int(k.rsplit("@", 1)[1]) > 145 for k in steps)


async def test_the_cursor_survives_a_filter_that_briefly_matches_nothing(
        demo_master: Path) -> None:
    """Typing ">1000" goes through ">" (matches nothing): the cursor comes back to its row
    when rows show again, and the detail pane with it."""
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        tree.move_cursor(tree.node_for("base_checkpoints/d4@2500"))
        tree.focus()
        await settle(pilot)
        await pilot.press("slash", ">")
        await settle(pilot)
        assert tree.visible_keys() == [] and tree.current is None
        await pilot.press(*"1000")
        await settle(pilot)
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4@2500"
        assert app.detail_pane.shown_key == "base_checkpoints/d4@2500"
        await pilot.press(*"foo")  # nothing again, then back
        await settle(pilot)
        for _ in range(3):
            await pilot.press("backspace")
        await settle(pilot)
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4@2500"
