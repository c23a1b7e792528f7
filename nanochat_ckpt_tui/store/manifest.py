"""The archive manifest (``.nanochat-ckpt-manifest.json`` at a destination's root) and the
last destination remembered for next time (``$NANOCHAT_CKPT_STATE``)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .check_cache import CheckCache, default_cache
from .layout import Checkpoint
from .storage import is_url, redact
from .targets import ArchiveError, LocalTarget, Target, open_target

MANIFEST = ".nanochat-ckpt-manifest.json"
MANIFEST_SCHEMA = "nanochat-ckpt.manifest/1"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
STATE_ENV = "NANOCHAT_CKPT_STATE"
STATE_SCHEMA = "nanochat-ckpt.state/1"


def empty_manifest() -> dict[str, Any]:
    return {"schema": MANIFEST_SCHEMA, "updated_at": 0.0, "files": {}, "checkpoints": {}}


def load_manifest(target: Target) -> dict[str, Any]:
    try:
        raw = target.read_small(MANIFEST, MAX_MANIFEST_BYTES)
    except Exception as e:  # network, permissions: say so, never guess
        raise ArchiveError(f"{target.display}: cannot read {MANIFEST} "
                           f"({type(e).__name__}: {e})") from None
    if raw is None:
        return empty_manifest()
    where = f"{target.display}/{MANIFEST}"
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"{where}: too large to be ours; left untouched")
    try:
        doc = json.loads(raw.decode("utf-8"))
        if doc.get("schema") != MANIFEST_SCHEMA or not isinstance(doc.get("files"), dict):
            raise ValueError("unknown schema")
        doc.setdefault("checkpoints", {})
        if not isinstance(doc["checkpoints"], dict):
            raise ValueError("checkpoints is not an object")
        return doc
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        raise ArchiveError(f"{where}: manifest is corrupt ({e}); it was left untouched: move "
                           "it aside to start a new one") from None


def save_manifest(target: Target, files: dict[str, Any], checkpoints: dict[str, Any]) -> None:
    """Re-read, merge our entries over it, write it back in one atomic step."""
    doc = load_manifest(target)
    doc["files"].update(files)
    doc["checkpoints"].update(checkpoints)
    doc["updated_at"] = time.time()
    doc["files"] = dict(sorted(doc["files"].items()))
    doc["checkpoints"] = dict(sorted(doc["checkpoints"].items()))
    target.write_small(MANIFEST, json.dumps(doc, indent=2).encode("utf-8"))


def read_manifest(dest: str | os.PathLike[str],
                  storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The destination's manifest (an empty one when nothing was archived there)."""
    target = open_target(dest, storage_options)
    target.refresh()
    return load_manifest(target)


def archived_checkpoints(checkpoints: list[Checkpoint], dest: str | os.PathLike[str],
                         storage_options: dict[str, Any] | None = None,
                         cache: CheckCache | None = None) -> set[str]:
    """Keys of the checkpoints whose weights and meta at ``dest`` are copies of *these* bytes:
    same size, and the sha256 the manifest records equals the one kept for this file version
    when it was archived (a same-named step of another run, or a file changed since, does not
    count). Raises :class:`ArchiveError` if the manifest is unreadable."""
    files = read_manifest(dest, storage_options)["files"]
    cache = cache if cache is not None else default_cache()
    out = set()
    for ck in checkpoints:
        mine = [f for f in (ck.weights, ck.meta) if f is not None]
        if not mine or ck.weights is None:
            continue
        for f in mine:
            entry = files.get(f"{ck.stage}/{ck.tag}/{f.name}")
            if not isinstance(entry, dict) or entry.get("size") != f.size:
                break
            try:
                sha = cache.sha256(ck.storage.file_key(f.path, f.size, f.mtime))
            except OSError:
                break
            if sha is None or sha != entry.get("sha256"):
                break
        else:
            out.add(ck.key)
    return out


def archived_steps(dest: str | os.PathLike[str],
                   storage_options: dict[str, Any] | None = None) -> set[tuple[str, str, int]]:
    """``(stage_dir, tag, step)`` of every checkpoint fully archived at ``dest`` (weights and
    meta at least). Raises :class:`ArchiveError` if the manifest is unreadable."""
    doc = read_manifest(dest, storage_options)
    out: set[tuple[str, str, int]] = set()
    for entry in doc["checkpoints"].values():
        with contextlib.suppress(KeyError, TypeError, ValueError):
            out.add((str(entry["stage"]), str(entry["tag"]), int(entry["step"])))
    return out


# --------------------------------------------------------------------------------------------
# remembering the last destination


def state_path() -> Path:
    """``$NANOCHAT_CKPT_STATE``, else ``$XDG_CONFIG_HOME/nanochat-ckpt/state.json``."""
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(config).expanduser() / "nanochat-ckpt" / "state.json"


def _read_state() -> dict[str, Any]:
    try:
        doc = json.loads(state_path().read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def last_destination() -> str | None:
    dest = _read_state().get("archive", {}).get("last_destination")
    return dest if isinstance(dest, str) and dest else None


def remember_destination(dest: str | os.PathLike[str]) -> None:
    """Store the destination (password removed) for next time; other keys are kept."""
    text = os.fspath(dest)
    if not is_url(text):
        text = str(Path(text).expanduser().absolute())
    path = state_path()
    doc = _read_state()
    doc["schema"] = STATE_SCHEMA
    section = doc.get("archive") if isinstance(doc.get("archive"), dict) else {}
    section["last_destination"] = redact(text)
    section["updated_at"] = time.time()
    doc["archive"] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    LocalTarget(path.parent).write_small(path.name, json.dumps(doc, indent=2).encode("utf-8"))


