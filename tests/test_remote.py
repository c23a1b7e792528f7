"""Remote, read-only browsing: fsspec memory filesystem and an S3 server (moto) on loopback.

A remote scan must equal the local scan of the same tree; summaries, meta and diffs must equal
the local ones; reading a model's metadata must fetch its zip tail and data.pkl, never tensors.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import types
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nanochat_ckpt_tui import cli
from nanochat_ckpt_tui.store import diff as diff_mod
from nanochat_ckpt_tui.store import layout, readers, refs, remote, storage, summary
from nanochat_ckpt_tui.store.layout import Catalog, State, scan
from nanochat_ckpt_tui.store.pins import update_pin
from nanochat_ckpt_tui.store.ptfile import CheckpointError
from nanochat_ckpt_tui.store.refs import resolve

LATER = time.time() + 3600  # "now" for scans: nothing (local or just uploaded) is in flight
PAIRS = [("base/d4@500", "base/d4@3000"), ("mid/d4@200", "base/d4@3000"),
         ("sft/d4@300", "sft/d4@600"), ("base/d2_legacy@1000", "base/d2_legacy@2000")]


def digest(cat: Catalog) -> list[Any]:
    """Everything a scan decides, without paths and mtimes (remote mtimes are upload times)."""
    out: list[Any] = []
    for s in cat.stages:
        out.append(("stage", s.dirname, s.label, s.default_tag,
                    [(f.name, f.size) for f in s.other_files]))
        for t in s.tags:
            out.append(("tag", t.name, t.latest_step, t.total_bytes, t.pins_error,
                        [(f.name, f.kind.value, f.size) for f in t.other_files]))
            for c in t.checkpoints:
                out.append((c.key, c.state.value, c.problems, c.is_latest, c.pinned, c.note,
                            [(f.name, f.kind.value, f.size, f.step, f.rank) for f in c.files]))
    return out


def diff_doc(a: Any, b: Any, **kw: Any) -> dict[str, Any]:
    doc = diff_mod.diff(a, b, chunk_elems=1000, **kw).to_json()
    doc.pop("elapsed_s")
    for side in ("a", "b"):
        doc[side].pop("path")
        doc[side].pop("mtime")
    return doc


def pkl_size(path: Path) -> int:
    with zipfile.ZipFile(path) as z:
        return next(i.file_size for i in z.infolist() if i.filename.endswith("/data.pkl"))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------------------------
# fsspec memory filesystem


def put_memory(fs: Any, src: Path, root: str) -> None:
    """Upload a tree to the memory filesystem, dated an hour ago (as if uploaded then)."""
    fs.put(str(src), root, recursive=True)
    hour_ago = datetime.datetime.now(tz=datetime.timezone.utc) - datetime.timedelta(hours=1)
    for path, f in fs.store.items():
        if path.startswith(root + "/"):
            f.created = hour_ago


@pytest.fixture
def mem_url(demo_master: Path) -> Iterator[str]:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"/remote-test-{uuid.uuid4().hex[:8]}/base"
    put_memory(fs, demo_master, root)
    yield f"memory://{root}"
    fs.rm(root.rsplit("/", 1)[0], recursive=True)


def test_memory_scan_equals_local_scan(demo_master: Path, mem_url: str) -> None:
    local = scan(demo_master, now=LATER)
    cat = scan(mem_url, now=LATER)
    assert cat.exists and cat.read_only and not cat.storage.writable and not cat.notes
    assert cat.location == mem_url and cat.free_bytes is None
    assert digest(cat) == digest(local)
    assert cat.total_bytes == local.total_bytes and cat.optim_bytes == local.optim_bytes
    assert digest(scan(f"file://{demo_master}", now=LATER)) == digest(local)
    ck = cat.stage("base").tag("d4").latest
    assert ck.storage is cat.storage and cat.stage("base").tag("d4").storage is cat.storage
    assert isinstance(ck.model.path, remote.RemotePath) and not isinstance(ck.model.path, Path)
    assert isinstance(ck.dir / "x", remote.RemotePath) and ck.model.path.parent == ck.dir
    for touch in (open, os.stat, os.unlink):  # no local file can be reached through it
        with pytest.raises(TypeError, match="remote"):
            touch(ck.model.path)
    assert cat.storage.display(ck.model.path) == f"{mem_url}/base_checkpoints/d4/model_003000.pt"
    # a rescan through the same handle sees a new step (listings are not cached)
    fs = cat.storage.fs
    src = f"{cat.storage.root}/base_checkpoints/d4/model_003000.pt"
    fs.pipe_file(src.replace("003000", "003500"), fs.cat_file(src))
    again = scan(cat.storage, now=time.time())
    d4 = again.stage("base").tag("d4")
    assert d4.latest_step == 3500
    assert d4.latest.state is State.WRITING  # just written: only its mtime says so
    assert d4.checkpoint(3000).state is State.COMPLETE


def test_remote_scan_reads_no_zip_tails_and_reads_pins(demo_dir: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    d4 = demo_dir / "base_checkpoints" / "d4"
    update_pin(d4, 2500, pinned=True, note="best so far")
    model = d4 / "model_001000.pt"
    model.write_bytes(model.read_bytes()[:5000])  # truncated: locally "corrupt"
    (demo_dir / "chatrl_checkpoints" / "d4" / ".nanochat-ckpt.json").write_text("{not json")
    fs = fsspec.filesystem("memory")
    root = f"/remote-test-{uuid.uuid4().hex[:8]}"
    put_memory(fs, demo_dir, root)
    try:
        local = scan(demo_dir, now=LATER)
        cat = scan(f"memory://{root}", now=LATER)
        tag = cat.stage("base").tag("d4")
        assert tag.checkpoint(2500).pinned and tag.checkpoint(2500).note == "best so far"
        assert cat.stage("rl").tag("d4").pins_error
        assert local.stage("base").tag("d4").checkpoint(1000).state is State.CORRUPT
        bad = tag.checkpoint(1000)
        assert bad.state is State.COMPLETE  # no tail read during a remote scan ...
        s = summary.summarize(bad)  # ... the truncation shows when the file is opened
        assert s.model is None and "not a readable torch zip" in (s.model_error or "")
        assert s.meta is not None
    finally:
        fs.rm(root, recursive=True)


def test_memory_summary_meta_and_metrics_equal_local(demo_master: Path, mem_url: str) -> None:
    local = scan(demo_master, now=LATER)
    cat = scan(mem_url, now=LATER)
    for ref in ("base/d4@3000", "mid/d4@400", "sft/d4@600", "rl/d4@200", "base/d2_legacy@2000",
                "base/d6@1200"):
        a, b = summary.summarize(resolve(local, ref)), summary.summarize(resolve(cat, ref))
        assert (b.model_error, b.meta_error) == (a.model_error, a.meta_error), ref
        assert (b.meta.data if b.meta else None) == (a.meta.data if a.meta else None)
        assert b.model is not None and b.model.tensors == a.model.tensors
        assert b.model_summary.params == a.model_summary.params
        assert [(s.entry.name, s.error, s.optimizer.groups if s.optimizer else None)
                for s in b.shards] == [(s.entry.name, s.error, s.optimizer.groups
                                        if s.optimizer else None) for s in a.shards]
    for t_local, t_remote in zip(local.tags, cat.tags, strict=True):
        assert summary.tag_metrics(t_remote) == summary.tag_metrics(t_local)
    assert [summary.val_bpb_of(c) for c in cat.checkpoints] == [
        summary.val_bpb_of(c) for c in local.checkpoints]


def test_memory_summary_fetches_tail_and_pickle_only(demo_master: Path, mem_url: str) -> None:
    cat = scan(mem_url, now=LATER)
    ck = resolve(cat, "base/d4@3000")
    local_model = demo_master / "base_checkpoints" / "d4" / "model_003000.pt"
    cat.storage.stats.reset()
    s = summary.summarize(ck, optimizer=False)
    assert s.model is not None and s.meta is not None
    # the zip's tail, data.pkl, byteorder and their two 30-byte local headers, and the meta
    budget = 65_536 + 22 + pkl_size(local_model) + 256 + ck.meta.size
    assert cat.storage.stats.bytes <= budget < ck.model.size // 3
    assert cat.storage.stats.requests <= 6


def test_memory_diff_equals_local_diff(demo_master: Path, mem_url: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 5000)  # many ranged reads per tensor
    local = scan(demo_master, now=LATER)
    cat = scan(mem_url, now=LATER)
    for ra, rb in PAIRS:
        seen: list[tuple[int, int]] = []
        got = diff_doc(resolve(cat, ra), resolve(cat, rb),
                       progress=lambda d, t, seen=seen: seen.append((d, t)))
        assert got == diff_doc(resolve(local, ra), resolve(local, rb)), (ra, rb)
        assert seen[-1] == (got["bytes_total"],) * 2
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # one side remote, one local: the same numbers too
    mixed = diff_doc(resolve(local, "base/d4@500"), resolve(cat, "base/d4@3000"))
    assert mixed == diff_doc(resolve(local, "base/d4@500"), resolve(local, "base/d4@3000"))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(diff_mod.DiffCancelled):
        diff_mod.diff(resolve(cat, "base/d4@500"), resolve(cat, "base/d4@3000"), cancel=cancel)


def test_memory_cli_ls_show_diff(demo_master: Path, mem_url: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "ls", mem_url, "--json")
    doc = json.loads(out)
    local = json.loads(run_cli(capsys, "ls", str(demo_master), "--json")[1])
    assert code == 0 and doc["base_dir"] == mem_url and doc["free_bytes"] is None

    def steps(d: dict[str, Any]) -> list[Any]:
        return [(s["dir"], t["name"], c["step"], c["state"], c["val_bpb"], c["total_bytes"])
                for s in d["stages"] for t in s["tags"] for c in t["checkpoints"]]

    assert steps(doc) == steps(local)
    first = doc["stages"][0]["tags"][0]["checkpoints"][0]["files"][0]["path"]
    assert first.startswith(mem_url + "/base_checkpoints/")
    code, out, _ = run_cli(capsys, "ls", mem_url)
    assert code == 0 and "remote, read-only" in out and "d4" in out
    code, out, _ = run_cli(capsys, "du", mem_url)
    assert code == 0 and "base" in out

    code, out, _ = run_cli(capsys, "show", f"{mem_url}/base/d4@3000", "--json",
                           "--no-tensors")
    shown = json.loads(out)
    assert code == 0 and shown["checkpoint"]["key"] == "base_checkpoints/d4@3000"
    assert shown["model"]["params"] > 0 and shown["meta"]["step"] == 3000
    for ref in (f"{mem_url}/base_checkpoints/d4@latest",
                f"{mem_url}/base_checkpoints/d4/model_003000.pt",
                f"{mem_url}/base_checkpoints/d4"):
        code, out, _ = run_cli(capsys, "show", ref, "--json", "--no-tensors")
        assert code == 0 and json.loads(out)["checkpoint"]["step"] == 3000, ref
    code, out, _ = run_cli(capsys, "show", "d4@3000", "--base-dir", mem_url, "--json")
    assert code == 2  # d4 is in three stages: the same message as locally
    code, out, _ = run_cli(capsys, "show", "sft/d4@600", "--base-dir", mem_url)
    assert code == 0 and "params" in out
    code, _, err = run_cli(capsys, "show", f"{mem_url}/base/d4@999")
    assert code == 2 and "no step 999" in err

    code, out, _ = run_cli(capsys, "diff", "base/d4@500", "base/d4@3000", "--base-dir", mem_url,
                           "--json")
    got = json.loads(out)
    code_l, out_l, _ = run_cli(capsys, "diff", "base/d4@500", "base/d4@3000", "--base-dir",
                               str(demo_master), "--json")
    want = json.loads(out_l)
    assert code == code_l == 0 and got["overall"] == want["overall"]
    assert got["tensors"] == want["tensors"] and got["meta_changes"] == want["meta_changes"]
    code, out, _ = run_cli(capsys, "diff", f"{mem_url}/base/d4@500", f"{mem_url}/sft/d4@600",
                           "--json")
    assert code == 0 and json.loads(out)["b"]["label"] == "chatsft_checkpoints/d4@600"


def test_prune_and_pin_refuse_remote_base_dirs(mem_url: str, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    before = scan(mem_url, now=LATER)
    for argv in (["prune", "d4", "--keep-last", "1", "--yes", "--base-dir", mem_url],
                 ["pin", "base/d4@500", "--base-dir", mem_url],
                 ["unpin", "base/d4@500", "--base-dir", mem_url],
                 ["pin", f"{mem_url}/base/d4@500"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and "read-only" in err and err.count("\n") == 1, argv
    opened: dict[str, object] = {}  # the app opens a URL (read-only: tests/test_tui_remote.py)
    monkeypatch.setattr("nanochat_ckpt_tui.tui.app.run_app",
                        lambda base, **kw: opened.update(base=base, **kw))
    code, _, err = run_cli(capsys, mem_url, "-o", "skip_instance_cache=true")
    assert code == 0 and opened["base"] == mem_url
    assert opened["storage_options"] == {"skip_instance_cache": True}
    monkeypatch.setenv("NANOCHAT_BASE_DIR", mem_url)
    code, _, err = run_cli(capsys, "prune", "base/d4", "--keep-last", "1", "--yes")
    assert code == 2 and "read-only" in err
    assert digest(scan(mem_url, now=LATER)) == digest(before)  # nothing changed
    code, out, _ = run_cli(capsys, "ls", "--json")  # the env var may be a URL for browsing
    assert code == 0 and json.loads(out)["base_dir"] == mem_url


def test_missing_backend_unknown_protocol_and_missing_base(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    pytest.importorskip("fsspec")
    if importlib.util.find_spec("gcsfs") is None:
        with pytest.raises(storage.StorageError, match=r"needs the gcsfs package.*pip install gcsfs"):
            scan("gcs://some-bucket/runs")
        code, _, err = run_cli(capsys, "ls", "gcs://some-bucket/runs")
        assert code == 1 and "gcsfs" in err and err.count("\n") == 1
    with pytest.raises(storage.StorageError, match="unknown protocol"):
        scan("nosuchproto://x/y")
    cat = scan(f"memory:///nothing-here-{uuid.uuid4().hex}")
    assert not cat.exists and cat.notes
    code, _, err = run_cli(capsys, "ls", f"memory:///nothing-here-{uuid.uuid4().hex}")
    assert code == 1 and "does not exist" in err


def test_store_imports_fsspec_only_when_a_url_is_opened() -> None:
    code = ("import sys\nimport nanochat_ckpt_tui.store.storage, nanochat_ckpt_tui.store.diff, "
            "nanochat_ckpt_tui.cli\nassert 'fsspec' not in sys.modules, 'fsspec imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------
# against an S3-compatible server on loopback (the s3_server fixture, conftest.py)


@pytest.fixture(scope="module")
def s3_url(s3_server: dict[str, Any], demo_master: Path) -> str:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server)
    bucket = f"ckpt-{uuid.uuid4().hex[:10]}"
    fs.mkdir(bucket)
    fs.put(str(demo_master), f"{bucket}/runs", recursive=True)
    return f"s3://{bucket}/runs"


def test_s3_scan_summary_bytes_and_diff(demo_master: Path, s3_url: str,
                                        s3_server: dict[str, Any]) -> None:
    local = scan(demo_master, now=LATER)
    cat = scan(s3_url, storage_options=s3_server, now=LATER)
    assert not cat.notes and digest(cat) == digest(local)
    ck = resolve(cat, "base/d4@3000")
    cat.storage.stats.reset()
    s = summary.summarize(ck, optimizer=False)
    assert s.model is not None and s.model.tensors == summary.summarize(
        resolve(local, "base/d4@3000"), optimizer=False).model.tensors
    pkl = pkl_size(demo_master / "base_checkpoints" / "d4" / "model_003000.pt")
    fetched = cat.storage.stats.bytes
    assert fetched <= 65_536 + 22 + pkl + 256 + ck.meta.size < ck.model.size // 3, fetched
    assert cat.storage.stats.requests <= 6  # tail, data.pkl (+ header), byteorder, meta
    for ra, rb in PAIRS[:2]:
        assert diff_doc(resolve(cat, ra), resolve(cat, rb)) == diff_doc(resolve(local, ra),
                                                                         resolve(local, rb))


def test_s3_cli_with_storage_options(s3_url: str, s3_server: dict[str, Any],
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the objects were uploaded seconds ago (so they look in flight): scan as if an hour later
    for module in (layout, refs):
        monkeypatch.setattr(module, "time", types.SimpleNamespace(time=lambda: LATER))
    opts = ["-o", f"endpoint_url={s3_server['endpoint_url']}", "-o", "key=testing",
            "-o", "secret=testing", "-o", "skip_instance_cache=true"]
    code, out, _ = run_cli(capsys, "ls", s3_url, "--json", *opts)
    doc = json.loads(out)
    assert code == 0 and doc["base_dir"] == s3_url
    assert {t["name"] for s in doc["stages"] for t in s["tags"]} == {"d4", "d6", "d2_legacy"}
    code, out, _ = run_cli(capsys, "show", f"{s3_url}/sft/d4@latest", "--json", *opts)
    assert code == 0 and json.loads(out)["model"]["orig_mod_prefix"] is True
    code, out, _ = run_cli(capsys, "diff", "rl/d4@100", "rl/d4@200", "--base-dir", s3_url,
                           "--json", *opts)
    assert code == 0 and json.loads(out)["overall"]["n_tensors"] > 0
    code, _, err = run_cli(capsys, "ls", s3_url.replace("ckpt-", "nobucket-"), *opts)
    assert code == 1 and err.count("\n") == 1


def test_remote_read_errors_are_one_line(mem_url: str) -> None:
    cat = scan(mem_url, now=LATER)
    ck = resolve(cat, "base/d4@3000")
    cat.storage.fs.rm(str(ck.model.path))  # deleted after the scan
    s = summary.summarize(ck)
    assert s.model is None and s.model_error and "\n" not in s.model_error
    with pytest.raises(CheckpointError):
        diff_mod.diff(ck, resolve(cat, "base/d4@500"))
