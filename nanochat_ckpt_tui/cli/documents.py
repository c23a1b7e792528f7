"""The JSON documents of ``ls``, ``du`` and ``show`` (schemas in README.md).

Stable: fields are only ever added. Each document carries a ``"schema"`` key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store.layout import Catalog, Checkpoint, Stage, Tag
from ..store.summary import CheckpointSummary, val_bpb_of

if TYPE_CHECKING:
    from ..store.check import CheckReport


def _path_text(path: Any, storage: Any) -> str:
    """A file's path as shown: local as is, remote as its URL (no password)."""
    return storage.display(path)


def checkpoint_json(ck: Checkpoint, verdict: str | None = None) -> dict[str, Any]:
    """One step; ``verdict`` is the cached check verdict (None: never checked in this version)."""
    return {
        "step": ck.step,
        "key": ck.key,
        "state": ck.state.value,
        "problems": ck.problems,
        "latest": ck.is_latest,
        "val_bpb": val_bpb_of(ck),
        "model_bytes": ck.model_bytes,
        "optim_bytes": ck.optim_bytes,
        "meta_bytes": ck.meta_bytes,
        "total_bytes": ck.total_bytes,
        "mtime": ck.mtime,
        "optim_ranks": ck.ranks,
        "pinned": ck.pinned,
        "note": ck.note,
        "verdict": verdict,
        "files": [{"name": f.name, "path": _path_text(f.path, ck.storage), "kind": f.kind.value,
                   "size": f.size,
                   "mtime": f.mtime, "rank": f.rank, "is_link": f.is_link} for f in ck.files],
    }


def tag_json(tag: Tag, with_checkpoints: bool = True, latest_only: bool = False,
             verdicts: dict[str, str] | None = None) -> dict[str, Any]:
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
        doc["checkpoints"] = [checkpoint_json(c, got.get(c.key)) for c in cks]
    return doc


def catalog_json(cat: Catalog, schema: str, with_checkpoints: bool = True, *,
                 stages: list[tuple[Stage, list[Tag]]] | None = None,
                 latest_only: bool = False, verdicts: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """The ls/du document; ``stages`` restricts it to those stages and tags (``ls TAG...``:
    the totals stay those of the whole base dir and stage), ``latest_only`` to each tag's
    latest step (``ls --latest``); ``verdicts`` are the cached check verdicts by key."""
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
            "tags": [tag_json(t, with_checkpoints, latest_only, verdicts) for t in tags],
            "error": s.error,
        } for s, tags in view],
        "notes": cat.notes,
    }


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
