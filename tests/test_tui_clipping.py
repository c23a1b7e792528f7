"""Nothing is cut mid-word: tree rows fit the tree (badges shortened or counted, names
shortened with an ellipsis), the stage and tag summaries keep every column with long names
and thousands of steps; tag rows show the best val_bpb (issue 14, items 13 and 20)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.pins import update_pin
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.palette import SHORT_BADGES, STATE_BADGES
from nanochat_ckpt_tui.tui.testing import settle
from nanochat_ckpt_tui.tui.tree import CheckpointTree

NOW = 1_780_000_000.0
LONG = "d" + "x" * 198  # a 199-character tag name
EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18
WORDS = {w for w, _ in STATE_BADGES.values()} | {"latest", "pinned", "archived"}
WORDS |= set(SHORT_BADGES.values())


def write_long_names(base: Path) -> Path:
    """A long tag name, a tag of 6,000 steps, and a step with many badges."""
    old = NOW - 86400

    def step(d: Path, s: int, bpb: float, ranks: int = 0) -> None:
        d.mkdir(parents=True, exist_ok=True)
        meta = b'{"val_bpb": %.4f, "model_config": {}}' % bpb  # (loadable: not "bad meta")
        files = [(f"model_{s:06d}.pt", EMPTY_ZIP), (f"meta_{s:06d}.json", meta)]
        files += [(f"optim_{s:06d}_rank{r}.pt", EMPTY_ZIP) for r in range(ranks)]
        for name, data in files:
            (d / name).write_bytes(data)
            os.utime(d / name, (old, old))

    stage = base / "base_checkpoints"
    for s, v in ((100, 1.2), (200, 1.1), (300, 1.15)):
        step(stage / LONG, s, v)
    for s in range(10, 60_001, 10):
        step(stage / "d20", s, 0.8 + abs(30_000 - s) / 100_000)
    step(stage / "d4", 1000, 0.95, ranks=2)
    step(stage / "d4", 2000, 0.9, ranks=1)  # fewer shards than 1000: "incomplete", latest
    update_pin(stage / "d4", 2000, pinned=True)
    return base


@pytest.fixture(scope="module")
def long_names(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_long_names(tmp_path_factory.mktemp("long") / "base")


def make_app(base: Path) -> CkptApp:
    return CkptApp(base, watch=False, display_name="long", clock=lambda: NOW)


def detail(app: CkptApp) -> str:
    return app.query_one(DetailPane).body.text


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_tree_rows_fit_and_words_are_whole(long_names: Path, size) -> None:  # type: ignore[no-untyped-def]
    app = make_app(long_names)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        app.expand_all(True)
        await settle(pilot)
        width = tree.size.width - tree.styles.scrollbar_size_vertical
        assert tree.virtual_size.width <= tree.size.width  # nothing to scroll sideways
        for key in tree.visible_keys()[:300]:
            ref = tree.ref_for(key)
            label = tree._label(ref).plain
            indent = {"stage": 2, "tag": 5, "ck": 6}[ref.kind]
            assert len(label) <= width - indent, (key, label)
            if ref.kind == "ck":  # after step, size(s), val_bpb and age: whole badges
                for word in label[tree._ck_fixed() + 7:].split():
                    assert word in WORDS or word.startswith("+"), (key, label)
        long_row = tree._label(tree.ref_for(f"base_checkpoints/{LONG}")).plain
        assert "…" in long_row and "3 steps" in long_row
        # incomplete, latest, pinned: shortened, then counted, the most urgent kept
        d4 = tree._label(tree.ref_for("base_checkpoints/d4@2000")).plain
        badges = d4[tree._ck_fixed() + 7:].split()
        assert badges == (["incompl", "+2"] if size == (120, 40) else ["incompl"])


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_stage_and_tag_summaries_keep_every_column(long_names: Path, size) -> None:  # type: ignore[no-untyped-def]
    app = make_app(long_names)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        tree.move_cursor(tree.node_for("stage:base_checkpoints"))
        await settle(pilot)
        text = detail(app)
        assert LONG not in text and "dxxxxxxxxxx" in text and "…" in text
        width = app.query_one(DetailPane).scrollable_content_region.width
        assert all(len(line) <= width for line in text.splitlines())
        if size == (120, 40):  # a table: every column
            head = next(line for line in text.splitlines() if line.lstrip().startswith("tag"))
            assert head.split() == ["tag", "steps", "latest", "val_bpb", "size", "trend"]
            row = next(line for line in text.splitlines() if line.lstrip().startswith("d20"))
            cells = row.split()  # name, steps, latest, val_bpb, size (2 words), trend
            assert cells[1:4] == ["6000", "60000", "1.1000"] and cells[5] == "kB"
            assert all("▁" <= ch <= "█" for ch in cells[6]) and len(cells) == 7
        else:  # too narrow for one: two lines a tag, every value
            flat = " ".join(text.split())
            assert "6000 steps · latest 60000 · val_bpb 1.1000" in flat
        tree.move_cursor(tree.node_for("base_checkpoints/d20"))
        await settle(pilot)
        text = detail(app)
        flat = " ".join(text.split())
        assert "latest 1.1000 (step 60000) · best 0.8000 (step 30000)" in flat
        assert all(len(line) <= width for line in text.splitlines())
        lines = text.splitlines()
        if size == (120, 40):
            head = next(line for line in lines if line.lstrip().startswith("step "))
            assert head.split() == ["step", "val_bpb", "train_loss", "size", "age", "state"]
            assert any(line.split()[:2] == ["60000", "1.1000"] for line in lines)
        else:
            assert any(line.split() == ["60000", "val_bpb", "1.1000", "loss", "-"]
                       for line in lines)
        tree.move_cursor(tree.node_for(f"base_checkpoints/{LONG}"))
        await settle(pilot)
        text = detail(app)
        title = text.splitlines()[0]
        assert title.startswith("Tag base_checkpoints/dx") and title.endswith("…")
        assert LONG in "".join(text.split())  # the full name, folded, under the title


async def test_tag_rows_show_the_best_val_bpb(demo_master: Path) -> None:
    app = CkptApp(demo_master, watch=False, display_name="demo")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        d4 = tree._label(tree.ref_for("base_checkpoints/d4")).plain
        assert "bpb 0.8297 (best)" in d4  # the latest is the best
        tree.move_cursor(tree.node_for("base_checkpoints/d4"))
        await settle(pilot)
        assert "latest 0.8297 (step 3000), the best" in " ".join(detail(app).split())


async def test_best_beside_latest_when_they_differ(long_names: Path) -> None:
    app = make_app(long_names)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = app.query_one(CheckpointTree)
        label = tree._label(tree.ref_for("base_checkpoints/d20")).plain
        assert "bpb 1.1000 · best 0.8000@30000" in label
        long_row = tree._label(tree.ref_for(f"base_checkpoints/{LONG}")).plain
        assert "bpb 1.1500" in long_row  # (its best, 1.1@200, left out if it does not fit)


@pytest.fixture
def fixed_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    from nanochat_ckpt_tui.store.storage import LocalStorage

    # (the local storage's free and total bytes: what the app shows in its header)
    monkeypatch.setattr(LocalStorage, "disk_usage", lambda self: (320 * 10**9, 500 * 10**9))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_long_names_snapshot(long_names: Path, fixed_disk: None, snap_compare, size) -> None:  # type: ignore[no-untyped-def]
    """The stage summary with a 199-character tag name and a 6,000-step tag, beside the
    tree with the badges of base/d4@2000 (incomplete, latest, pinned) fitted."""

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        tree = pilot.app.query_one(CheckpointTree)
        tree.node_for("base_checkpoints/d20").collapse()
        tree.node_for("base_checkpoints/d4").expand()
        tree.move_cursor(tree.node_for("stage:base_checkpoints"))
        await settle(pilot)

    assert snap_compare(make_app(long_names), terminal_size=size, run_before=run_before)
