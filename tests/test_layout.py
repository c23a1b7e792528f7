"""The scanner: every checkpoint state, other files, sizes, latest step, bad directories."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store import layout
from nanochat_ckpt_tui.store.layout import State, resolve_base_dir, scan

OLD = time.time() - 3600


def _age(path: Path, t: float = OLD) -> None:
    os.utime(path, (t, t))


def nanochat_find_last_step(checkpoint_dir: Path) -> int:
    """nanochat's own find_last_step (checkpoint_manager.py), for comparison."""
    steps = []
    for f in checkpoint_dir.glob("model_*.pt"):
        m = re.match(r"model_(\d+)\.pt$", f.name)
        if m:
            steps.append(int(m.group(1)))
    return max(steps)


def test_demo_tree_shape(demo_master: Path) -> None:
    cat = scan(demo_master)
    assert cat.exists and not cat.notes
    assert [s.dirname for s in cat.stages] == [
        "base_checkpoints", "mid_checkpoints", "chatsft_checkpoints", "chatrl_checkpoints"]
    assert [s.label for s in cat.stages] == ["base", "mid", "sft", "rl"]
    base = cat.stage("base")
    assert [t.name for t in base.tags] == ["d2_legacy", "d4", "d6"]
    d4 = base.tag("d4")
    assert [c.step for c in d4.checkpoints] == [500, 1000, 1500, 2000, 2500, 3000]
    assert all(c.state is State.COMPLETE for c in d4.checkpoints)
    assert all(c.ranks == [0, 1] for c in d4.checkpoints)
    # the stray backup copy is listed, never guessed to be a checkpoint
    assert [f.name for f in d4.other_files] == ["model_002000_backup.pt"]
    # tokenizer/, report/ and report.md are not stages
    assert not any(s.dirname.startswith(("tokenizer", "report")) for s in cat.stages)


def test_latest_step_matches_nanochat(demo_master: Path) -> None:
    cat = scan(demo_master)
    for tag in cat.tags:
        if any(c.model for c in tag.checkpoints):
            assert tag.latest_step == nanochat_find_last_step(tag.path), tag.name
    d6 = cat.stage("base").tag("d6")
    assert d6.latest_step == 1200  # nanochat picks it even though its meta is missing
    assert [c.step for c in d6.checkpoints if c.is_latest] == [1200]


def test_default_tag_as_nanochat_picks_it(demo_master: Path) -> None:
    cat = scan(demo_master)
    assert cat.stage("base").default_tag == "d6"  # largest d(\d+), d2_legacy counts as 2
    assert cat.stage("rl").default_tag == "d4"


def test_meta_missing_state(demo_master: Path) -> None:
    ck = scan(demo_master).stage("base").tag("d6").checkpoint(1200)
    assert ck.state is State.NO_META
    assert ck.meta is None and ck.optim == []
    assert "without meta" in ck.problems[0]


def test_old_layouts(demo_master: Path) -> None:
    cat = scan(demo_master)
    mid = cat.stage("mid").tag("d4").checkpoint(400)
    assert [f.name for f in mid.optim] == ["optim_000400.pt"] and mid.optim[0].rank is None
    assert mid.state is State.COMPLETE
    legacy = cat.stage("base").tag("d2_legacy")
    assert [c.step for c in legacy.checkpoints] == [1000, 2000]
    assert legacy.checkpoints[0].legacy is not None and legacy.checkpoints[0].model is None
    assert legacy.checkpoints[0].state is State.COMPLETE
    assert legacy.latest_step == 2000


def test_orphan_meta_without_model(demo_dir: Path) -> None:
    tag = demo_dir / "base_checkpoints" / "d4"
    (tag / "model_001000.pt").unlink()
    cat = scan(demo_dir)
    ck = cat.stage("base").tag("d4").checkpoint(1000)
    assert ck.state is State.ORPHAN
    assert ck.model is None and ck.meta is not None


def test_optimizer_shards_incomplete(demo_dir: Path) -> None:
    (demo_dir / "base_checkpoints" / "d4" / "optim_001500_rank1.pt").unlink()
    d4 = scan(demo_dir).stage("base").tag("d4")
    ck = d4.checkpoint(1500)
    assert ck.state is State.OPTIM_INCOMPLETE
    assert "missing [1]" in ck.problems[0]
    assert d4.checkpoint(1000).state is State.COMPLETE


def test_weights_only_checkpoint_is_not_incomplete(demo_dir: Path) -> None:
    for r in (0, 1):
        (demo_dir / "base_checkpoints" / "d4" / f"optim_001500_rank{r}.pt").unlink()
    ck = scan(demo_dir).stage("base").tag("d4").checkpoint(1500)
    assert ck.state is State.COMPLETE and ck.optim == []


def test_recent_write_is_writing(demo_dir: Path) -> None:
    model = demo_dir / "base_checkpoints" / "d4" / "model_003000.pt"
    now = time.time()
    _age(model, now - 1)
    ck = scan(demo_dir, now=now).stage("base").tag("d4").checkpoint(3000)
    assert ck.state is State.WRITING and ck.is_writing
    # once the write window has passed, the same files are complete
    ck = scan(demo_dir, now=now + layout.WRITE_WINDOW + 1).stage("base").tag("d4").checkpoint(3000)
    assert ck.state is State.COMPLETE


def test_truncated_zip_is_writing_then_corrupt(demo_dir: Path) -> None:
    model = demo_dir / "base_checkpoints" / "d4" / "model_003000.pt"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])  # torch.save stopped half way
    now = time.time()
    _age(model, now - 30)  # older than the write window, but the zip has no end yet
    ck = scan(demo_dir, now=now).stage("base").tag("d4").checkpoint(3000)
    assert ck.state is State.WRITING
    assert "no zip central directory" in ck.problems[0]
    _age(model, now - 3600)  # an hour later, nothing changed: a crashed write
    ck = scan(demo_dir, now=now).stage("base").tag("d4").checkpoint(3000)
    assert ck.state is State.CORRUPT
    assert "truncated" in ck.problems[0]


def test_empty_optimizer_file_is_flagged(demo_dir: Path) -> None:
    shard = demo_dir / "base_checkpoints" / "d4" / "optim_000500_rank0.pt"
    shard.write_bytes(b"")
    _age(shard)
    ck = scan(demo_dir).stage("base").tag("d4").checkpoint(500)
    assert ck.state is State.CORRUPT


def test_other_files_and_strays(demo_dir: Path) -> None:
    tag = demo_dir / "base_checkpoints" / "d4"
    for name in ("model_000700.pt.tmp", "notes.txt", "meta_000500.json.bak", "optim_1_rankX.pt"):
        (tag / name).write_text("x")
    (tag / "subdir").mkdir()
    (demo_dir / "base_checkpoints" / "README").write_text("x")
    (demo_dir / "weird_checkpoints" / "run1").mkdir(parents=True)
    (demo_dir / "sft_checkpoints" / "d4").mkdir(parents=True)
    cat = scan(demo_dir)
    d4 = cat.stage("base").tag("d4")
    names = {f.name for f in d4.other_files}
    assert {"model_000700.pt.tmp", "notes.txt", "meta_000500.json.bak", "optim_1_rankX.pt",
            "subdir", "model_002000_backup.pt"} <= names
    assert [c.step for c in d4.checkpoints] == [500, 1000, 1500, 2000, 2500, 3000]
    assert [f.name for f in cat.stage("base").other_files] == ["README"]
    assert cat.stage("weird_checkpoints").label == "weird"
    assert cat.stage("sft_checkpoints").label == "sft*"


def test_sizes_roll_up(demo_master: Path) -> None:
    cat = scan(demo_master)
    d4 = cat.stage("base").tag("d4")
    ck = d4.checkpoint(500)
    sizes = {f.name: f.path.stat().st_size for f in ck.files}
    assert ck.model_bytes == sizes["model_000500.pt"]
    assert ck.optim_bytes == sizes["optim_000500_rank0.pt"] + sizes["optim_000500_rank1.pt"]
    assert ck.total_bytes == sum(sizes.values())
    on_disk = sum(p.stat().st_size for p in d4.path.iterdir())
    assert d4.total_bytes == on_disk
    assert cat.total_bytes == sum(p.stat().st_size for s in cat.stages
                                  for p in s.path.rglob("*") if p.is_file())
    assert cat.free_bytes and cat.free_bytes > 0 and cat.disk_bytes >= cat.free_bytes


def test_warm_sums_every_total_once(demo_master: Path) -> None:
    """``warm`` computes the stage/tag/catalog totals (in the scan worker) so that the UI
    thread only reads them; they equal the sums over the checkpoints' files."""
    cat = scan(demo_master)
    assert "total_bytes" not in vars(cat.stages[0])  # computed on first use only
    assert cat.warm() is cat
    for obj in [*cat.tags, *cat.stages, cat]:
        for name in ("total_bytes", "model_bytes", "optim_bytes", "meta_bytes"):
            assert name in vars(obj), (obj, name)
    for tag in cat.tags:
        assert tag.model_bytes == sum(c.model_bytes for c in tag.checkpoints)
        assert tag.optim_bytes == sum(c.optim_bytes for c in tag.checkpoints)
        assert tag.total_bytes == sum(c.total_bytes for c in tag.checkpoints) + tag.other_bytes
    for stage in cat.stages:
        assert stage.total_bytes == sum(t.total_bytes for t in stage.tags) + sum(
            f.size for f in stage.other_files)
    assert cat.total_bytes == sum(s.total_bytes for s in cat.stages)


def test_missing_base_dir(tmp_path: Path) -> None:
    cat = scan(tmp_path / "nope")
    assert not cat.exists and cat.stages == [] and "no such directory" in cat.notes[0]


def test_base_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "env"))
    assert resolve_base_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_base_dir(None) == tmp_path / "env"
    monkeypatch.delenv("NANOCHAT_BASE_DIR")
    assert resolve_base_dir(None) == Path.home() / ".cache" / "nanochat"


def test_dangling_link_and_vanishing_files(demo_dir: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    tag = demo_dir / "base_checkpoints" / "d4"
    (tag / "model_009000.pt").symlink_to(demo_dir / "does-not-exist.pt")
    victim = tag / "optim_001000_rank1.pt"
    real_scandir = os.scandir

    def scandir_then_delete(path):  # the file vanishes between listing and stat
        entries = list(real_scandir(path))
        if Path(path) == tag:
            victim.unlink()
        return _ListCtx(entries)

    monkeypatch.setattr(layout.os, "scandir", scandir_then_delete)
    cat = scan(demo_dir)
    d4 = cat.stage("base").tag("d4")
    assert 9000 not in [c.step for c in d4.checkpoints]
    assert any("model_009000.pt" in n and "vanished" in n for n in cat.notes)
    assert any("optim_001000_rank1.pt" in n for n in cat.notes)
    assert d4.checkpoint(1000).state is State.OPTIM_INCOMPLETE


class _ListCtx(list):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_unreadable_dirs_are_skipped_with_a_note(demo_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    locked = demo_dir / "chatsft_checkpoints" / "d4"
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(layout.os, "scandir", scandir)
    cat = scan(demo_dir)
    assert any(str(locked) in n and "permission denied" in n for n in cat.notes)
    assert cat.stage("sft").tag("d4").checkpoints == []
    assert len(cat.stage("base").tag("d4").checkpoints) == 6


def test_links_are_marked(demo_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.pt"
    src = demo_dir / "base_checkpoints" / "d4" / "model_000500.pt"
    outside.write_bytes(src.read_bytes())
    src.unlink()
    src.symlink_to(outside)
    ck = scan(demo_dir).stage("base").tag("d4").checkpoint(500)
    assert ck.model.is_link and ck.model.size == outside.stat().st_size


def test_meta_json_is_not_read_by_scan(demo_dir: Path) -> None:
    meta = demo_dir / "base_checkpoints" / "d4" / "meta_000500.json"
    meta.write_text("{ not json")
    _age(meta)
    ck = scan(demo_dir).stage("base").tag("d4").checkpoint(500)
    assert ck.state is State.COMPLETE  # scanning only stats; the error shows when read
    json.loads((demo_dir / "base_checkpoints" / "d4" / "meta_001000.json").read_text())


def test_the_scan_names_the_pins_sidecar_as_pins_does() -> None:
    """layout knows the sidecar's name itself (it imports pins only to read one it found)."""
    from nanochat_ckpt_tui.store import pins

    assert layout.SIDECAR == pins.SIDECAR


def _outcome(fn: object, *args: object) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except ValueError as e:  # (a text part int() refuses: "²" is a digit, not decimal)
        return ("ValueError", str(e))


def test_natural_key_and_default_tag_split_names_as_the_regexes_did() -> None:
    """natural_key and Stage.default_tag find digit runs with str methods, as
    ``re.split(r"(\\d+)")`` and ``re.match(r"d(\\d+)")`` did (any Unicode decimal digit)."""
    import random

    def old_key(name: str) -> list[object]:
        return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]

    rng = random.Random(5)
    pieces = ["d", "D", "1", "20", "0", "\u0663", "\uff12", "\u00b2", "_", "x", ".pt", "é"]
    names = ["", "d", "d1", "1", "d20x", "D2", "x1y22z"] + [
        "".join(rng.choices(pieces, k=rng.randint(1, 8))) for _ in range(20_000)]
    for name in names:
        assert _outcome(layout.natural_key, name) == _outcome(old_key, name), name
        m = re.match(r"d(\d+)", name)
        stage = layout.Stage("base_checkpoints", Path("/b"),
                             [layout.Tag("base_checkpoints", name, Path("/b") / "t"),
                              layout.Tag("base_checkpoints", "e", Path("/b/e"), mtime=1.0)])
        assert stage.default_tag == (name if m else "e"), name
