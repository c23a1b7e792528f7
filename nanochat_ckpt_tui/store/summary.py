"""What a checkpoint is, in the words a nanochat user thinks in: params, depth, layers, metrics.

Built from :mod:`.ptfile` (tensor metadata, no tensor bytes) and the meta JSON, which is read
with Python's tolerant parser (nanochat writes bare ``Infinity``/``NaN``). Every failure is
kept beside the piece it concerns, so one bad file never hides the rest.

:mod:`.ptfile` (the pickle reader) is imported only when a model is read, or a meta found bad:
``ls`` and the metrics read metas alone, and a CLI's start-up should not pay for the rest.
:class:`MetaError` subclasses ``ptfile.CheckpointError``, so it is made on first use (module
``__getattr__``; inside this module :func:`meta_error_type`).
"""

from __future__ import annotations

import math

from . import fastjson
from .layout import LOCAL, Checkpoint, FileEntry, Record, State, Tag
from .storage import Storage

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any

    from .localpath import LocalPath
    from .ptfile import CheckpointError, ModelFile, OptimizerFile, TensorInfo
    from .remote import RemotePath

    class MetaError(CheckpointError):
        """A meta JSON file that cannot be used."""

# a block's parameters: transformer.h.11.attn.c_q.weight (searched for by :func:`_layer_match`)
LAYER_PATTERN = r"(?:^|\.)h\.(\d+)\."
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


_META_ERROR: Any = None


def meta_error_type() -> type[MetaError]:
    """:class:`MetaError`, made (and ``ptfile`` imported) on first use."""
    global _META_ERROR
    if _META_ERROR is None:
        from .ptfile import CheckpointError

        class MetaError(CheckpointError):  # noqa: F811 - the runtime twin of the stub above
            """A meta JSON file that cannot be used."""

        MetaError.__module__, MetaError.__qualname__ = __name__, "MetaError"
        _META_ERROR = globals()["MetaError"] = MetaError
    return _META_ERROR  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:  # ``from .summary import MetaError`` (PEP 562)
    if name == "MetaError":
        return meta_error_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Meta(Record):
    """A parsed meta JSON file."""

    _fields = ("path", "data")

    def __init__(self, path: LocalPath | RemotePath, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

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


def read_meta(entry: FileEntry | LocalPath | RemotePath, storage: Storage | None = None) -> Meta:
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
            raise meta_error_type()("meta file vanished", path) from None
        except OSError as e:
            raise meta_error_type()(f"cannot stat ({e.strerror or e})", path) from None
    key = storage.cache_key(path, size, mtime)
    cached = _META_CACHE.get(key)
    if cached is None:
        if size > MAX_META_BYTES:
            cached = meta_error_type()(
                f"meta is {size} bytes, over the {MAX_META_BYTES} byte limit", path)
        else:
            try:
                cached = _parse_meta_bytes(storage.read_bytes(path, MAX_META_BYTES), path)
            except FileNotFoundError:
                raise meta_error_type()("meta file vanished", path) from None
            except OSError as e:  # not cached: a retry may work
                raise meta_error_type()(f"cannot read meta ({e.strerror or e})", path) from None
        _remember(key, cached)
    if not isinstance(cached, Meta):
        raise cached
    return cached


def _remember(key: tuple[str, int, float], value: Meta | MetaError) -> None:
    if len(_META_CACHE) > 100_000:
        _META_CACHE.clear()
    _META_CACHE[key] = value


_LAST_DIR: tuple[Any, Any, str | None] = (None, None, None)  # (dir, storage, its text)


def _dir_text(ck: Checkpoint) -> str | None:
    """Where the storage's paths are plain text (local), the text its files' paths start with
    (``str(ck.dir) + "/"``: ``Storage.plain_prefix``): a meta's cache key is then made without
    formatting its path (5 µs each, 6,000 steps an ``ls``).
    The steps of a tag share their dir: the last answer is kept (one tuple, swapped whole, so
    threads never see half of it)."""
    global _LAST_DIR
    last = _LAST_DIR
    if last[0] is ck.dir and last[1] is ck.storage:
        return last[2]
    text = ck.storage.plain_prefix(ck.dir)
    _LAST_DIR = (ck.dir, ck.storage, text)
    return text


def _meta_key(ck: Checkpoint, meta: FileEntry, dir_text: str | None) -> tuple[Any, ...]:
    """``ck.storage.cache_key`` of the step's meta (what :func:`read_meta` looks up)."""
    if dir_text is None:
        return ck.storage.cache_key(meta.path, meta.size, meta.mtime)
    return (dir_text + meta.name, meta.size, meta.mtime)  # = the storage's cache_key


def meta_of(ck: Checkpoint) -> Meta | MetaError | None:
    """The step's parsed meta, or why it cannot be used (the error, not raised), or None when
    it has none; from the cache when it was read already."""
    meta = ck.meta
    if meta is None:
        return None
    cached = _META_CACHE.get(_meta_key(ck, meta, _dir_text(ck)))
    if cached is not None:
        return cached
    try:
        return read_meta(meta, ck.storage)
    except meta_error_type() as e:
        return e


def meta_problem(ck: Checkpoint) -> str | None:
    """Why nanochat's loader would fail on this step's meta (read from the cache when it was
    read already), or None: it does not parse, is not an object, or has no ``model_config``
    mapping."""
    meta = meta_of(ck)
    if meta is None or ck.meta is None:
        return None
    return _problem(ck.meta.name, meta)


def _problem(name: str, meta: Meta | MetaError) -> str | None:
    if not isinstance(meta, Meta):
        return f"{name}: {meta.reason}"
    cfg = meta.data.get("model_config")
    if isinstance(cfg, dict):
        return None
    if cfg is None:
        return f"{name}: no model_config: nanochat cannot build the model"
    return (f"{name}: model_config is a {type(cfg).__name__}, not an object: nanochat cannot "
            "build the model")


def assess_meta(ck: Checkpoint) -> None:
    """Give the step the ``bad meta`` state when nanochat could not load its meta."""
    problem = meta_problem(ck)
    if problem is not None:
        ck.downgrade(State.BAD_META, problem)


def assess_metas(checkpoints: list[Checkpoint]) -> None:
    """Read (concurrently where possible) and judge the meta of every step."""
    keys = prefetch_metas(checkpoints)
    cache, bad_meta = _META_CACHE, State.BAD_META
    for ck, key in zip(checkpoints, keys, strict=True):
        if ck.meta is None:
            continue
        value = cache.get(key) if key is not None else None
        if value is None:  # not read (too large, or the read failed): the usual way
            assess_meta(ck)
            continue
        if isinstance(value, Meta) and isinstance(value.data.get("model_config"), dict):
            continue  # (the common case, without building a problem)
        problem = _problem(ck.meta.name, value)
        if problem is not None:
            ck.downgrade(bad_meta, problem)


def prefetch_metas(checkpoints: list[Checkpoint]) -> list[tuple[Any, ...] | None]:
    """Read the meta files of checkpoints not read yet into the cache that :func:`read_meta`
    uses, concurrently where the storage allows it (call before ``val_bpb_of`` over many
    checkpoints); failures are left for ``read_meta`` to report. Local files are read by
    their path text (no path formatted). The cache key of each step's meta (None: none to
    read)."""
    by_storage: dict[int, tuple[Storage, list[tuple[Any, tuple[Any, ...], Any, int]]]] = {}
    keys: list[tuple[Any, ...] | None] = []
    cache = _META_CACHE
    for ck in checkpoints:
        meta = ck.meta
        if meta is None or meta.size > MAX_META_BYTES:
            keys.append(None)
            continue
        dir_text = _dir_text(ck)
        key = _meta_key(ck, meta, dir_text)
        keys.append(key)
        if key not in cache:
            where = key[0] if dir_text is not None else meta.path
            by_storage.setdefault(id(ck.storage), (ck.storage, []))[1].append(
                (where, key, meta.path, meta.size))
    _read_into_cache(by_storage)
    return keys


def _read_into_cache(by_storage: dict[int, tuple[Storage, list[tuple[Any, tuple[Any, ...],
                                                                    Any, int]]]]) -> None:
    for storage, todo in by_storage.values():
        got = storage.read_many([t[0] for t in todo], [t[3] for t in todo], MAX_META_BYTES)
        for (_, key, path, _), raw in zip(todo, got, strict=True):
            if raw is not None and not isinstance(raw, Exception):
                _remember(key, _parse_meta_bytes(raw, path))


def _parse_meta_bytes(raw: bytes, path: Any) -> Meta | MetaError:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return meta_error_type()("meta is not UTF-8 text", path)
    if not text or text.isspace():
        return meta_error_type()("meta is empty (still being written?)", path)
    try:
        data = fastjson.loads(text)  # accepts Infinity, -Infinity and NaN, as nanochat writes
    except ValueError as e:
        import json  # (imported by now: json itself raised the error)

        if not isinstance(e, json.JSONDecodeError):
            raise
        return meta_error_type()(f"broken JSON at line {e.lineno} column {e.colno}: {e.msg}", path)
    except RecursionError:
        return meta_error_type()("meta JSON nested too deeply", path)
    if not isinstance(data, dict):
        return meta_error_type()(f"meta holds a JSON {type(data).__name__}, not an object", path)
    return Meta(path, data)


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


class MetricPoint(Record):
    """The metrics of one step (for plots over steps)."""

    _fields = ("step", "metrics", "error")

    def __init__(self, step: int, metrics: dict[str, float | None],
                 error: str | None = None) -> None:
        self.step = step
        self.metrics = metrics
        self.error = error


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
        except meta_error_type() as e:
            points.append(MetricPoint(ck.step, {}, e.reason))
    return points


def val_bpb_of(ck: Checkpoint) -> float | None:
    """The checkpoint's val_bpb, or None (no meta, null, Infinity, broken JSON)."""
    meta = meta_of(ck)
    return meta.val_bpb if isinstance(meta, Meta) else None
