"""Archive checkpoints to a local dir or any fsspec URL: streamed, verified, resumable.

:func:`archive` copies each checkpoint's weights and meta (plus, when asked, its optimizer
shards), the source base dir's ``tokenizer/`` files and the step's pin/note to a destination,
keeping nanochat's ``<stage_dir>/<tag>/`` layout so ``NANOCHAT_BASE_DIR=<dest>`` loads from it.
Sources are only ever opened for reading.

How a half-copied file is kept from looking complete (the *strategy*):

- ``rename`` (local paths, ``file://``, ``memory://``, ``ssh://``/``sftp://`` and any other
  fsspec filesystem): bytes go to ``<name>.partial``; it is re-read and checked (size and
  sha256) and only then renamed to ``<name>``. Local: fsync of the file, ``os.replace`` and
  fsync of the directory, so ``<name>`` is either absent, the old file, or the verified new
  one, even after a power cut. SFTP: ``posix_rename`` (atomic on a POSIX server). Other
  filesystems: whatever their ``mv`` guarantees. A crash leaves a ``*.partial`` file, which
  neither nanochat (it globs ``model_*.pt``) nor the scan mistakes for a checkpoint, and which
  the next run overwrites.
- ``direct`` (``s3://``, ``s3a://``, ``gs://``, ``gcs://``): the upload goes straight to
  ``<name>``. Object stores publish an object only when its upload completes (a single PUT or
  the final CompleteMultipartUpload), so a reader never sees a prefix of it; an interrupted
  upload is aborted (``discard``), or after a hard kill leaves invisible multipart parts (a
  bucket lifecycle rule ``AbortIncompleteMultipartUpload`` reclaims them). The object is then
  re-read and checked; on a mismatch it is deleted. This avoids a server-side copy of every
  multi-GB object, at the price that a (rare) corrupted upload is visible until the check
  removes it. In both strategies, a file counts as archived only once the manifest says so.

The manifest ``.nanochat-ckpt-manifest.json`` at the destination root::

    {"schema": "nanochat-ckpt.manifest/1", "updated_at": 1764000000.0,
     "files": {"base_checkpoints/d4/model_003000.pt": {"size": 123, "sha256": "…",
               "source_mtime": 1763990000.0, "archived_at": 1764000000.0, "source": "/…"}},
     "checkpoints": {"base_checkpoints/d4@3000": {"stage": "base_checkpoints", "tag": "d4",
               "step": 3000, "files": ["base_checkpoints/d4/model_003000.pt", …],
               "with_optimizer": false, "pin": {"pinned": true, "note": "best"} | null,
               "archived_at": 1764000000.0}}}

It is rewritten after every file (re-read and merged first, so entries written by another
run are kept; written by temp name + rename, or a single PUT on object stores). A re-run
copies only files that are missing, of the wrong size, not in the manifest, or (with
``verify=True``) whose checksum no longer matches.

fsspec is imported only when a URL is given; a missing backend package (s3fs, gcsfs,
paramiko, …) is an :class:`ArchiveError` naming the package to install.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from .archive_report import (
    ArchiveResult,
    FileResult,
    Progress,
    ProgressFn,
    VerifyEntry,
    VerifyReport,
)
from .check_cache import CheckCache, default_cache
from .check_kernel import RecordCrcs
from .layout import WRITE_WINDOW, Checkpoint, FileEntry, State
from .manifest import (
    MANIFEST,
    MANIFEST_SCHEMA,
    STATE_ENV,
    archived_steps,
    last_destination,
    load_manifest,
    read_manifest,
    remember_destination,
    save_manifest,
    state_path,
)
from .pins import SCHEMA as PINS_SCHEMA
from .pins import SIDECAR, PinsError, load_pins
from .storage import LOCAL, Storage
from .targets import (
    CHUNK,
    DIRECT_PROTOCOLS,
    PARTIAL_SUFFIX,
    ArchiveError,
    FsspecTarget,
    LocalTarget,
    Target,
    open_target,
)
from .zipdir import ZipError

__all__ = ["CHUNK", "DIRECT_PROTOCOLS", "MANIFEST", "MANIFEST_SCHEMA", "PARTIAL_SUFFIX",
           "STATE_ENV", "ArchiveError", "ArchiveResult", "FileResult", "FsspecTarget",
           "LocalTarget", "Progress", "Target", "VerifyEntry", "VerifyReport", "archive",
           "archived_steps", "last_destination", "read_manifest", "remember_destination",
           "state_path", "verify_archive"]

TOKENIZER_DIR = "tokenizer"


class _Cancelled(Exception):
    pass


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


# --------------------------------------------------------------------------------------------
# archiving


@dataclass
class _Item:
    rel: str
    source: Any  # a path in ``storage``
    size: int
    mtime: float
    checkpoint: str | None
    storage: Storage = LOCAL
    action: str = "copy"  # "copy", "present", "check" (re-hash destination), "hash" (source)
    why: str = ""


@dataclass
class _Run:
    target: Target
    items: list[_Item]
    progress: ProgressFn | None
    cancel: CancelToken | None
    chunk_size: int
    allow_damaged: bool = False
    cache: CheckCache | None = None
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    total: int = 0
    files_done: int = 0

    def tick(self, n: int, item: _Item, phase: str) -> None:
        self.done += n
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled
        if self.progress:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            self.progress(Progress(self.done, max(self.total, self.done), self.done / elapsed,
                                   item.rel, phase, self.files_done, len(self.items)))


def _weight(item: _Item) -> int:
    return {"copy": 2, "check": 1, "hash": 1}.get(item.action, 0) * item.size


def _chunks(fh: IO[bytes], size: int) -> Iterator[bytes]:
    while True:
        buf = fh.read(size)
        if not buf:
            return
        yield buf


def _sha_of(open_fn: Callable[[], IO[bytes]], run: _Run, item: _Item, phase: str) -> str:
    h = hashlib.sha256()
    with open_fn() as fh:
        for buf in _chunks(fh, run.chunk_size):
            h.update(buf)
            run.tick(len(buf), item, phase)
    return h.hexdigest()


def _files_of(ck: Checkpoint, with_optimizer: bool) -> list[FileEntry]:
    files = [f for f in (ck.model, ck.legacy, ck.meta) if f]
    return files + (list(ck.optim) if with_optimizer else [])


def _tokenizer_files(storage: Storage, base: Any) -> list[tuple[Any, int, float]]:
    """(path, size, mtime) of the files in the base dir's ``tokenizer/``, if any."""
    tok = storage.join(base, TOKENIZER_DIR)
    try:
        rows = storage.list_dir(tok)
    except OSError:
        return []
    return sorted((storage.join(tok, r[0]), r[2], r[3]) for r in rows if not r[1] and r[2] >= 0)


def _check_not_source(target: Target, bases: set[tuple[Any, Storage]]) -> None:
    if not isinstance(target, LocalTarget):
        return
    dest = os.path.realpath(target.root)
    for base, storage in bases:
        real = storage.realpath(base)
        if dest == real:
            raise ArchiveError(f"{target.display} is the source base dir itself: archive to "
                               "another place")
        rel = os.path.relpath(dest, real)
        if not rel.startswith("..") and rel.split(os.sep)[0].endswith("_checkpoints"):
            raise ArchiveError(f"{target.display} is inside the source's checkpoint dirs, where "
                               "nanochat and this tool would mistake it for a tag")


def _plan(target: Target, checkpoints: list[Checkpoint], with_optimizer: bool,
          with_tokenizer: bool, manifest: dict[str, Any], verify: bool) -> list[_Item]:
    items: list[_Item] = []
    seen: set[str] = set()

    def add(rel: str, source: Any, size: int, mtime: float, key: str | None,
            storage: Storage) -> None:
        if rel not in seen:
            seen.add(rel)
            items.append(_Item(rel, source, size, mtime, key, storage))

    bases = list(dict.fromkeys((ck.dir.parent.parent, ck.storage) for ck in checkpoints))
    if with_tokenizer:
        for base, storage in bases:
            for path, size, mtime in _tokenizer_files(storage, base):
                add(f"{TOKENIZER_DIR}/{path.name}", path, size, mtime, None, storage)
    for ck in checkpoints:
        for f in _files_of(ck, with_optimizer):
            add(f"{ck.stage}/{ck.tag}/{f.name}", f.path, f.size, f.mtime, ck.key, ck.storage)
    for item in items:
        with contextlib.suppress(OSError):  # the real stat now; a vanished file fails later
            item.size, item.mtime = item.storage.stat(item.source)
        entry = manifest["files"].get(item.rel)
        try:
            got = target.stat(item.rel)
        except Exception as e:
            raise ArchiveError(f"{target.display}: cannot read the destination "
                               f"({type(e).__name__}: {e})") from None
        dsize, dmtime = got if got is not None else (None, None)
        if not isinstance(entry, dict) or dsize is None:
            item.action, item.why = "copy", "missing" if dsize is None else "not in the manifest"
        elif entry.get("size") != item.size or dsize != item.size:
            item.action, item.why = "copy", "size differs"
        elif abs(float(entry.get("source_mtime", 0.0)) - item.mtime) > 1e-3:
            item.action, item.why = "hash", "source mtime changed"
        elif verify or _changed(entry.get("dest_mtime"), dmtime):
            # (a copy rewritten since it was archived: compare its content, not its size)
            item.action, item.why = "check", "" if verify else "destination changed"
        else:
            item.action, item.why = "present", ""
    return items


def _changed(recorded: Any, now: float | None) -> bool:
    """Whether the destination file's mtime moved since the manifest recorded it."""
    return isinstance(recorded, int | float) and now is not None and abs(recorded - now) > 1e-3


def _copy(run: _Run, item: _Item) -> str:
    """Stream one file to the destination; returns its sha256 once verified there."""
    target = run.target
    st0 = item.storage.stat(item.source)
    if item.checkpoint is not None and time.time() - st0[1] < WRITE_WINDOW:
        raise OSError(f"modified {time.time() - st0[1]:.0f}s ago: still being written")
    h = hashlib.sha256()
    n = 0
    with item.storage.open(item.source, st0[0]) as src:
        crcs = _record_crcs(src, item, run.allow_damaged)  # the source verifies itself
        fh, written = target.open_write(item.rel)
        try:
            for buf in _chunks(src, run.chunk_size):
                h.update(buf)
                if crcs is not None:
                    crcs.feed(n, buf)
                fh.write(buf)
                n += len(buf)
                run.tick(len(buf), item, "copy")
            bad = crcs.mismatches() if crcs is not None else []
            if bad and not run.allow_damaged:
                raise ArchiveError(f"the source is damaged: CRC mismatch in {bad[0]}"
                                   + (f" and {len(bad) - 1} more record(s)" if len(bad) > 1
                                      else "") + "; not archived (allow_damaged copies it)")
            target.finish(fh)
        except BaseException:
            target.abort(fh, written)
            raise
    sha = h.hexdigest()
    try:
        st1 = item.storage.stat(item.source)
        if st1 != st0 or n != st1[0]:
            raise OSError("the source changed during the copy")
        got = target.size(written)
        if got != n:
            raise OSError(f"destination has {got} bytes after the copy, expected {n}")
        back = _sha_of(lambda: target.open_read(written), run, item, "verify")
        if back != sha:
            raise OSError("checksum of the destination differs from the source after the copy")
        target.commit(written, item.rel, st0[1])
    except BaseException:
        with contextlib.suppress(Exception):
            target.remove(written)
        raise
    item.size, item.mtime = n, st0[1]
    _remember_sha(run.cache, item, sha)
    return sha


def _record_crcs(src: Any, item: _Item, allow_damaged: bool) -> RecordCrcs | None:
    """A CRC tracker for a checkpoint zip (None for metas and tokenizer files)."""
    if item.checkpoint is None or not item.rel.endswith(".pt"):
        return None
    try:
        crcs = RecordCrcs(src)
    except (ZipError, OSError, ValueError) as e:
        if allow_damaged:
            return None
        raise ArchiveError(f"the source is damaged: not a whole zip ({e}); not archived "
                           "(allow_damaged copies it)") from None
    finally:
        src.seek(0)
    return crcs


def _remember_sha(cache: CheckCache | None, item: _Item, sha: str) -> None:
    """The source file's sha256 by file version: how a later run knows that this file is the
    archived one (the ``archived`` badge matches content, not names)."""
    if cache is None:
        return
    with contextlib.suppress(OSError):
        cache.put_sha256(item.storage.file_key(item.source, item.size, item.mtime), sha)


def _pin_of(ck: Checkpoint, warnings: list[str]) -> dict[str, Any] | None:
    try:
        entry = load_pins(ck.dir, ck.storage).get(ck.step)
    except PinsError as e:
        warnings.append(f"{ck.key}: pins not copied: {e}")
        return None
    if entry is None or not (entry.pinned or entry.note):
        return None
    return {"pinned": entry.pinned, "note": entry.note, "updated": entry.updated}


def _copy_pin(target: Target, ck: Checkpoint, pin: dict[str, Any], warnings: list[str]) -> None:
    """Merge the step's pin/note into the destination tag's sidecar (nanochat ignores it)."""
    rel = f"{ck.stage}/{ck.tag}/{SIDECAR}"
    try:
        raw = target.read_small(rel, 4 * 1024 * 1024)
        doc: dict[str, Any] = {"schema": PINS_SCHEMA, "steps": {}}
        if raw is not None:
            doc = json.loads(raw.decode("utf-8"))
            if doc.get("schema") != PINS_SCHEMA or not isinstance(doc.get("steps"), dict):
                raise ValueError("unknown schema")
        doc["steps"][str(ck.step)] = pin
        doc["steps"] = dict(sorted(doc["steps"].items(), key=lambda kv: int(kv[0])))
        target.write_small(rel, json.dumps(doc, indent=2).encode("utf-8"))
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        warnings.append(f"{ck.key}: pins sidecar at the destination is unreadable ({e}); "
                        "left untouched, pin not copied")
    except Exception as e:
        warnings.append(f"{ck.key}: pin not copied ({type(e).__name__}: {e})")


def archive(checkpoints: Iterable[Checkpoint], dest: str | os.PathLike[str], *,
            with_optimizer: bool = False, with_tokenizer: bool = True, verify: bool = False,
            progress: ProgressFn | None = None, cancel: CancelToken | None = None,
            storage_options: dict[str, Any] | None = None, chunk_size: int = CHUNK,
            remember: bool = True, allow_damaged: bool = False,
            cache: CheckCache | None = None) -> ArchiveResult:
    """Copy checkpoints to ``dest`` (see the module doc). Per-file problems are reported in
    the result; :class:`ArchiveError` only for what stops the whole run before it starts
    (a checkpoint being written, a bad destination, a missing backend, a corrupt manifest).

    Every zip record of the source is checked against its CRC while it is copied; a damaged
    file is not archived unless ``allow_damaged``. The sha256 of each copied source file is
    kept in the check cache (``cache``, default the user's) by file version."""
    cks = list({ck.key: ck for ck in checkpoints}.values())
    writing = [ck.key for ck in cks if ck.state is State.WRITING]
    if writing:
        raise ArchiveError(f"refusing to archive checkpoints still being written: "
                           f"{', '.join(writing)}; wait until training has saved them")
    lone = [ck.key for ck in cks if ck.step < 0]
    if lone:
        raise ArchiveError(f"not a checkpoint step of a tag: {', '.join(lone)}")
    target = open_target(dest, storage_options)
    _check_not_source(target, {(ck.dir.parent.parent, ck.storage) for ck in cks})
    target.refresh()
    target.check_root()
    manifest = load_manifest(target)
    items = _plan(target, cks, with_optimizer, with_tokenizer, manifest, verify)
    result = ArchiveResult(target.display, target.strategy)
    run = _Run(target, items, progress, cancel, max(1, chunk_size), allow_damaged,
               cache if cache is not None else default_cache())
    run.total = sum(_weight(i) for i in items)
    new_files: dict[str, Any] = {}
    by_rel: dict[str, FileResult] = {}

    def record(item: _Item, sha: str, status: str, detail: str = "") -> None:
        entry = dict(manifest["files"].get(item.rel) or {})
        if status == "copied" or entry.get("sha256") != sha or "archived_at" not in entry:
            entry["archived_at"] = time.time()
        entry.update({"size": item.size, "sha256": sha, "source_mtime": item.mtime,
                      "source": item.storage.display(item.source)})
        with contextlib.suppress(Exception):  # so a re-run notices a rewritten copy
            got = target.stat(item.rel)
            if got is not None:
                entry["dest_mtime"] = got[1]
        new_files[item.rel] = entry
        by_rel[item.rel] = FileResult(item.rel, item.source, item.size, status, detail, sha,
                                      item.checkpoint)

    try:
        for item in items:
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            try:
                if item.action == "present":
                    entry = manifest["files"][item.rel]
                    by_rel[item.rel] = FileResult(item.rel, item.source, item.size, "present",
                                                  "", entry.get("sha256"), item.checkpoint)
                    continue
                if item.action == "check":
                    sha = _sha_of(lambda it=item: target.open_read(it.rel), run, item, "verify")
                    if sha == manifest["files"][item.rel].get("sha256"):
                        record(item, sha, "present", "checksum verified")
                        if item.why:  # its new mtime, so the next run does not re-read it
                            save_manifest(target, new_files, {})
                        continue
                    item.why = "checksum mismatch at the destination"
                    run.total += 2 * item.size
                elif item.action == "hash":
                    sha = _sha_of(functools.partial(item.storage.open, item.source), run, item, "hash")
                    if sha == manifest["files"][item.rel].get("sha256"):
                        record(item, sha, "present", "same content (source mtime changed)")
                        save_manifest(target, new_files, {})
                        continue
                    item.why = "source content changed"
                    run.total += 2 * item.size
                sha = _copy(run, item)
                record(item, sha, "copied", item.why)
                save_manifest(target, new_files, {})
            except _Cancelled:
                by_rel.setdefault(item.rel, FileResult(
                    item.rel, item.source, item.size, "cancelled",
                    "interrupted; nothing half-written was kept", None, item.checkpoint))
                raise
            except ArchiveError as e:
                by_rel[item.rel] = FileResult(item.rel, item.source, item.size, "failed",
                                              str(e), None, item.checkpoint)
            except Exception as e:
                detail = getattr(e, "strerror", None) or str(e) or type(e).__name__
                if not isinstance(e, OSError):
                    detail = f"{type(e).__name__}: {detail}"
                by_rel[item.rel] = FileResult(item.rel, item.source, item.size, "failed",
                                              detail, None, item.checkpoint)
            finally:
                run.files_done += 1
    except _Cancelled:
        result.cancelled = True
    for item in items:
        result.results.append(by_rel.get(item.rel) or FileResult(
            item.rel, item.source, item.size, "cancelled", "cancelled before this file", None,
            item.checkpoint))
    new_cks: dict[str, Any] = {}
    for ck in cks:
        rels = [f"{ck.stage}/{ck.tag}/{f.name}" for f in _files_of(ck, with_optimizer)]
        if not rels or any(by_rel.get(r) is None or by_rel[r].status not in ("copied", "present")
                           for r in rels):
            continue
        pin = _pin_of(ck, result.warnings)
        if pin is not None:
            _copy_pin(target, ck, pin, result.warnings)
        old = manifest["checkpoints"].get(f"{ck.stage}/{ck.tag}@{ck.step}") or {}
        new_cks[f"{ck.stage}/{ck.tag}@{ck.step}"] = {
            "stage": ck.stage, "tag": ck.tag, "step": ck.step,
            "source_base": ck.storage.display(ck.dir.parent.parent),
            "files": sorted(set(rels) | set(old.get("files", []))),
            "with_optimizer": with_optimizer or bool(old.get("with_optimizer")),
            "pin": {"pinned": pin["pinned"], "note": pin["note"]} if pin else None,
            "archived_at": time.time()}
        result.archived.append(ck.key)
    if new_files or new_cks:
        try:
            save_manifest(target, new_files, new_cks)
        except Exception as e:
            result.warnings.append(f"manifest not updated ({type(e).__name__}: {e})")
            result.archived.clear()
    for ck in cks:
        if ck.state is not State.COMPLETE:
            result.warnings.append(f"{ck.key} is {ck.state.value}: "
                                   + "; ".join(ck.problems or ["see `show`"]))
    result.seconds = time.monotonic() - run.started
    if remember and not result.cancelled and (result.count("copied") or result.count("present")):
        with contextlib.suppress(OSError):
            remember_destination(dest)
    return result


# --------------------------------------------------------------------------------------------
# verification


def verify_archive(dest: str | os.PathLike[str], *, progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None,
                   storage_options: dict[str, Any] | None = None,
                   chunk_size: int = CHUNK) -> VerifyReport:
    """Check every file the manifest lists: present, same size, same sha256 (streamed).
    Raises :class:`ArchiveError` when there is no manifest or it cannot be read."""
    target = open_target(dest, storage_options)
    target.refresh()
    manifest = load_manifest(target)
    if not manifest["files"]:
        raise ArchiveError(f"{target.display}: no {MANIFEST} here: nothing was archived to it")
    report = VerifyReport(target.display)
    entries = sorted(manifest["files"].items())
    items = [_Item(rel, Path(str(e.get("source", ""))), int(e.get("size", 0)), 0.0, None)
             for rel, e in entries]
    run = _Run(target, items, progress, cancel, max(1, chunk_size))
    run.total = sum(i.size for i in items)
    try:
        for item, (rel, entry) in zip(items, entries, strict=True):
            try:
                got = target.size(rel)
                if got is None:
                    report.entries.append(VerifyEntry(rel, "missing", item.size, "not found"))
                    run.total -= item.size
                elif got != item.size:
                    report.entries.append(VerifyEntry(
                        rel, "mismatch", item.size, f"size {got}, manifest says {item.size}"))
                    run.total -= item.size
                else:
                    sha = _sha_of(lambda r=rel: target.open_read(r), run, item, "verify")
                    if sha == entry.get("sha256"):
                        report.entries.append(VerifyEntry(rel, "ok", item.size))
                    else:
                        report.entries.append(VerifyEntry(
                            rel, "mismatch", item.size,
                            f"sha256 {sha[:12]}…, manifest says {str(entry.get('sha256'))[:12]}…"))
            except _Cancelled:
                raise
            except Exception as e:
                report.entries.append(VerifyEntry(rel, "error", item.size,
                                                  f"{type(e).__name__}: {e}"))
            finally:
                run.files_done += 1
    except _Cancelled:
        report.cancelled = True
    return report
