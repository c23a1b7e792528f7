"""The app over a remote base dir (fsspec's memory filesystem): browse, inspect, diff;
nothing that writes is offered."""

from __future__ import annotations

import time

import pytest

from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.diff_screen import DiffScreen
from nanochat_ckpt_tui.tui.testing import settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

pytestmark = pytest.mark.asyncio
D4 = "base_checkpoints/d4"



async def test_browse_remote_read_only(memory_base: str) -> None:
    # the memory filesystem stamps the files "now": look from an hour later, when a
    # recent mtime no longer means "being written"
    app = CkptApp(memory_base, clock=lambda: time.time() + 3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.read_only and app.catalog is not None and not app.catalog.storage.writable
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for(f"{D4}@3000") is not None, 20)
        tree.move_cursor(tree.node_for(f"{D4}@3000"))
        await settle(pilot)
        text = " ".join(app.query_one(DetailPane).body.text.split())
        assert "params" in text and "82,002" in text
        active = {ab.binding.action for ab in app.active_bindings.values()}
        assert "diff" in active and not active & {"delete", "prune_tag", "pin", "note",
                                                  "archive"}
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDelete)
        await pilot.press("d")  # 3000 against 2500, both read with ranged reads
        assert await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        screen = app.screen
        assert await wait_for(pilot, lambda: screen.report is not None, 20)
        assert screen.report.overall.n_tensors == 35


async def test_remote_keys_that_write_say_why(memory_base: str) -> None:
    app = CkptApp(memory_base, clock=lambda: time.time() + 3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for(f"{D4}@3000") is not None, 20)
        tree.move_cursor(tree.node_for(f"{D4}@2500"))
        await settle(pilot)
        for key, said in (("x", "deleting is disabled: a remote base dir is only browsed"),
                          ("a", "archiving copies local files")):
            app.clear_notifications()
            await pilot.press(key)
            await pilot.pause()
            assert any(said in n.message for n in app._notifications), key
            assert app.screen is app.screen_stack[0]
