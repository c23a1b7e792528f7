"""Watch a base dir while training writes into it: coalesced batches of changed paths.

Wraps :func:`watchfiles.awatch` (inotify, or polling with ``poll=True`` for network
filesystems). Only paths under ``*_checkpoints`` dirs count, so a dataset download next to
the checkpoints does not cause rescans. A missing base dir is waited for; a base dir that is
deleted and re-created is picked up again. What is "still being written" is decided by the
scanner (:mod:`.layout`); :func:`recheck_delay` says when that verdict can next change, so a
caller can rescan once more after the last write even if no file event follows.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from watchfiles import Change, awatch

from . import tagdir
from .layout import Catalog, State

RECHECK_MARGIN = 0.3  # seconds past a window's end before rescanning


@dataclass(frozen=True)
class ChangeBatch:
    """One coalesced batch of file events under the base dir."""

    added: frozenset[Path] = field(default_factory=frozenset)
    modified: frozenset[Path] = field(default_factory=frozenset)
    deleted: frozenset[Path] = field(default_factory=frozenset)
    reset: bool = False  # the base dir appeared, vanished or was replaced: rescan everything
    error: str | None = None

    @property
    def paths(self) -> frozenset[Path]:
        return self.added | self.modified | self.deleted

    def __len__(self) -> int:
        return len(self.paths) + int(self.reset)


def is_relevant(path: str | os.PathLike[str], base: str | os.PathLike[str]) -> bool:
    """True for the base dir itself and anything under one of its ``*_checkpoints`` dirs."""
    rel = os.path.relpath(os.fspath(path), os.fspath(base))
    if rel == ".":
        return True
    if rel.startswith(".."):
        return False
    return rel.split(os.sep, 1)[0].endswith("_checkpoints")


def _batch(changes: set[tuple[Change, str]]) -> ChangeBatch:
    by_kind: dict[Change, set[Path]] = {Change.added: set(), Change.modified: set(),
                                        Change.deleted: set()}
    for change, path in changes:
        by_kind[change].add(Path(path))
    return ChangeBatch(frozenset(by_kind[Change.added]), frozenset(by_kind[Change.modified]),
                       frozenset(by_kind[Change.deleted]))


def _identity(base: Path) -> tuple[int, int] | None:
    try:
        st = base.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if os.path.isdir(base) else None


async def watch_base(base: str | os.PathLike[str], *, poll: bool = False,
                     debounce_ms: int = 800, step_ms: int = 50, poll_delay_ms: int = 500,
                     check_every: float = 2.0,
                     stop_event: asyncio.Event | None = None) -> AsyncIterator[ChangeBatch]:
    """Yield one :class:`ChangeBatch` per burst of relevant file events, until cancelled.

    ``debounce_ms`` bounds how long events are gathered into one batch; a batch is yielded
    ``step_ms`` after the last event of a burst. Every ``check_every`` seconds the base dir
    is checked: when it appears, vanishes or is replaced, a ``reset`` batch is yielded.
    """
    base = Path(base)
    root = str(base)

    def relevant(_change: Change, path: str) -> bool:
        return is_relevant(path, root)

    while stop_event is None or not stop_event.is_set():
        ident = _identity(base)
        if ident is None:  # not there (yet): wait for it
            while _identity(base) is None:
                if stop_event is not None and stop_event.is_set():
                    return
                await asyncio.sleep(check_every)
            yield ChangeBatch(reset=True)
            continue
        try:
            async for changes in awatch(
                base, watch_filter=relevant, debounce=debounce_ms, step=step_ms,
                stop_event=stop_event, rust_timeout=int(check_every * 1000),
                yield_on_timeout=True, force_polling=poll, poll_delay_ms=poll_delay_ms,
                ignore_permission_denied=True,
            ):
                gone = any(c is Change.deleted and os.path.normpath(p) == os.path.normpath(root)
                           for c, p in changes)
                if gone or _identity(base) != ident:  # removed, or replaced by another dir
                    yield ChangeBatch(reset=True)
                    break
                if changes:
                    yield _batch(changes)
            else:
                return  # stop_event was set
        except (OSError, RuntimeError) as e:  # watcher could not start or died
            yield ChangeBatch(reset=True, error=f"file watcher: {e}")
            await asyncio.sleep(check_every)


def recheck_delay(catalog: Catalog, now: float) -> float | None:
    """Seconds until the scanner's "writing" verdict on some checkpoint can change, or None.

    A group is "writing" while its newest file is younger than ``WRITE_WINDOW``, and a model
    or optimizer file without a zip directory is "writing" (not "corrupt") for
    ``STALL_WINDOW``. No file event marks the end of either window, so rescan after it.
    """
    delays = []
    for ck in catalog.checkpoints:
        if ck.state is not State.WRITING:
            continue
        until = ck.mtime + tagdir.WRITE_WINDOW - now
        if until <= 0:
            until = ck.mtime + tagdir.STALL_WINDOW - now
        delays.append(max(until, 0.0) + RECHECK_MARGIN)
    return min(delays) if delays else None
