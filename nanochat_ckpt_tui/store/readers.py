"""Bulk readers of one file's bytes, made by a storage for streaming tensors (diff, check).

A :class:`Reader` fills caller-owned buffers from file offsets (``read_into``), hints what comes
next (``will_need``) and serves strided tensors from a window of the file (``window``). Two kinds:

- :class:`FdReader`, for files with a local descriptor: ``os.preadv`` straight into the buffer,
  ``posix_fadvise`` read-ahead, and an mmap made only when a strided tensor needs one;
- :class:`BlockReader`, for any seekable file object (an fsspec remote file): ranged reads of
  ``block_bytes``, front to back, with the next block fetched in the background so requests
  overlap the statistics. At most two blocks are in memory.

Readers raise ``OSError`` with one line; callers name the file.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import threading
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future, ThreadPoolExecutor

BLOCK_BYTES = 8 << 20  # a block reader fetches the file in ranged requests of this size
STRIDED_MAX = 256 << 20  # a strided tensor is fetched whole by a block reader, up to this size
_HAS_PREADV = hasattr(os, "preadv")


class Reader:
    """Positioned bulk reads of one file of ``size`` bytes."""

    size: int
    concurrent = False  # several threads may read_into at once

    def read_into(self, dst: Any, offset: int) -> None:
        """Fill the writable contiguous buffer ``dst`` from file byte ``offset``."""
        raise NotImplementedError

    def window(self, start: int, end: int) -> tuple[Any, int]:
        """The bytes ``[start, end)`` as (buffer, file offset of the buffer's first byte)."""
        raise NotImplementedError

    def will_need(self, offset: int, length: int) -> None:
        """A hint: these bytes are read next."""

    def reopener(self) -> Callable[[], Reader] | None:
        """A picklable way for another process on this machine to read the same file (worker
        processes of a diff or check), or None when there is none."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_reader(f: IO[bytes], size: int, path: str | None = None) -> Reader:
    """The best reader for an open file: an fd reader for a local file, else block reads."""
    if isinstance(f, io.FileIO):
        return FdReader(f, size, path)
    return BlockReader(f, size)


class FdReopener:
    """Opens, in another process, the very file an :class:`FdReader` reads: through the
    reader's descriptor in ``/proc`` (the same file even if it was renamed or replaced since),
    else by its path; either way checked to be the same file (device and inode)."""

    __slots__ = ("pid", "fd", "path", "size", "ident")

    def __init__(self, pid: int, fd: int, path: str | None, size: int,
                 ident: tuple[int, int]) -> None:
        self.pid, self.fd, self.path, self.size, self.ident = pid, fd, path, size, ident

    def _key(self) -> tuple[Any, ...]:
        return self.pid, self.fd, self.path, self.size, self.ident

    def __getstate__(self) -> tuple[Any, ...]:
        return self._key()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.pid, self.fd, self.path, self.size, self.ident = state

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FdReopener) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __call__(self) -> FdReader:
        for where in (f"/proc/{self.pid}/fd/{self.fd}", self.path):
            if where is None:
                continue
            try:
                fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            except OSError:
                continue
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == self.ident:
                return FdReader(io.FileIO(fd, "rb", closefd=True), self.size, self.path)
            os.close(fd)
        raise OSError("replaced or removed while being read")


class FdReader(Reader):
    concurrent = True  # preadv: positioned, no shared file offset

    def __init__(self, f: io.FileIO, size: int, path: str | None = None) -> None:
        self._file = f
        self.fd = f.fileno()
        self.size = size
        self.path = path
        self.mm: mmap.mmap | None = None
        self._lock = threading.Lock()
        st = os.fstat(self.fd)
        self.ident = (st.st_dev, st.st_ino)
        actual = st.st_size
        if actual != size:
            f.close()
            how = "truncated" if actual < size else "grew"
            raise OSError(f"{how} while being read ({size:,} -> {actual:,} bytes): being "
                          "written again?")
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def read_into(self, dst: Any, offset: int) -> None:
        # Views are released explicitly: one left alive in an exception's traceback could
        # outlive ``dst`` when the cycle is collected ("deallocated bytearray object has
        # exported buffers").
        got = 0
        nbytes = getattr(dst, "nbytes", None)  # a numpy array: one preadv, no views (hot path)
        if _HAS_PREADV and nbytes is not None:
            got = os.preadv(self.fd, [dst], offset)
            if got == nbytes:
                return
        with memoryview(dst) as base, base.cast("B") as mv:
            while got < len(mv):
                with mv[got:] as rest:
                    if _HAS_PREADV:
                        n = os.preadv(self.fd, [rest], offset + got)
                    else:  # pragma: no cover - platforms without preadv
                        self._file.seek(offset + got)
                        n = self._file.readinto(rest) or 0
                if n <= 0:
                    raise OSError("truncated while being read")
                got += n

    def window(self, start: int, end: int) -> tuple[Any, int]:
        with self._lock:  # made once, on first use: only strided tensors need it
            if self.mm is None:
                if os.fstat(self.fd).st_size < self.size:
                    raise OSError("truncated while being read")
                try:
                    self.mm = mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ)
                except ValueError as e:
                    raise OSError(f"cannot map the file ({e})") from None
            return self.mm, 0

    def will_need(self, offset: int, length: int) -> None:
        if hasattr(os, "posix_fadvise") and length > 0:
            os.posix_fadvise(self.fd, offset, length, os.POSIX_FADV_WILLNEED)

    def reopener(self) -> FdReopener:
        return FdReopener(os.getpid(), self.fd, self.path, self.size, self.ident)

    def close(self) -> None:
        if self.mm is not None:
            with contextlib.suppress(BufferError):  # a view still alive: GC closes it later
                self.mm.close()
            self.mm = None
        self._file.close()


class BlockReader(Reader):
    def __init__(self, f: IO[bytes], size: int, block_bytes: int | None = None) -> None:
        self._file: IO[bytes] | None = f
        self.size = size
        self.block_bytes = block_bytes or BLOCK_BYTES
        self._block = b""
        self._block_at = 0
        from concurrent.futures import ThreadPoolExecutor

        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="block-fetch")
        self._ahead: tuple[int, Future[bytes]] | None = None

    def read_into(self, dst: Any, offset: int) -> None:
        """Serve ``dst`` from the current block. The tensors of a torch zip follow each other
        with their local headers between them, so a stream reads each file front to back: one
        request per block, headers included; a jump costs at most one block read for nothing."""
        with memoryview(dst) as base, base.cast("B") as mv:
            n = len(mv)
            got = 0
            while got < n:
                pos = offset + got
                rel = pos - self._block_at
                if not 0 <= rel < len(self._block):
                    self._block = self._next_block(pos, n - got)
                    self._block_at, rel = pos, 0
                take = min(n - got, len(self._block) - rel)
                mv[got:got + take] = self._block[rel:rel + take]
                got += take

    def _next_block(self, pos: int, need: int) -> bytes:
        """The block at ``pos`` (at least ``need`` bytes): the one fetched ahead when it is that
        one, else fetched now; then the following block is requested in the background."""
        ahead, self._ahead = self._ahead, None
        block = None
        if ahead is not None:
            at, fut = ahead
            if at == pos:
                block = fut.result()  # raises its OSError, if it failed
                if len(block) < need:
                    block = None
            else:  # a jump: wait for it (one reader of the file at a time), then drop it
                with contextlib.suppress(Exception):
                    fut.result()
        if block is None:
            block = self._fetch(pos, min(pos + max(need, self.block_bytes), self.size))
        nxt = pos + len(block)
        if nxt < self.size and self._pool is not None:
            self._ahead = (nxt, self._pool.submit(
                self._fetch, nxt, min(nxt + self.block_bytes, self.size)))
        return block

    def _fetch(self, pos: int, stop: int) -> bytes:
        if self._file is None:
            raise OSError("read after close")
        try:
            self._file.seek(pos)
            data = self._file.read(stop - pos)
        except OSError:
            raise
        except Exception as e:  # network, server, backend
            raise OSError(f"remote read failed ({type(e).__name__}: {e})") from None
        if not data or len(data) < stop - pos:
            raise OSError("truncated while being read (or changed since the scan)")
        return bytes(data)

    def window(self, start: int, end: int) -> tuple[Any, int]:
        if end - start > STRIDED_MAX:
            raise OSError(f"a strided tensor of {end - start} bytes: over the {STRIDED_MAX} "
                          "byte limit for files read in blocks (nanochat never saves these)")
        buf = bytearray(end - start)
        self.read_into(buf, start)
        return buf, start

    def close(self) -> None:
        if self._ahead is not None:
            with contextlib.suppress(Exception):
                self._ahead[1].result()
            self._ahead = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._block = b""
