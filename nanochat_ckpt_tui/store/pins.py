"""Pins and notes: a small sidecar JSON in each tag dir that nanochat ignores.

``<tag>/.nanochat-ckpt.json`` = ``{"schema": "nanochat-ckpt.pins/1", "steps": {"3000":
{"pinned": true, "note": "best so far", "updated": 1764000000.0}}}``. Writes are atomic (temp
file in the same dir, fsync, rename) under an exclusive lock on the tag dir. A corrupt sidecar
is never overwritten: it raises :class:`PinsError` until the user moves it aside
(:func:`set_aside`), so nobody's pins are lost silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SIDECAR = ".nanochat-ckpt.json"
SCHEMA = "nanochat-ckpt.pins/1"
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
MAX_NOTE = 200


class PinsError(Exception):
    """The sidecar cannot be read or written; the message says what to do."""


@dataclass(frozen=True)
class PinEntry:
    pinned: bool = False
    note: str | None = None
    updated: float = 0.0


def sidecar_path(tag_dir: Path) -> Path:
    return Path(tag_dir) / SIDECAR


def load_pins(tag_dir: Path) -> dict[int, PinEntry]:
    """Pins of a tag by step; empty when there is no sidecar. Raises PinsError if corrupt."""
    path = sidecar_path(tag_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise PinsError(f"{path}: cannot read pins ({e.strerror or e})") from None
    return parse_pins(raw, str(path))


def parse_pins(raw: bytes, where: str) -> dict[int, PinEntry]:
    """A sidecar's bytes (local or fetched) by step; PinsError naming ``where`` if corrupt."""
    if len(raw) > MAX_SIDECAR_BYTES:
        raise PinsError(f"{where}: pins file is {len(raw)} bytes, too large to be ours")
    try:
        doc = json.loads(raw.decode("utf-8"))
        steps = doc["steps"]
        if doc.get("schema") != SCHEMA or not isinstance(steps, dict):
            raise ValueError("unknown schema")
        out = {}
        for key, val in steps.items():
            note = val.get("note")
            out[int(key)] = PinEntry(bool(val.get("pinned", False)),
                                     str(note)[:MAX_NOTE] if note else None,
                                     float(val.get("updated", 0.0)))
        return out
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise PinsError(f"{where}: pins file is corrupt ({type(e).__name__}: {e}); it was "
                        "left untouched: move it aside to start over") from None


@contextlib.contextmanager
def _locked(tag_dir: Path) -> Iterator[None]:
    fd = os.open(tag_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write(tag_dir: Path, pins: dict[int, PinEntry]) -> None:
    doc = {"schema": SCHEMA, "steps": {
        str(step): {"pinned": e.pinned, "note": e.note, "updated": e.updated}
        for step, e in sorted(pins.items()) if e.pinned or e.note}}
    fd, tmp = tempfile.mkstemp(prefix=SIDECAR + ".", suffix=".tmp", dir=tag_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, sidecar_path(tag_dir))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def update_pin(tag_dir: Path, step: int, *, pinned: bool | None = None,
               note: str | None = None, clear_note: bool = False) -> PinEntry:
    """Set a step's pin and/or note atomically; returns the new entry."""
    tag_dir = Path(tag_dir)
    try:
        with _locked(tag_dir):
            pins = load_pins(tag_dir)
            old = pins.get(step, PinEntry())
            new_note = None if clear_note else (note.strip()[:MAX_NOTE] or None
                                                if note is not None else old.note)
            entry = PinEntry(old.pinned if pinned is None else pinned, new_note, time.time())
            pins[step] = entry
            _write(tag_dir, pins)
            return entry
    except PinsError:
        raise
    except OSError as e:
        raise PinsError(f"{tag_dir}: cannot write pins ({e.strerror or e})") from None


def set_aside(tag_dir: Path) -> Path | None:
    """Move a corrupt sidecar to ``<name>.corrupt-<time>`` (kept, never deleted)."""
    path = sidecar_path(tag_dir)
    if not path.exists():
        return None
    dest = path.with_name(f"{SIDECAR}.corrupt-{int(time.time())}")
    os.replace(path, dest)
    return dest
