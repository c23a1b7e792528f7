"""What a scan of a base dir gives: :class:`Catalog` → :class:`Stage` → :class:`Tag` →
:class:`Checkpoint` (a step's group of files) → :class:`FileEntry`, with the words for a file's
:class:`FileKind` and a checkpoint's :class:`State`. Plain records, built by :mod:`.layout` (the
scan) and :mod:`.tagdir` (one tag dir's files); every object carries its storage.
"""

from __future__ import annotations

import enum
from functools import cached_property
from operator import itemgetter

from .storage import LOCAL, Storage

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any

    from .localpath import LocalPath
    from .remote import RemotePath

STAGE_DIRS: dict[str, str] = {
    "base_checkpoints": "base",
    "mid_checkpoints": "mid",
    "chatsft_checkpoints": "sft",
    "sft_checkpoints": "sft*",  # written by a bug between 2026-01-31 and 02-01
    "chatrl_checkpoints": "rl",
}


def digits_end(text: str, start: int) -> int:
    """The end of the run of digits (``\\d``: any Unicode decimal digit, as ``str.isdecimal``)
    that starts at ``start``: ``start`` when there is none."""
    end, n = start, len(text)
    while end < n and text[end].isdecimal():
        end += 1
    return end


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
        if STATE_RANK[state] < STATE_RANK[self.state]:
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
            if name[:1] == "d" and (end := digits_end(name, 1)) > 1:
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


STATE_RANK = {s: i for i, s in enumerate(State)}  # most urgent first, as State lists them
