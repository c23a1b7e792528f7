"""The storage seam's interface: :class:`Storage`, what every backend implements, and what the
core asks of it. Every read and write of checkpoint files goes through a Storage.

The core never asks whether a base dir is local or remote; it asks its storage what it can do
(:attr:`Storage.writable`, :attr:`Storage.watchable`, :attr:`Storage.concurrent_reads`,
:meth:`Storage.mmap`) and reads through the same few calls:

- :meth:`Storage.list_dir`: one directory's rows (name, is_dir, size, mtime, is_link, mtime_ns);
- :meth:`Storage.open`: a seekable binary file for positioned reads (a local fd, or an fsspec
  file that fetches exactly the ranges read);
- :meth:`Storage.open_reader`: a bulk reader for streaming tensors (:mod:`.readers`);
- :meth:`Storage.read_bytes` / :meth:`Storage.read_many`: whole small files (metas, pins);
- :meth:`Storage.display`: what to show the user (a local path, or a URL without a password);
- on writable storages only: :meth:`Storage.unlink`, :meth:`Storage.rename`,
  :meth:`Storage.write_atomic`, :meth:`Storage.locked`, :meth:`Storage.realpath`.

The backends: :class:`.storage.LocalStorage` (local disk, the fast paths) and
:class:`.remote.FsspecStorage` (any fsspec URL, read-only); :func:`.storage.open_storage`
picks one for a path or URL. URL recognition, password redaction and the "install this
backend" messages live here.
"""

from __future__ import annotations

import _thread
import re

# Not imported at run time (the CLI's start-up pays for every module).
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
    lists_ids = False  # dir_ids() works, and file_key is ("local", device, inode, size, mtime_ns)
    root: Any  # the base dir: a LocalPath (local) or a RemotePath
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

    def plain_prefix(self, directory: Any) -> str | None:
        """Where paths are plain text (local disk), the text that a file's path in
        ``directory`` (its display, the text of its :meth:`cache_key`) is before the file's
        name: callers then make thousands of path texts without formatting a path each. None
        where paths are shown otherwise."""
        return None

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

    def read_many(self, paths: list[Any], sizes: list[int] | None = None,
                  limit: int | None = None) -> list[bytes | Exception]:
        """Several small files; each result is the bytes or the error (OSError past ``limit``
        bytes). ``sizes``: what a listing said each holds (a storage may read that much at once;
        a file that is empty or gone since, or has grown past ``limit``, is then an error)."""
        def one(p: Any) -> bytes | Exception:
            try:
                return self.read_bytes(p, limit)
            except Exception as e:  # reported per file by the caller
                return e
        return self.map(one, paths)

    def dir_ids(self, directory: Any) -> tuple[int, dict[str, int]]:
        """(device, {name: inode}) of a directory's entries, from one listing, where
        :attr:`lists_ids`: with a listing's size and mtime, each file's :meth:`file_key`
        without a stat per file. OSError when the directory cannot be listed."""
        raise NotImplementedError

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
