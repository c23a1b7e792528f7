"""The CLI's verification: ``check``, cached verdicts in ``ls``/``show``, ``rm``, a verified
``prune``, ``archive --allow-damaged``, and what a file being written or a FIFO does to
``show``/``diff`` (real torch.save files)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from test_check import flip, record_of, write_step

from nanochat_ckpt_tui.cli import common as cli_common
from nanochat_ckpt_tui.cli import main
from nanochat_ckpt_tui.store import step_verdicts as cli_verdicts
from nanochat_ckpt_tui.store.check import check
from nanochat_ckpt_tui.store.check_cache import cache_dir
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.prune import PruneError, Rules, plan_rules
from nanochat_ckpt_tui.store.storage import LocalStorage

HOUR_AGO = time.time() - 3600
KEY = "base_checkpoints/d2@{}"


def run(capsys: pytest.CaptureFixture[str], *args: str, stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def age(tag: Path) -> None:
    for p in tag.iterdir():
        os.utime(p, (HOUR_AGO, HOUR_AGO))


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base/d2: 100 good, 200 damaged (a flipped byte), 300 good, 400 (latest) a NaN."""
    base = tmp_path_factory.mktemp("check_master") / "base"
    tag = base / "base_checkpoints" / "d2"
    for step in (100, 200, 300):
        write_step(tag, step)

    def nan(sd: dict) -> None:
        sd["lm_head.weight"][0, :3] = float("nan")

    write_step(tag, 400, edit=nan)
    model = tag / "model_000200.pt"
    at, size = record_of(model, "transformer.wte.weight")
    flip(model, at + size // 2)
    age(tag)
    return base


@pytest.fixture
def base(master: Path, tmp_path: Path) -> Path:
    """A private copy (new inodes: nothing cached from another test)."""
    dst = tmp_path / "base"
    shutil.copytree(master, dst, copy_function=shutil.copy2)
    return dst


def d2(base: Path) -> Path:
    return base / "base_checkpoints" / "d2"


def ls_verdicts(capsys: pytest.CaptureFixture[str], base: Path) -> dict[int, str | None]:
    code, out, _ = run(capsys, "ls", str(base), "--json")
    assert code == 0
    doc = json.loads(out)
    return {c["step"]: c["verdict"] for s in doc["stages"] for t in s["tags"]
            for c in t["checkpoints"]}


# --------------------------------------------------------------------------------------------
# check


def test_check_everything_human_output_and_exit_code(base: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    code, out, err = run(capsys, "check", "--base-dir", str(base))
    assert code == 1 and err == ""  # a short check prints no progress when not on a terminal
    rows = {m.group(2): m.group(1) for m in re.finditer(r"^(\w+)\s+(\S+@\d+)\s", out, re.M)}
    assert rows == {KEY.format(100): "good", KEY.format(200): "damaged",
                    KEY.format(300): "good", KEY.format(400): "unhealthy"}
    # the findings of the bad steps: file, tensor, message, in full
    assert re.search(r"damaged\s+model_000200\.pt\s+transformer\.wte\.weight\s+CRC mismatch", out)
    assert re.search(r"unhealthy\s+model_000400\.pt\s+lm_head\.weight\s+3 NaN of 4,096", out)
    assert "4 steps: 2 good, 1 damaged, 1 unhealthy;" in out.splitlines()[-1]
    code, out, _ = run(capsys, "check", "d2@100", "--base-dir", str(base))
    assert code == 0 and "1 step: 1 good; nothing read" in out and "(cached)" in out


def test_check_json_schema(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "base/d2", "--base-dir", str(base), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["schema"] == "nanochat-ckpt.check/1"
    assert set(doc) == {"schema", "base_dir", "reports", "counts", "unreadable", "bytes_read",
                        "elapsed_s"}
    assert doc["base_dir"] == str(base) and doc["unreadable"] == []
    assert doc["counts"] == {"good": 2, "damaged": 1, "unhealthy": 1, "unchecked": 0}
    rep = {r["step"]: r for r in doc["reports"]}
    assert rep[200]["verdict"] == "damaged"
    bad = rep[200]["findings"][0]
    assert (bad["severity"], bad["file"], bad["tensor"]) == ("damaged", "model_000200.pt",
                                                            "transformer.wte.weight")
    model = rep[400]["files"][0]
    lm = next(t for t in model["tensors"] if t["name"] == "lm_head.weight")
    assert lm["nan"] == 3 and lm["norm"] > 0
    assert doc["bytes_read"] == sum(r["bytes_read"] for r in doc["reports"]) > 0
    code, out, _ = run(capsys, "check", "d2@400", "--base-dir", str(base), "--json",
                       "--no-tensors")
    doc = json.loads(out)
    assert code == 1 and all("tensors" not in f for f in doc["reports"][0]["files"])
    assert doc["reports"][0]["files"][0]["cached"]  # checked above: not read again


@pytest.mark.parametrize("how", ["tag", "stage", "base_dir", "tag_dir", "stage_dir", "env",
                                 "file", "two"])
def test_check_references(base: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    tag = d2(base)
    args = {"tag": ["d2", "--base-dir", str(base)], "stage": ["base", "--base-dir", str(base)],
            "base_dir": [str(base)], "tag_dir": [str(tag)], "stage_dir": [str(tag.parent)],
            "env": [], "file": [str(tag / "optim_000300_rank1.pt")],
            "two": ["d2@300", "base/d2@100", "d2@300", "--base-dir", str(base)]}[how]
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(base))
    code, out, _ = run(capsys, "check", *args, "--json", "--no-tensors")
    steps = [r["step"] for r in json.loads(out)["reports"]]
    want = {"file": [300], "two": [300, 100]}.get(how, [100, 200, 300, 400])
    assert steps == want
    assert code == (0 if how in ("file", "two") else 1)


@pytest.mark.parametrize("args, words", [
    (["d9"], "no tag 'd9'"),
    (["d2@777"], "no step 777"),
    (["./nope"], "./nope: no such file or directory"),
])
def test_check_bad_references_exit_2(base: Path, capsys: pytest.CaptureFixture[str],
                                     args: list[str], words: str) -> None:
    code, out, err = run(capsys, "check", *args, "--base-dir", str(base))
    assert code == 2 and out == "" and words in err and err.count("\n") == 1


def test_a_step_being_written_is_skipped_with_a_note_exit_0(
        base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tag = d2(base)
    model = tag / "model_000500.pt"
    shutil.copy(tag / "model_000100.pt", model)
    model.write_bytes(model.read_bytes()[:5000])  # no zip end yet, written just now
    code, out, _ = run(capsys, "check", "d2@500", "d2@100", "--base-dir", str(base))
    assert code == 0
    assert re.search(r"^unchecked\s+base_checkpoints/d2@500\s+still being written", out, re.M)
    assert "1 step still being written was not checked" in out
    code, out, _ = run(capsys, "check", "d2@500", "--base-dir", str(base), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["counts"]["unchecked"] == 1
    assert doc["reports"][0]["unchecked_why"].startswith("still being written")


def test_ctrl_c_cancels_with_one_line_and_130(base: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    sent = []
    real = cli_common.ByteMeter.__call__

    def interrupt(self: cli_common.ByteMeter, done: int, total: int) -> None:
        if not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C on the terminal
        real(self, done, total)

    monkeypatch.setattr(cli_common.ByteMeter, "__call__", interrupt)
    before = signal.getsignal(signal.SIGINT)
    code, out, err = run(capsys, "check", "--base-dir", str(base))
    assert code == 130 and out == "" and sent
    lines = err.splitlines()
    assert lines[0].startswith("nanochat-ckpt: stopping the check")
    assert lines[-1].startswith("nanochat-ckpt: check cancelled after ") and len(lines) == 2
    assert "run it again to go on" in lines[-1]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    monkeypatch.setattr(cli_common.ByteMeter, "__call__", real)
    code, out, _ = run(capsys, "check", "--base-dir", str(base))
    assert code == 1 and "4 steps" in out


def test_progress_lines_when_stderr_is_not_a_terminal(base: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_common, "PROGRESS_EVERY", 0.0)
    code, _, err = run(capsys, "check", "--base-dir", str(base), "--no-cache")
    assert code == 1 and err
    assert all(re.match(r"check: [\d.]+ [kM]?B of 801 kB \(\d+%\), .*/s$", line)
               for line in err.splitlines()), err
    code, _, err = run(capsys, "check", "--base-dir", str(base), "--no-cache", "-q")
    assert err == ""


def test_an_unreadable_tag_dir_is_a_problem(base: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    denied = base / "base_checkpoints" / "d7"
    denied.mkdir()
    real = LocalStorage.list_dir

    def list_dir(self: LocalStorage, path: object) -> list:
        if Path(os.fspath(path)) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(self, path)

    monkeypatch.setattr(LocalStorage, "list_dir", list_dir)
    code, out, _ = run(capsys, "check", "d2@100", "--base-dir", str(base))
    assert code == 0
    code, out, _ = run(capsys, "check", "--base-dir", str(base))
    assert code == 1
    assert "unreadable base/d7: permission denied (cannot list the tag dir)" in out
    code, _, err = run(capsys, "check", "d7", "--base-dir", str(base))
    assert code == 1
    assert err == "nanochat-ckpt: error: d7: permission denied (cannot list the tag dir)\n"


# --------------------------------------------------------------------------------------------
# cached verdicts in ls and show


def test_ls_and_show_never_checked(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ls_verdicts(capsys, base) == {100: None, 200: None, 300: None, 400: None}
    assert not (cache_dir() / "checks.sqlite").exists()  # ls made no cache
    code, out, _ = run(capsys, "show", "d2@300", "--base-dir", str(base), "--no-tensors")
    assert code == 0 and "not checked: nanochat-ckpt check base_checkpoints/d2@300" in out
    code, out, _ = run(capsys, "show", "d2@300", "--base-dir", str(base), "--json")
    doc = json.loads(out)
    assert doc["checkpoint"]["verdict"] is None and doc["check"] is None


def test_ls_and_show_after_a_check(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "check", "--base-dir", str(base))
    assert ls_verdicts(capsys, base) == {100: "good", 200: "damaged", 300: "good",
                                         400: "unhealthy"}
    code, out, _ = run(capsys, "ls", str(base))
    cells = {line.split()[0]: line for line in out.splitlines() if re.match(r"\s*\d+\s", line)}
    assert re.search(r"complete verified\s*$", cells["100"])
    assert re.search(r"complete damaged\s*$", cells["200"])
    assert re.search(r"complete unhealthy latest\s*$", cells["400"])
    # show: the verdict, the findings, the health table
    code, out, _ = run(capsys, "show", "d2@400", "--base-dir", str(base))
    assert out.splitlines()[0].startswith("base / d2 @ 400  complete  unhealthy  latest")
    assert "check unhealthy (cached result of 3 files)" in out
    assert "unhealthy model_000400.pt lm_head.weight: 3 NaN of 4,096 values" in out
    health = out[out.index("health (from the check)"):].splitlines()
    assert re.match(r"tensor\s+file\s+NaN\s+\+Inf\s+-Inf", health[1])
    row = next(line for line in health if line.startswith("lm_head.weight "))
    assert row.split()[2:5] == ["3", "0", "0"]
    assert sum(1 for line in health[2:] if line.strip()) > 21  # optimizer state too
    code, out, _ = run(capsys, "show", "d2@400", "--base-dir", str(base), "--no-tensors")
    only = out[out.index("tensors with NaN or Inf"):].splitlines()[2:]
    assert [line.split()[0] for line in only if line.strip()] == ["lm_head.weight"]
    code, out, _ = run(capsys, "show", "d2@200", "--base-dir", str(base), "--json",
                       "--no-tensors")
    doc = json.loads(out)
    assert doc["checkpoint"]["verdict"] == "damaged" and doc["check"]["verdict"] == "damaged"
    assert "tensors" not in doc["check"]["files"][0]


def test_a_changed_file_loses_its_verdict(base: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    run(capsys, "check", "d2@100", "--base-dir", str(base))
    assert ls_verdicts(capsys, base)[100] == "good"
    shard = d2(base) / "optim_000100_rank1.pt"
    os.utime(shard, (HOUR_AGO + 1, HOUR_AGO + 1))
    assert ls_verdicts(capsys, base)[100] is None


def test_steps_checked_elsewhere_are_remembered_within_a_budget(
        base: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    tag = scan(base).stage("base").tag("d2")
    check(tag.checkpoints)  # as the app or a prune's verification: per-file results only
    monkeypatch.setattr(cli_verdicts, "REBUILD_BUDGET", -1.0)  # no time to rebuild any
    code, out, _ = run(capsys, "ls", str(base), "--json")
    doc = json.loads(out)
    got = {c["step"]: c["verdict"] for c in doc["stages"][0]["tags"][0]["checkpoints"]}
    assert set(got.values()) == {None}
    assert any("check verdicts of 4 steps not looked up" in n for n in doc["notes"])
    code, out, _ = run(capsys, "ls", str(base))
    assert "not looked up" in out.split("base / d2")[0]  # a note before the tables
    monkeypatch.setattr(cli_verdicts, "REBUILD_BUDGET", 60.0)
    assert ls_verdicts(capsys, base) == {100: "good", 200: "damaged", 300: "good",
                                         400: "unhealthy"}
    monkeypatch.setattr(cli_verdicts, "REBUILD_BUDGET", -1.0)  # now remembered: no rebuild
    assert None not in ls_verdicts(capsys, base).values()


def test_ls_shows_bad_meta(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = d2(base) / "meta_000300.json"
    meta.write_text('{"step": 300, garbage')
    os.utime(meta, (HOUR_AGO, HOUR_AGO))
    code, out, _ = run(capsys, "ls", str(base), "--json")
    cks = {c["step"]: c for c in json.loads(out)["stages"][0]["tags"][0]["checkpoints"]}
    assert cks[300]["state"] == "bad meta" and "broken JSON" in cks[300]["problems"][0]
    code, out, _ = run(capsys, "ls", str(base))
    assert re.search(r"^\s+300\s.*\bbad meta\b", out, re.M)
    code, out, _ = run(capsys, "show", "d2@300", "--base-dir", str(base), "--no-tensors")
    assert "bad meta" in out.splitlines()[0]


# --------------------------------------------------------------------------------------------
# rm and a verified prune


def test_rm_dry_run_protections_and_exit_codes(base: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    b = ["--base-dir", str(base)]
    code, out, _ = run(capsys, "rm", "d2@100", "--dry-run", *b)
    assert code == 0 and "would delete 4 files" in out and "base_checkpoints/d2@100" in out
    assert (d2(base) / "model_000100.pt").exists()
    code, out, _ = run(capsys, "rm", "d2@300", "--dry-run", *b)  # the newest good step
    assert code == 3 and "nothing to delete" in out
    assert re.search(r"protected base_checkpoints/d2@300: newest good checkpoint of its tag "
                     r"\(step 400 is unhealthy: .*NaN", out)
    assert "kept base_checkpoints/d2@400: checked, unhealthy" in out
    code, _, err = run(capsys, "rm", "d2", *b)
    assert code == 2 and "rm takes steps" in err and "d2@latest" in err
    code, _, err = run(capsys, "rm", "d2@999", *b)
    assert code == 2 and "no step 999" in err
    code, out, _ = run(capsys, "rm", "d2@100", "--yes", *b)
    assert code == 0 and "4 removed" in out and not (d2(base) / "model_000100.pt").exists()


def test_rm_a_damaged_latest_needs_a_typed_yes(base: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    b = ["--base-dir", str(base)]
    latest = d2(base) / "model_000400.pt"
    code, out, _ = run(capsys, "rm", "d2@latest", *b, stdin="y\n", monkeypatch=monkeypatch)
    assert code == 5 and latest.exists()
    assert re.search(r"needs yes: base_checkpoints/d2@400 is the latest step of its tag and it "
                     r"is unhealthy: .*NaN", out)
    assert "Type yes to confirm" in out
    code, out, _ = run(capsys, "rm", "d2@latest", *b, "--json", "--dry-run")
    doc = json.loads(out)
    assert code == 0 and doc["verified"] and doc["confirm"][0].startswith(KEY.format(400))
    assert doc["kept_verdicts"] == {KEY.format(300): "good"}
    code, out, _ = run(capsys, "rm", "d2@latest", *b, stdin="yes\n", monkeypatch=monkeypatch)
    assert code == 0 and "4 removed" in out and not latest.exists()


def test_rm_yes_a_pinned_step_and_a_stray_file(base: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    b = ["--base-dir", str(base)]
    assert run(capsys, "pin", "d2@100", *b)[0] == 0
    code, out, _ = run(capsys, "rm", "d2@100", "--dry-run", *b)
    assert code == 3 and "protected base_checkpoints/d2@100: pinned" in out
    code, out, _ = run(capsys, "rm", str(d2(base) / "model_000100.pt"), "--allow-pinned",
                       "--optimizer-only", "--yes", *b)  # a file names its step
    assert code == 0 and "2 removed" in out and (d2(base) / "model_000100.pt").exists()
    stray = d2(base) / "model_000100_backup.pt"
    shutil.copy(d2(base) / "model_000300.pt", stray)
    code, _, err = run(capsys, "rm", str(stray), *b)
    assert code == 2 and "not a checkpoint step of a tag" in err
    # unchecked, the (unhealthy) latest step is only known as the latest: protected
    code, out, _ = run(capsys, "rm", "d2@latest", "--yes", "--no-check", *b)
    assert code == 3 and "protected base_checkpoints/d2@400: latest step of its tag" in out
    code, out, _ = run(capsys, "rm", "d2@latest", "--yes", "--no-check", "--allow-latest", *b)
    assert code == 0 and not (d2(base) / "model_000400.pt").exists()


def test_prune_lists_verdicts_and_no_check(base: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    b = ["--base-dir", str(base)]
    code, out, _ = run(capsys, "prune", "d2", "--keep-last", "1", "--dry-run", *b)
    assert code == 0
    assert re.search(r"protected base_checkpoints/d2@300: newest good checkpoint", out)
    assert "kept base_checkpoints/d2@400: checked, unhealthy" in out
    code, out, _ = run(capsys, "prune", "d2", "--keep-last", "1", "--dry-run", "--json", *b)
    doc = json.loads(out)
    assert doc["verified"] and doc["kept_verdicts"][KEY.format(400)].startswith("unhealthy")
    code, out, _ = run(capsys, "prune", "d2", "--keep-last", "1", "--dry-run", "--no-check",
                       *b)
    assert code == 0 and "base_checkpoints/d2@300" in out.split("protected")[0]
    assert "warning: not verified (--no-check)" in out and "kept base_" not in out
    code, out, _ = run(capsys, "prune", "d2", "--keep-last", "1", "--dry-run", "--json",
                       "--no-check", *b)
    assert json.loads(out)["verified"] is False
    # declining: the plain y/N prompt when nothing needs a typed yes
    code, out, err = run(capsys, "prune", "d2", "--keep-last", "1", *b, stdin="n\n",
                         monkeypatch=monkeypatch)
    assert code == 5 and "[y/N]" in out and "nothing deleted" in err


def test_prune_ctrl_c_while_verifying_deletes_nothing(base: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = cli_common.ByteMeter.__call__
    sent: list[int] = []

    def interrupt(self: cli_common.ByteMeter, done: int, total: int) -> None:
        # Ctrl-C twice (stop, then abort), no more: a worker thread still reporting progress
        # after the cancel must not send a SIGINT that lands once the handler is put back
        if len(sent) < 2:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGINT)
        real(self, done, total)

    monkeypatch.setattr(cli_common.ByteMeter, "__call__", interrupt)
    before = sorted(p.name for p in d2(base).iterdir())
    code, out, err = run(capsys, "prune", "d2", "--keep-last", "1", "--yes", "--base-dir",
                         str(base))
    assert code == 130 and out == ""
    assert err.splitlines()[-1] == ("nanochat-ckpt: cancelled while checking the steps to "
                                    "keep; nothing deleted")
    assert sorted(p.name for p in d2(base).iterdir()) == before


def test_store_rules_and_warning_plurals(base: Path) -> None:
    with pytest.raises(PruneError, match="keep-last must be 1 or more, not 0"):
        Rules(keep_last=0)
    with pytest.raises(PruneError, match="keep-best must be 1 or more"):
        Rules(keep_last=1, keep_best=0)
    cat = scan(base)
    tag = cat.stage("base").tag("d2")
    one = plan_rules(cat, [tag], Rules(keep_last=3, optimizer_only=True), verify=False)
    assert any("step 100 loses its optimizer shards" in w and "from it" in w
               for w in one.warnings), one.warnings
    two = plan_rules(cat, [tag], Rules(keep_last=2, optimizer_only=True), verify=False)
    assert any("steps 100, 200 lose their optimizer shards" in w and "from them" in w
               for w in two.warnings), two.warnings


# --------------------------------------------------------------------------------------------
# archive, FIFOs, steps being written


def test_archive_allow_damaged(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                               ) -> None:
    dest = tmp_path / "dest"
    code, out, _ = run(capsys, "archive", "d2@200", str(dest), "--base-dir", str(base))
    assert code == 1 and "the source is damaged: CRC mismatch" in out
    assert "--allow-damaged copies it anyway" in out
    assert not (dest / "base_checkpoints/d2/model_000200.pt").exists()
    code, out, _ = run(capsys, "archive", "d2@200", str(dest), "--base-dir", str(base),
                       "--allow-damaged")
    assert code == 0 and (dest / "base_checkpoints/d2/model_000200.pt").exists()


def test_show_a_fifo_path_says_not_a_regular_file(base: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fifo = d2(base) / "model_000500.pt"
    os.mkfifo(fifo)
    os.utime(fifo, (HOUR_AGO, HOUR_AGO))
    code, out, err = run(capsys, "show", str(fifo))
    assert code == 1 and "no tag" not in err + out
    assert "not a regular file (a device, pipe or socket)" in out
    code, out, _ = run(capsys, "show", str(fifo), "--json")
    assert "not a regular file" in json.loads(out)["model_error"]
    lone = d2(base) / "somepipe"
    os.mkfifo(lone)
    code, out, _ = run(capsys, "show", str(lone), "--json")
    assert code == 1 and "not a regular file" in json.loads(out)["model_error"]


def test_show_and_diff_a_step_written_a_moment_ago(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    tag = tmp_path / "base" / "base_checkpoints" / "d2"
    write_step(tag, 100)
    write_step(tag, 200)  # whole zips, but inside the write window: badged writing
    b = ["--base-dir", str(tmp_path / "base")]
    code, out, _ = run(capsys, "show", "d2@200", "--json", "--no-tensors", *b)
    doc = json.loads(out)
    assert code == 0 and doc["checkpoint"]["state"] == "writing" and doc["model"]["params"]
    code, out, err = run(capsys, "diff", "d2@100", "d2@200", "-q", "--json", *b)
    assert code == 0, err
    assert json.loads(out)["schema"] == "nanochat-ckpt.diff/1"
    model = tag / "model_000200.pt"
    model.write_bytes(model.read_bytes()[:3000])  # no zip end yet: not opened
    code, _, err = run(capsys, "diff", "d2@100", "d2@200", "-q", *b)
    assert code == 1 and "still being written (model_000200.pt has no zip end yet)" in err


def test_check_urls(master: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A base dir, stage dir, tag dir, file or BASE/TAG@STEP URL (read through fsspec)."""
    fsspec = pytest.importorskip("fsspec")
    from test_remote import put_memory

    fs = fsspec.filesystem("memory")
    root = "/check-url-test/base"
    put_memory(fs, master, root)
    try:
        url = f"memory://{root}"
        for ref, steps in ((url, [100, 200, 300, 400]),
                           (f"{url}/base_checkpoints", [100, 200, 300, 400]),
                           (f"{url}/base_checkpoints/d2", [100, 200, 300, 400]),
                           (f"{url}/base_checkpoints/d2/model_000300.pt", [300]),
                           (f"{url}/d2@200", [200])):
            code, out, _ = run(capsys, "check", ref, "--json", "--no-tensors")
            doc = json.loads(out)
            assert [r["step"] for r in doc["reports"]] == steps, ref
            assert code == (0 if steps == [300] else 1), ref
        assert doc["reports"][0]["findings"][0]["message"].startswith("CRC mismatch")
        code, out, _ = run(capsys, "ls", url, "--json")
        got = {c["step"]: c["verdict"] for c in json.loads(out)["stages"][0]["tags"][0][
            "checkpoints"]}
        assert got == {100: "good", 200: "damaged", 300: "good", 400: "unhealthy"}
    finally:
        fs.rm(root.rsplit("/", 1)[0], recursive=True)
