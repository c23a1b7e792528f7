"""Verify checkpoints: every byte against its zip CRC, every tensor's health, the meta against
the tensors. One pass over each file, in bounded memory, through the checkpoint's storage.

For each zip file of a step (model, optimizer shards, older ``step_N.pt``):

- **integrity**: the central directory and every local header are read; records that overlap,
  run past the end, or that a tensor of the pickle names but the zip lacks are findings; every
  record's bytes are streamed once (``chunk_bytes`` at a time) through a CRC-32 (zlib-ng's,
  about ten times zlib's speed here, or zlib's when zlib-ng is not installed) and
  compared with the CRC the zip recorded. A record saved without one (torch's
  ``compute_crc32 = False`` writes 0) is "no CRC recorded", never "damaged".
- **health**, in the same pass: per tensor NaN / +Inf / -Inf counts, all-zero, L2 norm, abs max,
  mean and std (per-chunk sums accumulated in float64), optimizer state included.

Per step: the meta parses to an object whose ``model_config`` is a mapping; the file name's
step equals the meta's; ``model_config`` matches the tensors (``n_layer`` vs
``transformer.h.*``, ``n_embd`` vs the embedding width, ``vocab_size`` vs the rows of
``wte``/``lm_head``, which nanochat pads to a multiple of 64); every optimizer rank the tag's
other steps have is present.

Records are spread over the usable CPUs: in worker processes (:mod:`.workers`) for local
files, in threads for remote ones and checks under ``MIN_PROCESS_BYTES``; one worker streams
each record, so the results are the same wherever it runs.

The verdict: ``damaged`` (bytes are not what was written), ``unhealthy`` (bytes as written, but
NaN/Inf or inconsistent: nanochat would load garbage or fail), ``good``, or ``unchecked``
(being written, or a file that changed while it was read). Per-file results are cached by file version
(:mod:`.check_cache`), so a re-check reads only files that changed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import workers as procs
from . import zipdir
from .check_cache import CheckCache, default_cache
from .check_kernel import HealthKernel
from .check_report import (
    DAMAGED,
    UNHEALTHY,
    CheckReport,
    FileCheck,
    Finding,
    TensorHealth,
)
from .layout import Checkpoint, FileEntry, FileKind
from .ptfile import CheckpointError, TensorInfo, read_archive, tensors_and_problems
from .step_findings import LAYER_RE, meta_findings, step_findings
from .storage import Storage
from .stream import RAW_DTYPES, Cancelled, CancelLike, Progress, ProgressFn
from .workers import WorkerPool, WorkersUnavailable, usable_cpus

RESULT_VERSION = 1  # of the per-file documents in the cache
CHUNK_BYTES = 256 << 10  # read and hash this much at a time (a multiple of every itemsize):
# a chunk, its widened values and its bits (1 MB) stay in a core's 2 MB cache. Measured on the
# 1.12 GB bench file, min of 5: 0.31 s in two workers, 0.54 s on one core (512 KB: 0.34 / 0.61)
MAX_WORKERS = 8  # workers streaming records (8 × ~8 MB of buffers at most)


class CheckCancelled(Cancelled):
    """Raised by :func:`check` when its cancel event is set."""


# --------------------------------------------------------------------------------------------
# one zip file


class _Pool:
    """Where records are streamed: threads of this process, each with its own kernel, or
    worker processes (:mod:`.workers`) for files another process can read."""

    def __init__(self, chunk_bytes: int, workers: int | None, processes: bool) -> None:
        self.chunk_bytes = chunk_bytes
        self.workers = max(1, workers or min(usable_cpus(), MAX_WORKERS))
        self._local = threading.local()
        self._exec: Any = None
        self.procs = WorkerPool(self.workers) if processes and self.workers > 1 else None

    def kernel(self) -> HealthKernel:
        k = getattr(self._local, "kernel", None)
        if k is None:
            import numpy as np

            k = self._local.kernel = HealthKernel(np, self.chunk_bytes)
        return k

    def stream(self, jobs: list[_Job], reader: Any, prog: Progress) -> list[_Streamed]:
        """Each record's CRC and tensor health, in the records' order."""
        opener = reader.reopener() if self.procs is not None and len(jobs) > 1 else None
        if opener is not None:
            assert self.procs is not None
            try:
                return self.procs.map(_stream_in_worker, [(opener, j) for j in jobs],
                                      [j.size for j in jobs], prog)
            except WorkersUnavailable:  # threads, from now on
                self.procs = None
        return self._map(lambda j: _stream_record(j, reader, self.kernel(), prog), jobs,
                         parallel=getattr(reader, "concurrent", False))

    def _map(self, fn: Callable[[Any], Any], items: list[_Job], parallel: bool) -> list[Any]:
        if not parallel or self.workers == 1 or len(items) < 2:
            return [fn(x) for x in items]
        if self._exec is None:
            from concurrent.futures import ThreadPoolExecutor

            self._exec = ThreadPoolExecutor(self.workers, thread_name_prefix="check")
        # biggest first, so one large record does not start last
        order = sorted(range(len(items)), key=lambda i: -items[i].size)
        futures = {i: self._exec.submit(fn, items[i]) for i in order}
        try:
            return [futures[i].result() for i in range(len(items))]
        except BaseException:
            for f in futures.values():
                f.cancel()
            raise

    def close(self) -> None:
        if self._exec is not None:
            self._exec.shutdown(wait=True)
            self._exec = None
        if self.procs is not None:
            self.procs.close()


@dataclass
class _Record:
    member: zipdir.Member
    start: int  # data offset
    tensors: list[TensorInfo]


def _check_zip(storage: Storage, entry: FileEntry, pool: _Pool, prog: Progress,
               do_health: bool) -> FileCheck:
    fc = FileCheck(entry.name, entry.kind.value, entry.size)
    name = entry.name

    def damaged(msg: str, tensor: str | None = None) -> None:
        fc.findings.append(Finding(DAMAGED, name, msg, tensor))

    try:
        f = storage.open(entry.path, entry.size)
    except OSError as e:
        damaged(f"cannot open ({e.strerror or e})")
        return fc
    with f:
        try:
            src = zipdir.Source(fileobj=f)
            if src.size == 0:
                damaged("empty file (0 bytes)")
                return fc
            members = zipdir.read_directory(src)
        except (zipdir.ZipError, OSError, ValueError) as e:
            damaged(f"not a readable zip: truncated or overwritten ({e})")
            return fc
        fc.records = len(members)
        try:
            arc = read_archive(entry.path, fileobj=f)
            tensors, missing = tensors_and_problems(arc, arc.root)
            little = arc.byteorder != "big"
        except CheckpointError as e:
            damaged(f"unreadable: {e.reason}")
            tensors, missing, little, arc = [], [], True, None
        for tname, problem in missing:
            damaged(problem, tname)
        by_key: dict[str, list[TensorInfo]] = {}
        for t in tensors:
            by_key.setdefault(t.storage_key, []).append(t)
        prefix = arc.prefix + "/data/" if arc is not None else None
        records: list[_Record] = []
        for m in sorted(members.values(), key=lambda m: m.header_offset):
            key = m.filename[len(prefix):] if prefix and m.filename.startswith(prefix) else None
            owners = by_key.get(key, []) if key is not None else []
            try:
                start = zipdir.data_offset(src, m)
            except (zipdir.ZipError, OSError) as e:
                damaged(f"record {m.filename}: {e}", owners[0].name if owners else None)
                continue
            records.append(_Record(m, start, owners))
        for a, b in zip(records, records[1:], strict=False):
            if a.start + a.member.compress_size > b.member.header_offset:
                owners = a.tensors or b.tensors
                damaged(f"records {a.member.filename} and {b.member.filename} overlap",
                        owners[0].name if owners else None)
    strip = "model." if entry.kind is FileKind.LEGACY else ""  # the wrapper's state dict
    health = {id(t): TensorHealth(t.name.removeprefix(strip), t.dtype, t.shape) for t in tensors}
    try:
        reader = storage.open_reader(entry.path, src.size)
    except OSError as e:
        damaged(f"cannot read ({e.strerror or e})")
        return fc
    crcs = {"ok": 0, "mismatch": 0, "none": 0}
    strided = [(t, rec) for rec in records for t in rec.tensors if not t.is_contiguous]
    owners = [[t for t in rec.tensors if t.is_contiguous and t.dtype in RAW_DTYPES]
              if do_health and rec.member.compress_type == zipdir.STORED else []
              for rec in records]
    jobs = [_Job(rec.start, rec.member.compress_size,
                 [(t.storage_offset * t.itemsize, t.storage_offset * t.itemsize + t.nbytes,
                   t.dtype) for t in ts], little, pool.chunk_bytes)
            for rec, ts in zip(records, owners, strict=True)]
    try:
        with reader:
            results = pool.stream(jobs, reader, prog)
            for rec, ts, (crc, n, sums) in zip(records, owners, results, strict=True):
                for t, x in zip(ts, sums, strict=True):
                    health[id(t)].set_sums(x)
                fc.bytes_read += n
                m = rec.member
                if m.crc == 0 and m.compress_size > 0 and crc != 0:
                    crcs["none"] += 1
                elif crc != m.crc:
                    crcs["mismatch"] += 1
                    damaged(f"CRC mismatch in record {m.filename} (recorded {m.crc:08x}, read "
                            f"{crc:08x}): the bytes changed after they were written",
                            rec.tensors[0].name if rec.tensors else None)
                else:
                    crcs["ok"] += 1
            for t, rec in strided if do_health else []:
                _strided_health(t, rec, reader, pool.kernel(), health[id(t)], little)
    except OSError as e:
        damaged(f"read failed ({e.strerror or e})")
    fc.tensors = [health[id(t)] for t in tensors if t.dtype in RAW_DTYPES]
    fc.crc = ("mismatch" if crcs["mismatch"] else "none recorded" if crcs["none"] and
              not crcs["ok"] else "ok" if crcs["ok"] else "n/a")
    if crcs["none"]:
        fc.findings.append(Finding("note", name, f"no CRC recorded for {crcs['none']} of "
                                   f"{len(records)} records (saved without CRCs): bytes not "
                                   "verified, tensors checked"))
    for t in fc.tensors:
        _tensor_findings(fc, t)
    return fc


class _Job:
    """One record to stream (picklable, for a worker process): where its bytes are, and the
    byte spans of the contiguous tensors whose health is taken on the way."""

    __slots__ = ("start", "size", "spans", "little", "chunk_bytes")

    def __init__(self, start: int, size: int, spans: list[tuple[int, int, str]], little: bool,
                 chunk_bytes: int) -> None:
        self.start, self.size, self.spans = start, size, spans
        self.little, self.chunk_bytes = little, chunk_bytes

    def __getstate__(self) -> tuple[Any, ...]:
        return self.start, self.size, self.spans, self.little, self.chunk_bytes

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.start, self.size, self.spans, self.little, self.chunk_bytes = state


_Streamed = tuple[int, int, list[tuple[Any, ...]]]  # CRC, bytes, each span's health sums


def _stream_record(job: _Job, reader: Any, kernel: HealthKernel, prog: Any) -> _Streamed:
    """Read one record once: its CRC-32 and the health sums of each span (a tensor lives in
    one record, so a record's tensors are never shared between workers)."""
    size = job.size
    healths = [TensorHealth("", dtype, ()) for _, _, dtype in job.spans]
    spans = [(lo, hi, dtype, h) for (lo, hi, dtype), h in zip(job.spans, healths, strict=True)]
    crc = 0
    pos = 0
    crc32 = kernel.crc32
    little = job.little
    with memoryview(kernel.buf) as mv:
        while pos < size:
            prog.check()
            n = min(len(mv), size - pos)
            with mv[:n] as view:
                reader.read_into(view, job.start + pos)
                crc = crc32(view, crc)
                for lo, hi, dtype, h in spans:
                    a, b = max(lo, pos), min(hi, pos + n)
                    if a < b:
                        with view[a - pos:b - pos] as part:
                            kernel.add(h, part, dtype, little)
            pos += n
            prog.add(n)
    return crc, size, [h.sums() for h in healths]


def _stream_in_worker(item: tuple[Any, _Job], prog: Any) -> _Streamed:
    """One record, in a worker process (reader and kernel kept for the worker's life)."""
    opener, job = item
    reader = procs.reader_for(opener)
    kernel = procs.cached(("check", job.chunk_bytes), lambda: _new_kernel(job.chunk_bytes))
    return _stream_record(job, reader, kernel, prog)


def _new_kernel(chunk_bytes: int) -> HealthKernel:
    import numpy as np

    return HealthKernel(np, chunk_bytes)


def _strided_health(t: TensorInfo, rec: _Record, reader: Any, kernel: HealthKernel,
                    h: TensorHealth, little: bool) -> None:
    np = kernel.np
    start = rec.start + t.storage_offset * t.itemsize
    buf, at = reader.window(start, start + t.extent * t.itemsize)
    code = ("<" if little else ">") + RAW_DTYPES[t.dtype]
    flat = np.frombuffer(buf, dtype=code, count=t.extent, offset=start - at)
    view = np.lib.stride_tricks.as_strided(flat, shape=t.shape,
                                           strides=tuple(s * t.itemsize for s in t.stride),
                                           writeable=False)
    for row in view.reshape(-1, t.shape[-1]) if view.ndim > 1 else [view]:
        kernel.add(h, np.ascontiguousarray(row).tobytes(), t.dtype, little)


def _tensor_findings(fc: FileCheck, t: TensorHealth) -> None:
    if t.nonfinite:
        parts = [f"{n} {w}" for n, w in ((t.nan, "NaN"), (t.posinf, "+Inf"), (t.neginf, "-Inf"))
                 if n]
        fc.findings.append(Finding(UNHEALTHY, fc.name, f"{', '.join(parts)} of {t.numel:,} "
                                   "values", t.name))


def _zip_entries(ck: Checkpoint) -> list[FileEntry]:
    return [f for f in ck.files if f.kind in (FileKind.MODEL, FileKind.OPTIM, FileKind.LEGACY)]


def check_bytes(checkpoints: Iterable[Checkpoint]) -> int:
    """Bytes a full check of these checkpoints reads (cache misses read only theirs)."""
    return sum(f.size for ck in checkpoints for f in _zip_entries(ck))


def check(checkpoints: Iterable[Checkpoint], *, progress: ProgressFn | None = None,
          cancel: CancelLike | None = None, cache: CheckCache | None = None,
          use_cache: bool = True, chunk_bytes: int = CHUNK_BYTES,
          health: bool = True, workers: int | None = None,
          processes: bool | None = None) -> list[CheckReport]:
    """Check each checkpoint (see the module doc); one :class:`CheckReport` each, in order.

    ``progress(done, total)`` counts bytes read; ``cancel`` raises :class:`CheckCancelled`.
    Files whose cached result matches their current version are not read. The records of a
    file are streamed by ``workers`` at once (default: the usable CPUs, at most
    ``MAX_WORKERS``) where its storage reads concurrently: in worker processes
    (:mod:`.workers`) when ``processes`` is true, or by default when there are at least
    ``MIN_PROCESS_BYTES`` to read; else in threads. Each record is streamed front to back by
    one worker, so the results do not depend on how many there are, nor on where they run.
    """
    cks = list(checkpoints)
    cache = cache if cache is not None else (default_cache() if use_cache else None)
    plans: list[tuple[Checkpoint, list[tuple[FileEntry, tuple[Any, ...] | None,
                                               FileCheck | None]]]] = []
    total = 0
    for ck in cks:
        files = []
        for entry in _zip_entries(ck):
            key, hit = _cached(ck.storage, entry, cache)
            files.append((entry, key, hit))
            if hit is None:
                total += entry.size
        plans.append((ck, files))
    prog = Progress(progress, cancel, total, CheckCancelled)
    prog.check()
    pool = _Pool(chunk_bytes, workers,
                 processes if processes is not None else total >= procs.MIN_PROCESS_BYTES)
    reports = []
    for ck, files in plans:
        t0 = time.perf_counter()
        rep = CheckReport(ck.key, ck.step)
        if not ck.openable:
            rep.unchecked_why = "still being written (" + ", ".join(ck.unfinished) + ")"
            reports.append(rep)
            continue
        for entry, key, hit in files:
            if hit is None:
                before = key if key is not None else _version(ck.storage, entry)
                try:
                    hit = _check_zip(ck.storage, entry, pool, prog, health)
                except BaseException:
                    pool.close()
                    raise
                if before is not None and _version(ck.storage, entry) != before:
                    # rewritten, truncated or removed under the read: what was read says
                    # nothing about the file now, and "damaged" would let a prune delete it
                    rep.unchecked_why = (f"{entry.name} changed while it was being checked "
                                         "(written again?): check it again")
                    continue
                if cache is not None and key is not None and health:
                    cache.put(key, {"v": RESULT_VERSION, **hit.to_json()})
            rep.files.append(hit)
        models = [fc for fc in rep.files if fc.kind in ("model", "legacy")]
        rep.findings = step_findings(ck) + meta_findings(ck, models)
        if ck.weights is None:
            rep.findings.append(Finding(UNHEALTHY, "", "no model file for this step"))
        rep.elapsed_s = time.perf_counter() - t0
        reports.append(rep)
    pool.close()
    prog.finish()
    return reports


def _version(storage: Storage, entry: FileEntry) -> tuple[Any, ...] | None:
    """The file's version now (``Storage.file_key``); None when it is gone."""
    try:
        return storage.file_key(entry.path, entry.size, entry.mtime)
    except OSError:
        return None


def _cached(storage: Storage, entry: FileEntry, cache: CheckCache | None
            ) -> tuple[tuple[Any, ...] | None, FileCheck | None]:
    if cache is None:
        return None, None
    try:
        key = storage.file_key(entry.path, entry.size, entry.mtime)
    except OSError:
        return None, None
    doc = cache.get(key)
    if doc is None or doc.get("v") != RESULT_VERSION:
        return key, None
    try:
        return key, FileCheck.from_json(doc)
    except (KeyError, TypeError, ValueError):
        return key, None


def cached_report(ck: Checkpoint, cache: CheckCache | None = None) -> CheckReport | None:
    """The step's report from the cache alone (no file is read), or None when any of its files
    was never checked in its current version."""
    cache = cache or default_cache()
    rep = CheckReport(ck.key, ck.step)
    entries = _zip_entries(ck)
    if not entries or not ck.openable:
        return None
    for entry in entries:
        _, hit = _cached(ck.storage, entry, cache)
        if hit is None:
            return None
        rep.files.append(hit)
    models = [fc for fc in rep.files if fc.kind in ("model", "legacy")]
    rep.findings = step_findings(ck) + meta_findings(ck, models)
    return rep


def norms_over_steps(checkpoints: Iterable[Checkpoint], cache: CheckCache | None = None
                     ) -> dict[str, list[tuple[int, float]]]:
    """Weight norms over steps from cached check results (no file is read): ``"model"`` (all
    weights) and each ``transformer.h.N`` layer, for every step whose model file was checked in
    its current version. What the tag plot draws."""
    cache = cache or default_cache()
    out: dict[str, list[tuple[int, float]]] = {}
    for ck in sorted(checkpoints, key=lambda c: c.step):
        if ck.weights is None:
            continue
        _, hit = _cached(ck.storage, ck.weights, cache)
        if hit is None:
            continue
        sums: dict[str, float] = {}
        for t in hit.tensors:
            m = LAYER_RE.search("." + t.name.removeprefix("_orig_mod."))
            sums["model"] = sums.get("model", 0.0) + t.sumsq
            if m:
                group = f"transformer.h.{int(m.group(1))}"
                sums[group] = sums.get(group, 0.0) + t.sumsq
        for group, sq in sums.items():
            out.setdefault(group, []).append((ck.step, math.sqrt(sq)))
    return out
