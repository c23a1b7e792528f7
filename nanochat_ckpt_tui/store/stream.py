"""Tensor bytes of a checkpoint, streamed in bounded memory through its storage: shared by
:mod:`.diff` and the integrity/health checks.

:class:`TensorFile` opens one model file (metadata from ``data.pkl`` only) and reads byte
ranges through ``ck.storage.open_reader`` (``preadv`` locally, ranged blocks fetched ahead
remotely). :class:`ContiguousStream` walks a contiguous tensor chunk by chunk with read-ahead
hints; :class:`StridedView` views any other tensor in a window of the file (an mmap locally)
and drops its pages after use; :class:`Loader` widens raw values (bf16 by a shift into the top
half of a float32) into a compute buffer; :class:`Progress` reports bytes and honours a cancel
event. numpy is passed in by the caller, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .layout import LEGACY_RE, MODEL_RE, Checkpoint
from .meta import Meta, MetaError, read_meta
from .ptfile import CheckpointError, TensorInfo, model_of, read_archive, strip_prefix
from .readers import Reader
from .storage import LOCAL, Storage

READAHEAD_BYTES = 32 << 20  # ask the kernel to prefetch this far ahead (cold files)
PROGRESS_CALLS = 512  # about this many progress calls per stream, plus the final one

ProgressFn = Callable[[int, int], None]


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN or Infinity: None for them."""
    return x if x is not None and math.isfinite(x) else None


class CancelLike(Protocol):
    def is_set(self) -> bool: ...


class Cancelled(Exception):
    """A stream stopped because its cancel event was set."""

    def __init__(self, done_bytes: int, total_bytes: int) -> None:
        self.done_bytes = done_bytes
        self.total_bytes = total_bytes
        super().__init__(f"cancelled after {done_bytes} of {total_bytes} bytes")

    def __reduce__(self) -> tuple[Any, ...]:  # (from a worker process: the same exception)
        return type(self), (self.done_bytes, self.total_bytes)



@dataclass
class SideInfo:
    """What is known of one side: where it is, its step, val_bpb, mtime and size."""

    label: str
    path: Path
    step: int | None = None
    val_bpb: float | None = None
    mtime: float | None = None
    size: int | None = None
    n_tensors: int = 0
    params: int = 0
    orig_mod_prefix: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "path": str(self.path), "step": self.step,
                "val_bpb": finite_or_none(self.val_bpb), "mtime": self.mtime,
                "size": self.size, "n_tensors": self.n_tensors, "params": self.params,
                "orig_mod_prefix": self.orig_mod_prefix}
# ---------------------------------------------------------------------------------------------
# a model file to stream

RAW_DTYPES: dict[str, str] = {
    "float32": "f4", "float64": "f8", "float16": "f2", "bfloat16": "u2",
    "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1",
    "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "?",
}
WIDE = {"float64", "int32", "int64", "uint32", "uint64"}  # compared in float64


class SideBytes:
    """One model file's bytes as the tensor streams read them: through a reader, at the data
    offsets of its storages. A worker process gets one with every offset it needs already
    looked up (by :class:`TensorFile`, in the calling process)."""

    path: Path
    little: bool

    def __init__(self, path: Path, little: bool, reader: Reader | None,
                 offsets: dict[str, int]) -> None:
        self.path = path
        self.little = little
        self.reader = reader
        self._offsets = offsets

    def read_into(self, dst: Any, offset: int) -> None:
        """Fill the writable contiguous buffer ``dst`` from file byte ``offset``."""
        assert self.reader is not None
        try:
            self.reader.read_into(dst, offset)
        except OSError as e:
            raise CheckpointError(f"read failed ({e.strerror or e})", self.path) from None

    def window(self, start: int, end: int) -> tuple[Any, int]:
        """The bytes ``[start, end)`` of the file as (buffer, file offset of the buffer)."""
        assert self.reader is not None
        try:
            return self.reader.window(start, end)
        except OSError as e:
            raise CheckpointError(str(e.strerror or e), self.path) from None

    @property
    def concurrent(self) -> bool:
        """Several threads may read this file at once (positioned reads of a local file)."""
        return self.reader is not None and self.reader.concurrent

    def will_need(self, offset: int, length: int) -> None:
        if self.reader is not None:
            self.reader.will_need(offset, length)

    def data_offset(self, key: str) -> int:
        """Byte offset of storage ``key``'s data."""
        off = self._offsets.get(key)
        if off is None:
            off = self._offsets[key] = self.find_offset(key)
        return off

    def find_offset(self, key: str) -> int:
        raise CheckpointError(f"storage {key}: data offset not known", self.path)


class SharedSide:
    """A picklable :class:`SideBytes`: how to open the file, and the offsets a job needs."""

    __slots__ = ("opener", "path", "little", "offsets")

    def __init__(self, opener: Callable[[], Reader], path: Path, little: bool,
                 offsets: dict[str, int]) -> None:
        self.opener, self.path, self.little, self.offsets = opener, path, little, offsets

    def __getstate__(self) -> tuple[Any, ...]:
        return self.opener, self.path, self.little, self.offsets

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.opener, self.path, self.little, self.offsets = state

    def side(self, reader: Reader) -> SideBytes:
        """The side, reading through ``reader`` (opened by this process from ``opener``)."""
        return SideBytes(self.path, self.little, reader, self.offsets)


class TensorFile(SideBytes):
    """One checkpoint's model file: its tensors by stripped name, its meta, what it is
    (:class:`SideInfo`), and a reader of its bytes through the checkpoint's storage (opened by
    :meth:`open`, closed by :meth:`close`)."""

    def __init__(self, src: Checkpoint | str | os.PathLike[str]) -> None:
        self.meta: Meta | None = None
        self.meta_error: str | None = None
        self.notes: list[str] = []
        ck = src if isinstance(src, Checkpoint) else None
        self.storage: Storage = ck.storage if ck is not None else LOCAL
        if ck is not None:
            if ck.weights is None:
                raise CheckpointError(f"{ck.key}: no model file for this step")
            path = ck.weights.path
            label = ck.key
            if ck.meta is not None:
                try:
                    self.meta = read_meta(ck.meta, self.storage)
                except MetaError as e:
                    self.meta_error = e.reason
        else:
            path = Path(src)  # type: ignore[arg-type]
            label = str(path)
        self.path = path
        self.arc = read_archive(path, storage=self.storage,
                                size=ck.weights.size if ck is not None and ck.weights else None)
        self.model = model_of(self.arc)
        self.little = self.arc.byteorder != "big"
        self.by_name: dict[str, TensorInfo] = {}
        for t in self.model.tensors:
            name = strip_prefix(t.name)
            if name in self.by_name:
                self.notes.append(f"{label}: duplicate key {name} after stripping _orig_mod. "
                                  f"({t.name} ignored)")
                continue
            self.by_name[name] = t
        step = ck.step if ck is not None else None
        if step is None and self.meta is not None:
            step = self.meta.step
        if step is None:
            step = self.model.step
        if step is None and (m := MODEL_RE.fullmatch(path.name) or LEGACY_RE.fullmatch(path.name)):
            step = int(m.group(1))
        if ck is not None:
            mtime: float | None = ck.mtime
        else:
            try:
                mtime = self.storage.stat(path)[1]
            except OSError:
                mtime = None
        self.info = SideInfo(label, path, step, self.meta.val_bpb if self.meta else None, mtime,
                             self.arc.file_size, len(self.model.tensors), self.model.params,
                             self.model.orig_mod_prefix)
        self.reader: Reader | None = None
        self._offsets: dict[str, int] = {}

    # -- reading ---------------------------------------------------------------------------

    def open(self) -> None:
        try:
            self.reader = self.storage.open_reader(self.path, self.arc.file_size)
        except OSError as e:
            raise CheckpointError(f"cannot open ({e.strerror or e})", self.path) from None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def shared(self, keys: Iterable[str]) -> SharedSide | None:
        """What a worker process needs to read storages ``keys`` of this open file itself, or
        None when its reader cannot be reopened elsewhere (a remote file)."""
        opener = self.reader.reopener() if self.reader is not None else None
        if opener is None:
            return None
        return SharedSide(opener, self.path, self.little, {k: self.data_offset(k) for k in keys})

    def find_offset(self, key: str) -> int:
        """Byte offset of storage ``key``'s data, from its local zip header."""
        info = self.arc.storages[key]
        if info.compress_type != 0:
            raise CheckpointError(f"storage {key} is compressed: cannot stream it", self.path)
        header = bytearray(30)
        h = info.header_offset
        if h + 30 > self.arc.file_size:
            raise CheckpointError(f"bad local zip header for storage {key}", self.path)
        self.read_into(header, h)
        if header[:4] != b"PK\x03\x04":
            raise CheckpointError(f"bad local zip header for storage {key}", self.path)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        off = h + 30 + name_len + extra_len
        if off + info.file_size > self.arc.file_size:
            raise CheckpointError(
                f"storage {key} runs past the end of the file (truncated)", self.path)
        return off



# ---------------------------------------------------------------------------------------------
# walking tensors


def nd_blocks(shape: tuple[int, ...], chunk: int) -> Iterator[tuple[Any, ...]]:
    """Index tuples covering ``shape`` in C order, each selecting at most ~``chunk`` elements
    (whole rows when a row fits, else recursing into the row)."""
    if not shape:
        yield ()
        return
    inner = 1
    for s in shape[1:]:
        inner *= s
    if inner == 0 or shape[0] == 0:
        return
    if inner <= chunk:
        rows = max(1, chunk // inner)
        for i in range(0, shape[0], rows):
            yield (slice(i, min(i + rows, shape[0])),)
    else:
        for i in range(shape[0]):
            for sub in nd_blocks(shape[1:], chunk):
                yield (i, *sub)


class Loader:
    """Turns one side's raw values into a compute-dtype array."""

    def __init__(self, np: Any, t: TensorInfo, side: SideBytes, compute: Any) -> None:
        self.np = np
        self.bf16 = t.dtype == "bfloat16"
        order = "<" if side.little else ">"
        self.raw_dtype = np.dtype(order + RAW_DTYPES[t.dtype])
        self.direct = self.raw_dtype == np.dtype(compute)  # native, same dtype: no conversion
        self.compute = compute

    def load(self, raw: Any, out: Any, scratch32: Any = None) -> Any:
        """``raw`` block (any shape) → values in ``out`` (1-D, raw.size long, compute dtype)."""
        np = self.np
        if self.direct and raw.ndim == 1 and raw.flags.c_contiguous:
            return raw
        n = raw.size
        dst = out[:n].reshape(raw.shape)
        if self.bf16:
            if self.compute == np.float32:
                np.left_shift(raw, 16, out=dst.view(np.uint32), dtype=np.uint32)
            else:
                tmp = scratch32[:n].reshape(raw.shape)
                np.left_shift(raw, 16, out=tmp.view(np.uint32), dtype=np.uint32)
                np.copyto(dst, tmp)
        else:
            np.copyto(dst, raw, casting="unsafe")
        return out[:n]


class ContiguousStream:
    """A contiguous tensor read chunk by chunk with pread, with kernel readahead hints."""

    def __init__(self, side: SideBytes, t: TensorInfo) -> None:
        self.side = side
        self.start = side.data_offset(t.storage_key) + t.storage_offset * t.itemsize
        self.end = self.start + t.nbytes
        self.advised = self.start

    def read(self, dst: Any, elem: int, itemsize: int) -> None:
        """Fill ``dst`` with the tensor's values from element ``elem`` on."""
        pos = self.start + elem * itemsize
        if self.advised < min(pos + READAHEAD_BYTES // 2, self.end):
            self.side.will_need(self.advised, min(READAHEAD_BYTES, self.end - self.advised))
            self.advised += READAHEAD_BYTES
        self.side.read_into(dst, pos)


class StridedView:
    """A tensor of any strides, viewed in the mmap'd file; its pages are dropped after use."""

    def __init__(self, np: Any, side: SideBytes, t: TensorInfo, raw_dtype: Any) -> None:
        self.start = side.data_offset(t.storage_key) + t.storage_offset * t.itemsize
        self.end = self.start + t.extent * t.itemsize
        buf, at = side.window(self.start, self.end)  # the mmap, or a remote side's bytes
        self.mm = buf
        flat = np.frombuffer(buf, dtype=raw_dtype, count=t.extent, offset=self.start - at)
        if t.is_contiguous:
            self.view = flat.reshape(t.shape)
        else:
            strides = tuple(s * t.itemsize for s in t.stride)
            self.view = np.lib.stride_tricks.as_strided(flat, shape=t.shape, strides=strides,
                                                        writeable=False)

    def finish(self) -> None:
        """Release the numpy view and drop the tensor's pages from this process."""
        self.view = None
        if isinstance(self.mm, mmap.mmap) and not self.mm.closed:
            page = mmap.PAGESIZE
            lo = self.start - self.start % page
            hi = min(len(self.mm), -(-self.end // page) * page)
            if hi > lo:
                self.mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class Progress:
    """Progress of a stream over ``total`` bytes: about ``PROGRESS_CALLS`` calls of ``fn``, and
    ``cancelled(done, total)`` raised by :meth:`check` once ``cancel`` is set."""

    def __init__(self, fn: ProgressFn | None, cancel: CancelLike | None, total: int,
                 cancelled: type[Cancelled] | None = None) -> None:
        self.fn = fn
        self.cancelled = cancelled or Cancelled
        self._lock = threading.Lock()  # several streaming threads may report
        self.cancel = cancel
        self.total = total
        self.done = 0
        self.reported = -1
        self.step = max(1, total // PROGRESS_CALLS)

    def check(self) -> None:
        if self.cancelled_now():
            raise self.cancelled(self.done, self.total)

    def cancelled_now(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def set_done(self, done: int) -> None:
        """Bytes streamed so far (counted elsewhere: by worker processes)."""
        with self._lock:
            if done > self.done:
                self._add(done - self.done)

    def add(self, nbytes: int) -> None:
        with self._lock:
            self._add(nbytes)

    def _add(self, nbytes: int) -> None:
        self.done += nbytes
        if self.fn is not None and self.done - max(self.reported, 0) >= self.step \
                and self.done < self.total:
            self.reported = self.done
            self.fn(self.done, self.total)

    def finish(self) -> None:
        if self.fn is not None and self.reported != self.total:
            self.reported = self.total
            self.fn(self.total, self.total)
