"""The allow-listed unpickler of a torch zip's ``data.pkl``, and what it may build.

Its ``find_class`` hands out inert stand-ins for an allow-list of globals (``OrderedDict``,
``_rebuild_tensor_v2/v3``, ``_rebuild_parameter``, the typed storage classes, dtypes); any other
global is refused with a :class:`CheckpointError` that names it, before anything is called.
Every object it hands out is inert: a ``BUILD`` on any of them is refused, so a pickle can
change neither a stand-in nor a tensor after it was validated. :func:`prescan` walks the
opcodes first and refuses a memo index beyond the pickle's length (a memory bomb) and the
copyreg extension opcodes (``EXT1/2/4``), which can fetch a global without asking
``find_class`` (torch.save writes neither).

Kept apart from the zip (:mod:`.torchzip`) so that all the code run on a file's untrusted pickle
bytes reads, and is reviewed, on its own. :class:`CheckpointError` and the bounded-text helpers
live here, the lowest module that uses them; :mod:`.ptfile` re-exports the error.
"""

from __future__ import annotations

import _compat_pickle
import collections
import copyreg
import re
import reprlib
import struct

try:  # the C unpickler, which pickle.Unpickler is: pickle.py itself is not needed (start-up)
    from _pickle import Unpickler
except ImportError:  # pragma: no cover - a Python without the C pickle
    from pickle import Unpickler  # type: ignore[assignment]

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    import os
    from typing import Any

    from .localpath import LocalPath
    from .remote import RemotePath

    AnyPath = LocalPath | RemotePath

MAX_DIMS = 64

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

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = 60
_repr.maxother = 60


def short(obj: Any) -> str:
    """A bounded repr of anything a pickle can build (deeply nested tuples included)."""
    try:
        return _repr.repr(obj)
    except Exception:  # RecursionError, or a repr that fails
        return f"<{type(obj).__name__}>"


def key_str(key: Any) -> str:
    """A dict key as a name part: str and int as they are, anything else as a short repr."""
    if isinstance(key, str):
        return key
    return str(key) if type(key) is int and key.bit_length() <= 64 else short(key)


def clip(text: Any, limit: int = 80) -> str:
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


# ---------------------------------------------------------------------------------------------
# the inert objects the unpickler hands out


class Inert:
    """Base of every object the unpickler makes: a pickle may not set state on it.

    ``BUILD`` calls ``__setstate__`` whenever the object has one, so defining it here (and
    ``__slots__`` everywhere, so there is no ``__dict__``) makes every stand-in and every
    validated tensor immutable from inside a pickle.
    """

    __slots__ = ()

    def what(self) -> str:
        return type(self).__name__.lstrip("_")

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError(
            f"refused to load: the pickle tries to change {self.what()} (a BUILD on an "
            "allow-listed object; nothing was changed)")


class _StorageRef(Inert):
    """A storage as named by a persistent id: ``('storage', type, key, location, numel)``."""

    __slots__ = ("key", "dtype", "itemsize", "numel", "location")

    def __init__(self, key: str, dtype: str | None, itemsize: int, numel: int,
                 location: str) -> None:
        self.key = key
        self.dtype = dtype  # None for UntypedStorage (bytes); the rebuild call names the dtype
        self.itemsize = itemsize
        self.numel = numel
        self.location = location

    def what(self) -> str:
        return f"storage {self.key}"

    def __repr__(self) -> str:
        return f"<storage {clip(self.key, 40)} {self.dtype or 'untyped'} x{self.numel}>"


class TensorStub(Inert):
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

    def what(self) -> str:
        return "a tensor"

    def __repr__(self) -> str:
        return f"<tensor {self.dtype} {list(self.shape)}>"


class _Callable(Inert):
    """Stand-in for an allow-listed function (``_rebuild_tensor_v2`` ...): it can only be called."""

    __slots__ = ("_name", "_fn")

    def __init__(self, name: str, fn: Any) -> None:
        self._name = name
        self._fn = fn

    def what(self) -> str:
        return self._name

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


class _StorageClass(Inert):
    """Stand-in for ``torch.XStorage``: only ever used as a tag inside a persistent id."""

    __slots__ = ("dtype", "itemsize", "_name")

    def __init__(self, dtype: str | None, itemsize: int,
                 name: str = "torch.UntypedStorage") -> None:
        self.dtype = dtype
        self.itemsize = itemsize
        self._name = name

    def what(self) -> str:
        return self._name


class _Dtype(Inert):
    """Stand-in for ``torch.<dtype>``, as passed to ``_rebuild_tensor_v3``."""

    __slots__ = ("name", "itemsize")

    def __init__(self, name: str) -> None:
        self.name = _DTYPE_ALIASES.get(name, name)
        self.itemsize = DTYPE_SIZES[name]

    def what(self) -> str:
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
            raise CheckpointError(f"bad tensor {what}: {short(v)}")
        if v.bit_length() > 63:
            raise CheckpointError(f"bad tensor {what}: a value beyond 64-bit integers")
        if v < 0:
            raise CheckpointError(f"negative tensor {what} {short(tuple(value))}")
    return tuple(value)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> TensorStub:
    if not isinstance(storage, _StorageRef):
        raise CheckpointError("tensor rebuilt from something that is not a storage")
    if type(offset) is not int or not 0 <= offset < _INT63:
        raise CheckpointError(f"bad storage offset {short(offset)}")
    shape, strides = _dims(size, "shape"), _dims(stride, "stride")
    if len(shape) != len(strides):
        raise CheckpointError("tensor shape and stride differ in length")
    dtype, itemsize = storage.dtype, storage.itemsize
    # _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, ...)
    if len(rest) >= 3 and isinstance(rest[2], _Dtype):
        dtype, itemsize = rest[2].name, rest[2].itemsize
    if dtype is None:
        raise CheckpointError("untyped storage without a dtype")
    return TensorStub(storage, offset, shape, strides, dtype, itemsize)


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    if not isinstance(data, TensorStub):
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


class SafeUnpickler(Unpickler):
    """Builds only allow-listed stand-ins; refuses every other global before it is touched."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]()
        except (KeyError, TypeError):
            what = f"{clip(module, 100)}.{clip(name, 100)}"
            # a protocol 0-2 pickle may use a Python 2 name that a plain unpickler maps to its
            # Python 3 one (commands.Popen -> subprocess.Popen): name both
            py3 = _compat_pickle.NAME_MAPPING.get((module, name))
            if py3 is None and module in _compat_pickle.IMPORT_MAPPING:
                py3 = (_compat_pickle.IMPORT_MAPPING[module], name)
            if py3 is not None and py3 != (module, name):
                what += f" (that is {clip(py3[0], 100)}.{clip(py3[1], 100)})"
            raise CheckpointError(_refusal(what)) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {short(pid)}")
        _, cls, key, location, numel = pid
        if not isinstance(cls, _StorageClass):
            raise CheckpointError("persistent id names no storage type")
        if not isinstance(key, str) or not isinstance(location, str) or type(numel) is not int:
            raise CheckpointError(f"malformed storage reference {short(pid)}")
        if numel < 0 or numel.bit_length() > 63:
            raise CheckpointError(f"bad storage size {short(numel)}")
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


def prescan(data: bytes) -> None:
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
                        f"refused to load: the pickle uses memo slot {clip(data[i:j], 30)} in "
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
                what = (f"{clip(pair[0], 100)}.{clip(pair[1], 100)}"
                        if isinstance(pair, tuple) and len(pair) == 2
                        else f"unregistered extension code {code}")
                raise CheckpointError(
                    f"refused to load: the pickle asks for {what} through copyreg extension code "
                    f"{code}, an opcode torch.save never writes (nothing was executed)")
            else:
                return
    except (ValueError, IndexError, struct.error):
        return  # malformed where the unpickler will fail too, and before any memo growth

