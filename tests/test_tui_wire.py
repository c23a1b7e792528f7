"""What the app draws while the cursor moves: the detail pane repaints once, when it settles
(over SSH every repaint is kilobytes on the wire; benchmarks/bench_wire.py measures them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from textual.widgets._footer import FooterKey

from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.footer import Footer
from nanochat_ckpt_tui.tui.help import HelpScreen
from nanochat_ckpt_tui.tui.ssh import animation_level
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

SIZE = (120, 40)


def make_app(base: Path) -> CkptApp:
    return CkptApp(base, watch=False, display_name="demo")




async def test_burst_of_j_repaints_the_detail_once(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.detail_pane
        for key in ("base_checkpoints/d4@1000", "base_checkpoints/d4@1500",
                    "base_checkpoints/d4@500"):  # the first two are then in the pane's cache
            await goto(pilot, key)
        assert pane.shown_key == "base_checkpoints/d4@500"
        before = pane.body.text
        # Generous, so the run below is surely inside one window on a busy machine: what is
        # tested is that nothing is drawn until the cursor rests, not how fast keys come.
        pane.DEBOUNCE = 1.0
        paints, loads = pane.paints, pane.loads_started
        pane.rendered.clear()
        # 12 rows down: two cached steps, three more, a tag, three steps, a stage, a tag, a step
        await pilot.press(*["j"] * 12)
        tree = app.query_one(CheckpointTree)
        assert tree.current is not None and tree.current.key == "mid_checkpoints/d4@200"
        assert pane.paints == paints, "the pane was redrawn while the cursor moved"
        assert pane.body.text == before
        await settle(pilot)
        assert pane.paints == paints + 1
        assert pane.loads_started == loads + 1
        assert pane.rendered == ["mid_checkpoints/d4@200"]
        assert pane.shown_key == "mid_checkpoints/d4@200"
        assert "mid_checkpoints/d4 · step 200" in pane.body.text


async def test_one_move_shows_the_row_after_the_debounce(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.detail_pane
        await goto(pilot, "base_checkpoints/d4@1000")
        paints = pane.paints
        await pilot.press("j")  # a cached stage or step and an unread one settle the same way
        await settle(pilot)
        assert pane.shown_key == "base_checkpoints/d4@1500"
        assert pane.paints == paints + 1
        await pilot.press("k")
        await settle(pilot)
        assert pane.shown_key == "base_checkpoints/d4@1000"  # from the cache
        assert pane.paints == paints + 2
        await goto(pilot, "stage:mid_checkpoints")
        assert "Stage mid" in pane.body.text
        assert pane.paints == paints + 3


async def test_theme_change_while_settling_draws_once(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.detail_pane
        await goto(pilot, "base_checkpoints/d4@1000")
        pane.DEBOUNCE = 1.0
        paints = pane.paints
        await pilot.press("j")
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        assert pane.paints == paints  # the new theme is drawn with the settled row
        await settle(pilot)
        assert pane.shown_key == "base_checkpoints/d4@1500"
        assert pane.paints == paints + 1


async def test_footer_is_rebuilt_only_when_its_keys_change(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        footer = app.screen.query_one(Footer)

        def shown() -> list[str]:
            return [k.key for k in footer.query(FooterKey)]

        assert await wait_for(pilot, lambda: "space" in shown())
        widgets = list(footer.query(FooterKey))
        await pilot.press("question_mark")  # a dialog over the screen, and back
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause()
        assert list(footer.query(FooterKey)) == widgets  # not rebuilt under the dialog
        await pilot.press("escape")
        await settle(pilot)
        assert list(footer.query(FooterKey)) == widgets  # nor after: the same keys
        await pilot.press("tab")  # the detail pane: the tree's keys go
        assert await wait_for(pilot, lambda: "space" not in shown())
        assert "d" in shown()
        await pilot.press("shift+tab")
        assert await wait_for(pilot, lambda: "space" in shown())


def test_no_animations_over_ssh() -> None:
    ssh = {"SSH_CONNECTION": "10.0.0.2 50022 10.0.0.1 22"}
    assert animation_level("full", ssh) == "none"
    assert animation_level("full", {"SSH_TTY": "/dev/pts/3"}) == "none"
    assert animation_level("full", {**ssh, "TEXTUAL_ANIMATIONS": "full"}) == "full"  # chosen
    assert animation_level("basic", {}) == "basic"  # a local terminal: as Textual has it


def test_app_jumps_over_ssh(demo_master: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEXTUAL_ANIMATIONS", raising=False)
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 50022 10.0.0.1 22")
    assert make_app(demo_master).animation_level == "none"


async def test_age_refresh_redraws_only_changed_rows(demo_master: Path) -> None:
    now = [time.time()]
    app = CkptApp(demo_master, watch=False, display_name="demo", clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        redrawn: list[int] = []
        whole: list[bool] = []
        line, full = tree._refresh_line, tree.refresh
        tree._refresh_line = lambda y: (redrawn.append(y), line(y))[1]  # type: ignore[method-assign]
        tree.refresh = lambda *a, **k: (whole.append(not a), full(*a, **k))[1]  # type: ignore[method-assign]
        now[0] += 20  # no age changes in 20 s here (the newest step is an hour old)
        tree.refresh_labels()
        assert redrawn == [] and not any(whole)
        label = tree._label(tree.ref_for("base_checkpoints/d4@3000")).plain
        now[0] += 3 * 86400  # three days on: every step's age changes
        tree.refresh_labels()
        assert not any(whole)
        row = tree.visible_keys().index("base_checkpoints/d4@3000")
        assert row in redrawn
        assert tree._label(tree.ref_for("base_checkpoints/d4@3000")).plain != label
        assert "stage:base_checkpoints" not in [tree.visible_keys()[y] for y in redrawn]


async def test_a_step_found_unreadable_is_badged_at_once(demo_dir: Path) -> None:
    """The scan sees a whole zip; reading the model finds a pickle the reader refuses. Its row
    shows ``unreadable`` when the detail has been read, not at the next 30 s age refresh
    (over SSH, a late repaint while idle)."""
    import zipfile

    model = demo_dir / "base_checkpoints" / "d4" / "model_002000.pt"
    model.unlink()
    with zipfile.ZipFile(model, "w") as z:  # a whole zip, and a pickle that builds os.system
        z.writestr("model_002000/data.pkl", b"\x80\x02cos\nsystem\nq\x00.")
        z.writestr("model_002000/byteorder", b"little")
    old = time.time() - 3600
    os.utime(model, (old, old))  # written an hour ago: not "writing"
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        key = "base_checkpoints/d4@2000"
        assert "unreadable" not in tree._label(tree.ref_for(key)).plain
        redrawn: list[int] = []
        line = tree._refresh_line
        tree._refresh_line = lambda y: (redrawn.append(y), line(y))[1]  # type: ignore[method-assign]
        await goto(pilot, key)
        assert await wait_for(pilot, lambda: tree.visible_keys().index(key) in redrawn)
        assert "unreadable" in tree._label(tree.ref_for(key)).plain
        assert "unreadable" in app.detail_pane.text


async def test_detail_sends_only_the_rows_that_differ(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.detail_pane
        await goto(pilot, "base_checkpoints/d4@1000")
        before = pane.body.text.splitlines()
        calls: list[tuple[object, ...]] = []
        refresh = pane.refresh
        pane.refresh = lambda *a, **k: (calls.append(a), refresh(*a, **k))[1]  # type: ignore[method-assign]
        await goto(pilot, "base_checkpoints/d4@1500")  # a step of the same tag: same rows
        after = pane.body.text.splitlines()
        assert len(after) == len(before) and after != before
        assert calls and all(regions for regions in calls), "the whole pane was redrawn"
        rows = {y for regions in calls for r in regions for y in range(r.y, r.bottom)}
        differ = {y for y, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}
        assert differ <= rows and len(rows) < pane.size.height


async def test_detail_scrolls_and_starts_at_the_top_of_another_row(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.detail_pane
        await goto(pilot, "base_checkpoints/d4@1000")
        pane.focus()
        await pilot.press("j", "j", "j")
        assert pane.scroll_offset.y == 3
        await pilot.press("G")
        assert pane.scroll_offset.y == pane.max_scroll_y > 3
        app.query_one(CheckpointTree).focus()
        await goto(pilot, "base_checkpoints/d4@1500")
        assert pane.scroll_offset.y == 0
        assert "step 1500" in pane.body.text.splitlines()[0]
