"""A long scan hands out partial catalogs: every tag at once (stand-ins for those not listed
yet), the default tags listed first; the final catalog is the plain scan's, notes included."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from conftest import memory_copy

from nanochat_ckpt_tui.store.layout import Catalog, scan
from nanochat_ckpt_tui.store.pins import update_pin

LATER = time.time() + 3600  # "now" for the scans: nothing is in flight


def with_notes(base: Path) -> Path:
    """The demo with something to note in several tags (a second meta file, a broken pins
    sidecar) and pins, so that notes and pins cross tags listed in another order."""
    for stage, tag in (("base_checkpoints", "d4"), ("mid_checkpoints", "d4"),
                       ("base_checkpoints", "d6")):
        d = base / stage / tag
        metas = sorted(d.glob("meta_*.json"))
        if metas:  # meta_6.json beside meta_000006.json: "a second meta file"
            step = int(metas[0].stem.split("_")[1])
            shutil.copy(metas[0], d / f"meta_{step}.json")
    for stage in ("chatrl_checkpoints", "chatsft_checkpoints"):
        (base / stage / "d4" / ".nanochat-ckpt.json").write_text("{not json")
    update_pin(base / "base_checkpoints" / "d4", 2500, pinned=True, note="best so far")
    update_pin(base / "base_checkpoints" / "d6", 1200, pinned=True)
    return base


def check_partials(parts: list[Catalog], final: Catalog) -> None:
    """Each partial has the final catalog's stages and tags, in order; a tag listed is the
    final catalog's own object (pins read), the others are empty stand-ins; one more tag is
    listed in each."""
    final_tags = {(t.stage, t.name): t for t in final.tags}
    waiting = []
    for part in parts:
        assert not part.complete and part.exists
        assert [s.dirname for s in part.stages] == [s.dirname for s in final.stages]
        for stage, done in zip(part.stages, final.stages, strict=True):
            assert [t.name for t in stage.tags] == [t.name for t in done.tags]
            assert stage is not done  # (its byte totals are its own)
        for tag in part.tags:
            if tag.scanning:
                assert not tag.checkpoints and not tag.other_files
                assert tag is not final_tags[tag.stage, tag.name]
            else:
                assert tag is final_tags[tag.stage, tag.name]
        waiting.append(sum(t.scanning for t in part.tags))
    assert waiting == list(range(len(final.tags) - 1, 0, -1))
    assert final.complete and not any(t.scanning for t in final.tags)


def test_partials_then_the_same_catalog_as_a_plain_scan(demo_dir: Path) -> None:
    base = with_notes(demo_dir)
    plain = scan(base, now=LATER)
    assert len(plain.notes) == 5  # three second metas, two unreadable pins files
    parts: list[Catalog] = []
    final = scan(base, now=LATER, partial=parts.append, first=0, every=0)
    assert final == plain  # notes in the same order, though the tags were listed in another
    check_partials(parts, final)
    # the default tags (the ones a UI shows open) come first: base's d6, then each stage's
    first = [(t.stage, t.name) for t in parts[0].tags if not t.scanning]
    assert first == [("base_checkpoints", "d6")]
    listed = [{(t.stage, t.name) for t in p.tags if not t.scanning} for p in parts]
    assert listed[2] - listed[1] == {("chatsft_checkpoints", "d4")}
    # pins are read before a partial shows a tag (and d4's, listed last, at the end)
    assert parts[0].stage("base").tag("d6").checkpoint(1200).pinned
    assert parts[-1].stage("base").tag("d4").scanning
    assert final.stage("base").tag("d4").checkpoint(2500).note == "best so far"
    # the notes so far come with each partial
    assert all(set(p.notes) <= set(final.notes) for p in parts)
    assert len(parts[-1].notes) >= len(parts[0].notes)


def test_a_quick_scan_makes_no_partial(demo_master: Path) -> None:
    parts: list[Catalog] = []
    cat = scan(demo_master, now=LATER, partial=parts.append, first=60)
    assert parts == [] and cat == scan(demo_master, now=LATER)


def test_partials_of_an_empty_or_missing_base_dir(tmp_path: Path) -> None:
    parts: list[Catalog] = []
    (tmp_path / "base_checkpoints").mkdir()
    assert scan(tmp_path, partial=parts.append, first=0, every=0).stages[0].tags == []
    missing = scan(tmp_path / "nope", partial=parts.append, first=0, every=0)
    assert not missing.exists and parts == []


def test_remote_partials_equal_the_plain_scan(demo_dir: Path) -> None:
    """Over fsspec the tag dirs are listed concurrently (Storage.imap); the partials and the
    result are the same as local ones."""
    base = with_notes(demo_dir)
    with memory_copy(base) as url:
        plain = scan(url, now=LATER)
        parts: list[Catalog] = []
        final = scan(url, now=LATER, partial=parts.append, first=0, every=0)
        assert final == plain and len(plain.notes) == 5
        check_partials(parts, final)
        assert [t.name for t in final.tags] == [t.name for t in scan(base, now=LATER).tags]
