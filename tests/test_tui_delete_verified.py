"""Deleting and pruning from the app with verification: plans checked in a worker (progress
in the status bar, Esc cancels), kept steps' verdicts and protections in the modal, a second
explicit yes for a damaged latest step, and the base dir's trash (move there, its size in the
status bar and stage view, Empty trash from the palette)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from test_tui_check import D3, detail, make_app, messages, write_nan_base
from textual.app import App
from textual.widgets import Static

from nanochat_ckpt_tui.store import verdicts as verdicts_mod
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.prune import plan_selection
from nanochat_ckpt_tui.store.summary import assess_metas
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete, ConfirmLatest
from nanochat_ckpt_tui.tui.prune_form import PruneForm
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.trash_dialog import EmptyTrashDialog

TRASH = ".nanochat-ckpt-trash"


@pytest.fixture(scope="module")
def nan_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base/d3: good 100 and 200, latest 500 with a NaN (test_tui_check.write_nan_base)."""
    return write_nan_base(tmp_path_factory.mktemp("nan") / "base", time.time())


@pytest.fixture
def nan_base(nan_master: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "base"
    shutil.copytree(nan_master, dst, copy_function=shutil.copy2)
    return dst


def steps_on_disk(base: Path) -> list[int]:
    return sorted(int(p.name[6:12]) for p in (base / D3).glob("model_??????.pt"))


def dialog_text(app: App) -> str:  # type: ignore[type-arg]
    return "\n".join(str(s.render()) for s in app.screen.query(Static))


async def open_modal(pilot, key: str, kind: type) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(key)
    assert await wait_for(pilot, lambda: isinstance(pilot.app.screen, kind), 10)
    await pilot.pause()


async def test_x_on_a_damaged_latest_step_asks_twice(nan_base: Path) -> None:
    app = make_app(nan_base)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D3}@500")
        await open_modal(pilot, "x", ConfirmDelete)
        plan = app.screen.plan
        assert plan.verified and plan.confirm and {i.checkpoint for i in plan.items} == {
            f"{D3}@500"}
        text = dialog_text(app)
        assert "needs a second yes base_checkpoints/d3@500 is the latest step" in text
        assert "unhealthy: model_000500.pt lm_head.weight: 3 NaN" in text
        assert "kept base/d3@200: checked, good" in text  # a kept step's verdict
        await pilot.press("y")  # the first yes: a second question, nothing deleted yet
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmLatest))
        await pilot.pause()
        text = dialog_text(app)
        assert "base/d3@500 is the latest step of its tag: delete it?" in text
        assert "it is unhealthy" in text
        assert app.focused is not None and app.focused.id == "cancel"
        assert not app.screen.query("#rest")  # nothing else to delete
        assert steps_on_disk(nan_base) == [100, 200, 500]
        await pilot.press("n")
        await pilot.pause()
        assert steps_on_disk(nan_base) == [100, 200, 500]
        assert "Nothing deleted" in messages(app)
        await open_modal(pilot, "x", ConfirmDelete)
        await pilot.press("y")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmLatest))
        await pilot.press("y")
        assert await wait_for(pilot, lambda: steps_on_disk(nan_base) == [100, 200], 10)
        assert await wait_for(pilot, lambda: any(m.startswith("Freed") for m in messages(app)))


async def test_keep_the_damaged_latest_delete_the_rest(nan_base: Path) -> None:
    app = make_app(nan_base)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await goto(pilot, D3)
        await open_modal(pilot, "x", ConfirmDelete)  # the tag's steps: 100, 200 and 500
        plan = app.screen.plan
        protected = {p.checkpoint: p.reason for p in plan.protected}
        # 200 is the newest good step (500 is unhealthy): never deleted, and it says why
        assert protected[f"{D3}@200"].startswith("newest good checkpoint of its tag (step 500 "
                                                 "is unhealthy")
        assert "newest good checkpoint of its tag" in dialog_text(app)
        await pilot.press("y")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmLatest))
        await pilot.press("k")  # keep 500, delete the rest
        assert await wait_for(pilot, lambda: steps_on_disk(nan_base) == [200, 500], 10)


async def test_the_plan_is_verified_in_a_worker_with_progress_and_esc_cancels(
        nan_base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()
    real = verdicts_mod.check

    def slow_check(cks, *, progress=None, cancel=None, **kw):  # type: ignore[no-untyped-def]
        total = 20 * 10**6
        for done in range(0, total, 10**6):
            progress(done, total)
            started.set()
            if cancel.is_set():
                from nanochat_ckpt_tui.store.check import CheckCancelled

                raise CheckCancelled(done, total)
            time.sleep(0.05)
        return real(cks, cancel=cancel, **kw)

    monkeypatch.setattr(verdicts_mod, "check", slow_check)
    app = make_app(nan_base)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D3}@100")
        await pilot.press("x")
        assert await wait_for(pilot, started.is_set, 5)
        status = app.query_one("#status")
        assert await wait_for(pilot, lambda: "verifying the deletion of base/d3@100:" in
                              status.text and "MB of 20.0 MB" in status.text, 5)
        assert "Cancel verification" in [c.title for c in app.get_system_commands(app.screen)]
        await pilot.press("escape")
        assert await wait_for(pilot, lambda: "plan" not in app.cancels, 5)
        assert "Cancelled while verifying: nothing deleted" in messages(app)
        assert not isinstance(app.screen, ConfirmDelete)
        assert steps_on_disk(nan_base) == [100, 200, 500]


async def test_prune_form_previews_a_verified_plan(nan_base: Path) -> None:
    app = make_app(nan_base)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await goto(pilot, D3)
        await open_modal(pilot, "P", PruneForm)
        form = app.screen
        form.query_one("#keep_last").value = "1"
        preview = form.query_one("#preview")
        assert await wait_for(pilot, lambda: "would delete 4 files" in str(preview.render()),
                              10)  # only 100
        text = str(preview.render())
        assert "newest good checkpoint of its tag" in text  # 200 kept: 500 is unhealthy
        assert form.known  # the verdicts found, for the plan after Review
        await pilot.pause(0.2)  # (the preview box is fitted to the plan: the buttons settle)
        await pilot.click("#review")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete), 10)
        assert {i.checkpoint for i in app.screen.plan.items} == {f"{D3}@100"}
        await pilot.press("y")
        assert await wait_for(pilot, lambda: steps_on_disk(nan_base) == [200, 500], 10)
        # the steps the verification checked are badged
        assert app.query_one("#tree").verdicts[f"{D3}@500"] == "unhealthy"


# -- trash ----------------------------------------------------------------------------------


async def test_trash_then_empty_it(nan_base: Path) -> None:
    app = make_app(nan_base)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D3}@100")
        await open_modal(pilot, "x", ConfirmDelete)
        assert app.screen.query("#trash") and TRASH in dialog_text(app)
        await pilot.press("t")
        trashed = nan_base / TRASH / "base_checkpoints" / "d3" / "model_000100.pt"
        assert await wait_for(pilot, trashed.is_file, 10)
        assert steps_on_disk(nan_base) == [200, 500]
        assert await wait_for(pilot, lambda: any(m.startswith("Moved 4 of 4 files") for m in
                                                 messages(app)), 5)
        await settle(pilot)
        status = app.query_one("#status")
        assert app.trash_usage is not None and app.trash_usage.files == 4
        assert " · trash 201 kB" in status.text
        await goto(pilot, "stage:base_checkpoints")  # the stage's details say it too
        assert "trash: 4 files, 201 kB waiting in .nanochat-ckpt-trash" in " ".join(
            detail(app).split())
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Empty trash" in titles
        app.action_empty_trash()
        assert await wait_for(pilot, lambda: isinstance(app.screen, EmptyTrashDialog), 5)
        await pilot.pause()
        table = app.screen.query_one("#files")
        names = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert "base_checkpoints/d3/model_000100.pt" in names and len(names) == 4
        assert "Empty the trash: delete 4 files, 201 kB" in dialog_text(app)
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("y")
        assert await wait_for(pilot, lambda: not (nan_base / TRASH).exists(), 10)
        assert await wait_for(pilot, lambda: any("Emptied the trash: freed 201 kB" in m
                                                 for m in messages(app)), 5)
        await settle(pilot)
        assert app.trash_usage is None and "trash" not in status.text
        assert "Empty trash" not in [c.title for c in app.get_system_commands(app.screen)]


async def test_read_only_offers_no_trash_and_no_empty_trash(nan_base: Path) -> None:
    (nan_base / TRASH).mkdir()
    (nan_base / TRASH / "old.pt").write_bytes(b"x" * 1000)
    app = make_app(nan_base, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.trash_usage is not None  # shown
        assert "trash 1.0 kB" in app.query_one("#status").text
        assert "Empty trash" not in [c.title for c in app.get_system_commands(app.screen)]
        assert app.check_action("empty_trash", ()) is False
        await goto(pilot, f"{D3}@100")
        await pilot.press("x")  # (read-only: says why, no modal)
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDelete)


# -- snapshots: the modals ------------------------------------------------------------------

SIZES = [(120, 40), (80, 24)]


class Host(App):  # type: ignore[type-arg]
    def __init__(self, factory) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.factory = factory

    def on_mount(self) -> None:
        self.push_screen(self.factory())


def _latest_plan(base: Path):  # type: ignore[no-untyped-def]
    cat = scan(base)
    assess_metas(cat.checkpoints)
    d3 = cat.stage("base").tag("d3")
    return plan_selection(cat, d3.checkpoints)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_confirm_delete_with_trash_and_verdicts_snapshot(nan_master: Path, snap_compare,
                                                         size) -> None:  # type: ignore[no-untyped-def]
    plan = _latest_plan(nan_master)
    trash = Path("/data/nanochat/.nanochat-ckpt-trash")
    assert snap_compare(Host(lambda: ConfirmDelete(plan, trash=trash)), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_confirm_latest_snapshot(nan_master: Path, snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    plan = _latest_plan(nan_master)
    assert snap_compare(Host(lambda: ConfirmLatest(plan)), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_empty_trash_snapshot(snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    files = [(f"base_checkpoints/d20/{kind}_{s:06d}{sfx}", n) for s in (1000, 2000, 3000)
             for kind, sfx, n in (("model", ".pt", 1_100_000_000), ("meta", ".json", 900),
                                  ("optim", "_rank0.pt", 2_200_000_000),
                                  ("optim", "_rank1.pt", 2_200_000_000))]
    root = Path("/data/nanochat/.nanochat-ckpt-trash")
    assert snap_compare(Host(lambda: EmptyTrashDialog(root, files)), terminal_size=size)
