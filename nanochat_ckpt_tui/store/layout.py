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

import enum
import gc
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .pins import SIDECAR, PinEntry, PinsError, parse_pins
from .storage import LOCAL, Row, Storage, StorageError, is_url, open_storage, redact

DEFAULT_BASE = Path("~/.cache/nanochat")
WRITE_WINDOW = 5.0  # seconds: a group with a file modified this recently is "being written"
STALL_WINDOW = 120.0  # seconds: an unreadable zip this recent is still being written

STAGE_DIRS: dict[str, str] = {
    "base_checkpoints": "base",
    "mid_checkpoints": "mid",
    "chatsft_checkpoints": "sft",
    "sft_checkpoints": "sft*",  # written by a bug between 2026-01-31 and 02-01
    "chatrl_checkpoints": "rl",
}

MODEL_RE = re.compile(r"model_(\d+)\.pt")
META_RE = re.compile(r"meta_(\d+)\.json")
OPTIM_RE = re.compile(r"optim_(\d+)_rank(\d+)\.pt")
OPTIM_OLD_RE = re.compile(r"optim_(\d+)\.pt")
LEGACY_RE = re.compile(r"step_(\d+)\.pt")


class FileKind(str, enum.Enum):
    MODEL = "model"
    META = "meta"
    OPTIM = "optim"
    LEGACY = "legacy"  # step_N.pt wrapper: weights (and maybe optimizer) in one file
    OTHER = "other"


class State(str, enum.Enum):
    """One word for a checkpoint's condition, most urgent first."""

    WRITING = "writing"
    CORRUPT = "corrupt"
    UNREADABLE = "unreadable"  # a model our reader refuses (found when it is read)
    ORPHAN = "orphan"  # meta without model
    BAD_META = "bad meta"  # a meta nanochat's loader would fail on (found when it is read)
    NO_META = "no meta"
    OPTIM_INCOMPLETE = "optim incomplete"
    COMPLETE = "complete"


@dataclass(frozen=True)
class FileEntry:
    """One file. On a remote storage ``path`` is a :class:`.storage.RemotePath`: a pure path that
    ``os`` functions refuse, so no local file can be touched through it by mistake; read it
    through its checkpoint's ``storage``."""

    path: Path
    kind: FileKind
    size: int
    mtime: float
    step: int | None = None
    rank: int | None = None
    is_link: bool = False

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Checkpoint:
    """One step of one tag: the group of files nanochat writes for it."""

    stage: str  # stage dir name, e.g. "base_checkpoints"
    tag: str
    step: int
    dir: Path
    model: FileEntry | None = None
    meta: FileEntry | None = None
    optim: list[FileEntry] = field(default_factory=list)
    legacy: FileEntry | None = None
    state: State = State.COMPLETE
    problems: list[str] = field(default_factory=list)
    is_latest: bool = False
    pinned: bool = False
    note: str | None = None
    unfinished: tuple[str, ...] = ()  # files whose zip is not whole yet: never opened
    storage: Storage = field(default=LOCAL, repr=False, compare=False)  # where the files live

    @cached_property
    def key(self) -> str:
        """``base_checkpoints/d20@5000`` (made once: UIs look rows up by it constantly)."""
        return f"{self.stage}/{self.tag}@{self.step}"

    @property
    def weights(self) -> FileEntry | None:
        """The file holding the weights: model_N.pt, or the older step_N.pt wrapper."""
        return self.model or self.legacy

    @property
    def files(self) -> list[FileEntry]:
        return [f for f in (self.model, self.legacy, self.meta) if f] + self.optim

    @property
    def model_bytes(self) -> int:
        return sum(f.size for f in (self.model, self.legacy) if f)

    @property
    def optim_bytes(self) -> int:
        return sum(f.size for f in self.optim)

    @property
    def meta_bytes(self) -> int:
        return self.meta.size if self.meta else 0

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def mtime(self) -> float:
        return max((f.mtime for f in self.files), default=0.0)

    @property
    def ranks(self) -> list[int]:
        return sorted(f.rank for f in self.optim if f.rank is not None)

    @property
    def is_writing(self) -> bool:
        return self.state is State.WRITING

    @property
    def openable(self) -> bool:
        """Every zip of the step is whole (a file copied a moment ago opens at once; only a
        file whose zip has no end yet is refused as still being written)."""
        return not self.unfinished

    def downgrade(self, state: State, problem: str) -> None:
        """Record what a later read found (a bad meta, an unreadable model); the state
        becomes ``state`` unless the current one is more urgent."""
        if problem not in self.problems:
            self.problems.append(problem)
        if _STATE_RANK[state] < _STATE_RANK[self.state]:
            self.state = state


@dataclass
class Tag:
    """One model tag dir. Its byte totals are computed once, on first use (a catalog is not
    changed after its scan; a new scan builds new objects): a tag of 400 steps × 10 files
    costs ~4 ms to sum, a stage of 50 such tags 0.2 s."""

    stage: str
    name: str
    path: Path
    checkpoints: list[Checkpoint] = field(default_factory=list)
    other_files: list[FileEntry] = field(default_factory=list)
    mtime: float = 0.0
    is_link: bool = False
    pins_error: str | None = None  # the sidecar is corrupt: pins unknown, so prune protects all
    storage: Storage = field(default=LOCAL, repr=False, compare=False)
    error: str | None = None  # the tag dir could not be listed (e.g. "permission denied")

    @property
    def latest_step(self) -> int | None:
        """What nanochat's ``find_last_step`` returns: the largest step of any model_N.pt."""
        steps = [c.step for c in self.checkpoints if c.model is not None]
        if not steps:  # older layout: only step_N.pt files
            steps = [c.step for c in self.checkpoints if c.legacy is not None]
        return max(steps) if steps else None

    @property
    def latest(self) -> Checkpoint | None:
        step = self.latest_step
        return next((c for c in self.checkpoints if c.step == step), None)

    def checkpoint(self, step: int) -> Checkpoint | None:
        return next((c for c in self.checkpoints if c.step == step), None)

    @cached_property
    def total_bytes(self) -> int:
        return sum(c.total_bytes for c in self.checkpoints) + self.other_bytes

    @cached_property
    def model_bytes(self) -> int:
        return sum(c.model_bytes for c in self.checkpoints)

    @cached_property
    def optim_bytes(self) -> int:
        return sum(c.optim_bytes for c in self.checkpoints)

    @cached_property
    def meta_bytes(self) -> int:
        return sum(c.meta_bytes for c in self.checkpoints)

    @cached_property
    def other_bytes(self) -> int:
        return sum(f.size for f in self.other_files)


@dataclass
class Stage:
    dirname: str
    path: Path
    tags: list[Tag] = field(default_factory=list)
    other_files: list[FileEntry] = field(default_factory=list)
    error: str | None = None  # the stage dir could not be listed

    @property
    def label(self) -> str:
        return STAGE_DIRS.get(self.dirname, self.dirname.removesuffix("_checkpoints"))

    @property
    def default_tag(self) -> str | None:
        """The tag nanochat loads when none is given (``find_largest_model``)."""
        candidates = []
        for t in self.tags:
            m = re.match(r"d(\d+)", t.name)
            if m:
                candidates.append((int(m.group(1)), t.name))
        if candidates:
            # nanochat sorts by depth only (stable), so ties keep directory order
            return max(candidates, key=lambda c: c[0])[1]
        return max(self.tags, key=lambda t: t.mtime).name if self.tags else None

    def tag(self, name: str) -> Tag | None:
        return next((t for t in self.tags if t.name == name), None)

    @cached_property
    def total_bytes(self) -> int:
        return sum(t.total_bytes for t in self.tags) + sum(f.size for f in self.other_files)

    @cached_property
    def model_bytes(self) -> int:
        return sum(t.model_bytes for t in self.tags)

    @cached_property
    def optim_bytes(self) -> int:
        return sum(t.optim_bytes for t in self.tags)

    @cached_property
    def meta_bytes(self) -> int:
        return sum(t.meta_bytes for t in self.tags)


@dataclass
class Catalog:
    """Everything found under one base dir at one moment."""

    base_dir: Path
    stages: list[Stage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    free_bytes: int | None = None
    disk_bytes: int | None = None
    scanned_at: float = 0.0
    exists: bool = True
    storage: Storage = field(default=LOCAL, repr=False, compare=False)

    @property
    def read_only(self) -> bool:
        return not self.storage.writable

    @property
    def location(self) -> str:
        """What to show the user: the local base dir, or the URL (no password)."""
        return self.storage.display()

    @property
    def tags(self) -> list[Tag]:
        return [t for s in self.stages for t in s.tags]

    @property
    def checkpoints(self) -> list[Checkpoint]:
        return [c for t in self.tags for c in t.checkpoints]

    def warm(self) -> Catalog:
        """Compute every stage's and tag's byte totals now (e.g. in the scan's worker thread,
        so that a UI thread showing them later only reads them)."""
        for obj in [*self.tags, *self.stages, self]:
            for name in ("total_bytes", "model_bytes", "optim_bytes", "meta_bytes"):
                getattr(obj, name)
        return self

    @cached_property
    def total_bytes(self) -> int:
        return sum(s.total_bytes for s in self.stages)

    @cached_property
    def model_bytes(self) -> int:
        return sum(s.model_bytes for s in self.stages)

    @cached_property
    def optim_bytes(self) -> int:
        return sum(s.optim_bytes for s in self.stages)

    @cached_property
    def meta_bytes(self) -> int:
        return sum(s.meta_bytes for s in self.stages)

    def stage(self, name: str) -> Stage | None:
        """A stage by dir name (``base_checkpoints``) or label (``base``, ``sft``)."""
        return next((s for s in self.stages if name in (s.dirname, s.label)), None)


def resolve_base_dir(arg: str | os.PathLike[str] | None = None) -> Path:
    """The argument, else ``$NANOCHAT_BASE_DIR``, else ``~/.cache/nanochat`` (as nanochat)."""
    raw = arg or os.environ.get("NANOCHAT_BASE_DIR") or DEFAULT_BASE
    return Path(raw).expanduser()


def natural_key(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _stage_order(dirname: str) -> tuple[int, list[object]]:
    order = list(STAGE_DIRS)
    return (order.index(dirname) if dirname in order else len(order), natural_key(dirname))


# --------------------------------------------------------------------------------------------
# scan


# The five patterns above as one alternation, tried in the same order (their prefixes exclude
# each other anyway): one regex call per name instead of up to five. Each pattern's groups are
# (step) or (step, rank); m.lastindex, the last group that matched, says which one matched.
_KIND_RES = ((MODEL_RE, FileKind.MODEL), (META_RE, FileKind.META), (OPTIM_RE, FileKind.OPTIM),
             (OPTIM_OLD_RE, FileKind.OPTIM), (LEGACY_RE, FileKind.LEGACY))
_ANY_RE = re.compile("|".join(f"(?:{r.pattern})" for r, _ in _KIND_RES))
_BY_LASTINDEX: dict[int, tuple[FileKind, int, int | None]] = {}
_n = 0
for _r, _k in _KIND_RES:
    _BY_LASTINDEX[_n + _r.groups] = (_k, _n + 1, _n + 2 if _r.groups == 2 else None)
    _n += _r.groups
del _n, _r, _k


def classify(name: str) -> tuple[FileKind, int | None, int | None]:
    m = _ANY_RE.fullmatch(name)
    if m is None:
        return FileKind.OTHER, None, None
    kind, step_group, rank_group = _BY_LASTINDEX[m.lastindex]  # type: ignore[index]
    return kind, int(m.group(step_group)), (
        None if rank_group is None else int(m.group(rank_group)))


_OTHER, _OPTIM = FileKind.OTHER, FileKind.OPTIM
_ZIP_KINDS = frozenset((FileKind.MODEL, FileKind.OPTIM, FileKind.LEGACY))
_NOT_A_STEP = (FileKind.OTHER, None, None)


def describe_error(e: BaseException) -> str:
    """Why a directory could not be listed, as a note's tail."""
    if isinstance(e, FileNotFoundError):
        return "vanished during the scan"
    if isinstance(e, PermissionError):
        return "permission denied, skipped"
    if isinstance(e, NotADirectoryError):
        return "not a directory, skipped"
    if isinstance(e, OSError) and e.strerror:
        return f"unreadable ({e.strerror}), skipped"
    return f"unreadable ({type(e).__name__}: {e}), skipped"


def _try_list(storage: Storage) -> Callable[[Any], list[Row] | BaseException]:
    def one(path: Any) -> list[Row] | BaseException:
        try:
            return storage.list_dir(path)
        except Exception as e:  # a note for this directory; the scan goes on
            return e
    return one


SPECIAL = -2  # the size a storage gives a FIFO, socket or device (not a regular file)


def _good_rows(storage: Storage, path: Any, rows: list[Row], notes: list[str]) -> list[Row]:
    """Rows whose stat worked (a row of size -1 vanished, or is a dangling link); a special
    file (size ``SPECIAL``) is kept with size 0."""
    if all(r[2] >= 0 for r in rows):
        return rows
    out = []
    for r in rows:
        if r[2] == SPECIAL:
            out.append((r[0], False, 0, r[3], r[4], r[5]))
        elif r[2] < 0:
            notes.append(f"{storage.display(storage.join(path, r[0]))}: vanished during the "
                         "scan (or a dangling link)")
        else:
            out.append(r)
    return out


def tag_from_rows(storage: Storage, stage: str, path: Any, rows: list[Row], notes: list[str],
                  now: float, *, mtime: float = 0.0, is_link: bool = False) -> Tag:
    """A tag from its directory's rows: checkpoints, states, other files (pins not read)."""
    tag = Tag(stage, path.name, path, storage=storage)
    special = frozenset(r[0] for r in rows if r[2] == SPECIAL)
    rows = _good_rows(storage, path, rows, notes)
    # object stores have prefixes, not dirs: no mtime of their own
    tag.mtime = mtime or max((r[3] for r in rows), default=0.0)
    tag.is_link = is_link
    zip_whole = storage.zip_whole
    prefix = str(path).rstrip("/") + "/"  # the tail check's path without a Path per file

    if special:
        def tail(name: str, size: int, mtime_ns: int) -> bool | None:
            return False if name in special else zip_whole(prefix + name, size, mtime_ns)
    else:
        def tail(name: str, size: int, mtime_ns: int) -> bool | None:
            return zip_whole(prefix + name, size, mtime_ns)

    group_rows(tag, rows, notes, now, storage.join, tail, special)
    return tag


def load_tag_pins(storage: Storage, tags: list[Tag], notes: list[str]) -> None:
    """Read the pins sidecars of these tags (concurrently where the storage allows)."""
    paths = [storage.join(t.path, SIDECAR) for t in tags]
    for tag, path, raw in zip(tags, paths, storage.read_many(paths), strict=True):
        where = storage.display(path)
        try:
            if isinstance(raw, Exception):
                reason = raw.strerror if isinstance(raw, OSError) and raw.strerror else raw
                raise PinsError(f"{where}: cannot read pins ({reason})")
            pins = parse_pins(raw, where)
        except PinsError as e:
            tag.pins_error = str(e)
            notes.append(str(e))
            continue
        apply_pins(tag, pins)


def scan_tag_dir(storage: Storage, path: Any, notes: list[str], now: float,
                 stage: str | None = None) -> Tag:
    """One tag dir on its own (a path given on the command line), pins included."""
    rows = storage.list_dir(path)
    tag = tag_from_rows(storage, path.parent.name if stage is None else stage, path, rows,
                        notes, now)
    if any(r[0] == SIDECAR and not r[1] for r in rows):
        load_tag_pins(storage, [tag], notes)
    return tag



def group_rows(tag: Tag, rows: Iterable[Row], notes: list[str], now: float,
               join: Callable[[Any, str], Any],
               tail_ok: Callable[[str, int, int], bool | None] | None = None,
               special: frozenset[str] = frozenset()) -> None:
    """Group one tag dir's entries into ``tag.checkpoints`` and ``tag.other_files``, and give
    every checkpoint its state.

    ``join(tag.path, name)`` makes a file's path. ``tail_ok(name, size, mtime_ns)`` says whether
    a model/optimizer file ends in a zip central directory (``None``: not checked, as on a remote
    storage), so only a recent mtime can make such a checkpoint "writing". Our pins sidecar is skipped.
    """
    groups: dict[int, Checkpoint] = {}
    bad_zips: set[int] = set()  # id() of the FileEntries whose zip tail check failed
    stage, path, other_files, storage = tag.stage, tag.path, tag.other_files, tag.storage
    # (the enum members are read into locals once: each FileKind.X lookup costs ~0.2 µs)
    other, optim, zip_kinds, not_a_step = _OTHER, _OPTIM, _ZIP_KINDS, _NOT_A_STEP
    classify_, sidecar, sidecar_tmp = classify, SIDECAR, SIDECAR + "."
    for name, is_dir, size, mtime, is_link, mtime_ns in rows:
        kind, step, rank = not_a_step if is_dir else classify_(name)
        fe = FileEntry(join(path, name), kind, size, mtime, step, rank, is_link)
        if kind is other:
            if name == sidecar or (name.startswith(sidecar_tmp) and name.endswith(".tmp")):
                continue  # our own pins file (and its temp file while being replaced)
            other_files.append(fe)
            continue
        assert step is not None
        ck = groups.get(step)
        if ck is None:
            ck = groups[step] = Checkpoint(stage, tag.name, step, path, storage=storage)
        if kind is optim:
            ck.optim.append(fe)
        else:
            slot = kind._value_  # (.value is a descriptor: slower)
            if getattr(ck, slot) is not None:  # e.g. model_6.pt beside model_000006.pt
                other_files.append(fe)
                notes.append(f"{fe.path}: a second {slot} file for step {step}, listed as other")
                continue
            setattr(ck, slot, fe)
        if tail_ok is not None and kind in zip_kinds and tail_ok(name, size, mtime_ns) is False:
            bad_zips.add(id(fe))
    tag.checkpoints = sorted(groups.values(), key=lambda c: c.step)
    other_files.sort(key=lambda f: natural_key(f.name))
    _assign_states(tag, bad_zips, now, special)


def apply_pins(tag: Tag, pins: dict[int, PinEntry]) -> None:
    """Copy the sidecar's pins and notes onto the tag's checkpoints."""
    for ck in tag.checkpoints:
        entry = pins.get(ck.step)
        if entry is not None:
            ck.pinned, ck.note = entry.pinned, entry.note


_STATE_RANK = {s: i for i, s in enumerate(State)}  # most urgent first, as State lists them


def _optim_order(f: FileEntry) -> tuple[bool, int]:
    return (f.rank is None, f.rank or 0)


def _assign_states(tag: Tag, bad_zips: set[int], now: float,
                   special: frozenset[str] = frozenset()) -> None:
    # (State members read into locals once: each State.X lookup costs ~0.2 µs)
    writing, corrupt, orphan, no_meta, optim_incomplete, complete = (
        State.WRITING, State.CORRUPT, State.ORPHAN, State.NO_META, State.OPTIM_INCOMPLETE,
        State.COMPLETE)
    ranks_of = [ck.ranks for ck in tag.checkpoints]
    expected_ranks = max((max(r) + 1 for r in ranks_of if r), default=0)
    all_ranks = list(range(expected_ranks))
    latest = tag.latest_step
    for ck, ranks in zip(tag.checkpoints, ranks_of, strict=True):
        if len(ck.optim) > 1:
            ck.optim.sort(key=_optim_order)
        ck.is_latest = ck.step == latest
        problems: list[str] = []
        states: list[State] = []
        files = ck.files
        age = now - max([f.mtime for f in files], default=0.0)  # now - ck.mtime
        broken = [f for f in files if id(f) in bad_zips] if bad_zips else []
        unfinished = []
        for f in broken:
            if f.name in special:
                states.append(corrupt)
                problems.append(f"{f.name} is not a regular file (a FIFO, socket or device)")
            elif now - f.mtime < STALL_WINDOW:
                states.append(writing)
                unfinished.append(f.name)
                problems.append(f"{f.name} is still being written (no zip central directory yet)")
            else:
                states.append(corrupt)
                problems.append(f"{f.name} is truncated or not a zip (no central directory)")
        if age < WRITE_WINDOW and writing not in states:
            states.append(writing)
            problems.append(f"modified {max(age, 0):.0f}s ago: may still be being written")
        if ck.weights is None:
            states.append(orphan)
            problems.append("meta (or optimizer) without a model file")
        elif ck.meta is None and ck.legacy is None:
            states.append(no_meta)
            problems.append("model without meta: nanochat cannot load this step")
        if unfinished:
            ck.unfinished = tuple(unfinished)
        if not ranks and expected_ranks and ck.is_latest and ck.legacy is None:
            # (an older weights-only step is a deliberate "drop optimizer state" prune; the
            # latest is what nanochat resumes from)
            states.append(optim_incomplete)
            problems.append(f"no optimizer shards (the tag's other steps have {expected_ranks}): "
                            "weights only, cannot resume from this latest step")
        elif ranks and ranks != all_ranks:  # (equal: every rank is there, nothing is missing)
            missing = sorted(set(all_ranks) - set(ranks))
            if missing:
                states.append(optim_incomplete)
                problems.append(
                    f"optimizer shards for ranks {ranks} only; missing {missing} "
                    f"(siblings have {expected_ranks}): cannot resume from this step")
        ck.state = min(states, key=_STATE_RANK.__getitem__) if states else complete
        ck.problems = problems


def scan(base: str | os.PathLike[str] | Storage | None = None, *, now: float | None = None,
         storage_options: dict[str, Any] | None = None) -> Catalog:
    """Scan a base dir: a local path (default ``$NANOCHAT_BASE_DIR`` or ``~/.cache/nanochat``),
    an fsspec URL, or an open :class:`Storage` (a rescan reuses its connection).

    Never raises for what it finds; problems go to ``Catalog.notes``. Raises
    :class:`.storage.StorageError` only when a URL cannot be opened or its root not listed.
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
        return _scan(storage, time.time() if now is None else now)
    finally:
        if gc_was_enabled:
            gc.enable()


def _scan(storage: Storage, now: float) -> Catalog:
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
        for row in _good_rows(storage, path, listing, cat.notes):
            name, is_dir, size, mtime, is_link, _ = row
            if is_dir:
                tag_jobs.append((stage, storage.join(path, name), row))
            else:
                stage.other_files.append(FileEntry(storage.join(path, name), FileKind.OTHER,
                                                   size, mtime, None, None, is_link))
    tag_lists = storage.map(_try_list(storage), [p for _, p, _ in tag_jobs])
    with_pins: list[Tag] = []
    for (stage, path, row), listing in zip(tag_jobs, tag_lists, strict=True):
        if isinstance(listing, BaseException):
            tag = Tag(stage.dirname, path.name, path, storage=storage, mtime=row[3],
                      is_link=row[4], error=describe_error(listing))
            cat.notes.append(f"{storage.display(path)}: {tag.error}")
        else:
            tag = tag_from_rows(storage, stage.dirname, path, listing, cat.notes, now,
                                mtime=row[3], is_link=row[4])
            if any(r[0] == SIDECAR and not r[1] for r in listing):
                with_pins.append(tag)
        stage.tags.append(tag)
    if with_pins:
        load_tag_pins(storage, with_pins, cat.notes)
    for stage in cat.stages:
        stage.tags.sort(key=lambda t: natural_key(t.name))
    cat.stages.sort(key=lambda s: _stage_order(s.dirname))
    return cat
