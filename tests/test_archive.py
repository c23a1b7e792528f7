"""Archive: local dirs, fsspec memory, an S3 server on loopback; resume, verify, refusals."""

from __future__ import annotations

import argparse
import errno
import filecmp
import hashlib
import importlib.util
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nanochat_ckpt_tui.cli_archive import add_archive_commands
from nanochat_ckpt_tui.store import archive as ar
from nanochat_ckpt_tui.store.layout import Checkpoint, State, scan
from nanochat_ckpt_tui.store.pins import update_pin
from nanochat_ckpt_tui.store.refs import resolve
from nanochat_ckpt_tui.store.storage import redact

ARCHIVE_KEYS = {"schema", "dest", "strategy", "ok", "cancelled", "archived", "files", "counts",
                "bytes_copied", "bytes_total", "seconds", "rate_bytes_per_s", "warnings",
                "manifest"}
VERIFY_KEYS = {"schema", "dest", "ok", "cancelled", "counts", "files"}


@pytest.fixture(autouse=True)
def _state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real ~/.config: the remembered destination goes to a temp file."""
    path = tmp_path / "state" / "state.json"
    monkeypatch.setenv(ar.STATE_ENV, str(path))
    return path


def cks(base: Path, *refs: str) -> list[Checkpoint]:
    cat = scan(base)
    return [resolve(cat, r) for r in refs]


def snapshot(base: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under base: size, mtime_ns and sha256 (to prove the source is untouched)."""
    out = {}
    for p in sorted(base.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(base))] = (st.st_size, st.st_mtime_ns,
                                             hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="nanochat-ckpt")
    add_archive_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


# --------------------------------------------------------------------------------------------
# local destination


def test_local_archive_keeps_layout_and_scans_complete(demo_dir: Path, tmp_path: Path) -> None:
    update_pin(demo_dir / "base_checkpoints" / "d4", 3000, pinned=True, note="best so far")
    before = snapshot(demo_dir)
    dest = tmp_path / "archive"
    res = ar.archive(cks(demo_dir, "base/d4@3000"), dest, with_optimizer=True)
    res2 = ar.archive(cks(demo_dir, "base/d4@2500"), dest)  # weights + meta only
    assert res.ok and res2.ok and res.strategy == "rename"
    assert snapshot(demo_dir) == before  # sources never touched (not even their mtimes)

    d4 = dest / "base_checkpoints" / "d4"
    assert sorted(p.name for p in d4.iterdir()) == [
        ".nanochat-ckpt.json", "meta_002500.json", "meta_003000.json", "model_002500.pt",
        "model_003000.pt", "optim_003000_rank0.pt", "optim_003000_rank1.pt"]
    assert (dest / "tokenizer" / "tokenizer.pkl").is_file()  # nanochat needs it to load
    assert not list(dest.rglob("*.partial"))
    for p in d4.glob("*_00*"):
        assert filecmp.cmp(p, demo_dir / "base_checkpoints" / "d4" / p.name, shallow=False)

    cat = scan(dest)
    tag = cat.stage("base").tag("d4")
    assert [c.step for c in tag.checkpoints] == [2500, 3000]
    ck = tag.checkpoint(3000)
    assert ck.state is State.COMPLETE and ck.ranks == [0, 1] and ck.is_latest
    assert ck.pinned and ck.note == "best so far"  # the pin travelled with it
    assert tag.checkpoint(2500).state is State.COMPLETE and not tag.checkpoint(2500).optim
    assert not tag.other_files

    manifest = json.loads((dest / ar.MANIFEST).read_text())
    assert manifest["schema"] == ar.MANIFEST_SCHEMA
    entry = manifest["files"]["base_checkpoints/d4/model_003000.pt"]
    src = demo_dir / "base_checkpoints" / "d4" / "model_003000.pt"
    assert entry["sha256"] == sha(src) and entry["size"] == src.stat().st_size
    assert entry["source_mtime"] == pytest.approx(src.stat().st_mtime)
    assert entry["archived_at"] > time.time() - 60
    assert manifest["checkpoints"]["base_checkpoints/d4@3000"]["with_optimizer"] is True
    assert manifest["checkpoints"]["base_checkpoints/d4@3000"]["pin"]["note"] == "best so far"
    assert ar.archived_steps(dest) == {("base_checkpoints", "d4", 2500),
                                       ("base_checkpoints", "d4", 3000)}
    assert ar.last_destination() == str(dest)


def test_second_run_copies_nothing_and_verify_rehashes(demo_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a"
    first = ar.archive(cks(demo_dir, "base/d4@3000"), dest, with_optimizer=True)
    assert first.count("copied") == 5  # tokenizer, model, meta, 2 shards
    again = ar.archive(cks(demo_dir, "base/d4@3000"), dest, with_optimizer=True)
    assert again.ok and again.count("copied") == 0 and again.count("present") == 5
    # a flipped byte keeps the size, but the copy's mtime moved: the re-run compares its
    # content with the manifest's sha256 and copies it again
    model = dest / "base_checkpoints" / "d4" / "model_003000.pt"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    rerun = ar.archive(cks(demo_dir, "base/d4@3000"), dest)
    copied = [r for r in rerun.results if r.status == "copied"]
    assert [r.rel for r in copied] == ["base_checkpoints/d4/model_003000.pt"]
    assert "checksum mismatch" in copied[0].detail
    assert sha(model) == sha(demo_dir / "base_checkpoints" / "d4" / "model_003000.pt")
    # flipped back to the old mtime, only --verify notices (it re-reads every copy)
    st = model.stat()
    data = bytearray(model.read_bytes())
    data[len(data) // 3] ^= 0xFF
    model.write_bytes(bytes(data))
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ar.archive(cks(demo_dir, "base/d4@3000"), dest).count("copied") == 0
    fixed = ar.archive(cks(demo_dir, "base/d4@3000"), dest, verify=True)
    copied = [r for r in fixed.results if r.status == "copied"]
    assert [r.rel for r in copied] == ["base_checkpoints/d4/model_003000.pt"]
    assert "checksum mismatch" in copied[0].detail
    assert sha(model) == sha(demo_dir / "base_checkpoints" / "d4" / "model_003000.pt")
    assert all(r.detail == "checksum verified" for r in fixed.results if r.status == "present")


def test_a_damaged_source_is_not_archived(demo_dir: Path, tmp_path: Path) -> None:
    model = demo_dir / "base_checkpoints" / "d4" / "model_003000.pt"
    st = model.stat()
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside a tensor record: its CRC no longer matches
    model.write_bytes(bytes(data))
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = ar.archive(cks(demo_dir, "base/d4@3000"), tmp_path / "a")
    failed = [r for r in res.results if r.status == "failed"]
    assert [r.rel for r in failed] == ["base_checkpoints/d4/model_003000.pt"]
    assert "CRC mismatch" in failed[0].detail and not res.ok
    assert not (tmp_path / "a" / failed[0].rel).exists()
    assert "base_checkpoints/d4@3000" not in res.archived
    forced = ar.archive(cks(demo_dir, "base/d4@3000"), tmp_path / "a", allow_damaged=True)
    assert forced.ok and forced.count("copied") >= 1


def test_archived_means_a_copy_of_these_bytes(demo_master: Path, tmp_path: Path) -> None:
    """After archiving base/d2@6 of one run, the same-named step of another run (another base
    dir, same names and sizes) is not "archived"."""
    import shutil

    from nanochat_ckpt_tui.store.manifest import archived_checkpoints

    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    shutil.copytree(demo_master, run1, copy_function=shutil.copy2)
    shutil.copytree(demo_master, run2, copy_function=shutil.copy2)
    other = run2 / "base_checkpoints" / "d4" / "model_003000.pt"
    data = bytearray(other.read_bytes())
    data[len(data) // 2] ^= 0x01
    other.write_bytes(bytes(data))  # a different run: same name and size, other bytes
    dest = tmp_path / "a"
    assert ar.archive(cks(run1, "base/d4@3000"), dest).ok
    assert archived_checkpoints(cks(run1, "base/d4@3000"), dest) == {"base_checkpoints/d4@3000"}
    assert archived_checkpoints(cks(run2, "base/d4@3000"), dest) == set()
    os.utime(run1 / "base_checkpoints" / "d4" / "model_003000.pt")  # a new version of it
    assert archived_checkpoints(cks(run1, "base/d4@3000"), dest) == set()


def test_progress_reports_bytes_and_rate(demo_dir: Path, tmp_path: Path) -> None:
    seen: list[ar.Progress] = []
    res = ar.archive(cks(demo_dir, "base/d4@3000"), tmp_path / "a", with_optimizer=True,
                     progress=seen.append, chunk_size=64 * 1024)
    assert res.ok and len(seen) > 10
    dones = [p.bytes_done for p in seen]
    assert dones == sorted(dones)
    assert seen[-1].bytes_done == seen[-1].bytes_total == 2 * res.bytes_copied
    assert {p.phase for p in seen} == {"copy", "verify"} and all(p.rate > 0 for p in seen)
    assert seen[-1].files_total == 5


def test_verify_reports_mismatch_and_missing(demo_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a"
    ar.archive(cks(demo_dir, "base/d4@3000", "base/d4@2500"), dest)
    assert ar.verify_archive(dest).ok
    model = dest / "base_checkpoints" / "d4" / "model_003000.pt"
    with open(model, "r+b") as f:  # corrupt one byte in place
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 1]))
    (dest / "base_checkpoints" / "d4" / "meta_002500.json").unlink()
    (dest / "base_checkpoints" / "d4" / "meta_003000.json").write_text("{}")
    report = ar.verify_archive(dest)
    status = {e.rel: e.status for e in report.entries}
    assert not report.ok
    assert status["base_checkpoints/d4/model_003000.pt"] == "mismatch"
    assert status["base_checkpoints/d4/meta_002500.json"] == "missing"
    assert status["base_checkpoints/d4/meta_003000.json"] == "mismatch"
    assert status["base_checkpoints/d4/model_002500.pt"] == "ok"
    detail = {e.rel: e.detail for e in report.entries}
    assert "sha256" in detail["base_checkpoints/d4/model_003000.pt"]
    assert "size" in detail["base_checkpoints/d4/meta_003000.json"]
    assert report.count("ok") == 2  # model_002500 and the tokenizer


# --------------------------------------------------------------------------------------------
# interruption and resume


def test_cancel_midway_then_resume_copies_only_the_rest(demo_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a"
    checkpoints = cks(demo_dir, "base/d4@3000", "base/d4@2500")
    cancel = threading.Event()
    src_of = {f"{c.stage}/{c.tag}/{f.name}": f.path for c in checkpoints for f in c.files}
    looks: list[int] = []

    def watch(p: ar.Progress) -> None:
        # at every chunk: whatever carries a final name at the destination is complete
        for rel, src in src_of.items():
            final = dest / rel
            if final.exists():
                assert final.read_bytes() == src.read_bytes(), rel
                looks.append(1)
        if p.bytes_done > p.bytes_total // 2 and p.phase == "copy":
            cancel.set()

    first = ar.archive(checkpoints, dest, with_optimizer=True, cancel=cancel, progress=watch,
                       chunk_size=32 * 1024)
    assert first.cancelled and not first.ok and looks
    done = {r.rel for r in first.results if r.status == "copied"}
    assert done and first.count("cancelled") >= 1
    interrupted = next(r for r in first.results if r.status == "cancelled")
    assert not (dest / interrupted.rel).exists()
    assert not list(dest.rglob("*.partial"))  # the half-written temp file was dropped
    manifest = json.loads((dest / ar.MANIFEST).read_text())
    assert set(manifest["files"]) == done  # the manifest was kept up to date per file
    assert ar.archived_steps(dest) <= {("base_checkpoints", "d4", 3000)}
    assert ar.last_destination() is None  # a cancelled run is not remembered
    assert ar.archived_steps(tmp_path / "nowhere") == set()

    second = ar.archive(checkpoints, dest, with_optimizer=True)
    assert second.ok
    assert {r.rel for r in second.results if r.status == "present"} == done
    assert {r.rel for r in second.results if r.status == "copied"} == set(
        r.rel for r in first.results) - done
    assert ar.verify_archive(dest).ok
    assert ar.archived_steps(dest) == {("base_checkpoints", "d4", 3000),
                                       ("base_checkpoints", "d4", 2500)}


def test_failed_write_leaves_nothing_that_looks_complete(
        demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "a"
    real_open_write = ar.LocalTarget.open_write

    class DiskFull:
        def __init__(self, fh: Any) -> None:
            self.fh, self.n = fh, 0

        def write(self, buf: bytes) -> int:
            self.n += len(buf)
            if self.n > 100_000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.fh.write(buf)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

    def flaky(self: ar.LocalTarget, rel: str) -> tuple[Any, str]:
        fh, written = real_open_write(self, rel)
        return (DiskFull(fh) if rel.endswith("model_002500.pt") else fh), written

    monkeypatch.setattr(ar.LocalTarget, "open_write", flaky)
    checkpoints = cks(demo_dir, "base/d4@3000", "base/d4@2500")
    res = ar.archive(checkpoints, dest)
    failed = [r for r in res.results if r.status == "failed"]
    assert [r.rel for r in failed] == ["base_checkpoints/d4/model_002500.pt"]
    assert "No space left" in failed[0].detail and not res.ok
    assert not (dest / failed[0].rel).exists()
    assert not list(dest.rglob("*.partial"))
    assert ar.archived_steps(dest) == {("base_checkpoints", "d4", 3000)}

    monkeypatch.setattr(ar.LocalTarget, "open_write", real_open_write)
    # a hard kill leaves a stale temp file: never mistaken for a checkpoint, then replaced
    stale = dest / "base_checkpoints" / "d4" / "model_002500.pt.partial"
    stale.write_bytes(b"PK half a file")
    tag = scan(dest).stage("base").tag("d4")
    assert tag.checkpoint(2500).model is None
    assert "model_002500.pt.partial" in [f.name for f in tag.other_files]
    again = ar.archive(checkpoints, dest)
    assert again.ok
    assert [r.rel for r in again.results if r.status == "copied"] == [failed[0].rel]
    assert not stale.exists()
    assert scan(dest).stage("base").tag("d4").checkpoint(2500).state is State.COMPLETE


def test_source_changed_since_archive_is_rehashed_not_recopied(demo_dir: Path,
                                                               tmp_path: Path) -> None:
    dest = tmp_path / "a"
    ar.archive(cks(demo_dir, "base/d4@3000"), dest)
    meta = demo_dir / "base_checkpoints" / "d4" / "meta_003000.json"
    os.utime(meta, (time.time() - 100, time.time() - 100))  # same bytes, new mtime
    res = ar.archive(cks(demo_dir, "base/d4@3000"), dest)
    r = next(r for r in res.results if r.rel.endswith("meta_003000.json"))
    assert r.status == "present" and "same content" in r.detail
    meta.write_text(meta.read_text().replace('"step": 3000', '"step":  3000'))  # new bytes
    os.utime(meta, (time.time() - 100, time.time() - 100))
    res = ar.archive(cks(demo_dir, "base/d4@3000"), dest)
    r = next(r for r in res.results if r.rel.endswith("meta_003000.json"))
    assert r.status == "copied" and r.detail == "size differs"
    assert filecmp.cmp(meta, dest / "base_checkpoints" / "d4" / meta.name, shallow=False)


# --------------------------------------------------------------------------------------------
# refusals and errors


def test_writing_checkpoint_is_refused(demo_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    model = demo_dir / "base_checkpoints" / "d4" / "model_003000.pt"
    os.utime(model)  # just written
    (ck,) = cks(demo_dir, "base/d4@3000")
    assert ck.state is State.WRITING
    with pytest.raises(ar.ArchiveError, match="still being written"):
        ar.archive([ck], tmp_path / "a")
    assert not (tmp_path / "a").exists()  # nothing created
    code = cli("archive", "base/d4@3000", str(tmp_path / "a"), "--base-dir", str(demo_dir))
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "still being written" in err


def test_destination_inside_source_is_refused(demo_dir: Path) -> None:
    checkpoints = cks(demo_dir, "base/d4@3000")
    with pytest.raises(ar.ArchiveError, match="source base dir itself"):
        ar.archive(checkpoints, demo_dir)
    with pytest.raises(ar.ArchiveError, match="mistake it for a tag"):
        ar.archive(checkpoints, demo_dir / "base_checkpoints" / "backup")


def test_missing_backend_names_the_package(demo_dir: Path) -> None:
    checkpoints = cks(demo_dir, "base/d4@3000")
    for url, package in (("gs://bucket/runs", "gcsfs"), ("ssh://me@host/x", "paramiko")):
        if importlib.util.find_spec(package) is not None:
            continue  # installed here: nothing to report
        with pytest.raises(ar.ArchiveError) as exc:
            ar.archive(checkpoints, url)
        assert f"pip install {package}" in str(exc.value)
    with pytest.raises(ar.ArchiveError, match="unknown destination protocol nope://"):
        ar.archive(checkpoints, "nope://x/y")


def test_missing_backend_of_any_protocol(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fsspec protocol's package is absent, the message names that package."""
    from fsspec.registry import known_implementations

    monkeypatch.setitem(known_implementations, "zzfake", {
        "class": "zzfake_backend_pkg.FakeFileSystem", "err": "Install zzfake_backend_pkg"})
    with pytest.raises(ar.ArchiveError) as exc:
        ar.archive(cks(demo_dir, "base/d4@3000"), "zzfake://bucket/x")
    assert "pip install zzfake_backend_pkg" in str(exc.value)
    assert "zzfake://" in str(exc.value)


def test_corrupt_manifest_is_left_alone(demo_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a"
    dest.mkdir()
    (dest / ar.MANIFEST).write_text("{not json")
    with pytest.raises(ar.ArchiveError, match="move it aside"):
        ar.archive(cks(demo_dir, "base/d4@3000"), dest)
    assert (dest / ar.MANIFEST).read_text() == "{not json"
    with pytest.raises(ar.ArchiveError, match="corrupt"):
        ar.verify_archive(dest)


def test_redact_and_remember(tmp_path: Path, _state_file: Path) -> None:
    assert redact("ssh://me:hunter2@host/x") == "ssh://me@host/x"
    assert redact("s3://bucket/x") == "s3://bucket/x"
    _state_file.parent.mkdir(parents=True)
    _state_file.write_text(json.dumps({"theme": "dark"}))
    ar.remember_destination("ssh://me:hunter2@host/x")
    doc = json.loads(_state_file.read_text())
    assert doc["theme"] == "dark" and "hunter2" not in _state_file.read_text()
    assert ar.last_destination() == "ssh://me@host/x"


# --------------------------------------------------------------------------------------------
# fsspec memory filesystem


@pytest.fixture
def memory_url() -> Iterator[str]:
    fsspec = pytest.importorskip("fsspec")
    root = f"/nanochat-ckpt-test-{uuid.uuid4().hex[:8]}"
    yield f"memory://{root}"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_filesystem_archive_and_verify(demo_dir: Path, memory_url: str) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = memory_url.removeprefix("memory://")
    res = ar.archive(cks(demo_dir, "sft/d4@600", "rl/d4@200"), memory_url, with_optimizer=True,
                     chunk_size=64 * 1024)
    assert res.ok and res.strategy == "rename" and res.count("copied") == 7
    src = demo_dir / "chatsft_checkpoints" / "d4" / "optim_000600_rank1.pt"
    assert fs.cat_file(f"{root}/chatsft_checkpoints/d4/optim_000600_rank1.pt") == src.read_bytes()
    assert not [p for p in fs.find(root) if p.endswith(".partial")]
    assert ar.archived_steps(memory_url) == {("chatsft_checkpoints", "d4", 600),
                                             ("chatrl_checkpoints", "d4", 200)}
    assert ar.verify_archive(memory_url).ok
    assert ar.archive(cks(demo_dir, "sft/d4@600"), memory_url,
                      with_optimizer=True).count("copied") == 0
    path = f"{root}/chatrl_checkpoints/d4/model_000200.pt"
    data = bytearray(fs.cat_file(path))
    data[-30] ^= 0x55
    fs.pipe_file(path, bytes(data))
    report = ar.verify_archive(memory_url)
    assert [(e.rel, e.status) for e in report.entries if e.status != "ok"] == [
        ("chatrl_checkpoints/d4/model_000200.pt", "mismatch")]


# --------------------------------------------------------------------------------------------
# against an S3-compatible server on loopback (the s3_server fixture, conftest.py)


@pytest.fixture
def s3_bucket(s3_server: dict[str, Any]) -> tuple[str, Any]:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server)
    bucket = f"ckpt-{uuid.uuid4().hex[:10]}"
    fs.mkdir(bucket)
    return bucket, fs


def test_s3_archive_verify_and_cancel(demo_dir: Path, s3_server: dict[str, Any],
                                      s3_bucket: tuple[str, Any],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    bucket, fs = s3_bucket
    url = f"s3://{bucket}/runs"
    checkpoints = cks(demo_dir, "base/d4@3000")
    with pytest.raises(ar.ArchiveError, match="never creates buckets"):
        ar.archive(checkpoints, f"s3://{bucket}-typo/runs", storage_options=s3_server)
    assert not fs.exists(f"{bucket}-typo")
    # cancelled mid-upload: the object must not appear under its final name
    cancel = threading.Event()

    def stop(p: ar.Progress) -> None:
        if p.file.endswith("model_003000.pt") and p.phase == "copy" and p.bytes_done > 100_000:
            cancel.set()

    res = ar.archive(checkpoints, url, cancel=cancel, progress=stop, chunk_size=32 * 1024,
                     storage_options=s3_server)
    assert res.cancelled and res.strategy == "direct"
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/runs/base_checkpoints/d4/model_003000.pt")

    res = ar.archive(checkpoints, url, with_optimizer=True, storage_options=s3_server)
    assert res.ok, [(r.rel, r.detail) for r in res.results]
    assert res.count("present") == 1 and res.count("copied") == 4  # tokenizer was done
    fs.invalidate_cache()
    src = demo_dir / "base_checkpoints" / "d4" / "model_003000.pt"
    assert fs.cat_file(f"{bucket}/runs/base_checkpoints/d4/model_003000.pt") == src.read_bytes()
    assert not [p for p in fs.find(bucket) if p.endswith(".partial")]
    assert ar.archived_steps(url, storage_options=s3_server) == {
        ("base_checkpoints", "d4", 3000)}
    assert ar.verify_archive(url, storage_options=s3_server).ok

    # the CLI twin, options on the command line, JSON out
    opts = ["-o", f"endpoint_url={s3_server['endpoint_url']}", "-o", "key=testing",
            "-o", "secret=testing", "-o", "skip_instance_cache=true"]
    capsys.readouterr()
    code = cli("archive", "base/d4@2500", url, "--base-dir", str(demo_dir), "--json", *opts)
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and set(doc) == ARCHIVE_KEYS and doc["schema"] == "nanochat-ckpt.archive/1"
    assert doc["archived"] == ["base_checkpoints/d4@2500"] and doc["strategy"] == "direct"

    # a corrupted object (same size) is caught by verify
    path = f"{bucket}/runs/base_checkpoints/d4/meta_003000.json"
    data = bytearray(fs.cat_file(path))
    data[5] ^= 0x20
    fs.pipe_file(path, bytes(data))
    code = cli("verify", url, "--json", *opts)
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and set(doc) == VERIFY_KEYS and doc["schema"] == "nanochat-ckpt.verify/1"
    assert doc["counts"]["mismatch"] == 1 and doc["counts"]["ok"] == 6
    bad = [f for f in doc["files"] if f["status"] != "ok"]
    assert [f["path"] for f in bad] == ["base_checkpoints/d4/meta_003000.json"]


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_archive_and_verify_local(demo_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "a"
    code = cli("archive", "base/d4@3000", "sft/d4@latest", str(dest), "--with-optimizer",
               "--json", "--base-dir", str(demo_dir))
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and set(doc) == ARCHIVE_KEYS and doc["ok"]
    assert doc["archived"] == ["base_checkpoints/d4@3000", "chatsft_checkpoints/d4@600"]
    assert doc["counts"] == {"copied": 9, "present": 0, "failed": 0, "cancelled": 0}
    assert {f["status"] for f in doc["files"]} == {"copied"}
    assert all(len(f["sha256"]) == 64 for f in doc["files"])

    # human output, then --last reuses the remembered destination
    code = cli("archive", "base/d4@2500", "--last", "--base-dir", str(demo_dir))
    out = capsys.readouterr().out
    assert code == 0 and "3 copied" not in out and "2 copied" in out and "1 already there" in out
    assert f"NANOCHAT_BASE_DIR={dest}" in out

    code = cli("verify", str(dest))
    out = capsys.readouterr().out
    assert code == 0 and "11 ok" in out and "all good" in out
    (dest / "chatsft_checkpoints" / "d4" / "model_000600.pt").unlink()
    code = cli("verify", "--json")  # the remembered destination
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["counts"]["missing"] == 1 and not doc["ok"]


def test_cli_usage_errors(demo_dir: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["archive", str(tmp_path / "a")],  # no checkpoint
                 ["archive", "base/d4@9999", str(tmp_path / "a")],  # no such step
                 ["archive", "d4@3000", str(tmp_path / "a")],  # d4 is in several stages
                 ["archive", "base/d4@3000", "--last"],  # nothing remembered
                 ["archive", "base/d4@3000", "s3://b/x", "-o", "novalue"]):
        code = cli(*argv, "--base-dir", str(demo_dir))
        err = capsys.readouterr().err
        assert code == 2, argv
        assert err.startswith("nanochat-ckpt: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "a").exists()
    code = cli("verify", str(tmp_path))  # no manifest there
    err = capsys.readouterr().err
    assert code == 1 and "nothing was archived" in err
