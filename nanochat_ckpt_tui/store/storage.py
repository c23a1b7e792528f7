"""The storage seam: :class:`.seam.Storage` (re-exported here with the seam's errors and URL
helpers), :class:`LocalStorage` and :func:`open_storage`.

:class:`LocalStorage` keeps the fast paths (``os.scandir``, ``os.pread`` on a bare fd, mmap,
the zip-tail cache). A URL opens an :class:`.remote.FsspecStorage` (imported then, not at
start-up).
"""

from __future__ import annotations

import io
import os
import stat as _stat
import struct

from .localpath import LocalPath
from .seam import (
    BACKENDS,
    EXTRAS,
    FetchStats,
    ReadOnlyError,
    Row,
    Storage,
    StorageError,
    is_url,
    missing_backend,
    redact,
)

__all__ = ["BACKENDS", "EXTRAS", "LOCAL", "FetchStats", "LocalStorage", "NotARegularFile",
           "ReadOnlyError", "Row", "Storage", "StorageError", "is_url", "missing_backend",
           "open_storage", "redact", "zip_complete"]

# Not imported at run time (the CLI's start-up pays for every module): typing, dataclasses,
# contextlib, datetime, mmap, shutil, threading and the readers are imported where used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import contextlib
    import mmap as _mmap
    from collections.abc import Iterator
    from typing import IO, Any

    from .readers import Reader

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


_O_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_sized(path: Any, size: int, limit: int | None) -> bytes | Exception:
    """A small file a listing said holds ``size`` bytes (only regular files have one), in three
    system calls where :meth:`LocalStorage.read_bytes` makes six (6,000 metas of an ``ls``: 20 ms
    less); an OSError when it is not what the listing saw (gone, empty, grown past ``limit``)."""
    if size <= 0:
        return OSError(f"{path}: empty when listed")
    try:
        fd = os.open(path, _O_READ)
    except OSError as e:
        return e
    try:
        data = os.read(fd, size + 1)
        while len(data) > size:  # grown since the listing: the rest, up to the limit
            more = os.read(fd, 1 << 20)
            if not more:
                break
            data += more
            if limit is not None and len(data) > limit:
                return OSError(f"{path}: larger than {limit} bytes")
    except OSError as e:
        return e
    finally:
        os.close(fd)
    return data


class LocalStorage(Storage):
    """A base dir on a local (or locally mounted) filesystem: the fast paths."""

    writable = True
    watchable = True
    concurrent_reads = True
    lists_ids = True

    def __init__(self, root: str | os.PathLike[str] = ".", *, writable: bool = True) -> None:
        self.root = LocalPath(root)
        self.writable = writable

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r}, writable={self.writable})"

    def path(self, text: str) -> LocalPath:
        return LocalPath(text)

    def join(self, parent: Any, name: str) -> LocalPath:
        return (parent if type(parent) is LocalPath else LocalPath(parent)) / name

    def display(self, path: Any = None) -> str:
        return str(self.root if path is None else path)

    def plain_prefix(self, directory: Any) -> str:
        text = str(directory)
        return "" if text == "." else text if text.endswith("/") else text + "/"

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

    def read_many(self, paths: list[Any], sizes: list[int] | None = None,
                  limit: int | None = None) -> list[bytes | Exception]:
        if sizes is None:
            return super().read_many(paths, limit=limit)
        return [_read_sized(p, n, limit) for p, n in zip(paths, sizes, strict=True)]

    def dir_ids(self, directory: Any) -> tuple[int, dict[str, int]]:
        with os.scandir(directory) as it:
            ids = {e.name: e.inode() for e in it}
        return os.stat(directory).st_dev, ids

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
        path = LocalPath(path)
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


def open_storage(location: str | os.PathLike[str], storage_options: dict[str, Any] | None = None,
                 *, writable: bool = True, what: str = "URL") -> Storage:
    """The storage of a local dir or an fsspec URL. Raises :class:`StorageError` (unknown
    protocol, missing backend package, unreachable host, refused host key, …)."""
    text = os.fspath(location)
    if not is_url(text):
        return LocalStorage(LocalPath(text).expanduser(), writable=writable)
    from .remote import open_url

    return open_url(text, storage_options, what=what)
