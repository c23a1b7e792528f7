"""The storage seam: every read and write of checkpoint files goes through a :class:`Storage`.

The core never asks whether a base dir is local or remote; it asks its storage what it can do
(:attr:`Storage.writable`, :attr:`Storage.watchable`, :attr:`Storage.concurrent_reads`,
:meth:`Storage.mmap`) and reads through the same few calls:

- :meth:`Storage.list_dir`: one directory's rows (name, is_dir, size, mtime, is_link, mtime_ns);
- :meth:`Storage.open`: a seekable binary file for positioned reads (a local fd, or an fsspec
  file that fetches exactly the ranges read);
- :meth:`Storage.read_bytes` / :meth:`Storage.read_many`: whole small files (metas, pins);
- :meth:`Storage.display`: what to show the user (a local path, or a URL without a password);
- on writable storages only: :meth:`Storage.unlink`, :meth:`Storage.rename`,
  :meth:`Storage.write_atomic`, :meth:`Storage.locked`, :meth:`Storage.realpath`.

:class:`LocalStorage` keeps the fast paths (``os.scandir``, ``os.pread`` on a bare fd, mmap,
the zip-tail cache). :class:`FsspecStorage` wraps any fsspec URL (``s3://``, ``gs://``,
``ssh://``, ``memory://``, ``file://``), read-only, with ranged reads counted in
:attr:`FsspecStorage.stats`; ``ssh://`` connects through :mod:`.sftp` (known_hosts checked,
timeouts, one lock around the single SFTP channel). URL parsing, password redaction and the
"install this backend" messages live here.
"""

from __future__ import annotations

import _thread
import io
import os
import re
import stat as _stat
import struct
import sys
from pathlib import Path, PurePosixPath

# Not imported at run time (the CLI's start-up pays for every module): typing, dataclasses,
# contextlib, datetime, mmap, shutil, threading and the readers are imported where used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import contextlib
    import mmap as _mmap
    from collections.abc import Callable, Iterator
    from typing import IO, Any, TypeVar

    from .readers import Reader

    T = TypeVar("T")
    R = TypeVar("R")

# One directory entry: name, is_dir, size, mtime (s), is_link, mtime_ns (0 where unknown).
Row = tuple[str, bool, int, float, bool, int]

BLOCK_SIZE = 64 * 1024  # fsspec block size of opened files (no cache: exact ranges anyway)
LIST_WORKERS = 8  # directories listed / small files fetched concurrently on a remote storage

BACKENDS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "ssh": "paramiko",
            "sftp": "paramiko", "az": "adlfs", "abfs": "adlfs", "hf": "huggingface_hub"}
EXTRAS = {"s3fs": "s3", "gcsfs": "gcs", "paramiko": "ssh"}


class StorageError(Exception):
    """A storage cannot be opened, listed or read: one line that says why (never a password)."""


class ReadOnlyError(StorageError):
    """A write was asked of a storage that is not writable."""


_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_PROTOCOL_CHARS = _LETTERS | frozenset("0123456789+.-")


def is_url(text: str) -> bool:
    r"""``PROTOCOL://…`` (a Windows drive letter is not a protocol): what
    ``re.match(r"^[A-Za-z][A-Za-z0-9+.\-]+://", text)`` finds, without compiling it (the
    quick commands ask it before anything else)."""
    protocol, sep, _ = str(text).partition("://")
    return bool(sep) and len(protocol) >= 2 and protocol[0] in _LETTERS \
        and _PROTOCOL_CHARS.issuperset(protocol)


def redact(text: str) -> str:
    """The URL without a password (``ssh://user:secret@host`` → ``ssh://user@host``)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/@:]*):[^/@]*@", r"\1@", str(text))


def missing_backend(protocol: str, exc: BaseException, what: str = "URL") -> str:
    """The message for a URL whose fsspec backend package is not installed."""
    cause = exc.__cause__ or exc.__context__
    package = BACKENDS.get(protocol) or getattr(cause, "name", None) or getattr(exc, "name", None)
    if not package:
        m = re.search(r"No module named '([^'.]+)", str(exc))
        package = m.group(1) if m else None
    if not package:
        try:
            from fsspec.registry import known_implementations

            package = known_implementations[protocol]["class"].split(".", 1)[0]
        except (ImportError, KeyError):
            package = None
    if not package:
        return f"the {protocol}:// {what} needs a package that is not installed ({exc})"
    package = package.split(".", 1)[0]
    extra = EXTRAS.get(package)
    hint = f"pip install {package}" + (f"  (or: pip install 'nanochat-ckpt[{extra}]')"
                                       if extra else "")
    return (f"the {protocol}:// {what} needs the {package} package, which is not installed: "
            f"{hint}")


class RemotePath(PurePosixPath):
    """A path inside a remote storage. ``str()``, ``name``, ``parent`` and ``/`` work (and stay
    RemotePaths); ``os.fspath`` raises, so ``open``/``os.unlink``/``os.stat`` of it fail instead
    of touching a local file of the same name."""

    __slots__ = ()

    def __fspath__(self) -> str:
        raise TypeError(f"{self} is a path in a remote (read-only) storage: read it through "
                        "its Storage, never with local file functions")


class FetchStats:
    """Bytes and read requests fetched from a remote storage."""

    __hash__ = None  # type: ignore[assignment]  # (compared by value: as a dataclass was)

    def __init__(self, requests: int = 0, bytes: int = 0) -> None:
        self.requests = requests
        self.bytes = bytes
        self._lock = _thread.allocate_lock()  # = threading.Lock(), without importing threading

    def __repr__(self) -> str:
        return f"FetchStats(requests={self.requests!r}, bytes={self.bytes!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FetchStats) or other.__class__ is not self.__class__:
            return NotImplemented
        return (self.requests, self.bytes) == (other.requests, other.bytes)

    def add(self, n: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += n

    def reset(self) -> None:
        with self._lock:
            self.requests = self.bytes = 0


class Storage:
    """Where checkpoints live. Subclasses fill in the reads; writes exist on writable ones."""

    writable = False  # unlink, rename, atomic writes, locks
    watchable = False  # inotify-style change notification (watchfiles)
    concurrent_reads = True  # several threads may read at once
    root: Any  # the base dir: a Path (local) or a RemotePath
    stats: FetchStats | None = None  # bytes fetched (remote storages count them)

    # -- naming
    def path(self, text: str) -> Any:
        """A path object inside this storage."""
        raise NotImplementedError

    def join(self, parent: Any, name: str) -> Any:
        return parent / name

    def display(self, path: Any = None) -> str:
        """What to show the user for ``path`` (the root when None)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.display()

    # -- reads
    def list_dir(self, path: Any) -> list[Row]:
        """The entries of one directory (links followed for size and type). Raises
        FileNotFoundError / PermissionError / NotADirectoryError / OSError."""
        raise NotImplementedError

    def open(self, path: Any, size: int | None = None) -> IO[bytes]:
        """A seekable binary file for positioned reads; ``size`` (from a listing) may save a
        request. Raises OSError subclasses (FileNotFoundError, PermissionError, …)."""
        raise NotImplementedError

    def read_bytes(self, path: Any, limit: int | None = None) -> bytes:
        """A whole small file; OSError when it is larger than ``limit``."""
        raise NotImplementedError

    def open_reader(self, path: Any, size: int) -> Reader:
        """A bulk reader of the file's bytes (tensor streaming): positioned reads straight into
        buffers where the file has a local descriptor, ranged blocks read ahead otherwise."""
        from .readers import make_reader

        return make_reader(self.open(path, size), size)

    def read_many(self, paths: list[Any]) -> list[bytes | Exception]:
        """Several small files; each result is the bytes or the error."""
        def one(p: Any) -> bytes | Exception:
            try:
                return self.read_bytes(p)
            except Exception as e:  # reported per file by the caller
                return e
        return self.map(one, paths)

    def map(self, fn: Callable[[T], R], items: list[T]) -> list[R]:
        """``[fn(x) for x in items]``, overlapped where requests have latency to hide."""
        return [fn(x) for x in items]

    def imap(self, fn: Callable[[T], R], items: list[T]) -> Iterator[R]:
        """:meth:`map`'s results one by one, in order, each as soon as it is ready."""
        return (fn(x) for x in items)

    def exists(self, path: Any) -> bool:
        raise NotImplementedError

    def stat(self, path: Any) -> tuple[int, float]:
        """(size, mtime) of one file; OSError subclasses when it cannot be stat'ed."""
        raise NotImplementedError

    def zip_whole(self, path: Any, size: int, mtime_ns: int) -> bool | None:
        """Whether a file ends in a zip end record, when that is cheap to know (None: not
        checked, e.g. one request per file on a remote storage)."""
        return None

    def mmap(self, path: Any) -> _mmap.mmap | None:
        """A read-only map of the whole file, where the storage can map files."""
        return None

    def disk_usage(self) -> tuple[int, int] | None:
        """(free, total) bytes of the filesystem holding the root, where known."""
        return None

    def cache_key(self, path: Any, size: int, mtime: float) -> tuple[str, int, float]:
        """A key for results about one version of one file."""
        return (self.display(path), size, mtime)

    def file_key(self, path: Any, size: int, mtime: float) -> tuple[Any, ...]:
        """The identity of one version of one file, for results kept across runs: local
        (device, inode, size, mtime_ns) from a fresh stat; remote (URL, size, mtime) from the
        listing. OSError when the file is gone."""
        return ("url", self.display(path), size, mtime)

    def invalidate(self) -> None:
        """Forget cached listings, so a rescan sees new files."""

    # -- writes (writable storages only)
    def _read_only(self, what: str) -> ReadOnlyError:
        return ReadOnlyError(f"{self.display()} is read-only: cannot {what}")

    def unlink(self, path: Any) -> None:
        raise self._read_only("delete files")

    def rename(self, src: Any, dst: Any) -> None:
        raise self._read_only("move files")

    def write_atomic(self, path: Any, data: bytes, mode: int | None = None) -> None:
        raise self._read_only("write files")

    def locked(self, path: Any) -> contextlib.AbstractContextManager[None]:
        raise self._read_only("lock files")

    def realpath(self, path: Any) -> str:
        """The path with links resolved, as text (remote: its URL)."""
        return self.display(path)

    def lstat(self, path: Any) -> tuple[int, float, bool]:
        raise self._read_only("check files before deleting them")

    def shared_mode(self, directory: Any) -> int | None:
        """The mode for a new sidecar file in ``directory``: owner read-write plus the
        directory's group/other read bits (None where modes do not apply)."""
        return None

    def require_writable(self, what: str) -> None:
        if not self.writable:
            raise self._read_only(what)


# --------------------------------------------------------------------------------------------
# local disk


if hasattr(os, "pread"):
    pread = os.pread
else:  # pragma: no cover - Windows
    def pread(fd: int, n: int, offset: int) -> bytes:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, n)

_O_RDONLY = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_TAIL_CACHE: dict[tuple[str, int, int], bool] = {}
_TAIL_CACHE_MAX = 200_000

# ``parent / name`` for a name from scandir. Before 3.12 pathlib parses every Path it builds
# (a third of the scan's time); its own child constructor (used by Path.glob) skips the parse.
child_path = Path._make_child_relpath if sys.version_info < (3, 12) else Path.joinpath  # type: ignore[attr-defined]


_EOCD = struct.Struct("<4s8xII2x")  # end of central directory: signature, cd size, cd offset
_Z64 = struct.Struct("<4s36xQQ")  # zip64 end record: signature, …, cd size, cd offset


def _end_record_fits(tail: bytes, end: int) -> bool:
    """Whether ``tail`` (the file's bytes up to offset ``end``) ends in an end-of-central-
    directory record whose directory ends where the end records begin: the zip is whole, not cut
    or still growing. torch writes a zip64 end record and locator (76 bytes) before it."""
    n = len(tail)
    if n < 22:
        return False
    sig, cd_size, cd_offset = _EOCD.unpack_from(tail, n - 22)
    if sig != b"PK\x05\x06":
        return False
    if cd_offset + cd_size == end - 22:
        return True
    if n < 42 or tail[n - 42:n - 38] != b"PK\x06\x07":
        return False
    if n < 98 or tail[n - 98:n - 94] != b"PK\x06\x06":
        return True  # a zip64 record with extensible data: trust the locator
    _, cd_size, cd_offset = _Z64.unpack_from(tail, n - 98)
    return cd_offset + cd_size == end - 98


def zip_complete(path: str | os.PathLike[str], size: int, mtime_ns: int) -> bool:
    """True when a local file ends in a zip end-of-central-directory record (cached by path,
    size and mtime)."""
    if size < 22:
        return False
    key = (str(path), size, mtime_ns)
    hit = _TAIL_CACHE.get(key)
    if hit is not None:
        return hit
    try:  # a bare fd and pread: a buffered file object costs twice as much per file
        fd = os.open(path, _O_RDONLY)
        try:
            back = 98 if size >= 98 else size
            tail = pread(fd, back, size - back)
            sig, cd_size, cd_offset = _EOCD.unpack_from(tail, len(tail) - 22)
            ok = sig == b"PK\x05\x06" and (cd_offset + cd_size == size - 22
                                             or _end_record_fits(tail, size))
            if not ok:  # a zip comment moves the record; torch writes none, but be lenient
                back = min(size, 65_557)
                tail = pread(fd, back, size - back)
                at = tail.rfind(b"PK\x05\x06")
                ok = at >= 0 and _end_record_fits(tail[:at + 22], size - back + at + 22)
        finally:
            os.close(fd)
    except OSError:
        return False
    if len(_TAIL_CACHE) > _TAIL_CACHE_MAX:
        _TAIL_CACHE.clear()
    _TAIL_CACHE[key] = ok
    return ok


class LocalStorage(Storage):
    """A base dir on a local (or locally mounted) filesystem: the fast paths."""

    writable = True
    watchable = True
    concurrent_reads = True

    def __init__(self, root: str | os.PathLike[str] = ".", *, writable: bool = True) -> None:
        self.root = Path(root)
        self.writable = writable

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r}, writable={self.writable})"

    def path(self, text: str) -> Path:
        return Path(text)

    def join(self, parent: Any, name: str) -> Path:
        if isinstance(parent, Path):
            return child_path(parent, name)  # type: ignore[no-any-return]
        return Path(parent, name)

    def display(self, path: Any = None) -> str:
        return str(self.root if path is None else path)

    def list_dir(self, path: Any) -> list[Row]:
        rows: list[Row] = []
        with os.scandir(path) as it:
            entries = list(it)
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            try:
                st = entry.stat()  # follows links: the user sees the target's size
                is_link = entry.is_symlink()
            except OSError:  # vanished, or a dangling link: the caller notes it
                rows.append((entry.name, False, -1, 0.0, True, 0))
                continue
            size = st.st_size
            if not size and not is_dir and not _stat.S_ISREG(st.st_mode):
                size = -2  # a FIFO, socket or device (their size is 0)
            rows.append((entry.name, is_dir, size, st.st_mtime, is_link, st.st_mtime_ns))
        return rows

    def open(self, path: Any, size: int | None = None) -> IO[bytes]:
        if "\0" in str(path):
            raise OSError(f"invalid file name (it contains a NUL byte): {path}")
        fd = os.open(path, _O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
        try:
            st = os.fstat(fd)
            if _stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(21, "is a directory", str(path))
            if not _stat.S_ISREG(st.st_mode):
                raise NotARegularFile(f"not a regular file (a device, pipe or socket): {path}")
            return io.FileIO(fd, "rb", closefd=True)
        except BaseException:
            os.close(fd)
            raise

    def open_reader(self, path: Any, size: int) -> Reader:
        from .readers import FdReader

        # (its path lets a worker process reopen it: FdReader.reopener)
        return FdReader(self.open(path, size), size, os.path.abspath(path))  # type: ignore[arg-type]

    def read_bytes(self, path: Any, limit: int | None = None) -> bytes:
        with self.open(path) as f:
            if limit is None:
                return f.read()
            data = f.read(limit + 1)
        if len(data) > limit:
            raise OSError(f"larger than {limit} bytes")
        return data

    def exists(self, path: Any) -> bool:
        return os.path.exists(path)

    def stat(self, path: Any) -> tuple[int, float]:
        st = os.stat(path)
        return st.st_size, st.st_mtime

    zip_whole = staticmethod(zip_complete)  # (no wrapper call: 30,000 files per scan)

    def mmap(self, path: Any) -> _mmap.mmap | None:
        import mmap as _mmap

        with open(path, "rb") as f:
            return _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)

    def disk_usage(self) -> tuple[int, int] | None:
        try:
            if not hasattr(os, "statvfs"):  # pragma: no cover - Windows
                import shutil

                usage = shutil.disk_usage(self.root)
                return usage.free, usage.total
            st = os.statvfs(self.root)  # (as shutil.disk_usage does: not importing it)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def cache_key(self, path: Any, size: int, mtime: float) -> tuple[str, int, float]:
        return (str(path), size, mtime)

    def file_key(self, path: Any, size: int, mtime: float) -> tuple[Any, ...]:
        st = os.stat(path)
        return ("local", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    # -- writes
    def unlink(self, path: Any) -> None:
        self.require_writable("delete files")
        os.unlink(path)

    def rename(self, src: Any, dst: Any) -> None:
        self.require_writable("move files")
        os.rename(src, dst)

    def write_atomic(self, path: Any, data: bytes, mode: int | None = None) -> None:
        """Write ``path`` whole or not at all: a temp file beside it, fsync, rename."""
        self.require_writable("write files")
        path = Path(path)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mode is None else mode)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if mode is not None:
                os.chmod(tmp, mode)  # the umask may have narrowed it
            os.replace(tmp, path)
        except BaseException:
            import contextlib

            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def locked(self, path: Any) -> contextlib.AbstractContextManager[None]:
        """An exclusive advisory lock on a directory, for read-modify-write of its sidecars."""
        import contextlib  # (here: a listing takes no lock)

        @contextlib.contextmanager
        def lock() -> Iterator[None]:
            self.require_writable("lock files")
            import fcntl

            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock

        return lock()

    def realpath(self, path: Any) -> str:
        return os.path.realpath(path)

    def lstat(self, path: Any) -> tuple[int, float, bool]:
        """(size, mtime, is_link) without following a link."""
        st = os.lstat(path)
        return st.st_size, st.st_mtime, _stat.S_ISLNK(st.st_mode)

    def shared_mode(self, directory: Any) -> int | None:
        try:
            return 0o600 | (os.stat(directory).st_mode & 0o044)
        except OSError:
            return None


class NotARegularFile(OSError):
    """A FIFO, socket or device named like a checkpoint file."""


LOCAL = LocalStorage()  # the storage of objects made without one (a local file by path)


# --------------------------------------------------------------------------------------------
# fsspec


def mtime_of(info: dict[str, Any]) -> float:
    """Modification time in seconds from an fsspec info dict (each backend names it its own
    way); 0.0 when unknown (then the file never looks in flight)."""
    import contextlib
    import datetime as _dt

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


def _as_os_error(e: BaseException) -> OSError:
    """A backend's exception as the OSError the core handles (one line, no password)."""
    if isinstance(e, OSError):
        return e
    return OSError(f"remote read failed ({type(e).__name__}: {redact(str(e))[:200]})")


class _CountedFile(io.RawIOBase):
    """A read-only view of an fsspec file that keeps its own position (some backends' ``seek``
    returns nothing), counts what each ``read`` fetched, turns backend errors into OSErrors,
    and holds the storage's lock around each seek + read pair."""

    def __init__(self, raw: Any, stats: FetchStats, lock: Any, size: int | None) -> None:
        super().__init__()
        self._raw, self._stats, self._lock, self._size = raw, stats, lock, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _end(self) -> int:
        if self._size is None:
            size = getattr(self._raw, "size", None)
            if not isinstance(size, int):
                with self._lock:
                    self._raw.seek(0, os.SEEK_END)
                    size = int(self._raw.tell())
            self._size = size
        return self._size

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos}.get(whence)
        self._pos = max(0, (self._end() if base is None else base) + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = max(0, self._end() - self._pos)
        try:
            with self._lock:
                self._raw.seek(self._pos)
                data = bytes(self._raw.read(n))
        except Exception as e:
            raise _as_os_error(e) from None
        self._pos += len(data)
        self._stats.add(len(data))
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            import contextlib

            with contextlib.suppress(Exception):
                self._raw.close()
        super().close()


class FsspecStorage(Storage):
    """A read-only base dir at any fsspec URL, read with ranged requests."""

    writable = False
    watchable = False

    def __init__(self, fs: Any, root: str, url: str, *, block_size: int = BLOCK_SIZE,
                 concurrent_reads: bool = True) -> None:
        self.fs = fs
        self.root = RemotePath(root)
        self.url = url  # without a password
        self.block_size = block_size
        self.concurrent_reads = concurrent_reads
        self.stats = FetchStats()
        # one SFTP session is one channel: requests on it are serialized
        if concurrent_reads:
            import contextlib

            self._lock: Any = contextlib.nullcontext()
        else:
            import threading

            self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"FsspecStorage({self.url!r})"

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0].lower()

    def path(self, text: str) -> RemotePath:
        return RemotePath(text)

    def display(self, path: Any = None) -> str:
        if path is None:
            return self.url
        text, root = str(path), str(self.root).rstrip("/")
        if text == str(self.root):
            return self.url
        if text.startswith(root + "/"):
            return self.url.rstrip("/") + "/" + text[len(root) + 1:]
        return redact(str(self.fs.unstrip_protocol(text)))

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return fn(*args, **kwargs)

    def list_dir(self, path: Any) -> list[Row]:
        own = str(path).rstrip("/")
        rows: list[Row] = []
        for info in self._call(self.fs.ls, str(path), detail=True):
            name = str(info.get("name", "")).rstrip("/")
            if not name or name == own:
                if info.get("type") == "file":  # the path is a file: no directory here
                    raise NotADirectoryError(20, "not a directory", str(path))
                continue
            is_link = info.get("type") == "link" or bool(info.get("islink", False))
            if info.get("type") == "link":  # (sftp lists links unresolved: follow them)
                try:
                    info = {**self._call(self.fs.info, name), "name": name}
                except Exception:
                    rows.append((name.rsplit("/", 1)[-1], False, -1, 0.0, True, 0))
                    continue
            size = info.get("size")
            rows.append((name.rsplit("/", 1)[-1], info.get("type") == "directory",
                         int(size) if isinstance(size, int) else 0, mtime_of(info), is_link, 0))
        return rows

    def open(self, path: Any, size: int | None = None) -> IO[bytes]:
        p = str(path)
        try:
            try:
                raw = self._call(self.fs.open, p, "rb", block_size=self.block_size,
                                 cache_type="none", size=size)
            except TypeError:  # a filesystem whose open takes no cache options
                raw = self._call(self.fs.open, p, "rb")
        except Exception as e:
            raise _as_os_error(e) from None
        return _CountedFile(raw, self.stats, self._lock, size)  # type: ignore[return-value]

    def read_bytes(self, path: Any, limit: int | None = None) -> bytes:
        try:
            data = bytes(self._call(self.fs.cat_file, str(path)))
        except Exception as e:
            raise _as_os_error(e) from None
        self.stats.add(len(data))
        if limit is not None and len(data) > limit:
            raise OSError(f"larger than {limit} bytes")
        return data

    def map(self, fn: Callable[[T], R], items: list[T]) -> list[R]:
        if len(items) <= 1 or not self.concurrent_reads:
            return [fn(x) for x in items]
        return list(self.imap(fn, items))

    def imap(self, fn: Callable[[T], R], items: list[T]) -> Iterator[R]:
        if len(items) <= 1 or not self.concurrent_reads:
            yield from (fn(x) for x in items)
            return
        from concurrent.futures import ThreadPoolExecutor  # (not at import: CLI start-up)

        pool = ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(items)))
        try:
            yield from pool.map(fn, items)
        finally:  # (a caller that stops early: the requests not started are dropped)
            pool.shutdown(wait=True, cancel_futures=True)

    def exists(self, path: Any) -> bool:
        try:
            return bool(self._call(self.fs.exists, str(path)))
        except Exception:
            return False

    def stat(self, path: Any) -> tuple[int, float]:
        try:
            info = self._call(self.fs.info, str(path))
        except Exception as e:
            raise _as_os_error(e) from None
        return int(info.get("size") or 0), mtime_of(info)

    def invalidate(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self._call(self.fs.invalidate_cache)


def open_storage(location: str | os.PathLike[str], storage_options: dict[str, Any] | None = None,
                 *, writable: bool = True, what: str = "URL") -> Storage:
    """The storage of a local dir or an fsspec URL. Raises :class:`StorageError` (unknown
    protocol, missing backend package, unreachable host, refused host key, …)."""
    text = os.fspath(location)
    if not is_url(text):
        return LocalStorage(Path(text).expanduser(), writable=writable)
    shown = redact(text)
    protocol = text.split("://", 1)[0].lower()
    if protocol in ("ssh", "sftp"):
        return _open_ssh(text, shown, storage_options or {}, what)
    try:
        import fsspec.core
    except ImportError:
        raise StorageError(f"a {protocol}:// URL needs the fsspec package, which is not "
                           "installed: pip install fsspec") from None
    try:
        fs, root = fsspec.core.url_to_fs(text, **(storage_options or {}))
    except ImportError as e:
        raise StorageError(missing_backend(protocol, e, what)) from None
    except ValueError as e:
        if "Protocol not known" in str(e):
            kind = "destination " if what == "destination" else ""
            raise StorageError(f"unknown {kind}protocol {protocol}:// (fsspec knows s3, gs, ssh, "
                               "file, memory, …)") from None
        raise StorageError(f"{shown}: {e}") from None
    except Exception as e:  # bad storage options, unreachable host
        raise StorageError(f"{shown}: cannot open ({type(e).__name__}: {redact(str(e))})") \
            from None
    return FsspecStorage(fs, _clean_root(str(root)), _clean_url(shown))


def _clean_root(root: str) -> str:
    return root.rstrip("/") if len(root) > 1 else root


def _clean_url(shown: str) -> str:
    display = shown.rstrip("/")
    return display if not display.endswith(":/") else shown


def _open_ssh(url: str, shown: str, options: dict[str, Any], what: str) -> FsspecStorage:
    """``ssh://user@host[:port]/path`` through :mod:`.sftp`: the user's keys, agent and
    ``~/.ssh/config``, host keys checked against ``known_hosts``, every request timed out."""
    from . import sftp

    try:
        u = sftp.sftp_kwargs_from_url(url)
        opts = {k: v for k, v in options.items() if k != "skip_instance_cache"}
        if u.password and "password" not in opts:
            opts["password"] = u.password
        fs = sftp.open_sftp_fs(u.host, u.port, u.user, opts)
        root = fs.expand_home(u.path) if u.path.startswith("~") else u.path
    except sftp.SSHError as e:
        raise StorageError(str(e)) from None
    except ImportError as e:
        raise StorageError(missing_backend("ssh", e, what)) from None
    except Exception as e:  # the server went away between connect and the first call
        raise StorageError(f"{shown}: {type(e).__name__}: {redact(str(e))}") from None
    return FsspecStorage(fs, _clean_root(root or "/"), _clean_url(shown), concurrent_reads=False)
