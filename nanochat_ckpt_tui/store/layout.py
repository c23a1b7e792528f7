"""Scan a nanochat base dir into a :class:`Catalog`: stages → tags → checkpoints (steps).

Scanning only stats files, plus one 22-byte read of each model/optimizer file's tail to see
whether its zip central directory is there yet (cached by path, size and mtime). Meta JSON
is read lazily by :mod:`.summary`. Anything that vanishes or cannot be read mid-scan is
skipped with a note in ``Catalog.notes``; the scan itself never raises for bad contents.

Everything is read through the catalog's :class:`.storage.Storage` (local disk or any fsspec
URL): the scan lists directories with ``Storage.list_dir`` (concurrently where the storage hides
latency), asks ``Storage.zip_whole`` about each zip's tail where that is cheap (local), and
reads the pins sidecars it finds. Every object of the catalog carries its storage.
"""

from __future__ import annotations

import gc
import os
import time

from .catalog import (
    STAGE_DIRS,
    STATE_RANK,
    Catalog,
    Checkpoint,
    FileEntry,
    FileKind,
    Record,
    Stage,
    State,
    Tag,
)
from .localpath import LocalPath
from .storage import LOCAL, Row, Storage, StorageError, is_url, open_storage, redact
from .tagdir import (
    PATTERNS,
    SIDECAR,
    SPECIAL,
    STALL_WINDOW,
    WRITE_WINDOW,
    apply_pins,
    classify,
    describe_error,
    good_rows,
    group_rows,
    load_tag_pins,
    natural_key,
    scan_tag_dir,
    stage_order,
    tag_from_rows,
)

TYPE_CHECKING = False  # (typing, collections.abc: not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# (the records and one tag dir's grouping live in .catalog and .tagdir; this module is where
# the rest of the code finds them, with the scan)
__all__ = ["DEFAULT_BASE", "FIRST_PARTIAL", "LOCAL", "PARTIAL_EVERY", "PATTERNS", "SIDECAR",
           "SPECIAL", "STAGE_DIRS", "STALL_WINDOW", "STATE_RANK", "WRITE_WINDOW", "Catalog",
           "Checkpoint", "FileEntry", "FileKind", "Record", "Stage", "State", "Tag",
           "apply_pins", "classify", "describe_error", "good_rows", "group_rows",
           "load_tag_pins", "natural_key", "resolve_base_dir", "scan", "scan_tag_dir",
           "stage_order", "tag_from_rows"]

DEFAULT_BASE = LocalPath("~/.cache/nanochat")
FIRST_PARTIAL = 0.25  # seconds: a scan still running then shows what it has
PARTIAL_EVERY = 0.75  # seconds between partial catalogs after the first


def __getattr__(name: str) -> Any:  # MODEL_RE, META_RE, … compiled on first use (PEP 562)
    if name not in PATTERNS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import tagdir

    return getattr(tagdir, name)


def resolve_base_dir(arg: str | os.PathLike[str] | None = None) -> LocalPath:
    """The argument, else ``$NANOCHAT_BASE_DIR``, else ``~/.cache/nanochat`` (as nanochat)."""
    raw = arg or os.environ.get("NANOCHAT_BASE_DIR") or DEFAULT_BASE
    return LocalPath(raw).expanduser()


def _try_list(storage: Storage) -> Callable[[Any], list[Row] | BaseException]:
    def one(path: Any) -> list[Row] | BaseException:
        try:
            return storage.list_dir(path)
        except Exception as e:  # a note for this directory; the scan goes on
            return e
    return one


def scan(base: str | os.PathLike[str] | Storage | None = None, *, now: float | None = None,
         storage_options: dict[str, Any] | None = None,
         partial: Callable[[Catalog], object] | None = None,
         first: float | None = None, every: float | None = None) -> Catalog:
    """Scan a base dir: a local path (default ``$NANOCHAT_BASE_DIR`` or ``~/.cache/nanochat``),
    an fsspec URL, or an open :class:`Storage` (a rescan reuses its connection).

    Never raises for what it finds; problems go to ``Catalog.notes``. Raises
    :class:`.storage.StorageError` only when a URL cannot be opened or its root not listed.

    ``partial``: called (in the scanning thread) with partial catalogs while a long scan goes
    on: the first once ``first`` seconds have passed and a tag is listed, then at most every
    ``every`` seconds (defaults: FIRST_PARTIAL, PARTIAL_EVERY). A partial catalog
    (``complete`` False) has every stage and every tag; the tags not listed yet are stand-ins
    (``Tag.scanning``, no steps), the others are the final catalog's own objects, pins
    included. Each stage's default tag (the one a UI opens) is listed first, then the others
    in their order; the result is the same either way.
    """
    if isinstance(base, Storage):
        storage = base
    else:
        location = base if base is not None and is_url(os.fspath(base)) \
            else resolve_base_dir(base)
        storage = open_storage(location, storage_options)
    # The scan allocates several objects per file and frees almost none. With the cyclic GC on,
    # its repeated collections of the growing heap cost as much as the scan itself (0.2-0.5 s
    # for 40,000 files). It creates no reference cycles, so pause the GC and restore it after.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        feed = None if partial is None else _Partials(
            partial, FIRST_PARTIAL if first is None else first,
            PARTIAL_EVERY if every is None else every)
        return _scan(storage, time.time() if now is None else now, feed)
    finally:
        if gc_was_enabled:
            gc.enable()


class _Partials:
    """When a scan hands out a partial catalog, and making one."""

    def __init__(self, post: Callable[[Catalog], object], first: float, every: float) -> None:
        self.post, self.every = post, every
        self.due = time.monotonic() + first
        self.stand_ins: dict[int, Tag] = {}  # job index → its stand-in

    def ready(self) -> bool:
        now = time.monotonic()
        if now < self.due:
            return False
        self.due = now + self.every
        return True

    def send(self, cat: Catalog, jobs: list[tuple[Stage, Any, Row]], tags: list[Tag | None],
             notes: list[list[str]]) -> None:
        """A catalog of ``cat``'s stages, with the tags listed so far (the others stand-ins)
        and the notes so far; new Stage objects, so that no byte total is cached early."""
        stand_ins, storage = self.stand_ins, cat.storage
        by_stage: dict[int, list[Tag]] = {}
        for i, (stage, path, row) in enumerate(jobs):
            tag = tags[i]
            if tag is None:
                tag = stand_ins.get(i)
                if tag is None:
                    tag = stand_ins[i] = Tag(stage.dirname, path.name, path, storage=storage,
                                             mtime=row[3], is_link=row[4], scanning=True)
            by_stage.setdefault(id(stage), []).append(tag)
        out = Catalog(cat.base_dir, notes=cat.notes + [n for ns in notes for n in ns],
                      free_bytes=cat.free_bytes, disk_bytes=cat.disk_bytes,
                      scanned_at=cat.scanned_at, storage=storage, complete=False)
        for stage in cat.stages:
            out.stages.append(Stage(stage.dirname, stage.path,
                                    sorted(by_stage.get(id(stage), []), key=_tag_order),
                                    stage.other_files, stage.error))
        out.stages.sort(key=lambda s: stage_order(s.dirname))
        self.post(out)


def _tag_order(tag: Tag) -> list[object]:
    return natural_key(tag.name)


def _listing_order(jobs: list[tuple[Stage, Any, Row]]) -> list[int]:
    """The order a scan with partial catalogs lists the tag dirs in: each stage's default tag
    first (a UI shows it open), then every tag as the tree shows them."""
    order = sorted(range(len(jobs)), key=lambda i: (stage_order(jobs[i][0].dirname),
                                                    natural_key(jobs[i][1].name)))
    stages: dict[int, Stage] = {}
    for i in order:
        stage = jobs[i][0]
        probe = stages.setdefault(id(stage), Stage(stage.dirname, stage.path))
        probe.tags.append(Tag(stage.dirname, jobs[i][1].name, jobs[i][1], mtime=jobs[i][2][3]))
    first = [next(i for i in order if jobs[i][0].dirname == s.dirname
                  and jobs[i][1].name == s.default_tag)
             for s in stages.values() if s.default_tag is not None]
    chosen = set(first)
    return first + [i for i in order if i not in chosen]


def _scan(storage: Storage, now: float, feed: _Partials | None = None) -> Catalog:
    storage.invalidate()
    root = storage.root
    cat = Catalog(root, scanned_at=now, storage=storage)
    try:
        top = storage.list_dir(root)
    except (FileNotFoundError, NotADirectoryError):
        cat.exists = False
        cat.notes.append(f"{storage.display()}: no such directory")
        return cat
    except Exception as e:
        if storage.writable:  # a local dir we may not read: say so, show nothing
            cat.notes.append(f"{storage.display()}: {describe_error(e)}")
            return cat
        raise StorageError(f"{storage.display()}: cannot list ({type(e).__name__}: "
                           f"{redact(str(e))})") from None
    usage = storage.disk_usage()
    if usage is not None:
        cat.free_bytes, cat.disk_bytes = usage
    stage_rows = [r for r in top if r[1] and r[0].endswith("_checkpoints")]
    stage_paths = [storage.join(root, r[0]) for r in stage_rows]
    tag_jobs: list[tuple[Stage, Any, Row]] = []
    for path, listing in zip(stage_paths, storage.map(_try_list(storage), stage_paths),
                             strict=True):
        stage = Stage(path.name, path)
        cat.stages.append(stage)
        if isinstance(listing, BaseException):
            stage.error = describe_error(listing)
            cat.notes.append(f"{storage.display(path)}: {stage.error}")
            continue
        for row in good_rows(storage, path, listing, cat.notes):
            name, is_dir, size, mtime, is_link, mtime_ns = row
            if is_dir:
                tag_jobs.append((stage, storage.join(path, name), row))
            else:
                stage.other_files.append(FileEntry(storage.join(path, name), FileKind.OTHER,
                                                   size, mtime, None, None, is_link,
                                                   mtime_ns or None))
    # Each tag's notes are kept apart and joined in the listing's order at the end, so the
    # catalog is the same whatever order the tags were listed in.
    order = list(range(len(tag_jobs))) if feed is None else _listing_order(tag_jobs)
    tags: list[Tag | None] = [None] * len(tag_jobs)
    tag_notes: list[list[str]] = [[] for _ in tag_jobs]
    with_pins: list[int] = []  # the jobs whose tag has a pins sidecar
    unpinned: list[Tag] = []  # pins not read yet
    listings = storage.imap(_try_list(storage), [tag_jobs[i][1] for i in order])
    for i, listing in zip(order, listings, strict=True):
        stage, path, row = tag_jobs[i]
        if isinstance(listing, BaseException):
            tag = Tag(stage.dirname, path.name, path, storage=storage, mtime=row[3],
                      is_link=row[4], error=describe_error(listing))
            tag_notes[i].append(f"{storage.display(path)}: {tag.error}")
        else:
            tag = tag_from_rows(storage, stage.dirname, path, listing, tag_notes[i], now,
                                mtime=row[3], is_link=row[4])
            if SIDECAR in [r[0] for r in listing] and any(
                    r[0] == SIDECAR and not r[1] for r in listing):
                with_pins.append(i)
                unpinned.append(tag)
        tags[i] = tag
        if feed is not None and feed.ready() and None in tags:
            if unpinned:  # (a pins error is the tag's own note: see below)
                load_tag_pins(storage, unpinned, [])
                unpinned = []
            feed.send(cat, tag_jobs, tags, tag_notes)
    if unpinned:
        load_tag_pins(storage, unpinned, [])
    for (stage, _, _), tag, notes in zip(tag_jobs, tags, tag_notes, strict=True):
        stage.tags.append(tag)  # type: ignore[arg-type]  # (every job was listed)
        cat.notes += notes
    # (load_tag_pins notes a sidecar it cannot read as the tag's pins_error)
    pinned = [tags[i] for i in sorted(with_pins)]
    cat.notes += [t.pins_error for t in pinned if t is not None and t.pins_error is not None]
    for stage in cat.stages:
        stage.tags.sort(key=_tag_order)
    cat.stages.sort(key=lambda s: stage_order(s.dirname))
    return cat
