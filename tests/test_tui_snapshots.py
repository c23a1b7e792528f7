"""SVG snapshots of the main screen on demo data (fixed clock, fixed disk numbers).

Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the SVGs under ``tests/__snapshots__/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.storage import LocalStorage
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.testing import settle
from nanochat_ckpt_tui.tui.tree import CheckpointTree

NOW = 1_780_000_000.0  # 2026-05-28: the demo's files and the app's clock agree on "now"


@pytest.fixture(scope="module")
def fixed_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nanochat_ckpt_tui.store.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("snap") / "base", now=NOW)


@pytest.fixture(autouse=True)
def fixed_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    # (the local storage's free and total bytes: what the app shows in its header)
    monkeypatch.setattr(LocalStorage, "disk_usage", lambda self: (320 * 10**9, 500 * 10**9))


def make_app(base: Path) -> CkptApp:
    return CkptApp(base, clock=lambda: NOW, display_name="~/.cache/nanochat", watch=False)


def on(key: str):  # type: ignore[no-untyped-def]
    """A run_before that waits for the scan, puts the cursor on ``key`` and waits again."""

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        tree = pilot.app.query_one(CheckpointTree)
        tree.move_cursor(tree.node_for(key))
        await settle(pilot)

    return run_before


def test_main_screen_120x40(snap_compare, fixed_demo: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(fixed_demo), terminal_size=(120, 40),
                        run_before=on("base_checkpoints/d4@3000"))


def test_main_screen_80x24(snap_compare, fixed_demo: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(fixed_demo), terminal_size=(80, 24),
                        run_before=on("base_checkpoints/d4@3000"))


def test_tag_summary_120x40(snap_compare, fixed_demo: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(fixed_demo), terminal_size=(120, 40),
                        run_before=on("base_checkpoints/d4"))
