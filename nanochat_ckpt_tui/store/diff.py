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

Where it runs: tensor pairs are spread over the usable CPUs. Local files go to worker
processes (:mod:`.workers`; numpy's many short calls would pass the GIL back and forth between
threads), which reopen the files and stream whole pairs; remote files, and diffs under
``MIN_PROCESS_BYTES``, use threads of this process. One worker streams each pair front to
back, so the numbers are the same wherever and on how many workers it runs.

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
      "overall": GROUP, "layers": [GROUP], "others": [GROUP], "kinds": [GROUP],
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
import os
import sys
import threading
import time
from typing import Any

from . import workers as procs
from .diff_report import (
    DEFAULT_CHUNK_ELEMS,
    SCHEMA,
    DiffReport,
    GroupDiff,
    KeyChange,
    KeyInfo,
    MetaChange,
    SideInfo,
    TensorDiff,
)
from .layout import Checkpoint
from .ptfile import CheckpointError, TensorInfo
from .stream import (
    RAW_DTYPES,
    WIDE,
    Cancelled,
    CancelLike,
    ContiguousStream,
    Loader,
    Progress,
    ProgressFn,
    SharedSide,
    SideBytes,
    StridedView,
    TensorFile,
    nd_blocks,
)
from .summary import kind_of, layer_of
from .workers import WorkerPool, WorkersUnavailable

__all__ = ["SCHEMA", "DiffCancelled", "DiffReport", "GroupDiff", "KeyChange", "KeyInfo",
           "MetaChange", "SideInfo", "TensorDiff", "diff"]

MAX_WORKERS = 8  # workers comparing tensor pairs (each with ~20 MB of chunk buffers)


class DiffCancelled(Cancelled):
    """Raised by :func:`diff` when its ``cancel`` event is set; no report is produced."""

    def __init__(self, done_bytes: int, total_bytes: int) -> None:
        super().__init__(done_bytes, total_bytes)
        self.args = (f"diff cancelled after {done_bytes} of {total_bytes} bytes",)


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



_MASK_HI = 0xFFFF0000


def _stream_bf16(np: Any, wa: ContiguousStream, wb: ContiguousStream, n_total: int,
                 work: _Work, buf: _Buffers, prog: Any, acc: _Acc) -> None:
    """The hot path (nanochat saves bf16): both sides little-endian bf16, contiguous.

    Each chunk is read into one raw buffer and widened into float32 by two integer passes
    (even elements to the first half, odd to the second; both sides alike, and every sum is
    order-independent). The work is ordered so each array is used while it is still in the
    core's cache: A is read, widened and squared; then B; then B becomes |B−A| in place and is
    squared, summed and maxed. Three chunk-sized float32 buffers in all."""
    chunk = work.chunk
    raw = work.raw_a[:2 * chunk].view(np.uint16)
    a, b, ones = buf.a, buf.b, buf.ones
    ai, bi = a.view(np.uint32), b.view(np.uint32)
    dot, shl, band, sub, absolute = np.dot, np.left_shift, np.bitwise_and, np.subtract, np.abs
    isfinite = math.isfinite
    for i in range(0, n_total, chunk):
        prog.check()
        n = min(chunk, n_total - i)
        ne = n & ~1
        h = ne // 2
        x = raw[:n]
        u = x[:ne].view(np.uint32)
        av, bv = a[:n], b[:n]
        wa.read(x, i, 2)
        shl(u, 16, out=ai[:h])
        band(u, _MASK_HI, out=ai[h:ne])
        if n != ne:
            shl(x[ne:], 16, out=ai[ne:n], dtype=np.uint32)
        aa = float(dot(av, av))
        wb.read(x, i, 2)
        shl(u, 16, out=bi[:h])
        band(u, _MASK_HI, out=bi[h:ne])
        if n != ne:
            shl(x[ne:], 16, out=bi[ne:n], dtype=np.uint32)
        bb = float(dot(bv, bv))
        if isfinite(aa) and isfinite(bb):  # then |B−A| cannot overflow float32 either
            sub(bv, av, out=bv)
            absolute(bv, out=bv)
            acc.aa += aa
            acc.bb += bb
            acc.dd += float(dot(bv, bv))
            acc.sabs += float(dot(bv, ones[:n]))
            mx = float(bv.max())
            if mx > acc.mx:
                acc.mx = mx
            acc.finite += n
        else:
            _chunk_nonfinite(np, av, bv, acc)
        prog.add(4 * n)


def _read_chunk(stream: ContiguousStream, load: Loader, raw: Any, out: Any, scratch: Any,
                i: int, n: int, itemsize: int) -> Any:
    """Elements ``[i, i + n)`` of one side as compute values: read straight into ``out`` when
    no conversion is needed, else into ``raw`` and widened into ``out``."""
    if load.direct:
        stream.read(out[:n], i, itemsize)
        return out[:n]
    x = raw[:n * itemsize].view(load.raw_dtype)
    stream.read(x, i, itemsize)
    return load.load(x, out, scratch)


def _compare(ta: TensorInfo, tb: TensorInfo, sa: SideBytes, sb: SideBytes, work: _Work,
             prog: Any) -> _Acc:
    """Stream one tensor pair through the kernel."""
    np = work.np
    wide = ta.dtype in WIDE or tb.dtype in WIDE
    buf = work.buffers(wide)
    compute = buf.a.dtype.type
    ra, rb = Loader(np, ta, sa, compute), Loader(np, tb, sb, compute)
    acc = _Acc()
    if ta.numel == 0:
        return acc
    chunk = work.chunk
    per_elem = ta.itemsize + tb.itemsize
    if ta.is_contiguous and tb.is_contiguous:
        wa, wb = ContiguousStream(sa, ta), ContiguousStream(sb, tb)
        n_total = ta.numel
        if (ra.bf16 and rb.bf16 and not wide and sa.little and sb.little
                and sys.byteorder == "little"):
            _stream_bf16(np, wa, wb, ta.numel, work, buf, prog, acc)
            return acc
        for i in range(0, n_total, chunk):
            prog.check()
            n = min(chunk, n_total - i)
            a = _read_chunk(wa, ra, work.raw_a, buf.a, buf.a32, i, n, ta.itemsize)
            b = _read_chunk(wb, rb, work.raw_b, buf.b, buf.a32, i, n, tb.itemsize)
            _chunk(np, a, b, buf, acc)
            prog.add(n * per_elem)
        return acc
    # at least one side has strides: row blocks of mmap'd views (nanochat never saves these)
    sta = StridedView(np, sa, ta, ra.raw_dtype)
    try:
        stb = StridedView(np, sb, tb, rb.raw_dtype)
        try:
            for idx in nd_blocks(ta.shape, chunk):
                prog.check()
                xa, xb = sta.view[idx], stb.view[idx]
                _chunk(np, ra.load(xa, buf.a, buf.a32), rb.load(xb, buf.b, buf.a32), buf, acc)
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


def _meta_changes(sa: TensorFile, sb: TensorFile, notes: list[str]) -> list[MetaChange]:
    def sections(s: TensorFile) -> dict[str, Any] | None:
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
         chunk_elems: int | None = None, workers: int | None = None,
         processes: bool | None = None) -> DiffReport:
    """Compare checkpoint (or model file) ``a`` to ``b``; see the module docstring.

    Tensor pairs are compared by ``workers`` worker processes at once (default: the usable
    CPUs, at most ``MAX_WORKERS``; :mod:`.workers`) when both files can be reopened by another
    process (local files) and ``processes`` is true, or by default when there are at least
    ``MIN_PROCESS_BYTES`` to read. Otherwise in this process: on one thread, or on
    ``workers`` threads when ``workers`` is given (numpy hands the GIL over at every call, so
    two threads on cache-sized chunks ran at 0.76× of one). Each pair is streamed front to back
    by one worker in chunks of ``chunk_elems`` (default ``DEFAULT_CHUNK_ELEMS``), so the
    numbers do not depend on how many workers there are, nor on where they run.
    Raises :class:`CheckpointError` for unreadable files and :class:`DiffCancelled` when
    ``cancel`` is set before the end.
    """
    import numpy as np

    if chunk_elems is not None and chunk_elems < 2:
        raise ValueError("chunk_elems must be at least 2")
    t0 = time.perf_counter()
    sa, sb = TensorFile(a), TensorFile(b)
    report = DiffReport(sa.info, sb.info)
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
    supported = [p for p in pairs if p[1].dtype in RAW_DTYPES and p[2].dtype in RAW_DTYPES]
    total = sum(ta.nbytes + tb.nbytes for _, ta, tb in supported)
    report.bytes_total = total
    prog = Progress(progress, cancel, total, DiffCancelled)
    prog.check()
    try:
        sa.open()
        sb.open()
        n = _threads(workers, len(supported)) if sa.concurrent and sb.concurrent else 1
        chunk = report.chunk_elems = (chunk_elems or DEFAULT_CHUNK_ELEMS) & ~1  # (even: bf16)
        accs = None
        if n > 1 and (processes if processes is not None else total >= procs.MIN_PROCESS_BYTES):
            jobs = _shared_jobs(sa, sb, supported)
            if jobs is not None:
                pool = WorkerPool(n)
                try:
                    accs = pool.map(_pair_job, [(*j, chunk) for j in jobs],
                                    [ta.nbytes + tb.nbytes for _, ta, tb in supported], prog)
                except WorkersUnavailable:  # here, then
                    pass
                finally:
                    pool.close()
        if accs is None:
            accs = _in_threads(np, supported, sa, sb, chunk, n if workers else 1, prog)
    finally:
        sa.close()
        sb.close()
    by_name = {p[0]: acc for p, acc in zip(supported, accs, strict=True)}
    report.tensors = [_tensor_diff(name, ta, tb, by_name.get(name)) for name, ta, tb in pairs]
    prog.finish()
    _roll_up(report)
    report.meta_changes = _meta_changes(sa, sb, report.notes)
    report.elapsed_s = time.perf_counter() - t0
    return report


def _tensor_diff(name: str, ta: TensorInfo, tb: TensorInfo, acc: _Acc | None) -> TensorDiff:
    td = TensorDiff(name=name, kind=kind_of(name), layer=layer_of(name), shape=ta.shape,
                    dtype_a=ta.dtype, dtype_b=tb.dtype, numel=ta.numel)
    if acc is None:
        td.compared = False
        td.note = f"not compared: no numpy conversion for {ta.dtype}/{tb.dtype}"
        return td
    td.finite_pairs = acc.finite
    td.nan_a, td.inf_a, td.nan_b, td.inf_b = acc.nan_a, acc.inf_a, acc.nan_b, acc.inf_b
    td.sum_sq_a, td.sum_sq_b, td.sum_sq_diff = acc.aa, acc.bb, acc.dd
    td.sum_abs_diff, td.max_abs_diff = acc.sabs, acc.mx
    if td.nonfinite_pairs:
        td.note = f"{td.nonfinite_pairs} pairs with NaN/Inf left out of the statistics"
    return td


def _compare_pair(np: Any, ta: TensorInfo, tb: TensorInfo, sa: SideBytes, sb: SideBytes,
                  work: _Work, prog: Any) -> _Acc:
    prog.check()
    with np.errstate(over="ignore", invalid="ignore"):  # handled: float64 slow path
        return _compare(ta, tb, sa, sb, work, prog)


def _in_threads(np: Any, pairs: list[tuple[str, TensorInfo, TensorInfo]], sa: SideBytes,
                sb: SideBytes, chunk: int, n: int, prog: Progress) -> list[_Acc]:
    local = threading.local()

    def one(pair: tuple[str, TensorInfo, TensorInfo]) -> _Acc:
        work = getattr(local, "work", None)
        if work is None:
            work = local.work = _Work(np, chunk)
        return _compare_pair(np, pair[1], pair[2], sa, sb, work, prog)

    return _map(one, pairs, n, key=lambda p: -(p[1].nbytes + p[2].nbytes))


def _shared_jobs(sa: TensorFile, sb: TensorFile, pairs: list[tuple[str, TensorInfo, TensorInfo]]
                 ) -> list[tuple[Any, ...]] | None:
    """Each pair as a job for a worker process (the data offsets looked up here), or None
    when a side's reader cannot be reopened by another process."""
    jobs = []
    for _, ta, tb in pairs:
        xa, xb = sa.shared([ta.storage_key]), sb.shared([tb.storage_key])
        if xa is None or xb is None:
            return None
        jobs.append((ta, tb, xa, xb))
    return jobs


def _pair_job(job: tuple[Any, ...], prog: Any) -> _Acc:
    """One pair, in a worker process."""
    import numpy as np

    ta, tb, xa, xb, chunk = job
    sa, sb = _reopened(xa), _reopened(xb)
    work = procs.cached(("diff", chunk), lambda: _Work(np, chunk))
    return _compare_pair(np, ta, tb, sa, sb, work, prog)


def _reopened(shared: SharedSide) -> SideBytes:
    """The side of a job, its file reopened by this worker: a file truncated or replaced since
    the parent opened it is the same error the parent's own read would give."""
    try:
        reader = procs.reader_for(shared.opener)
    except OSError as e:
        raise CheckpointError(f"read failed ({e.strerror or e})", shared.path) from None
    return shared.side(reader)


def _roll_up(report: DiffReport) -> None:
    layers: dict[int, GroupDiff] = {}
    others: dict[str, GroupDiff] = {}
    kinds: dict[str, GroupDiff] = {}
    overall = GroupDiff(name="overall")
    for t in report.tensors:
        if not t.compared:
            continue
        overall.include(t)
        kinds.setdefault(t.kind, GroupDiff(name=t.kind)).include(t)
        if t.layer is not None:
            layers.setdefault(t.layer, GroupDiff(name=f"transformer.h.{t.layer}")).include(t)
        else:
            others.setdefault(t.kind, GroupDiff(name=t.kind)).include(t)
    report.overall = overall
    report.layers = [layers[i] for i in sorted(layers)]
    report.others = list(others.values())
    report.kinds = list(kinds.values())


def _threads(workers: int | None, items: int) -> int:
    """How many threads compare pairs: ``workers``, or the usable CPUs (at most
    ``MAX_WORKERS``); never more than there are pairs."""
    n = workers or min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else os.cpu_count() or 1, MAX_WORKERS)
    return max(1, min(n, items))


def _map(fn: Any, items: list[Any], n: int, key: Any) -> list[Any]:
    """``[fn(x) for x in items]``, by ``n`` threads (biggest items first, so a big tensor does
    not start last); results in the items' order."""
    if n <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    order = sorted(range(len(items)), key=lambda i: key(items[i]))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n, thread_name_prefix="diff") as pool:
        futures = {i: pool.submit(fn, items[i]) for i in order}
        try:
            return [futures[i].result() for i in range(len(items))]
        except BaseException:
            for f in futures.values():
                f.cancel()
            raise
