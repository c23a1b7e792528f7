"""The CLI items of the user review (issue 14): each fix, through ``main([...])``."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nanochat_ckpt_tui.cli import main
from nanochat_ckpt_tui.fmt import human_span, plural
from nanochat_ckpt_tui.store.storage import LocalStorage


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# 3: relative paths keep their stage and tag


def test_relative_paths_keep_stage_and_tag(demo_master: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(demo_master / "base_checkpoints/d4")
    code, out, _ = run(capsys, "show", "./model_001000.pt", "--json", "--no-tensors")
    doc = json.loads(out)
    assert code == 0 and (doc["stage"], doc["tag"]) == ("base_checkpoints", "d4")
    assert doc["checkpoint"]["key"] == "base_checkpoints/d4@1000"
    code, out, _ = run(capsys, "show", "model_001000.pt", "--no-tensors")
    assert code == 0 and out.startswith("base / d4 @ 1000")
    code, out, _ = run(capsys, "show", ".", "--json", "--no-tensors")  # the tag dir itself
    doc = json.loads(out)
    assert (doc["stage"], doc["tag"], doc["checkpoint"]["step"]) == ("base_checkpoints", "d4",
                                                                      3000)
    code, out, _ = run(capsys, "show", "../d6/model_000400.pt", "--json", "--no-tensors")
    assert json.loads(out)["checkpoint"]["key"] == "base_checkpoints/d6@400"
    code, out, _ = run(capsys, "diff", "./model_000500.pt", "model_001000.pt", "-q")
    assert code == 0
    assert "A base_checkpoints/d4@500   B base_checkpoints/d4@1000" in out


# --------------------------------------------------------------------------------------------
# 5: an unreadable tag dir says "permission denied" where the user looks


@pytest.fixture
def d6_denied(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """base/d6 cannot be listed (we run as root, so chmod would not bite: simulate it)."""
    denied = demo_dir / "base_checkpoints/d6"
    real = LocalStorage.list_dir

    def list_dir(self: LocalStorage, path: object) -> list:
        if Path(os.fspath(path)) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(self, path)

    monkeypatch.setattr(LocalStorage, "list_dir", list_dir)
    return demo_dir


@pytest.mark.parametrize("argv", [["show", "base/d6"], ["show", "base/d6@400"],
                                  ["diff", "base/d6", "base/d4@3000", "-q"],
                                  ["pin", "base/d6@400"],
                                  ["prune", "base/d6", "--keep-last", "1", "--dry-run"]])
def test_permission_denied_tag_is_named(d6_denied: Path, capsys: pytest.CaptureFixture[str],
                                        argv: list[str]) -> None:
    code, out, err = run(capsys, *argv, "--base-dir", str(d6_denied))
    assert code == 1 and out == ""
    assert err == "nanochat-ckpt: error: base/d6: permission denied (cannot list the tag dir)\n"


def test_permission_denied_tag_dir_path(d6_denied: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    path = str(d6_denied / "base_checkpoints/d6")
    code, _, err = run(capsys, "show", path)
    assert code == 1 and f"{path}: permission denied (cannot list the tag dir)" in err


def test_ls_prints_unreadable_dirs_first_and_marks_the_tag(
        d6_denied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ls", str(d6_denied))
    lines = out.splitlines()
    assert code == 0
    note = next(i for i, s in enumerate(lines) if "permission denied" in s and "note" in s)
    first_table = next(i for i, s in enumerate(lines) if s.startswith("base / "))
    assert note < first_table  # before any table, not after 6,000 rows
    d6 = next(s for s in lines if s.startswith("base / d6"))
    assert "permission denied (cannot list the tag dir)" in d6
    code, out, _ = run(capsys, "ls", str(d6_denied), "--json")
    d6_doc = next(t for t in json.loads(out)["stages"][0]["tags"] if t["name"] == "d6")
    assert d6_doc["error"] == "permission denied, skipped" and d6_doc["checkpoints"] == []
    code, out, _ = run(capsys, "du", str(d6_denied))
    assert out.index("permission denied") < out.index("stage / tag")


# --------------------------------------------------------------------------------------------
# 7: wrong inputs refused, spans, JSON-style values, unpin without --note, plurals


def test_ls_of_a_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "hostname"
    f.write_text("box\n")
    code, out, err = run(capsys, "ls", str(f))
    assert code == 1 and out == "" and f"{f} is not a directory" in err
    assert err.count("\n") == 1


def test_prune_keep_last_zero_is_refused(demo_dir: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    before = sorted(p.name for p in (demo_dir / "base_checkpoints/d4").iterdir())
    code, out, err = run(capsys, "prune", "base/d4", "--keep-last", "0", "--yes",
                         "--base-dir", str(demo_dir))
    assert code == 2 and out == "" and "--keep-last must be 1 or more, not 0" in err
    assert sorted(p.name for p in (demo_dir / "base_checkpoints/d4").iterdir()) == before
    code, _, err = run(capsys, "prune", "base/d4", "--keep-best", "-1", "--dry-run",
                       "--base-dir", str(demo_dir))
    assert code == 2 and "--keep-best must be 1 or more, not -1" in err


def test_diff_header_says_seconds_apart(demo_dir: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    t = 1_700_000_000.0
    d4 = demo_dir / "base_checkpoints/d4"
    for step, mtime in ((500, t), (1000, t + 3)):
        for p in d4.glob(f"*_{step:06d}*"):
            os.utime(p, (mtime, mtime))
    code, out, _ = run(capsys, "diff", "base/d4@500", "base/d4@1000", "-q", "--base-dir",
                       str(demo_dir))
    assert code == 0 and "3 s apart" in out and "now apart" not in out
    assert human_span(3.2) == "3 s" and human_span(0) == "0 s" and human_span(600) == "10 min"


def test_config_values_print_as_json(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = demo_dir / "base_checkpoints/d4/meta_001000.json"
    doc = json.loads(meta.read_text())
    doc["user_config"]["model_tag"] = None
    doc["user_config"]["compile"] = True
    meta.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "show", "base/d4@1000", "--no-tensors", "--base-dir",
                       str(demo_dir))
    text = " ".join(out.split())
    assert code == 0 and "model_tag=null" in text and "compile=true" in text
    assert "None" not in out and "True" not in out


def test_unpin_has_no_note_flag(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--base-dir", str(demo_dir)]
    assert run(capsys, "pin", "base/d4@1000", "--note", "keep", *base)[0] == 0
    with pytest.raises(SystemExit) as e:
        main(["unpin", "base/d4@1000", "--note", "x", *base])
    assert e.value.code == 2 and "--note" in capsys.readouterr().err
    code, out, _ = run(capsys, "unpin", "base/d4@1000", *base)
    assert code == 0 and out == "unpinned base_checkpoints/d4@1000 (keep)\n"


def test_plurals(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plural(1, "step") == "1 step" and plural(2, "step") == "2 steps"
    assert plural(6000, "file") == "6,000 files" and plural(0, "file") == "0 files"
    code, out, _ = run(capsys, "prune", "base/d2_legacy", "--keep-last", "1", "--dry-run",
                       "--base-dir", str(demo_dir))
    assert code == 0 and "would delete 1 file," in out and "1 files" not in out
    code, out, _ = run(capsys, "ls", str(demo_dir), "base/d2_legacy")
    assert "2 steps" in out
    (demo_dir / "base_checkpoints/d2_legacy/step_1000.pt").unlink()
    code, out, _ = run(capsys, "ls", str(demo_dir), "base/d2_legacy")
    assert "1 step " in out + " " and "1 steps" not in out


# --------------------------------------------------------------------------------------------
# 8: the top-level help names the app's options and every subcommand


def test_top_level_help_shows_app_and_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    from nanochat_ckpt_tui.cli import SUBCOMMANDS

    code, out, _ = run(capsys, "--help")
    assert code == 0
    for words in ("BASE_DIR", "--read-only", "--poll", "--demo", "--storage-option"):
        assert words in out
    for name in SUBCOMMANDS:
        assert re.search(rf"^  {name}\s+\S", out, re.M), name
    with pytest.raises(SystemExit) as e:  # nanochat-ckpt DIR --help: the same text
        main(["/some/dir", "--help"])
    assert e.value.code == 0 and capsys.readouterr().out == out


# --------------------------------------------------------------------------------------------
# 14: `demo` without DIR writes to the cache dir, not the current directory


def test_demo_defaults_to_the_cache_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, out, _ = run(capsys, "demo")
    target = tmp_path / "cache/nanochat-ckpt-demo"
    assert code == 0 and f"wrote a demo base dir to {target}" in out
    assert (target / "base_checkpoints/d4/model_003000.pt").is_file()
    assert list(cwd.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 15: a stage dir or a tag dir given as the base dir


def test_ls_one_level_too_deep_says_so(demo_master: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    code, out, _ = run(capsys, "ls", str(demo_master / "base_checkpoints"))
    assert code == 0
    assert f"this looks like a stage dir; did you mean its parent, {demo_master}?" in out
    assert "no *_checkpoints" not in out
    code, out, _ = run(capsys, "ls", str(demo_master / "base_checkpoints/d4"), "--json")
    hint = f"this looks like a tag dir (stage base); did you mean {demo_master}?"
    assert hint in json.loads(out)["notes"]


# --------------------------------------------------------------------------------------------
# 16: optimizer groups in full; pins and notes in human ls/show


def test_show_prints_optimizer_groups(demo_master: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    code, out, _ = run(capsys, "show", "base/d4@3000", "--no-tensors", "--base-dir",
                       str(demo_master))
    assert code == 0 and "param groups (2 groups; every shard)" in out
    rows = {line.split()[1]: line for line in out.splitlines()
            if re.match(r"\s+\d+\s+(adamw|muon)\s", line)}
    assert set(rows) == {"adamw", "muon"}
    assert re.search(r"adamw\s+8\s+0\.004\s+0\s+0\.8, 0\.95\s+eps=1e-10", rows["adamw"])
    assert re.search(r"muon\s+27\s+0\.02\s+—\s+momentum 0\.95\s+nesterov=true", rows["muon"])
    assert "adamw 1 ·" not in out


def test_pins_and_notes_in_human_ls_and_show(demo_dir: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    base = ["--base-dir", str(demo_dir)]
    assert run(capsys, "pin", "base/d4@1000", "--note", "best so far", *base)[0] == 0
    code, out, _ = run(capsys, "ls", str(demo_dir), "base/d4")
    row = next(line for line in out.splitlines() if line.lstrip().startswith("1000 "))
    assert "pinned" in row and row.rstrip().endswith("best so far")
    assert "1 pin" in out and re.search(r"^\s+note$|\bnote\b", out, re.M)
    code, out, _ = run(capsys, "show", "base/d4@1000", "--no-tensors", *base)
    assert "pinned" in out.splitlines()[0] and "note: best so far" in out


# --------------------------------------------------------------------------------------------
# 18: tables never break a name


def test_diff_at_80_columns_keeps_names_whole(demo_master: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["diff", "base/d4@500", "base/d4@3000", "-q", "--base-dir", str(demo_master)]
    names = [t["name"] for t in json.loads(run(capsys, *args, "--json", "--top", "15")[1])[
        "tensors"]]
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, *args)
    lines = out.splitlines()
    assert code == 0 and all(len(line) <= 80 for line in lines)
    table = lines[lines.index(next(s for s in lines if s.startswith("tensor "))) + 1:][:15]
    assert [line.split()[0] for line in table] == names  # each name whole, on its own line
    monkeypatch.setenv("COLUMNS", "44")
    code, out, _ = run(capsys, *args)
    lines = out.splitlines()
    table = lines[lines.index(next(s for s in lines if s.startswith("tensor "))) + 1:][:15]
    assert all(len(line) <= 44 for line in table)
    for line, name in zip(table, names, strict=True):
        first = line.split()[0]
        assert first == name or ("…" in first and name.startswith(first.split("…")[0])
                                 and name.endswith(first.split("…")[1]))


def test_show_tensor_names_are_cut_not_wrapped(demo_master: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    code, out, _ = run(capsys, "show", "sft/d4@300", "--base-dir", str(demo_master))
    lines = out.splitlines()
    start = lines.index("tensors") + 2
    rows = lines[start:]
    assert code == 0 and len(rows) == 35 and all(len(line) <= 50 for line in rows)
    assert all(line.startswith("_orig_mod") for line in rows)  # no continuation lines
    assert any("…" in line for line in rows)


# --------------------------------------------------------------------------------------------
# 19: ls TAG... and --latest; ls streams its rows


def test_ls_filters_by_tag_and_latest(demo_master: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    base = str(demo_master)
    code, out, _ = run(capsys, "ls", base, "d6", "base/d2_legacy", "--json")
    doc = json.loads(out)
    assert code == 0
    assert [(s["label"], [t["name"] for t in s["tags"]]) for s in doc["stages"]] == [
        ("base", ["d2_legacy", "d6"])]
    code, out, _ = run(capsys, "ls", base, "d4")  # a tag name in several stages: each
    titles = [s.split("  ·  ")[0] for s in out.splitlines() if "  ·  " in s]
    assert [t.split(" (")[0] for t in titles] == ["base / d4", "mid / d4", "sft / d4", "rl / d4"]
    code, out, _ = run(capsys, "ls", "--base-dir", base, "sft", "--json")  # a stage
    assert [s["label"] for s in json.loads(out)["stages"]] == ["sft"]
    code, out, _ = run(capsys, "ls", base, "--latest", "--json")
    doc = json.loads(out)
    for tag in (t for s in doc["stages"] for t in s["tags"]):
        assert [c["step"] for c in tag["checkpoints"]] == [tag["latest_step"]]
        assert tag["checkpoints"][0]["latest"]
    code, out, _ = run(capsys, "ls", base, "base/d4", "--latest")
    steps = [s.split()[0] for s in out.splitlines() if re.match(r"\s*\d+\s", s)]
    assert steps == ["3000"]
    code, _, err = run(capsys, "ls", base, "d9")
    assert code == 2 and "no tag 'd9'" in err
    code, _, err = run(capsys, "ls", base, "d4@500")
    assert code == 2 and "ls takes tags, not steps" in err


def test_env_base_dir_with_tag_filter(demo_master: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(demo_master))
    monkeypatch.chdir(tmp_path)  # "d6" is no dir here: a tag
    code, out, _ = run(capsys, "ls", "d6", "--json")
    doc = json.loads(out)
    assert code == 0 and [t["name"] for s in doc["stages"] for t in s["tags"]] == ["d6"]


def test_ls_human_does_not_lay_out_rich_tables(demo_master: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """6,000 rows through rich.table.Table took 4 s: ls writes its lines itself."""
    import rich.table

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("ls laid out a rich Table")

    monkeypatch.setattr(rich.table.Table, "__init__", refuse)
    code, out, _ = run(capsys, "ls", str(demo_master))
    assert code == 0 and "base / d4" in out and "model_002000_backup.pt" in out


# --------------------------------------------------------------------------------------------
# the package split: light imports


def test_ls_json_imports_nothing_heavy(demo_master: Path) -> None:
    code = (f"import runpy, sys; sys.argv = ['x', 'ls', {str(demo_master)!r}, '--json']\n"
            "try:\n    runpy.run_module('nanochat_ckpt_tui', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('rich', 'textual', 'numpy', 'torch', 'fsspec') "
            "if m in sys.modules]\nassert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "NANOCHAT_CKPT_FULL_EXIT": "1"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["schema"] == "nanochat-ckpt.ls/1"


def test_old_import_paths_still_work() -> None:
    from nanochat_ckpt_tui import cli, cli_archive

    assert cli.checkpoint_json and cli.summary_json and cli.catalog_json and cli.tag_json
    assert cli_archive.add_archive_commands is cli.add_archive_commands
    with pytest.raises(AttributeError):
        _ = cli.no_such_name
