"""The CLI twin: rich output, --json schemas, one-line errors with non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nanochat_ckpt_tui.cli import main

CK_KEYS = {"step", "key", "state", "problems", "latest", "val_bpb", "model_bytes", "optim_bytes",
           "meta_bytes", "total_bytes", "mtime", "optim_ranks", "pinned", "note", "verdict",
           "files"}
TAG_KEYS = {"name", "path", "steps", "latest_step", "total_bytes", "model_bytes", "optim_bytes",
            "meta_bytes", "other_bytes", "other_files", "error"}
STAGE_KEYS = {"dir", "label", "default_tag", "total_bytes", "model_bytes", "optim_bytes",
              "meta_bytes", "other_files", "tags", "error"}
CAT_KEYS = {"schema", "base_dir", "exists", "scanned_at", "total_bytes", "model_bytes",
            "optim_bytes", "meta_bytes", "free_bytes", "disk_bytes", "stages", "notes"}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_json_schema(demo_master: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ls", str(demo_master), "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == CAT_KEYS and doc["schema"] == "nanochat-ckpt.ls/1"
    stage = doc["stages"][0]
    assert set(stage) == STAGE_KEYS and stage["label"] == "base"
    d4 = next(t for t in stage["tags"] if t["name"] == "d4")
    assert set(d4) == TAG_KEYS | {"checkpoints"}
    assert d4["latest_step"] == 3000 and d4["steps"] == 6
    ck = d4["checkpoints"][-1]
    assert set(ck) == CK_KEYS
    assert ck["latest"] and ck["state"] == "complete" and ck["optim_ranks"] == [0, 1]
    assert 0.5 < ck["val_bpb"] < 1.5
    assert {f["kind"] for f in ck["files"]} == {"model", "meta", "optim"}
    assert d4["other_files"] == [{"name": "model_002000_backup.pt",
                                  "size": (demo_master / "base_checkpoints/d4/model_002000_backup.pt"
                                           ).stat().st_size}]
    d6 = next(t for t in stage["tags"] if t["name"] == "d6")
    assert [c["state"] for c in d6["checkpoints"]] == ["complete", "complete", "no meta"]
    assert d6["checkpoints"][0]["val_bpb"] is None  # null in meta (eval off)


def test_du_json_schema(demo_master: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "du", str(demo_master), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "nanochat-ckpt.du/1"
    assert set(doc) == CAT_KEYS | {"trash_bytes"} and doc["trash_bytes"] == 0
    tag = doc["stages"][0]["tags"][0]
    assert set(tag) == TAG_KEYS  # du leaves out per-checkpoint rows
    assert doc["total_bytes"] == sum(s["total_bytes"] for s in doc["stages"])
    assert doc["free_bytes"] > 0


def test_show_json_matches_torch_load(demo_master: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    import torch

    code, out, _ = run(capsys, "show", "base/d4@1500", "--base-dir", str(demo_master), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "nanochat-ckpt.show/1"
    assert doc["checkpoint"]["step"] == 1500 and doc["tag"] == "d4"
    sd = torch.load(demo_master / "base_checkpoints/d4/model_001500.pt", weights_only=True)
    tensors = doc["model"]["tensors"]
    assert [t["name"] for t in tensors] == list(sd)
    assert all(t["shape"] == list(sd[t["name"]].shape) for t in tensors)
    assert all("torch." + t["dtype"] == str(sd[t["name"]].dtype) for t in tensors)
    assert doc["model"]["params"] == sum(v.numel() for v in sd.values())
    assert doc["model"]["depth"] == 4
    assert [s["rank"] for s in doc["optimizer_shards"]] == [0, 1]
    assert doc["metrics"]["val_bpb"] == doc["meta"]["val_bpb"]


def test_show_infinity_is_valid_json(demo_master: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    code, out, _ = run(capsys, "show", "base/d6@400", "--base-dir", str(demo_master), "--json",
                       "--no-tensors")
    doc = json.loads(out)  # strict: no bare Infinity in our output
    assert code == 0 and doc["metrics"]["min_val_bpb"] == "Infinity"
    assert "tensors" not in doc["model"]


@pytest.mark.parametrize("ref", ["base/d4", "base/d4@latest", "base_checkpoints/d4@3000"])
def test_show_refs(demo_master: Path, capsys: pytest.CaptureFixture[str], ref: str) -> None:
    code, out, _ = run(capsys, "show", ref, "--base-dir", str(demo_master), "--json")
    assert code == 0 and json.loads(out)["checkpoint"]["step"] == 3000


def test_show_by_path_and_stray_file(demo_master: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    code, out, _ = run(capsys, "show", str(demo_master / "mid_checkpoints/d4/model_000200.pt"),
                       "--json")
    doc = json.loads(out)
    assert code == 0 and doc["checkpoint"]["step"] == 200 and doc["tag"] == "d4"
    assert doc["optimizer_shards"][0]["form"] == "list"
    code, out, _ = run(capsys, "show", str(demo_master / "base_checkpoints/d4/"
                                           "model_002000_backup.pt"), "--json")
    assert code == 0 and json.loads(out)["model"]["params"] > 0


def test_show_rich_output(demo_master: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "sft/d4@300", "--base-dir", str(demo_master))
    assert code == 0
    for words in ("sft / d4 @ 300", "params", "optimizer shards", "transformer.h.3",
                  "_orig_mod.lm_head.weight", "bfloat16"):
        assert words in out


def test_ls_and_du_rich_output(demo_master: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ls", str(demo_master))
    assert code == 0 and "base / d4" in out and "latest" in out and "no meta" in out
    assert "model_002000_backup.pt" in out
    code, out, _ = run(capsys, "du", str(demo_master))
    assert code == 0 and "free on this filesystem" in out and "total" in out


@pytest.mark.parametrize("args, code, words", [
    (["show", "d4"], 2, "in several stages"),
    (["show", "base/d9"], 2, "no tag 'base/d9'"),
    (["show", "base/d4@777"], 2, "no step 777"),
    (["show", "base/d4@abc"], 2, "step must be a number"),
])
def test_errors_are_one_line(demo_master: Path, capsys: pytest.CaptureFixture[str],
                             args: list[str], code: int, words: str) -> None:
    got, out, err = run(capsys, *args, "--base-dir", str(demo_master))
    assert got == code and out == ""
    assert words in err and err.count("\n") == 1 and err.startswith("nanochat-ckpt: error:")


def test_missing_base_dir_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    code, out, err = run(capsys, "ls", str(tmp_path / "nope"))
    assert code == 1 and "does not exist" in err and err.count("\n") == 1


def test_corrupt_file_show_exits_nonzero(demo_dir: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    model = demo_dir / "base_checkpoints/d4/model_001000.pt"
    model.write_bytes(b"garbage" * 10)
    os.utime(model, (1, 1))
    code, out, _ = run(capsys, "show", "base/d4@1000", "--base-dir", str(demo_dir), "--json")
    assert code == 1 and "not a readable torch zip" in json.loads(out)["model_error"]


def test_env_base_dir(demo_master: Path, capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(demo_master))
    code, out, _ = run(capsys, "ls", "--json")
    assert code == 0 and json.loads(out)["base_dir"] == str(demo_master)


def test_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", str(tmp_path / "d"))
    assert code == 0 and "wrote a demo base dir" in out
    assert (tmp_path / "d/base_checkpoints/d4/model_003000.pt").exists()
    code, _, err = run(capsys, "demo", str(tmp_path / "d"))
    assert code == 2 and "not empty" in err


def test_module_entry_point_without_torch(demo_master: Path) -> None:
    """`python -m nanochat_ckpt_tui ls/show` works and never imports torch."""
    code = (f"import runpy, sys; sys.argv = ['x', 'show', 'base/d4', '--base-dir', {str(demo_master)!r}, '--json'];"
            "\ntry:\n    runpy.run_module('nanochat_ckpt_tui', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert 'textual' not in sys.modules, 'textual was imported'\n")
    # (the full exit: a read-only command run as the command ends the process at once, and
    # the checks after it would not run)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "NANOCHAT_CKPT_FULL_EXIT": "1"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["checkpoint"]["step"] == 3000
