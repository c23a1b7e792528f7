"""Worker processes for diff and check: the same numbers as one thread, progress, cancel,
errors, a worker that dies, and the files reopened by another process.

Every file here is a real ``torch.save`` file written through the demo helpers.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from nanochat_ckpt_tui.store import workers
from nanochat_ckpt_tui.store.check import CheckCancelled, check
from nanochat_ckpt_tui.store.demo import save_checkpoint
from nanochat_ckpt_tui.store.diff import DiffCancelled, diff
from nanochat_ckpt_tui.store.diff_report import DEFAULT_CHUNK_ELEMS
from nanochat_ckpt_tui.store.ptfile import CheckpointError
from nanochat_ckpt_tui.store.readers import FdReopener
from nanochat_ckpt_tui.store.refs import checkpoint_for_file
from nanochat_ckpt_tui.store.storage import LOCAL
from nanochat_ckpt_tui.store.stream import Progress

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or not Path("/proc").is_dir(),
                                reason="Linux worker processes")


def _pair(tmp_path: Path, n: int = 20_000) -> tuple[Path, Path, dict[str, Any]]:
    """A pair with every kind the diff meets: bf16 (the hot path, odd length), fp32, fp16,
    float64, int, bool, NaN/Inf, a strided tensor, and tensors sharing one storage."""
    gen = torch.Generator().manual_seed(3)
    shared = torch.randn(4 * n, generator=gen)
    sd_a: dict[str, Any] = {
        "wte": torch.randn(n + 1, generator=gen).bfloat16(),
        "h.0.w": torch.randn(n, 3, generator=gen),
        "h.0.half": torch.randn(n, generator=gen).half(),
        "h.1.f64": torch.randn(n, generator=gen).double(),
        "h.1.int": torch.randint(-50, 50, (n,), generator=gen),
        "h.1.bool": torch.rand(n, generator=gen) > 0.5,
        "h.2.t": torch.randn(300, 70, generator=gen).t(),
        "view.lo": shared[:n], "view.hi": shared[2 * n:],
    }
    sd_b = {k: (v * 1.01 + 0.001 if v.is_floating_point() else v.clone())
            for k, v in sd_a.items()}
    sd_b["h.0.w"][5, 1] = float("nan")
    sd_b["h.0.half"][7] = float("inf")
    pa = save_checkpoint(tmp_path / "a", 1, sd_a, None)[0]
    pb = save_checkpoint(tmp_path / "b", 2, sd_b, None)[0]
    return pa, pb, sd_a


def _big_pair(tmp_path: Path) -> tuple[Path, Path]:
    gen = torch.Generator().manual_seed(4)
    sd = {f"h.{i}.w": torch.randn(1 << 20, generator=gen).bfloat16() for i in range(8)}
    pa = save_checkpoint(tmp_path / "a", 1, sd, None)[0]
    pb = save_checkpoint(tmp_path / "b", 2, {k: v * 2 for k, v in sd.items()}, None)[0]
    return pa, pb


def _no_workers_left() -> bool:
    return not multiprocessing.active_children()


# ---------------------------------------------------------------------------------------------
# the same numbers


@pytest.mark.parametrize("chunk", [256, 4096])
def test_diff_in_processes_equals_one_thread(tmp_path: Path, chunk: int) -> None:
    pa, pb, sd = _pair(tmp_path)
    one = diff(pa, pb, workers=1, chunk_elems=chunk).to_json()
    many = diff(pa, pb, workers=2, processes=True, chunk_elems=chunk).to_json()
    for rep in (one, many):
        rep.pop("elapsed_s")
    assert many == one  # to the last bit: each pair is streamed whole by one worker
    assert {t["name"] for t in many["tensors"]} == set(sd)
    assert next(t for t in many["tensors"] if t["name"] == "h.0.w")["nan_b"] == 1
    assert _no_workers_left()


def test_check_in_processes_equals_one_thread(tmp_path: Path) -> None:
    pa, pb, _ = _pair(tmp_path)
    for p in (pa, pb):
        ck = checkpoint_for_file(p)
        one = check([ck], use_cache=False, workers=1, chunk_bytes=4096)[0].to_json()
        many = check([ck], use_cache=False, workers=2, processes=True,
                     chunk_bytes=4096)[0].to_json()
        for rep in (one, many):
            rep.pop("elapsed_s")
        assert many == one
    assert many["verdict"] == "unhealthy"  # B's NaN and Inf, found in the workers
    assert _no_workers_left()


# ---------------------------------------------------------------------------------------------
# progress, cancel, errors


def test_progress_and_cancel_in_processes(tmp_path: Path) -> None:
    pa, pb = _big_pair(tmp_path)
    calls: list[tuple[int, int]] = []
    rep = diff(pa, pb, workers=2, processes=True, chunk_elems=512,
               progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (rep.bytes_total, rep.bytes_total) and calls.count(calls[-1]) == 1
    assert all(x[0] <= y[0] for x, y in zip(calls, calls[1:], strict=False))
    assert rep.overall.rel_change == pytest.approx(1.0, rel=1e-2)

    cancel = threading.Event()

    def stop_soon(done: int, total: int) -> None:
        if done:
            cancel.set()

    with pytest.raises(DiffCancelled) as err:
        diff(pa, pb, workers=2, processes=True, chunk_elems=512, progress=stop_soon,
             cancel=cancel)
    assert 0 < err.value.done_bytes < err.value.total_bytes
    assert _no_workers_left()
    cancel.clear()
    with pytest.raises(CheckCancelled):
        check([checkpoint_for_file(pa)], use_cache=False, workers=2, processes=True,
              chunk_bytes=1024, progress=stop_soon, cancel=cancel)
    assert _no_workers_left()


def test_file_truncated_during_a_process_diff(tmp_path: Path) -> None:
    pa, pb = _big_pair(tmp_path)
    size = pb.stat().st_size

    def progress(done: int, total: int) -> None:
        if done and pb.stat().st_size == size:
            with open(pb, "r+b") as f:  # what a torch.save over the same path does first
                f.truncate(size // 2)

    with pytest.raises(CheckpointError, match="truncated") as err:
        diff(pa, pb, workers=2, processes=True, chunk_elems=512, progress=progress)
    assert err.value.path == str(pb)  # the worker's error, whole
    assert _no_workers_left()


# ---------------------------------------------------------------------------------------------
# the pool itself (module-level functions: they travel to the workers by name)


def _square(x: int, prog: Any) -> int:
    prog.check()
    prog.add(x)
    print("a worker never writes to the terminal")
    return x * x


def _fail_on_3(x: int, prog: Any) -> int:
    if x == 3:
        raise CheckpointError("bad bytes", "/x/model_000003.pt")
    return x


def _die_in_worker(item: tuple[int, int], prog: Any) -> int:
    x, parent = item
    if x == 2 and os.getpid() != parent:
        os._exit(1)  # killed (out of memory, a signal): the parent runs the item itself
    prog.add(1)
    return x + 100


def test_pool_map_keeps_order_batches_and_counts(capfd: pytest.CaptureFixture[str]) -> None:
    items = list(range(40))
    calls: list[int] = []
    prog = Progress(lambda d, t: calls.append(d), None, sum(items))
    pool = workers.WorkerPool(2)
    try:
        weights = [(50 << 20) if x % 10 == 0 else 1000 for x in items]
        assert pool.map(_square, items, weights, prog) == [x * x for x in items]
        assert pool.map(_square, [7], [1], prog) == [49]  # the pool is reused
    finally:
        pool.close()
    assert prog.done == sum(items) + 7
    assert capfd.readouterr().out == ""
    batches = list(workers._batches(weights))
    assert sorted(i for b in batches for i in b) == items
    assert [len(b) for b in batches[:4]] == [1, 1, 1, 1]  # the big ones alone, first
    assert len(batches) < len(items)


def test_pool_raises_the_first_error_and_reruns_what_a_dead_worker_left() -> None:
    pool = workers.WorkerPool(2)
    try:
        with pytest.raises(CheckpointError) as err:
            pool.map(_fail_on_3, list(range(6)), [1 << 30] * 6, Progress(None, None, 6))
        assert err.value.reason == "bad bytes" and err.value.path == "/x/model_000003.pt"
        items = [(x, os.getpid()) for x in range(5)]
        got = pool.map(_die_in_worker, items, [1 << 30] * 5, Progress(None, None, 5))
        assert got == [100, 101, 102, 103, 104]
    finally:
        pool.close()
    assert _no_workers_left()


def test_pool_from_a_threaded_process_uses_a_forkserver() -> None:
    """The TUI diffs from a worker thread: forking a threaded process is unsafe."""
    assert workers._context().get_start_method() == "fork" or threading.active_count() > 1
    out: dict[str, Any] = {}

    def run() -> None:
        out["method"] = workers._context().get_start_method()
        pool = workers.WorkerPool(2)
        try:
            out["got"] = pool.map(_square, [1, 2, 3], [1 << 30] * 3, Progress(None, None, 6))
        finally:
            pool.close()

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert out == {"method": "forkserver", "got": [1, 4, 9]}


# ---------------------------------------------------------------------------------------------
# another process opens the very same file


def test_reopener_reads_the_same_file_even_when_replaced(tmp_path: Path) -> None:
    p = tmp_path / "model_000001.pt"
    p.write_bytes(b"old bytes " * 100)
    with LOCAL.open_reader(p, p.stat().st_size) as reader:
        opener = reader.reopener()
        assert opener is not None and opener == FdReopener(*opener.__getstate__())
        (tmp_path / "new").write_bytes(b"NEW BYTES " * 100)
        os.replace(tmp_path / "new", p)  # a rerun saved over the same step
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(1) as pool:  # another process, through /proc/<pid>/fd
            assert pool.apply(_read_start, (opener,)) == b"old bytes "
        by_path = FdReopener(-1, opener.fd, str(p), opener.size, opener.ident)
        with pytest.raises(OSError, match="replaced"):
            by_path()  # no /proc entry, and the path is now another file
    fresh = LOCAL.open_reader(p, p.stat().st_size)
    with fresh:
        again = FdReopener(-1, 0, str(p), fresh.size, fresh.reopener().ident)
        with again() as r2:
            assert _read_start_with(r2) == b"NEW BYTES "


def test_a_file_truncated_before_a_worker_reopens_it(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the truncation test above can lose either way, made certain: the file shrinks
    after the parent opened it and before a worker reopens it. The reopener says so, and the
    diff raises the CheckpointError its own read would (no bare OSError from the worker)."""
    p = tmp_path / "model_000001.pt"
    p.write_bytes(b"x" * 1000)
    with LOCAL.open_reader(p, 1000) as reader:
        opener = reader.reopener()
        assert opener is not None
        os.truncate(p, 400)
        with pytest.raises(OSError, match=r"truncated while being read \(1,000 -> 400 bytes\)"):
            opener()
    pa, pb = _big_pair(tmp_path)
    size = pb.stat().st_size
    real = workers.reader_for

    def reopen_after_a_truncation(opener: Any) -> Any:  # (in the forked workers too)
        if os.getpid() != parent and os.path.getsize(pb) == size:
            os.truncate(pb, size // 2)
        return real(opener)

    parent = os.getpid()
    monkeypatch.setattr(workers, "reader_for", reopen_after_a_truncation)
    monkeypatch.setattr(workers, "MIN_PROCESS_BYTES", 0)
    # forked workers (not a forkserver's, which earlier tests' threads would bring): they
    # inherit the patch above
    monkeypatch.setattr(workers, "_context", lambda: multiprocessing.get_context("fork"))
    with pytest.raises(CheckpointError, match="truncated") as err:
        diff(pa, pb, workers=2, processes=True, chunk_elems=512)
    assert err.value.path == str(pb)
    assert _no_workers_left()


def _read_start(opener: Any) -> bytes:
    with opener() as r:
        return _read_start_with(r)


def _read_start_with(r: Any) -> bytes:
    buf = bytearray(10)
    r.read_into(buf, 0)
    return bytes(buf)


def test_remote_readers_have_no_reopener() -> None:
    import io

    from nanochat_ckpt_tui.store.readers import make_reader

    assert make_reader(io.BytesIO(b"x" * 10), 10).reopener() is None


# ---------------------------------------------------------------------------------------------
# from the TUI: a threaded process whose sys.stderr has no descriptor


STDERR_LIKE_TEXTUAL = """
import multiprocessing, sys, threading
from nanochat_ckpt_tui.store.diff import diff

class Capture:  # what Textual puts in sys.stderr while the app runs
    def write(self, text): return len(text)
    def flush(self): pass
    def fileno(self): return -1

out = {"children": 0}
def seen(done, total):
    out["children"] = max(out["children"], len(multiprocessing.active_children()))

def run():
    sys.stderr = Capture()
    out["rel"] = diff(sys.argv[1], sys.argv[2], processes=True, workers=2, chunk_elems=1024,
                      progress=seen).overall.rel_change
    out["one"] = diff(sys.argv[1], sys.argv[2], workers=1, chunk_elems=1024).overall.rel_change

if __name__ == "__main__":
    t = threading.Thread(target=run)
    t.start()
    t.join()
    print(out["rel"] == out["one"], out["children"])
"""


def test_workers_start_from_a_thread_with_a_captured_stderr(tmp_path: Path) -> None:
    """The first pool of a TUI process starts multiprocessing's helpers: they must not need
    ``sys.stderr.fileno()`` (Textual's capture returns -1), nor print onto the screen."""
    import subprocess
    import sys

    pa, pb = _big_pair(tmp_path)
    script = tmp_path / "tui_like.py"
    script.write_text(STDERR_LIKE_TEXTUAL)
    proc = subprocess.run([sys.executable, str(script), str(pa), str(pb)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "2"] and proc.stderr == ""  # in 2 workers


async def test_the_diff_screen_streams_in_worker_processes(
        demo_master: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_diff_screen import Host, pair, wait_report

    from nanochat_ckpt_tui.tui.diff_screen import DiffScreen

    if workers.usable_cpus() < 2:
        pytest.skip("one usable CPU: no worker processes")
    a, b = pair(demo_master)
    expected = diff(a, b, workers=1)
    monkeypatch.setattr(workers, "MIN_PROCESS_BYTES", 0)  # the demo's small files, too
    started: list[int] = []
    real_start = workers.WorkerPool._start
    monkeypatch.setattr(workers.WorkerPool, "_start",
                        lambda self: (started.append(self.processes), real_start(self)))
    screen = DiffScreen(a, b)
    async with Host(screen).run_test(size=(120, 40)) as pilot:
        await wait_report(pilot, screen)
        assert screen.report is not None and not screen.error
        assert screen.report.to_json()["tensors"] == expected.to_json()["tensors"]
    assert started == [2] and _no_workers_left()


def test_without_worker_processes_diff_and_check_use_threads(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """A machine where processes cannot start (no /dev/shm, a process limit): the same
    results, from threads."""
    pa, pb, _ = _pair(tmp_path)
    expected = diff(pa, pb, workers=2, processes=False).to_json()
    ck = checkpoint_for_file(pb)
    expected_check = check([ck], use_cache=False, workers=2, processes=False)[0].to_json()

    def no_processes() -> Any:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(workers, "_context", no_processes)
    got = diff(pa, pb, workers=2, processes=True).to_json()
    got_check = check([ck], use_cache=False, workers=2, processes=True)[0].to_json()
    for rep in (expected, got, expected_check, got_check):
        rep.pop("elapsed_s")
    assert got == expected and got["chunk_elems"] == DEFAULT_CHUNK_ELEMS
    assert got_check == expected_check


def test_a_worker_keeps_a_few_files_open_not_all(tmp_path: Path) -> None:
    """A check of a whole base dir streams thousands of files through the same workers: each
    keeps the OPEN_READERS most recent open and closes the rest (descriptors are limited)."""
    openers = []
    for i in range(workers.OPEN_READERS + 4):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * 16)
        with LOCAL.open_reader(p, 16) as r:
            opener = r.reopener()
        openers.append(FdReopener(-1, 0, str(p), 16, opener.ident))  # (by path: ours closed)
    try:
        readers = [workers.reader_for(o) for o in openers]
        assert workers.reader_for(openers[-1]) is readers[-1]  # kept for the next job
        open_now = [r for r in readers if not r._file.closed]
        assert open_now == readers[-workers.OPEN_READERS:]
        assert _read_start_with(workers.reader_for(openers[0]))[:1] == b"\x00"  # reopened
    finally:
        for r in workers._readers.values():
            r.close()
        workers._readers.clear()


def test_a_check_of_many_steps_in_processes(demo_master: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step of the demo (dozens of files) through two workers that may keep only two
    files open each: the same reports as one thread."""
    from nanochat_ckpt_tui.store.layout import scan

    monkeypatch.setattr(workers, "OPEN_READERS", 2)  # (a forked worker inherits it)
    cks = [ck for ck in scan(demo_master).checkpoints if ck.openable]
    one = [r.to_json() for r in check(cks, use_cache=False, workers=1)]
    many = [r.to_json() for r in check(cks, use_cache=False, workers=2, processes=True)]
    for rep in one + many:
        rep.pop("elapsed_s")
    assert len(cks) > 10 and many == one


def test_a_script_read_from_stdin_falls_back_to_threads(tmp_path: Path) -> None:
    """A forkserver's workers import the main module by its file; a script piped to python has
    none: the pool does not start (threads instead), and nothing lands on the terminal."""
    import subprocess
    import sys

    pa, pb = _big_pair(tmp_path)
    script = STDERR_LIKE_TEXTUAL.replace("Capture()", "sys.__stderr__")
    proc = subprocess.run([sys.executable, "-", str(pa), str(pb)], input=script,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "0"] and proc.stderr == ""  # no worker processes
