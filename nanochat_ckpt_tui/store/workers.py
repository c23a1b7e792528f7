"""Worker processes for the streaming work of :mod:`.diff` and :mod:`.check`: every usable core,
outside the GIL.

Why processes, not threads: numpy releases the GIL inside each call, but the streams make
many short calls (a chunk stays in the core's cache only while it is small), and every call
hands the GIL over and back. Measured on 2 cores: two threads on cache-sized chunks ran at
0.76× one thread; on chunks big enough to scale they cost ~20 % more CPU per byte. Processes
share nothing but the page cache, so each runs the one-thread kernel at full speed.

How: a :class:`WorkerPool` runs ``fn(item, progress)`` for each item in worker processes and
returns the results in the items' order. Workers reopen the files themselves (each item
carries a picklable opener from :meth:`.storage.Storage.share_reader`), so only descriptions
travel, never tensor bytes. Progress and cancel go through shared memory: each worker adds the
bytes it streams to its own counter, which the parent polls (``POLL_S``) into the caller's
:class:`.stream.Progress`; cancel sets a shared flag that workers check before every chunk.
Small items are batched so the messages stay few.

Start method: ``fork`` when the calling process runs no other thread (the CLI: a worker
starts in a few ms), else ``forkserver`` (the TUI: forking a threaded process is unsafe; the
server starts once per process, with numpy preloaded). Workers ignore SIGINT (the parent
cancels them) and write nothing to the terminal (a TUI's screen). If a worker dies, its
unfinished items run in the calling process instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .stream import Cancelled, Progress

POLL_S = 0.05  # the parent reports progress and checks cancel this often
BATCH_BYTES = 8 << 20  # items smaller than this travel to a worker together
MIN_PROCESS_BYTES = 64 << 20  # below this much work, threads in the calling process
PRELOAD = ["numpy", "nanochat_ckpt_tui.store.diff", "nanochat_ckpt_tui.store.check"]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: ``taskset`` counts)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - platforms without affinity


# ---------------------------------------------------------------------------------------------
# the worker side


class WorkerProgress:
    """What a worker's stream reports to: :class:`.stream.Progress`'s ``add``/``check``, through
    shared memory."""

    def __init__(self, counts: Any, slot: int, cancel: Any) -> None:
        self.counts = counts
        self.slot = slot
        self.cancel = cancel

    def add(self, nbytes: int) -> None:
        self.counts[self.slot] += nbytes  # this worker's own slot: no lock needed

    def check(self) -> None:
        if self.cancel.value:
            raise Cancelled(0, 0)


_progress: WorkerProgress | None = None
_state: dict[Any, Any] = {}  # per worker process: reusable buffers (see :func:`cached`)
_readers: dict[Any, Any] = {}  # per worker process: opener → open reader, oldest first


def _init(counts: Any, cancel: Any, next_slot: Any) -> None:
    import signal

    global _progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cancels us; no tracebacks
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):  # nothing onto the terminal (a TUI's screen)
        os.dup2(devnull, fd)
    os.close(devnull)
    # (a forked copy of the parent's sys.stdout may not write to fd 1: Textual's and pytest's
    # capture it); open for the worker's life
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    with next_slot.get_lock():
        slot = next_slot.value
        next_slot.value += 1
    _progress = WorkerProgress(counts, slot, cancel)
    _state.clear()  # (a forked worker starts with a copy of the parent's)
    _readers.clear()


OPEN_READERS = 8  # files a worker keeps open (a check of a whole base dir reads thousands)


def reader_for(opener: Callable[[], Any]) -> Any:
    """An open reader of the file ``opener`` opens: kept for the next job on the same file,
    the OPEN_READERS most recent ones at most (the rest closed: descriptors are limited)."""
    reader = _readers.pop(opener, None)
    if reader is None:
        reader = opener()
        while len(_readers) >= OPEN_READERS:
            _readers.pop(next(iter(_readers))).close()
    _readers[opener] = reader  # (now the most recent)
    return reader


def cached(key: Any, make: Callable[[], Any]) -> Any:
    """A per-worker-process object (reusable buffers), made on first use and kept until the
    worker exits with its pool."""
    obj = _state.get(key)
    if obj is None:
        obj = _state[key] = make()
    return obj


def _run_batch(fn: Callable[[Any, Any], Any], batch: list[Any]) -> list[Any]:
    assert _progress is not None
    return [fn(item, _progress) for item in batch]


# ---------------------------------------------------------------------------------------------
# the calling side


def _context() -> Any:
    import multiprocessing

    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _main_importable() -> bool:
    """A forkserver's worker first imports the calling process's main module by its file, as
    ``__mp_main__``: a script read from stdin has a file name but no file, and every worker
    would die with a traceback on the terminal."""
    main = sys.modules.get("__main__")
    if getattr(main, "__spec__", None) is not None:  # ``python -m``: imported by name
        return True
    path = getattr(main, "__file__", None)
    return path is None or os.path.isfile(path)


class WorkersUnavailable(Exception):
    """Worker processes could not be started here: the caller streams in threads instead."""


@contextlib.contextmanager
def _stderr_with_fd() -> Iterator[None]:
    """multiprocessing hands ``sys.stderr``'s descriptor to the helper process it starts once
    (its resource tracker); a TUI's ``sys.stderr`` is a capture with none (Textual's returns
    -1), so while processes start it is a real file: /dev/null."""
    try:
        ok = sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        ok = False
    if ok:
        yield
        return
    saved = sys.stderr
    with open(os.devnull, "w") as devnull:
        sys.stderr = devnull
        try:
            yield
        finally:
            sys.stderr = saved


def _batches(weights: list[int]) -> Iterator[list[int]]:
    """Item indices, biggest first (a big item must not start last), small ones grouped up to
    ``BATCH_BYTES``."""
    order = sorted(range(len(weights)), key=lambda i: -weights[i])
    batch: list[int] = []
    size = 0
    for i in order:
        batch.append(i)
        size += weights[i]
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class WorkerPool:
    """``processes`` worker processes, started on first use and stopped by :meth:`close`."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._exec: Any = None
        self._counts: Any = None
        self._cancel: Any = None

    def _start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        ctx = _context()
        if ctx.get_start_method() != "fork" and not _main_importable():
            raise OSError("the main module cannot be imported by a worker process")
        if ctx.get_start_method() == "fork":  # numpy imported once, here, and shared by the
            import numpy  # noqa: F401  workers' pages (the caller's modules are loaded already)
        self._counts = ctx.RawArray("q", self.processes)
        self._cancel = ctx.RawValue("b", 0)
        self._exec = ProcessPoolExecutor(
            self.processes, mp_context=ctx, initializer=_init,
            initargs=(self._counts, self._cancel, ctx.Value("i", 0)))

    def map(self, fn: Callable[[Any, Any], Any], items: list[Any], weights: list[int],
            prog: Progress) -> list[Any]:
        """``[fn(item, progress) for item in items]`` in the workers; ``fn`` is a module-level
        function. Raises ``prog.cancelled`` when ``prog``'s cancel is set, what ``fn`` raised
        (the first, in the items' order), and :class:`WorkersUnavailable` when no worker could
        start (then nothing ran)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        try:
            with _stderr_with_fd():
                if self._exec is None:
                    self._start()
                self._cancel.value = 0
                base = sum(self._counts) - prog.done  # (progress may span several maps)
                futures = {self._exec.submit(_run_batch, fn, [items[i] for i in b]): b
                           for b in _batches(weights)}
        except (OSError, ValueError, RuntimeError, ImportError) as e:
            # no /dev/shm, no fork, a process limit: nothing ran yet
            if self._cancel is not None:
                self._cancel.value = 1
            self.close()
            raise WorkersUnavailable(str(e)) from e
        results: list[Any] = [None] * len(items)
        pending = set(futures)
        stopping = False
        try:
            while pending:
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                prog.set_done(sum(self._counts) - base)
                if not stopping and (prog.cancelled_now() or any(
                        f.exception() is not None for f in done)):
                    stopping = True  # stop the others after their current chunk
                    self._cancel.value = 1
        except BaseException:  # KeyboardInterrupt: stop the workers, then let it through
            self._cancel.value = 1
            self.close()
            raise
        redo: list[int] = []  # items a dead worker took down, or stopped because of it
        errors: list[tuple[int, BaseException]] = []
        for f, b in futures.items():
            exc = f.exception()
            if exc is None:
                for i, r in zip(b, f.result(), strict=True):
                    results[i] = r
            elif isinstance(exc, BrokenProcessPool | Cancelled):
                redo += b
            else:
                errors.append((min(b), exc))
        if errors:  # what fn raised, for the first item that raised
            raise min(errors, key=lambda e: e[0])[1]
        prog.check()  # cancelled by the caller: raise what it expects
        if redo:  # a worker died (killed, out of memory): the rest here, one by one
            self.close()
            for i in sorted(redo):
                results[i] = fn(items[i], prog)
        return results

    def close(self) -> None:
        if self._exec is not None:
            self._exec.shutdown(wait=True, cancel_futures=True)
            self._exec = None
