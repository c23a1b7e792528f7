"""Cached check verdicts of many steps at once (for `ls`): no checkpoint byte is read.

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

import time

from .layout import Checkpoint, FileEntry

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any

    from .check_cache import CheckCache
    from .check_report import CheckReport

STEP_KEY = "nanochat-ckpt.step-verdict"
# = store.check.RESULT_VERSION (a test keeps them equal): a listing makes step keys without
# importing the checker (and the pickle reader with it: 8 ms)
RESULT_VERSION = 1
REBUILD_BUDGET = 0.25  # seconds per run spent rebuilding verdicts from per-file results


def _version(ck: Checkpoint, f: FileEntry, listed: tuple[int, dict[str, int]] | None) -> str:
    """A file's version: locally device and inode from its dir's listing, size and mtime (in
    ns: exact, as a float mtime has 0.24 µs steps) from the scan; else the storage's key."""
    if listed is not None and not f.is_link:  # (a link is its target: asked the storage)
        name = f.name
        ino = listed[1].get(name)
        if ino is not None:
            return f"{listed[0]}:{ino}:{f.size}:{int(f.mtime * 1e9)}:{name}"
    return repr(ck.storage.file_key(f.path, f.size, f.mtime))  # gone or new since the scan


def _listings(checkpoints: list[Checkpoint],
              dirs: dict[str, tuple[int, dict[str, int]] | None] | None = None
              ) -> dict[str, tuple[int, dict[str, int]] | None]:
    """Each tag dir's device and its files' inodes, from one listing of the dir, where the
    storage lists them (``Storage.lists_ids``: local disk); None for a dir it could not list.
    Added to ``dirs`` (the dirs already listed are not listed again)."""
    dirs = {} if dirs is None else dirs
    for ck in checkpoints:
        if ck.storage.lists_ids:
            where = str(ck.dir)
            if where not in dirs:
                try:
                    dirs[where] = ck.storage.dir_ids(ck.dir)
                except OSError:
                    dirs[where] = None
    return dirs


def step_keys(checkpoints: list[Checkpoint],
              dirs: dict[str, tuple[int, dict[str, int]] | None] | None = None
              ) -> list[tuple[Any, ...] | None]:
    """The key of each step's remembered verdict (see the module doc); None where the cache
    cannot judge the step (no zip file, a zip still being written, a file gone). Locally each
    tag dir is listed once (its inodes) instead of a stat per file: 0.3 s less for 6,000 steps
    of 10 files."""
    import hashlib  # (here: only a listing with a check cache makes keys)

    dirs = _listings(checkpoints) if dirs is None else dirs
    version = str(RESULT_VERSION)
    blake2b = hashlib.blake2b
    keys: list[tuple[Any, ...] | None] = []
    for ck in checkpoints:
        zips = _zips(ck)
        lists_ids = ck.storage.lists_ids
        listed = dirs.get(str(ck.dir)) if lists_ids else None
        if not zips or not ck.openable or (listed is None and lists_ids):
            keys.append(None)  # (nothing to judge, still being written, or a dir not listed)
            continue
        try:
            parts = [version, ck.state._value_, *ck.problems, ""]
            for f in zips:
                parts.append(_version(ck, f, listed))
            parts.append(_version(ck, ck.meta, listed) if ck.meta else "no meta")
        except OSError:
            keys.append(None)
            continue
        # a digest keeps the key short: it is encoded and looked up for every step listed
        keys.append((STEP_KEY, blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()))
    return keys


def _zips(ck: Checkpoint) -> list[FileEntry]:
    """The step's zips (model or step_N.pt, optimizer shards), in ``ck.files`` order."""
    return [f for f in (ck.model, ck.legacy) if f is not None] + ck.optim


def _first_zip_texts(checkpoints: list[Checkpoint],
                     dirs: dict[str, tuple[int, dict[str, int]] | None]) -> list[str | None]:
    """The check cache's key (as ``key_text`` writes it) of each step's first zip, as
    ``storage.file_key`` makes it, but without a stat where the dir's listing and the scan
    tell it (device, inode, size, mtime in ns); None where it cannot be known."""
    from .check_cache import key_text

    out: list[str | None] = []
    last_dir: Any = None
    listed: tuple[int, dict[str, int]] | None = None
    for ck in checkpoints:
        first = ck.model or ck.legacy or (ck.optim[0] if ck.optim else None)
        if first is None or not ck.openable:
            out.append(None)
            continue
        if ck.storage.lists_ids:
            if ck.dir is not last_dir:  # (a tag's steps share their dir)
                last_dir, listed = ck.dir, dirs.get(str(ck.dir))
            if listed is None:
                out.append(None)
                continue
            ino = listed[1].get(first.name) if not first.is_link else None
            mtime_ns, size = first.mtime_ns, first.size
            if ino is not None and type(mtime_ns) is int and type(size) is int:
                # = key_text(("local", dev, ino, size, mtime_ns)): ints, written as json does
                out.append(f'["local",{listed[0]},{ino},{size},{mtime_ns}]')
                continue
        try:
            out.append(key_text(ck.storage.file_key(first.path, first.size, first.mtime)))
        except OSError:
            out.append(None)
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
                    budget: float | None = None,
                    dirs: dict[str, tuple[int, dict[str, int]] | None] | None = None
                    ) -> tuple[dict[str, str], int]:
    """``ck.key`` → verdict (good, damaged, unhealthy) of each step whose every file a check
    has judged in its current version (steps never checked are left out), and how many steps
    were not looked up once ``budget`` seconds (default ``REBUILD_BUDGET``; ``math.inf``: no
    limit) went to rebuilding verdicts from per-file results.

    A check that judged a step stored its files' results (and ``check`` its verdict): so a
    step whose first zip has no result in its current version was never checked, and nothing
    more is asked about it. Those first-zip keys are made without a stat and looked up in one
    query per 500; only the steps that were checked get a step key, looked up in bulk too. A
    cache full of other files' results no longer costs a lookup and a stat per step (6,000
    steps never checked: 0.25 s before, 30 ms now). ``dirs``: the tag dirs' listings, kept
    across calls that look up a catalog's steps a part at a time (each dir listed once)."""
    from .check_cache import existing_cache, key_text

    cache = cache if cache is not None else existing_cache()
    if cache is None:
        return {}, 0
    budget = REBUILD_BUDGET if budget is None else budget

    dirs = _listings(checkpoints, dirs)
    first_texts = _first_zip_texts(checkpoints, dirs)
    have = cache.existing([t for t in first_texts if t is not None])
    checked = [ck for ck, text in zip(checkpoints, first_texts, strict=True)
               if text is not None and text in have]
    if not checked:
        return {}, 0
    keys = step_keys(checked, dirs)
    texts = [key_text(k) if k is not None else None for k in keys]
    found = cache.get_many([t for t in texts if t is not None])
    out: dict[str, str] = {}
    spent, skipped = 0.0, 0
    for ck, key, text in zip(checked, keys, texts, strict=True):
        if key is None or text is None:
            continue
        doc = found.get(text)
        verdict = doc.get("verdict") if doc is not None else None
        if isinstance(verdict, str):
            out[ck.key] = verdict
            continue
        if spent > budget:
            skipped += 1  # (whether every file was checked is unknown: finding out is the cost)
            continue
        from .check import cached_report  # (only to rebuild: not at every listing)

        t0 = time.perf_counter()
        report = cached_report(ck, cache)
        if report is not None:  # (a step only partly checked is a quick miss: not counted)
            spent += time.perf_counter() - t0
            out[ck.key] = report.verdict
            remember(cache, key, report)
    return out, skipped
