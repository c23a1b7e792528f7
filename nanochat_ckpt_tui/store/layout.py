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
from functools import cached_property
from operator import itemgetter

from .localpath import LocalPath, child
from .storage import (
    LOCAL,
    LocalStorage,
    Row,
    Storage,
    StorageError,
    is_url,
    open_storage,
    redact,
)

TYPE_CHECKING = False  # (typing, collections.abc: not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from .pins import PinEntry
    from .remote import RemotePath

# The pins sidecar (= pins.SIDECAR, a test keeps them equal): a scan skips it, and imports
# :mod:`.pins` only to read one it found.
SIDECAR = ".nanochat-ckpt.json"

DEFAULT_BASE = LocalPath("~/.cache/nanochat")
WRITE_WINDOW = 5.0  # seconds: a group with a file modified this recently is "being written"
STALL_WINDOW = 120.0  # seconds: an unreadable zip this recent is still being written
FIRST_PARTIAL = 0.25  # seconds: a scan still running then shows what it has
PARTIAL_EVERY = 0.75  # seconds between partial catalogs after the first

STAGE_DIRS: dict[str, str] = {
    "base_checkpoints": "base",
    "mid_checkpoints": "mid",
    "chatsft_checkpoints": "sft",
    "sft_checkpoints": "sft*",  # written by a bug between 2026-01-31 and 02-01
    "chatrl_checkpoints": "rl",
}

# The file names nanochat writes, as regexes (``MODEL_RE`` … are compiled on first use:
# :func:`classify` matches with str methods, faster, and the CLI starts without compiling them).
PATTERNS: dict[str, str] = {
    "MODEL_RE": r"model_(\d+)\.pt",
    "META_RE": r"meta_(\d+)\.json",
    "OPTIM_RE": r"optim_(\d+)_rank(\d+)\.pt",
    "OPTIM_OLD_RE": r"optim_(\d+)\.pt",
    "LEGACY_RE": r"step_(\d+)\.pt",
}


def __getattr__(name: str) -> Any:  # MODEL_RE, META_RE, … (PEP 562)
    pattern = PATTERNS.get(name)
    if pattern is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    compiled = globals()[name] = re.compile(pattern)
    return compiled


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


class FileEntry(tuple):  # type: ignore[type-arg]
    """One file. On a remote storage ``path`` is a :class:`.remote.RemotePath`: a pure path that
    ``os`` functions refuse, so no local file can be touched through it by mistake; read it
    through its checkpoint's ``storage``.

    An immutable record (path, kind, size, mtime, step, rank, is_link, the path's name, and
    the mtime in ns when the listing gave it), compared and hashed by value as a frozen
    dataclass would be, but a tuple: a scan makes one per file, and a tuple is made 5x faster
    than a frozen dataclass (30 ms less for 24,000 files); the name is kept beside the path
    (a path's ``name`` is a slice: one per call)."""

    __slots__ = ()

    def __new__(cls, path: LocalPath | RemotePath, kind: FileKind, size: int, mtime: float,
                step: int | None = None, rank: int | None = None, is_link: bool = False,
                mtime_ns: int | None = None) -> FileEntry:
        return tuple.__new__(cls, (path, kind, size, mtime, step, rank, is_link, path.name,
                                   mtime_ns))

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (*self[:7], self[8])

    def __repr__(self) -> str:
        return ("FileEntry(" + ", ".join(f"{k}={v!r}" for k, v in zip(
            ("path", "kind", "size", "mtime", "step", "rank", "is_link"), self[:7],
            strict=True)) + ")")

    if TYPE_CHECKING:
        path: LocalPath | RemotePath
        kind: FileKind
        size: int
        mtime: float
        step: int | None
        rank: int | None
        is_link: bool
    else:
        path = property(itemgetter(0))
        kind = property(itemgetter(1))
        size = property(itemgetter(2))
        mtime = property(itemgetter(3))
        step = property(itemgetter(4))
        rank = property(itemgetter(5))
        is_link = property(itemgetter(6))

    if TYPE_CHECKING:
        name: str
        mtime_ns: int | None  # exact (st_mtime_ns) where the listing gave it
    else:
        name = property(itemgetter(7))
        mtime_ns = property(itemgetter(8))


class _cached(cached_property):  # type: ignore[type-arg]
    """``functools.cached_property`` without its per-access lock (Python < 3.12 takes one):
    ``Checkpoint.key`` is made for every step a listing shows."""

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.attrname] = self.func(instance)  # type: ignore[index]
        return value


class Record:
    """What ``@dataclass`` gives a record class (``__init__`` is written out; ``repr`` and
    ``==`` over ``_fields``, the storage left out as ``field(repr=False, compare=False)``
    would), without generating code at import: the record classes of the core cost 4 ms of
    every CLI start as dataclasses."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self._fields) + ")"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return [getattr(self, n) for n in self._fields] == [getattr(other, n)
                                                             for n in self._fields]

    __hash__ = None  # type: ignore[assignment]  # (mutable, as a dataclass's)


class Checkpoint(Record):
    """One step of one tag: the group of files nanochat writes for it."""

    _fields = ("stage", "tag", "step", "dir", "model", "meta", "optim", "legacy", "state",
               "problems", "is_latest", "pinned", "note", "unfinished")

    def __init__(self, stage: str, tag: str, step: int, dir: LocalPath | RemotePath,
                 model: FileEntry | None = None, meta: FileEntry | None = None,
                 optim: list[FileEntry] | None = None, legacy: FileEntry | None = None,
                 state: State = State.COMPLETE, problems: list[str] | None = None,
                 is_latest: bool = False, pinned: bool = False, note: str | None = None,
                 unfinished: tuple[str, ...] = (), storage: Storage = LOCAL) -> None:
        self.stage = stage  # stage dir name, e.g. "base_checkpoints"
        self.tag = tag
        self.step = step
        self.dir = dir
        self.model = model
        self.meta = meta
        self.optim: list[FileEntry] = [] if optim is None else optim
        self.legacy = legacy
        self.state = state
        self.problems: list[str] = [] if problems is None else problems
        self.is_latest = is_latest
        self.pinned = pinned
        self.note = note
        self.unfinished = unfinished  # files whose zip is not whole yet: never opened
        self.storage = storage  # where the files live

    @_cached
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

    # (the sizes are summed without generators: a listing asks them of every step)
    @property
    def model_bytes(self) -> int:
        model, legacy = self.model, self.legacy
        return (model.size if model is not None else 0) + (
            legacy.size if legacy is not None else 0)

    @property
    def optim_bytes(self) -> int:
        return sum([f.size for f in self.optim])

    @property
    def meta_bytes(self) -> int:
        meta = self.meta
        return meta.size if meta is not None else 0

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + self.meta_bytes + self.optim_bytes

    @property
    def mtime(self) -> float:
        return max([f.mtime for f in self.files], default=0.0)

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


class Tag(Record):
    """One model tag dir. Its byte totals are computed once, on first use (a catalog is not
    changed after its scan; a new scan builds new objects): a tag of 400 steps × 10 files
    costs ~4 ms to sum, a stage of 50 such tags 0.2 s. In a partial catalog (see
    :func:`scan`), a tag not listed yet is a stand-in with ``scanning`` set and no steps."""

    _fields = ("stage", "name", "path", "checkpoints", "other_files", "mtime", "is_link",
               "pins_error", "error", "scanning")

    def __init__(self, stage: str, name: str, path: LocalPath | RemotePath,
                 checkpoints: list[Checkpoint] | None = None,
                 other_files: list[FileEntry] | None = None, mtime: float = 0.0,
                 is_link: bool = False, pins_error: str | None = None,
                 storage: Storage = LOCAL, error: str | None = None,
                 scanning: bool = False) -> None:
        self.stage = stage
        self.name = name
        self.path = path
        # (in step order: the scan sorts them)
        self.checkpoints: list[Checkpoint] = [] if checkpoints is None else checkpoints
        self.other_files: list[FileEntry] = [] if other_files is None else other_files
        self.mtime = mtime
        self.is_link = is_link
        self.pins_error = pins_error  # the sidecar is corrupt: pins unknown, prune protects all
        self.storage = storage
        self.error = error  # the tag dir could not be listed (e.g. "permission denied")
        self.scanning = scanning  # not listed yet: its steps come with a later catalog

    @property
    def latest_step(self) -> int | None:
        """What nanochat's ``find_last_step`` returns: the largest step of any model_N.pt.
        (The checkpoints are in step order, as the scan sorts them: looked for from the end,
        a stage's view asks it of every tag.)"""
        cks = self.checkpoints
        for ck in reversed(cks):
            if ck.model is not None:
                return ck.step
        for ck in reversed(cks):  # older layout: only step_N.pt files
            if ck.legacy is not None:
                return ck.step
        return None

    @property
    def latest(self) -> Checkpoint | None:
        step = self.latest_step
        return next((c for c in self.checkpoints if c.step == step), None)

    def checkpoint(self, step: int) -> Checkpoint | None:
        return next((c for c in self.checkpoints if c.step == step), None)

    @cached_property
    def _sums(self) -> tuple[int, int, int]:
        """(model, optimizer, meta) bytes of every step, in one pass."""
        model = optim = meta = 0
        for c in self.checkpoints:
            for f in c.optim:
                optim += f.size
            if c.model is not None:
                model += c.model.size
            if c.legacy is not None:
                model += c.legacy.size
            if c.meta is not None:
                meta += c.meta.size
        return model, optim, meta

    @cached_property
    def total_bytes(self) -> int:
        return sum(self._sums) + self.other_bytes

    @cached_property
    def model_bytes(self) -> int:
        return self._sums[0]

    @cached_property
    def optim_bytes(self) -> int:
        return self._sums[1]

    @cached_property
    def meta_bytes(self) -> int:
        return self._sums[2]

    @cached_property
    def other_bytes(self) -> int:
        return sum(f.size for f in self.other_files)


class Stage(Record):
    """One ``*_checkpoints`` dir: its tags."""

    _fields = ("dirname", "path", "tags", "other_files", "error")

    def __init__(self, dirname: str, path: LocalPath | RemotePath, tags: list[Tag] | None = None,
                 other_files: list[FileEntry] | None = None, error: str | None = None
                 ) -> None:
        self.dirname = dirname
        self.path = path
        self.tags: list[Tag] = [] if tags is None else tags
        self.other_files: list[FileEntry] = [] if other_files is None else other_files
        self.error = error  # the stage dir could not be listed

    @property
    def label(self) -> str:
        return STAGE_DIRS.get(self.dirname, self.dirname.removesuffix("_checkpoints"))

    @property
    def default_tag(self) -> str | None:
        """The tag nanochat loads when none is given (``find_largest_model``)."""
        candidates = []
        for t in self.tags:  # (what re.match(r"d(\d+)", name) finds)
            name = t.name
            if name[:1] == "d" and (end := _digits_end(name, 1)) > 1:
                candidates.append((int(name[1:end]), name))
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


class Catalog(Record):
    """Everything found under one base dir at one moment (``complete`` False: a partial
    catalog of a scan still running, some of its tags stand-ins still ``scanning``)."""

    _fields = ("base_dir", "stages", "notes", "free_bytes", "disk_bytes", "scanned_at",
               "exists", "complete")

    def __init__(self, base_dir: LocalPath | RemotePath, stages: list[Stage] | None = None,
                 notes: list[str] | None = None, free_bytes: int | None = None,
                 disk_bytes: int | None = None, scanned_at: float = 0.0, exists: bool = True,
                 storage: Storage = LOCAL, complete: bool = True) -> None:
        self.base_dir = base_dir
        self.stages: list[Stage] = [] if stages is None else stages
        self.notes: list[str] = [] if notes is None else notes
        self.free_bytes = free_bytes
        self.disk_bytes = disk_bytes
        self.scanned_at = scanned_at
        self.exists = exists
        self.storage = storage
        self.complete = complete

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


def resolve_base_dir(arg: str | os.PathLike[str] | None = None) -> LocalPath:
    """The argument, else ``$NANOCHAT_BASE_DIR``, else ``~/.cache/nanochat`` (as nanochat)."""
    raw = arg or os.environ.get("NANOCHAT_BASE_DIR") or DEFAULT_BASE
    return LocalPath(raw).expanduser()


def _digits_end(text: str, start: int) -> int:
    """The end of the run of digits (``\\d``: any Unicode decimal digit, as ``str.isdecimal``)
    that starts at ``start``: ``start`` when there is none."""
    end, n = start, len(text)
    while end < n and text[end].isdecimal():
        end += 1
    return end


def natural_key(name: str) -> list[object]:
    """``d2`` before ``d10``: the runs of digits as ints, the text between them lower-cased, as
    ``re.split(r"(\\d+)", name)`` splits it, with str methods (no regex to compile: start-up)."""
    parts: list[str] = []
    text_start = i = 0
    n = len(name)
    while i < n:
        if name[i].isdecimal():
            end = _digits_end(name, i)
            parts += (name[text_start:i], name[i:end])
            text_start = i = end
        else:
            i += 1
    parts.append(name[text_start:])
    return [int(p) if p.isdigit() else p.lower() for p in parts]


def _stage_order(dirname: str) -> tuple[int, list[object]]:
    order = list(STAGE_DIRS)
    return (order.index(dirname) if dirname in order else len(order), natural_key(dirname))


# --------------------------------------------------------------------------------------------
# scan


_MODEL, _META, _LEGACY = FileKind.MODEL, FileKind.META, FileKind.LEGACY
_OTHER, _OPTIM = FileKind.OTHER, FileKind.OPTIM
_NOT_A_STEP: tuple[FileKind, int | None, int | None] = (FileKind.OTHER, None, None)


def classify(name: str) -> tuple[FileKind, int | None, int | None]:
    """(kind, step, rank) of a file name: exactly what a ``fullmatch`` of :data:`PATTERNS`
    says (``\\d`` is any Unicode decimal digit, as ``str.isdecimal``), with str methods: no
    regex to compile at start-up, and a third of the time per name."""
    first = name[:1]
    if first == "m":
        if name.endswith(".pt"):
            if name.startswith("model_") and (digits := name[6:-3]).isdecimal():
                return _MODEL, int(digits), None
        elif name.endswith(".json") and name.startswith("meta_") and (
                digits := name[5:-5]).isdecimal():
            return _META, int(digits), None
    elif first == "o":
        if name.startswith("optim_") and name.endswith(".pt"):
            body = name[6:-3]
            if body.isdecimal():
                return _OPTIM, int(body), None
            step, sep, rank = body.partition("_rank")
            if sep and step.isdecimal() and rank.isdecimal():
                return _OPTIM, int(step), int(rank)
    elif first == "s" and name.startswith("step_") and name.endswith(".pt") and (
            digits := name[5:-3]).isdecimal():
        return _LEGACY, int(digits), None
    return _NOT_A_STEP




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
                  now: float, *, mtime: float = 0.0, is_link: bool = False,
                  steps: frozenset[int] | None = None) -> Tag:
    """A tag from its directory's rows: checkpoints, states, other files (pins not read).
    ``steps``: only these steps' zips are checked for a whole end (None: every step's)."""
    tag = Tag(stage, path.name, path, storage=storage)
    # (one list of sizes checked in C: 24,000 rows cost 1 ms, not 3 through generators)
    if rows and min([r[2] for r in rows]) < 0:
        special = frozenset(r[0] for r in rows if r[2] == SPECIAL)
        rows = _good_rows(storage, path, rows, notes)
    else:
        special = frozenset()
    # object stores have prefixes, not dirs: no mtime of their own
    tag.mtime = mtime or max((r[3] for r in rows), default=0.0)
    tag.is_link = is_link
    whole = storage.zip_whole if type(storage).zip_whole is not Storage.zip_whole else None
    # a local tag dir's file paths are made by localpath.child itself (no wrapper call per file)
    join = child if type(storage).join is LocalStorage.join and type(path) is LocalPath \
        else storage.join
    prefix = str(path).rstrip("/") + "/"  # (the tail check gets prefix + name: no Path per file)
    tail_ok = None
    if whole is not None and steps is not None:
        check, whole = whole, None

        def tail_ok(name: str, size: int, mtime_ns: int) -> bool | None:
            if classify(name)[1] not in steps:
                return None
            return False if name in special else check(prefix + name, size, mtime_ns)
    group_rows(tag, rows, notes, now, join, tail_ok, special, whole=whole, prefix=prefix)
    return tag


def load_tag_pins(storage: Storage, tags: list[Tag], notes: list[str]) -> None:
    """Read the pins sidecars of these tags (concurrently where the storage allows)."""
    from .pins import PinsError, parse_pins

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
                 stage: str | None = None, *, step: int | str | None = None) -> Tag:
    """One tag dir on its own (a path given on the command line), pins included. ``step`` (a
    number or ``"latest"``): the one step the caller reads; only its zips are checked for a
    whole end (in a tag of 400 steps, 3 files' tails read, not 1,200), so the other steps'
    states take no truncated or unfinished zip into account."""
    rows = storage.list_dir(path)
    stage = path.parent.name if stage is None else stage
    steps = None if step is None else frozenset(() if step == "latest" else (step,))
    if step == "latest":  # (the names tell which: a grouping that reads no file)
        latest = tag_from_rows(storage, stage, path, rows, [], now, steps=steps).latest_step
        steps = frozenset(() if latest is None else (latest,))
    tag = tag_from_rows(storage, stage, path, rows, notes, now, steps=steps)
    if any(r[0] == SIDECAR and not r[1] for r in rows):
        load_tag_pins(storage, [tag], notes)
    return tag



def group_rows(tag: Tag, rows: Iterable[Row], notes: list[str], now: float,
               join: Callable[[Any, str], Any],
               tail_ok: Callable[[str, int, int], bool | None] | None = None,
               special: frozenset[str] = frozenset(), *,
               whole: Callable[[str, int, int], bool | None] | None = None,
               prefix: str = "") -> None:
    """Group one tag dir's entries into ``tag.checkpoints`` and ``tag.other_files``, and give
    every checkpoint its state.

    ``join(tag.path, name)`` makes a file's path. ``tail_ok(name, size, mtime_ns)`` says whether
    a model/optimizer file ends in a zip central directory (``None``: not checked, as on a remote
    storage), so only a recent mtime can make such a checkpoint "writing"; or ``whole(prefix +
    name, size, mtime_ns)`` does (the storage's ``zip_whole``, called without a wrapper: a
    scan makes tens of thousands of these calls), never for the ``special`` names (not regular
    files). Our pins sidecar is skipped.
    """
    if whole is not None and tail_ok is None:
        if special:  # (rare: the common case calls ``whole`` inline below)
            check = whole

            def tail_ok(name: str, size: int, mtime_ns: int) -> bool | None:
                return False if name in special else check(prefix + name, size, mtime_ns)

            whole = None
    else:
        whole = None
    groups: dict[int, Checkpoint] = {}
    bad_zips: set[int] = set()  # id() of the FileEntries whose zip tail check failed
    stage, path, other_files, storage = tag.stage, tag.path, tag.other_files, tag.storage
    tag_name = tag.name
    # (the enum members and functions are read into locals once: each global or attribute
    # lookup costs ~0.05-0.2 µs, and this loop runs once per file)
    other, optim, model, meta, legacy = _OTHER, _OPTIM, _MODEL, _META, _LEGACY
    not_a_step, classify_ = _NOT_A_STEP, classify
    sidecar, sidecar_tmp = SIDECAR, SIDECAR + "."
    new_entry, entry_cls = tuple.__new__, FileEntry
    for name, is_dir, size, mtime, is_link, mtime_ns in rows:
        kind, step, rank = not_a_step if is_dir else classify_(name)
        fe = new_entry(entry_cls, (join(path, name), kind, size, mtime, step, rank, is_link,
                                   name, mtime_ns or None))
        if kind is other:
            if name == sidecar or (name.startswith(sidecar_tmp) and name.endswith(".tmp")):
                continue  # our own pins file (and its temp file while being replaced)
            other_files.append(fe)
            continue
        ck = groups.get(step)  # type: ignore[arg-type]
        if ck is None:
            ck = groups[step] = Checkpoint(stage, tag_name, step, path,  # type: ignore[index]
                                           storage=storage)
        if kind is optim:
            ck.optim.append(fe)
        elif kind is meta:
            if ck.meta is not None:  # e.g. meta_6.json beside meta_000006.json
                _second(other_files, notes, fe, "meta", step)
                continue
            ck.meta = fe
            continue  # (not a zip)
        elif kind is model:
            if ck.model is not None:
                _second(other_files, notes, fe, "model", step)
                continue
            ck.model = fe
        elif kind is legacy:
            if ck.legacy is not None:
                _second(other_files, notes, fe, "legacy", step)
                continue
            ck.legacy = fe
        # (a model, shard or step_N.pt here: a zip; metas and other files went on above)
        if whole is not None:
            if whole(prefix + name, size, mtime_ns) is False:
                bad_zips.add(id(fe))
        elif tail_ok is not None and tail_ok(name, size, mtime_ns) is False:
            bad_zips.add(id(fe))
    tag.checkpoints = sorted(groups.values(), key=_step_of)
    if len(other_files) > 1:
        other_files.sort(key=lambda f: natural_key(f.name))
    _assign_states(tag, bad_zips, now, special)


def _step_of(ck: Checkpoint) -> int:
    return ck.step


def _second(other_files: list[FileEntry], notes: list[str], fe: FileEntry, slot: str,
            step: int | None) -> None:
    other_files.append(fe)
    notes.append(f"{fe.path}: a second {slot} file for step {step}, listed as other")


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
    write_window = WRITE_WINDOW
    for ck, ranks in zip(tag.checkpoints, ranks_of, strict=True):
        optim = ck.optim
        if len(optim) > 1 and not (len(optim) == 2 and optim[0].rank == 0 and optim[1].rank == 1):
            optim.sort(key=_optim_order)  # (2 ranks listed in order: the common case)
        ck.is_latest = ck.step == latest
        problems: list[str] = []
        states: list[State] = []
        files = [f for f in (ck.model, ck.legacy, ck.meta) if f is not None] + optim
        age = now - max([f.mtime for f in files], default=0.0)  # now - ck.mtime
        if not bad_zips:
            if age >= write_window and ranks == all_ranks and ck.meta is not None and (
                    ck.model is not None or ck.legacy is not None):
                ck.state, ck.problems = complete, problems  # the common case: nothing to say
                continue
            broken = []
        else:
            broken = [f for f in files if id(f) in bad_zips]
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
        if age < write_window and writing not in states:
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
         storage_options: dict[str, Any] | None = None,
         partial: Callable[[Catalog], object] | None = None,
         first: float | None = None, every: float | None = None) -> Catalog:
    """Scan a base dir: a local path (default ``$NANOCHAT_BASE_DIR`` or ``~/.cache/nanochat``),
    an fsspec URL, or an open :class:`Storage` (a rescan reuses its connection).

    Never raises for what it finds; problems go to ``Catalog.notes``. Raises
    :class:`.storage.StorageError` only when a URL cannot be opened or its root not listed.

    ``partial``: called (in the scanning thread) with partial catalogs while a long scan goes
    on: the first once ``first`` seconds have passed and a tag is listed, then at most every
    ``every`` seconds (defaults: FIRST_PARTIAL, PARTIAL_EVERY). A partial catalog (``complete`` False) has every stage and every tag;
    the tags not listed yet are stand-ins (``Tag.scanning``, no steps), the others are the
    final catalog's own objects, pins included. Each stage's default tag (the one a UI opens)
    is listed first, then the others in their order; the result is the same either way.
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
        out.stages.sort(key=lambda s: _stage_order(s.dirname))
        self.post(out)


def _tag_order(tag: Tag) -> list[object]:
    return natural_key(tag.name)


def _listing_order(jobs: list[tuple[Stage, Any, Row]]) -> list[int]:
    """The order a scan with partial catalogs lists the tag dirs in: each stage's default tag
    first (a UI shows it open), then every tag as the tree shows them."""
    order = sorted(range(len(jobs)), key=lambda i: (_stage_order(jobs[i][0].dirname),
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
        for row in _good_rows(storage, path, listing, cat.notes):
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
    cat.stages.sort(key=lambda s: _stage_order(s.dirname))
    return cat
