"""What a checkpoint is, in the words a nanochat user thinks in: params, depth, layers, dtypes,
built from :mod:`.ptfile` (tensor metadata, no tensor bytes) and the step's meta
(:mod:`.meta`, whose names are importable from here too). Every failure is kept beside the
piece it concerns, so one bad file never hides the rest.
"""

from __future__ import annotations

from .layout import Checkpoint, FileEntry, Record, State
from .meta import (
    EMA_BETA,
    MAX_META_BYTES,
    METRIC_PATHS,
    Meta,
    MetricPoint,
    assess_meta,
    assess_metas,
    debiased_train_loss,
    meta_error_type,
    meta_of,
    meta_problem,
    prefetch_metas,
    read_meta,
    tag_metrics,
    val_bpb_of,
)

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any

    from .meta import MetaError
    from .ptfile import ModelFile, OptimizerFile, TensorInfo

__all__ = ["EMA_BETA", "LAYER_PATTERN", "MAX_META_BYTES", "METRIC_PATHS", "CheckpointSummary",
           "Group", "Meta", "MetaError", "MetricPoint", "ModelSummary", "ShardInfo",
           "assess_meta", "assess_metas", "debiased_train_loss", "kind_of", "layer_of",
           "meta_error_type", "meta_of", "meta_problem", "prefetch_metas", "read_meta",
           "read_model", "read_optimizer", "summarize", "summarize_model", "tag_metrics",
           "val_bpb_of"]

# a block's parameters: transformer.h.11.attn.c_q.weight (searched for by :func:`_layer_match`)
LAYER_PATTERN = r"(?:^|\.)h\.(\d+)\."


def __getattr__(name: str) -> Any:  # ``from .summary import MetaError`` (PEP 562)
    if name == "MetaError":
        return meta_error_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _layer_match(name: str) -> tuple[int, int] | None:
    """(layer, end) of the first :data:`LAYER_PATTERN` in ``name``, as ``re.search`` finds it
    (``\\d`` is any Unicode decimal digit, as ``str.isdecimal``), with str methods: ``show``
    compiles no regex for it."""
    n = len(name)
    start = 2 if name.startswith("h.") else -1  # (the ``^`` alternative, leftmost of all)
    dot = name.find(".h.")
    while True:
        if start < 0:
            if dot < 0:
                return None
            start, dot = dot + 3, name.find(".h.", dot + 1)
        end = start
        while end < n and name[end].isdecimal():
            end += 1
        if start < end < n and name[end] == ".":
            return int(name[start:end]), end + 1
        start = -1


def layer_of(name: str) -> int | None:
    m = _layer_match(name)
    return m[0] if m else None


def kind_of(name: str) -> str:
    """The module kind of a parameter: attn.c_q … mlp.c_proj, wte, value_embeds, lm_head, …"""
    from .ptfile import strip_prefix

    name = strip_prefix(name)
    m = _layer_match(name)
    if m is not None:
        return name[m[1]:].removesuffix(".weight").removesuffix(".bias")
    if name.startswith("transformer.wte"):
        return "wte"
    if name.startswith("value_embeds"):
        return "value_embeds"
    if name.startswith("lm_head"):
        return "lm_head"
    if "lambda" in name:
        return "lambdas"
    return name.removesuffix(".weight")


class Group(Record):
    """A set of tensors summed up: one layer, or one kind."""

    _fields = ("name", "tensors")

    def __init__(self, name: str, tensors: list[TensorInfo] | None = None) -> None:
        self.name = name
        self.tensors: list[TensorInfo] = [] if tensors is None else tensors

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


class ModelSummary(Record):
    """Params, depth, shapes, layers and dtypes of a model file."""

    _fields = ("params", "nbytes", "depth", "depth_source", "embedding_shape",
               "lm_head_shape", "tied", "layers", "others", "dtypes")

    def __init__(self, params: int, nbytes: int, depth: int | None, depth_source: str,
                 embedding_shape: tuple[int, ...] | None,
                 lm_head_shape: tuple[int, ...] | None, tied: bool, layers: list[Group],
                 others: list[Group], dtypes: dict[str, int]) -> None:
        self.params = params
        self.nbytes = nbytes
        self.depth = depth
        self.depth_source = depth_source  # "model_config", "inferred from keys" or "unknown"
        self.embedding_shape = embedding_shape
        self.lm_head_shape = lm_head_shape
        self.tied = tied
        self.layers = layers
        self.others = others  # embeddings, lm_head, lambdas, gates: everything outside h.{i}
        self.dtypes = dtypes  # dtype -> params


def summarize_model(model: ModelFile, model_config: dict[str, Any] | None = None) -> ModelSummary:
    from .ptfile import strip_prefix

    by_name = {strip_prefix(t.name): t for t in model.tensors}
    layers: dict[int, Group] = {}
    others: dict[str, Group] = {}
    dtypes: dict[str, int] = {}
    for name, t in by_name.items():
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + t.numel
        i = layer_of(name)
        if i is not None:
            layers.setdefault(i, Group(f"transformer.h.{i}")).tensors.append(t)
        else:
            k = kind_of(name)
            others.setdefault(k, Group(k)).tensors.append(t)
    n_layer = (model_config or {}).get("n_layer")
    if type(n_layer) is int:
        depth, source = n_layer, "model_config"
    elif layers:
        depth, source = 1 + max(layers), "inferred from keys"
    else:
        depth, source = None, "unknown"
    wte, head = by_name.get("transformer.wte.weight"), by_name.get("lm_head.weight")
    tied = bool(wte and head and wte.storage_key == head.storage_key
                and wte.storage_offset == head.storage_offset)
    return ModelSummary(
        params=model.params, nbytes=model.tensor_bytes, depth=depth, depth_source=source,
        embedding_shape=wte.shape if wte else None, lm_head_shape=head.shape if head else None,
        tied=tied, layers=[layers[i] for i in sorted(layers)], others=list(others.values()),
        dtypes=dtypes,
    )


def read_model(path: Any, **kw: Any) -> ModelFile:
    """:func:`.ptfile.read_model` (imported on the first model read)."""
    from . import ptfile

    return ptfile.read_model(path, **kw)


def read_optimizer(path: Any, **kw: Any) -> OptimizerFile:
    """:func:`.ptfile.read_optimizer` (imported on the first optimizer read)."""
    from . import ptfile

    return ptfile.read_optimizer(path, **kw)


class ShardInfo(Record):
    """One optimizer shard: its file, what was read of it, or why not."""

    _fields = ("entry", "optimizer", "error")

    def __init__(self, entry: FileEntry, optimizer: OptimizerFile | None = None,
                 error: str | None = None) -> None:
        self.entry = entry
        self.optimizer = optimizer
        self.error = error


class CheckpointSummary(Record):
    """Everything the detail pane and ``show`` display for one checkpoint."""

    _fields = ("checkpoint", "model", "model_summary", "model_error", "meta", "meta_error",
               "shards")

    def __init__(self, checkpoint: Checkpoint, model: ModelFile | None = None,
                 model_summary: ModelSummary | None = None, model_error: str | None = None,
                 meta: Meta | None = None, meta_error: str | None = None,
                 shards: list[ShardInfo] | None = None) -> None:
        self.checkpoint = checkpoint
        self.model = model
        self.model_summary = model_summary
        self.model_error = model_error
        self.meta = meta
        self.meta_error = meta_error
        self.shards: list[ShardInfo] = [] if shards is None else shards

    @property
    def model_config(self) -> dict[str, Any]:
        if self.meta and self.meta.model_config:
            return self.meta.model_config
        if self.model and self.model.config:
            return self.model.config
        return {}

    @property
    def step(self) -> int:
        return self.checkpoint.step


def summarize(ck: Checkpoint, *, optimizer: bool = True) -> CheckpointSummary:
    """Read a checkpoint's model metadata, meta JSON and optimizer shards. Never raises for
    bad contents; a file still being written is not opened. Everything is read through
    ``ck.storage`` with positioned reads: each zip's tail, ``data.pkl`` and ``byteorder``, and
    the meta file; never tensor data."""
    out = CheckpointSummary(ck)
    storage = ck.storage
    if ck.meta is not None:
        try:
            out.meta = read_meta(ck.meta, storage)
        except meta_error_type() as e:
            out.meta_error = e.reason
        assess_meta(ck)
    from .ptfile import CheckpointError

    weights = ck.weights
    if not ck.openable:
        out.model_error = ("still being written: not opened (" + ", ".join(ck.unfinished)
                           + " has no zip end yet)")
        return out
    if weights is None:
        out.model_error = "no model file for this step"
    else:
        try:
            out.model = read_model(weights.path, storage=storage, size=weights.size)
            out.model_summary = summarize_model(out.model, out.model_config or None)
        except CheckpointError as e:
            out.model_error = e.reason
            ck.downgrade(State.UNREADABLE, f"{weights.name}: {e.reason}")
    if optimizer:
        for entry in ck.optim:
            shard = ShardInfo(entry)
            try:
                shard.optimizer = read_optimizer(entry.path, storage=storage, size=entry.size)
            except CheckpointError as e:
                shard.error = e.reason
            out.shards.append(shard)
    return out
