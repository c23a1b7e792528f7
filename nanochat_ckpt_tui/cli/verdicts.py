"""Cached check verdicts for ``ls`` and ``show``: no checkpoint byte is read.

:func:`~nanochat_ckpt_tui.store.check.cached_report` rebuilds a step's report from the per-file
results in the check cache. Each file's result holds every tensor's health, so that is ~4 ms a
step with 8 optimizer shards (24 s for 6,000 such steps): too slow for ``ls``, which needs only
the verdict. So the verdict is remembered in the same cache, under a step key made of
everything the report depends on: each zip's and the meta's version (local: device, inode,
size, mtime; the inodes from one listing of each tag dir, size and mtime from the scan, not a
stat per file), the step's state and problems, and the version of the cached results. A change
to any of them misses, and the report is rebuilt once from the per-file results.

``check`` remembers each verdict it finds. Steps checked elsewhere (the app, a prune's
verification) are remembered by the first ``ls`` that shows them, within a time budget per
run: once it is spent, the steps not remembered yet are not looked up (they are counted, for a
note) and are left for the next run, or for a ``check``, which reads nothing again for them.

The cache is looked at only when its file exists: when no check ever ran, ``ls`` stats no file
and opens no database (nor imports sqlite3).
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, Any

from ..store.layout import Checkpoint, FileEntry, FileKind
from ..store.storage import LocalStorage

if TYPE_CHECKING:
    from ..store.check import CheckReport
    from ..store.check_cache import CheckCache

STEP_KEY = "nanochat-ckpt.step-verdict"
REBUILD_BUDGET = 0.25  # seconds per run spent rebuilding verdicts from per-file results
_ZIP_KINDS = (FileKind.MODEL, FileKind.OPTIM, FileKind.LEGACY)


def existing_cache() -> CheckCache | None:
    """The user's check cache, or None when it was never written (nothing checked yet)."""
    from ..store.check_cache import cache_dir, default_cache

    path = cache_dir() / "checks.sqlite"
    return default_cache() if path.is_file() else None


def _version(ck: Checkpoint, f: FileEntry, listed: tuple[int, dict[str, int]] | None) -> str:
    """A file's version: locally device and inode from its dir's listing, size and mtime (in
    ns: exact, as a float mtime has 0.24 µs steps) from the scan; else the storage's key."""
    if listed is not None and not f.is_link:  # (a link is its target: asked the storage)
        name = f.path.name
        ino = listed[1].get(name)
        if ino is not None:
            return f"{listed[0]}:{ino}:{f.size}:{int(f.mtime * 1e9)}:{name}"
    return repr(ck.storage.file_key(f.path, f.size, f.mtime))  # gone or new since the scan


def step_keys(checkpoints: list[Checkpoint]) -> list[tuple[Any, ...] | None]:
    """The key of each step's remembered verdict (see the module doc); None where the cache
    cannot judge the step (no zip file, a zip still being written, a file gone). Locally each
    tag dir is listed once (its inodes) instead of a stat per file: 0.3 s less for 6,000 steps
    of 10 files."""
    from ..store.check import RESULT_VERSION

    dirs: dict[str, tuple[int, dict[str, int]] | None] = {}
    out: list[tuple[Any, ...] | None] = []
    for ck in checkpoints:
        zips = [f for f in ck.files if f.kind in _ZIP_KINDS]
        if not zips or not ck.openable:
            out.append(None)
            continue
        try:
            listed = None
            if isinstance(ck.storage, LocalStorage):
                where = str(ck.dir)
                if where not in dirs:
                    with os.scandir(where) as it:
                        dirs[where] = (os.stat(where).st_dev, {e.name: e.inode() for e in it})
                listed = dirs[where]
            parts = [str(RESULT_VERSION), ck.state.value, *ck.problems, "",
                     *(_version(ck, f, listed) for f in zips),
                     _version(ck, ck.meta, listed) if ck.meta else "no meta"]
        except OSError:
            out.append(None)
            continue
        # a digest keeps the key short: it is encoded and looked up for every step listed
        digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()
        out.append((STEP_KEY, digest))
    return out


def remember(cache: CheckCache, key: tuple[Any, ...] | None, report: CheckReport) -> None:
    """Keep a report's verdict under its step key (made before the files were read, so a file
    that changed meanwhile leaves only a key that never matches again)."""
    if key is None or report.verdict == "unchecked":
        return
    doc = {"verdict": report.verdict, "summary": report.summary()}
    if cache.get(key) != doc:  # (a lookup costs ~1/20 of a write)
        cache.put(key, doc)


def skipped_note(n: int) -> str:
    """Why ``n`` steps have no verdict in this listing although they may have been checked."""
    return (f"check verdicts of {n:,} step{'s' if n != 1 else ''} not looked up this time (a "
            "listing spends at most a moment rebuilding the verdicts of steps checked by the "
            "app or a prune): list again, or run `nanochat-ckpt check`, which reads nothing "
            "again for steps already checked")


def cached_verdicts(checkpoints: list[Checkpoint], cache: CheckCache | None = None, *,
                    budget: float | None = None) -> tuple[dict[str, str], int]:
    """``ck.key`` → verdict (good, damaged, unhealthy) of each step whose every file a check
    has judged in its current version (steps never checked are left out), and how many steps
    were not looked up once ``budget`` seconds (default ``REBUILD_BUDGET``; ``math.inf``: no
    limit) went to rebuilding verdicts from per-file results."""
    cache = cache if cache is not None else existing_cache()
    if cache is None:
        return {}, 0
    budget = REBUILD_BUDGET if budget is None else budget
    from ..store.check import cached_report

    out: dict[str, str] = {}
    spent, skipped = 0.0, 0
    for ck, key in zip(checkpoints, step_keys(checkpoints), strict=True):
        if key is None:
            continue
        doc = cache.get(key)
        verdict = doc.get("verdict") if doc is not None else None
        if isinstance(verdict, str):
            out[ck.key] = verdict
            continue
        if spent > budget:
            skipped += 1  # (whether it was checked is unknown: finding out is the cost)
            continue
        t0 = time.perf_counter()
        report = cached_report(ck, cache)
        if report is not None:  # (a step never checked is a quick miss: not counted)
            spent += time.perf_counter() - t0
            out[ck.key] = report.verdict
            remember(cache, key, report)
    return out, skipped

