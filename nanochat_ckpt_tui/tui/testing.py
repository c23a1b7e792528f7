"""Helpers for driving the app headless: tests, the screenshot script, the benchmark."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from textual.pilot import Pilot

from .app import CkptApp
from .tree import CheckpointTree


async def wait_for(pilot: Pilot[None], predicate: Callable[[], object],
                   timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Let the app run until ``predicate()`` is true; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await pilot.pause(interval)


async def settle(pilot: Pilot[None], timeout: float = 10.0) -> None:
    """Wait until scans and detail loads are done and their results are painted."""
    app = pilot.app
    assert isinstance(app, CkptApp)
    await pilot.pause()
    for _ in range(3):  # a finished load can trigger one more (e.g. a rescan)
        if not await app.wait_until_idle(timeout):
            raise TimeoutError("the app did not become idle")
        await pilot.pause()
        if not app.busy:
            break
    await asyncio.sleep(0)


async def goto(pilot: Pilot[None], key: str) -> CheckpointTree:
    """Move the tree's cursor to the row with ``key`` (which must exist), focus the tree and
    wait for the row's details; returns the tree."""
    tree = pilot.app.query_one(CheckpointTree)
    node = tree.node_for(key)
    assert node is not None, key
    tree.move_cursor(node)
    tree.focus()
    await settle(pilot)
    return tree
