"""The diff screen (on its own host app) and `nanochat-ckpt diff`."""

from __future__ import annotations

import json
from pathlib import Path

from textual.app import App
from textual.widgets import DataTable, TabbedContent

from nanochat_ckpt_tui.cli import main
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.tui.diff_screen import DiffScreen
from nanochat_ckpt_tui.tui.help import HelpScreen


class Host(App):
    def __init__(self, screen: DiffScreen) -> None:
        super().__init__()
        self.diff_screen = screen
        self.closed = False

    def on_mount(self) -> None:
        self.push_screen(self.diff_screen, lambda _: setattr(self, "closed", True))


def pair(base: Path, s1: int = 500, s2: int = 3000):
    d4 = scan(base).stage("base").tag("d4")
    return d4.checkpoint(s1), d4.checkpoint(s2)


async def wait_report(pilot, screen: DiffScreen) -> None:
    for _ in range(200):
        if screen.report is not None or screen.error:
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def test_diff_screen_shows_the_report(demo_master: Path) -> None:
    screen = DiffScreen(*pair(demo_master))
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_report(pilot, screen)
        table = screen.query_one("#diff-table", DataTable)
        assert table.row_count == len(screen.report.tensors) == 35
        first = [table.get_row_at(i)[0] for i in range(3)]
        rels = [screen.report.tensor(n).rel_change for n in first]
        assert rels == sorted(rels, reverse=True)  # sorted by relative change
        header = str(screen.query_one("#diff-header").render())
        assert "val_bpb 1.0921 → 0.8297" in header and "10h apart" in header
        await pilot.press("s")  # cosine, ascending
        cosines = [screen.report.tensor(table.get_row_at(i)[0]).cosine for i in range(5)]
        assert cosines == sorted(cosines)
        await pilot.press("slash")
        await pilot.press(*"lm_head")
        await pilot.pause()
        assert table.row_count == 1 and table.get_row_at(0)[0] == "lm_head.weight"
        await pilot.press("escape")  # first Esc clears the filter
        await pilot.pause()
        assert table.row_count == 35 and not app.closed
        assert "transformer.h.3" in str(screen.query_one("#diff-layers").render())
        assert "step: 500 → 3000" in str(screen.query_one("#diff-meta").render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.closed


async def test_diff_screen_cross_version_keys(demo_master: Path) -> None:
    cat = scan(demo_master)
    screen = DiffScreen(cat.stage("mid").tag("d4").latest, cat.stage("base").tag("d4").latest)
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_report(pilot, screen)
        keys = str(screen.query_one("#diff-keys").render())
        assert "+ added" in keys and "resid_lambdas" in keys
        assert "~ changed" in keys and "transformer.wte.weight" in keys


async def test_escape_cancels_a_running_diff(demo_master: Path) -> None:
    cat = scan(demo_master)
    d6 = cat.stage("base").tag("d6")
    screen = DiffScreen(d6.checkpoint(400), d6.checkpoint(800), chunk_elems=2)
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.05)
        assert screen.report is None  # still running at 2 elements per chunk
        await pilot.press("escape")
        await pilot.pause()
        assert app.closed and screen.cancel.is_set()
        await app.workers.wait_for_complete()
        assert screen.report is None


async def test_diff_error_is_shown(demo_dir: Path) -> None:
    import os

    model = demo_dir / "base_checkpoints/d4/model_000500.pt"
    model.write_bytes(b"not a zip" * 10)
    os.utime(model, (1, 1))
    screen = DiffScreen(*pair(demo_dir))
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_report(pilot, screen)
        assert "cannot diff" in str(screen.query_one("#diff-status").render())
        assert "not a readable torch zip" in screen.error


def test_diff_screen_snapshot(demo_master: Path, snap_compare) -> None:
    async def run_before(pilot) -> None:
        await wait_report(pilot, pilot.app.diff_screen)

    assert snap_compare(Host(DiffScreen(*pair(demo_master))), terminal_size=(100, 30),
                        run_before=run_before)


async def test_tabs_have_keys_shown_in_the_footer(demo_master: Path) -> None:
    screen = DiffScreen(*pair(demo_master))
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_report(pilot, screen)
        tabs = screen.query_one("#diff-tabs", TabbedContent)
        assert tabs.active == "tab-tensors"
        shown = {k: ab.binding for k, ab in app.active_bindings.items() if ab.binding.show}
        for key in ("1", "2", "3", "4", "left_square_bracket", "right_square_bracket",
                    "escape", "question_mark"):
            assert key in shown, key
        for key, tab in (("2", "tab-layers"), ("4", "tab-meta"), ("3", "tab-keys"),
                         ("1", "tab-tensors"), ("left_square_bracket", "tab-meta"),
                         ("right_square_bracket", "tab-tensors"),
                         ("right_square_bracket", "tab-layers")):
            await pilot.press(key)
            await pilot.pause()
            assert tabs.active == tab, key
            assert screen.focused is not None and tab in {a.id for a in
                                                          screen.focused.ancestors_with_self}
        await pilot.press("slash", "1")  # typed into the filter, not a tab switch
        await pilot.pause()
        assert tabs.active == "tab-tensors"
        assert screen.query_one("#diff-filter").value == "1"


async def test_question_mark_shows_the_diff_keys_and_q_closes(demo_master: Path) -> None:
    screen = DiffScreen(*pair(demo_master))
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_report(pilot, screen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(f"{w} {k} {d}" for w, k, d in app.screen.rows)
        for needle in ("1 Tensors tab", "4 Meta tab", "[ Previous tab", "] Next tab",
                       "q Close the diff", "s Sort", "ctrl+c"):
            assert needle in text, needle
        assert "Delete" not in text and "Mark" not in text  # not the main screen's keys
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and not app.closed
        await pilot.press("q")
        await pilot.pause()
        assert app.closed and app.is_running


async def test_q_cancels_a_running_diff(demo_master: Path) -> None:
    cat = scan(demo_master)
    d6 = cat.stage("base").tag("d6")
    screen = DiffScreen(d6.checkpoint(400), d6.checkpoint(800), chunk_elems=2)
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.05)
        assert screen.report is None
        assert "1" not in app.active_bindings  # no tabs to pick while reading
        await pilot.press("q")
        await pilot.pause()
        assert app.closed and screen.cancel.is_set() and app.is_running
        await app.workers.wait_for_complete()


def _diff_snapshot(demo_master: Path, snap_compare, size: tuple[int, int]) -> bool:  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await wait_report(pilot, pilot.app.diff_screen)

    return snap_compare(Host(DiffScreen(*pair(demo_master))), terminal_size=size,
                        run_before=run_before)


def test_diff_screen_snapshot_120x40(demo_master: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert _diff_snapshot(demo_master, snap_compare, (120, 40))


def test_diff_screen_snapshot_80x24(demo_master: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert _diff_snapshot(demo_master, snap_compare, (80, 24))


def test_cli_diff(demo_master: Path, capsys) -> None:
    code = main(["diff", "base/d4@500", "base/d4@1000", "--base-dir", str(demo_master),
                 "--json", "--top", "3"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["schema"] == "nanochat-ckpt.diff/1"
    assert len(doc["tensors"]) == 3
    assert doc["a"]["step"] == 500 and doc["b"]["step"] == 1000
    code = main(["diff", "base/d4@500", "base/d4@500", "--base-dir", str(demo_master)])
    out = capsys.readouterr().out
    assert code == 0 and "identical" in out
    code = main(["diff", "base/d4@500", "base/d4@12", "--base-dir", str(demo_master)])
    assert code == 2 and "no step 12" in capsys.readouterr().err
