"""One tag dir's listing → a :class:`.catalog.Tag`: the names nanochat writes
(:func:`classify`), its files grouped into steps, and each step's :class:`.catalog.State`.

Only stats and, where the storage says it is cheap (local disk), a read of each zip's last bytes
(is its central directory there yet?). Pins are read from the sidecar only when it exists.
"""

from __future__ import annotations

import re

from .catalog import (
    STAGE_DIRS,
    STATE_RANK,
    Checkpoint,
    FileEntry,
    FileKind,
    State,
    Tag,
    digits_end,
)
from .localpath import LocalPath, child
from .storage import Row, Storage

TYPE_CHECKING = False  # (typing, collections.abc: not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from .pins import PinEntry

# The pins sidecar (= pins.SIDECAR, a test keeps them equal): a scan skips it, and imports
# :mod:`.pins` only to read one it found.
SIDECAR = ".nanochat-ckpt.json"

WRITE_WINDOW = 5.0  # seconds: a group with a file modified this recently is "being written"
STALL_WINDOW = 120.0  # seconds: an unreadable zip this recent is still being written

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


def natural_key(name: str) -> list[object]:
    """``d2`` before ``d10``: the runs of digits as ints, the text between them lower-cased, as
    ``re.split(r"(\\d+)", name)`` splits it, with str methods (no regex to compile: start-up)."""
    parts: list[str] = []
    text_start = i = 0
    n = len(name)
    while i < n:
        if name[i].isdecimal():
            end = digits_end(name, i)
            parts += (name[text_start:i], name[i:end])
            text_start = i = end
        else:
            i += 1
    parts.append(name[text_start:])
    return [int(p) if p.isdigit() else p.lower() for p in parts]


def stage_order(dirname: str) -> tuple[int, list[object]]:
    order = list(STAGE_DIRS)
    return (order.index(dirname) if dirname in order else len(order), natural_key(dirname))


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


SPECIAL = -2  # the size a storage gives a FIFO, socket or device (not a regular file)


def good_rows(storage: Storage, path: Any, rows: list[Row], notes: list[str]) -> list[Row]:
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
        rows = good_rows(storage, path, rows, notes)
    else:
        special = frozenset()
    # object stores have prefixes, not dirs: no mtime of their own
    tag.mtime = mtime or max((r[3] for r in rows), default=0.0)
    tag.is_link = is_link
    whole = storage.zip_whole if type(storage).zip_whole is not Storage.zip_whole else None
    # a local tag dir's file paths are made by localpath.child itself (no wrapper call per file;
    # a LocalPath is joined so by every storage that makes them)
    join = child if type(path) is LocalPath else storage.join
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
        ck.state = min(states, key=STATE_RANK.__getitem__) if states else complete
        ck.problems = problems
