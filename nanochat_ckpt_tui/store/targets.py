"""Archive destinations: a local dir or any fsspec URL, written so that a half-copied file
never looks complete (see :mod:`.archive` for the two strategies, ``rename`` and ``direct``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from .remote import mtime_of
from .storage import StorageError, is_url, open_storage, redact

PARTIAL_SUFFIX = ".partial"
DIRECT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs"})
CHUNK = 8 * 1024 * 1024


class ArchiveError(Exception):
    """The archive cannot be made as asked (bad destination, missing backend, …)."""


class Target:
    """The destination root. Paths are relative, with ``/`` separators."""

    display: str
    strategy: str

    def size(self, rel: str) -> int | None:
        got = self.stat(rel)
        return None if got is None else got[0]

    def stat(self, rel: str) -> tuple[int, float] | None:
        """(size, mtime) of a file at the destination, None when absent."""
        raise NotImplementedError

    def open_read(self, rel: str) -> IO[bytes]:
        raise NotImplementedError

    def open_write(self, rel: str) -> tuple[IO[bytes], str]:
        """A handle and the relative path it writes (``.partial`` or final)."""
        raise NotImplementedError

    def finish(self, fh: IO[bytes]) -> None:
        """Flush, make durable where possible, close (publishes a direct upload)."""
        fh.close()

    def abort(self, fh: IO[bytes], written: str) -> None:
        """Drop an unfinished write so nothing of it is visible."""
        raise NotImplementedError

    def commit(self, written: str, rel: str, mtime: float) -> None:
        """Give the written file its final name (and, where possible, the source's mtime)."""
        raise NotImplementedError

    def remove(self, rel: str) -> None:
        raise NotImplementedError

    def read_small(self, rel: str, limit: int) -> bytes | None:
        raise NotImplementedError

    def write_small(self, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def refresh(self) -> None:
        """Forget cached listings (object stores cache them)."""

    def check_root(self) -> None:
        """Raise :class:`ArchiveError` if the destination cannot exist as given."""


class LocalTarget(Target):
    strategy = "rename"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.display = str(root)

    def _p(self, rel: str) -> Path:
        return self.root.joinpath(*rel.split("/"))

    def stat(self, rel: str) -> tuple[int, float] | None:
        try:
            st = os.stat(self._p(rel))
        except FileNotFoundError:
            return None
        return st.st_size, st.st_mtime

    def open_read(self, rel: str) -> IO[bytes]:
        return open(self._p(rel), "rb")

    def open_write(self, rel: str) -> tuple[IO[bytes], str]:
        path = self._p(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path.with_name(path.name + PARTIAL_SUFFIX), "wb"), rel + PARTIAL_SUFFIX

    def finish(self, fh: IO[bytes]) -> None:
        try:
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fh.close()

    def abort(self, fh: IO[bytes], written: str) -> None:
        with contextlib.suppress(OSError):
            fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self._p(written))

    def commit(self, written: str, rel: str, mtime: float) -> None:
        final = self._p(rel)
        with contextlib.suppress(OSError):  # as cp -p: ages and "being written" stay right
            os.utime(self._p(written), (mtime, mtime))
        os.replace(self._p(written), final)
        fsync_dir(final.parent)

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._p(rel))

    def read_small(self, rel: str, limit: int) -> bytes | None:
        try:
            with open(self._p(rel), "rb") as f:
                return f.read(limit + 1)
        except FileNotFoundError:
            return None

    def write_small(self, rel: str, data: bytes) -> None:
        path = self._p(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FsspecTarget(Target):
    def __init__(self, url: str, storage_options: dict[str, Any] | None) -> None:
        self.display = redact(url)
        protocol = url.split("://", 1)[0].lower()
        try:  # the same connection code as a base dir (ssh: known_hosts, keys, timeouts)
            storage = open_storage(url, storage_options, what="destination")
        except StorageError as e:
            raise ArchiveError(str(e)) from None
        self.fs = storage.fs  # type: ignore[attr-defined]
        root = str(storage.root)
        self.root = root.rstrip("/") if root != "/" else ""
        self.strategy = "direct" if protocol in DIRECT_PROTOCOLS else "rename"

    def _p(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root else rel

    def refresh(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.invalidate_cache()

    def check_root(self) -> None:
        if self.strategy != "direct":
            return
        bucket = self.root.split("/", 1)[0]
        try:
            self.fs.info(bucket)
        except FileNotFoundError:
            raise ArchiveError(f"{self.display}: bucket {bucket!r} does not exist (or is not "
                               "visible with these credentials); this tool never creates "
                               "buckets") from None
        except Exception as e:
            raise ArchiveError(f"{self.display}: cannot reach the destination "
                               f"({type(e).__name__}: {e})") from None

    def stat(self, rel: str) -> tuple[int, float] | None:
        try:
            info = self.fs.info(self._p(rel))
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return int(info["size"]), mtime_of(info)

    def open_read(self, rel: str) -> IO[bytes]:
        return self.fs.open(self._p(rel), "rb", block_size=CHUNK)

    def open_write(self, rel: str) -> tuple[IO[bytes], str]:
        if self.strategy == "direct":  # no directories (and never create a bucket)
            return self.fs.open(self._p(rel), "wb", block_size=CHUNK), rel
        written = rel + PARTIAL_SUFFIX
        with contextlib.suppress(Exception):
            self.fs.makedirs(self._p(written).rsplit("/", 1)[0], exist_ok=True)
        return self.fs.open(self._p(written), "wb", block_size=CHUNK), written

    def abort(self, fh: IO[bytes], written: str) -> None:
        if self.strategy == "direct":
            with contextlib.suppress(Exception):
                fh.discard()  # type: ignore[attr-defined]  # s3fs/gcsfs: abort the upload
            fh.closed = True  # type: ignore[misc]  # never let close() publish the prefix
            return
        with contextlib.suppress(Exception):
            fh.close()
        with contextlib.suppress(Exception):
            self.fs.rm(self._p(written))

    def commit(self, written: str, rel: str, mtime: float) -> None:
        if written != rel:
            self.fs.mv(self._p(written), self._p(rel))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._p(rel))

    def read_small(self, rel: str, limit: int) -> bytes | None:
        try:
            with self.fs.open(self._p(rel), "rb") as f:
                return f.read(limit + 1)
        except FileNotFoundError:
            return None

    def write_small(self, rel: str, data: bytes) -> None:
        if self.strategy == "direct":  # a single PUT is atomic on object stores
            self.fs.pipe_file(self._p(rel), data)
            return
        tmp = f"{rel}.{os.getpid()}.tmp"
        parent = self._p(rel).rsplit("/", 1)[0]
        with contextlib.suppress(Exception):
            self.fs.makedirs(parent, exist_ok=True)
        self.fs.pipe_file(self._p(tmp), data)
        try:
            self.fs.mv(self._p(tmp), self._p(rel))
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(self._p(tmp))
            raise


def open_target(dest: str | os.PathLike[str],
                storage_options: dict[str, Any] | None = None) -> Target:
    """A local dir (plain path or ``file://``) or an fsspec URL."""
    text = os.fspath(dest)
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
        if text.startswith("localhost/"):
            text = text[len("localhost"):]
        return LocalTarget(Path(text).expanduser().absolute())
    if is_url(text):
        return FsspecTarget(text, storage_options)
    return LocalTarget(Path(text).expanduser().absolute())


