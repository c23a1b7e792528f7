"""store.watch: relevant paths, coalesced batches, a base dir that comes and goes, rechecks."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store import layout
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.watch import ChangeBatch, is_relevant, recheck_delay, watch_base


def test_is_relevant() -> None:
    base = "/data/base"
    assert is_relevant("/data/base", base)
    assert is_relevant("/data/base/base_checkpoints", base)
    assert is_relevant("/data/base/base_checkpoints/d20/model_000100.pt", base)
    assert is_relevant("/data/base/sft_checkpoints/x/meta_000001.json", base)
    assert not is_relevant("/data/base/base_data/shard_00001.parquet", base)
    assert not is_relevant("/data/base/report.md", base)
    assert not is_relevant("/data/other/base_checkpoints/d20/model_000100.pt", base)
    assert not is_relevant("/data/base_checkpoints", base)


def _touch(path: Path, age: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty, complete zip
    t = time.time() - age
    os.utime(path, (t, t))


def test_recheck_delay(tmp_path: Path) -> None:
    tag = tmp_path / "base_checkpoints" / "d4"
    _touch(tag / "model_000100.pt", 3600)
    _touch(tag / "meta_000100.json", 3600)
    now = time.time()
    assert recheck_delay(scan(tmp_path, now=now), now) is None
    _touch(tag / "model_000200.pt", 2.0)  # just written: "writing" for the rest of the window
    cat = scan(tmp_path, now=now)
    delay = recheck_delay(cat, now)
    assert delay is not None and layout.WRITE_WINDOW - 2.0 < delay < layout.WRITE_WINDOW
    # a truncated zip stays "writing" until the stall window ends
    (tag / "model_000300.pt").write_bytes(b"PK\x03\x04 half a file")
    t = now - 30
    os.utime(tag / "model_000300.pt", (t, t))
    (tag / "model_000200.pt").unlink()
    delay = recheck_delay(scan(tmp_path, now=now), now)
    assert delay is not None and abs(delay - (layout.STALL_WINDOW - 30)) < 1


async def _collect(gen, until, timeout: float = 8.0) -> list[ChangeBatch]:  # type: ignore[no-untyped-def]
    out: list[ChangeBatch] = []

    async def run() -> None:
        async for batch in gen:
            out.append(batch)
            if until(out):
                return

    await asyncio.wait_for(run(), timeout)
    return out


@pytest.mark.asyncio
async def test_batches_are_coalesced_and_filtered(tmp_path: Path) -> None:
    tag = tmp_path / "base_checkpoints" / "d4"
    tag.mkdir(parents=True)
    (tmp_path / "base_data").mkdir()
    gen = watch_base(tmp_path, debounce_ms=400, step_ms=100)

    async def write() -> None:
        await asyncio.sleep(0.3)
        for i in range(500):
            (tag / f"f{i}").write_bytes(b"x")
            (tmp_path / "base_data" / f"s{i}.parquet").write_bytes(b"x")

    writer = asyncio.create_task(write())
    seen: set[Path] = set()

    def enough(batches: list[ChangeBatch]) -> bool:
        for b in batches:
            seen.update(b.paths)
        return len({p for p in seen if p.name.startswith("f")}) >= 500

    batches = await _collect(gen, enough)
    await writer
    await gen.aclose()
    assert len(batches) <= 4  # 1,000 events arrive as a handful of batches
    assert not any("base_data" in str(p) for p in seen)


@pytest.mark.asyncio
async def test_polling_and_deletion(tmp_path: Path) -> None:
    tag = tmp_path / "base_checkpoints" / "d4"
    tag.mkdir(parents=True)
    (tag / "model_000001.pt").write_bytes(b"x")
    gen = watch_base(tmp_path, poll=True, poll_delay_ms=100, debounce_ms=300, step_ms=50)

    async def change() -> None:
        await asyncio.sleep(0.5)
        (tag / "model_000001.pt").unlink()

    task = asyncio.create_task(change())
    batches = await _collect(gen, lambda bs: any(b.deleted for b in bs))
    await task
    await gen.aclose()
    assert any(tag / "model_000001.pt" in b.deleted for b in batches)


@pytest.mark.asyncio
async def test_missing_base_dir_is_waited_for_and_replacement_noticed(tmp_path: Path) -> None:
    base = tmp_path / "base"
    gen = watch_base(base, check_every=0.2, debounce_ms=200, step_ms=50)

    async def lifecycle() -> None:
        await asyncio.sleep(0.5)
        base.mkdir()
        await asyncio.sleep(1.0)
        shutil.rmtree(base)
        base.mkdir()

    task = asyncio.create_task(lifecycle())
    batches = await _collect(gen, lambda bs: sum(b.reset for b in bs) >= 2)
    await task
    await gen.aclose()
    assert sum(b.reset for b in batches) >= 2


@pytest.mark.asyncio
async def test_stop_event_ends_the_stream(tmp_path: Path) -> None:
    stop = asyncio.Event()
    gen = watch_base(tmp_path, stop_event=stop, check_every=0.2)

    async def stopper() -> None:
        await asyncio.sleep(0.3)
        stop.set()

    task = asyncio.create_task(stopper())
    batches = await _collect(gen, lambda bs: False, timeout=5)
    await task
    assert batches == []
