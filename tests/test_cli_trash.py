"""The base dir's trash in the CLI: ``trash`` lists and empties it, ``du`` shows its size,
``prune``/``rm --trash`` without DIR move files there (``--trash DIR`` still works)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nanochat_ckpt_tui.cli import main
from nanochat_ckpt_tui.store.trash import TRASH_DIR, trash_dir

D4 = "base_checkpoints/d4"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _answer(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _step_files(base: Path, stage_tag: str, step: int) -> list[Path]:
    return sorted((base / stage_tag).glob(f"*_{step:06d}*"))


def test_rm_trash_without_dir_uses_the_base_dirs_trash(demo_dir: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    files = _step_files(demo_dir, D4, 1000)
    size = sum(f.stat().st_size for f in files)
    code, out, _ = run(capsys, "rm", "base/d4@1000", "--base-dir", str(demo_dir), "--yes",
                       "--no-check", "--trash")
    assert code == 0, out
    assert "4 trashed" in out and f"nanochat-ckpt trash {demo_dir} --empty" in out
    assert not any(f.exists() for f in files)
    moved = trash_dir(demo_dir) / D4
    assert sorted(p.name for p in moved.iterdir()) == [f.name for f in files]
    # the trash is no stage dir: the scan never sees it, ls does not list the step again
    code, out, _ = run(capsys, "ls", str(demo_dir), "base/d4", "--json")
    steps = [c["step"] for c in json.loads(out)["stages"][0]["tags"][0]["checkpoints"]]
    assert 1000 not in steps and 1500 in steps
    # listing: by stage and tag, files and bytes
    code, out, _ = run(capsys, "trash", str(demo_dir), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "nanochat-ckpt.trash/1" and doc["exists"]
    assert doc["files"] == 4 and doc["bytes"] == size and not doc["emptied"]
    assert doc["trash_dir"] == str(trash_dir(demo_dir))
    assert doc["tags"] == [{"stage": "base_checkpoints", "tag": "d4", "label": "base / d4",
                            "files": 4, "bytes": size}]
    assert sorted(i["path"] for i in doc["items"]) == [f"{D4}/{f.name}" for f in files]
    code, out, _ = run(capsys, "trash", str(demo_dir))
    assert code == 0 and "base / d4" in out and "4 files" in out
    assert f"{size:,} bytes" in out and "--empty" in out


def test_the_step_argparse_gives_to_trash_goes_back_to_the_steps(
        demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rm --trash d4@500``: --trash takes an optional DIR; a step there is a step."""
    code, out, err = run(capsys, "rm", "--trash", "base/d4@500", "--base-dir", str(demo_dir),
                         "--yes", "--no-check")
    assert code == 0, err
    assert not (demo_dir / D4 / "model_000500.pt").exists()
    assert (trash_dir(demo_dir) / D4 / "model_000500.pt").exists()
    assert not Path("base/d4@500").exists()
    code, _, err = run(capsys, "rm", "--trash", "--base-dir", str(demo_dir), "--yes")
    assert code == 2 and "give the steps" in err


def test_prune_trash_without_dir_and_with_one(demo_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # a tag given after --trash goes back to the tags (it is no path here)
    code, out, err = run(capsys, "prune", "--trash", "base/d4", "--keep-last", "4",
                         "--base-dir", str(demo_dir), "--yes", "--no-check")
    assert code == 0, err
    want = [f"{kind}_{s:06d}{tail}" for s in (500, 1000) for kind, tail in
            (("model", ".pt"), ("meta", ".json"), ("optim", "_rank0.pt"), ("optim", "_rank1.pt"))]
    assert sorted(p.name for p in (trash_dir(demo_dir) / D4).iterdir()) == sorted(want)
    # --trash DIR keeps working (a dir of its own, same filesystem)
    own = tmp_path / "my-trash"
    code, out, err = run(capsys, "prune", "base/d4", "--keep-last", "3", "--base-dir",
                         str(demo_dir), "--yes", "--no-check", "--trash", str(own))
    assert code == 0, err
    assert (own / D4 / "model_001500.pt").exists() and "trash --empty" not in out


def test_du_shows_the_trash(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "du", str(demo_dir), "--json")
    assert code == 0 and json.loads(out)["trash_bytes"] == 0
    code, out, _ = run(capsys, "du", str(demo_dir))
    assert "in the trash" not in out
    run(capsys, "rm", "base/d4@500", "--base-dir", str(demo_dir), "--yes", "--no-check",
        "--trash")
    size = sum(p.stat().st_size for p in (trash_dir(demo_dir) / D4).iterdir())
    code, out, _ = run(capsys, "du", str(demo_dir), "--json")
    doc = json.loads(out)
    assert doc["trash_bytes"] == size and doc["schema"] == "nanochat-ckpt.du/1"
    assert TRASH_DIR not in json.dumps(doc["stages"])  # not counted as checkpoints
    code, out, _ = run(capsys, "du", str(demo_dir))
    assert code == 0 and "in the trash" in out and "4 files" in out
    assert "nanochat-ckpt trash" in out and "--empty" in out


def test_trash_empty_asks_then_deletes(demo_dir: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run(capsys, "rm", "base/d4@500", "--base-dir", str(demo_dir), "--yes", "--no-check",
        "--trash")
    root = trash_dir(demo_dir)
    outside = demo_dir / "report.md"
    # declined: every file and its bytes were listed, nothing deleted
    _answer(monkeypatch, "n\n")
    code, out, err = run(capsys, "trash", str(demo_dir), "--empty")
    assert code == 5 and "nothing deleted" in err
    for f in (root / D4).iterdir():
        assert f"{D4}/{f.name}" in out
    assert "Delete these 4 files" in out and "[y/N]" in out
    assert (root / D4 / "model_000500.pt").exists()
    # JSON has no prompt
    code, _, err = run(capsys, "trash", str(demo_dir), "--empty", "--json")
    assert code == 2 and "--yes" in err
    # yes
    _answer(monkeypatch, "y\n")
    code, out, _ = run(capsys, "trash", str(demo_dir), "--empty")
    assert code == 0 and "emptied the trash: freed" in out and "(4 files)" in out
    assert not root.exists() and outside.exists()
    assert (demo_dir / D4 / "model_001000.pt").exists()  # checkpoints untouched
    # nothing left: exit 3
    code, out, _ = run(capsys, "trash", str(demo_dir), "--empty")
    assert code == 3 and "nothing to empty" in out
    code, out, _ = run(capsys, "trash", str(demo_dir))
    assert code == 0 and "is empty" in out


def test_trash_empty_yes_json(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "rm", "sft/d4@300", "--base-dir", str(demo_dir), "--yes", "--no-check",
        "--trash")
    stray = trash_dir(demo_dir) / "loose.bin"  # a file outside any stage/tag
    stray.write_bytes(b"x" * 10)
    code, out, _ = run(capsys, "trash", str(demo_dir), "--json")
    doc = json.loads(out)
    assert [(t["stage"], t["tag"]) for t in doc["tags"]] == [("chatsft_checkpoints", "d4"),
                                                              (None, None)]
    assert doc["tags"][1]["label"] == "(other files)" and doc["tags"][1]["bytes"] == 10
    code, out, _ = run(capsys, "trash", str(demo_dir), "--empty", "--yes", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["emptied"] and doc["files"] >= 2
    assert not trash_dir(demo_dir).exists()


def test_trash_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "trash", str(tmp_path / "nope"))
    assert code == 1 and "does not exist" in err and err.count("\n") == 1
    code, _, err = run(capsys, "trash", "s3://bucket/runs")
    assert code == 2 and "needs a local base dir" in err
    code, out, _ = run(capsys, "trash", str(tmp_path), "--json")
    doc = json.loads(out)
    assert code == 0 and not doc["exists"] and doc["files"] == 0 and doc["tags"] == []
