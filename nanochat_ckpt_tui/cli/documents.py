"""The JSON documents of ``ls``, ``du`` and ``show`` (schemas in README.md).

Stable: fields are only ever added. Each document carries a ``"schema"`` key.
"""

from __future__ import annotations

from ..store.fastjson import encode_basestring_ascii
from ..store.layout import Catalog, Checkpoint, FileKind, Stage, Tag
from ..store.meta import val_bpb_of
from .common import RawJSON

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any

    from ..store.check_report import CheckReport
    from ..store.summary import CheckpointSummary


def _path_text(path: Any, storage: Any) -> str:
    """A file's path as shown: local as is, remote as its URL (no password)."""
    return storage.display(path)


def checkpoint_json(ck: Checkpoint, verdict: str | None = None) -> dict[str, Any]:
    """One step; ``verdict`` is the cached check verdict (None: never checked in this version)."""
    files = ck.files
    prefix = ck.storage.plain_prefix(ck.dir)  # (no path formatted per file: 50 ms an ls)
    storage = ck.storage
    return {
        "step": ck.step,
        "key": ck.key,
        "state": ck.state.value,
        "problems": ck.problems,
        "latest": ck.is_latest,
        "val_bpb": val_bpb_of(ck),
        "model_bytes": ck.model_bytes,
        "optim_bytes": sum([f.size for f in ck.optim]),
        "meta_bytes": ck.meta.size if ck.meta else 0,
        "total_bytes": sum([f.size for f in files]),
        "mtime": max([f.mtime for f in files], default=0.0),
        "optim_ranks": ck.ranks,
        "pinned": ck.pinned,
        "note": ck.note,
        "verdict": verdict,
        "files": [_file_json(f, prefix, storage) for f in files],
    }


def _file_json(f: Any, prefix: str | None, storage: Any) -> dict[str, Any]:
    path, kind, size, mtime, _, rank, is_link, name, _ = f  # (a FileEntry is a record)
    return {"name": name, "path": prefix + name if prefix is not None else storage.display(path),
            "kind": kind._value_, "size": size, "mtime": mtime, "rank": rank,
            "is_link": is_link}


# --------------------------------------------------------------------------------------------
# the same record as text, for long listings: building 6,000 dicts of dicts and encoding them
# costs ~30 µs a step, formatting the text directly ~8 µs (a test checks both agree exactly)


def _float_text(v: float) -> str:
    if v == v and v not in (_INF, -_INF):
        return float.__repr__(v)
    return '"NaN"' if v != v else '"Infinity"' if v > 0 else '"-Infinity"'


_INF = float("inf")
_SCALAR_TEXT: dict[type, Any] = {
    int: int.__repr__, float: _float_text, str: encode_basestring_ascii,
    bool: lambda b: "true" if b else "false", type(None): lambda _: "null",
}


def _text(v: Any) -> str:
    """A scalar as ``json.dumps`` writes it (non-finite floats spelled as strings)."""
    fn = _SCALAR_TEXT.get(type(v))
    if fn is None:
        import json

        from .common import _json_clean

        return json.dumps(_json_clean(v), allow_nan=False)
    return fn(v)  # type: ignore[no-any-return]


def _plain(text: str) -> bool:
    """Written in JSON as it is, between quotes (the names nanochat writes are)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _quoted(text: str) -> str:
    """A JSON string; the names nanochat writes are plain ASCII: no escaping to do."""
    if _plain(text):
        return '"' + text + '"'
    return encode_basestring_ascii(text)  # type: ignore[no-any-return]


def _file_template(head: str, kind: Any) -> str:
    """A file's record with %s for its name (twice), size, mtime, rank and is_link."""
    return ('{"name": "%s", "path": ' + head.replace("%", "%%") + '%s", "kind": '
            + _text(kind._value_).replace("%", "%%")
            + ', "size": %d, "mtime": %s, "rank": %s, "is_link": %s}')


# the last dir's (dir, storage, escaped path text without its closing quote, {kind: a file's
# record}): a tag's steps share their dir, so this is worked out once a tag
_LAST_HEAD: tuple[Any, Any, str | None, dict[str, str]] = (None, None, None, {})
_STATE_TEXT: dict[str, str] = {}


def _heads(ck: Checkpoint) -> tuple[str | None, dict[str, str]]:
    global _LAST_HEAD
    last = _LAST_HEAD
    if last[0] is ck.dir and last[1] is ck.storage:
        return last[2], last[3]
    prefix = ck.storage.plain_prefix(ck.dir)  # (no path formatted per file: 50 ms an ls)
    head = encode_basestring_ascii(prefix)[:-1] if prefix is not None else None
    _LAST_HEAD = (ck.dir, ck.storage, head, {})
    return head, _LAST_HEAD[3]


_RANKS_TEXT: dict[tuple[int, ...], str] = {}  # (0, 1) → "0, 1"
_OPTIM, _OTHER = FileKind.OPTIM, FileKind.OTHER
def _bool_text(v: Any) -> str:
    return "false" if v is False else "true" if v is True else _text(v)


def checkpoint_json_text(ck: Checkpoint, verdict: str | None = None) -> str:
    """``checkpoint_json(ck, verdict)`` encoded as ``json.dumps`` would (as :class:`RawJSON`).

    Ints, finite floats and plain ASCII names are formatted directly (``f"{n}"`` is what json
    writes for them); anything else goes through :func:`_text` (json's own rules)."""
    files = ck.files
    head, templates = _heads(ck)
    t = _text
    file_texts = []
    newest, newest_text = None, "0.0"
    total, ints = 0, True
    ranks: list[int] = []
    for path, kind, size, mtime, _, rank, is_link, name, _ in files:
        if type(size) is int:
            total += size
        else:
            ints = False
        if rank is not None and kind is _OPTIM:
            ranks.append(rank)
        mtime_text = float.__repr__(mtime) if type(mtime) is float and mtime - mtime == 0.0 \
            else t(mtime)
        if newest is None or mtime > newest:
            newest, newest_text = mtime, mtime_text
        # (a step's files have nanochat's names: plain whenever ASCII)
        # (keyed by the kind's value: an Enum's hash is a Python call)
        template = templates.get(kind._value_) if ints and (
            name.isascii() if kind is not _OTHER else _plain(name)) else None
        if template is None and head is not None and ints and _plain(name):
            template = templates[kind._value_] = _file_template(head, kind)
        if template is not None:  # the common case: one %-format
            file_texts.append(template % (
                name, name, size, mtime_text,
                "null" if rank is None else rank if type(rank) is int else t(rank),
                "false" if is_link is False else "true" if is_link is True else t(is_link)))
            continue
        quoted = _quoted(name)
        file_texts.append(
            f'{{"name": {quoted}, "path": '
            f'{head + quoted[1:] if head is not None else t(ck.storage.display(path))}, '
            f'"kind": {t(kind._value_)}, "size": {t(size)}, '
            f'"mtime": {mtime_text}, "rank": {"null" if rank is None else t(rank)}, '
            f'"is_link": {_bool_text(is_link)}}}')
    if not files or type(newest) is not float:
        newest_text = t(max([f.mtime for f in files], default=0.0))
    ranks.sort()
    ranks_key = tuple(ranks)
    ranks_text = _RANKS_TEXT.get(ranks_key)
    if ranks_text is None:
        ranks_text = _RANKS_TEXT[ranks_key] = ", ".join([t(r) for r in ranks])
    problems = ", ".join([_quoted(p) for p in ck.problems]) if ck.problems else ""
    model_bytes = ck.model_bytes
    meta = ck.meta
    meta_bytes = meta.size if meta is not None else 0
    if ints:  # (always, but for a storage that says otherwise)
        numbers = (f'"model_bytes": {model_bytes}, "optim_bytes": '
                   f'{total - model_bytes - meta_bytes}, "meta_bytes": {meta_bytes}, '
                   f'"total_bytes": {total}')
    else:
        numbers = (f'"model_bytes": {t(model_bytes)}, '
                   f'"optim_bytes": {t(sum([f.size for f in ck.optim]))}, '
                   f'"meta_bytes": {t(meta_bytes)}, '
                   f'"total_bytes": {t(sum([f.size for f in files]))}')
    val_bpb = val_bpb_of(ck)
    state = ck.state._value_
    state_text = _STATE_TEXT.get(state)
    if state_text is None:
        state_text = _STATE_TEXT[state] = _quoted(state)
    return RawJSON(
        f'{{"step": {ck.step}, "key": {_quoted(ck.key)}, "state": {state_text}, '
        f'"problems": [{problems}], "latest": {_bool_text(ck.is_latest)}, '
        f'"val_bpb": {"null" if val_bpb is None else t(val_bpb)}, {numbers}, '
        f'"mtime": {newest_text}, "optim_ranks": [{ranks_text}], '
        f'"pinned": {_bool_text(ck.pinned)}, '
        f'"note": {"null" if ck.note is None else t(ck.note)}, '
        f'"verdict": {"null" if verdict is None else t(verdict)}, '
        f'"files": [{", ".join(file_texts)}]}}')


def tag_json(tag: Tag, with_checkpoints: bool = True, latest_only: bool = False,
             verdicts: dict[str, str] | None = None, *, encoded: bool = False
             ) -> dict[str, Any]:
    """A tag's record; with ``encoded`` its checkpoints are JSON text already (for
    :func:`.common.json_text`: a long listing is written ~4x faster)."""
    doc: dict[str, Any] = {
        "name": tag.name,
        "path": _path_text(tag.path, tag.storage),
        "steps": len(tag.checkpoints),
        "latest_step": tag.latest_step,
        "total_bytes": tag.total_bytes,
        "model_bytes": tag.model_bytes,
        "optim_bytes": tag.optim_bytes,
        "meta_bytes": tag.meta_bytes,
        "other_bytes": tag.other_bytes,
        "other_files": [{"name": f.name, "size": f.size} for f in tag.other_files],
        "error": tag.error,  # e.g. "permission denied, skipped": the dir could not be listed
    }
    if with_checkpoints:
        cks = ([tag.latest] if tag.latest is not None else []) if latest_only \
            else tag.checkpoints
        got = verdicts or {}
        one = checkpoint_json_text if encoded else checkpoint_json
        doc["checkpoints"] = [one(c, got.get(c.key)) for c in cks]
    return doc


def catalog_json(cat: Catalog, schema: str, with_checkpoints: bool = True, *,
                 stages: list[tuple[Stage, list[Tag]]] | None = None,
                 latest_only: bool = False, verdicts: dict[str, str] | None = None,
                 encoded: bool = False) -> dict[str, Any]:
    """The ls/du document; ``stages`` restricts it to those stages and tags (``ls TAG...``:
    the totals stay those of the whole base dir and stage), ``latest_only`` to each tag's
    latest step (``ls --latest``); ``verdicts`` are the cached check verdicts by key;
    ``encoded``: the checkpoints as JSON text (see :func:`tag_json`)."""
    view = [(s, s.tags) for s in cat.stages] if stages is None else stages
    return {
        "schema": schema,
        "base_dir": cat.location,  # a URL for a remote (read-only) base dir
        "exists": cat.exists,
        "scanned_at": cat.scanned_at,
        "total_bytes": cat.total_bytes,
        "model_bytes": cat.model_bytes,
        "optim_bytes": cat.optim_bytes,
        "meta_bytes": cat.meta_bytes,
        "free_bytes": cat.free_bytes,
        "disk_bytes": cat.disk_bytes,
        "stages": [{
            "dir": s.dirname,
            "label": s.label,
            "default_tag": s.default_tag,
            "total_bytes": s.total_bytes,
            "model_bytes": s.model_bytes,
            "optim_bytes": s.optim_bytes,
            "meta_bytes": s.meta_bytes,
            "other_files": [{"name": f.name, "size": f.size} for f in s.other_files],
            "tags": [tag_json(t, with_checkpoints, latest_only, verdicts, encoded=encoded)
                     for t in tags],
            "error": s.error,
        } for s, tags in view],
        "notes": cat.notes,
    }


def schedule_json(s: CheckpointSummary) -> dict[str, Any] | None:
    """Where a base step is in base_train's LR schedule (from the meta's ``user_config``), or
    None: not a base step, no meta, or no schedule settings in it."""
    ck = s.checkpoint
    if s.meta is None or ck.stage != "base_checkpoints" or ck.step < 0:
        return None
    from ..store.schedule import schedule_of

    sched = schedule_of(s.meta.user_config, ck.step)
    if sched is None:
        return None
    return {"phase": sched.phase, "horizon": sched.horizon, "lrm": sched.lrm,
            "progress": sched.progress, "text": sched.describe()}


def summary_json(s: CheckpointSummary, with_tensors: bool = True,
                 check: CheckReport | None = None) -> dict[str, Any]:
    """The show document; ``check`` is the step's cached check report, if any."""
    doc: dict[str, Any] = {"schema": "nanochat-ckpt.show/1", "checkpoint": checkpoint_json(
        s.checkpoint, check.verdict if check else None), "stage": s.checkpoint.stage,
        "tag": s.checkpoint.tag}
    doc["model_error"] = s.model_error
    doc["meta_error"] = s.meta_error
    doc["meta"] = s.meta.data if s.meta else None
    doc["metrics"] = s.meta.metrics if s.meta else {}
    doc["schedule"] = schedule_json(s)
    doc["model_config"] = s.model_config
    ms = s.model_summary
    doc["model"] = None
    if s.model and ms:
        doc["model"] = {
            "layout": s.model.layout,
            "orig_mod_prefix": s.model.orig_mod_prefix,
            "params": ms.params,
            "tensor_bytes": ms.nbytes,
            "depth": ms.depth,
            "depth_source": ms.depth_source,
            "embedding_shape": ms.embedding_shape,
            "lm_head_shape": ms.lm_head_shape,
            "tied_embeddings": ms.tied,
            "dtypes": ms.dtypes,
            "layers": [{"name": g.name, "params": g.params, "bytes": g.nbytes}
                       for g in ms.layers],
            "others": [{"name": g.name, "params": g.params, "bytes": g.nbytes}
                       for g in ms.others],
            "wrapper_step": s.model.step,
            "non_tensor_keys": s.model.non_tensor_keys,
        }
        if with_tensors:
            doc["model"]["tensors"] = [
                {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "numel": t.numel,
                 "bytes": t.nbytes} for t in s.model.tensors]
    doc["optimizer_shards"] = [{
        "name": sh.entry.name, "rank": sh.entry.rank, "size": sh.entry.size, "error": sh.error,
        "form": sh.optimizer.form if sh.optimizer else None,
        "groups": [{"kind": g.kind, "params": g.n_params, "hyper": g.hyper}
                   for g in sh.optimizer.groups] if sh.optimizer else [],
        "state_tensors": sh.optimizer.n_state_tensors if sh.optimizer else None,
        "state_bytes": sh.optimizer.state_bytes if sh.optimizer else None,
    } for sh in s.shards]
    doc["check"] = check.to_json(tensors=with_tensors) if check else None
    return doc
