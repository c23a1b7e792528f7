"""Pilot tests of the TUI on the demo data: navigation, details, errors, help, palette."""

from __future__ import annotations

import os
import pickle
import time
import zipfile
from pathlib import Path

import pytest
from textual.command import CommandPalette

from nanochat_ckpt_tui.store.layout import State
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.help import HelpScreen
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

pytestmark = pytest.mark.asyncio
SIZE = (120, 40)


def make_app(base: Path, **kw: object) -> CkptApp:
    return CkptApp(base, watch=False, display_name="demo", **kw)  # type: ignore[arg-type]


def body_text(app: CkptApp) -> str:
    """The detail pane's text as rendered (plain, no styles)."""
    return app.query_one(DetailPane).body.text


def flat(app: CkptApp) -> str:
    """The detail text with line breaks and runs of spaces folded to one space."""
    return " ".join(body_text(app).split())




async def test_tree_lists_stages_tags_checkpoints(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        keys = tree.visible_keys()
        assert keys[0] == "stage:base_checkpoints"
        for key in ("base_checkpoints/d4", "base_checkpoints/d4@3000", "mid_checkpoints/d4@400",
                    "chatsft_checkpoints/d4@600", "chatrl_checkpoints/d4@200",
                    "base_checkpoints/d2_legacy@2000", "base_checkpoints/d6@1200"):
            assert key in keys
        d4 = [k for k in keys if k.startswith("base_checkpoints/d4@")]
        assert d4 == [f"base_checkpoints/d4@{s}" for s in (500, 1000, 1500, 2000, 2500, 3000)]
        label = tree._label(tree.ref_for("base_checkpoints/d4@3000")).plain
        assert "3000" in label and "latest" in label and "0.8297" in label
        label = tree._label(tree.ref_for("base_checkpoints/d6@1200")).plain
        assert "no meta" in label
        tag_label = tree._label(tree.ref_for("base_checkpoints/d4")).plain
        assert "6 steps" in tag_label and "bpb 0.8297" in tag_label
        assert app.catalog is not None and app.catalog.free_bytes is not None


async def test_keyboard_navigation(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        assert tree.has_focus and tree.cursor_line == 0
        await pilot.press("j", "j")
        assert tree.cursor_line == 2
        await pilot.press("k")
        assert tree.cursor_line == 1
        await pilot.press("down", "up", "up")
        assert tree.cursor_line == 0
        await pilot.press("G")
        assert tree.cursor_line == tree.last_line
        await pilot.press("g")
        assert tree.cursor_line == 0
        # h on a stage collapses it, l expands it again, l again goes to its first child
        n = len(tree.visible_keys())
        await pilot.press("h")
        assert len(tree.visible_keys()) < n
        await pilot.press("l")
        assert len(tree.visible_keys()) == n
        await pilot.press("l")
        assert tree.current is not None and tree.current.key == "base_checkpoints/d2_legacy"
        await pilot.press("h")  # collapse the tag
        await pilot.press("h")  # then up to the stage
        assert tree.current is not None and tree.current.key == "stage:base_checkpoints"
        # tab moves to the detail pane, enter on a checkpoint does too
        await pilot.press("tab")
        assert app.query_one(DetailPane).has_focus
        await goto(pilot, "base_checkpoints/d4@1000")
        tree.focus()
        await pilot.press("enter")
        assert app.query_one(DetailPane).has_focus


async def test_mouse_selects_a_row(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        target = tree.visible_keys().index("base_checkpoints/d4@1500")
        await pilot.click(CheckpointTree, offset=(12, target))
        await settle(pilot)
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4@1500"
        assert app.query_one(DetailPane).shown_key == "base_checkpoints/d4@1500"


async def test_checkpoint_detail_shows_summary_and_tensors(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, "base_checkpoints/d4@3000")
        assert app.query_one(DetailPane).shown_key == "base_checkpoints/d4@3000"
        text = body_text(app)
        for needle in ("step 3000", "params", "depth", "4 (model_config)", "val_bpb 0.8297",
                       "model_003000.pt", "optim_003000_rank1.pt", "rank 0", "rank 1",
                       "adamw", "muon", "transformer.h.0", "attn.c_q.weight", "transformer.h.3",
                       "lm_head", "bf16", "Tensors (", "grouped by layer"):
            assert needle in text, needle


async def test_tag_detail_shows_plot_and_steps(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, "base_checkpoints/d4")
        text = body_text(app)
        assert "Tag base_checkpoints/d4" in text
        assert "val_bpb" in text and "train loss" in text
        assert any(0x2800 <= ord(ch) <= 0x28FF for ch in text), "no braille plot drawn"
        assert "1.0921" in text and "0.8297" in text  # max and min of the curve
        assert "model_002000_backup.pt" in text  # the stray file, as "other"
        await goto(pilot, "stage:base_checkpoints")
        text = body_text(app)
        assert "Stage base" in text and "d2_legacy" in text and "d6*" in text


async def test_detail_errors_in_plain_words(demo_dir: Path) -> None:
    d4 = demo_dir / "base_checkpoints" / "d4"
    # a truncated model file, last written an hour ago: corrupt, not "writing"
    model = d4 / "model_003000.pt"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    old = time.time() - 3600
    os.utime(model, (old, old))
    # a model whose pickle calls a global outside the allow-list
    evil = demo_dir / "base_checkpoints" / "evil"
    evil.mkdir()
    payload = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85q\x01Rq\x02."
    with zipfile.ZipFile(evil / "model_000100.pt", "w") as zf:
        zf.writestr("model_000100/data.pkl", payload)
        zf.writestr("model_000100/version", "3\n")
    (evil / "meta_000100.json").write_text('{"step": 100, "val_bpb": Infinity}')
    (d4 / "meta_002500.json").write_text("{not json")
    for p in (evil / "model_000100.pt", evil / "meta_000100.json", d4 / "meta_002500.json"):
        os.utime(p, (old, old))
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        ck = tree.obj(tree.ref_for("base_checkpoints/d4@3000"))
        assert ck is not None and ck.state is State.CORRUPT  # type: ignore[union-attr]
        assert "corrupt" in tree._label(tree.ref_for("base_checkpoints/d4@3000")).plain
        await goto(pilot, "base_checkpoints/d4@3000")
        text = body_text(app)
        assert "could not be read" in text and "truncated" in text
        await goto(pilot, "base_checkpoints/evil@100")
        text = body_text(app)
        assert "could not be read" in text and "os.system" in text.replace("\n", "")
        await goto(pilot, "base_checkpoints/d4@2500")
        text = body_text(app)
        assert "broken JSON" in text
        assert "tensors" in text.lower()  # the model itself still reads fine
        await goto(pilot, "base_checkpoints/d4")  # the tag view survives a bad meta too
        assert "broken JSON" in body_text(app).replace("\n", " ")
    assert pickle  # the payload above is a pickle; nothing in it ran


async def test_fast_cursor_run_shows_only_last(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.query_one(DetailPane)
        pane.DEBOUNCE = 0.5  # generous, so the run below is surely inside one window
        await goto(pilot, "base_checkpoints/d4")
        pane.rendered.clear()
        started = pane.loads_started
        await pilot.press(*["j"] * 6, "k", "k", "j", "j")
        tree = app.query_one(CheckpointTree)
        assert tree.current is not None
        final = tree.current.key
        assert final == "base_checkpoints/d4@3000"
        await settle(pilot)
        assert pane.shown_key == final
        full = [k for k in pane.rendered if "@" in k]
        assert full and set(full) == {final}
        assert pane.loads_started - started == 1


async def test_stale_result_is_dropped(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, "base_checkpoints/d4@1000")
        pane = app.query_one(DetailPane)
        tree = app.query_one(CheckpointTree)
        ref = tree.ref_for("base_checkpoints/d4@500")
        stale = DetailPane.Loaded((ref.key, "old"), tree.obj(ref), "x", None)
        pane.post_message(stale)
        await pilot.pause()
        assert pane.shown_key == "base_checkpoints/d4@1000"
        assert "step 1000" in body_text(app)


async def test_sort_filter_and_marks(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        await goto(pilot, "base_checkpoints/d4@1500")
        tree.focus()
        await pilot.press("space")  # marks and moves down
        assert tree.marks == {"base_checkpoints/d4@1500"}
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4@2000"

        def d4_order() -> list[int]:
            return [int(k.rsplit("@", 1)[1]) for k in tree.visible_keys()
                    if k.startswith("base_checkpoints/d4@")]

        await pilot.press("S")  # step, reversed
        assert tree.sort_label == "step ↓" and d4_order() == [3000, 2500, 2000, 1500, 1000, 500]
        assert tree.current.key == "base_checkpoints/d4@2000"  # the cursor follows its row
        await pilot.press("s")  # the next key, size: largest first (all equal here: by step)
        assert tree.sort_label == "size ↓"
        await pilot.press("s")  # val_bpb, best first
        assert tree.sort_label == "val_bpb ↑"
        assert d4_order() == [3000, 2500, 2000, 1500, 1000, 500]
        await pilot.press("s")  # age: newest first
        assert tree.sort_label == "age ↓" and d4_order()[0] == 3000
        await pilot.press("S")  # age ascending: oldest first
        assert tree.sort_label == "age ↑" and d4_order()[0] == 500
        await pilot.press("s")  # back to step ascending
        assert tree.sort_label == "step ↑"

        await pilot.press("slash", "q")  # typed into the filter, not a quit
        assert app.is_running and tree.filter_text == "q"
        await pilot.press("backspace")
        await pilot.press(*"d6")
        assert all("d6" in k for k in tree.visible_keys() if "@" in k)
        assert "base_checkpoints/d6@1200" in tree.visible_keys()
        await pilot.press("enter")
        assert tree.has_focus and tree.filter_text == "d6"
        await pilot.press("slash", "backspace", "backspace", *">2000")
        steps = [int(k.rsplit("@", 1)[1]) for k in tree.visible_keys() if "@" in k]
        assert steps and all(s > 2000 for s in steps)
        await pilot.press("escape")
        assert tree.filter_text == "" and "base_checkpoints/d4@500" in tree.visible_keys()
        assert tree.marks == {"base_checkpoints/d4@1500"}  # marks survive sorting and filtering
        await pilot.press("u")
        assert not tree.marks


async def test_filter_hides_rows_and_keeps_nodes(demo_master: Path) -> None:
    """The filter decides which nodes get a line; the nodes stay (a filter keystroke on a
    huge tree adds and removes nothing). The cursor moves to the nearest row still shown,
    and comes back to its own row's neighbourhood when the filter is cleared."""
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        n_nodes, n_rows = len(tree._by_key), len(tree.visible_keys())
        await goto(pilot, "base_checkpoints/d4@1500")
        tree.set_filter(">2000")
        await settle(pilot)
        assert len(tree._by_key) == n_nodes
        hidden = tree.node_for("base_checkpoints/d4@1500")
        assert hidden is not None and hidden.line == -1  # no stale line number
        shown = tree.visible_keys()
        assert "base_checkpoints/d4@1500" not in shown and "base_checkpoints/d4@2500" in shown
        assert all(tree.node_for(k).line == i for i, k in enumerate(shown))  # type: ignore[union-attr]
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4@2500"
        assert app.detail_pane.shown_key == "base_checkpoints/d4@2500"
        # a stage with nothing left is hidden with its tags; a tag without matches too
        tree.set_filter("d6 >5000")
        await settle(pilot)
        assert tree.visible_keys() == []
        tree.set_filter("")
        await settle(pilot)
        assert len(tree.visible_keys()) == n_rows and hidden.line != -1


async def test_filter_applies_to_steps_written_later(demo_dir: Path) -> None:
    """A rescan under a filter adds the new step's node and shows it only if it matches."""
    import shutil

    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        tree.set_filter("d6")
        await settle(pilot)
        for tag, old, new in (("d6", 800, 1300), ("d4", 3000, 3100)):
            d = demo_dir / "base_checkpoints" / tag
            for kind, ext in (("model", "pt"), ("meta", "json")):
                shutil.copy(d / f"{kind}_{old:06d}.{ext}", d / f"{kind}_{new:06d}.{ext}")
        app.request_scan()
        assert await wait_for(pilot, lambda: tree.node_for("base_checkpoints/d4@3100"), 10)
        await settle(pilot)
        keys = tree.visible_keys()
        assert "base_checkpoints/d6@1300" in keys and "base_checkpoints/d4@3100" not in keys
        assert all("d6" in k for k in keys if "@" in k)


async def test_help_lists_every_key(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(f"{w} {k} {d}" for w, k, d in app.screen.rows)
        for cls in (CkptApp, CheckpointTree, DetailPane):
            for b in cls.BINDINGS:
                assert b.description in text, b  # type: ignore[union-attr]
        for needle in ("j", "k", "space", "Sort", "Filter", "ctrl+p", "Quit"):
            assert needle in text
        scans = app.scan_count  # a rescan while the help is up updates the screen beneath
        app.request_scan()
        assert await wait_for(pilot, lambda: app.scan_count > scans)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_offers_app_actions(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for t in ("Refresh", "Help", "Filter", "Sort by size", "Sort by val_bpb", "Reverse sort",
                  "Clear marks", "Expand all", "Collapse all", "Open demo", "Theme", "Quit"):
            assert t in titles
        await pilot.press("ctrl+p")
        assert await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"sort by val_bpb")
        await pilot.pause(0.3)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: app.query_one(CheckpointTree).sort_key == "val_bpb")


async def test_theme_change_keeps_working(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, "base_checkpoints/d4@3000")
        app.theme = "textual-light"
        await pilot.pause()
        app.theme = "ansi-dark"
        await pilot.pause()
        assert "step 3000" in body_text(app)


async def test_quit_with_q(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_small_terminal(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await goto(pilot, "base_checkpoints/d4@3000")
        tree = app.query_one(CheckpointTree)
        assert tree.size.width >= 34
        assert "size" in tree.header_text().plain  # one size column when narrow
        assert "step 3000" in body_text(app)


async def test_empty_base_dir_explains_itself(tmp_path: Path) -> None:
    (tmp_path / "tokenizer").mkdir()  # a base dir with no checkpoints yet
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.query_one(CheckpointTree).visible_keys() == []
        assert "No checkpoints found" in flat(app)
        await pilot.press("j", "k", "G", "g", "space", "s", "question_mark", "escape")
        assert app.is_running


async def test_label_cache_stays_bounded(demo_master: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Labels drawn while scrolling are cached up to a bound (unbounded, 20,000 rows of
    labels kept the GC busy); rows drawn after a clear are still right."""
    from nanochat_ckpt_tui.tui import tree_labels

    monkeypatch.setattr(tree_labels, "LABEL_CACHE", 8)
    app = make_app(demo_master)
    async with app.run_test(size=(120, 12)) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        tree.focus()
        for _ in range(tree.last_line + 1):
            await pilot.press("j")
            assert len(tree._labels) <= 8
        await settle(pilot)
        assert "3000" in tree._label(tree.ref_for("base_checkpoints/d4@3000")).plain
        assert len(tree._labels) <= 8


def many_steps(base: Path, tags: int, steps: int) -> None:
    """A base dir of empty-zip checkpoints (the tree only needs names, sizes and tails)."""
    empty_zip = b"PK\x05\x06" + b"\x00" * 18
    old = time.time() - 86400
    for t in range(1, tags + 1):
        d = base / "base_checkpoints" / f"d{t}"
        d.mkdir(parents=True)
        for s in range(1, steps + 1):
            for name, data in ((f"model_{s:06d}.pt", empty_zip),
                               (f"meta_{s:06d}.json", b'{"val_bpb": %f}' % (1 - s / 1000))):
                (d / name).write_bytes(data)
                os.utime(d / name, (old, old))


async def test_collapsed_tags_get_their_step_rows_when_expanded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over 400 steps the tree opens with only the default tag expanded, and the steps of
    the others are made when first expanded, in the sort order and filter of that moment."""
    from nanochat_ckpt_tui.tui import tree_sync as tree_module

    monkeypatch.setattr(tree_module, "AUTO_POPULATE", 0)  # the filter opens no new tag
    many_steps(tmp_path, tags=3, steps=150)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        assert tree.node_for("base_checkpoints/d3@150") is not None  # the default tag: d3
        assert tree.node_for("base_checkpoints/d1@1") is None  # not made yet
        d1 = tree.node_for("base_checkpoints/d1")
        assert d1 is not None and not d1.is_expanded
        tree.set_sort("step", descending=True)
        tree.set_filter(">140")
        await settle(pilot)
        tree.move_cursor(d1)
        tree.focus()
        await pilot.press("l")  # expand
        await settle(pilot)
        keys = [k for k in tree.visible_keys() if k.startswith("base_checkpoints/d1@")]
        assert keys == [f"base_checkpoints/d1@{s}" for s in range(150, 140, -1)]
        tree.set_filter("")
        await settle(pilot)
        assert len([k for k in tree.visible_keys() if "d1@" in k]) == 150
        # a rescan keeps the made rows and still leaves d2 alone
        app.request_scan()
        await settle(pilot)
        assert tree.node_for("base_checkpoints/d1@1") is not None
        assert tree.node_for("base_checkpoints/d2@1") is None
        app.expand_all(True)
        await settle(pilot)
        assert len(tree.visible_keys()) == 1 + 3 + 450
