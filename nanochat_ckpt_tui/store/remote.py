"""Remote base dirs: :class:`FsspecStorage` wraps any fsspec URL (``s3://``, ``gs://``,
``ssh://``, ``memory://``, ``file://``), read-only, with ranged reads counted in
:attr:`FsspecStorage.stats`; ``ssh://`` connects through :mod:`.sftp` (known_hosts checked,
timeouts, one lock around the single SFTP channel). Its paths are :class:`RemotePath` objects.
Imported only when a URL is opened (:func:`.storage.open_storage`).
"""

from __future__ import annotations

import io
import os
from pathlib import PurePosixPath

from .seam import FetchStats, Row, Storage, StorageError, missing_backend, redact

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any, TypeVar

    T = TypeVar("T")
    R = TypeVar("R")

BLOCK_SIZE = 64 * 1024  # fsspec block size of opened files (no cache: exact ranges anyway)
LIST_WORKERS = 8  # directories listed / small files fetched concurrently on a remote storage


class RemotePath(PurePosixPath):
    """A path inside a remote storage. ``str()``, ``name``, ``parent`` and ``/`` work (and stay
    RemotePaths); ``os.fspath`` raises, so ``open``/``os.unlink``/``os.stat`` of it fail instead
    of touching a local file of the same name."""

    __slots__ = ()

    def __fspath__(self) -> str:
        raise TypeError(f"{self} is a path in a remote (read-only) storage: read it through "
                        "its Storage, never with local file functions")



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


def open_url(text: str, storage_options: dict[str, Any] | None = None, *,
             what: str = "URL") -> FsspecStorage:
    """The storage of an fsspec URL. Raises :class:`StorageError` (unknown protocol, missing
    backend package, unreachable host, refused host key, …)."""
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
