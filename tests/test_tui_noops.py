"""No key does nothing silently: what is off says why, and a tag's row acts on the tag
(issue 14, item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete
from nanochat_ckpt_tui.tui.diff_screen import DiffScreen
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

pytestmark = pytest.mark.asyncio
SIZE = (120, 40)
D4 = "base_checkpoints/d4"


def make_app(base: Path, **kw: object) -> CkptApp:
    return CkptApp(base, watch=False, display_name="demo", **kw)  # type: ignore[arg-type]




def messages(app: CkptApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_read_only_keys_say_why(demo_dir: Path) -> None:
    app = make_app(demo_dir, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        for key, doing in (("x", "deleting"), ("delete", "deleting"),
                           ("X", "deleting optimizer shards"), ("P", "pruning"),
                           ("p", "pinning"), ("n", "editing notes")):
            app.clear_notifications()
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is app.screen_stack[0], key  # no dialog
            assert messages(app) == [f"read-only: {doing} is disabled (opened with "
                                     "--read-only)"], key
        assert not (demo_dir / D4 / ".nanochat-ckpt.json").exists()
        assert len(list((demo_dir / D4).glob("*_001000*"))) == 4
        # a still enabled key says nothing of the sort
        app.clear_notifications()
        await pilot.press("d")
        assert await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        await pilot.press("x")  # behind the diff: nothing, and no read-only message
        await pilot.pause()
        assert isinstance(app.screen, DiffScreen) and not any(
            "read-only" in m for m in messages(app))


async def test_space_on_a_tag_marks_its_steps(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = await goto(pilot, D4)
        steps = {f"{D4}@{s}" for s in (500, 1000, 1500, 2000, 2500, 3000)}
        await pilot.press("space")
        assert tree.marks == steps
        assert tree.current is not None and tree.current.key == f"{D4}@500"  # moved down
        assert "●" in tree._ck_label(tree.objects[f"{D4}@2000"]).plain  # type: ignore[arg-type]
        await goto(pilot, D4)
        await pilot.press("space")  # all marked: space unmarks them all
        assert tree.marks == set()
        await goto(pilot, f"{D4}@500")
        await pilot.press("space")  # some marked: space marks the rest
        await goto(pilot, D4)
        await pilot.press("space")
        assert tree.marks == steps
        await pilot.press("u")
        tree.set_filter(">2000")  # a filter: only the steps it shows
        await settle(pilot)
        await goto(pilot, D4)
        await pilot.press("space")
        assert tree.marks == {f"{D4}@2500", f"{D4}@3000"}
        # a stage's row: says what space does
        app.clear_notifications()
        await goto(pilot, "stage:base_checkpoints")
        await pilot.press("space")
        assert any("Space marks a checkpoint, or every step of a tag" in m
                   for m in messages(app))
        assert tree.current is not None and tree.current.key == "stage:base_checkpoints"


async def test_x_on_a_tag_offers_its_unprotected_steps(demo_dir: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, D4)
        await pilot.press("x")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        plan = app.screen.plan
        assert plan.checkpoints == [f"{D4}@{s}" for s in (500, 1000, 1500, 2000, 2500)]
        assert len(plan.items) == 20
        assert [p.checkpoint for p in plan.protected] == [f"{D4}@3000"]  # latest: listed
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("escape")
        await pilot.pause()
        tree = app.query_one(CheckpointTree)
        tree.set_filter(">2000")
        await settle(pilot)
        await goto(pilot, D4)
        await pilot.press("X")  # optimizer shards of the shown steps only
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        plan = app.screen.plan
        assert plan.checkpoints == [f"{D4}@2500"] and {i.kind for i in plan.items} == {"optim"}
        await pilot.press("escape")
        await pilot.pause()
    assert len(list((demo_dir / D4).glob("*_002500*"))) == 4  # nothing deleted
