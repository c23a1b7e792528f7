"""Pilot tests of the app's actions: mark + diff, delete, optimizer-only, prune by rules,
pin, note, archive, and --read-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable

from nanochat_ckpt_tui.store.pins import load_pins
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.archive_dialog import ArchiveDialog
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete
from nanochat_ckpt_tui.tui.diff_screen import DiffScreen
from nanochat_ckpt_tui.tui.note_dialog import NoteDialog
from nanochat_ckpt_tui.tui.prune_form import PruneForm
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

pytestmark = pytest.mark.asyncio
SIZE = (120, 40)
D4 = "base_checkpoints/d4"


def make_app(base: Path, **kw: object) -> CkptApp:
    return CkptApp(base, watch=False, display_name="demo", **kw)  # type: ignore[arg-type]




def files_of(base: Path, step: int) -> set[str]:
    return {p.name for p in (base / D4).glob(f"*_{step:06d}*")}


async def test_mark_two_then_d_diffs_them(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        await pilot.press("space", "space")  # marks 1000 and 1500 (space moves down)
        tree = app.query_one(CheckpointTree)
        assert tree.marks == {f"{D4}@1000", f"{D4}@1500"}
        await pilot.press("d")
        assert await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        screen = app.screen
        assert await wait_for(pilot, lambda: screen.report is not None, 10)
        assert (screen.a.step, screen.b.step) == (1000, 1500)
        await pilot.pause()
        assert screen.query_one("#diff-table", DataTable).row_count == 35
        await pilot.press("escape")
        assert await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen))


async def test_d_without_marks_compares_with_the_previous_step(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@2500")
        await pilot.press("d")
        assert await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        assert (app.screen.a.step, app.screen.b.step) == (2000, 2500)
        await pilot.press("escape")
        await goto(pilot, f"{D4}@500")  # the first step has nothing before it
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, DiffScreen)
        assert any("no earlier step" in n.message for n in app._notifications)


async def test_a_third_mark_says_what_it_does(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@500")
        await pilot.press("space", "space", "space")
        assert len(app.query_one(CheckpointTree).marks) == 3
        assert any("d compares exactly two" in n.message for n in app._notifications)
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, DiffScreen)


async def test_delete_cancel_then_confirm(demo_dir: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        before = files_of(demo_dir, 1000)
        await pilot.press("x")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        table = app.screen.query_one("#files", DataTable)
        shown = {table.get_row_at(i)[0].split("/")[-1] for i in range(table.row_count)}
        assert shown == before and len(before) == 4
        assert app.focused.id == "cancel"
        await pilot.press("n")
        await pilot.pause()
        assert files_of(demo_dir, 1000) == before
        await pilot.press("x")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        await pilot.press("y")
        assert await wait_for(pilot, lambda: not files_of(demo_dir, 1000), 10)
        assert await wait_for(pilot, lambda: app.query_one(CheckpointTree).node_for(
            f"{D4}@1000") is None, 10)
        assert any("Freed" in n.message for n in app._notifications)


async def test_delete_optimizer_shards_only(demo_dir: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1500")
        await pilot.press("X")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        assert {i.kind for i in app.screen.plan.items} == {"optim"}
        await pilot.press("y")
        assert await wait_for(pilot, lambda: files_of(demo_dir, 1500) == {
            "model_001500.pt", "meta_001500.json"}, 10)


async def test_latest_is_protected_in_the_modal(demo_dir: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@3000")
        await pilot.press("x")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        assert app.screen.plan.is_empty and "latest" in app.screen.plan.protected[0].reason
        await pilot.press("y")  # nothing to confirm
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDelete)
        await pilot.press("escape")
        assert len(files_of(demo_dir, 3000)) == 4


async def test_prune_tag_by_rules(demo_dir: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, D4)
        await pilot.press("P")
        assert await wait_for(pilot, lambda: isinstance(app.screen, PruneForm))
        form = app.screen
        form.query_one("#keep_last").value = "2"
        await pilot.pause()
        assert "would delete 16 files" in str(form.query_one("#preview").render())
        await pilot.pause(0.2)  # (the preview box is fitted to the plan: the buttons settle)
        await pilot.click("#review")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        await pilot.press("y")
        assert await wait_for(pilot, lambda: sorted(
            int(p.name[6:12]) for p in (demo_dir / D4).glob("model_??????.pt")) == [2500, 3000],
            10)


async def test_pin_protects_and_note_is_saved(demo_dir: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        await pilot.press("p")
        assert await wait_for(pilot, lambda: load_pins(demo_dir / D4).get(1000) is not None)
        assert load_pins(demo_dir / D4)[1000].pinned
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: "pinned" in tree._ck_label(
            tree.objects[f"{D4}@1000"]).plain, 5)
        await pilot.press("n")
        assert await wait_for(pilot, lambda: isinstance(app.screen, NoteDialog))
        app.screen.query_one("#note").value = "best so far"
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: load_pins(demo_dir / D4)[1000].note == "best so far")
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        await pilot.press("x")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        assert app.screen.plan.is_empty
        assert "pinned (best so far)" in app.screen.plan.protected[0].reason
        await pilot.press("escape")


async def test_archive_from_the_app(demo_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "archive"
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@2000")
        await pilot.press("a")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ArchiveDialog))
        app.screen.query_one("#dest").value = str(dest)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: any("Archived and verified" in n.message
                                                 for n in app._notifications), 20)
        assert (dest / D4 / "model_002000.pt").read_bytes() == (
            demo_dir / D4 / "model_002000.pt").read_bytes()
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: f"{D4}@2000" in tree.archived, 10)
        assert "archived" in tree._ck_label(tree.objects[f"{D4}@2000"]).plain
        manifest = json.loads((dest / ".nanochat-ckpt-manifest.json").read_text())
        assert f"{D4}@2000" in json.dumps(manifest)


async def test_read_only_hides_and_disables_writes(demo_dir: Path) -> None:
    app = make_app(demo_dir, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        for key in ("x", "X", "P", "p", "n", "delete"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmDelete | PruneForm | NoteDialog), key
        assert len(files_of(demo_dir, 1000)) == 4
        assert not (demo_dir / D4 / ".nanochat-ckpt.json").exists()
        active = {ab.binding.action for ab in app.active_bindings.values()}
        assert "diff" in active and not active & {"delete", "prune_tag", "pin", "note"}
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Delete" not in commands and "Prune tag" not in commands
        assert "Diff" in commands


async def test_tree_actions_are_off_behind_the_diff_screen(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@2500")
        await pilot.press("d")
        assert await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        active = {ab.binding.action for ab in app.active_bindings.values()}
        assert not active & {"delete", "diff", "archive", "pin"}
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, DiffScreen)  # no confirm modal over the diff


async def test_q_closes_the_diff_and_ctrl_c_quits(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@2500")
        await pilot.press("d")
        assert await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        await pilot.press("q")  # back to the tree, the app goes on
        assert await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen))
        assert app.is_running and app.query_one(CheckpointTree).has_focus
        await pilot.press("d")
        assert await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0
