"""What the app changes, it repaints: the detail pane after pin, unpin, note, archive,
deletion and rescans (issue 14, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.pins import update_pin
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.archive_dialog import ArchiveDialog
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.note_dialog import NoteDialog
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

pytestmark = pytest.mark.asyncio
SIZE = (120, 40)
D4 = "base_checkpoints/d4"


def make_app(base: Path, **kw: object) -> CkptApp:
    return CkptApp(base, watch=False, display_name="demo", **kw)  # type: ignore[arg-type]


def pane(app: CkptApp) -> str:
    return " ".join(app.query_one(DetailPane).body.text.split())


def header(app: CkptApp) -> str:
    """The first lines of the pane: title with badges, sizes, pin and note."""
    return " ".join(app.query_one(DetailPane).body.text.splitlines()[:4])




async def test_pin_unpin_and_note_repaint_the_detail_pane(demo_dir: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        assert "pinned" not in header(app)
        await pilot.press("p")
        assert await wait_for(pilot, lambda: "[pinned]" in header(app), 5), header(app)
        await settle(pilot)
        await pilot.press("p")  # unpin: the badge goes from the tree AND the pane
        assert await wait_for(pilot, lambda: "pinned" not in header(app), 5), header(app)
        tree = app.query_one(CheckpointTree)
        assert "pinned" not in tree._ck_label(tree.objects[f"{D4}@1000"]).plain
        await settle(pilot)
        await pilot.press("n")
        assert await wait_for(pilot, lambda: isinstance(app.screen, NoteDialog))
        app.screen.query_one("#note").value = "best so far"
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: "note: best so far" in header(app), 5), header(app)
        await settle(pilot)
        await pilot.press("n")  # a second edit replaces the first on screen
        assert await wait_for(pilot, lambda: isinstance(app.screen, NoteDialog))
        app.screen.query_one("#note").value = "sent to eval"
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: "note: sent to eval" in header(app), 5)
        assert "best so far" not in pane(app)
        await settle(pilot)
        await pilot.press("n")  # empty clears it
        assert await wait_for(pilot, lambda: isinstance(app.screen, NoteDialog))
        app.screen.query_one("#note").value = ""
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: "sent to eval" not in header(app), 5)


async def test_moving_away_and_back_and_r_show_changes_made_elsewhere(demo_dir: Path) -> None:
    """A pin written by another process (the CLI) shows after r, and after moving away and
    back once a rescan has seen it: the pane's cache never serves the old pin."""
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1500")
        await goto(pilot, f"{D4}@2000")  # both are in the pane's cache now
        update_pin(demo_dir / D4, 1500, pinned=True, note="from the cli")
        await pilot.press("r")
        await settle(pilot)
        await goto(pilot, f"{D4}@1500")
        assert "pinned: from the cli" in header(app)
        update_pin(demo_dir / D4, 1500, pinned=False, clear_note=True)
        await pilot.press("r")  # r on the row itself
        assert await wait_for(pilot, lambda: "from the cli" not in header(app), 5)
        assert "pinned" not in header(app)


async def test_archive_and_delete_repaint_the_detail_pane(demo_dir: Path,
                                                          tmp_path: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@2000")
        await pilot.press("a")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ArchiveDialog))
        app.screen.query_one("#dest").value = str(tmp_path / "archive")
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: "[archived]" in header(app), 20), header(app)
        # optimizer shards deleted: the pane's file list follows
        await settle(pilot)
        assert "optim_002000_rank0.pt" in pane(app)
        await pilot.press("X")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        await pilot.press("y")
        assert await wait_for(pilot, lambda: "optim_002000_rank0.pt" not in pane(app), 10)
        assert "model_002000.pt" in pane(app)
