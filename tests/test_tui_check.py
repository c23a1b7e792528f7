"""``c`` in the app: checking in a worker (progress in the status bar, Esc cancels, keys stay
live, failures shown), the tree's verdict badges from the check cache, and the detail pane's
verdict, findings and per-tensor health (real torch.save files, one with a NaN)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from test_check import write_step

from nanochat_ckpt_tui.store.check import check
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.storage import LocalStorage
from nanochat_ckpt_tui.tui import checks as checks_mod
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.help import key_rows
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree

NOW = 1_780_000_000.0  # the snapshots' clock
D3 = "base_checkpoints/d3"


def write_nan_base(root: Path, now: float) -> Path:
    """``base/d3``: good steps 100 and 200, and a latest step 500 whose lm_head.weight holds
    3 NaN (its bytes as written: CRCs match). Every file an hour old at ``now``."""
    tag = root / "base_checkpoints" / "d3"

    def nan(sd) -> None:  # type: ignore[no-untyped-def]
        sd["lm_head.weight"][0, :3] = float("nan")

    write_step(tag, 100)
    write_step(tag, 200)
    write_step(tag, 500, edit=nan)
    for i, p in enumerate(sorted(tag.iterdir())):
        t = now - 3600 - i
        os.utime(p, (t, t))
    return root


@pytest.fixture(scope="module")
def nan_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real-time mtimes (deletions re-check them against the clock); read-only: copy it."""
    return write_nan_base(tmp_path_factory.mktemp("nan") / "base", time.time())


@pytest.fixture
def nan_base(nan_master: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "base"
    shutil.copytree(nan_master, dst, copy_function=shutil.copy2)
    return dst


@pytest.fixture(scope="module")
def nan_fixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, an hour old at the snapshots' fixed clock."""
    return write_nan_base(tmp_path_factory.mktemp("nan_fixed") / "base", NOW)


@pytest.fixture
def fixed_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    # (the local storage's free and total bytes: what the app shows in its header)
    monkeypatch.setattr(LocalStorage, "disk_usage", lambda self: (320 * 10**9, 500 * 10**9))


def make_app(base: Path, **kw: object) -> CkptApp:
    return CkptApp(base, watch=False, display_name="t", **kw)  # type: ignore[arg-type]




def messages(app: CkptApp) -> list[str]:
    return [n.message for n in app._notifications]


def detail(app: CkptApp) -> str:
    return app.query_one(DetailPane).body.text


def flat(text: str) -> str:
    return " ".join(text.split())


async def check_done(pilot) -> None:  # type: ignore[no-untyped-def]
    assert await wait_for(pilot, lambda: "check" not in pilot.app.cancels, 20)
    await settle(pilot)


# -- c: check -------------------------------------------------------------------------------


@pytest.mark.parametrize("in_processes", [False, True])
async def test_c_checks_the_highlighted_step_and_shows_the_findings(
        nan_master: Path, in_processes: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    if in_processes:  # as a big checkpoint's check runs: in worker processes, from the app
        from nanochat_ckpt_tui.store import workers

        if workers.usable_cpus() < 2:
            pytest.skip("one usable CPU: no worker processes")
        monkeypatch.setattr(workers, "MIN_PROCESS_BYTES", 0)
        real_start = workers.WorkerPool._start
        monkeypatch.setattr(workers.WorkerPool, "_start",
                            lambda self: (started.append(self.processes), real_start(self))[1])
    app = make_app(nan_master)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = await goto(pilot, f"{D3}@500")
        assert "not checked: press c" in detail(app)
        assert "Tensor health" not in detail(app)
        await pilot.press("c")
        await check_done(pilot)
        assert tree.verdicts == {f"{D3}@500": "unhealthy"}
        label = tree._label(tree.ref_for(f"{D3}@500")).plain
        assert "unhealthy" in label.split() or "unhlthy" in label.split()
        text = detail(app)
        assert "[unhealthy]" in text.splitlines()[0]
        assert "check unhealthy · 1 problem" in flat(text)
        assert "unhealthy model_000500.pt lm_head.weight 3 NaN of 4,096 values" in flat(text)
        health = text[text.index("Tensor health"):]
        row = next(line for line in health.splitlines() if line.startswith("lm_head.weight"))
        assert row.split()[1:3] == ["3", "0"]  # NaN 3, ±Inf 0
        assert "optimizer state: 35 tensors in 2 shards, all finite" in flat(health)
        note = next(m for m in messages(app) if "base/d3@500" in m)
        assert note.startswith("base/d3@500: unhealthy: model_000500.pt lm_head.weight: 3 NaN")
        assert next(n for n in app._notifications if n.message == note).severity == "error"
    assert bool(started) == in_processes


async def test_c_on_a_tag_checks_its_steps_and_on_marks_the_marked(nan_master: Path) -> None:
    app = make_app(nan_master)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = await goto(pilot, D3)
        await pilot.press("c")
        await check_done(pilot)
        assert tree.verdicts == {f"{D3}@100": "good", f"{D3}@200": "good",
                                 f"{D3}@500": "unhealthy"}
        assert "verified" in tree._label(tree.ref_for(f"{D3}@100")).plain
        assert any(m.startswith("Checked 3 steps: 2 good, 1 unhealthy. base/d3@500") for m
                   in messages(app))
        await goto(pilot, f"{D3}@100")
        text = flat(detail(app))
        assert "check good · every byte matches its CRC, no NaN or Inf" in text
        assert "[verified]" in detail(app).splitlines()[0]
        # marks: only the marked steps are checked (again: from the cache, nothing read)
        app.clear_notifications()
        await pilot.press("space")
        assert tree.marks == {f"{D3}@100"}
        await pilot.press("c")
        await check_done(pilot)
        assert messages(app) == ["base/d3@100: good (from the check cache)"]


async def test_progress_in_the_status_bar_keys_stay_live_and_esc_cancels(
        nan_master: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that reads slowly: its progress line (bytes, rate) is in the status bar, the
    tree still moves, the palette offers Cancel check, Esc stops it and says so."""
    started = threading.Event()
    real = checks_mod.check

    def slow_check(cks, *, progress=None, cancel=None, **kw):  # type: ignore[no-untyped-def]
        total = 40 * 10**6
        for done in range(0, total, 10**6):
            progress(done, total)
            started.set()
            if cancel.is_set():
                raise checks_mod.CheckCancelled(done, total)
            time.sleep(0.05)
        return real(cks, cancel=cancel, **kw)

    monkeypatch.setattr(checks_mod, "check", slow_check)
    app = make_app(nan_master)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = await goto(pilot, D3)
        await pilot.press("c")
        assert await wait_for(pilot, started.is_set, 5)
        status = app.query_one("#status")
        assert await wait_for(pilot, lambda: "MB of 40.0 MB" in status.text, 5)
        assert "checking 3 steps:" in status.text and "/s · esc cancels" in status.text
        await pilot.press("j", "j")  # the tree moves while the check runs
        await pilot.pause()
        assert tree.current == tree.ref_for(f"{D3}@200")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Cancel check" in titles
        await pilot.press("c")  # a second check while one runs: said, not started
        await pilot.pause()
        assert any("already running" in m for m in messages(app))
        await pilot.press("escape")
        assert await wait_for(pilot, lambda: "check" not in app.cancels, 5)
        assert any(m.startswith("Check cancelled") for m in messages(app))
        assert "checking" not in status.text and tree.verdicts == {}
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Cancel check" not in titles


async def test_a_failed_check_is_shown(nan_master: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(cks, **kw):  # type: ignore[no-untyped-def]
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(checks_mod, "check", broken)
    app = make_app(nan_master)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D3}@500")
        await pilot.press("c")
        assert await wait_for(pilot, lambda: any("Check failed" in m for m in messages(app)))
        note = next(n for n in app._notifications if "Check failed" in n.message)
        assert note.severity == "error" and "Input/output error" in note.message
        assert "check" not in app.cancels


async def test_c_is_listed_in_help_footer_and_palette(nan_master: Path) -> None:
    rows = key_rows([("Anywhere", CkptApp.BINDINGS)])
    keys = {k for _, k, _ in rows}
    assert {"c", "y"} <= keys
    app = make_app(nan_master)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        footer = {ab.binding.key for ab in app.active_bindings.values() if ab.binding.show}
        assert {"c", "y"} <= footer
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Check" in titles and "Copy command" in titles


# -- badges from the cache ------------------------------------------------------------------


async def test_badges_come_from_the_check_cache_after_each_scan(nan_base: Path) -> None:
    """Steps checked elsewhere (the CLI) are badged after the scan, off the UI thread; a
    changed file loses its badge at the next scan; unchanged steps are not looked up again."""
    cks = scan(nan_base).stage("base").tag("d3").checkpoints
    check(cks[:2])  # 100 and 200, as `nanochat-ckpt check` would
    app = make_app(nan_base)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        assert tree.verdicts == {f"{D3}@100": "good", f"{D3}@200": "good"}
        assert "verified" in tree._label(tree.ref_for(f"{D3}@200")).plain
        looked = app.verdict_memo.looked_up
        app.request_scan()  # nothing changed: every step from the memo
        await settle(pilot)
        assert app.verdict_memo.looked_up == looked
        model = nan_base / "base_checkpoints" / "d3" / "model_000200.pt"
        st = model.stat()
        os.utime(model, (st.st_atime, st.st_mtime + 1))  # a new version of the weights
        app.request_scan()
        await settle(pilot)
        assert await wait_for(pilot, lambda: f"{D3}@200" not in tree.verdicts, 5)
        assert tree.verdicts == {f"{D3}@100": "good"}
        assert "verified" not in tree._label(tree.ref_for(f"{D3}@200")).plain


async def test_the_app_remembers_rebuilt_verdicts_for_ls(nan_base: Path) -> None:
    """The app looks verdicts up as ``ls`` does: a step checked elsewhere whose verdict was
    never remembered is rebuilt once from its files' results and remembered under its step
    key, so the next ``ls`` finds it without rebuilding anything."""
    from nanochat_ckpt_tui.store.check_cache import default_cache, key_text
    from nanochat_ckpt_tui.store.step_verdicts import cached_verdicts, step_keys

    cks = scan(nan_base).stage("base").tag("d3").checkpoints
    check(cks[:2])  # (as the app or a prune checks: the files' results, no step verdict)
    cache = default_cache()
    texts = [key_text(k) for k in step_keys(cks[:2]) if k is not None]
    assert len(texts) == 2 and cache.get_many(texts) == {}
    app = make_app(nan_base)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.query_one(CheckpointTree).verdicts == {f"{D3}@100": "good",
                                                          f"{D3}@200": "good"}
        looked = app.verdict_memo.looked_up
        app.request_scan()  # its own writes do not make it ask again
        await settle(pilot)
        assert app.verdict_memo.looked_up == looked
    assert {doc["verdict"] for doc in cache.get_many(texts).values()} == {"good"}
    assert len(cache.get_many(texts)) == 2
    assert cached_verdicts(scan(nan_base).stage("base").tag("d3").checkpoints, cache,
                           budget=0) == ({f"{D3}@100": "good", f"{D3}@200": "good"}, 0)


async def test_nothing_is_looked_up_when_no_check_ever_ran(nan_master: Path) -> None:
    from nanochat_ckpt_tui.tui.verdict_memo import cache_exists

    assert not cache_exists()
    app = make_app(nan_master)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.verdict_memo.looked_up == 0 and app.query_one(CheckpointTree).verdicts == {}
    assert not cache_exists()  # (looking did not create it)


# -- snapshots: the detail pane with findings -----------------------------------------------


def _checked_then_on(key: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        tree = pilot.app.query_one(CheckpointTree)
        tree.move_cursor(tree.node_for(D3))
        await settle(pilot)
        await pilot.press("c")
        await check_done(pilot)
        pilot.app.clear_notifications()
        tree.move_cursor(tree.node_for(key))
        await settle(pilot)
        await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_detail_with_findings_snapshot(nan_fixed: Path, fixed_disk: None, snap_compare,
                                       size) -> None:  # type: ignore[no-untyped-def]
    """base/d3 checked (c on the tag): 100 and 200 verified, 500 unhealthy; the detail pane of
    500 with its verdict, the NaN finding (file, tensor, message) right under it."""
    app = CkptApp(nan_fixed, watch=False, display_name="~/runs", clock=lambda: NOW)
    assert snap_compare(app, terminal_size=size, run_before=_checked_then_on(f"{D3}@500"))


def test_health_table_snapshot(nan_fixed: Path, fixed_disk: None, snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The per-tensor health table (tensor, NaN, ±Inf, norm, abs max), scrolled to."""
    app = CkptApp(nan_fixed, watch=False, display_name="~/runs", clock=lambda: NOW)
    inner = _checked_then_on(f"{D3}@500")

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await inner(pilot)
        pane = pilot.app.query_one(DetailPane)
        row = detail(pilot.app).splitlines().index(next(
            line for line in detail(pilot.app).splitlines() if line.startswith("Tensor health")))
        pane.scroll_to(y=row, animate=False)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


async def test_c_checks_a_remote_base_dir_too(memory_base: str) -> None:
    """Checking only reads: it works on a read-only remote base dir (ranged reads)."""
    app = CkptApp(memory_base, clock=lambda: time.time() + 3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.read_only
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.node_for(
            "base_checkpoints/d4@3000") is not None, 20)
        await goto(pilot, "base_checkpoints/d4@3000")
        await pilot.press("c")
        await check_done(pilot)
        assert tree.verdicts == {"base_checkpoints/d4@3000": "good"}
        assert "check good · every byte matches its CRC" in flat(detail(app))
