"""Read a torch.save zip checkpoint's metadata without torch and without executing its pickle.

Only ``*/data.pkl`` is read. Its pickle is run by an unpickler whose ``find_class`` hands out
inert stand-ins for an allow-list of globals (``OrderedDict``, ``_rebuild_tensor_v2/v3``,
``_rebuild_parameter``, the typed storage classes, dtypes); any other global is refused with a
:class:`CheckpointError` that names it, before anything is called. Tensor data is never read.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORIG_MOD = "_orig_mod."
MAX_PICKLE_BYTES = 64 * 1024 * 1024
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
    "complex64": 8, "complex128": 16, "float8_e4m3fn": 1, "float8_e5m2": 1,
    "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1,
}
_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
                  "int": "int32", "short": "int16"}


class CheckpointError(Exception):
    """A checkpoint file that cannot be read: one clear sentence, never a traceback."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.reason = message
        super().__init__(f"{Path(path).name}: {message}" if path is not None else message)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as described by the pickle: where its bytes live, never the bytes."""

    name: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str
    itemsize: int
    storage_key: str
    storage_offset: int  # in elements

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

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
        if self.numel == 0:
            return 0
        return 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride, strict=True))


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: str | None  # None for UntypedStorage (bytes); the rebuild call names the dtype
    itemsize: int
    numel: int
    location: str


@dataclass
class _TensorStub:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str
    itemsize: int


class _Inert:
    """Base of the stand-ins: a pickle may not call them or set state on them."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError("the pickle tries to set state on a type (refused)")


class _StorageClass(_Inert):
    """Stand-in for ``torch.XStorage``: only ever used as a tag inside a persistent id."""

    __slots__ = ("dtype", "itemsize")

    def __init__(self, dtype: str | None, itemsize: int) -> None:
        self.dtype = dtype
        self.itemsize = itemsize


class _Dtype(_Inert):
    """Stand-in for ``torch.<dtype>``, as passed to ``_rebuild_tensor_v3``."""

    __slots__ = ("name", "itemsize")

    def __init__(self, name: str) -> None:
        self.name = _DTYPE_ALIASES.get(name, name)
        self.itemsize = DTYPE_SIZES[name]


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or len(value) > MAX_DIMS:
        raise CheckpointError(f"bad tensor {what}: {type(value).__name__}")
    out = []
    for v in value:
        if type(v) is not int:
            raise CheckpointError(f"bad tensor {what}: {v!r}")
        out.append(v)
    return tuple(out)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _TensorStub:
    if not isinstance(storage, _StorageRef):
        raise CheckpointError("tensor rebuilt from something that is not a storage")
    if type(offset) is not int or offset < 0:
        raise CheckpointError(f"bad storage offset {offset!r}")
    shape, strides = _ints(size, "shape"), _ints(stride, "stride")
    if len(shape) != len(strides):
        raise CheckpointError("tensor shape and stride differ in length")
    if any(d < 0 for d in shape) or any(s < 0 for s in strides):
        raise CheckpointError(f"negative tensor shape or stride {shape} / {strides}")
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


# Each value makes a fresh stand-in, so no pickle can alter what the next one gets.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): lambda: _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): lambda: _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): lambda: _rebuild_parameter,
    ("torch.storage", "UntypedStorage"): lambda: _StorageClass(None, 1),
    ("torch", "UntypedStorage"): lambda: _StorageClass(None, 1),
}
_ALLOWED.update({("torch", k): (lambda v=v: _StorageClass(*v)) for k, v in STORAGE_DTYPES.items()})
_ALLOWED.update({("torch", k): (lambda k=k: _Dtype(k)) for k in DTYPE_SIZES})


class _SafeUnpickler(pickle.Unpickler):
    """Builds only allow-listed stand-ins; refuses every other global before it is touched."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]()
        except (KeyError, TypeError):
            raise CheckpointError(
                f"refused to load: the pickle asks for {module}.{name}, which is not on the "
                "allow-list of tensor metadata (nothing was executed)"
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {str(pid)[:80]}")
        _, cls, key, location, numel = pid
        if not isinstance(cls, _StorageClass):
            raise CheckpointError("persistent id names no storage type")
        if not isinstance(key, str) or not isinstance(location, str) or type(numel) is not int:
            raise CheckpointError(f"malformed storage reference {str(pid)[:80]}")
        if numel < 0:
            raise CheckpointError(f"negative storage size {numel}")
        return _StorageRef(key, cls.dtype, cls.itemsize, numel, location)


@dataclass
class PtArchive:
    """The zip structure of one torch.save file and the object tree of its pickle."""

    path: Path
    prefix: str  # the zip's root folder, e.g. "model_000006"
    file_size: int
    root: Any
    storages: dict[str, zipfile.ZipInfo] = field(repr=False)
    byteorder: str = "little"

    def storage_data_offset(self, key: str) -> int:
        """Byte offset of storage ``key``'s data in the file (from the local header)."""
        info = self.storages[key]
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            header = f.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise CheckpointError(f"bad local header for storage {key}", self.path)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        return info.header_offset + 30 + name_len + extra_len


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError("file vanished", path) from None
    except PermissionError:
        raise CheckpointError("permission denied", path) from None
    except IsADirectoryError:
        raise CheckpointError("is a directory, not a checkpoint file", path) from None
    except (zipfile.BadZipFile, EOFError, ValueError, struct.error) as e:
        size = path.stat().st_size if path.exists() else 0
        if size == 0:
            raise CheckpointError("empty file (0 bytes)", path) from None
        raise CheckpointError(
            "not a readable torch zip: truncated, still being written, or not a checkpoint "
            f"({e})", path) from None
    except OSError as e:
        raise CheckpointError(f"cannot open: {e.strerror or e}", path) from None


def read_archive(path: str | Path) -> PtArchive:
    """Open ``path`` and unpickle its ``data.pkl`` into inert stand-ins."""
    path = Path(path)
    with _open_zip(path) as zf:
        try:
            infos = zf.infolist()
        except Exception as e:  # pragma: no cover - infolist is already parsed
            raise CheckpointError(f"bad zip directory ({e})", path) from None
        pkl = [i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
        if not pkl:
            names = ", ".join(i.filename for i in infos[:3]) or "nothing"
            raise CheckpointError(
                f"a zip, but not a torch checkpoint (no */data.pkl; it holds {names})", path)
        info = pkl[0]
        prefix = info.filename.rsplit("/", 1)[0]
        if info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(
                f"data.pkl is {info.file_size} bytes, over the {MAX_PICKLE_BYTES} byte limit", path)
        try:
            data = zf.read(info)
            byteorder = zf.read(f"{prefix}/byteorder").decode("ascii", "replace").strip() \
                if f"{prefix}/byteorder" in zf.NameToInfo else "little"
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError,
                RuntimeError, struct.error) as e:
            raise CheckpointError(f"cannot read data.pkl ({e})", path) from None
        storages = {
            i.filename[len(prefix) + 6:]: i for i in infos
            if i.filename.startswith(prefix + "/data/")
        }
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
    try:
        root = _SafeUnpickler(io.BytesIO(data)).load()
    except CheckpointError as e:
        raise CheckpointError(e.reason, path) from None
    except RecursionError:
        raise CheckpointError("pickle nested too deeply", path) from None
    except MemoryError:
        raise CheckpointError("pickle asks for too much memory", path) from None
    except Exception as e:  # any malformed pickle: UnpicklingError, EOFError, TypeError, ...
        raise CheckpointError(f"corrupt pickle ({type(e).__name__}: {str(e)[:120]})", path) \
            from None
    return PtArchive(path, prefix, size, root, storages, byteorder)


def _walk(root: Any, prefix: str = "") -> Iterator[tuple[str, _TensorStub]]:
    """Yield (dotted name, tensor) for every tensor in a nested dict/list tree, iteratively."""
    stack: list[tuple[str, Any]] = [(prefix, root)]
    seen: set[int] = set()
    while stack:
        name, obj = stack.pop()
        if isinstance(obj, _TensorStub):
            yield name, obj
            continue
        if isinstance(obj, dict | list | tuple):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            items = obj.items() if isinstance(obj, dict) else enumerate(obj)
            children = [(f"{name}.{k}" if name else str(k), v) for k, v in items]
            stack.extend(reversed(children))


def _tensor_info(arc: PtArchive, name: str, t: _TensorStub) -> TensorInfo:
    info = TensorInfo(name, t.shape, t.stride, t.dtype, t.itemsize, t.storage.key, t.offset)
    member = arc.storages.get(t.storage.key)
    if member is None:
        raise CheckpointError(f"tensor {name}: its storage data/{t.storage.key} is missing",
                              arc.path)
    end = (info.storage_offset + info.extent) * info.itemsize
    if info.numel and end > member.file_size:
        raise CheckpointError(
            f"tensor {name} {list(info.shape)} reaches byte {end} of a "
            f"{member.file_size}-byte storage", arc.path)
    return info


def tensors_of(arc: PtArchive, obj: Any, prefix: str = "") -> list[TensorInfo]:
    """TensorInfo for every tensor under ``obj``, validated against the zip's storages."""
    return [_tensor_info(arc, n, t) for n, t in _walk(obj, prefix)]


def storage_bytes(tensors: list[TensorInfo], arc: PtArchive) -> int:
    """Bytes of the distinct storages the tensors live in (shared views counted once)."""
    keys = {t.storage_key for t in tensors}
    return sum(arc.storages[k].file_size for k in keys if k in arc.storages)


# ---------------------------------------------------------------------------------------------
# model files


@dataclass
class ModelFile:
    """A model checkpoint: its tensors, and the wrapper fields of the older layout."""

    path: Path
    file_size: int
    layout: str  # "state_dict" (nanochat) or "wrapper" (older {'model', 'step', 'config'})
    tensors: list[TensorInfo]
    orig_mod_prefix: bool = False
    step: int | None = None
    config: dict[str, Any] | None = None
    has_optimizer: bool = False
    non_tensor_keys: list[str] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


def _plain(obj: Any, depth: int = 0) -> Any:
    """A JSON-friendly copy of pickle scalars/containers; tensors become a short description."""
    if depth > 20:
        return "…"
    if isinstance(obj, _TensorStub):
        return f"<tensor {obj.dtype} {list(obj.shape)}>"
    if isinstance(obj, dict):
        return {str(k): _plain(v, depth + 1) for k, v in list(obj.items())[:1000]}
    if isinstance(obj, list | tuple):
        return [_plain(v, depth + 1) for v in obj[:1000]]
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return repr(obj)[:80]


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and any(
        isinstance(v, _TensorStub) for v in obj.values())


def read_model(path: str | Path) -> ModelFile:
    """Describe a model file: a bare state dict, or the older wrapper dict with ``model``."""
    arc = read_archive(path)
    root = arc.root
    if _is_state_dict(root):
        sd, layout, step, config, has_opt = root, "state_dict", None, None, False
    elif isinstance(root, dict) and _is_state_dict(root.get("model")):
        sd, layout = root["model"], "wrapper"
        step = root.get("step") if type(root.get("step")) is int else None
        config = _plain(root.get("config")) if isinstance(root.get("config"), dict) else None
        has_opt = root.get("optimizer") is not None
    else:
        kind = type(root).__name__
        raise CheckpointError(f"holds a {kind}, not a model state dict", arc.path)
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


@dataclass
class ParamGroup:
    kind: str  # "adamw", "muon", or what the group says / looks like
    n_params: int
    hyper: dict[str, Any]


@dataclass
class OptimizerFile:
    """An optimizer shard: param groups and the size of the state it carries."""

    path: Path
    file_size: int
    form: str  # "dict" (current) or "list" (before 2026-01-29: [adamw, muon])
    groups: list[ParamGroup]
    tensors: list[TensorInfo]
    n_states: int  # parameters with state

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


def _parse_opt_dict(arc: PtArchive, sd: Any, prefix: str, fallback: str
                    ) -> tuple[list[ParamGroup], list[TensorInfo], int]:
    if not (isinstance(sd, dict) and "param_groups" in sd):
        raise CheckpointError("not an optimizer state dict (no param_groups)", arc.path)
    raw_groups = sd["param_groups"] if isinstance(sd["param_groups"], list) else []
    groups = []
    for g in raw_groups:
        if not isinstance(g, dict):
            continue
        params = g.get("params")
        hyper = {k: _plain(v) for k, v in g.items() if k != "params"}
        groups.append(ParamGroup(_group_kind(g, fallback),
                                 len(params) if isinstance(params, list) else 0, hyper))
    state = sd.get("state") if isinstance(sd.get("state"), dict) else {}
    tensors = tensors_of(arc, state, f"{prefix}state" if prefix else "state")
    return groups, tensors, len(state)


def read_optimizer(path: str | Path) -> OptimizerFile:
    """Describe an optimizer shard in the current dict form or the older list form."""
    arc = read_archive(path)
    root = arc.root
    if isinstance(root, dict):
        groups, tensors, n = _parse_opt_dict(arc, root, "", "group")
        form = "dict"
    elif isinstance(root, list) and root:
        groups, tensors, n, form = [], [], 0, "list"
        for i, sd in enumerate(root):
            fallback = ["adamw", "muon"][i] if i < 2 else f"optimizer{i}"
            g, t, k = _parse_opt_dict(arc, sd, f"{i}.", fallback)
            groups += g
            tensors += t
            n += k
    else:
        raise CheckpointError(f"holds a {type(root).__name__}, not an optimizer state", arc.path)
    return OptimizerFile(arc.path, arc.file_size, form, groups, tensors, n)
