"""``resolve_one_tag``: one tag dir listed alone gives the checkpoint a full scan gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.layout import Checkpoint, scan
from nanochat_ckpt_tui.store.refs import resolve, resolve_one_tag


def same(a: Checkpoint, b: Checkpoint) -> None:
    """Every field (files with sizes and mtimes, state, problems, latest, pin, note) equal."""
    assert a == b and a.key == b.key and a.storage.writable and b.storage.writable


def test_every_step_of_the_demo_by_label_and_by_dir(demo_dir: Path) -> None:
    cat = scan(demo_dir, now=0)
    seen = 0
    for stage in cat.stages:
        for tag in stage.tags:
            for ck in tag.checkpoints:
                for name in {stage.dirname, stage.label}:
                    for step in (str(ck.step), *(["latest"] if ck is tag.latest else [])):
                        ref = f"{name}/{tag.name}@{step}"
                        quick = resolve_one_tag(demo_dir, ref, now=0)
                        if name == stage.dirname or stage.label in ("base", "mid", "sft", "rl"):
                            assert quick is not None, ref
                            same(quick, resolve(cat, ref))
                            seen += 1
    assert seen > 20


def test_pins_and_notes_come_along(demo_dir: Path) -> None:
    from nanochat_ckpt_tui.store.pins import update_pin

    cat = scan(demo_dir, now=0)
    tag = cat.stage("base").tags[0]
    ck = tag.checkpoints[0]
    update_pin(tag.path, ck.step, pinned=True, note="keep for the paper")
    quick = resolve_one_tag(demo_dir, f"base/{tag.name}@{ck.step}", now=0)
    assert quick is not None and quick.pinned and quick.note == "keep for the paper"
    same(quick, resolve(scan(demo_dir, now=0), f"base/{tag.name}@{ck.step}"))


@pytest.mark.parametrize("ref", ["d4", "d4@latest", "base/d4", "base/nope@1",
                                 "base/d4@999999", "base/d4@x", "unknown/d4@1",
                                 "base/../d4@1", "base/a/b@1", "model_000100.pt"])
def test_anything_else_is_left_to_the_full_scan(demo_dir: Path, ref: str) -> None:
    assert resolve_one_tag(demo_dir, ref, now=0) is None


def test_a_linked_tag_dir_is_left_to_the_full_scan(demo_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (demo_dir / "base_checkpoints" / "d4").rename(outside)
    os.symlink(outside, demo_dir / "base_checkpoints" / "d4")
    assert resolve_one_tag(demo_dir, "base/d4@latest", now=0) is None
