"""What makes the CLI start fast and list 6,000 steps fast, checked for sameness: the JSON
text written directly, the plain console, the tuple FileEntry and hand-written records, the
str-method classifier, the lazy pickle reader, the bulk verdict lookups, the quick exit."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanochat_ckpt_tui.cli import main
from nanochat_ckpt_tui.cli.common import RawJSON, _json_clean, json_text
from nanochat_ckpt_tui.cli.documents import catalog_json, checkpoint_json, checkpoint_json_text
from nanochat_ckpt_tui.cli.plain import PlainConsole, escape, render
from nanochat_ckpt_tui.store import layout, summary
from nanochat_ckpt_tui.store.layout import Checkpoint, FileEntry, FileKind, classify, scan
from nanochat_ckpt_tui.store.pins import update_pin

EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18
ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def big_tag(base: Path, steps: int, ranks: int = 2) -> Path:
    tag = base / "base_checkpoints" / "d20"
    tag.mkdir(parents=True)
    old = time.time() - 86400
    for s in range(1, steps + 1):
        meta = json.dumps({"step": s, "val_bpb": 1.0 - s * 1e-4,
                           "model_config": {"n_layer": 20}}).encode()
        files = [(f"model_{s:06d}.pt", EMPTY_ZIP), (f"meta_{s:06d}.json", meta)]
        files += [(f"optim_{s:06d}_rank{r}.pt", EMPTY_ZIP) for r in range(ranks)]
        for name, data in files:
            (tag / name).write_bytes(data)
            os.utime(tag / name, (old, old))
    return tag


# --------------------------------------------------------------------------------------------
# JSON written directly is what json.dumps writes


def _odd_base(tmp_path: Path) -> Path:
    """Names, notes and problems that need escaping; a bad meta, a missing rank."""
    base = tmp_path / "odd"
    tag = big_tag(base, 3)
    (tag / "optim_000002_rank1.pt").unlink()  # optim incomplete
    (tag / "meta_000003.json").write_text('{"step": 3, "model_config": [1]}')  # bad meta
    (tag / "meta_000001.json").write_text('{"step": 1, "val_bpb": NaN, "model_config": {}}')
    update_pin(tag, 1, pinned=True, note='a "quoted" note\\with \u00e9 and\nnew line')
    weird = base / "base_checkpoints" / 'd"x\\y\u00e9'
    weird.mkdir()
    (weird / "model_000010.pt").write_bytes(EMPTY_ZIP)
    (weird / "model_٣.pt").write_bytes(b"")  # an Arabic-Indic digit: step 3, 0 bytes
    return base


def test_checkpoint_text_is_json_dumps_of_the_record(demo_master: Path, tmp_path: Path) -> None:
    for base in (demo_master, _odd_base(tmp_path)):
        cat = scan(base)
        summary.assess_metas(cat.checkpoints)
        assert cat.checkpoints
        for ck in cat.checkpoints:
            for verdict in (None, "good", 'dam"aged'):
                want = json.dumps(_json_clean(checkpoint_json(ck, verdict)), allow_nan=False)
                got = checkpoint_json_text(ck, verdict)
                assert type(got) is RawJSON and got == want


def test_ls_json_document_is_the_same_as_before(demo_master: Path, tmp_path: Path) -> None:
    """The document written (records as text, long lists one record a line) parses to what
    ``json.dumps(..., indent=2)`` of the dicts gave."""
    for base in (demo_master, _odd_base(tmp_path)):
        cat = scan(base)
        summary.assess_metas(cat.checkpoints)
        dicts = catalog_json(cat, "nanochat-ckpt.ls/1")
        text = json_text(catalog_json(cat, "nanochat-ckpt.ls/1", encoded=True))
        old = json.dumps(_json_clean(dicts), indent=2, allow_nan=False)
        assert json.loads(text) == json.loads(old)
        assert re.search(r'^ +\{"step": ', text, re.M)  # a checkpoint a line


def test_json_text_spells_non_finite_numbers() -> None:
    doc = {"a": math.inf, "b": [1.0, -math.inf, math.nan], "c": {"d": None, 3: True},
           "checkpoints": [{"x": math.nan}], "e": [[1, 2], [3]], "f": []}
    got = json.loads(json_text(doc))
    assert got == {"a": "Infinity", "b": [1.0, "-Infinity", "NaN"], "c": {"d": None, "3": True},
                   "checkpoints": [{"x": "NaN"}], "e": [[1, 2], [3]], "f": []}


def test_scalars_are_written_as_jsons_encoder_writes_them() -> None:
    """The scalars json_text writes itself (str, int, bool, None, finite floats) are spelled as
    json's encoder spells them; subclasses and non-finite floats are left to the encoder."""
    from nanochat_ckpt_tui.cli.common import _ENCODE, _item_text

    class S(str):
        pass

    class N(int):
        pass

    class F(float):
        pass

    for v in (0, -1, 2**70, True, False, None, 0.0, -0.0, 1e300, 5e-324, 0.1, 1 / 3, "", "a",
              "é\n\"\\", "\u2028\U0001f600", S("x"), N(3), F(1.5), [1, "a"], {"k": 1.5}):
        assert _item_text(v) == _ENCODE(v), v
    for v in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError):
            _item_text(v)


# --------------------------------------------------------------------------------------------
# the plain console writes what rich writes


@pytest.mark.parametrize("markup", [
    "plain", "[bold]x[/] y", "[bold red]a[/] b [dim]c[/]", "a \\[not a tag] b",
    escape("[bold]literal[/] and \\ and a[1] and \\[x]"), escape("ends with \\"),
    "[magenta]2 pins[/]", "[yellow]note:[/] " + escape("/a/[b]/c: permission denied"),
])
def test_plain_render_is_richs(markup: str) -> None:
    from rich.console import Console
    from rich.markup import escape as rich_escape

    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(markup, highlight=False,
                                                            soft_wrap=True)
    assert render(markup) + "\n" == buf.getvalue()
    text = "[bold]x[/] a\\[b] \\[c]\\"
    assert escape(text) == rich_escape(text)


def test_ls_human_output_without_rich_is_richs(demo_master: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from nanochat_ckpt_tui.cli import plain

    odd = _odd_base(tmp_path)
    (odd / "base_checkpoints" / "[bold]tag").mkdir()
    for base in (demo_master, odd):
        for width in ("80", "132"):
            monkeypatch.setenv("COLUMNS", width)
            code, fast, _ = run(capsys, "ls", str(base))
            with monkeypatch.context() as m:
                m.setattr(plain, "plain_console", lambda: None)  # rich's console
                code2, slow, _ = run(capsys, "ls", str(base))
            assert code == code2 == 0 and fast == slow
    assert "[bold]tag" in fast


def test_plain_console_only_where_rich_writes_no_colours(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from nanochat_ckpt_tui.cli.plain import plain_console

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(plain_console(), PlainConsole)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert plain_console() is None
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert plain_console() is None


# --------------------------------------------------------------------------------------------
# the scan's records


def test_classify_is_the_regexes() -> None:
    pats = [(re.compile(layout.PATTERNS[k]), kind) for k, kind in (
        ("MODEL_RE", FileKind.MODEL), ("META_RE", FileKind.META), ("OPTIM_RE", FileKind.OPTIM),
        ("OPTIM_OLD_RE", FileKind.OPTIM), ("LEGACY_RE", FileKind.LEGACY))]

    def by_regex(name: str) -> tuple[FileKind, int | None, int | None]:
        for r, kind in pats:
            m = r.fullmatch(name)
            if m:
                g = m.groups()
                return kind, int(g[0]), int(g[1]) if len(g) > 1 else None
        return FileKind.OTHER, None, None

    parts = ["model_", "meta_", "optim_", "step_", "_rank", ".pt", ".json", "0", "12", "٣",
             "x", "_", ".", "", "²"]
    for n in range(1, 5):
        for combo in itertools.product(parts, repeat=n):
            name = "".join(combo)
            assert classify(name) == by_regex(name), name
    assert layout.MODEL_RE.fullmatch("model_000010.pt")  # (compiled on first use)


def test_file_entry_is_a_frozen_record(tmp_path: Path) -> None:
    p = tmp_path / "model_000010.pt"
    a = FileEntry(p, FileKind.MODEL, 5, 1.5, 10, None, False)
    b = FileEntry(p, FileKind.MODEL, 5, 1.5, 10)
    assert a == b and hash(a) == hash(b) and a.name == "model_000010.pt"
    assert (a.path, a.kind, a.size, a.mtime, a.step, a.rank, a.is_link) == (
        p, FileKind.MODEL, 5, 1.5, 10, None, False)
    assert pickle.loads(pickle.dumps(a)) == a
    assert repr(a).startswith("FileEntry(path=") and "is_link=False" in repr(a)
    with pytest.raises(AttributeError):
        a.size = 6  # type: ignore[misc]
    base = tmp_path / "base"
    tag = big_tag(base, 1)
    entry = scan(base).checkpoints[0].model
    assert entry is not None and entry.mtime_ns == os.stat(tag / entry.name).st_mtime_ns


def test_records_compare_and_show_as_dataclasses_did(tmp_path: Path) -> None:
    from nanochat_ckpt_tui.store.storage import LocalStorage

    a = Checkpoint("base_checkpoints", "d2", 5, tmp_path)
    b = Checkpoint("base_checkpoints", "d2", 5, tmp_path, storage=LocalStorage(tmp_path))
    assert a == b  # the storage is not compared, nor shown
    assert a != Checkpoint("base_checkpoints", "d2", 6, tmp_path)
    assert repr(a).startswith("Checkpoint(stage='base_checkpoints', tag='d2', step=5,")
    assert "storage" not in repr(a) and a.optim == [] and a.optim is not b.optim
    with pytest.raises(TypeError):
        hash(a)
    assert a.key == "base_checkpoints/d2@5" and a.__dict__["key"] == a.key


def test_tag_sums(demo_master: Path) -> None:
    for tag in scan(demo_master).tags:
        cks = tag.checkpoints
        assert tag.model_bytes == sum(c.model_bytes for c in cks)
        assert tag.optim_bytes == sum(c.optim_bytes for c in cks)
        assert tag.meta_bytes == sum(c.meta_bytes for c in cks)
        assert tag.total_bytes == sum(c.total_bytes for c in cks) + tag.other_bytes


# --------------------------------------------------------------------------------------------
# metas


def test_meta_read_fast_and_its_edges(tmp_path: Path) -> None:
    base = tmp_path / "base"
    tag = big_tag(base, 3)
    cat = scan(base)
    grown = tag / "meta_000002.json"  # grown since the scan: read whole
    grown.write_text(json.dumps({"step": 2, "val_bpb": 0.5, "model_config": {},
                                 "pad": "x" * 5000}))
    (tag / "meta_000003.json").write_text("")  # emptied since the scan
    summary.assess_metas(cat.checkpoints)
    one, two, three = cat.checkpoints
    assert summary.val_bpb_of(one) == pytest.approx(0.9999) and one.state.value == "complete"
    assert summary.val_bpb_of(two) == 0.5
    assert three.state.value == "bad meta" and "empty" in three.problems[-1]


def test_summary_imports_the_pickle_reader_only_to_read_a_model() -> None:
    code = ("import sys\nimport nanochat_ckpt_tui.store.summary as s\n"
            "assert 'nanochat_ckpt_tui.store.ptfile' not in sys.modules\n"
            "from nanochat_ckpt_tui.store.ptfile import CheckpointError\n"
            "assert issubclass(s.MetaError, CheckpointError)\n"
            "assert s.MetaError.__qualname__ == 'MetaError' and s.meta_error_type() is s.MetaError\n"
            "import pickle; e = s.MetaError('broken', 'meta_000001.json')\n"
            "assert str(pickle.loads(pickle.dumps(e))) == str(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------
# start-up: what ls and show import


def test_ls_and_show_json_import_little(demo_master: Path, tmp_path: Path) -> None:
    code = ("import sys\nfrom nanochat_ckpt_tui.cli import main\n"
            f"main(['ls', {str(demo_master)!r}, '--json'])\n"
            "bad = [m for m in ('rich', 'textual', 'numpy', 'torch', 'fsspec', 'sqlite3', "
            "'hashlib', 'signal', 'nanochat_ckpt_tui.store.ptfile', "
            "'nanochat_ckpt_tui.cli.table') if m in sys.modules]\n"
            "assert not bad, ('ls', bad)\n"
            f"main(['show', 'base/d4@3000', '--base-dir', {str(demo_master)!r}, '--json'])\n"
            "bad = [m for m in ('rich', 'textual', 'numpy', 'torch', 'fsspec', 'sqlite3', "
            "'nanochat_ckpt_tui.cli.table') if m in sys.modules]\n"
            "assert not bad, ('show', bad)\n")
    env = {**os.environ, "NANOCHAT_CKPT_CACHE": str(tmp_path / "no-cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr


def test_ls_human_to_a_file_imports_no_rich_console(demo_master: Path, tmp_path: Path) -> None:
    code = ("import sys\nfrom nanochat_ckpt_tui.cli import main\n"
            f"main(['ls', {str(demo_master)!r}])\n"
            "assert 'rich.console' not in sys.modules\n")
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "base / d4" in proc.stdout


def test_quick_exit_writes_everything(tmp_path: Path) -> None:
    """Run as the command, a read-only command ends the process at once, its output whole
    (in a pipe read slowly too); NANOCHAT_CKPT_FULL_EXIT keeps the normal exit."""
    base = tmp_path / "base"
    big_tag(base, 300)
    env = {**os.environ, "NANOCHAT_CKPT_CACHE": str(tmp_path / "cache")}
    for extra in ({}, {"NANOCHAT_CKPT_FULL_EXIT": "1"}):
        proc = subprocess.Popen([sys.executable, "-m", "nanochat_ckpt_tui", "ls", str(base),
                                 "--json"], stdout=subprocess.PIPE, env={**env, **extra})
        assert proc.stdout is not None
        chunks = []
        while chunk := proc.stdout.read(4096):
            chunks.append(chunk)
            time.sleep(0.001)
        assert proc.wait(60) == 0
        doc = json.loads(b"".join(chunks))
        assert len(doc["stages"][0]["tags"][0]["checkpoints"]) == 300
    bad = subprocess.run([sys.executable, "-m", "nanochat_ckpt_tui", "show", "base/d9",
                          "--base-dir", str(base)], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "no tag" in bad.stderr
    closed = subprocess.run(f"{sys.executable} -m nanochat_ckpt_tui ls {base} --json | head -c 10",
                            shell=True, capture_output=True, text=True, env=env)
    assert closed.stdout == '{\n  "schem' and closed.stderr == ""


# --------------------------------------------------------------------------------------------
# verdict lookups


def test_verdicts_of_a_big_tag_with_a_busy_cache(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache full of other files' results: the steps never checked cost no per-step lookup
    (no report rebuilt); the steps checked still show their verdicts."""
    import sqlite3

    from nanochat_ckpt_tui.store import check as store_check
    from nanochat_ckpt_tui.store.check_cache import cache_dir

    base = tmp_path / "base"
    big_tag(base, 400)
    code, _, _ = run(capsys, "check", "d20@399", "d20@400", "--base-dir", str(base), "-q")
    assert code == 1  # empty zips: damaged
    db = sqlite3.connect(cache_dir() / "checks.sqlite")
    with db:
        db.executemany("INSERT INTO results VALUES (?, ?, ?)", (
            (f'["local",1,{i},10,{i}]', '{"v":1,"verdict":"good"}', 0.0) for i in range(5000)))
    db.close()
    rebuilt = []
    real = store_check.cached_report

    def counting(ck, cache=None):  # type: ignore[no-untyped-def]
        rebuilt.append(ck.key)
        return real(ck, cache)

    monkeypatch.setattr(store_check, "cached_report", counting)
    code, out, _ = run(capsys, "ls", str(base), "--json")
    cks = json.loads(out)["stages"][0]["tags"][0]["checkpoints"]
    assert {c["step"]: c["verdict"] for c in cks if c["verdict"]} == {399: "damaged",
                                                                      400: "damaged"}
    assert rebuilt == []  # remembered by check; the 398 others: never checked, not asked
    # a step checked elsewhere (its files' results only): rebuilt, then remembered
    ck = next(c for c in scan(base).checkpoints if c.step == 10)
    store_check.check([ck])
    code, out, _ = run(capsys, "ls", str(base), "--json")
    cks = json.loads(out)["stages"][0]["tags"][0]["checkpoints"]
    assert [c["step"] for c in cks if c["verdict"]] == [10, 399, 400]
    assert rebuilt == ["base_checkpoints/d20@10"]
    run(capsys, "ls", str(base), "--json")
    assert rebuilt == ["base_checkpoints/d20@10"]  # remembered now


def test_step_keys_use_the_checkers_result_version() -> None:
    from nanochat_ckpt_tui.store import check as store_check
    from nanochat_ckpt_tui.store import step_verdicts as verdicts

    assert verdicts.RESULT_VERSION == store_check.RESULT_VERSION
