"""Resilience: unreadable dirs, a read-only filesystem, the base dir vanishing under the app,
a full disk during a trash move, files vanishing between plan and execute. Each time the user
gets a clear message where they are looking, the app keeps running, and nothing is lost."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from nanochat_ckpt_tui import cli
from nanochat_ckpt_tui.store import layout, prune
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.prune import Rules, execute, plan_rules
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.tree import CheckpointTree
from nanochat_ckpt_tui.tui.welcome import WelcomeScreen

SIZE = (120, 40)
D4 = "base_checkpoints/d4"


def make_app(base: Path, **kw: object) -> CkptApp:
    kw.setdefault("watch", False)
    return CkptApp(base, display_name="demo", **kw)  # type: ignore[arg-type]


def messages(app: CkptApp) -> list[str]:
    return [n.message for n in app._notifications]


def _plain(widget: object) -> str:
    """The text a Static shows, as plain text."""
    from rich.console import Console

    console = Console(width=160, record=True, color_system=None)
    console.print(widget.content)  # type: ignore[attr-defined]
    return console.export_text()


def files_of(base: Path, step: int) -> set[str]:
    return {p.name for p in (base / D4).glob(f"*_{step:06d}*")}




# -- unreadable subdirs -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_unreadable_tag_dir_shows_the_rest_and_a_note(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = demo_dir / "chatsft_checkpoints" / "d4"
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path) == locked:  # root ignores chmod: deny it here instead
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(layout.os, "scandir", scandir)
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        assert tree.node_for(f"{D4}@1000") is not None  # the other tags are all there
        assert tree.node_for("mid_checkpoints/d4") is not None
        # the status line counts the note; the stage's detail pane says what it is
        assert "1 note" in _plain(app._status)
        await goto(pilot, "stage:chatsft_checkpoints")
        pane = app.query_one(DetailPane)
        shown = pane.body.text
        assert "chatsft_checkpoints/d4: permission denied" in shown.replace("\n", "")
        assert app.is_running


# -- read-only filesystem ---------------------------------------------------------------------


@pytest.fixture
def read_only_fs(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Writes under the base dir fail with EROFS (root ignores chmod, so patch the calls)."""
    root = str(demo_dir)

    def under_base(path: object) -> bool:
        return os.fspath(path).startswith(root)  # type: ignore[arg-type]

    def guard(real):  # type: ignore[no-untyped-def]
        def call(path, *args, **kw):  # type: ignore[no-untyped-def]
            if under_base(path):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
            return real(path, *args, **kw)
        return call

    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kw):  # type: ignore[no-untyped-def]
        if kw.get("dir") is not None and under_base(kw["dir"]):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(kw["dir"]))
        return real_mkstemp(*args, **kw)

    for name in ("unlink", "remove", "rename", "replace", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return demo_dir


@pytest.mark.asyncio
async def test_delete_on_a_read_only_filesystem_reports_each_file(read_only_fs: Path) -> None:
    base = read_only_fs
    before = files_of(base, 1000)
    app = make_app(base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        await pilot.press("x")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        await pilot.press("y")
        assert await wait_for(pilot, lambda: any("Not removed" in m for m in messages(app)), 10)
        msg = next(m for m in messages(app) if "Not removed" in m)
        for name in before:  # every file, with the reason
            assert f"{name}: failed: Read-only file system" in msg, msg
        assert "Freed 0 B" in msg
        await settle(pilot)
        assert files_of(base, 1000) == before  # nothing lost
        assert app.query_one(CheckpointTree).node_for(f"{D4}@1000") is not None
        assert app.is_running


@pytest.mark.asyncio
async def test_pin_on_a_read_only_filesystem_reports_the_error(read_only_fs: Path) -> None:
    app = make_app(read_only_fs)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        await pilot.press("p")
        assert await wait_for(
            pilot, lambda: any("Read-only file system" in m for m in messages(app)), 5)
        assert any("cannot write pins" in m for m in messages(app))
        await settle(pilot)
        assert not (read_only_fs / D4 / ".nanochat-ckpt.json").exists()
        assert not app.tree_view.objects[f"{D4}@1000"].pinned  # type: ignore[union-attr]
        await pilot.press("j")  # still running and responsive
        await settle(pilot)
        assert app.is_running


# -- the base dir deleted under a running app -------------------------------------------------


@pytest.mark.asyncio
async def test_base_dir_deleted_and_recreated_while_watching(demo_dir: Path,
                                                             tmp_path: Path) -> None:
    keep = tmp_path / "copy"
    shutil.copytree(demo_dir, keep, copy_function=shutil.copy2)
    app = make_app(demo_dir, watch=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        assert tree.node_for(f"{D4}@1000") is not None
        shutil.rmtree(demo_dir)
        assert await wait_for(pilot, lambda: tree.node_for(f"{D4}@1000") is None, 10)
        await settle(pilot)
        assert not tree.visible_keys()  # the tree emptied
        # a clear message: a warning where the user looks, and the status line says missing
        assert await wait_for(pilot, lambda: any("was deleted" in m for m in messages(app)), 5)
        assert "(missing)" in _plain(app._status)
        assert not isinstance(app.screen, WelcomeScreen)  # not the first-run screen
        assert app.is_running
        shutil.copytree(keep, demo_dir, copy_function=shutil.copy2)
        assert await wait_for(pilot, lambda: tree.node_for(f"{D4}@1000") is not None, 10)
        await settle(pilot)
        assert "(missing)" not in _plain(app._status)
        assert app.is_running


# -- disk full during a trash move ------------------------------------------------------------


def _enospc_for(monkeypatch: pytest.MonkeyPatch, victim: str) -> None:
    real_rename = os.rename

    def rename(src, dst, *args, **kw):  # type: ignore[no-untyped-def]
        if os.path.basename(os.fspath(src)) == victim:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(src))
        return real_rename(src, dst, *args, **kw)

    monkeypatch.setattr(prune.os, "rename", rename)


def test_disk_full_during_a_trash_move(demo_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cat = scan(demo_dir)
    plan = plan_rules(cat, [cat.stage("base").tag("d4")], Rules(keep_last=3))
    assert len(plan.items) >= 4
    victim = plan.items[1].path
    _enospc_for(monkeypatch, victim.name)
    trash = tmp_path / "trash"
    result = execute(plan, trash=trash)
    by_path = {r.path: r for r in result.results}
    assert by_path[victim].status == "failed" and "disk full" in by_path[victim].detail
    assert victim.exists()  # kept where it was
    moved = [r for r in result.results if r.status == "trashed"]
    assert len(moved) == len(plan.items) - 1
    for r in moved:  # the others moved, whole, into the trash
        assert not r.path.exists() and Path(r.detail).is_file()
        assert Path(r.detail).stat().st_size == r.size
    assert not result.ok


def test_disk_full_during_a_trash_move_from_the_cli(
        demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cat = scan(demo_dir)
    plan = plan_rules(cat, [cat.stage("base").tag("d4")], Rules(keep_last=3))
    victim = plan.items[0].path
    _enospc_for(monkeypatch, victim.name)
    trash = tmp_path / "trash"
    code = cli.main(["prune", "base/d4", "--keep-last", "3", "--trash", str(trash), "--yes",
                     "--base-dir", str(demo_dir)])
    out = capsys.readouterr()
    assert code == 4
    assert "disk full" in out.out and victim.name in out.out
    assert victim.exists()
    for item in plan.items:
        if item.path != victim:
            assert not item.path.exists()
            assert (trash / item.path.relative_to(demo_dir)).is_file()


# -- a file vanishes between the confirm modal and the deletion -------------------------------


@pytest.mark.asyncio
async def test_file_vanishing_before_confirm_is_skipped(demo_dir: Path) -> None:
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1000")
        await pilot.press("x")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        gone = demo_dir / D4 / "meta_001000.json"
        gone.unlink()  # behind the app's back, while the modal is open
        await pilot.press("y")
        assert await wait_for(pilot, lambda: any("Not removed" in m for m in messages(app)), 10)
        msg = next(m for m in messages(app) if "Not removed" in m)
        assert "meta_001000.json: skipped: vanished since the plan" in msg, msg
        assert files_of(demo_dir, 1000) == set()  # the rest was deleted
        await settle(pilot)
        assert app.query_one(CheckpointTree).node_for(f"{D4}@1000") is None
        assert app.is_running
