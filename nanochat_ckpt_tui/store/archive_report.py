"""What an archive run reports: its :class:`Progress` as it goes, an :class:`ArchiveResult`
(each file copied, found present, failed or cancelled; the steps now fully archived) and the
:class:`VerifyReport` of a re-check of an archive's checksums, with their JSON documents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .manifest import MANIFEST

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Progress:
    """Work done so far. Each byte counts twice: once copied, once re-read to verify it."""

    bytes_done: int
    bytes_total: int
    rate: float  # bytes_done per second since the start
    file: str  # relative path being worked on
    phase: str  # "copy", "verify" (re-reading the destination) or "hash" (reading the source)
    files_done: int
    files_total: int


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class FileResult:
    rel: str  # path relative to the destination root
    source: Path
    size: int
    status: str  # "copied", "present" (already there), "failed", "cancelled"
    detail: str = ""
    sha256: str | None = None
    checkpoint: str | None = None  # Checkpoint.key, None for tokenizer files


@dataclass
class ArchiveResult:
    dest: str  # redacted destination (no password)
    strategy: str
    results: list[FileResult] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)  # checkpoint keys now fully archived
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def bytes_copied(self) -> int:
        return sum(r.size for r in self.results if r.status == "copied")

    @property
    def bytes_total(self) -> int:
        return sum(r.size for r in self.results)

    @property
    def rate(self) -> float:
        """Copied bytes per second over the whole run (verification included)."""
        return self.bytes_copied / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.cancelled and all(r.status in ("copied", "present")
                                          for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "nanochat-ckpt.archive/1",
            "dest": self.dest,
            "strategy": self.strategy,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "archived": self.archived,
            "files": [{"path": r.rel, "source": str(r.source), "size": r.size,
                       "status": r.status, "detail": r.detail, "sha256": r.sha256,
                       "checkpoint": r.checkpoint} for r in self.results],
            "counts": {s: self.count(s) for s in ("copied", "present", "failed", "cancelled")},
            "bytes_copied": self.bytes_copied,
            "bytes_total": self.bytes_total,
            "seconds": round(self.seconds, 3),
            "rate_bytes_per_s": round(self.rate, 1),
            "warnings": self.warnings,
            "manifest": MANIFEST,
        }


@dataclass(frozen=True)
class VerifyEntry:
    rel: str
    status: str  # "ok", "missing", "mismatch", "error"
    size: int
    detail: str = ""


@dataclass
class VerifyReport:
    dest: str
    entries: list[VerifyEntry] = field(default_factory=list)
    cancelled: bool = False

    def count(self, status: str) -> int:
        return sum(e.status == status for e in self.entries)

    @property
    def ok(self) -> bool:
        return not self.cancelled and all(e.status == "ok" for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "nanochat-ckpt.verify/1",
            "dest": self.dest,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "counts": {s: self.count(s) for s in ("ok", "missing", "mismatch", "error")},
            "files": [{"path": e.rel, "status": e.status, "size": e.size, "detail": e.detail}
                      for e in self.entries],
        }
