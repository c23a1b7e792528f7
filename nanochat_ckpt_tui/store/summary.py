"""What a checkpoint is, in the words a nanochat user thinks in: params, depth, layers, metrics.

Built from :mod:`.ptfile` (tensor metadata, no tensor bytes) and the meta JSON, which is read
with Python's tolerant parser (nanochat writes bare ``Infinity``/``NaN``). Every failure is
kept beside the piece it concerns, so one bad file never hides the rest.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import LOCAL, Checkpoint, FileEntry, State, Tag
from .ptfile import (
    CheckpointError,
    ModelFile,
    OptimizerFile,
    TensorInfo,
    read_model,
    read_optimizer,
    strip_prefix,
)
from .storage import Storage

LAYER_RE = re.compile(r"(?:^|\.)h\.(\d+)\.")
MAX_META_BYTES = 16 * 1024 * 1024

# Metrics worth showing over steps, as (label, path in the meta JSON)
METRIC_PATHS: dict[str, tuple[str, ...]] = {
    "val_bpb": ("val_bpb",),
    "min_val_bpb": ("loop_state", "min_val_bpb"),
    "train_loss_ema": ("loop_state", "smooth_train_loss"),  # raw EMA (beta 0.9), not debiased
    "train_time": ("loop_state", "total_training_time"),
    "val_loss": ("val_loss",),
    "mmlu_acc": ("mmlu_acc",),
    "arc_easy_acc": ("arc_easy_acc",),
}


class MetaError(CheckpointError):
    """A meta JSON file that cannot be used."""


@dataclass
class Meta:
    path: Path
    data: dict[str, Any]

    @property
    def step(self) -> int | None:
        s = self.data.get("step")
        return s if type(s) is int else None

    @property
    def model_config(self) -> dict[str, Any]:
        mc = self.data.get("model_config")
        return mc if isinstance(mc, dict) else {}

    @property
    def user_config(self) -> dict[str, Any]:
        uc = self.data.get("user_config")
        return uc if isinstance(uc, dict) else {}

    @property
    def metrics(self) -> dict[str, float | None]:
        """Known metrics present in this meta (None where written as null)."""
        out: dict[str, float | None] = {}
        for label, path in METRIC_PATHS.items():
            node: Any = self.data
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
                if node is None:
                    break
            else:
                if isinstance(node, int | float) and not isinstance(node, bool):
                    out[label] = float(node)
                continue
            if len(path) == 1 and path[0] in self.data:
                out[label] = None
        loss = debiased_train_loss(out.get("train_loss_ema"), self.step)
        if loss is not None:
            out["train_loss"] = loss
        return out

    @property
    def val_bpb(self) -> float | None:
        v = self.data.get("val_bpb")
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
        return None


EMA_BETA = 0.9  # nanochat's smoothing of the training loss


def debiased_train_loss(ema: float | None, step: int | None) -> float | None:
    """The train loss nanochat logs for the checkpoint of ``step``: its EMA after ``step``
    updates, debiased (``ema / (1 - 0.9**step)``, as base_train prints it)."""
    if ema is None or step is None or step <= 0 or not math.isfinite(ema):
        return None
    return ema / (1 - EMA_BETA ** step)


_META_CACHE: dict[tuple[str, int, float], Meta | MetaError] = {}


def read_meta(entry: FileEntry | Path, storage: Storage | None = None) -> Meta:
    """Parse a meta JSON (Infinity/NaN allowed). Raises :class:`MetaError` with one clear line.

    ``entry`` is a file of ``storage`` (local disk when None). Parsed metas are cached by the
    file's (name, size, mtime): a scan's entry gives them without a request; a bare path is
    stat'ed first.
    """
    storage = storage or LOCAL
    if isinstance(entry, FileEntry):
        path, size, mtime = entry.path, entry.size, entry.mtime
    else:
        path = entry
        try:
            size, mtime = storage.stat(path)
        except FileNotFoundError:
            raise MetaError("meta file vanished", path) from None
        except OSError as e:
            raise MetaError(f"cannot stat ({e.strerror or e})", path) from None
    key = storage.cache_key(path, size, mtime)
    cached = _META_CACHE.get(key)
    if cached is None:
        if size > MAX_META_BYTES:
            cached = MetaError(f"meta is {size} bytes, over the {MAX_META_BYTES} byte limit",
                               path)
        else:
            try:
                cached = _parse_meta_bytes(storage.read_bytes(path, MAX_META_BYTES), path)
            except FileNotFoundError:
                raise MetaError("meta file vanished", path) from None
            except OSError as e:  # not cached: a retry may work
                raise MetaError(f"cannot read meta ({e.strerror or e})", path) from None
        _remember(key, cached)
    if isinstance(cached, MetaError):
        raise cached
    return cached


def _remember(key: tuple[str, int, float], value: Meta | MetaError) -> None:
    if len(_META_CACHE) > 100_000:
        _META_CACHE.clear()
    _META_CACHE[key] = value


def meta_problem(ck: Checkpoint) -> str | None:
    """Why nanochat's loader would fail on this step's meta (read from the cache when it was
    read already), or None: it does not parse, is not an object, or has no ``model_config``
    mapping."""
    if ck.meta is None:
        return None
    try:
        meta = read_meta(ck.meta, ck.storage)
    except MetaError as e:
        return f"{ck.meta.name}: {e.reason}"
    cfg = meta.data.get("model_config")
    if cfg is None:
        return f"{ck.meta.name}: no model_config: nanochat cannot build the model"
    if not isinstance(cfg, dict):
        return (f"{ck.meta.name}: model_config is a {type(cfg).__name__}, not an object: "
                "nanochat cannot build the model")
    return None


def assess_meta(ck: Checkpoint) -> None:
    """Give the step the ``bad meta`` state when nanochat could not load its meta."""
    problem = meta_problem(ck)
    if problem is not None:
        ck.downgrade(State.BAD_META, problem)


def assess_metas(checkpoints: list[Checkpoint]) -> None:
    """Read (concurrently where possible) and judge the meta of every step."""
    prefetch_metas(checkpoints)
    for ck in checkpoints:
        if ck.meta is not None:
            assess_meta(ck)


def prefetch_metas(checkpoints: list[Checkpoint]) -> None:
    """Read the meta files of checkpoints not read yet into the cache that :func:`read_meta`
    uses, concurrently where the storage allows it (call before ``val_bpb_of`` over many
    checkpoints); failures are left for ``read_meta`` to report."""
    by_storage: dict[int, tuple[Storage, list[tuple[FileEntry, tuple[str, int, float]]]]] = {}
    for ck in checkpoints:
        if ck.meta is None or ck.meta.size > MAX_META_BYTES:
            continue
        key = ck.storage.cache_key(ck.meta.path, ck.meta.size, ck.meta.mtime)
        if key not in _META_CACHE:
            by_storage.setdefault(id(ck.storage), (ck.storage, []))[1].append((ck.meta, key))
    for storage, todo in by_storage.values():
        got = storage.read_many([e.path for e, _ in todo])
        for (entry, key), raw in zip(todo, got, strict=True):
            if not isinstance(raw, Exception):
                _remember(key, _parse_meta_bytes(raw, entry.path))


def _parse_meta_bytes(raw: bytes, path: Any) -> Meta | MetaError:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return MetaError("meta is not UTF-8 text", path)
    if not text.strip():
        return MetaError("meta is empty (still being written?)", path)
    try:
        data = json.loads(text)  # accepts Infinity, -Infinity and NaN, as nanochat writes them
    except json.JSONDecodeError as e:
        return MetaError(f"broken JSON at line {e.lineno} column {e.colno}: {e.msg}", path)
    except RecursionError:
        return MetaError("meta JSON nested too deeply", path)
    if not isinstance(data, dict):
        return MetaError(f"meta holds a JSON {type(data).__name__}, not an object", path)
    return Meta(path, data)


def layer_of(name: str) -> int | None:
    m = LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def kind_of(name: str) -> str:
    """The module kind of a parameter: attn.c_q … mlp.c_proj, wte, value_embeds, lm_head, …"""
    name = strip_prefix(name)
    if layer_of(name) is not None:
        rest = LAYER_RE.split(name, maxsplit=1)[-1]
        return rest.removesuffix(".weight").removesuffix(".bias")
    if name.startswith("transformer.wte"):
        return "wte"
    if name.startswith("value_embeds"):
        return "value_embeds"
    if name.startswith("lm_head"):
        return "lm_head"
    if "lambda" in name:
        return "lambdas"
    return name.removesuffix(".weight")


@dataclass
class Group:
    """A set of tensors summed up: one layer, or one kind."""

    name: str
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


@dataclass
class ModelSummary:
    params: int
    nbytes: int
    depth: int | None
    depth_source: str  # "model_config", "inferred from keys" or "unknown"
    embedding_shape: tuple[int, ...] | None
    lm_head_shape: tuple[int, ...] | None
    tied: bool
    layers: list[Group]
    others: list[Group]  # embeddings, lm_head, lambdas, gates: everything outside h.{i}
    dtypes: dict[str, int]  # dtype -> params


def summarize_model(model: ModelFile, model_config: dict[str, Any] | None = None) -> ModelSummary:
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


@dataclass
class ShardInfo:
    entry: FileEntry
    optimizer: OptimizerFile | None = None
    error: str | None = None


@dataclass
class CheckpointSummary:
    """Everything the detail pane and ``show`` display for one checkpoint."""

    checkpoint: Checkpoint
    model: ModelFile | None = None
    model_summary: ModelSummary | None = None
    model_error: str | None = None
    meta: Meta | None = None
    meta_error: str | None = None
    shards: list[ShardInfo] = field(default_factory=list)

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
        except MetaError as e:
            out.meta_error = e.reason
        assess_meta(ck)
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


@dataclass
class MetricPoint:
    step: int
    metrics: dict[str, float | None]
    error: str | None = None


def tag_metrics(tag: Tag) -> list[MetricPoint]:
    """Metrics of every step of a tag that has a meta file, in step order (the meta files are
    fetched concurrently first where the storage allows it)."""
    prefetch_metas(tag.checkpoints)
    points = []
    for ck in tag.checkpoints:
        if ck.meta is None:
            continue
        try:
            points.append(MetricPoint(ck.step, read_meta(ck.meta, ck.storage).metrics))
        except MetaError as e:
            points.append(MetricPoint(ck.step, {}, e.reason))
    return points


def val_bpb_of(ck: Checkpoint) -> float | None:
    """The checkpoint's val_bpb, or None (no meta, null, Infinity, broken JSON)."""
    if ck.meta is None:
        return None
    try:
        return read_meta(ck.meta, ck.storage).val_bpb
    except MetaError:
        return None
