"""The prune dialogs on their own: confirm-delete modal, rules form, note dialog."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.prune import Rules, plan_rules, plan_selection
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete
from nanochat_ckpt_tui.tui.note_dialog import NoteDialog
from nanochat_ckpt_tui.tui.prune_form import PruneForm
from nanochat_ckpt_tui.tui.testing import wait_for

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
        assert app.focused.id == "cancel"
        text = " ".join(str(s.render()) for s in screen.query("Static"))
        assert "Delete 8 files" in text and "latest step" in text
        table = screen.query_one("#files")
        cells = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert cells[0] == "base_checkpoints/d4/model_000500.pt" and len(cells) == 8
        await pilot.press("enter")  # Enter on the focused button is Cancel
        await pilot.pause()
    assert app.results == [False]


async def test_confirm_delete_keys(demo_master: Path) -> None:
    plan = _plan(demo_master)
    for key, expected in (("y", True), ("n", False), ("escape", False)):
        app = Host(lambda: ConfirmDelete(plan))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press(key)
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
    assert app.results == [False]


async def test_prune_form_live_preview_and_submit(demo_master: Path) -> None:
    cat = scan(demo_master)
    d4 = cat.stage("base").tag("d4")
    app = Host(lambda: PruneForm("base/d4", lambda r: plan_rules(cat, [d4], r)))
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

    def preview(rules: Rules):  # type: ignore[no-untyped-def]
        if rules.keep_last == 3:
            gate.wait(10)  # the first preview (keep last 3) is slow
        return plan_rules(cat, [d4], rules)

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
