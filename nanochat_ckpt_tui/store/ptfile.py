"""Read a torch.save checkpoint's metadata without torch and without executing its pickle:
a model file (:func:`read_model`) or an optimizer shard (:func:`read_optimizer`).

The reading is done below: :mod:`.unpickler` runs ``data.pkl`` through an allow-listed
unpickler that builds inert stand-ins and refuses every other global, and :mod:`.torchzip`
opens the zip and describes the tensors as :class:`TensorInfo`. This module says what the
object tree is (a bare state dict, the older wrapper dict, an optimizer state in its dict or
list form), and is where the rest of the code imports all of it from (``__all__``).
"""

from __future__ import annotations

from .torchzip import (
    PtArchive,
    Record,
    TensorInfo,
    read_archive,
    storage_bytes,
    tensor_info,
    tensors_and_problems,
    tensors_of,
)
from .unpickler import CheckpointError, Inert, TensorStub, key_str, short

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from .localpath import LocalPath
    from .remote import RemotePath
    from .storage import Storage

    AnyPath = LocalPath | RemotePath

# (the unpickler and the zip live in .unpickler and .torchzip; this module is where the rest of
# the code finds them, with the model and optimizer files)
__all__ = ["MAX_PLAIN_NODES", "ORIG_MOD", "CheckpointError", "ModelFile", "OptimizerFile",
           "ParamGroup", "PtArchive", "TensorInfo", "model_of", "read_archive", "read_model",
           "read_optimizer", "storage_bytes", "strip_prefix", "tensors_and_problems",
           "tensors_of"]

ORIG_MOD = "_orig_mod."
# JSON-friendly copies of configs / hyper-parameters stop after this many nodes per file, so a
# pickle that shares one list many times over (a DAG) cannot make the copy explode.
MAX_PLAIN_NODES = 100_000


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
    if isinstance(obj, TensorStub):
        return f"<tensor {obj.dtype} {list(obj.shape)}>"
    if isinstance(obj, dict):
        return {key_str(k): _plain(v, depth + 1, budget) for k, v in list(obj.items())[:1000]}
    if isinstance(obj, list | tuple):
        return [_plain(v, depth + 1, budget) for v in obj[:1000]]
    if isinstance(obj, bool | float) or obj is None or type(obj) is int and obj.bit_length() <= 64:
        return obj
    if isinstance(obj, str):
        return obj if len(obj) <= 10_000 else obj[:10_000] + "…"
    return short(obj)[:80]


def _what_is(obj: Any) -> str:
    """'a dict with no tensors', 'a list', 'an int': the subject of a wrong-content message."""
    if isinstance(obj, dict):
        if not any(isinstance(v, TensorStub) for v in obj.values()):
            return f"{_a(type(obj).__name__)} with no tensors"
        return f"{_a(type(obj).__name__)} with non-string keys"
    if isinstance(obj, Inert):
        return "a tensor" if isinstance(obj, TensorStub) else obj.what()
    return _a(type(obj).__name__)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


# ---------------------------------------------------------------------------------------------
# model files


class ModelFile(Record):
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
        isinstance(v, TensorStub) for v in obj.values())


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
        if isinstance(value, TensorStub):
            tensors.append(tensor_info(arc, key, value))
        else:
            non_tensor.append(key)
    prefixed = any(t.name.startswith(ORIG_MOD) for t in tensors)
    return ModelFile(arc.path, arc.file_size, layout, tensors, prefixed, step, config, has_opt,
                     non_tensor)


def strip_prefix(name: str) -> str:
    return name[len(ORIG_MOD):] if name.startswith(ORIG_MOD) else name


# ---------------------------------------------------------------------------------------------
# optimizer files


class ParamGroup(Record):
    _fields = ("kind", "n_params", "hyper")

    def __init__(self, kind: str, n_params: int, hyper: dict[str, Any]) -> None:
        self.kind = kind  # "adamw", "muon", or what the group says / looks like
        self.n_params = n_params
        self.hyper = hyper


class OptimizerFile(Record):
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
        hyper = {key_str(k): _plain(v, 0, budget) for k, v in g.items() if k != "params"}
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
