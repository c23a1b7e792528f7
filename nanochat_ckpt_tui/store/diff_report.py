"""What :func:`.diff.diff` finds: per-tensor, per-group and overall statistics, key and meta
changes, as a :class:`DiffReport` with a stable JSON form (schema ``nanochat-ckpt.diff/1``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .ptfile import strip_prefix
from .stream import SideInfo, finite_or_none

SCHEMA = "nanochat-ckpt.diff/1"
# Elements per chunk: 64K (256 KB float32 buffers) keep a chunk in the core's cache, the
# fastest per core here. One size wherever a diff runs (one thread, worker processes), so its
# numbers never depend on the machine's core count: float32 chunk sums move with the chunking.
DEFAULT_CHUNK_ELEMS = 1 << 16





@dataclass
class _Stats:
    """float64 sums over the finite pairs, and the statistics derived from them."""

    numel: int = 0
    finite_pairs: int = 0
    nan_a: int = 0
    inf_a: int = 0
    nan_b: int = 0
    inf_b: int = 0
    sum_sq_a: float = 0.0
    sum_sq_b: float = 0.0
    sum_sq_diff: float = 0.0
    sum_abs_diff: float = 0.0
    max_abs_diff: float = 0.0

    @property
    def norm_a(self) -> float:
        return math.sqrt(self.sum_sq_a)

    @property
    def norm_b(self) -> float:
        return math.sqrt(self.sum_sq_b)

    @property
    def norm_diff(self) -> float:
        return math.sqrt(self.sum_sq_diff)

    @property
    def rel_change(self) -> float | None:
        """‖B−A‖/‖A‖; 0 when both are zero, None when only ‖A‖ is."""
        if self.sum_sq_a > 0:
            return finite_or_none(self.norm_diff / self.norm_a)
        return 0.0 if self.sum_sq_diff == 0 and self.finite_pairs else None

    @property
    def cosine(self) -> float | None:
        """(‖a‖²+‖b‖²−‖a−b‖²)/(2‖a‖‖b‖) in [−1, 1]; None when either side is all zero."""
        denom = 2.0 * math.sqrt(self.sum_sq_a * self.sum_sq_b)
        if not denom or not math.isfinite(denom):
            return None
        c = (self.sum_sq_a + self.sum_sq_b - self.sum_sq_diff) / denom
        return max(-1.0, min(1.0, c)) if math.isfinite(c) else None

    @property
    def mean_abs_diff(self) -> float | None:
        return self.sum_abs_diff / self.finite_pairs if self.finite_pairs else None

    @property
    def nonfinite_pairs(self) -> int:
        return self.numel - self.finite_pairs

    def add(self, o: _Stats) -> None:
        self.numel += o.numel
        self.finite_pairs += o.finite_pairs
        self.nan_a += o.nan_a
        self.inf_a += o.inf_a
        self.nan_b += o.nan_b
        self.inf_b += o.inf_b
        self.sum_sq_a += o.sum_sq_a
        self.sum_sq_b += o.sum_sq_b
        self.sum_sq_diff += o.sum_sq_diff
        self.sum_abs_diff += o.sum_abs_diff
        self.max_abs_diff = max(self.max_abs_diff, o.max_abs_diff)

    def stats_json(self) -> dict[str, Any]:
        f = finite_or_none
        return {
            "numel": self.numel, "finite_pairs": self.finite_pairs,
            "nan_a": self.nan_a, "inf_a": self.inf_a, "nan_b": self.nan_b, "inf_b": self.inf_b,
            "norm_a": f(self.norm_a), "norm_b": f(self.norm_b), "norm_diff": f(self.norm_diff),
            "rel_change": f(self.rel_change), "cosine": f(self.cosine),
            "max_abs_diff": f(self.max_abs_diff) if self.finite_pairs else None,
            "mean_abs_diff": f(self.mean_abs_diff),
        }


@dataclass
class TensorDiff(_Stats):
    """One tensor present in both checkpoints with the same shape (stats over finite pairs)."""

    name: str = ""
    kind: str = ""
    layer: int | None = None
    shape: tuple[int, ...] = ()
    dtype_a: str = ""
    dtype_b: str = ""
    compared: bool = True
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "layer": self.layer,
                "shape": list(self.shape), "dtype_a": self.dtype_a, "dtype_b": self.dtype_b,
                "compared": self.compared, "note": self.note, **self.stats_json()}


@dataclass
class GroupDiff(_Stats):
    """A roll-up (one layer, one kind, or everything) of compared tensors' float64 sums."""

    name: str = ""
    n_tensors: int = 0

    def include(self, t: TensorDiff) -> None:
        self.add(t)
        self.n_tensors += 1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "n_tensors": self.n_tensors, **self.stats_json()}


class KeyInfo(NamedTuple):
    name: str
    shape: tuple[int, ...]
    dtype: str


class KeyChange(NamedTuple):
    name: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype_a: str
    dtype_b: str

    @property
    def shape_changed(self) -> bool:
        return self.shape_a != self.shape_b

    @property
    def dtype_changed(self) -> bool:
        return self.dtype_a != self.dtype_b


class MetaChange(NamedTuple):
    """A meta value that differs; ``None`` stands for absent (or JSON null)."""

    path: str
    a: Any
    b: Any




@dataclass
class DiffReport:
    a: SideInfo
    b: SideInfo
    tensors: list[TensorDiff] = field(default_factory=list)
    only_a: list[KeyInfo] = field(default_factory=list)
    only_b: list[KeyInfo] = field(default_factory=list)
    changed: list[KeyChange] = field(default_factory=list)
    layers: list[GroupDiff] = field(default_factory=list)  # transformer.h.N, by N
    others: list[GroupDiff] = field(default_factory=list)  # tensors of no layer, by kind
    kinds: list[GroupDiff] = field(default_factory=list)
    overall: GroupDiff = field(default_factory=lambda: GroupDiff(name="overall"))
    meta_changes: list[MetaChange] = field(default_factory=list)
    bytes_total: int = 0
    elapsed_s: float = 0.0
    chunk_elems: int = DEFAULT_CHUNK_ELEMS
    notes: list[str] = field(default_factory=list)

    @property
    def a_label(self) -> str:
        return self.a.label

    @property
    def b_label(self) -> str:
        return self.b.label

    @property
    def groups(self) -> list[GroupDiff]:
        """"By layer": every compared tensor in exactly one group: the layers, then one group
        per kind of the tensors outside them (embeddings, value embeds, smear, lm_head, …)."""
        return self.layers + self.others

    @property
    def identical(self) -> bool:
        """Same keys, shapes and dtypes, no difference among the finite pairs, and the same
        NaN/Inf counts on both sides."""
        return (not self.only_a and not self.only_b and not self.changed
                and all(t.compared for t in self.tensors)
                and self.overall.sum_sq_diff == 0
                and all(t.nan_a == t.nan_b and t.inf_a == t.inf_b for t in self.tensors))

    def tensor(self, name: str) -> TensorDiff | None:
        name = strip_prefix(name)
        return next((t for t in self.tensors if t.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """A plain, strict-JSON-serialisable dict (schema in the module docstring)."""
        return {
            "schema": SCHEMA,
            "a": self.a.to_json(), "b": self.b.to_json(),
            "bytes_total": self.bytes_total, "elapsed_s": round(self.elapsed_s, 6),
            "chunk_elems": self.chunk_elems,
            "stats_over": "finite_pairs",
            "overall": self.overall.to_json(),
            "layers": [g.to_json() for g in self.layers],
            "others": [g.to_json() for g in self.others],
            "kinds": [g.to_json() for g in self.kinds],
            "tensors": [t.to_json() for t in self.tensors],
            "only_a": [{"name": k.name, "shape": list(k.shape), "dtype": k.dtype}
                       for k in self.only_a],
            "only_b": [{"name": k.name, "shape": list(k.shape), "dtype": k.dtype}
                       for k in self.only_b],
            "changed": [{"name": c.name, "shape_a": list(c.shape_a), "shape_b": list(c.shape_b),
                         "dtype_a": c.dtype_a, "dtype_b": c.dtype_b,
                         "shape_changed": c.shape_changed, "dtype_changed": c.dtype_changed}
                        for c in self.changed],
            "meta_changes": [{"path": m.path, "a": _json_value(m.a), "b": _json_value(m.b)}
                             for m in self.meta_changes],
            "notes": list(self.notes),
        }


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    return v
