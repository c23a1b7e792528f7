"""``resolve_one_tag``: one tag dir listed alone gives the checkpoint a full scan gives."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.layout import Checkpoint, FileKind, State, scan
from nanochat_ckpt_tui.store.refs import resolve, resolve_one_tag
from nanochat_ckpt_tui.store.storage import LocalStorage


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


def test_truncated_and_unfinished_zips_and_only_the_steps_own_read(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step whose model is truncated (corrupt) or whose shard is still being written comes
    out as the full scan has it, and only the step's own zips have their tails read."""
    d4 = demo_dir / "base_checkpoints" / "d4"
    for name, age in (("model_001000.pt", 3600), ("optim_002500_rank1.pt", 30)):
        data = (d4 / name).read_bytes()
        (d4 / name).write_bytes(data[:len(data) // 2])
        os.utime(d4 / name, (time.time() - age,) * 2)
    now = time.time()
    cat = scan(demo_dir, now=now)
    states = {ck.step: ck.state for ck in cat.stage("base").tag("d4").checkpoints}
    assert states[1000] is State.CORRUPT and states[2500] is State.WRITING
    read: list[str] = []
    real = LocalStorage.zip_whole
    monkeypatch.setattr(LocalStorage, "zip_whole",
                        staticmethod(lambda *a: read.append(a[0]) or real(*a)))
    for ck in cat.stage("base").tag("d4").checkpoints:
        for step in (str(ck.step), *(["latest"] if ck.is_latest else [])):
            read.clear()
            quick = resolve_one_tag(demo_dir, f"base/d4@{step}", now=now)
            assert quick is not None
            same(quick, resolve(cat, f"base/d4@{step}"))
            assert sorted(read) == sorted(str(f.path) for f in ck.files if f.kind is not
                                          FileKind.META)


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
