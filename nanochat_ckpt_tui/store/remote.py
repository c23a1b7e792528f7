"""Browse a base dir on any fsspec URL (``s3://``, ``gs://``, ``ssh://``, ``memory://``,
``file://``), read-only, with ranged reads only.

:func:`scan_url` lists the base dir, its ``*_checkpoints`` stage dirs and their tag dirs (one
``ls(detail=True)`` per directory; object stores have prefixes, not dirs) and groups the files
with the very code of the local scan (:func:`.layout.group_rows`), so stages, tags, steps,
states, latest steps, other files and sizes come out the same. What differs, by design:

- zip tails are **not** read during a remote scan (that would be one request per file): a
  remote checkpoint is "writing" only when a file's mtime is within ``WRITE_WINDOW`` of
  ``now``, and a truncated model is found when it is opened (``summarize`` reports it);
- paths are :class:`RemotePath` objects inside the remote filesystem: pure paths with no
  ``stat``/``open``, which ``os`` functions refuse (``__fspath__`` raises), so no local file can
  be read, replaced or deleted through them by mistake; ``Catalog.remote`` (also
  ``Tag.remote``, ``Checkpoint.remote``) is the :class:`RemoteFS` to read them through;
- there is no free-disk figure, and the catalog is read-only (``Catalog.read_only``).

:meth:`RemoteFS.open` returns a file that fetches exactly the byte ranges read from it (fsspec
``cache_type="none"``, 64 KiB blocks, size taken from the listing: no extra HEAD request) and
counts them in :attr:`RemoteFS.stats`. Reading a model's metadata this way costs the zip's last
64 KiB plus ``data.pkl`` and ``byteorder`` (see :mod:`.ptfile`).

fsspec is imported only when a URL is opened; a missing backend (s3fs, gcsfs, paramiko …) is
a :class:`RemoteError` naming the package to install.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any, TypeVar

from .archive import _missing_backend, is_url, redact
from .layout import (
    STAGE_DIRS,
    Catalog,
    Checkpoint,
    FileEntry,
    FileKind,
    Row,
    Stage,
    Tag,
    _classify,
    _stage_order,
    apply_pins,
    group_rows,
    natural_key,
)
from .pins import SIDECAR, PinsError, parse_pins

BLOCK_SIZE = 64 * 1024  # fsspec block size of opened files (no cache: exact ranges anyway)
LIST_WORKERS = 8  # directories listed / small files fetched concurrently
T = TypeVar("T")
R = TypeVar("R")

__all__ = ["RemoteError", "RemoteFS", "RemotePath", "FetchStats", "connect", "scan_url", "resolve_url",
           "is_url", "read_with"]


class RemoteError(Exception):
    """The URL cannot be opened or listed: one line that says why (never a password)."""


class RemotePath(PurePosixPath):
    """A path inside a remote filesystem. ``str()``, ``name``, ``parent`` and ``/`` work (and
    stay RemotePaths); ``os.fspath`` raises, so ``open``/``os.unlink``/``os.stat`` of it fail
    instead of touching a local file of the same name."""

    __slots__ = ()

    def __fspath__(self) -> str:
        raise TypeError(f"{self} is a path in a remote (read-only) filesystem: read it with "
                        "Catalog.remote.open(), never with local file functions")


@dataclass
class FetchStats:
    """Bytes and read requests fetched through :meth:`RemoteFS.open` / :meth:`RemoteFS.cat`."""

    requests: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += n

    def reset(self) -> None:
        with self._lock:
            self.requests = self.bytes = 0


class _CountedFile(io.RawIOBase):
    """A read-only view of an fsspec file that counts what each ``read`` fetched.

    With ``memo``, reads are remembered by (offset, length) so reading the same metadata twice
    (``read_archive`` then ``read_model``) fetches it once; :meth:`forget` drops the memo.
    """

    def __init__(self, raw: Any, stats: FetchStats, memo: bool = False) -> None:
        super().__init__()
        self._raw = raw
        self._stats = stats
        self._memo: dict[tuple[int, int], bytes] | None = {} if memo else None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return int(self._raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self._raw.tell())

    def read(self, n: int | None = -1) -> bytes:
        n = -1 if n is None else n
        key = (self.tell(), n)
        if self._memo is not None and key in self._memo:
            data = self._memo[key]
            self._raw.seek(key[0] + len(data))
            return data
        data = bytes(self._raw.read(n))
        self._stats.add(len(data))
        if self._memo is not None:
            self._memo[key] = data
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def forget(self) -> None:
        """Stop remembering reads (the metadata phase is over)."""
        self._memo = None

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._raw.close()
        super().close()


@dataclass
class RemoteFS:
    """A read-only handle on a remote base dir: the fsspec filesystem and the root in it."""

    fs: Any  # fsspec.AbstractFileSystem
    root: str  # the base dir inside ``fs`` (protocol stripped, no trailing slash)
    url: str  # the URL as given, without a password: what to show
    block_size: int = BLOCK_SIZE
    stats: FetchStats = field(default_factory=FetchStats)

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0].lower()

    def url_of(self, path: str | PurePosixPath) -> str:
        """The user-facing URL of a path inside this filesystem."""
        text = str(path)
        if text == self.root:
            return self.url
        if text.startswith(self.root.rstrip("/") + "/"):
            return self.url.rstrip("/") + "/" + text[len(self.root.rstrip("/")) + 1:]
        return redact(str(self.fs.unstrip_protocol(text)))

    def open(self, path: str | PurePosixPath, size: int | None = None, *,
             memo: bool = False) -> IO[bytes]:
        """A seekable binary file fetching only the byte ranges read (counted in ``stats``).

        ``size`` (from the listing) saves a metadata request; if the object changed since the
        scan, reads fail with a clear zip error rather than returning stale bytes.
        """
        p = str(path)
        try:
            raw = self.fs.open(p, "rb", block_size=self.block_size, cache_type="none",
                               size=size)
        except TypeError:  # a filesystem whose open takes no cache options
            raw = self.fs.open(p, "rb")
        return _CountedFile(raw, self.stats, memo)  # type: ignore[return-value]

    def cat(self, path: str | PurePosixPath) -> bytes:
        """A whole (small) file in one request."""
        data = bytes(self.fs.cat_file(str(path)))
        self.stats.add(len(data))
        return data

    def cat_many(self, paths: list[str]) -> list[bytes | Exception]:
        """Several small files fetched concurrently; each result is the bytes or the error."""
        def one(p: str) -> bytes | Exception:
            try:
                return self.cat(p)
            except Exception as e:  # reported per file by the caller
                return e
        return self.map(one, paths)

    def ls(self, path: str) -> list[dict[str, Any]]:
        """Entries of one directory (``ls(detail=True)``), without the directory itself."""
        own = path.rstrip("/")
        out = []
        for info in self.fs.ls(path, detail=True):
            name = str(info.get("name", "")).rstrip("/")
            if name and name != own:
                out.append(info)
            elif info.get("type") == "file":  # the path is a file: no directory here
                raise NotADirectoryError(path)
        return out

    def map(self, fn: Callable[[T], R], items: list[T]) -> list[R]:
        """``[fn(x) for x in items]``, run by a few threads (requests overlap their latency)."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(items))) as pool:
            return list(pool.map(fn, items))

    def invalidate(self) -> None:
        """Forget cached listings, so a rescan sees new steps."""
        with contextlib.suppress(Exception):
            self.fs.invalidate_cache()


def connect(url: str, storage_options: dict[str, Any] | None = None) -> RemoteFS:
    """Open the fsspec filesystem of ``url``. Raises :class:`RemoteError`, e.g. naming a
    missing backend package."""
    shown = redact(url)
    protocol = url.split("://", 1)[0].lower() if "://" in url else ""
    if not is_url(url):
        raise RemoteError(f"{shown}: not a URL (expected PROTOCOL://PATH, e.g. s3://bucket/dir)")
    try:
        import fsspec.core
    except ImportError:
        raise RemoteError(f"a {protocol}:// URL needs the fsspec package, which is not "
                          "installed: pip install fsspec") from None
    try:
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as e:
        raise RemoteError(_missing_backend(protocol, e).replace(" destination ", " URL ", 1)) \
            from None
    except ValueError as e:
        if "Protocol not known" in str(e):
            raise RemoteError(f"unknown protocol {protocol}:// (fsspec knows s3, gs, ssh, file, "
                              "memory, …)") from None
        raise RemoteError(f"{shown}: {e}") from None
    except Exception as e:  # bad storage options, unreachable host (ssh connects here)
        raise RemoteError(f"{shown}: cannot open ({type(e).__name__}: {e})") from None
    root = str(root)
    if len(root) > 1:
        root = root.rstrip("/")
    display = shown.rstrip("/")
    return RemoteFS(fs, root, display if not display.endswith(":/") else shown)


# --------------------------------------------------------------------------------------------
# scan


def _mtime_of(info: dict[str, Any]) -> float:
    """Modification time in seconds from an fsspec info dict (each backend names it its own
    way); 0.0 when unknown (then the file never looks in flight)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        v = info.get(key)
        if v is None:
            continue
        if isinstance(v, _dt.datetime):
            return v.timestamp()
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            with contextlib.suppress(ValueError):
                return _dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    return 0.0


def _basename(info: dict[str, Any]) -> str:
    return str(info["name"]).rstrip("/").rsplit("/", 1)[-1]


def _is_dir(info: dict[str, Any]) -> bool:
    return info.get("type") == "directory"


def _row(info: dict[str, Any]) -> Row:
    size = info.get("size")
    return (_basename(info), _is_dir(info), int(size) if isinstance(size, int) else 0,
            _mtime_of(info), bool(info.get("islink", False)), 0)


def _join(parent: RemotePath, name: str) -> RemotePath:
    return parent / name


def _describe(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError):
        return "vanished during the scan"
    if isinstance(e, PermissionError):
        return "permission denied, skipped"
    if isinstance(e, NotADirectoryError):
        return "not a directory, skipped"
    return f"unreadable ({type(e).__name__}: {e}), skipped"


def _remote_tag(remote: RemoteFS, stage: str, path: RemotePath,
                listing: list[dict[str, Any]], notes: list[str], now: float) -> tuple[Tag, bool]:
    """A tag from its directory listing; also whether it holds a pins sidecar to fetch."""
    tag = Tag(stage, path.name, path, remote=remote)
    rows = [_row(info) for info in listing]
    tag.mtime = max((r[3] for r in rows), default=0.0)  # prefixes have no mtime of their own
    group_rows(tag, rows, notes, now, _join, None)
    for ck in tag.checkpoints:
        ck.remote = remote
    return tag, any(r[0] == SIDECAR and not r[1] for r in rows)


def _load_pins(remote: RemoteFS, tags: list[Tag], notes: list[str]) -> None:
    paths = [str(t.path / SIDECAR) for t in tags]
    for tag, path, raw in zip(tags, paths, remote.cat_many(paths), strict=True):
        where = remote.url_of(path)
        try:
            if isinstance(raw, Exception):
                raise ValueError(f"{where}: cannot read pins ({type(raw).__name__}: {raw})")
            pins = parse_pins(raw, where)
        except PinsError as e:
            tag.pins_error = str(e)
            notes.append(str(e))
            continue
        apply_pins(tag, pins)


def scan_url(url: str | RemoteFS, *, storage_options: dict[str, Any] | None = None,
             now: float | None = None) -> Catalog:
    """Scan a base dir at an fsspec URL (or through an open :class:`RemoteFS`, for a rescan)
    into a read-only :class:`Catalog` with ``catalog.remote`` set.

    Only listings (and each tag's small pins sidecar, when there is one) are fetched: no zip
    tail is read, so a remote checkpoint is "writing" only when a file's mtime is recent.
    A missing base dir gives ``exists=False``; unreadable stage or tag dirs become notes.
    Raises :class:`RemoteError` when the base cannot be reached or listed at all.
    """
    remote = url if isinstance(url, RemoteFS) else connect(url, storage_options)
    remote.invalidate()
    now = time.time() if now is None else now
    cat = Catalog(RemotePath(remote.root), scanned_at=now, remote=remote)  # type: ignore[arg-type]
    try:
        top = remote.ls(remote.root)
    except (FileNotFoundError, NotADirectoryError):
        top = None
    except Exception as e:
        raise RemoteError(f"{remote.url}: cannot list ({type(e).__name__}: {e})") from None
    if not top:  # object stores: an empty or absent prefix is the same thing
        cat.exists = top is not None
        if top is None:
            cat.notes.append(f"{remote.url}: no such directory")
        return cat
    stage_infos = [i for i in top if _is_dir(i) and _basename(i).endswith("_checkpoints")]
    stage_lists = remote.map(_try_ls(remote), [str(i["name"]).rstrip("/") for i in stage_infos])
    tag_jobs: list[tuple[Stage, RemotePath]] = []
    for info, listing in zip(stage_infos, stage_lists, strict=True):
        stage = Stage(_basename(info), RemotePath(str(info["name"]).rstrip("/")))  # type: ignore[arg-type]
        cat.stages.append(stage)
        if isinstance(listing, BaseException):
            cat.notes.append(f"{remote.url_of(stage.path)}: {_describe(listing)}")
            continue
        for sub in listing:
            if _is_dir(sub):
                tag_jobs.append((stage, RemotePath(str(sub["name"]).rstrip("/"))))
            else:
                name, _, size, mtime, is_link, _ = _row(sub)
                stage.other_files.append(FileEntry(stage.path / name, FileKind.OTHER, size,  # type: ignore[operator]
                                                   mtime, None, None, is_link))
    tag_lists = remote.map(_try_ls(remote), [str(p) for _, p in tag_jobs])
    with_pins: list[Tag] = []
    for (stage, path), listing in zip(tag_jobs, tag_lists, strict=True):
        if isinstance(listing, BaseException):
            cat.notes.append(f"{remote.url_of(path)}: {_describe(listing)}")
            continue
        tag, has_pins = _remote_tag(remote, stage.dirname, path, listing, cat.notes, now)
        stage.tags.append(tag)
        if has_pins:
            with_pins.append(tag)
    if with_pins:
        _load_pins(remote, with_pins, cat.notes)
    for stage in cat.stages:
        stage.tags.sort(key=lambda t: natural_key(t.name))
    cat.stages.sort(key=lambda s: _stage_order(s.dirname))
    return cat


def _try_ls(remote: RemoteFS) -> Callable[[str], list[dict[str, Any]] | BaseException]:
    def ls(path: str) -> list[dict[str, Any]] | BaseException:
        try:
            return remote.ls(path)
        except Exception as e:  # a note for this directory; the scan goes on
            return e
    return ls


# --------------------------------------------------------------------------------------------
# references and reading


_STAGE_WORDS = frozenset(v for v in STAGE_DIRS.values() if v.isalnum())


def resolve_url(url: str, *, storage_options: dict[str, Any] | None = None,
                now: float | None = None) -> Checkpoint:
    """The checkpoint a URL names: ``BASE/TAG@STEP``, ``BASE/STAGE/TAG@STEP`` (stage dir or
    label; ``@latest`` works), a file ``…/<stage_dir>/<tag>/model_N.pt`` (its step's group), or
    a tag dir ``…/<stage_dir>/<tag>`` (its latest step). Raises :class:`RemoteError` (unreadable)
    or :class:`.refs.RefError` (names nothing)."""
    from .refs import RefError, _parse_step, resolve

    text = url.rstrip("/")
    head, _, last = text.rpartition("/")
    if "://" not in head:
        raise RefError(f"{redact(url)}: give BASE_URL/TAG@STEP, a tag dir or a file URL")
    if "@" in last:
        tag_name, _, step = last.partition("@")
        parent, _, maybe_stage = head.rpartition("/")
        if "://" in parent and (maybe_stage.endswith("_checkpoints")
                                or maybe_stage in _STAGE_WORDS):
            cat = scan_url(parent, storage_options=storage_options, now=now)
            ref = f"{maybe_stage}/{tag_name}@{step}"
        else:
            cat = scan_url(head, storage_options=storage_options, now=now)
            ref = f"{tag_name}@{step}"
        if not cat.exists:
            raise RemoteError(f"{cat.location}: no such directory")
        return resolve(cat, ref)
    kind, file_step, _ = _classify(last)
    tag_url = head if kind is not FileKind.OTHER else text
    remote = connect(tag_url, storage_options)
    now = time.time() if now is None else now
    path = RemotePath(remote.root)
    try:
        listing = remote.ls(remote.root)
    except FileNotFoundError:
        raise RemoteError(f"{remote.url}: no such file or directory") from None
    except NotADirectoryError:
        raise RemoteError(f"{remote.url}: not a tag directory") from None
    except Exception as e:
        raise RemoteError(f"{remote.url}: cannot list ({type(e).__name__}: {e})") from None
    notes: list[str] = []
    tag, has_pins = _remote_tag(remote, path.parent.name, path, listing, notes, now)  # type: ignore[arg-type]
    if has_pins:
        _load_pins(remote, [tag], notes)
    if kind is FileKind.OTHER:
        return _parse_step("latest", tag)
    ck = tag.checkpoint(file_step) if file_step is not None else None
    if ck is None or not any(f.name == last for f in ck.files):
        raise RefError(f"{redact(url)}: no such checkpoint file")
    return ck


def read_with(reader: Callable[..., T], path: Any, size: int | None,
              remote: RemoteFS | None, *, memo: bool = False) -> T:
    """``reader(path)`` locally, or ``reader(path, fileobj=f)`` on a ranged remote file (with
    ``memo``, repeated reads of one range are fetched once); remote I/O failures become a
    :class:`.ptfile.CheckpointError` (one line)."""
    from .ptfile import CheckpointError

    if remote is None:
        return reader(path)
    try:
        with remote.open(path, size, memo=memo) as f:
            return reader(path, fileobj=f)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError("file not found (deleted or moved?)", path) from None
    except PermissionError:
        raise CheckpointError("permission denied: cannot read this file", path) from None
    except Exception as e:  # network, server and backend errors
        raise CheckpointError(f"cannot read remotely ({type(e).__name__}: {e})", path) from None
