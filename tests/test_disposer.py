"""The disposer frees an old catalog on its own thread, and never what is still in use."""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.tui.disposer import Disposer


def _wait(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_old_catalog_is_freed_on_the_disposer_thread(demo_master: Path) -> None:
    cat = scan(demo_master)
    freed_on: list[str] = []
    ck = cat.checkpoints[0]
    weakref.finalize(ck, lambda: freed_on.append(threading.current_thread().name))
    kept = cat.stage("base").tag("d4")  # still in use elsewhere (e.g. an open dialog)
    kept_steps = [c.step for c in kept.checkpoints]  # type: ignore[union-attr]
    gone = weakref.ref(cat)
    disposer = Disposer(grace=0.05)
    disposer.drop(cat)
    del cat, ck
    assert _wait(lambda: disposer.dropped == 1)
    assert gone() is None
    assert freed_on == ["nanochat-ckpt-disposer"]
    # what someone still holds is untouched
    assert [c.step for c in kept.checkpoints] == kept_steps  # type: ignore[union-attr]
    assert kept.total_bytes > 0  # type: ignore[union-attr]
    disposer.close()


async def test_app_hands_replaced_catalogs_to_the_disposer(demo_dir: Path) -> None:
    from nanochat_ckpt_tui.tui.app import CkptApp
    from nanochat_ckpt_tui.tui.testing import settle

    app = CkptApp(demo_dir, watch=False, display_name="demo")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app._disposer.grace = 0.0
        first = weakref.ref(app.catalog)  # type: ignore[arg-type]
        app.request_scan()
        await settle(pilot)
        assert app.catalog is not first()
        assert await pilot.app.wait_until_idle()
        assert _wait(lambda: app._disposer.dropped == 1)
        assert first() is None
