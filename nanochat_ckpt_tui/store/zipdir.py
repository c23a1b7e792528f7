"""The central directory of a zip, read in one or two positioned reads, every length checked.

``zipfile.ZipFile`` builds a ZipInfo per member and seeks around; a torch.save file has one
member per storage, and the detail pane opens one file per keypress, so this reads the last
64 KiB once (end record, zip64 records and, for any checkpoint, the whole directory) and
unpacks entries with one precompiled struct. Anything inconsistent raises :class:`ZipError`.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from operator import itemgetter

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (22 bytes)
LOC64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator (20 bytes)
EOCD64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record (56 bytes)
CDH = struct.Struct("<4s6H3L5H2L")  # central directory file header (46 bytes)
LFH = struct.Struct("<4s5H3L2H")  # local file header (30 bytes)
TAIL = 65_536 + EOCD.size
MAX_DIRECTORY = 64 * 1024 * 1024
STORED, DEFLATED = 0, 8


class ZipError(Exception):
    """Not a readable zip: truncated, still being written, or not a zip at all."""


class Member(tuple):  # type: ignore[type-arg]
    """One central directory entry: what ``namedtuple("Member", …)`` made (fields, repr,
    equality, pickling), without generating its code at import (the CLI's start-up)."""

    __slots__ = ()
    _fields = ("filename", "header_offset", "compress_size", "file_size", "compress_type",
               "flags", "crc")

    def __new__(cls, filename: str, header_offset: int, compress_size: int, file_size: int,
                compress_type: int, flags: int, crc: int) -> Member:
        return tuple.__new__(cls, (filename, header_offset, compress_size, file_size,
                                   compress_type, flags, crc))

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return "Member(" + ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self,
                                                                   strict=True)) + ")"

    if TYPE_CHECKING:
        filename: str
        header_offset: int
        compress_size: int
        file_size: int
        compress_type: int
        flags: int
        crc: int
    else:
        filename = property(itemgetter(0))
        header_offset = property(itemgetter(1))
        compress_size = property(itemgetter(2))
        file_size = property(itemgetter(3))
        compress_type = property(itemgetter(4))
        flags = property(itemgetter(5))
        crc = property(itemgetter(6))


class Source:
    """Positioned reads from a local file descriptor or a seekable file object."""

    def __init__(self, fd: int | None = None, fileobj: BinaryIO | None = None) -> None:
        if fd is None and fileobj is not None and isinstance(fileobj, io.FileIO):
            fd = fileobj.fileno()  # a local file: pread on its fd, no seek + read pair
        self.fd, self.fileobj = fd, fileobj
        if fd is not None:
            self.size = os.fstat(fd).st_size
        else:
            assert fileobj is not None
            self.size = fileobj.seek(0, os.SEEK_END)

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ZipError(f"a read of {n} bytes at {offset} is outside the {self.size}-byte file")
        if self.fd is not None:
            data = os.pread(self.fd, n, offset)
        else:
            self.fileobj.seek(offset)  # type: ignore[union-attr]
            data = self.fileobj.read(n)  # type: ignore[union-attr]
        if len(data) != n:
            raise ZipError(f"short read at byte {offset} (the file shrank?)")
        return data


def _name(raw: bytes, flags: int) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")


def read_directory(src: Source) -> dict[str, Member]:
    """Every member of the zip by name (the first of duplicate names wins, as in zipfile)."""
    size = src.size
    if size < EOCD.size:
        raise ZipError("too short to be a zip")
    tail_start = max(0, size - TAIL)
    tail = src.read(tail_start, size - tail_start)
    pos = len(tail) - EOCD.size
    if tail[pos:pos + 4] != b"PK\x05\x06":
        pos = tail.rfind(b"PK\x05\x06", 0, len(tail) - EOCD.size + 1)
        if pos < 0:
            raise ZipError("no end of central directory record")
    sig, _disk, _cd_disk, _n_disk, entries, cd_size, cd_offset, comment = EOCD.unpack_from(
        tail, pos)
    if pos + EOCD.size + comment > len(tail):
        raise ZipError("end record's comment runs past the end of the file")
    eocd_at = tail_start + pos
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        loc = pos - LOC64.size
        if loc < 0 or tail[loc:loc + 4] != b"PK\x06\x07":
            raise ZipError("zip64 values without a zip64 locator")
        eocd64_at = LOC64.unpack_from(tail, loc)[2]
        if not 0 <= eocd64_at <= eocd_at - EOCD64.size:
            raise ZipError("zip64 end record outside the file")
        rec = (tail[eocd64_at - tail_start:eocd64_at - tail_start + EOCD64.size]
               if eocd64_at >= tail_start else src.read(eocd64_at, EOCD64.size))
        fields = EOCD64.unpack(rec)
        if fields[0] != b"PK\x06\x06":
            raise ZipError("bad zip64 end record")
        entries, cd_size, cd_offset = fields[7], fields[8], fields[9]
        eocd_at = eocd64_at
    if cd_size > MAX_DIRECTORY or cd_offset + cd_size > eocd_at:
        raise ZipError(f"central directory ({cd_size} bytes at {cd_offset}) does not fit")
    if entries * CDH.size > cd_size:
        raise ZipError(f"{entries} entries cannot fit in a {cd_size}-byte directory")
    cd = (tail[cd_offset - tail_start:cd_offset - tail_start + cd_size]
          if cd_offset >= tail_start else src.read(cd_offset, cd_size))
    members: dict[str, Member] = {}
    p = 0
    unpack = CDH.unpack_from
    for _ in range(entries):
        if p + CDH.size > cd_size:
            raise ZipError("central directory ends mid-entry")
        (sig, _made, _need, flags, method, _t, _d, crc, csize, usize, nlen, elen, clen,
         _disk, _ia, _ea, offset) = unpack(cd, p)
        if sig != b"PK\x01\x02":
            raise ZipError(f"bad central directory entry at byte {cd_offset + p}")
        end = p + CDH.size + nlen + elen + clen
        if end > cd_size:
            raise ZipError("central directory entry runs past the directory")
        name = _name(cd[p + CDH.size:p + CDH.size + nlen], flags)
        if 0xFFFFFFFF in (csize, usize, offset):
            usize, csize, offset = _zip64_extra(cd[p + CDH.size + nlen:p + CDH.size + nlen + elen],
                                                usize, csize, offset)
        if offset + LFH.size > cd_offset:
            raise ZipError(f"member {name[:60]!r} starts past the data area")
        members.setdefault(name, Member(name, offset, csize, usize, method, flags, crc))
        p = end
    return members


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    i = 0
    while i + 4 <= len(extra):
        kind, n = struct.unpack_from("<HH", extra, i)
        if kind == 1:
            vals = list(struct.unpack_from(f"<{min(n, len(extra) - i - 4) // 8}Q", extra, i + 4))
            try:
                if usize == 0xFFFFFFFF:
                    usize = vals.pop(0)
                if csize == 0xFFFFFFFF:
                    csize = vals.pop(0)
                if offset == 0xFFFFFFFF:
                    offset = vals.pop(0)
            except IndexError:
                raise ZipError("zip64 extra field too short") from None
            return usize, csize, offset
        i += 4 + n
    raise ZipError("zip64 sizes without a zip64 extra field")


def data_offset(src: Source, m: Member) -> int:
    """Where a member's bytes start (after its local header, whose extra field may differ)."""
    header = src.read(m.header_offset, LFH.size)
    if header[:4] != b"PK\x03\x04":
        raise ZipError(f"bad local header for {m.filename[:60]!r}")
    nlen, elen = struct.unpack_from("<HH", header, 26)
    start = m.header_offset + LFH.size + nlen + elen
    if start + m.compress_size > src.size:
        raise ZipError(f"{m.filename[:60]!r} runs past the end of the file")
    return start


def read_member(src: Source, m: Member, limit: int) -> bytes:
    """A member's content (stored or deflated, CRC-checked), refusing any over ``limit`` bytes."""
    if m.file_size > limit or m.compress_size > limit:
        raise ZipError(f"{m.filename[:60]!r} is {m.file_size} bytes, over the {limit} limit")
    if m.flags & 0x1:
        raise ZipError(f"{m.filename[:60]!r} is encrypted")
    raw = src.read(data_offset(src, m), m.compress_size)
    if m.compress_type == STORED:
        data = raw
    elif m.compress_type == DEFLATED:
        try:
            d = zlib.decompressobj(-15)
            data = d.decompress(raw, limit + 1)
        except zlib.error as e:
            raise ZipError(f"cannot inflate {m.filename[:60]!r} ({e})") from None
    else:
        raise ZipError(f"{m.filename[:60]!r} uses zip compression method {m.compress_type}, "
                       "which torch never writes")
    if len(data) != m.file_size:
        raise ZipError(f"{m.filename[:60]!r} holds {len(data)} bytes, not {m.file_size}")
    if m.crc and zlib.crc32(data) != m.crc:  # 0: saved without CRCs (compute_crc32=False)
        raise ZipError(f"bad CRC-32 for {m.filename[:60]!r} (the file is damaged)")
    return data
