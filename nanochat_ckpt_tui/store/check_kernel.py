"""What a check computes over a file's bytes, a chunk at a time: the CRC-32
(:func:`crc32_function`), each tensor's health sums (:class:`HealthKernel`), and every zip
record's CRC while a copy streams the file (:class:`RecordCrcs`, for archives). No file is
opened here: the callers read.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from . import zipdir
from .check_report import TensorHealth
from .stream import RAW_DTYPES


def crc32_function() -> Callable[[Any, int], int]:
    """The fastest CRC-32 at hand, with zlib's values: zlib-ng's (SIMD; it releases the GIL
    like zlib) when installed, else zlib's."""
    try:
        from zlib_ng.zlib_ng import crc32
    except ImportError:  # no wheel for this platform: the same numbers, slower
        from zlib import crc32
    return crc32


class HealthKernel:
    """One thread's reused buffers; turns a chunk of one tensor's raw bytes into health sums."""

    def __init__(self, np: Any, chunk_bytes: int) -> None:
        self.np = np
        self.chunk_bytes = chunk_bytes
        self.buf = bytearray(chunk_bytes)  # the raw bytes read
        self.f32 = np.empty(chunk_bytes // 2 + 8, np.float32)  # bf16/fp16 widened
        self.bits = np.empty(chunk_bytes // 2 + 8, np.uint16)  # |x| as bits (bf16, fp16)
        self._f64: Any = None  # made on first use: float64 and wide integer tensors
        self.crc32 = crc32_function()
        self.swap_free = sys.byteorder == "little"

    def values(self, raw: Any, dtype: str, little: bool) -> Any:
        np = self.np
        n = len(raw) // _ITEMSIZE[dtype]
        code = ("<" if little else ">") + RAW_DTYPES[dtype]
        x = np.frombuffer(raw, dtype=code, count=n)
        if dtype == "bfloat16":
            out = self.f32[:n]
            bits = out.view(np.uint32)
            if little and self.swap_free and n % 2 == 0:
                # two integer passes (even elements, then odd) beat one widening cast; the
                # sums taken of the values do not depend on their order
                u, h = x.view(np.uint32), n // 2
                np.left_shift(u, 16, out=bits[:h])
                np.bitwise_and(u, 0xFFFF0000, out=bits[h:])
            else:
                np.left_shift(x, 16, out=bits, dtype=np.uint32)
            return out
        if dtype in ("float32", "float64") and x.dtype.isnative:
            return x
        if dtype in _WIDE_HEALTH:
            if self._f64 is None or len(self._f64) < n:
                self._f64 = np.empty(max(n, self.chunk_bytes // 4 + 8), np.float64)
            out = self._f64[:n]
        else:
            out = self.f32[:n] if n <= len(self.f32) else np.empty(n, np.float32)
        np.copyto(out, x, casting="unsafe")
        return out

    def _absmax(self, raw: Any, dtype: str, little: bool, x: Any) -> float:
        """max |x| of finite values; for 16-bit floats from the sign-cleared bits (half the
        bytes of the widened values, and one pass)."""
        np = self.np
        if dtype in ("bfloat16", "float16") and little == (sys.byteorder == "little"):
            u = np.frombuffer(raw, dtype=np.uint16, count=x.size)
            bits = self.bits[:x.size]
            np.bitwise_and(u, 0x7FFF, out=bits)
            top = int(bits.max())
            if dtype == "bfloat16":
                return float(np.array([top << 16], np.uint32).view(np.float32)[0])
            return float(np.array([top], np.uint16).view(np.float16)[0])
        return max(float(x.max()), -float(x.min()))

    def add(self, h: TensorHealth, raw: Any, dtype: str, little: bool) -> None:
        np = self.np
        x = self.values(raw, dtype, little)
        n = x.size
        if n == 0:
            return
        sq = float(np.dot(x, x))
        if math.isfinite(sq):  # no NaN, no Inf (nor an overflow) in the chunk: the fast path
            h.finite += n
            h.sumsq += sq
            h.total += float(np.add.reduce(x))
            h.absmax = max(h.absmax, self._absmax(raw, dtype, little, x))
            return
        nan = int(np.count_nonzero(np.isnan(x)))
        pos = int(np.count_nonzero(np.isposinf(x)))
        neg = int(np.count_nonzero(np.isneginf(x)))
        h.nan, h.posinf, h.neginf = h.nan + nan, h.posinf + pos, h.neginf + neg
        fin = x[np.isfinite(x)].astype(np.float64)
        h.finite += fin.size
        if fin.size:
            h.sumsq += float(np.dot(fin, fin))
            h.total += float(fin.sum())
            h.absmax = max(h.absmax, float(np.abs(fin).max()))


_ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
             "int16": 2, "int8": 1, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8,
             "bool": 1}
_WIDE_HEALTH = {"float64", "int32", "int64", "uint32", "uint64"}


class RecordCrcs:
    """CRC-32 of every record of a zip, fed the file's bytes front to back (while copying it):
    a copy verifies its source for free. The directory is read first through ``f``."""

    def __init__(self, f: Any) -> None:
        src = zipdir.Source(fileobj=f)
        members = zipdir.read_directory(src)  # ZipError: not a whole zip
        self.spans = sorted((zipdir.data_offset(src, m), m) for m in members.values())
        self.crcs = [0] * len(self.spans)
        self._first = 0  # spans before this one are behind the bytes fed
        self._crc32 = crc32_function()

    def feed(self, offset: int, data: Any) -> None:
        end = offset + len(data)
        spans, crcs = self.spans, self.crcs
        i = self._first
        while i < len(spans) and spans[i][0] + spans[i][1].compress_size <= offset:
            i += 1
        self._first = i
        with memoryview(data) as mv:
            while i < len(spans):
                start, m = spans[i]
                if start >= end:
                    break
                a, b = max(start, offset), min(start + m.compress_size, end)
                if a < b:
                    crcs[i] = self._crc32(mv[a - offset:b - offset], crcs[i])
                i += 1

    def mismatches(self) -> list[str]:
        """Records whose bytes do not match their recorded CRC (0 = none recorded: skipped)."""
        return [m.filename for (_, m), crc in zip(self.spans, self.crcs, strict=True)
                if m.crc and crc != m.crc]
