"""Sort (one meaning for the arrow, s cycles keys, S reverses) and filter (matches expanded
and counted) on the demo data (issue 14, items 6 and 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
        footer = {ab.binding.key: ab.binding.description
                  for ab in app.active_bindings.values()}
        assert footer["s"] == "Sort" and footer["S"] == "Reverse"
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
