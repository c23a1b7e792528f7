"""Compare two model checkpoints tensor by tensor, streaming their bytes in bounded memory.

``diff(a, b)`` takes two :class:`~.layout.Checkpoint` objects (or paths to model files) and
returns a :class:`DiffReport`: keys only in A / only in B, shape or dtype changes, and for every
tensor present in both with the same shape: ‖A‖, ‖B‖, ‖B−A‖, ‖B−A‖/‖A‖, cosine similarity,
max |B−A|, mean |B−A| and NaN/Inf counts of each side; roll-ups per layer, per kind and
overall; and the differences of the meta JSON (model_config, user_config, metrics, step).

How it reads: the storages of a torch.save zip are STORED (uncompressed), so a tensor's bytes
are a plain byte range of the file (the storage's data offset from its local zip header, plus
``storage_offset × itemsize``). Contiguous tensors (all of nanochat's) are read chunk by chunk
(``chunk_elems`` elements) with ``os.preadv`` into a few reused buffers, with
``posix_fadvise`` SEQUENTIAL/WILLNEED hints so cold files stream from disk; nothing else of the
file is ever in memory, and a file truncated under us gives a short read, hence a
:class:`CheckpointError`, never a crash. (pread costs the same as an mmap here: both are
CPU-bound on the statistics; an mmap'd file truncated by a concurrent ``torch.save`` would
SIGBUS the process.) Tensors with other strides are viewed in an mmap of the file with
``numpy.frombuffer`` + ``as_strided``, compared in row blocks of at most ``chunk_elems``
elements, and their pages are dropped with ``madvise(MADV_DONTNEED)`` right after. torch is
never imported; numpy is imported inside :func:`diff`, so importing this module is cheap.

Every byte is read through the checkpoint's storage (``ck.storage.open_reader``): a local file
with ``preadv``; a remote one in ranged blocks fetched ahead (:mod:`.readers`). The chunked
statistics are the same, so a remote diff equals the local diff of the same files.

Arithmetic: values are converted to float32 (bf16 by shifting its bits into the top half of
a float32; fp16, int8/16, uint8, bool by numpy casting) or to float64 when either side is
float64 or a 32/64-bit integer. Each chunk's sums (Σa², Σb², Σ(b−a)², Σ|b−a|) are taken in
that precision and accumulated across chunks in float64; cosine is
(Σa² + Σb² − Σ(b−a)²) / (2‖a‖‖b‖), clipped to [−1, 1]. The statistics are order-independent
sums, so two bf16 sides are de-interleaved identically (even elements, then odd) to convert
with two cheap integer passes instead of one strided one.

NaN/Inf: counted per side (``nan_a``, ``inf_a``, ``nan_b``, ``inf_b``); every statistic is
computed over the *finite pairs* only (positions where both A and B are finite), whose number
is ``finite_pairs``. Roll-ups (layer, kind, overall) are computed from the per-tensor float64
sums, never as averages of per-tensor ratios.

Cancellation: ``cancel`` (e.g. a ``threading.Event``) is checked before every chunk; when set,
:class:`DiffCancelled` is raised (it carries ``done_bytes`` and ``total_bytes``). No partial
report is returned. ``progress(done_bytes, total_bytes)`` is called with non-decreasing
``done_bytes`` (throttled to about 500 calls) and finally exactly once with
``done_bytes == total_bytes``. ``total_bytes`` counts the tensor bytes of both sides of every
compared pair (``DiffReport.bytes_total``).

Errors: unreadable, truncated or corrupt files raise :class:`~.ptfile.CheckpointError`.
Differences between model versions (added, removed or reshaped keys) are data, never errors.
A file replaced in place while it is read (a rerun overwriting the same step) can make the
numbers meaningless; checkpoints still being written should not be diffed.

JSON schema ``nanochat-ckpt.diff/1`` (``DiffReport.to_json()``; strict JSON: undefined or
non-finite statistics are ``null``; non-finite meta values are the strings ``"Infinity"``,
``"-Infinity"``, ``"NaN"``)::

    {
      "schema": "nanochat-ckpt.diff/1",
      "a": SIDE, "b": SIDE,
      "bytes_total": int, "elapsed_s": float, "chunk_elems": int,
      "stats_over": "finite_pairs",
      "overall": GROUP, "layers": [GROUP], "kinds": [GROUP],
      "tensors": [TENSOR],                       # common names, in A's order
      "only_a": [{"name": str, "shape": [int], "dtype": str}],
      "only_b": [{"name": str, "shape": [int], "dtype": str}],
      "changed": [{"name": str, "shape_a": [int], "shape_b": [int], "dtype_a": str,
                   "dtype_b": str, "shape_changed": bool, "dtype_changed": bool}],
      "meta_changes": [{"path": str, "a": any, "b": any}],   # null = absent or null
      "notes": [str]
    }
    SIDE   = {"label": str, "path": str, "step": int|null, "val_bpb": float|null,
              "mtime": float|null, "size": int|null, "n_tensors": int, "params": int,
              "orig_mod_prefix": bool}
    STATS  = {"numel": int, "finite_pairs": int, "nan_a": int, "inf_a": int, "nan_b": int,
              "inf_b": int, "norm_a": float, "norm_b": float, "norm_diff": float,
              "rel_change": float|null, "cosine": float|null, "max_abs_diff": float|null,
              "mean_abs_diff": float|null}
    TENSOR = STATS + {"name": str, "kind": str, "layer": int|null, "shape": [int],
                      "dtype_a": str, "dtype_b": str, "compared": bool, "note": str|null}
    GROUP  = STATS + {"name": str, "n_tensors": int}

Names are matched after stripping torch.compile's ``_orig_mod.`` prefix and reported stripped.
A tensor whose dtype changed but whose shape did not is both in ``changed`` and compared in
``tensors``; a shape change is only listed in ``changed``. Tensors of dtypes numpy cannot
convert (complex, float8) are listed in ``tensors`` with ``compared: false`` and a note.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from .layout import LEGACY_RE, MODEL_RE, Checkpoint
from .ptfile import CheckpointError, TensorInfo, model_of, read_archive, strip_prefix
from .readers import Reader
from .storage import LOCAL, Storage
from .summary import Meta, MetaError, kind_of, layer_of, read_meta

SCHEMA = "nanochat-ckpt.diff/1"
DEFAULT_CHUNK_ELEMS = 1 << 18  # 256K elements: 1 MB float32 buffers
READAHEAD_BYTES = 32 << 20  # ask the kernel to prefetch this far ahead (cold files)
PROGRESS_CALLS = 512  # about this many progress calls per diff, plus the final one

ProgressFn = Callable[[int, int], None]


class CancelLike(Protocol):
    def is_set(self) -> bool: ...


class DiffCancelled(Exception):
    """Raised by :func:`diff` when its ``cancel`` event is set; no report is produced."""

    def __init__(self, done_bytes: int, total_bytes: int) -> None:
        self.done_bytes = done_bytes
        self.total_bytes = total_bytes
        super().__init__(f"diff cancelled after {done_bytes} of {total_bytes} bytes")


# ---------------------------------------------------------------------------------------------
# report


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


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
            return _finite_or_none(self.norm_diff / self.norm_a)
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
        f = _finite_or_none
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
class SideInfo:
    """What is known of one side: where it is, its step, val_bpb, mtime and size."""

    label: str
    path: Path
    step: int | None = None
    val_bpb: float | None = None
    mtime: float | None = None
    size: int | None = None
    n_tensors: int = 0
    params: int = 0
    orig_mod_prefix: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "path": str(self.path), "step": self.step,
                "val_bpb": _finite_or_none(self.val_bpb), "mtime": self.mtime,
                "size": self.size, "n_tensors": self.n_tensors, "params": self.params,
                "orig_mod_prefix": self.orig_mod_prefix}


@dataclass
class DiffReport:
    a: SideInfo
    b: SideInfo
    tensors: list[TensorDiff] = field(default_factory=list)
    only_a: list[KeyInfo] = field(default_factory=list)
    only_b: list[KeyInfo] = field(default_factory=list)
    changed: list[KeyChange] = field(default_factory=list)
    layers: list[GroupDiff] = field(default_factory=list)
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


# ---------------------------------------------------------------------------------------------
# opening a side

_RAW_DTYPES: dict[str, str] = {
    "float32": "f4", "float64": "f8", "float16": "f2", "bfloat16": "u2",
    "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1",
    "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "?",
}
_WIDE = {"float64", "int32", "int64", "uint32", "uint64"}  # compared in float64


class _Side:
    """One checkpoint file: its tensors by stripped name, its meta, and a descriptor to read
    from (mmap'd too, only when a strided tensor needs it)."""

    def __init__(self, src: Checkpoint | str | os.PathLike[str]) -> None:
        self.meta: Meta | None = None
        self.meta_error: str | None = None
        self.notes: list[str] = []
        ck = src if isinstance(src, Checkpoint) else None
        self.storage: Storage = ck.storage if ck is not None else LOCAL
        if ck is not None:
            if ck.weights is None:
                raise CheckpointError(f"{ck.key}: no model file for this step")
            path = ck.weights.path
            label = ck.key
            if ck.meta is not None:
                try:
                    self.meta = read_meta(ck.meta, self.storage)
                except MetaError as e:
                    self.meta_error = e.reason
        else:
            path = Path(src)  # type: ignore[arg-type]
            label = str(path)
        self.path = path
        self.arc = read_archive(path, storage=self.storage,
                                size=ck.weights.size if ck is not None and ck.weights else None)
        self.model = model_of(self.arc)
        self.little = self.arc.byteorder != "big"
        self.by_name: dict[str, TensorInfo] = {}
        for t in self.model.tensors:
            name = strip_prefix(t.name)
            if name in self.by_name:
                self.notes.append(f"{label}: duplicate key {name} after stripping _orig_mod. "
                                  f"({t.name} ignored)")
                continue
            self.by_name[name] = t
        step = ck.step if ck is not None else None
        if step is None and self.meta is not None:
            step = self.meta.step
        if step is None:
            step = self.model.step
        if step is None and (m := MODEL_RE.fullmatch(path.name) or LEGACY_RE.fullmatch(path.name)):
            step = int(m.group(1))
        if ck is not None:
            mtime: float | None = ck.mtime
        else:
            try:
                mtime = self.storage.stat(path)[1]
            except OSError:
                mtime = None
        self.info = SideInfo(label, path, step, self.meta.val_bpb if self.meta else None, mtime,
                             self.arc.file_size, len(self.model.tensors), self.model.params,
                             self.model.orig_mod_prefix)
        self.reader: Reader | None = None
        self._offsets: dict[str, int] = {}

    # -- reading ---------------------------------------------------------------------------

    def open(self) -> None:
        try:
            self.reader = self.storage.open_reader(self.path, self.arc.file_size)
        except OSError as e:
            raise CheckpointError(f"cannot open ({e.strerror or e})", self.path) from None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def read_into(self, dst: Any, offset: int) -> None:
        """Fill the writable contiguous buffer ``dst`` from file byte ``offset``."""
        assert self.reader is not None
        try:
            self.reader.read_into(dst, offset)
        except OSError as e:
            raise CheckpointError(f"read failed ({e.strerror or e})", self.path) from None

    def window(self, start: int, end: int) -> tuple[Any, int]:
        """The bytes ``[start, end)`` of the file as (buffer, file offset of the buffer)."""
        assert self.reader is not None
        try:
            return self.reader.window(start, end)
        except OSError as e:
            raise CheckpointError(str(e.strerror or e), self.path) from None

    def will_need(self, offset: int, length: int) -> None:
        if self.reader is not None:
            self.reader.will_need(offset, length)

    def data_offset(self, key: str) -> int:
        """Byte offset of storage ``key``'s data, from its local zip header."""
        off = self._offsets.get(key)
        if off is not None:
            return off
        info = self.arc.storages[key]
        if info.compress_type != 0:
            raise CheckpointError(f"storage {key} is compressed: cannot stream it", self.path)
        header = bytearray(30)
        h = info.header_offset
        if h + 30 > self.arc.file_size:
            raise CheckpointError(f"bad local zip header for storage {key}", self.path)
        self.read_into(header, h)
        if header[:4] != b"PK\x03\x04":
            raise CheckpointError(f"bad local zip header for storage {key}", self.path)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        off = h + 30 + name_len + extra_len
        if off + info.file_size > self.arc.file_size:
            raise CheckpointError(
                f"storage {key} runs past the end of the file (truncated)", self.path)
        self._offsets[key] = off
        return off


# ---------------------------------------------------------------------------------------------
# the chunk kernel


class _Buffers:
    """Reused work buffers for one compute dtype: A, B, |B−A| and a vector of ones."""

    def __init__(self, np: Any, dtype: Any, n: int) -> None:
        self.a = np.empty(n, dtype)
        self.b = np.empty(n, dtype)
        self.d = np.empty(n, dtype)
        self.ones = np.ones(n, dtype)
        self.a32 = np.empty(n, np.float32) if dtype != np.float32 else None


class _Work:
    """Everything reused across chunks and tensors: raw byte buffers and compute buffers."""

    def __init__(self, np: Any, chunk: int) -> None:
        self.np = np
        self.chunk = chunk
        self.raw_a = np.empty(chunk * 8, np.uint8)  # room for a chunk of any itemsize
        self.raw_b = np.empty(chunk * 8, np.uint8)
        self._bufs: dict[str, _Buffers] = {}

    def buffers(self, wide: bool) -> _Buffers:
        key = "f8" if wide else "f4"
        buf = self._bufs.get(key)
        if buf is None:
            np = self.np
            buf = self._bufs[key] = _Buffers(np, np.float64 if wide else np.float32, self.chunk)
        return buf


class _Acc:
    """Per-tensor float64 accumulators."""

    __slots__ = ("aa", "bb", "dd", "sabs", "mx", "finite", "nan_a", "inf_a", "nan_b", "inf_b")

    def __init__(self) -> None:
        self.aa = self.bb = self.dd = self.sabs = self.mx = 0.0
        self.finite = self.nan_a = self.inf_a = self.nan_b = self.inf_b = 0


def _chunk(np: Any, a: Any, b: Any, buf: _Buffers, acc: _Acc) -> None:
    """Fold one chunk of paired values (contiguous 1-D, same compute dtype) into ``acc``."""
    n = a.shape[0]
    aa = float(np.dot(a, a))
    bb = float(np.dot(b, b))
    if math.isfinite(aa) and math.isfinite(bb):
        d = buf.d[:n]
        np.subtract(b, a, out=d)
        np.abs(d, out=d)
        dd = float(np.dot(d, d))
        if math.isfinite(dd):
            acc.aa += aa
            acc.bb += bb
            acc.dd += dd
            acc.sabs += float(np.dot(d, buf.ones[:n]))
            mx = float(d.max())
            if mx > acc.mx:
                acc.mx = mx
            acc.finite += n
            return
    _chunk_nonfinite(np, a, b, acc)


def _chunk_nonfinite(np: Any, a: Any, b: Any, acc: _Acc) -> None:
    """Slow path (NaN/Inf present, or float32 overflow): count, then float64 on finite pairs."""
    fa = np.isfinite(a)
    fb = np.isfinite(b)
    acc.nan_a += int(np.count_nonzero(np.isnan(a)))
    acc.nan_b += int(np.count_nonzero(np.isnan(b)))
    acc.inf_a += int(np.count_nonzero(np.isinf(a)))
    acc.inf_b += int(np.count_nonzero(np.isinf(b)))
    m = fa & fb
    a64 = a[m].astype(np.float64)
    b64 = b[m].astype(np.float64)
    d64 = np.abs(b64 - a64)
    acc.aa += float(np.dot(a64, a64))
    acc.bb += float(np.dot(b64, b64))
    acc.dd += float(np.dot(d64, d64))
    acc.sabs += float(d64.sum())
    if d64.size:
        acc.mx = max(acc.mx, float(d64.max()))
    acc.finite += int(d64.size)


def _nd_blocks(shape: tuple[int, ...], chunk: int) -> Iterator[tuple[Any, ...]]:
    """Index tuples covering ``shape`` in C order, each selecting at most ~``chunk`` elements
    (whole rows when a row fits, else recursing into the row)."""
    if not shape:
        yield ()
        return
    inner = 1
    for s in shape[1:]:
        inner *= s
    if inner == 0 or shape[0] == 0:
        return
    if inner <= chunk:
        rows = max(1, chunk // inner)
        for i in range(0, shape[0], rows):
            yield (slice(i, min(i + rows, shape[0])),)
    else:
        for i in range(shape[0]):
            for sub in _nd_blocks(shape[1:], chunk):
                yield (i, *sub)


class _Reader:
    """Turns one side's raw values into a compute-dtype array."""

    def __init__(self, np: Any, t: TensorInfo, side: _Side, compute: Any) -> None:
        self.np = np
        self.bf16 = t.dtype == "bfloat16"
        order = "<" if side.little else ">"
        self.raw_dtype = np.dtype(order + _RAW_DTYPES[t.dtype])
        self.direct = self.raw_dtype == np.dtype(compute)  # native, same dtype: no conversion
        self.compute = compute

    def load(self, raw: Any, out: Any, buf: _Buffers) -> Any:
        """``raw`` block (any shape) → values in ``out`` (1-D, raw.size long, compute dtype)."""
        np = self.np
        if self.direct and raw.ndim == 1 and raw.flags.c_contiguous:
            return raw
        n = raw.size
        dst = out[:n].reshape(raw.shape)
        if self.bf16:
            if self.compute == np.float32:
                np.left_shift(raw, 16, out=dst.view(np.uint32), dtype=np.uint32)
            else:
                tmp = buf.a32[:n].reshape(raw.shape)
                np.left_shift(raw, 16, out=tmp.view(np.uint32), dtype=np.uint32)
                np.copyto(dst, tmp)
        else:
            np.copyto(dst, raw, casting="unsafe")
        return out[:n]


class _Stream:
    """A contiguous tensor read chunk by chunk with pread, with kernel readahead hints."""

    def __init__(self, side: _Side, t: TensorInfo) -> None:
        self.side = side
        self.start = side.data_offset(t.storage_key) + t.storage_offset * t.itemsize
        self.end = self.start + t.nbytes
        self.advised = self.start

    def read(self, dst: Any, elem: int, itemsize: int) -> None:
        """Fill ``dst`` with the tensor's values from element ``elem`` on."""
        pos = self.start + elem * itemsize
        if self.advised < min(pos + READAHEAD_BYTES // 2, self.end):
            self.side.will_need(self.advised, min(READAHEAD_BYTES, self.end - self.advised))
            self.advised += READAHEAD_BYTES
        self.side.read_into(dst, pos)


class _Strided:
    """A tensor of any strides, viewed in the mmap'd file; its pages are dropped after use."""

    def __init__(self, np: Any, side: _Side, t: TensorInfo, raw_dtype: Any) -> None:
        self.start = side.data_offset(t.storage_key) + t.storage_offset * t.itemsize
        self.end = self.start + t.extent * t.itemsize
        buf, at = side.window(self.start, self.end)  # the mmap, or a remote side's bytes
        self.mm = buf
        flat = np.frombuffer(buf, dtype=raw_dtype, count=t.extent, offset=self.start - at)
        if t.is_contiguous:
            self.view = flat.reshape(t.shape)
        else:
            strides = tuple(s * t.itemsize for s in t.stride)
            self.view = np.lib.stride_tricks.as_strided(flat, shape=t.shape, strides=strides,
                                                        writeable=False)

    def finish(self) -> None:
        """Release the numpy view and drop the tensor's pages from this process."""
        self.view = None
        if isinstance(self.mm, mmap.mmap) and not self.mm.closed:
            page = mmap.PAGESIZE
            lo = self.start - self.start % page
            hi = min(len(self.mm), -(-self.end // page) * page)
            if hi > lo:
                self.mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class _Progress:
    def __init__(self, fn: ProgressFn | None, cancel: CancelLike | None, total: int) -> None:
        self.fn = fn
        self.cancel = cancel
        self.total = total
        self.done = 0
        self.reported = -1
        self.step = max(1, total // PROGRESS_CALLS)

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DiffCancelled(self.done, self.total)

    def add(self, nbytes: int) -> None:
        self.done += nbytes
        if self.fn is not None and self.done - max(self.reported, 0) >= self.step \
                and self.done < self.total:
            self.reported = self.done
            self.fn(self.done, self.total)

    def finish(self) -> None:
        if self.fn is not None and self.reported != self.total:
            self.reported = self.total
            self.fn(self.total, self.total)


_MASK_HI = 0xFFFF0000


def _compare(ta: TensorInfo, tb: TensorInfo, sa: _Side, sb: _Side, work: _Work,
             prog: _Progress) -> _Acc:
    """Stream one tensor pair through the kernel."""
    np = work.np
    wide = ta.dtype in _WIDE or tb.dtype in _WIDE
    buf = work.buffers(wide)
    compute = buf.a.dtype.type
    ra, rb = _Reader(np, ta, sa, compute), _Reader(np, tb, sb, compute)
    acc = _Acc()
    if ta.numel == 0:
        return acc
    chunk = work.chunk
    per_elem = ta.itemsize + tb.itemsize
    if ta.is_contiguous and tb.is_contiguous:
        wa, wb = _Stream(sa, ta), _Stream(sb, tb)
        n_total = ta.numel
        # order-independent sums: two bf16 sides are de-interleaved identically
        fast_bf16 = (ra.bf16 and rb.bf16 and not wide and sa.little and sb.little
                     and sys.byteorder == "little")
        ai, bi = buf.a.view(np.uint32), buf.b.view(np.uint32)
        for i in range(0, n_total, chunk):
            prog.check()
            n = min(chunk, n_total - i)
            if fast_bf16:
                xa = work.raw_a[:2 * n].view(np.uint16)
                xb = work.raw_b[:2 * n].view(np.uint16)
                wa.read(xa, i, 2)
                wb.read(xb, i, 2)
                ne = n & ~1
                h = ne // 2
                ua, ub = xa[:ne].view(np.uint32), xb[:ne].view(np.uint32)
                np.left_shift(ua, 16, out=ai[:h])
                np.bitwise_and(ua, _MASK_HI, out=ai[h:ne])
                np.left_shift(ub, 16, out=bi[:h])
                np.bitwise_and(ub, _MASK_HI, out=bi[h:ne])
                if n != ne:
                    np.left_shift(xa[ne:], 16, out=ai[ne:n], dtype=np.uint32)
                    np.left_shift(xb[ne:], 16, out=bi[ne:n], dtype=np.uint32)
                a, b = buf.a[:n], buf.b[:n]
            else:
                if ra.direct:
                    a = buf.a[:n]
                    wa.read(a, i, ta.itemsize)
                else:
                    xa = work.raw_a[:n * ta.itemsize].view(ra.raw_dtype)
                    wa.read(xa, i, ta.itemsize)
                    a = ra.load(xa, buf.a, buf)
                if rb.direct:
                    b = buf.b[:n]
                    wb.read(b, i, tb.itemsize)
                else:
                    xb = work.raw_b[:n * tb.itemsize].view(rb.raw_dtype)
                    wb.read(xb, i, tb.itemsize)
                    b = rb.load(xb, buf.b, buf)
            _chunk(np, a, b, buf, acc)
            prog.add(n * per_elem)
        return acc
    # at least one side has strides: row blocks of mmap'd views (nanochat never saves these)
    sta = _Strided(np, sa, ta, ra.raw_dtype)
    try:
        stb = _Strided(np, sb, tb, rb.raw_dtype)
        try:
            for idx in _nd_blocks(ta.shape, chunk):
                prog.check()
                xa, xb = sta.view[idx], stb.view[idx]
                _chunk(np, ra.load(xa, buf.a, buf), rb.load(xb, buf.b, buf), buf, acc)
                prog.add(xa.size * per_elem)
                del xa, xb
        finally:
            stb.finish()
    finally:
        sta.finish()
    return acc


# ---------------------------------------------------------------------------------------------
# meta


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj


def _same(x: Any, y: Any) -> bool:
    """Equal meta values: NaN equals NaN, and True is not 1."""
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    return bool(x == y)


def _meta_changes(sa: _Side, sb: _Side, notes: list[str]) -> list[MetaChange]:
    def sections(s: _Side) -> dict[str, Any] | None:
        if s.meta is not None:
            return {"step": s.info.step, "model_config": s.meta.model_config,
                    "user_config": s.meta.user_config, "metrics": s.meta.metrics}
        if s.model.config is not None:  # the older wrapper layout carries its config
            return {"step": s.info.step, "model_config": s.model.config}
        return None

    for s in (sa, sb):
        if s.meta_error:
            notes.append(f"{s.info.label}: meta unreadable ({s.meta_error})")
    ma, mb = sections(sa), sections(sb)
    if ma is None or mb is None:
        if sa.info.step != sb.info.step:
            return [MetaChange("step", sa.info.step, sb.info.step)]
        return []
    fa: dict[str, Any] = {}
    fb: dict[str, Any] = {}
    for sec in ("step", "model_config", "user_config", "metrics"):
        if sec in ma and sec in mb:
            _flatten(sec, ma[sec], fa)
            _flatten(sec, mb[sec], fb)
    keys = list(fa) + [k for k in fb if k not in fa]
    return [MetaChange(k, fa.get(k), fb.get(k)) for k in keys
            if not _same(fa.get(k), fb.get(k))]


# ---------------------------------------------------------------------------------------------
# entry point


def diff(a: Checkpoint | str | os.PathLike[str], b: Checkpoint | str | os.PathLike[str], *,
         progress: ProgressFn | None = None, cancel: CancelLike | None = None,
         chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> DiffReport:
    """Compare checkpoint (or model file) ``a`` to ``b``; see the module docstring.

    Raises :class:`CheckpointError` for unreadable files and :class:`DiffCancelled` when
    ``cancel`` is set before the end.
    """
    import numpy as np

    if chunk_elems < 2:
        raise ValueError("chunk_elems must be at least 2")
    chunk = chunk_elems & ~1  # even, for the bf16 de-interleave
    t0 = time.perf_counter()
    sa, sb = _Side(a), _Side(b)
    report = DiffReport(sa.info, sb.info, chunk_elems=chunk)
    report.notes += sa.notes + sb.notes
    if sa.info.orig_mod_prefix != sb.info.orig_mod_prefix:
        with_prefix = sa if sa.info.orig_mod_prefix else sb
        report.notes.append(f"{with_prefix.info.label} has torch.compile '_orig_mod.' keys; "
                            "names were matched without the prefix")
    pairs: list[tuple[str, TensorInfo, TensorInfo]] = []
    for name, ta in sa.by_name.items():
        tb = sb.by_name.get(name)
        if tb is None:
            report.only_a.append(KeyInfo(name, ta.shape, ta.dtype))
            continue
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            report.changed.append(KeyChange(name, ta.shape, tb.shape, ta.dtype, tb.dtype))
        if ta.shape == tb.shape:
            pairs.append((name, ta, tb))
    report.only_b = [KeyInfo(n, t.shape, t.dtype) for n, t in sb.by_name.items()
                     if n not in sa.by_name]
    supported = [p for p in pairs if p[1].dtype in _RAW_DTYPES and p[2].dtype in _RAW_DTYPES]
    total = sum(ta.nbytes + tb.nbytes for _, ta, tb in supported)
    report.bytes_total = total
    prog = _Progress(progress, cancel, total)
    prog.check()
    work = _Work(np, chunk)
    try:
        sa.open()
        sb.open()
        for name, ta, tb in pairs:
            prog.check()
            td = TensorDiff(name=name, kind=kind_of(name), layer=layer_of(name), shape=ta.shape,
                            dtype_a=ta.dtype, dtype_b=tb.dtype, numel=ta.numel)
            if ta.dtype not in _RAW_DTYPES or tb.dtype not in _RAW_DTYPES:
                td.compared = False
                td.note = f"not compared: no numpy conversion for {ta.dtype}/{tb.dtype}"
                report.tensors.append(td)
                continue
            with np.errstate(over="ignore", invalid="ignore"):  # handled: float64 slow path
                acc = _compare(ta, tb, sa, sb, work, prog)
            td.finite_pairs = acc.finite
            td.nan_a, td.inf_a, td.nan_b, td.inf_b = acc.nan_a, acc.inf_a, acc.nan_b, acc.inf_b
            td.sum_sq_a, td.sum_sq_b, td.sum_sq_diff = acc.aa, acc.bb, acc.dd
            td.sum_abs_diff, td.max_abs_diff = acc.sabs, acc.mx
            if td.nonfinite_pairs:
                td.note = f"{td.nonfinite_pairs} pairs with NaN/Inf left out of the statistics"
            report.tensors.append(td)
    finally:
        sa.close()
        sb.close()
    prog.finish()
    _roll_up(report)
    report.meta_changes = _meta_changes(sa, sb, report.notes)
    report.elapsed_s = time.perf_counter() - t0
    return report


def _roll_up(report: DiffReport) -> None:
    layers: dict[int, GroupDiff] = {}
    kinds: dict[str, GroupDiff] = {}
    overall = GroupDiff(name="overall")
    for t in report.tensors:
        if not t.compared:
            continue
        overall.include(t)
        kinds.setdefault(t.kind, GroupDiff(name=t.kind)).include(t)
        if t.layer is not None:
            layers.setdefault(t.layer, GroupDiff(name=f"transformer.h.{t.layer}")).include(t)
    report.overall = overall
    report.layers = [layers[i] for i in sorted(layers)]
    report.kinds = list(kinds.values())
