"""A first scan that takes a while: the tree shows every tag before the scan is done (those
not listed yet say "scanning…"), and neither the rest of the scan nor val_bpb arriving
moves the cursor or undoes what the user opened or closed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_tui_app import many_steps

from nanochat_ckpt_tui.store import layout
from nanochat_ckpt_tui.tui import app as app_module
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.testing import settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

pytestmark = pytest.mark.asyncio


class Gate:
    """Wraps ``target.name`` so that after ``free`` calls, each call waits until opened (or
    10 s have passed: then it opens by itself, so a failing test ends)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: object, name: str,
                 free: int) -> None:
        self.free, self.calls, self.open = free, 0, threading.Event()
        real = getattr(target, name)

        def gated(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls > self.free and not self.open.wait(10):
                self.open.set()
            return real(*args, **kwargs)

        monkeypatch.setattr(target, name, gated)


@pytest.fixture
def partials_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A partial catalog after every tag listed (not after 0.25 s, then every 0.75 s)."""
    monkeypatch.setattr(layout, "FIRST_PARTIAL", 0.0)
    monkeypatch.setattr(layout, "PARTIAL_EVERY", 0.0)


def label(tree: CheckpointTree, key: str) -> str:
    return tree._label(tree.ref_for(key)).plain


def pane(app: CkptApp) -> str:
    return " ".join(app.detail_pane.body.text.split())


def goto(tree: CheckpointTree, key: str) -> None:
    node = tree.node_for(key)
    assert node is not None, key
    tree.move_cursor(node)
    assert tree.current is not None and tree.current.key == key


async def test_tree_shows_before_the_scan_ends_and_keeps_the_cursor(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch, partials_at_once: None) -> None:
    scan_gate = Gate(monkeypatch, layout, "tag_from_rows", free=2)  # base/d6, then mid/d4
    meta_gate = Gate(monkeypatch, app_module, "val_bpb_of", free=0)
    app = CkptApp(demo_dir, watch=False, display_name="demo")
    async with app.run_test(size=(120, 40)) as pilot:
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for("mid_checkpoints/d4@400"), 20)
        await pilot.pause()
        cat = app.catalog
        assert cat is not None and not cat.complete and app.busy
        assert [t.name for t in cat.stage("base").tags] == ["d2_legacy", "d4", "d6"]
        assert "scanning… 2/6 tags" in app._status.text
        assert "scanning…" in label(tree, "base_checkpoints/d4")
        assert "2 scanning…" in label(tree, "stage:base_checkpoints")
        assert "scanning…" not in label(tree, "base_checkpoints/d6")
        assert tree.current is not None and tree.current.key == "stage:base_checkpoints"
        assert await wait_for(pilot, lambda: "d4 … -" in pane(app))  # the stage's table
        # the user closes a tag and sits on one still being scanned
        tree.node_for("mid_checkpoints/d4").collapse()
        goto(tree, "base_checkpoints/d4")
        assert await wait_for(pilot, lambda: "scanning…" in pane(app))
        scan_gate.open.set()  # the rest of the scan; val_bpb is still held
        assert await wait_for(pilot, lambda: app.catalog.complete, 20)
        await pilot.pause()
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4"
        assert tree.node_for("base_checkpoints/d4@3000") is not None  # its steps, shown open
        assert "base_checkpoints/d4@3000" in tree.visible_keys()
        assert "mid_checkpoints/d4@400" not in tree.visible_keys()  # still closed
        assert app._status.info.mode == "reading metas…" and tree.bpb == {}
        goto(tree, "base_checkpoints/d4@1500")
        row = tree.cursor_line
        meta_gate.open.set()
        await settle(pilot)
        assert tree.current.key == "base_checkpoints/d4@1500" and tree.cursor_line == row
        assert tree.bpb["base_checkpoints/d4@1500"] is not None
        assert f"{tree.bpb['base_checkpoints/d4@1500']:.4f}"[:5] in label(
            tree, "base_checkpoints/d4@1500")
        assert "scanning…" not in label(tree, "base_checkpoints/d4")
        assert "scanning" not in app._status.text and app._status.info.mode == "not watching"
        assert "scanning…" not in pane(app) and "1500" in pane(app)


async def test_a_big_base_dir_opens_only_its_default_tag_from_the_first_partial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partials_at_once: None) -> None:
    """Which tags start open is decided from the first partial catalog: 3 tags, the first
    listed with 250 steps, suggest 750 in all, too many to open every tag."""
    base = tmp_path / "base"
    many_steps(base, tags=3, steps=250)
    gate = Gate(monkeypatch, layout, "tag_from_rows", free=1)
    app = CkptApp(base, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for("base_checkpoints/d3@250"), 20)
        assert not app.catalog.complete
        assert tree.visible_keys()[:4] == ["stage:base_checkpoints", "base_checkpoints/d1",
                                           "base_checkpoints/d2", "base_checkpoints/d3"]
        goto(tree, "base_checkpoints/d3@100")
        gate.open.set()
        await settle(pilot)
        assert app.catalog.complete and len(app.catalog.checkpoints) == 750
        assert tree.current.key == "base_checkpoints/d3@100"
        rows = tree.visible_keys()
        assert "base_checkpoints/d1@1" not in rows and "base_checkpoints/d3@1" in rows
        assert len(rows) == 1 + 3 + 250



async def test_a_remote_base_dir_shows_partial_catalogs_too(
        memory_base: str, monkeypatch: pytest.MonkeyPatch, partials_at_once: None) -> None:
    gate = Gate(monkeypatch, layout, "tag_from_rows", free=1)
    app = CkptApp(memory_base, clock=lambda: time.time() + 3600)
    async with app.run_test(size=(120, 40)) as pilot:
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for("base_checkpoints/d6@1200"), 20)
        assert not app.catalog.complete and app.catalog.read_only
        assert "scanning… 1/6 tags" in app._status.text
        goto(tree, "base_checkpoints/d6@800")
        gate.open.set()
        await settle(pilot)
        assert app.catalog.complete and tree.current.key == "base_checkpoints/d6@800"
        assert tree.node_for("chatrl_checkpoints/d4@200") is not None
        assert tree.bpb["base_checkpoints/d4@3000"] is not None
