"""The dialogs on their own: confirm-delete modal, rules form, note, archive, help; each fits
80x24 (its lists scroll, its buttons stay on screen) and 120x40."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App

from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.prune import Rules, plan_rules, plan_selection
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.archive_dialog import ArchiveDialog
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.help import HelpScreen, key_rows
from nanochat_ckpt_tui.tui.note_dialog import NoteDialog
from nanochat_ckpt_tui.tui.prune_form import PruneForm
from nanochat_ckpt_tui.tui.testing import wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

NOW = 1_790_000_000.0


class Host(App):
    """Pushes one screen and records what it was dismissed with."""

    def __init__(self, screen_factory) -> None:
        super().__init__()
        self.factory = screen_factory
        self.results: list = []

    def on_mount(self) -> None:
        self.push_screen(self.factory(), self.results.append)


def _plan(base: Path):
    cat = scan(base)
    d4 = cat.stage("base").tag("d4")
    return plan_selection(cat, [d4.checkpoint(500), d4.checkpoint(1000), d4.latest])


async def test_confirm_delete_defaults_to_cancel(demo_master: Path) -> None:
    plan = _plan(demo_master)
    app = Host(lambda: ConfirmDelete(plan))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConfirmDelete)
        await pilot.pause()
        assert screen.refills == 0
        assert app.focused.id == "cancel"
        text = " ".join(str(s.render()) for s in screen.query("Static"))
        assert "Delete 8 files" in text and "latest step" in text
        table = screen.query_one("#files")
        cells = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert cells[0] == "base_checkpoints/d4/model_000500.pt" and len(cells) == 8
        await pilot.press("enter")  # Enter on the focused button is Cancel
        await pilot.pause()
    assert app.results == [None]


async def test_confirm_delete_keys(demo_master: Path) -> None:
    plan = _plan(demo_master)
    for key, expected in (("y", "delete"), ("n", None), ("escape", None), ("t", None)):
        app = Host(lambda: ConfirmDelete(plan))  # (no trash offered: t does nothing)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press(key)
            await pilot.pause()
            if key == "t":
                assert not app.screen.query("#trash")
                await pilot.press("escape")
                await pilot.pause()
        assert app.results == [expected], key


async def test_confirm_delete_empty_plan_cannot_confirm(demo_master: Path) -> None:
    cat = scan(demo_master)
    plan = plan_selection(cat, [cat.stage("base").tag("d4").latest])
    app = Host(lambda: ConfirmDelete(plan))
    async with app.run_test(size=(100, 30)) as pilot:
        assert not app.screen.query("#confirm")
        await pilot.press("y")
        await pilot.pause()
        assert app.results == []  # y does nothing when there is nothing to delete
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]


async def test_prune_form_live_preview_and_submit(demo_master: Path) -> None:
    cat = scan(demo_master)
    d4 = cat.stage("base").tag("d4")
    app = Host(lambda: PruneForm("base/d4", lambda r, v: plan_rules(cat, [d4], r, verdicts=v)))
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen
        preview = form.query_one("#preview")

        async def shows(text: str) -> bool:
            return await wait_for(pilot, lambda: text in str(preview.render()), 5)

        assert await shows("would delete 12 files")  # default keep last 3
        form.query_one("#keep_last").value = "5"
        assert await shows("would delete 4 files")
        form.query_one("#keep_last").value = ""
        assert await shows("at least one rule")
        assert form.query_one("#review").disabled
        form.query_one("#keep_last").value = "2"
        form.query_one("#optimizer_only").value = True
        assert await shows("would delete 8 files")
        assert not form.query_one("#review").disabled
        await pilot.pause(0.2)  # (the preview box is fitted to the plan: the buttons settle)
        await pilot.click("#review")
        await pilot.pause()
    assert app.results == [Rules(keep_last=2, optimizer_only=True)]


async def test_prune_form_preview_is_planned_off_the_ui_thread(demo_master: Path) -> None:
    """A slow plan never blocks typing; a late result for rules since changed is dropped,
    and Review stays off until the preview for the rules on screen is shown."""
    import threading

    cat = scan(demo_master)
    d4 = cat.stage("base").tag("d4")
    gate = threading.Event()

    def preview(rules: Rules, verdicts):  # type: ignore[no-untyped-def]
        if rules.keep_last == 3:
            gate.wait(10)  # the first preview (keep last 3) is slow
        return plan_rules(cat, [d4], rules, verdicts=verdicts)

    app = Host(lambda: PruneForm("base/d4", preview))
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen
        preview_box = form.query_one("#preview")
        await pilot.pause()
        assert form.query_one("#review").disabled and form.rules is None
        form.query_one("#keep_last").value = "5"
        assert await wait_for(pilot, lambda: "would delete 4 files" in str(preview_box.render()), 5)
        gate.set()  # the keep-last-3 plan finishes now, too late
        await pilot.pause(0.2)
        assert "would delete 4 files" in str(preview_box.render())
        assert form.rules == Rules(keep_last=5) and not form.query_one("#review").disabled


async def test_note_dialog(demo_master: Path) -> None:
    app = Host(lambda: NoteDialog("base/d4@1000", "old"))
    async with app.run_test() as pilot:
        inp = app.screen.query_one("#note")
        inp.value = "best so far"
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == ["best so far"]
    app = Host(lambda: NoteDialog("base/d4@1000", "old"))
    async with app.run_test() as pilot:
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]


def test_confirm_delete_snapshot(demo_master: Path, snap_compare) -> None:
    plan = _plan(demo_master)
    # make the paths in the snapshot independent of the temp dir
    app = Host(lambda: ConfirmDelete(plan))
    assert snap_compare(app, terminal_size=(110, 32))


# -- every dialog at 120x40 and 80x24: everything on screen, the buttons visible -----------

SIZES = [(120, 40), (80, 24)]


def _big_plan(base: Path):
    """A deletion of every step of base/d4 but the latest: 20 files, and a protection."""
    cat = scan(base)
    d4 = cat.stage("base").tag("d4")
    return plan_selection(cat, d4.checkpoints)


def _prune_form(base: Path) -> PruneForm:
    cat = scan(base)
    d4 = cat.stage("base").tag("d4")
    return PruneForm("base/d4", lambda r, v: plan_rules(cat, [d4], r, verdicts=v))


async def _preview_shown(pilot) -> None:  # type: ignore[no-untyped-def]
    preview = pilot.app.screen.query_one("#preview")
    assert await wait_for(pilot, lambda: "would delete" in str(preview.render()), 5)
    # the box is fitted to its lines after a refresh (a verified plan adds the kept steps)
    box = pilot.app.screen.query_one("#preview-box")
    lines = str(preview.render()).count("\n") + 1
    assert await wait_for(pilot, lambda: box.size.height >= min(lines, 2), 5)
    await pilot.pause()


def _help() -> HelpScreen:
    return HelpScreen(key_rows([("Anywhere", CkptApp.BINDINGS),
                                ("Tree", CheckpointTree.BINDINGS),
                                ("Details", DetailPane.BINDINGS)]))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_confirm_delete_fits(demo_master: Path, snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    plan = _big_plan(demo_master)
    assert snap_compare(Host(lambda: ConfirmDelete(plan)), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_prune_form_fits(demo_master: Path, snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(Host(lambda: _prune_form(demo_master)), terminal_size=size,
                        run_before=_preview_shown)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_note_dialog_fits(snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(Host(lambda: NoteDialog("base/d4@1000", "best so far")),
                        terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_archive_dialog_fits(snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(Host(lambda: ArchiveDialog("base/d4@2000", "/mnt/backup/nanochat")),
                        terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_fits(snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(Host(_help), terminal_size=size)


def _rules_plan(base: Path):
    cat = scan(base)
    d4 = cat.stage("base").tag("d4")
    return plan_rules(cat, [d4], Rules(keep_last=1, keep_every=1500, keep_best=1,
                                       optimizer_only=True))


@pytest.mark.parametrize("make", ["confirm", "confirm-rules", "prune", "note", "archive",
                                  "help"])
async def test_every_dialog_fits_80x24(demo_master: Path, make: str) -> None:
    """Everything stays on the 80x24 screen: the buttons, and every cell of the file
    list in full (long paths lose leading directories, long reasons wrap)."""
    factories = {
        "confirm": lambda: ConfirmDelete(_big_plan(demo_master)),
        "confirm-rules": lambda: ConfirmDelete(_rules_plan(demo_master)),
        "prune": lambda: _prune_form(demo_master),
        "note": lambda: NoteDialog("base/d4@1000", "x"),
        "archive": lambda: ArchiveDialog("base/d4@2000", None),
        "help": _help,
    }
    app = Host(factories[make])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        screen = app.screen
        region = screen.region
        for widget in screen.query("Button, Input, #dialog, #help-box"):
            assert region.contains_region(widget.region), (widget, widget.region)
        for button in screen.query("Button"):
            assert button.region.height >= 1 and button.region.width >= 6
        if make.startswith("confirm"):
            assert screen.refills == 0  # the columns were laid out once, at the right width
            table = screen.query_one("#files")
            assert region.contains_region(table.region)
            widths = [c.get_render_width(table) for c in table.columns.values()]
            assert sum(widths) <= table.size.width  # no column runs off the side
            plan = screen.plan
            for i, item in enumerate(plan.items):
                file, kind, size, reason = table.get_row_at(i)
                assert file.endswith(item.path.name) and kind == item.kind
                assert str(reason) == item.reason
            reason_w = list(table.columns.values())[3].width
            if max(len(i.reason) for i in plan.items) > reason_w:  # wrapped, all of it
                assert any(r.height > 1 for r in table.rows.values())
