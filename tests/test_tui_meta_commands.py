"""The detail pane's metrics (the train loss as the debiased EMA) and schedule, the tag plot's
and the diff's labels, ``y`` (copy a nanochat command), archived badges by content, and
``bad meta`` in the tree."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from textual.app import App

from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.storage import LocalStorage
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.command_menu import CommandMenu, choices
from nanochat_ckpt_tui.tui.confirm_delete import ConfirmDelete, ConfirmLatest
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.diff_screen import DiffScreen
from nanochat_ckpt_tui.tui.testing import goto, settle, wait_for
from nanochat_ckpt_tui.tui.trash_dialog import EmptyTrashDialog
from nanochat_ckpt_tui.tui.tree import CheckpointTree

D4 = "base_checkpoints/d4"
SIZE = (120, 40)


def make_app(base: Path, **kw: object) -> CkptApp:
    return CkptApp(base, watch=False, display_name="demo", **kw)  # type: ignore[arg-type]




def detail(app: CkptApp) -> str:
    return app.query_one(DetailPane).body.text


def flat(text: str) -> str:
    return " ".join(text.split())


def messages(app: CkptApp) -> list[str]:
    return [n.message for n in app._notifications]


# -- metrics, schedule ----------------------------------------------------------------------


async def test_train_loss_is_the_debiased_ema_and_the_schedule_is_shown(
        demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@1500")
        text = flat(detail(app))
        # the meta's loop_state.smooth_train_loss is 2.9*0.8917+0.05 = 2.6359 (raw EMA);
        # debiased after 1,500 steps it is the same to 4 places
        assert "train loss (debiased EMA) 2.6359" in text
        assert "train_loss_ema" not in text and "train_loss " not in text
        assert "schedule step 1,500 / 3,000 · warmdown · lrm" in text
        await goto(pilot, f"{D4}@500")
        assert "schedule step 500 / 3,000 · constant · lrm 1.00" in flat(detail(app))
        await goto(pilot, "chatsft_checkpoints/d4@600")  # not a base run: no schedule
        assert "val_bpb 0.7037" in detail(app) and "schedule" not in detail(app)
        await goto(pilot, D4)  # the tag's plot, labelled the same way
        text = detail(app)
        assert "train loss (debiased EMA)  last" in text and "train_loss_ema" not in text


async def test_the_diff_meta_tab_names_the_train_loss_the_same_way(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@2500")
        await pilot.press("d")
        assert await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        screen = app.screen
        assert await wait_for(pilot, lambda: screen.report is not None, 10)
        text = screen.meta_text()
        assert "metrics.train loss (debiased EMA):" in text
        assert "train_loss_ema" not in text and "metrics.train_loss:" not in text
        assert "metrics.val_bpb:" in text


# -- y: copy the nanochat command -----------------------------------------------------------


async def test_y_copies_the_chosen_command(demo_master: Path) -> None:
    app = make_app(demo_master)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto(pilot, f"{D4}@3000")
        await pilot.press("y")
        assert await wait_for(pilot, lambda: isinstance(app.screen, CommandMenu))
        menu = app.screen
        kinds = [c.kind for c in menu.options]
        assert kinds == ["resume", "eval", "chat", "sft"]
        assert all(c.command is not None for c in menu.options)
        await pilot.press("2")  # eval
        await pilot.pause()
        expected = (f"NANOCHAT_BASE_DIR={demo_master} torchrun --standalone "
                    "--nproc_per_node=2 -m scripts.base_eval -- --model-tag=d4 --step=3000")
        assert app.clipboard == expected
        assert any(m == f"Copied to the clipboard: {expected}" for m in messages(app))
        # Enter copies the highlighted one (the first that applies: resume)
        await pilot.press("y")
        assert await wait_for(pilot, lambda: isinstance(app.screen, CommandMenu))
        await pilot.press("enter")
        await pilot.pause()
        assert "scripts.base_train" in app.clipboard and "--resume-from-step=3000" in \
            app.clipboard
        # a step that cannot resume: greyed with the reason, not copied
        await goto(pilot, "chatrl_checkpoints/d4@200")
        await pilot.press("y")
        assert await wait_for(pilot, lambda: isinstance(app.screen, CommandMenu))
        menu = app.screen
        resume = menu.options[0]
        assert resume.command is None and "only base training resumes" in resume.why_not
        option_list = menu.query_one("#commands")
        assert option_list.get_option_at_index(0).disabled
        assert option_list.highlighted == 1  # the first that applies
        app.clear_notifications()
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, CommandMenu)
        assert any("only base training resumes" in m for m in messages(app))
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CommandMenu)
        # on a tag: says what y does
        await goto(pilot, D4)
        app.clear_notifications()
        await pilot.press("y")
        await pilot.pause()
        assert not isinstance(app.screen, CommandMenu)
        assert any("Highlight a checkpoint to copy the nanochat command" in m
                   for m in messages(app))


class Host(App):  # type: ignore[type-arg]
    def __init__(self, factory) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.factory = factory

    def on_mount(self) -> None:
        self.push_screen(self.factory())


def _menu(base: Path, key: str) -> CommandMenu:
    cat = scan(base)
    ck = next(c for c in cat.checkpoints if c.key == key)
    return CommandMenu(key.replace("_checkpoints/", "/"), choices(ck, "/data/nanochat"))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_command_menu_snapshot(demo_master: Path, snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    """The four commands of base/d4@3000 (resume replays the run's arguments)."""
    assert snap_compare(Host(lambda: _menu(demo_master, f"{D4}@3000")), terminal_size=size)


def test_command_menu_with_reasons_snapshot(demo_master: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    """An RL step: resume and sft greyed out, each with why."""
    assert snap_compare(Host(lambda: _menu(demo_master, "chatrl_checkpoints/d4@200")),
                        terminal_size=(120, 40))


async def test_new_dialogs_fit_80x24(demo_master: Path) -> None:
    """Every button and the dialog stay on the 80x24 screen."""
    from test_tui_check import write_nan_base
    from test_tui_delete_verified import _latest_plan  # (the NaN base: written here)

    base = write_nan_base(Path(os.environ["NANOCHAT_CKPT_CACHE"]).parent / "nan", time.time())
    plan = _latest_plan(base)
    trash = Path("/data/nanochat/.nanochat-ckpt-trash")
    files = [(f"base_checkpoints/d4/model_{s:06d}.pt", 10**9) for s in range(40)]
    for factory in (lambda: _menu(demo_master, f"{D4}@3000"), lambda: ConfirmLatest(plan),
                    lambda: ConfirmDelete(plan, trash=trash),
                    lambda: EmptyTrashDialog(trash, files)):
        app = Host(factory)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            screen = app.screen
            for widget in screen.query("Button, #dialog, #commands"):
                assert screen.region.contains_region(widget.region), (factory, widget)


# -- archived by content, bad meta ----------------------------------------------------------


async def test_archived_badge_follows_the_bytes(demo_dir: Path, tmp_path: Path) -> None:
    from nanochat_ckpt_tui.store.archive import archive

    cat = scan(demo_dir)
    ck = next(c for c in cat.checkpoints if c.key == f"{D4}@2000")
    archive([ck], tmp_path / "backup")  # (remembered as the last destination)
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        assert await wait_for(pilot, lambda: tree.archived == {f"{D4}@2000"}, 5)
        assert "archived" in tree._label(tree.ref_for(f"{D4}@2000")).plain
        # the same name with other bytes (a new save over it): no longer the archived copy
        model = demo_dir / D4 / "model_002000.pt"
        model.write_bytes((demo_dir / D4 / "model_001500.pt").read_bytes())
        old = time.time() - 3600
        os.utime(model, (old, old))
        app.request_scan()
        await settle(pilot)
        assert await wait_for(pilot, lambda: tree.archived == set(), 5)
        assert "archived" not in tree._label(tree.ref_for(f"{D4}@2000")).plain


async def test_bad_meta_shows_in_the_tree(demo_dir: Path) -> None:
    meta = demo_dir / D4 / "meta_001000.json"
    st = meta.stat()
    meta.write_text('{"step": 1000, "val_bpb": 0.96}')  # no model_config: nanochat fails
    os.utime(meta, (st.st_atime, st.st_mtime))
    app = make_app(demo_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        label = tree._label(tree.ref_for(f"{D4}@1000")).plain
        assert label.split()[-1] == "meta" and "bad meta" in label
        await goto(pilot, f"{D4}@1000")
        assert "no model_config: nanochat cannot build the model" in flat(detail(app))


@pytest.fixture
def fixed_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    # (the local storage's free and total bytes: what the app shows in its header)
    monkeypatch.setattr(LocalStorage, "disk_usage", lambda self: (320 * 10**9, 500 * 10**9))
