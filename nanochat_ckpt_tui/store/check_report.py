"""What a check finds: :class:`Finding`, :class:`TensorHealth`, :class:`FileCheck` and
:class:`CheckReport` (its JSON is schema ``nanochat-ckpt.check/1``, and the per-file part is
what the check cache keeps), the verdicts and their order. Made by :mod:`.check`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "nanochat-ckpt.check/1"
GOOD, DAMAGED, UNHEALTHY, UNCHECKED = "good", "damaged", "unhealthy", "unchecked"
_RANK = {DAMAGED: 0, UNHEALTHY: 1, UNCHECKED: 2, GOOD: 3}


@dataclass
class Finding:
    severity: str  # "damaged", "unhealthy" or "note" (worth knowing, not a problem)
    file: str  # a file name of the step, or "" for the step as a whole
    message: str
    tensor: str | None = None  # the state-dict name ("lm_head.weight", "state.3.exp_avg")

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "file": self.file, "tensor": self.tensor,
                "message": self.message}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Finding:
        return cls(str(d["severity"]), str(d["file"]), str(d["message"]), d.get("tensor"))

    def __str__(self) -> str:
        where = " ".join(x for x in (self.file, self.tensor or "") if x)
        return f"{where}: {self.message}" if where else self.message


@dataclass
class TensorHealth:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    finite: int = 0
    total: float = 0.0  # Σx over finite values
    sumsq: float = 0.0  # Σx² over finite values
    absmax: float = 0.0  # over finite values

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def sums(self) -> tuple[Any, ...]:
        """What streaming adds up (:meth:`set_sums` takes it back)."""
        return (self.nan, self.posinf, self.neginf, self.finite, self.total, self.sumsq,
                self.absmax)

    def set_sums(self, sums: tuple[Any, ...]) -> None:
        (self.nan, self.posinf, self.neginf, self.finite, self.total, self.sumsq,
         self.absmax) = sums

    @property
    def nonfinite(self) -> int:
        return self.nan + self.posinf + self.neginf

    @property
    def all_zero(self) -> bool:
        return self.numel > 0 and self.nonfinite == 0 and self.absmax == 0.0

    @property
    def norm(self) -> float:
        return math.sqrt(self.sumsq)

    @property
    def mean(self) -> float | None:
        return self.total / self.finite if self.finite else None

    @property
    def std(self) -> float | None:
        if not self.finite:
            return None
        m = self.total / self.finite
        return math.sqrt(max(self.sumsq / self.finite - m * m, 0.0))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "nan": self.nan, "posinf": self.posinf, "neginf": self.neginf,
                "finite": self.finite, "sum": self.total, "sumsq": self.sumsq,
                "absmax": self.absmax, "norm": self.norm, "mean": self.mean, "std": self.std,
                "all_zero": self.all_zero}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TensorHealth:
        return cls(str(d["name"]), str(d["dtype"]), tuple(int(x) for x in d["shape"]),
                   int(d["nan"]), int(d["posinf"]), int(d["neginf"]), int(d["finite"]),
                   float(d["sum"]), float(d["sumsq"]), float(d["absmax"]))


def worst_verdict(findings: Iterable[Finding]) -> str:
    """``damaged`` if any finding says so, else ``unhealthy`` if any does, else ``good``."""
    sev = {f.severity for f in findings}
    return DAMAGED if DAMAGED in sev else UNHEALTHY if UNHEALTHY in sev else GOOD


@dataclass
class FileCheck:
    """One file of a step, checked (or taken from the cache)."""

    name: str
    kind: str  # model, optim, legacy, meta
    size: int
    crc: str = "n/a"  # "ok", "mismatch", "none recorded" (saved without CRCs), "n/a"
    records: int = 0
    findings: list[Finding] = field(default_factory=list)
    tensors: list[TensorHealth] = field(default_factory=list)
    bytes_read: int = 0
    cached: bool = False

    @property
    def verdict(self) -> str:
        return worst_verdict(self.findings)

    def to_json(self, tensors: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "size": self.size, "verdict": self.verdict,
            "crc": self.crc, "records": self.records, "cached": self.cached,
            "bytes_read": self.bytes_read, "findings": [f.to_json() for f in self.findings]}
        if tensors:
            doc["tensors"] = [t.to_json() for t in self.tensors]
        return doc

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileCheck:
        return cls(str(d["name"]), str(d["kind"]), int(d["size"]), str(d["crc"]),
                   int(d["records"]), [Finding.from_json(f) for f in d["findings"]],
                   [TensorHealth.from_json(t) for t in d.get("tensors", [])], 0, True)


@dataclass
class CheckReport:
    """A step's verdict, its files and its step-level findings."""

    key: str  # base_checkpoints/d20@5000
    step: int
    files: list[FileCheck] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # about the step as a whole
    unchecked_why: str | None = None
    elapsed_s: float = 0.0

    @property
    def all_findings(self) -> list[Finding]:
        return self.findings + [f for fc in self.files for f in fc.findings]

    @property
    def verdict(self) -> str:
        if self.unchecked_why is not None:
            return UNCHECKED
        return worst_verdict(self.all_findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.all_findings if f.severity != "note"]

    @property
    def bytes_read(self) -> int:
        return sum(fc.bytes_read for fc in self.files)

    def tensors(self) -> list[tuple[str, TensorHealth]]:
        """(file name, health) of every tensor checked."""
        return [(fc.name, t) for fc in self.files for t in fc.tensors]

    def summary(self) -> str:
        """One line: the verdict and its first reason."""
        if self.unchecked_why:
            return f"{UNCHECKED}: {self.unchecked_why}"
        probs = self.problems
        if not probs:
            return GOOD
        more = f" (+{len(probs) - 1} more)" if len(probs) > 1 else ""
        return f"{self.verdict}: {probs[0]}{more}"

    def to_json(self, tensors: bool = True) -> dict[str, Any]:
        return {"key": self.key, "step": self.step, "verdict": self.verdict,
                "unchecked_why": self.unchecked_why, "elapsed_s": self.elapsed_s,
                "bytes_read": self.bytes_read,
                "findings": [f.to_json() for f in self.all_findings],
                "files": [fc.to_json(tensors) for fc in self.files]}


def verdict_rank(verdict: str) -> int:
    """Sort key: damaged first, good last."""
    return _RANK.get(verdict, 2)
