"""Read a torch.save zip checkpoint's metadata without torch and without executing its pickle.

Only ``*/data.pkl`` is read. Its pickle is run by an unpickler whose ``find_class`` hands out
inert stand-ins for an allow-list of globals (``OrderedDict``, ``_rebuild_tensor_v2/v3``,
``_rebuild_parameter``, the typed storage classes, dtypes); any other global is refused with a
:class:`CheckpointError` that names it, before anything is called. Tensor data is never read.

Every object the unpickler hands out is inert: a ``BUILD`` on any of them is refused, so a
pickle can change neither a stand-in nor a tensor after it was validated. The copyreg extension
opcodes (``EXT1/2/4``), which can fetch a global without asking ``find_class``, are refused
whenever the process has any extension registered (torch.save never writes them).
"""

from __future__ import annotations

import _compat_pickle
import collections
import copyreg
import io
import math
import re
import reprlib
import struct

from . import zipdir
from .storage import LOCAL, NotARegularFile, Storage

try:  # the C unpickler, which pickle.Unpickler is: pickle.py itself is not needed (start-up)
    from _pickle import Unpickler
except ImportError:  # pragma: no cover - a Python without the C pickle
    from pickle import Unpickler  # type: ignore[assignment]

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    import os
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from .localpath import LocalPath
    from .remote import RemotePath

    AnyPath = LocalPath | RemotePath

ORIG_MOD = "_orig_mod."
MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_DIMS = 64
MAX_NESTING = 64  # containers around a tensor in an optimizer state (nanochat uses 2)
# JSON-friendly copies of configs / hyper-parameters stop after this many nodes per file, so a
# pickle that shares one list many times over (a DAG) cannot make the copy explode.
MAX_PLAIN_NODES = 100_000

# storage class name -> (dtype name, itemsize)
STORAGE_DTYPES: dict[str, tuple[str, int]] = {
    "FloatStorage": ("float32", 4),
    "DoubleStorage": ("float64", 8),
    "HalfStorage": ("float16", 2),
    "BFloat16Storage": ("bfloat16", 2),
    "LongStorage": ("int64", 8),
    "IntStorage": ("int32", 4),
    "ShortStorage": ("int16", 2),
    "CharStorage": ("int8", 1),
    "ByteStorage": ("uint8", 1),
    "BoolStorage": ("bool", 1),
    "ComplexFloatStorage": ("complex64", 8),
    "ComplexDoubleStorage": ("complex128", 16),
}
# torch.<dtype> globals used by _rebuild_tensor_v3 -> itemsize
DTYPE_SIZES: dict[str, int] = {
    "float32": 4, "float": 4, "float64": 8, "double": 8, "float16": 2, "half": 2,
    "bfloat16": 2, "int64": 8, "long": 8, "int32": 4, "int": 4, "int16": 2, "short": 2,
    "int8": 1, "uint8": 1, "bool": 1, "uint16": 2, "uint32": 4, "uint64": 8,
    "complex32": 4, "complex64": 8, "complex128": 16, "float8_e4m3fn": 1, "float8_e5m2": 1,
    "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1,
    "float4_e2m1fn_x2": 1,  # two fp4 values packed in a byte; torch counts bytes as elements
    "bits8": 1, "bits16": 2, "bits1x8": 1, "bits2x4": 1, "bits4x2": 1,
}
_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
                  "int": "int32", "short": "int16"}
# A pre-1.6 torch.save file (not a zip) starts with the pickled magic number 0x1950a86a20f9469cfc6c.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = 60
_repr.maxother = 60


def _short(obj: Any) -> str:
    """A bounded repr of anything a pickle can build (deeply nested tuples included)."""
    try:
        return _repr.repr(obj)
    except Exception:  # RecursionError, or a repr that fails
        return f"<{type(obj).__name__}>"


def _key_str(key: Any) -> str:
    """A dict key as a name part: str and int as they are, anything else as a short repr."""
    if isinstance(key, str):
        return key
    return str(key) if type(key) is int and key.bit_length() <= 64 else _short(key)


def _clip(text: Any, limit: int = 80) -> str:
    """Text from the file, made safe for a one-line message: printable and bounded."""
    text = str(text)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "…"


class CheckpointError(Exception):
    """A checkpoint file that cannot be read: one clear sentence, never a traceback."""

    def __init__(self, message: str, path: str | os.PathLike[str] | AnyPath | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.reason = message
        text = str(path).rstrip("/") if path is not None else ""
        super().__init__(f"{text[text.rfind('/') + 1:]}: {message}" if path is not None
                         else message)

    def __reduce__(self) -> tuple[Any, ...]:  # (from a worker process: the same exception)
        return type(self), (self.reason, self.path)


class _Record:
    """What ``@dataclass`` gave the classes below, without generating code at import (the
    dataclasses module and its code generation cost ``show`` ~7 ms of its start): ``repr``
    over ``_fields``, ``==`` over ``_compare`` (default: ``_fields``), as
    :class:`.catalog.Record` does for the scan's records (ptfile sits below catalog)."""

    _fields: tuple[str, ...] = ()
    _compare: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self._fields) + ")"

    def _values(self) -> tuple[Any, ...]:
        names = self._fields if self._compare is None else self._compare
        return tuple([getattr(self, n) for n in names])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Record) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # (mutable, as a dataclass's)


class TensorInfo(_Record):
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
# the inert objects the unpickler hands out


class _Inert:
    """Base of every object the unpickler makes: a pickle may not set state on it.

    ``BUILD`` calls ``__setstate__`` whenever the object has one, so defining it here (and
    ``__slots__`` everywhere, so there is no ``__dict__``) makes every stand-in and every
    validated tensor immutable from inside a pickle.
    """

    __slots__ = ()

    def _what(self) -> str:
        return type(self).__name__.lstrip("_")

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError(
            f"refused to load: the pickle tries to change {self._what()} (a BUILD on an "
            "allow-listed object; nothing was changed)")


class _StorageRef(_Inert):
    """A storage as named by a persistent id: ``('storage', type, key, location, numel)``."""

    __slots__ = ("key", "dtype", "itemsize", "numel", "location")

    def __init__(self, key: str, dtype: str | None, itemsize: int, numel: int,
                 location: str) -> None:
        self.key = key
        self.dtype = dtype  # None for UntypedStorage (bytes); the rebuild call names the dtype
        self.itemsize = itemsize
        self.numel = numel
        self.location = location

    def _what(self) -> str:
        return f"storage {self.key}"

    def __repr__(self) -> str:
        return f"<storage {_clip(self.key, 40)} {self.dtype or 'untyped'} x{self.numel}>"


class _TensorStub(_Inert):
    """A tensor as rebuilt by the pickle, validated when it is made."""

    __slots__ = ("storage", "offset", "shape", "stride", "dtype", "itemsize")

    def __init__(self, storage: _StorageRef, offset: int, shape: tuple[int, ...],
                 stride: tuple[int, ...], dtype: str, itemsize: int) -> None:
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride
        self.dtype = dtype
        self.itemsize = itemsize

    def _what(self) -> str:
        return "a tensor"

    def __repr__(self) -> str:
        return f"<tensor {self.dtype} {list(self.shape)}>"


class _Callable(_Inert):
    """Stand-in for an allow-listed function (``_rebuild_tensor_v2`` ...): it can only be called."""

    __slots__ = ("_name", "_fn")

    def __init__(self, name: str, fn: Any) -> None:
        self._name = name
        self._fn = fn

    def _what(self) -> str:
        return self._name

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


class _StorageClass(_Inert):
    """Stand-in for ``torch.XStorage``: only ever used as a tag inside a persistent id."""

    __slots__ = ("dtype", "itemsize", "_name")

    def __init__(self, dtype: str | None, itemsize: int,
                 name: str = "torch.UntypedStorage") -> None:
        self.dtype = dtype
        self.itemsize = itemsize
        self._name = name

    def _what(self) -> str:
        return self._name


class _Dtype(_Inert):
    """Stand-in for ``torch.<dtype>``, as passed to ``_rebuild_tensor_v3``."""

    __slots__ = ("name", "itemsize")

    def __init__(self, name: str) -> None:
        self.name = _DTYPE_ALIASES.get(name, name)
        self.itemsize = DTYPE_SIZES[name]

    def _what(self) -> str:
        return f"torch.{self.name}"


_INT63 = 1 << 63


def _dims(value: Any, what: str) -> tuple[int, ...]:
    """A shape or stride: a short tuple of non-negative ints below 2**63, else refused."""
    if type(value) is tuple and len(value) <= MAX_DIMS:  # the fast path: every real file
        for v in value:
            if type(v) is not int or not 0 <= v < _INT63:
                break
        else:
            return value
    if not isinstance(value, tuple | list) or len(value) > MAX_DIMS:
        raise CheckpointError(f"bad tensor {what}: {type(value).__name__}")
    for v in value:
        if type(v) is not int:
            raise CheckpointError(f"bad tensor {what}: {_short(v)}")
        if v.bit_length() > 63:
            raise CheckpointError(f"bad tensor {what}: a value beyond 64-bit integers")
        if v < 0:
            raise CheckpointError(f"negative tensor {what} {_short(tuple(value))}")
    return tuple(value)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _TensorStub:
    if not isinstance(storage, _StorageRef):
        raise CheckpointError("tensor rebuilt from something that is not a storage")
    if type(offset) is not int or not 0 <= offset < _INT63:
        raise CheckpointError(f"bad storage offset {_short(offset)}")
    shape, strides = _dims(size, "shape"), _dims(stride, "stride")
    if len(shape) != len(strides):
        raise CheckpointError("tensor shape and stride differ in length")
    dtype, itemsize = storage.dtype, storage.itemsize
    # _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, ...)
    if len(rest) >= 3 and isinstance(rest[2], _Dtype):
        dtype, itemsize = rest[2].name, rest[2].itemsize
    if dtype is None:
        raise CheckpointError("untyped storage without a dtype")
    return _TensorStub(storage, offset, shape, strides, dtype, itemsize)


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    if not isinstance(data, _TensorStub):
        raise CheckpointError("parameter rebuilt from something that is not a tensor")
    return data


# Each value makes a fresh inert stand-in, never hands out one of this module's own objects, so
# no pickle can alter what the next one gets. OrderedDict is the real class: an immutable C type.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("torch.storage", "UntypedStorage"): lambda: _StorageClass(None, 1),
    ("torch", "UntypedStorage"): lambda: _StorageClass(None, 1),
}
_ALLOWED.update({
    ("torch._utils", n): (lambda n=n, f=f: _Callable(f"torch._utils.{n}", f))
    for n, f in [("_rebuild_tensor_v2", _rebuild_tensor), ("_rebuild_tensor_v3", _rebuild_tensor),
                 ("_rebuild_parameter", _rebuild_parameter),
                 ("_rebuild_parameter_with_state", _rebuild_parameter)]})
_ALLOWED.update({("torch", k): (lambda k=k, v=v: _StorageClass(*v, f"torch.{k}"))
                 for k, v in STORAGE_DTYPES.items()})
_ALLOWED.update({("torch", k): (lambda k=k: _Dtype(k)) for k in DTYPE_SIZES})


def _refusal(what: str) -> str:
    return (f"refused to load: the pickle asks for {what}, which is not on the allow-list "
            "of tensor metadata (nothing was executed)")


class _SafeUnpickler(Unpickler):
    """Builds only allow-listed stand-ins; refuses every other global before it is touched."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]()
        except (KeyError, TypeError):
            what = f"{_clip(module, 100)}.{_clip(name, 100)}"
            # a protocol 0-2 pickle may use a Python 2 name that a plain unpickler maps to its
            # Python 3 one (commands.Popen -> subprocess.Popen): name both
            py3 = _compat_pickle.NAME_MAPPING.get((module, name))
            if py3 is None and module in _compat_pickle.IMPORT_MAPPING:
                py3 = (_compat_pickle.IMPORT_MAPPING[module], name)
            if py3 is not None and py3 != (module, name):
                what += f" (that is {_clip(py3[0], 100)}.{_clip(py3[1], 100)})"
            raise CheckpointError(_refusal(what)) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {_short(pid)}")
        _, cls, key, location, numel = pid
        if not isinstance(cls, _StorageClass):
            raise CheckpointError("persistent id names no storage type")
        if not isinstance(key, str) or not isinstance(location, str) or type(numel) is not int:
            raise CheckpointError(f"malformed storage reference {_short(pid)}")
        if numel < 0 or numel.bit_length() > 63:
            raise CheckpointError(f"bad storage size {_short(numel)}")
        return _StorageRef(key, cls.dtype, cls.itemsize, numel, location)


# Opcode argument layout, for the pre-scan: >= 0 fixed argument bytes; -1/-4/-8 a u8/u32/u64
# length then that many bytes; -10 up to a newline; -11 up to a second newline; -20 a u32 memo
# index (LONG_BINPUT/LONG_BINGET); -21 a text memo index (PUT/GET); -30 EXT1/2/4; -99 unknown.
_KIND = [-99] * 256
for _ops, _k in ((b"(.012N\x88\x89)]}aebdltR\x85\x86\x87suQ\x81\x92\x93\x94\x8f\x90\x91o\x97\x98", 0),
                 (b"\x80Kqh", 1), (b"M", 2), (b"J", 4), (b"G\x95", 8), (b"U\x8cC\x8a", -1),
                 (b"TXB\x8b", -4), (b"\x8d\x8e\x96", -8), (b"ILFSVP", -10), (b"ci", -11),
                 (b"rj", -20), (b"pg", -21), (b"\x82\x83\x84", -30)):
    for _c in _ops:
        _KIND[_c] = _k
del _ops, _k, _c


def _fixed_run_regex() -> re.Pattern[bytes]:
    """A run of opcodes whose arguments have a fixed size, built from ``_KIND`` itself, plus
    LONG_BINPUT/LONG_BINGET with an index below 2**20 (harmless): matched in C, these are
    most of a torch pickle, leaving Python the strings, GLOBALs and anything unusual."""
    by_size: dict[int, list[int]] = {}
    for code, k in enumerate(_KIND):
        if k >= 0:
            by_size.setdefault(k, []).append(code)
    alts = [b"[" + b"".join(re.escape(bytes([c])) for c in codes) + b"]" + b"." * size
            for size, codes in sorted(by_size.items())]
    alts.append(b"[rj]..[\x00-\x0f]\x00")
    return re.compile(b"(?:" + b"|".join(alts) + b")*", re.DOTALL)


_FIXED_RUN: Any = None  # compiled on the first pickle read (not at import: the CLI starts fast)
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from


def _past_end(op: int, i: int, n: int) -> CheckpointError:
    return CheckpointError(
        f"corrupt pickle: opcode {op:#04x} claims {i - n} bytes more than the {n}-byte pickle "
        "holds")


def _prescan(data: bytes) -> None:
    """Walk the opcodes once, before the C unpickler sees them, and refuse two things it would
    otherwise act on: a memo index beyond the pickle's length (the C unpickler sizes its memo
    array to twice the index: ``LONG_BINPUT 1239817249`` asks for ~20 GB), and the copyreg
    EXT opcodes (a code in ``copyreg._extension_cache`` is handed out without ``find_class``).
    torch.save writes neither. The walk stops at the first unknown opcode, where the unpickler
    stops too. About 0.1 µs per opcode.
    """
    global _FIXED_RUN
    if _FIXED_RUN is None:
        _FIXED_RUN = _fixed_run_regex().match
    n, i, kind, u32, run = len(data), 0, _KIND, _U32, _FIXED_RUN
    try:
        while i < n:
            i = run(data, i).end()  # type: ignore[union-attr]  # (matches the empty run too)
            if i >= n:
                break
            op = data[i]
            k = kind[op]
            i += 1
            if k >= 0:
                i += k
            elif k == -4:
                i += 4 + u32(data, i)[0]
                if i > n:
                    raise _past_end(op, i, n)
            elif k == -20:
                if u32(data, i)[0] > n:
                    raise CheckpointError(
                        f"refused to load: the pickle uses memo slot {u32(data, i)[0]} in a "
                        f"{n}-byte pickle (a memory bomb; nothing was executed)")
                i += 4
            elif k == -1:
                i += 1 + data[i]
                if i > n:
                    raise _past_end(op, i, n)
            elif k == -11:
                i = data.index(b"\n", data.index(b"\n", i) + 1) + 1
            elif k == -10:
                i = data.index(b"\n", i) + 1
            elif k == -21:
                j = data.index(b"\n", i)
                if int(data[i:j]) > n:
                    raise CheckpointError(
                        f"refused to load: the pickle uses memo slot {_clip(data[i:j], 30)} in "
                        f"a {n}-byte pickle (a memory bomb; nothing was executed)")
                i = j + 1
            elif k == -8:
                i += 8 + _U64(data, i)[0]
                if i > n:  # BYTEARRAY8 is allocated before it is read: 5e18 bytes, say
                    raise _past_end(op, i, n)
            elif k == -30:
                width = {0x82: 1, 0x83: 2, 0x84: 4}[op]
                code = int.from_bytes(data[i:i + width], "little")
                pair = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
                what = (f"{_clip(pair[0], 100)}.{_clip(pair[1], 100)}"
                        if isinstance(pair, tuple) and len(pair) == 2
                        else f"unregistered extension code {code}")
                raise CheckpointError(
                    f"refused to load: the pickle asks for {what} through copyreg extension code "
                    f"{code}, an opcode torch.save never writes (nothing was executed)")
            else:
                return
    except (ValueError, IndexError, struct.error):
        return  # malformed where the unpickler will fail too, and before any memo growth


# ---------------------------------------------------------------------------------------------
# the zip


class PtArchive(_Record):
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
                f"storage {_clip(key)} is compressed in the zip, so its bytes cannot be read in place",
                self.path)
        try:
            f = self.storage.open(self.path, self.file_size)
        except OSError as e:
            raise CheckpointError(f"cannot read storage {_clip(key)}: {e.strerror or e}",
                                  self.path) from None
        try:
            src = zipdir.Source(fileobj=f)
            offset = zipdir.data_offset(src, info)
        except (zipdir.ZipError, struct.error) as e:
            raise CheckpointError(
                f"storage {_clip(key)}: {e} (changed or truncated since it was read?)",
                self.path) from None
        except OSError as e:
            raise CheckpointError(f"cannot read storage {_clip(key)}: {e.strerror or e}",
                                  self.path) from None
        finally:
            f.close()
        if offset + info.file_size > src.size:
            raise CheckpointError(
                f"storage {_clip(key)} ends at byte {offset + info.file_size}, past the end of the "
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
        f"({_clip(e, 120)})", path)


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
            names = ", ".join(_clip(n, 60) for n in list(members)[:3]) or "nothing"
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
            raise CheckpointError(f"cannot read data.pkl ({_clip(e, 120)})", path) from None
        storages = {name[len(prefix) + 6:]: m for name, m in members.items()
                    if name.startswith(prefix + "/data/")}
        size = src.size
    finally:
        if fd is not None:
            fd.close()
    try:
        _prescan(data)
        root = _SafeUnpickler(io.BytesIO(data)).load()
    except CheckpointError as e:
        raise CheckpointError(e.reason, path) from None
    except RecursionError:
        raise CheckpointError("pickle nested too deeply", path) from None
    except MemoryError:
        raise CheckpointError("pickle asks for too much memory", path) from None
    except Exception as e:  # any malformed pickle: UnpicklingError, EOFError, TypeError, ...
        raise CheckpointError(f"corrupt pickle ({type(e).__name__}: {_clip(e, 120)})", path) \
            from None
    return PtArchive(path, prefix, size, root, storages, byteorder, storage or LOCAL)


def _walk(root: Any, prefix: str = "") -> Iterator[tuple[str, _TensorStub]]:
    """Yield (dotted name, tensor) for every tensor in a nested dict/list tree, iteratively.

    Each container is visited once; nesting deeper than ``MAX_NESTING`` is refused and name
    parts are clipped, so building the names stays linear in the size of the pickle.
    """
    stack: list[tuple[str, Any, int]] = [(prefix, root, 0)]
    seen: set[int] = set()
    while stack:
        name, obj, depth = stack.pop()
        if isinstance(obj, _TensorStub):
            yield name, obj
            continue
        if isinstance(obj, dict | list | tuple):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if depth >= MAX_NESTING:
                raise CheckpointError(f"containers nested more than {MAX_NESTING} levels deep "
                                      f"(at {_clip(name, 60)})")
            items = obj.items() if isinstance(obj, dict) else enumerate(obj)
            children = [(f"{name}.{_clip(_key_str(k), 200)}" if name else
                         _clip(_key_str(k), 200), v, depth + 1) for k, v in items]
            stack.extend(reversed(children))


def _tensor_info(arc: PtArchive, name: str, t: _TensorStub) -> TensorInfo:
    info = TensorInfo(name, t.shape, t.stride, t.dtype, t.itemsize, t.storage.key, t.offset)
    member = arc.storages.get(t.storage.key)
    if member is None:
        raise CheckpointError(
            f"tensor {_clip(name)}: its storage data/{_clip(t.storage.key)} is missing", arc.path)
    extent = info.extent
    end = (info.storage_offset + extent) * info.itemsize
    if extent and end > member.file_size:
        raise CheckpointError(
            f"tensor {_clip(name)} {_short(list(info.shape))} reaches byte {end} of a "
            f"{member.file_size}-byte storage", arc.path)
    return info


def tensors_of(arc: PtArchive, obj: Any, prefix: str = "") -> list[TensorInfo]:
    """TensorInfo for every tensor under ``obj``, validated against the zip's storages."""
    try:
        return [_tensor_info(arc, n, t) for n, t in _walk(obj, prefix)]
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
            good.append(_tensor_info(arc, n, t))
        except CheckpointError as e:
            bad.append((n, e.reason))
    return good, bad


def storage_bytes(tensors: list[TensorInfo], arc: PtArchive) -> int:
    """Bytes of the distinct storages the tensors live in (shared views counted once)."""
    keys = {t.storage_key for t in tensors}
    return sum(arc.storages[k].file_size for k in keys if k in arc.storages)


class _Budget:
    """How many more nodes the JSON-friendly copies made from one file may have."""

    __slots__ = ("left",)

    def __init__(self, left: int = MAX_PLAIN_NODES) -> None:
        self.left = left


def _plain(obj: Any, depth: int = 0, budget: _Budget | None = None) -> Any:
    """A JSON-friendly copy of pickle scalars/containers; tensors become a short description.

    Bounded in depth (20), in breadth (1000 per container) and, through ``budget``, in nodes.
    """
    if budget is None:
        budget = _Budget()
    budget.left -= 1
    if depth > 20 or budget.left < 0:
        return "…"
    if isinstance(obj, _TensorStub):
        return f"<tensor {obj.dtype} {list(obj.shape)}>"
    if isinstance(obj, dict):
        return {_key_str(k): _plain(v, depth + 1, budget) for k, v in list(obj.items())[:1000]}
    if isinstance(obj, list | tuple):
        return [_plain(v, depth + 1, budget) for v in obj[:1000]]
    if isinstance(obj, bool | float) or obj is None or type(obj) is int and obj.bit_length() <= 64:
        return obj
    if isinstance(obj, str):
        return obj if len(obj) <= 10_000 else obj[:10_000] + "…"
    return _short(obj)[:80]


def _what_is(obj: Any) -> str:
    """'a dict with no tensors', 'a list', 'an int': the subject of a wrong-content message."""
    if isinstance(obj, dict):
        if not any(isinstance(v, _TensorStub) for v in obj.values()):
            return f"{_a(type(obj).__name__)} with no tensors"
        return f"{_a(type(obj).__name__)} with non-string keys"
    if isinstance(obj, _Inert):
        return "a tensor" if isinstance(obj, _TensorStub) else obj._what()
    return _a(type(obj).__name__)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


# ---------------------------------------------------------------------------------------------
# model files


class ModelFile(_Record):
    """A model checkpoint: its tensors, and the wrapper fields of the older layout."""

    _fields = ("path", "file_size", "layout", "tensors", "orig_mod_prefix", "step", "config",
               "has_optimizer", "non_tensor_keys")

    def __init__(self, path: AnyPath, file_size: int, layout: str, tensors: list[TensorInfo],
                 orig_mod_prefix: bool = False, step: int | None = None,
                 config: dict[str, Any] | None = None, has_optimizer: bool = False,
                 non_tensor_keys: list[str] | None = None) -> None:
        self.path = path
        self.file_size = file_size
        self.layout = layout  # "state_dict" (nanochat) or "wrapper" (older {'model', 'step', …})
        self.tensors = tensors
        self.orig_mod_prefix = orig_mod_prefix
        self.step = step
        self.config = config
        self.has_optimizer = has_optimizer
        self.non_tensor_keys: list[str] = [] if non_tensor_keys is None else non_tensor_keys

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and any(
        isinstance(v, _TensorStub) for v in obj.values())


def _is_optimizer(obj: Any) -> bool:
    if isinstance(obj, list):
        return bool(obj) and all(isinstance(x, dict) and "param_groups" in x for x in obj)
    return isinstance(obj, dict) and "param_groups" in obj


def read_model(path: Any, *, storage: Storage | None = None, size: int | None = None,
               fileobj: BinaryIO | None = None) -> ModelFile:
    """Describe a model file: a bare state dict, or the older wrapper dict with ``model``."""
    return model_of(read_archive(path, storage=storage, size=size, fileobj=fileobj))


def model_of(arc: PtArchive) -> ModelFile:
    """The model described by an opened archive (to keep the archive too, read it first)."""
    root = arc.root
    if _is_state_dict(root):
        sd, layout, step, config, has_opt = root, "state_dict", None, None, False
    elif isinstance(root, dict) and _is_state_dict(root.get("model")):
        sd, layout = root["model"], "wrapper"
        step = root.get("step") if type(root.get("step")) is int else None
        config = _plain(root.get("config")) if isinstance(root.get("config"), dict) else None
        has_opt = root.get("optimizer") is not None
    elif _is_optimizer(root):
        raise CheckpointError("holds an optimizer state (param_groups), not a model state dict",
                              arc.path)
    else:
        raise CheckpointError(f"holds {_what_is(root)}, not a model state dict", arc.path)
    tensors: list[TensorInfo] = []
    non_tensor: list[str] = []
    for key, value in sd.items():
        if isinstance(value, _TensorStub):
            tensors.append(_tensor_info(arc, key, value))
        else:
            non_tensor.append(key)
    prefixed = any(t.name.startswith(ORIG_MOD) for t in tensors)
    return ModelFile(arc.path, arc.file_size, layout, tensors, prefixed, step, config, has_opt,
                     non_tensor)


def strip_prefix(name: str) -> str:
    return name[len(ORIG_MOD):] if name.startswith(ORIG_MOD) else name


# ---------------------------------------------------------------------------------------------
# optimizer files


class ParamGroup(_Record):
    _fields = ("kind", "n_params", "hyper")

    def __init__(self, kind: str, n_params: int, hyper: dict[str, Any]) -> None:
        self.kind = kind  # "adamw", "muon", or what the group says / looks like
        self.n_params = n_params
        self.hyper = hyper


class OptimizerFile(_Record):
    """An optimizer shard: param groups and the size of the state it carries."""

    _fields = ("path", "file_size", "form", "groups", "tensors", "n_states")

    def __init__(self, path: AnyPath, file_size: int, form: str, groups: list[ParamGroup],
                 tensors: list[TensorInfo], n_states: int) -> None:
        self.path = path
        self.file_size = file_size
        self.form = form  # "dict" (current) or "list" (before 2026-01-29: [adamw, muon])
        self.groups = groups
        self.tensors = tensors
        self.n_states = n_states  # parameters with state

    @property
    def n_state_tensors(self) -> int:
        return len(self.tensors)

    @property
    def state_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


def _group_kind(group: dict[str, Any], fallback: str) -> str:
    kind = group.get("kind")
    if isinstance(kind, str):
        return kind
    if "betas" in group:
        return "adamw"
    if "momentum" in group or "nesterov" in group or "ns_steps" in group:
        return "muon"
    return fallback


def _parse_opt_dict(arc: PtArchive, sd: Any, prefix: str, fallback: str, budget: _Budget
                    ) -> tuple[list[ParamGroup], list[TensorInfo], int]:
    if not (isinstance(sd, dict) and "param_groups" in sd):
        if _is_state_dict(sd) or isinstance(sd, dict) and _is_state_dict(sd.get("model")):
            raise CheckpointError("holds a model state dict, not an optimizer state", arc.path)
        where = f"its item {prefix.rstrip('.')} is " if prefix else "it holds "
        what = _a(type(sd).__name__) if isinstance(sd, dict) else _what_is(sd)
        raise CheckpointError(
            f"not an optimizer state ({where}{what} without param_groups)", arc.path)
    raw_groups = sd["param_groups"] if isinstance(sd["param_groups"], list) else []
    groups = []
    for g in raw_groups:
        if not isinstance(g, dict):
            continue
        params = g.get("params")
        hyper = {_key_str(k): _plain(v, 0, budget) for k, v in g.items() if k != "params"}
        groups.append(ParamGroup(_group_kind(g, fallback),
                                 len(params) if isinstance(params, list) else 0, hyper))
    state = sd.get("state") if isinstance(sd.get("state"), dict) else {}
    tensors = tensors_of(arc, state, f"{prefix}state" if prefix else "state")
    return groups, tensors, len(state)


def read_optimizer(path: Any, *, storage: Storage | None = None, size: int | None = None,
                   fileobj: BinaryIO | None = None) -> OptimizerFile:
    """Describe an optimizer shard in the current dict form or the older list form."""
    arc = read_archive(path, storage=storage, size=size, fileobj=fileobj)
    root = arc.root
    budget = _Budget()
    if isinstance(root, dict):
        groups, tensors, n = _parse_opt_dict(arc, root, "", "group", budget)
        form = "dict"
    elif isinstance(root, list) and root:
        groups, tensors, n, form = [], [], 0, "list"
        for i, sd in enumerate(root):
            fallback = ["adamw", "muon"][i] if i < 2 else f"optimizer{i}"
            g, t, k = _parse_opt_dict(arc, sd, f"{i}.", fallback, budget)
            groups += g
            tensors += t
            n += k
    else:
        raise CheckpointError(f"holds {_what_is(root)}, not an optimizer state", arc.path)
    return OptimizerFile(arc.path, arc.file_size, form, groups, tensors, n)
