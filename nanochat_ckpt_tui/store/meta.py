"""The meta JSON nanochat writes beside each step, read with Python's tolerant parser
(nanochat writes bare ``Infinity``/``NaN``): :class:`Meta`, a cache of parsed metas by file
version, whether nanochat's loader would take a step's meta (the ``bad meta`` state), and the
metrics over steps. ``ls`` and the metrics need nothing else.

:class:`MetaError` subclasses ``ptfile.CheckpointError``, so it is made on first use (module
``__getattr__``; inside this module :func:`meta_error_type`): the pickle reader is imported
only when a meta is found bad.
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
    from .ptfile import CheckpointError
    from .remote import RemotePath

    class MetaError(CheckpointError):
        """A meta JSON file that cannot be used."""

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


def __getattr__(name: str) -> Any:  # ``from .meta import MetaError`` (PEP 562)
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
