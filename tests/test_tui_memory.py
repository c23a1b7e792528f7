"""Memory over a long session: rescans (the watcher makes one per change while training
writes) must not keep garbage alive, nor queue old catalogs up behind one another."""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.tui import gc_pause
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.disposer import Disposer
from nanochat_ckpt_tui.tui.testing import settle, wait_for

RESCANS = 15


def _stuck() -> int:
    """Objects that only the frozen generation kept (collected here, then the rest frozen
    again)."""
    gc.collect()  # the garbage any collection frees
    gc.unfreeze()
    stuck = gc.collect()
    gc.freeze()
    return stuck


async def test_rescans_leave_no_garbage_frozen(demo_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Each scan freezes what is alive (gc.freeze: a big catalog is not walked by every full
    collection). What became garbage after a freeze (the old catalog's tree rows, Textual's
    self-caching strips) used to stay frozen for good: ~2,300 objects, ~270 KB a rescan. Now
    the next freeze collects it: what is stuck at any time is one rescan's worth."""
    # The app alone on the demo holds ~60,000 objects, under the limit; this process also
    # holds pytest's, torch's and the other tests' (gc.get_objects(): several hundred thousand)
    heap = len(gc.get_objects()) + gc.get_freeze_count()
    monkeypatch.setattr(gc_pause, "COLLECT_ALL_BEFORE_FREEZE",
                        max(gc_pause.COLLECT_ALL_BEFORE_FREEZE, 2 * heap))
    app = CkptApp(demo_dir, watch=False, display_name="demo")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app._disposer.grace = 0.0

        async def rescans(n: int) -> int:
            for _ in range(n):
                app.request_scan()
                await settle(pilot)
                await pilot.press("j")  # (a detail read and a repaint per scan)
                await settle(pilot)
            assert await wait_for(pilot, lambda: app._disposer.dropped >= app_drops[0] + n)
            app_drops[0] += n
            return _stuck()

        app_drops = [app._disposer.dropped]
        one = await rescans(1)
        many = await rescans(RESCANS)
    assert many < 3 * one + 1000, (one, many)  # before: 15 rescans kept ~15x one's


def test_a_burst_of_catalogs_is_freed_after_one_grace(demo_master: Path) -> None:
    """The grace counts from each drop, not one after another: ten rescans in a second do not
    keep ten catalogs alive for ten graces."""
    disposer = Disposer(grace=0.3)
    refs = []
    for _ in range(10):
        cat = scan(demo_master)
        refs.append(weakref.ref(cat))
        disposer.drop(cat)
        del cat
    t0 = time.monotonic()
    while disposer.dropped < 10 and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    took = time.monotonic() - t0
    assert disposer.dropped == 10 and all(r() is None for r in refs)
    assert took < 1.5, took  # one grace and the freeing, not 10 x 0.3 s
    disposer.close()
