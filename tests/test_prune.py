"""Prune plans and their execution: rules, protections, warnings, re-checks, trash, pins."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from nanochat_ckpt_tui.cli import main
from nanochat_ckpt_tui.store import pins as pins_mod
from nanochat_ckpt_tui.store import prune as prune_mod
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.pins import PinsError, load_pins, set_aside, update_pin
from nanochat_ckpt_tui.store.prune import (
    Override,
    PruneError,
    Rules,
    check_trash,
    execute,
    plan_rules,
    plan_selection,
)


def d4_of(base: Path):
    cat = scan(base)
    return cat, cat.stage("base").tag("d4")


def deleted_steps(plan) -> list[int]:
    return sorted({int(k.rsplit("@", 1)[1]) for k in plan.checkpoints})


# --------------------------------------------------------------------------------- rules

def test_keep_last(demo_master: Path) -> None:
    cat, d4 = d4_of(demo_master)
    plan = plan_rules(cat, [d4], Rules(keep_last=2))
    assert deleted_steps(plan) == [500, 1000, 1500, 2000]
    assert len(plan.items) == 16  # model, meta, 2 shards each
    assert plan.bytes_freed == sum(d4.checkpoint(s).total_bytes for s in (500, 1000, 1500, 2000))
    assert all(i.reason == "not kept by: keep last 2" for i in plan.items)
    assert not plan.protected  # the latest is kept by the rule itself


def test_keep_every_is_by_step_multiple(demo_master: Path) -> None:
    cat, d4 = d4_of(demo_master)
    plan = plan_rules(cat, [d4], Rules(keep_every=1000))
    assert deleted_steps(plan) == [500, 1500, 2500]


def test_keep_best_by_val_bpb(demo_dir: Path) -> None:
    meta = demo_dir / "base_checkpoints/d4/meta_001000.json"
    doc = json.loads(meta.read_text())
    doc["val_bpb"] = 0.5  # step 1000 becomes the best
    meta.write_text(json.dumps(doc))
    os.utime(meta, (time.time() - 3600,) * 2)
    cat, d4 = d4_of(demo_dir)
    plan = plan_rules(cat, [d4], Rules(keep_best=2))
    # best two: 1000 (0.5) and 3000; 3000 is latest anyway
    assert deleted_steps(plan) == [500, 1500, 2000, 2500]


def test_rules_combine_as_union(demo_master: Path) -> None:
    cat, d4 = d4_of(demo_master)
    plan = plan_rules(cat, [d4], Rules(keep_last=1, keep_every=1000, keep_best=1))
    assert deleted_steps(plan) == [500, 1500, 2500]


def test_optimizer_only(demo_master: Path) -> None:
    cat, d4 = d4_of(demo_master)
    plan = plan_rules(cat, [d4], Rules(keep_last=2, optimizer_only=True))
    assert {i.kind for i in plan.items} == {"optim"}
    assert len(plan.items) == 8
    assert any("--resume-from-step" in w for w in plan.warnings)


def test_no_meta_checkpoints_count_for_keep_last_but_not_best(demo_master: Path) -> None:
    cat = scan(demo_master)
    d6 = cat.stage("base").tag("d6")
    assert deleted_steps(plan_rules(cat, [d6], Rules(keep_best=5))) == [400, 800]


def test_bad_rules() -> None:
    with pytest.raises(PruneError, match="at least one rule"):
        Rules()
    with pytest.raises(PruneError, match="keep-every"):
        Rules(keep_every=0)


# --------------------------------------------------------------------------- protections

def test_latest_is_protected_unless_overridden(demo_master: Path) -> None:
    cat, d4 = d4_of(demo_master)
    plan = plan_selection(cat, [d4.latest])
    assert plan.is_empty and "latest step" in plan.protected[0].reason
    plan = plan_selection(cat, [d4.latest], override=Override(latest=True))
    assert deleted_steps(plan) == [3000]
    assert any("chat/eval will load step 2500" in w for w in plan.warnings)


def test_pinned_is_protected_unless_overridden(demo_dir: Path) -> None:
    update_pin(demo_dir / "base_checkpoints/d4", 1000, pinned=True, note="sent to eval")
    cat, d4 = d4_of(demo_dir)
    assert d4.checkpoint(1000).pinned and d4.checkpoint(1000).note == "sent to eval"
    plan = plan_rules(cat, [d4], Rules(keep_last=1))
    assert 1000 not in deleted_steps(plan)
    assert plan.protected[0].reason == "pinned (sent to eval)"
    plan = plan_rules(cat, [d4], Rules(keep_last=1), Override(pinned=True))
    assert 1000 in deleted_steps(plan)


def test_being_written_is_never_deleted(demo_dir: Path) -> None:
    model = demo_dir / "base_checkpoints/d4/model_001000.pt"
    os.utime(model, None)  # just modified
    cat, d4 = d4_of(demo_dir)
    plan = plan_selection(cat, [d4.checkpoint(1000)], override=Override(True, True))
    assert plan.is_empty
    assert plan.protected[0].reason == "being written" and not plan.protected[0].overridable


def test_link_out_of_base_is_never_followed(demo_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "model_000500.pt"
    src = demo_dir / "base_checkpoints/d4/model_000500.pt"
    os.replace(src, target)
    src.symlink_to(target)
    # a whole tag dir that is a link to elsewhere
    os.replace(demo_dir / "chatrl_checkpoints/d4", outside / "rl_d4")
    (demo_dir / "chatrl_checkpoints/d4").symlink_to(outside / "rl_d4")
    old = time.time() - 3600
    os.utime(target, (old, old))
    cat = scan(demo_dir)
    d4 = cat.stage("base").tag("d4")
    plan = plan_selection(cat, [d4.checkpoint(500)])
    assert plan.is_empty and "symbolic link" in plan.protected[0].reason
    rl = cat.stage("rl").tag("d4")
    plan = plan_selection(cat, [rl.checkpoint(100)])
    assert plan.is_empty and "outside the base dir" in plan.protected[0].reason
    assert target.exists()


def test_corrupt_sidecar_protects_the_whole_tag(demo_dir: Path) -> None:
    tag = demo_dir / "base_checkpoints/d4"
    (tag / ".nanochat-ckpt.json").write_text("{ corrupt")
    cat, d4 = d4_of(demo_dir)
    assert d4.pins_error and any("corrupt" in n for n in cat.notes)
    plan = plan_rules(cat, [d4], Rules(keep_last=1))
    assert plan.is_empty
    assert all("pins file unreadable" in p.reason for p in plan.protected)


def test_legacy_optimizer_only_is_refused(demo_master: Path) -> None:
    cat = scan(demo_master)
    legacy = cat.stage("base").tag("d2_legacy")
    plan = plan_selection(cat, [legacy.checkpoint(1000)], optimizer_only=True)
    assert plan.is_empty and "step_N.pt" in plan.protected[0].reason


# ------------------------------------------------------------------------------ warnings

def test_sft_warm_start_warning(demo_master: Path) -> None:
    cat, d4 = d4_of(demo_master)
    plan = plan_selection(cat, [d4.latest], optimizer_only=True, override=Override(latest=True))
    assert any("chat_sft warm-starts" in w and "step 3000" in w for w in plan.warnings)
    plan = plan_selection(cat, [d4.checkpoint(500)])
    assert plan.warnings == []


# ------------------------------------------------------------------------------ execution

def test_execute_removes_exactly_the_plan(demo_dir: Path) -> None:
    cat, d4 = d4_of(demo_dir)
    before = {p for p in demo_dir.rglob("*") if p.is_file()}
    plan = plan_rules(cat, [d4], Rules(keep_last=3))
    result = execute(plan)
    assert result.ok and result.count("removed") == 12
    assert result.bytes_freed == plan.bytes_freed
    after = {p for p in demo_dir.rglob("*") if p.is_file()}
    assert before - after == {i.path for i in plan.items}
    assert [c.step for c in scan(demo_dir).stage("base").tag("d4").checkpoints] == [
        2000, 2500, 3000]


def test_changed_and_vanished_files_are_skipped(demo_dir: Path) -> None:
    cat, d4 = d4_of(demo_dir)
    plan = plan_rules(cat, [d4], Rules(keep_last=4))  # deletes 500 and 1000
    changed = demo_dir / "base_checkpoints/d4/model_000500.pt"
    with open(changed, "ab") as f:
        f.write(b"more")
    os.utime(changed, (time.time() - 3600,) * 2)
    vanished = demo_dir / "base_checkpoints/d4/meta_001000.json"
    vanished.unlink()
    result = execute(plan)
    by_path = {r.path: r for r in result.results}
    assert by_path[changed].status == "skipped" and "changed since the plan" in \
        by_path[changed].detail
    assert by_path[vanished].status == "skipped" and "vanished" in by_path[vanished].detail
    assert changed.exists()
    assert result.count("removed") == 6 and not result.ok


def test_file_being_written_at_execute_time_is_skipped(demo_dir: Path) -> None:
    cat, d4 = d4_of(demo_dir)
    plan = plan_selection(cat, [d4.checkpoint(500)])
    path = plan.items[0].path
    result = execute(plan, now=lambda: plan.items[0].mtime + 1)
    assert {r.path: r.status for r in result.results}[path] == "skipped"
    assert path.exists()


def test_os_error_on_one_file_others_proceed(demo_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cat, d4 = d4_of(demo_dir)
    plan = plan_selection(cat, [d4.checkpoint(500), d4.checkpoint(1000)])
    victim = plan.items[1].path
    real_unlink = os.unlink

    def unlink(path, *a, **k):
        if Path(path) == victim:
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(prune_mod.os, "unlink", unlink)
    result = execute(plan)
    statuses = {r.path: r for r in result.results}
    assert statuses[victim].status == "failed" and "busy" in statuses[victim].detail
    assert result.count("removed") == len(plan.items) - 1
    assert victim.exists()
    assert result.bytes_freed == plan.bytes_freed - plan.items[1].size


def test_a_link_swapped_in_after_the_plan_is_skipped(demo_dir: Path, tmp_path: Path) -> None:
    cat, d4 = d4_of(demo_dir)
    plan = plan_selection(cat, [d4.checkpoint(500)])
    path = plan.items[0].path
    path.unlink()
    (tmp_path / "precious").write_text("x")
    path.symlink_to(tmp_path / "precious")
    result = execute(plan)
    assert result.results[0].status == "skipped"
    assert (tmp_path / "precious").exists()


def test_trash_on_same_filesystem(demo_dir: Path) -> None:
    cat, d4 = d4_of(demo_dir)
    plan = plan_selection(cat, [d4.checkpoint(500)])
    trash = demo_dir.parent / "trash"
    result = execute(plan, trash=trash)
    assert result.count("trashed") == 4 and result.bytes_freed == 0
    assert result.bytes_trashed == plan.bytes_freed
    for item in plan.items:
        moved = trash / item.path.relative_to(demo_dir)
        assert moved.exists() and moved.stat().st_size == item.size


def test_trash_on_another_filesystem_is_refused(demo_dir: Path) -> None:
    other = Path("/dev/shm")
    if not other.exists() or os.stat(other).st_dev == os.stat(demo_dir).st_dev:
        pytest.skip("no second filesystem (/dev/shm) to test against")
    cat, d4 = d4_of(demo_dir)
    plan = plan_selection(cat, [d4.checkpoint(500)])
    with pytest.raises(PruneError, match="another filesystem"):
        execute(plan, trash=other / f"nanochat-trash-{os.getpid()}")
    assert all(i.path.exists() for i in plan.items)


def test_trash_inside_a_stage_dir_is_refused(demo_dir: Path) -> None:
    with pytest.raises(PruneError, match="inside a checkpoint stage dir"):
        check_trash(demo_dir / "base_checkpoints" / "trash", demo_dir)


def test_disk_full_during_trash_move(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat, d4 = d4_of(demo_dir)
    plan = plan_selection(cat, [d4.checkpoint(500)])

    def rename(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prune_mod.os, "rename", rename)
    result = execute(plan, trash=demo_dir.parent / "trash")
    assert result.count("failed") == 4
    assert all("disk full" in r.detail for r in result.results)
    assert all(i.path.exists() for i in plan.items)


# ----------------------------------------------------------------------------------- pins

def test_pins_round_trip_and_atomic_write(demo_dir: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    tag = demo_dir / "base_checkpoints/d4"
    update_pin(tag, 1000, pinned=True, note="best so far")
    update_pin(tag, 2000, note="sent to eval")
    pins = load_pins(tag)
    assert pins[1000].pinned and pins[1000].note == "best so far"
    assert not pins[2000].pinned and pins[2000].note == "sent to eval"
    before = (tag / ".nanochat-ckpt.json").read_bytes()

    def crash(*a, **k):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(pins_mod.os, "fsync", crash)
    with pytest.raises(PinsError, match="cannot write pins"):
        update_pin(tag, 1500, pinned=True)
    assert (tag / ".nanochat-ckpt.json").read_bytes() == before  # old pins intact
    assert not [p for p in tag.iterdir() if p.name.endswith(".tmp")]  # no temp left behind
    # the sidecar is invisible to the scan's "other files"
    assert all(not f.name.startswith(".nanochat") for f in scan(demo_dir).stage("base")
               .tag("d4").other_files)


def test_unpin_keeps_note_unless_cleared(demo_dir: Path) -> None:
    tag = demo_dir / "base_checkpoints/d4"
    update_pin(tag, 1000, pinned=True, note="keep")
    assert update_pin(tag, 1000, pinned=False).note == "keep"
    update_pin(tag, 1000, pinned=False, clear_note=True)
    assert 1000 not in load_pins(tag)


def test_corrupt_sidecar_is_never_overwritten(demo_dir: Path) -> None:
    tag = demo_dir / "base_checkpoints/d4"
    (tag / ".nanochat-ckpt.json").write_text('{"schema": "nanochat-ckpt.pins/1", "steps": {"1')
    with pytest.raises(PinsError, match="corrupt"):
        update_pin(tag, 1000, pinned=True)
    assert (tag / ".nanochat-ckpt.json").read_text().endswith('{"1')
    moved = set_aside(tag)
    assert moved.exists() and moved.name.startswith(".nanochat-ckpt.json.corrupt-")
    update_pin(tag, 1000, pinned=True)
    assert load_pins(tag)[1000].pinned


# ------------------------------------------------------------------------------------ CLI

def cli(capsys, *args: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        import io

        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prune_dry_run_and_exit_codes(demo_dir: Path, capsys, monkeypatch) -> None:
    base = ["--base-dir", str(demo_dir)]
    code, out, _ = cli(capsys, "prune", "base/d4", "--keep-last", "3", "--dry-run", *base)
    assert code == 0 and "would delete 12 files" in out
    assert "base_checkpoints/d4/optim_000500_rank1.pt" in out
    assert (demo_dir / "base_checkpoints/d4/model_000500.pt").exists()
    # declined at the prompt
    code, out, err = cli(capsys, "prune", "base/d4", "--keep-last", "3", *base, stdin="n\n",
                         monkeypatch=monkeypatch)
    assert code == 5 and "[y/N]" in out and "nothing deleted" in err
    assert (demo_dir / "base_checkpoints/d4/model_000500.pt").exists()
    # confirmed at the prompt
    code, out, _ = cli(capsys, "prune", "base/d4", "--keep-last", "3", *base, stdin="y\n",
                       monkeypatch=monkeypatch)
    assert code == 0 and "12 removed" in out
    assert not (demo_dir / "base_checkpoints/d4/model_000500.pt").exists()
    # nothing left to do
    code, out, _ = cli(capsys, "prune", "base/d4", "--keep-last", "3", "--yes", *base)
    assert code == 3 and "nothing to delete" in out


def test_cli_prune_json_and_partial_failure(demo_dir: Path, capsys, monkeypatch) -> None:
    base = ["--base-dir", str(demo_dir)]
    code, out, _ = cli(capsys, "prune", "base/d4", "base/d6", "--keep-last", "2",
                       "--optimizer-only", "--dry-run", "--json", *base)
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "nanochat-ckpt.prune-plan/1"
    assert {f["kind"] for f in doc["files"]} == {"optim"}
    assert doc["bytes_freed"] == sum(f["size"] for f in doc["files"])
    real_unlink = os.unlink
    first = doc["files"][0]["path"]

    def unlink(path, *a, **k):
        if str(path) == first:
            raise OSError(errno.EPERM, "Operation not permitted")
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(prune_mod.os, "unlink", unlink)
    code, out, _ = cli(capsys, "prune", "base/d4", "base/d6", "--keep-last", "2",
                       "--optimizer-only", "--yes", "--json", *base)
    doc = json.loads(out)
    assert code == 4 and doc["schema"] == "nanochat-ckpt.prune-result/1"
    assert [f["status"] for f in doc["files"]].count("failed") == 1


def test_cli_pin_unpin(demo_dir: Path, capsys) -> None:
    base = ["--base-dir", str(demo_dir)]
    code, out, _ = cli(capsys, "pin", "base/d4@1000", "--note", "best so far", *base)
    assert code == 0 and "pinned base_checkpoints/d4@1000 (best so far)" in out
    code, out, _ = cli(capsys, "ls", str(demo_dir), "--json")
    ck = next(c for c in json.loads(out)["stages"][0]["tags"][1]["checkpoints"]
              if c["step"] == 1000)
    assert ck["pinned"] and ck["note"] == "best so far"
    code, out, _ = cli(capsys, "unpin", "base/d4@1000", *base)
    assert code == 0 and out.startswith("unpinned")
    code, _, err = cli(capsys, "pin", "base/d4@999", *base)
    assert code == 2 and "no step 999" in err
