"""Start-up: no torch while browsing, the first-run demo offer, --demo, run_app's signature."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nanochat_ckpt_tui.tui.app import CkptApp, run_app
from nanochat_ckpt_tui.tui.testing import settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree
from nanochat_ckpt_tui.tui.welcome import DEMO_MARKER, WelcomeScreen, write_fresh_demo

BROWSE = textwrap.dedent("""
    import asyncio, sys
    from nanochat_ckpt_tui.tui.app import CkptApp
    from nanochat_ckpt_tui.tui.testing import settle
    from nanochat_ckpt_tui.tui.tree import CheckpointTree

    async def main(base):
        app = CkptApp(base)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            tree = app.query_one(CheckpointTree)
            app.query_one("DetailPane").DEBOUNCE = 0.0
            for line in range(tree.last_line + 1):  # every row: stages, tags, checkpoints
                tree.move_cursor(tree.get_node_at_line(line))
                await settle(pilot)
            await pilot.press("g", "j", "j", "G")
            await pilot.press("question_mark", "escape", "s", "slash", "d", "4", "escape")
            await settle(pilot)
            assert app.query_one("DetailPane").rendered, "nothing was shown"
        print("TORCH" if "torch" in sys.modules else "NO-TORCH")

    asyncio.run(main(sys.argv[1]))
""")


def test_browsing_never_imports_torch(demo_master: Path) -> None:
    out = subprocess.run([sys.executable, "-c", BROWSE, str(demo_master)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH"


def test_run_app_signature() -> None:
    params = list(inspect.signature(run_app).parameters)
    assert params == ["base_dir", "demo", "poll", "read_only", "storage_options"]
    app = CkptApp(None, poll=True, read_only=True)
    assert app.poll and app.read_only


@pytest.mark.asyncio
async def test_first_run_offers_the_demo(tmp_path: Path) -> None:
    demo_root = tmp_path / "demo"
    app = CkptApp(tmp_path / "nothing-here", display_name="nothing", demo_root=demo_root,
                  watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("enter")  # "Open the demo" has the focus
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for("base_checkpoints/d4@3000"), 30)
        assert not isinstance(app.screen, WelcomeScreen)
        assert app.base_dir == demo_root and (demo_root / DEMO_MARKER).is_file()
        assert tree.current is not None and tree.current.key == "stage:base_checkpoints"


@pytest.mark.asyncio
async def test_quit_from_first_run(tmp_path: Path) -> None:
    app = CkptApp(tmp_path / "nothing-here", demo_root=tmp_path / "demo", watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("q")
        await pilot.pause()
    assert not (tmp_path / "demo").exists()


def test_fresh_demo_replaces_only_its_own_dir(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    first = write_fresh_demo(root)
    (root / "leftover.txt").write_text("old")
    again = write_fresh_demo(root)
    assert first == again == root and not (root / "leftover.txt").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    other = write_fresh_demo(foreign)
    assert other != foreign and (foreign / "precious.txt").read_text() == "keep"
    assert (other / "base_checkpoints").is_dir()


@pytest.mark.asyncio
async def test_demo_flag_opens_a_fresh_demo(tmp_path: Path) -> None:
    app = CkptApp(None, demo=True, demo_root=tmp_path / "demo", watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for("chatrl_checkpoints/d4@200"), 30)
        assert not isinstance(app.screen, WelcomeScreen)


async def test_big_first_scan_shows_the_tree_before_reading_metas(
        demo_master: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above EARLY_AT checkpoints the first scan's tree is shown before any meta is read;
    val_bpb fills in when the metas are read (in the same worker)."""
    import threading

    from nanochat_ckpt_tui.tui import app as app_module

    gate = threading.Event()
    real = app_module.val_bpb_of

    def slow_val_bpb(ck):  # type: ignore[no-untyped-def]
        gate.wait(20)
        return real(ck)

    monkeypatch.setattr(app_module, "EARLY_AT", 0)
    monkeypatch.setattr(app_module, "val_bpb_of", slow_val_bpb)
    app = CkptApp(demo_master, watch=False, display_name="demo")
    async with app.run_test(size=(120, 40)) as pilot:
        tree = app.query_one(CheckpointTree)
        key = "base_checkpoints/d4@3000"
        assert await wait_for(pilot, lambda: tree.node_for(key) is not None, 20)
        assert tree.bpb == {} and app.busy  # shown, metas not read yet
        assert app._status.info.mode == "reading metas…"
        tree.move_cursor(tree.node_for("stage:base_checkpoints"))
        gate.set()
        await settle(pilot)
        assert tree.bpb[key] is not None
        assert f"{tree.bpb[key]:.4f}"[:5] in tree._label(tree.ref_for(key)).plain
        assert app.detail_pane.context.bpb is tree.bpb  # the stage view redrawn with them
        assert app._status.info.mode == "not watching"
