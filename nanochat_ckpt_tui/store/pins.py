"""Pins and notes: a small sidecar JSON in each tag dir that nanochat ignores.

``<tag>/.nanochat-ckpt.json`` = ``{"schema": "nanochat-ckpt.pins/1", "steps": {"3000":
{"pinned": true, "note": "best so far", "updated": 1764000000.0}}}``. Writes are atomic (temp
file in the same dir, fsync, rename) under an exclusive lock on the tag dir. A corrupt sidecar
is never overwritten: it raises :class:`PinsError` until the user moves it aside
(:func:`set_aside`), so nobody's pins are lost silently.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import fastjson
from .storage import LocalStorage, Storage

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any

SIDECAR = ".nanochat-ckpt.json"
SCHEMA = "nanochat-ckpt.pins/1"
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
MAX_NOTE = 200


class PinsError(Exception):
    """The sidecar cannot be read or written; the message says what to do."""


class PinEntry:
    """A step's pin and note: immutable, compared and hashed by value (what
    ``@dataclass(frozen=True)`` gave, without generating code at every start)."""

    __match_args__ = ("pinned", "note", "updated")
    pinned: bool
    note: str | None
    updated: float

    def __init__(self, pinned: bool = False, note: str | None = None,
                 updated: float = 0.0) -> None:
        object.__setattr__(self, "pinned", pinned)
        object.__setattr__(self, "note", note)
        object.__setattr__(self, "updated", updated)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[bool, str | None, float]:
        return (self.pinned, self.note, self.updated)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PinEntry) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(pinned={self.pinned!r}, note={self.note!r}, "
                f"updated={self.updated!r})")


def sidecar_path(tag_dir: Any, storage: Storage | None = None) -> Any:
    return storage.join(tag_dir, SIDECAR) if storage else Path(tag_dir) / SIDECAR


def load_pins(tag_dir: Any, storage: Storage | None = None) -> dict[int, PinEntry]:
    """Pins of a tag by step; empty when there is no sidecar. Raises PinsError if corrupt."""
    storage = storage or LocalStorage()
    path = sidecar_path(tag_dir, storage)
    try:
        raw = storage.read_bytes(path, MAX_SIDECAR_BYTES)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise PinsError(f"{storage.display(path)}: cannot read pins ({e.strerror or e})") \
            from None
    return parse_pins(raw, storage.display(path))


def parse_pins(raw: bytes, where: str) -> dict[int, PinEntry]:
    """A sidecar's bytes (local or fetched) by step; PinsError naming ``where`` if corrupt."""
    if len(raw) > MAX_SIDECAR_BYTES:
        raise PinsError(f"{where}: pins file is {len(raw)} bytes, too large to be ours")
    try:
        doc = fastjson.loads(raw.decode("utf-8"))
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


def _encode(pins: dict[int, PinEntry]) -> bytes:
    doc = {"schema": SCHEMA, "steps": {
        str(step): {"pinned": e.pinned, "note": e.note, "updated": e.updated}
        for step, e in sorted(pins.items()) if e.pinned or e.note}}
    import json

    return json.dumps(doc, indent=2).encode("utf-8")


def update_pin(tag_dir: Any, step: int, *, pinned: bool | None = None,
               note: str | None = None, clear_note: bool = False,
               storage: Storage | None = None) -> PinEntry:
    """Set a step's pin and/or note atomically (under a lock on the tag dir); returns the new
    entry. Raises :class:`PinsError`, also when the storage is read-only."""
    storage = storage or LocalStorage()
    if not storage.writable:
        raise PinsError(f"{storage.display(tag_dir)}: read-only storage: pins and notes cannot "
                        "be changed here")
    try:
        with storage.locked(tag_dir):
            pins = load_pins(tag_dir, storage)
            old = pins.get(step, PinEntry())
            new_note = None if clear_note else (note.strip()[:MAX_NOTE] or None
                                                if note is not None else old.note)
            entry = PinEntry(old.pinned if pinned is None else pinned, new_note, time.time())
            pins[step] = entry
            # teammates on a shared box read pins: the tag dir's read bits, never more
            storage.write_atomic(sidecar_path(tag_dir, storage), _encode(pins),
                                 mode=storage.shared_mode(tag_dir))
            return entry
    except PinsError:
        raise
    except OSError as e:
        raise PinsError(f"{storage.display(tag_dir)}: cannot write pins ({e.strerror or e})") \
            from None


def set_aside(tag_dir: Path) -> Path | None:
    """Move a corrupt sidecar to ``<name>.corrupt-<time>`` (kept, never deleted)."""
    path = sidecar_path(tag_dir)
    if not path.exists():
        return None
    dest = path.with_name(f"{SIDECAR}.corrupt-{int(time.time())}")
    os.replace(path, dest)
    return dest
