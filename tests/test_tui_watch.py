"""The live watcher inside the app: steps appear and vanish while training writes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store import tagdir
from nanochat_ckpt_tui.store.demo import write_tag
from nanochat_ckpt_tui.store.layout import State
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.testing import settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

pytestmark = pytest.mark.asyncio
SIZE = (120, 40)


@pytest.fixture
def short_window(monkeypatch: pytest.MonkeyPatch) -> float:
    """A 1 s "being written" window instead of 5 s, so the badge clears quickly."""
    monkeypatch.setattr(tagdir, "WRITE_WINDOW", 1.0)
    return 1.0


def state_of(tree: CheckpointTree, key: str) -> State | None:
    node = tree.node_for(key)
    ck = tree.obj(node.data) if node is not None else None
    return getattr(ck, "state", None)


async def test_new_step_appears_and_writing_badge_clears(demo_dir: Path,
                                                         short_window: float) -> None:
    app = CkptApp(demo_dir, display_name="demo")
    d4 = demo_dir / "base_checkpoints" / "d4"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        tree.move_cursor(tree.node_for("base_checkpoints/d4@2000"))
        tree.marks.add("base_checkpoints/d4@1000")
        tree.node_for("mid_checkpoints/d4").collapse()  # type: ignore[union-attr]
        await settle(pilot)
        t0 = time.monotonic()
        write_tag(d4, depth=4, steps=[3500], total=3000, seed=4)
        written = time.monotonic()
        assert await wait_for(pilot, lambda: tree.node_for("base_checkpoints/d4@3500"), 5)
        assert time.monotonic() - written < 2.5, "a new step should show within ~2 s"
        # the cursor, the marks and the expansion stayed
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4@2000"
        assert tree.marks == {"base_checkpoints/d4@1000"}
        assert not tree.node_for("mid_checkpoints/d4").is_expanded  # type: ignore[union-attr]
        assert "base_checkpoints/d4@3500" in tree.visible_keys()
        # just written: "writing", then the extra rescan after the window clears it
        assert await wait_for(
            pilot, lambda: state_of(tree, "base_checkpoints/d4@3500") is State.COMPLETE, 6)
        assert time.monotonic() - t0 < 8
        label = tree._label(tree.ref_for("base_checkpoints/d4@3500")).plain
        assert "latest" in label and "writing" not in label
        assert "latest" not in tree._label(tree.ref_for("base_checkpoints/d4@3000")).plain


async def test_deleted_step_and_tag_vanish(demo_dir: Path) -> None:
    app = CkptApp(demo_dir, display_name="demo")
    d4 = demo_dir / "base_checkpoints" / "d4"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        tree.move_cursor(tree.node_for("base_checkpoints/d4@1000"))
        await settle(pilot)
        for f in d4.glob("*_001000*"):
            f.unlink()
        assert await wait_for(pilot, lambda: tree.node_for("base_checkpoints/d4@1000") is None, 5)
        # the cursor moved to the neighbour, and the pane follows it
        assert tree.current is not None and tree.current.key == "base_checkpoints/d4@1500"
        await settle(pilot)
        assert app.query_one(DetailPane).shown_key == "base_checkpoints/d4@1500"
        for f in (demo_dir / "chatrl_checkpoints" / "d4").iterdir():
            f.unlink()
        (demo_dir / "chatrl_checkpoints" / "d4").rmdir()
        assert await wait_for(pilot, lambda: tree.node_for("chatrl_checkpoints/d4") is None, 5)


async def test_half_written_file_shows_writing_and_is_not_opened(demo_dir: Path) -> None:
    app = CkptApp(demo_dir, display_name="demo")
    d4 = demo_dir / "base_checkpoints" / "d4"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        data = (d4 / "model_003000.pt").read_bytes()
        (d4 / "model_004000.pt").write_bytes(data[: len(data) // 3])  # torch.save in flight
        key = "base_checkpoints/d4@4000"
        assert await wait_for(pilot, lambda: tree.node_for(key), 5)
        assert state_of(tree, key) is State.WRITING
        assert "writing" in tree._label(tree.ref_for(key)).plain
        tree.move_cursor(tree.node_for(key))
        await settle(pilot)
        text = " ".join(app.query_one(DetailPane).body.text.split())
        assert "still being written" in text and "not opened" in text
        # the file grows: it stays "writing" while it has no zip directory
        with open(d4 / "model_004000.pt", "ab") as f:
            f.write(data[len(data) // 3: 2 * len(data) // 3])
        await pilot.pause(1.5)
        assert state_of(tree, key) is State.WRITING


async def test_burst_of_events_is_one_rescan(demo_dir: Path) -> None:
    app = CkptApp(demo_dir, display_name="demo")
    d4 = demo_dir / "base_checkpoints" / "d4"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        scans = app.scan_count
        for i in range(1000):
            (d4 / f"junk_{i:04d}.txt").write_bytes(b"x")
        tag = lambda: tree.obj(tree.ref_for("base_checkpoints/d4"))  # noqa: E731
        assert await wait_for(pilot, lambda: len(tag().other_files) == 1001, 8)  # type: ignore[union-attr]
        # (the watcher may still be delivering the last events after the scan saw the files)
        assert await wait_for(pilot, lambda: app.events_seen >= 1000, 8), app.events_seen
        await settle(pilot)
        assert app.scan_count - scans <= 3
        # the UI kept answering keys
        before = tree.cursor_line
        await pilot.press("j")
        assert tree.cursor_line == before + 1


async def test_new_tag_and_stage_appear(demo_dir: Path) -> None:
    app = CkptApp(demo_dir, display_name="demo")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        write_tag(demo_dir / "base_checkpoints" / "d8", depth=2, steps=[10], total=100, world=0)
        write_tag(demo_dir / "mystery_checkpoints" / "x1", depth=2, steps=[5], total=100, world=0,
                  meta_kind="rl")
        assert await wait_for(pilot, lambda: tree.node_for("base_checkpoints/d8@10"), 5)
        assert await wait_for(pilot, lambda: tree.node_for("mystery_checkpoints/x1@5"), 5)
        keys = tree.visible_keys()
        assert keys.index("base_checkpoints/d8") > keys.index("base_checkpoints/d6")


async def test_missing_dir_then_created(tmp_path: Path) -> None:
    base = tmp_path / "later"
    app = CkptApp(base, display_name="later", demo_root=tmp_path / "demo")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.catalog is not None and not app.catalog.exists
        assert type(app.screen).__name__ == "WelcomeScreen"
        write_tag(base / "base_checkpoints" / "d2", depth=2, steps=[1], total=1, world=0)
        old = time.time() - 60
        for f in (base / "base_checkpoints" / "d2").iterdir():
            os.utime(f, (old, old))
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for("base_checkpoints/d2@1"), 8)
        assert await wait_for(pilot, lambda: type(app.screen).__name__ != "WelcomeScreen", 3)
