"""A torch.save zip opened without torch: its members, its pickle's object tree, its tensors.

:func:`read_archive` reads only the zip's end records, its central directory, ``data.pkl`` and
``byteorder``, and runs the pickle through :mod:`.unpickler`; tensor data is never read.
:func:`tensors_of` describes the tensors of that tree as :class:`TensorInfo`, each checked
against the storage it lives in. What the tree is (a model, an optimizer state) is for
:mod:`.ptfile`, which re-exports this module's names: the rest of the code imports them there.
"""

from __future__ import annotations

import io
import math
import struct

from . import zipdir
from .storage import LOCAL, NotARegularFile, Storage
from .unpickler import CheckpointError, SafeUnpickler, TensorStub, clip, key_str, prescan, short

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from .localpath import LocalPath
    from .remote import RemotePath

    AnyPath = LocalPath | RemotePath

MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64  # containers around a tensor in an optimizer state (nanochat uses 2)
# A pre-1.6 torch.save file (not a zip) starts with the pickled magic number 0x1950a86a20f9469cfc6c.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


class Record:
    """What ``@dataclass`` gave the classes here and in :mod:`.ptfile`, without generating code
    at import (the dataclasses module and its code generation cost ``show`` ~7 ms of its start):
    ``repr`` over ``_fields``, ``==`` over ``_compare`` (default: ``_fields``), as
    :class:`.catalog.Record` does for the scan's records (this module sits below catalog)."""

    _fields: tuple[str, ...] = ()
    _compare: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self._fields) + ")"

    def _values(self) -> tuple[Any, ...]:
        names = self._fields if self._compare is None else self._compare
        return tuple([getattr(self, n) for n in names])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # (mutable, as a dataclass's)


class TensorInfo(Record):
    """One tensor as described by the pickle: where its bytes live, never the bytes.
    Immutable and hashable (as ``@dataclass(frozen=True)`` made it)."""

    _fields = ("name", "shape", "stride", "dtype", "itemsize", "storage_key", "storage_offset")
    name: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str
    itemsize: int
    storage_key: str
    storage_offset: int  # in elements

    def __init__(self, name: str, shape: tuple[int, ...], stride: tuple[int, ...], dtype: str,
                 itemsize: int, storage_key: str, storage_offset: int) -> None:
        d = self.__dict__  # (frozen: set through the dict, as a frozen dataclass does)
        d["name"], d["shape"], d["stride"], d["dtype"] = name, shape, stride, dtype
        d["itemsize"], d["storage_key"], d["storage_offset"] = itemsize, storage_key, \
            storage_offset

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(self._values())

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def is_contiguous(self) -> bool:
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.stride), strict=True):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    @property
    def extent(self) -> int:
        """Elements of the storage this tensor reaches, counted from its offset."""
        if 0 in self.shape:
            return 0
        return 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride, strict=True))


# ---------------------------------------------------------------------------------------------
# the zip


class PtArchive(Record):
    """The zip structure of one torch.save file and the object tree of its pickle."""

    _fields = ("path", "prefix", "file_size", "root", "byteorder")  # (repr)
    _compare = ("path", "prefix", "file_size", "root", "storages", "byteorder")

    def __init__(self, path: AnyPath, prefix: str, file_size: int, root: Any,
                 storages: dict[str, zipdir.Member], byteorder: str = "little",
                 storage: Storage = LOCAL) -> None:
        self.path = path
        self.prefix = prefix  # the zip's root folder, e.g. "model_000006"
        self.file_size = file_size
        self.root = root
        self.storages = storages
        self.byteorder = byteorder
        self.storage = storage  # where the file lives

    def storage_data_offset(self, key: str) -> int:
        """Byte offset of storage ``key``'s data in the file (from the local header).

        Raises :class:`CheckpointError` when the bytes cannot be read in place: the storage is
        compressed, its local header is bad, or the file shrank since it was read.
        """
        info = self.storages[key]
        if info.compress_type != zipdir.STORED:
            raise CheckpointError(
                f"storage {clip(key)} is compressed in the zip, so its bytes cannot be read in place",
                self.path)
        try:
            f = self.storage.open(self.path, self.file_size)
        except OSError as e:
            raise CheckpointError(f"cannot read storage {clip(key)}: {e.strerror or e}",
                                  self.path) from None
        try:
            src = zipdir.Source(fileobj=f)
            offset = zipdir.data_offset(src, info)
        except (zipdir.ZipError, struct.error) as e:
            raise CheckpointError(
                f"storage {clip(key)}: {e} (changed or truncated since it was read?)",
                self.path) from None
        except OSError as e:
            raise CheckpointError(f"cannot read storage {clip(key)}: {e.strerror or e}",
                                  self.path) from None
        finally:
            f.close()
        if offset + info.file_size > src.size:
            raise CheckpointError(
                f"storage {clip(key)} ends at byte {offset + info.file_size}, past the end of the "
                f"{src.size}-byte file (changed or truncated since it was read)", self.path)
        return offset


def _os_error(e: OSError, path: AnyPath) -> CheckpointError:
    if isinstance(e, FileNotFoundError | NotADirectoryError):
        return CheckpointError("file not found (deleted or moved?)", path)
    if isinstance(e, PermissionError):
        return CheckpointError("permission denied: cannot read this file", path)
    if isinstance(e, IsADirectoryError):
        return CheckpointError("is a directory, not a checkpoint file", path)
    return CheckpointError(f"cannot open: {e.strerror or e}", path)


def _open_source(path: AnyPath, storage: Storage | None, size: int | None,
                 fileobj: BinaryIO | None) -> tuple[zipdir.Source, BinaryIO | None]:
    """A positioned-read source for the file (and the file to close, when we opened it)."""
    own = None
    if fileobj is None:
        try:
            own = fileobj = (storage or LOCAL).open(path, size)  # type: ignore[assignment]
        except NotARegularFile:
            raise CheckpointError("not a regular file (a device, pipe or socket)", path) \
                from None
        except OSError as e:
            raise _os_error(e, path) from None
    try:
        src = zipdir.Source(fileobj=fileobj)
    except OSError as e:
        if own is not None:
            own.close()
        raise _os_error(e, path) from None
    if src.size == 0:
        if own is not None:
            own.close()
        raise CheckpointError("empty file (0 bytes)", path)
    return src, own


def _not_a_zip(path: AnyPath, src: zipdir.Source, e: Exception) -> CheckpointError:
    try:
        head = src.read(0, min(len(_LEGACY_MAGIC), src.size))
    except Exception:
        head = b""
    if head == _LEGACY_MAGIC:
        return CheckpointError(
            "an old-format torch.save file (not a zip: written by torch < 1.6 or with "
            "_use_new_zipfile_serialization=False), which this tool does not read", path)
    return CheckpointError(
        "not a readable torch zip: truncated, still being written, or not a checkpoint "
        f"({clip(e, 120)})", path)


def read_archive(path: Any, *, storage: Storage | None = None, size: int | None = None,
                 fileobj: BinaryIO | None = None) -> PtArchive:
    """Open ``path`` (a file of ``storage``, local disk when None; ``size`` from a listing
    saves a remote request) and unpickle its ``data.pkl`` into inert stand-ins. Only the
    zip's end records, its central directory, ``data.pkl`` and ``byteorder`` are read.

    With ``fileobj`` (a seekable binary file), the zip is read from it instead, and ``path``
    only names it in messages.
    """
    if isinstance(path, str):
        path = (storage or LOCAL).path(path)
    src, fd = _open_source(path, storage, size, fileobj)
    try:
        try:
            members = zipdir.read_directory(src)
        except (zipdir.ZipError, struct.error) as e:
            raise _not_a_zip(path, src, e) from None
        except OSError as e:
            raise _os_error(e, path) from None
        pkl = [m for m in members.values()
               if m.filename.endswith("/data.pkl") and m.filename.count("/") == 1]
        if not pkl:
            names = ", ".join(clip(n, 60) for n in list(members)[:3]) or "nothing"
            raise CheckpointError(
                f"a zip, but not a torch checkpoint (no */data.pkl; it holds {names})", path)
        info = pkl[0]
        prefix = info.filename.rsplit("/", 1)[0]
        if info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(
                f"data.pkl is {info.file_size} bytes, over the {MAX_PICKLE_BYTES} byte limit", path)
        try:
            data = zipdir.read_member(src, info, MAX_PICKLE_BYTES)
            bo = members.get(f"{prefix}/byteorder")
            byteorder = zipdir.read_member(src, bo, 16).decode("ascii", "replace").strip() \
                if bo is not None else "little"
        except (zipdir.ZipError, struct.error, OSError) as e:
            raise CheckpointError(f"cannot read data.pkl ({clip(e, 120)})", path) from None
        storages = {name[len(prefix) + 6:]: m for name, m in members.items()
                    if name.startswith(prefix + "/data/")}
        size = src.size
    finally:
        if fd is not None:
            fd.close()
    try:
        prescan(data)
        root = SafeUnpickler(io.BytesIO(data)).load()
    except CheckpointError as e:
        raise CheckpointError(e.reason, path) from None
    except RecursionError:
        raise CheckpointError("pickle nested too deeply", path) from None
    except MemoryError:
        raise CheckpointError("pickle asks for too much memory", path) from None
    except Exception as e:  # any malformed pickle: UnpicklingError, EOFError, TypeError, ...
        raise CheckpointError(f"corrupt pickle ({type(e).__name__}: {clip(e, 120)})", path) \
            from None
    return PtArchive(path, prefix, size, root, storages, byteorder, storage or LOCAL)


def _walk(root: Any, prefix: str = "") -> Iterator[tuple[str, TensorStub]]:
    """Yield (dotted name, tensor) for every tensor in a nested dict/list tree, iteratively.

    Each container is visited once; nesting deeper than ``MAX_NESTING`` is refused and name
    parts are clipped, so building the names stays linear in the size of the pickle.
    """
    stack: list[tuple[str, Any, int]] = [(prefix, root, 0)]
    seen: set[int] = set()
    while stack:
        name, obj, depth = stack.pop()
        if isinstance(obj, TensorStub):
            yield name, obj
            continue
        if isinstance(obj, dict | list | tuple):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if depth >= MAX_NESTING:
                raise CheckpointError(f"containers nested more than {MAX_NESTING} levels deep "
                                      f"(at {clip(name, 60)})")
            items = obj.items() if isinstance(obj, dict) else enumerate(obj)
            children = [(f"{name}.{clip(key_str(k), 200)}" if name else
                         clip(key_str(k), 200), v, depth + 1) for k, v in items]
            stack.extend(reversed(children))


def tensor_info(arc: PtArchive, name: str, t: TensorStub) -> TensorInfo:
    info = TensorInfo(name, t.shape, t.stride, t.dtype, t.itemsize, t.storage.key, t.offset)
    member = arc.storages.get(t.storage.key)
    if member is None:
        raise CheckpointError(
            f"tensor {clip(name)}: its storage data/{clip(t.storage.key)} is missing", arc.path)
    extent = info.extent
    end = (info.storage_offset + extent) * info.itemsize
    if extent and end > member.file_size:
        raise CheckpointError(
            f"tensor {clip(name)} {short(list(info.shape))} reaches byte {end} of a "
            f"{member.file_size}-byte storage", arc.path)
    return info


def tensors_of(arc: PtArchive, obj: Any, prefix: str = "") -> list[TensorInfo]:
    """TensorInfo for every tensor under ``obj``, validated against the zip's storages."""
    try:
        return [tensor_info(arc, n, t) for n, t in _walk(obj, prefix)]
    except CheckpointError as e:
        if e.path is not None:
            raise
        raise CheckpointError(e.reason, arc.path) from None


def tensors_and_problems(arc: PtArchive, obj: Any, prefix: str = ""
                         ) -> tuple[list[TensorInfo], list[tuple[str, str]]]:
    """Like :func:`tensors_of`, but a tensor whose storage is missing or too short is reported
    as (name, problem) instead of failing the whole file (for integrity checks)."""
    good: list[TensorInfo] = []
    bad: list[tuple[str, str]] = []
    for n, t in _walk(obj, prefix):
        try:
            good.append(tensor_info(arc, n, t))
        except CheckpointError as e:
            bad.append((n, e.reason))
    return good, bad


def storage_bytes(tensors: list[TensorInfo], arc: PtArchive) -> int:
    """Bytes of the distinct storages the tensors live in (shared views counted once)."""
    keys = {t.storage_key for t in tensors}
    return sum(arc.storages[k].file_size for k in keys if k in arc.storages)
