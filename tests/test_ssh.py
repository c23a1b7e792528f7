"""ssh:// base dirs against a real OpenSSH server on loopback (tests/sshd.py): the same scan,
summaries, diffs and CLI output as the local base dir, through one serialized SFTP channel,
with host keys checked and every failure a clear one-line error instead of a hang."""

from __future__ import annotations

import json
import time
import types
from pathlib import Path
from typing import Any

import pytest
from sshd import SSHServer
from test_remote import LATER, PAIRS, diff_doc, digest, run_cli

from nanochat_ckpt_tui.store import layout, refs, summary
from nanochat_ckpt_tui.store.archive import archive, verify_archive
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.prune import PruneError, Rules, plan_rules
from nanochat_ckpt_tui.store.refs import resolve
from nanochat_ckpt_tui.store.remote import FsspecStorage
from nanochat_ckpt_tui.store.storage import StorageError, open_storage

pytest.importorskip("paramiko")


def ssh_url(server: SSHServer, path: Path) -> str:
    return f"ssh://{server.user}@{server.host}:{server.port}{path}"


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's files were written seconds ago: look from an hour later (CLI paths)."""
    for module in (layout, refs):
        monkeypatch.setattr(module, "time", types.SimpleNamespace(time=lambda: LATER))


def test_ssh_scan_equals_local_scan(demo_master: Path, sshd_server: SSHServer,
                                    ssh_home: Path) -> None:
    url = ssh_url(sshd_server, demo_master)
    cat = scan(url, now=LATER)
    assert isinstance(cat.storage, FsspecStorage) and not cat.storage.concurrent_reads
    assert cat.exists and cat.read_only and not cat.notes, cat.notes
    assert digest(cat) == digest(scan(demo_master, now=LATER))  # every stage, tag and step
    assert {t.name for t in cat.stage("base").tags} >= {"d4"}
    assert cat.storage.display(cat.stage("base").path) == f"{url}/base_checkpoints"


def test_ssh_reads_metadata_only_and_diffs_like_local(demo_master: Path, sshd_server: SSHServer,
                                                      ssh_home: Path) -> None:
    cat = scan(ssh_url(sshd_server, demo_master), now=LATER)
    local = scan(demo_master, now=LATER)
    ck = resolve(cat, "base/d4@3000")
    cat.storage.stats.reset()
    got = summary.summarize(ck)
    assert got.model_error is None and got.meta_error is None
    want = summary.summarize(resolve(local, "base/d4@3000"))
    assert [t.name for t in got.model.tensors] == [t.name for t in want.model.tensors]
    assert got.model_summary.params == want.model_summary.params
    # the zip tail, data.pkl, byteorder, the meta and the optimizer shards' metadata: no tensors
    fetched = cat.storage.stats.bytes
    shards = sum(f.size for f in ck.optim)
    assert fetched < (ck.model.size + shards) // 3, (fetched, ck.model.size)
    for ra, rb in PAIRS[:2]:
        assert diff_doc(resolve(cat, ra), resolve(cat, rb)) == \
            diff_doc(resolve(local, ra), resolve(local, rb))


def test_ssh_cli_ls_show_du_diff(demo_master: Path, sshd_server: SSHServer, ssh_home: Path,
                                 later: None, capsys: pytest.CaptureFixture[str]) -> None:
    url = ssh_url(sshd_server, demo_master)
    code, out, err = run_cli(capsys, "ls", url, "--json")
    assert code == 0, err
    doc, want = json.loads(out), json.loads(run_cli(capsys, "ls", str(demo_master), "--json")[1])

    def steps(d: dict[str, Any]) -> list[Any]:
        return [(s["dir"], t["name"], c["step"], c["state"], c["val_bpb"], c["total_bytes"])
                for s in d["stages"] for t in s["tags"] for c in t["checkpoints"]]

    assert doc["base_dir"] == url and steps(doc) == steps(want)
    code, out, err = run_cli(capsys, "show", f"{url}/base/d4@3000", "--json")
    assert code == 0, err
    assert json.loads(out)["checkpoint"]["key"] == "base_checkpoints/d4@3000"
    code, out, err = run_cli(capsys, "du", url)
    assert code == 0 and "base" in out, err
    code, out, err = run_cli(capsys, "diff", f"{url}/base/d4@500", f"{url}/base/d4@3000",
                             "--json")
    assert code == 0, err
    assert json.loads(out)["tensors"] and json.loads(out)["bytes_total"] > 0


def test_ssh_archive_to_local_dir(demo_master: Path, sshd_server: SSHServer, ssh_home: Path,
                                  tmp_path: Path) -> None:
    cat = scan(ssh_url(sshd_server, demo_master), now=LATER)
    dest = tmp_path / "archive"
    result = archive([resolve(cat, "base/d4@3000")], dest, remember=False)
    assert result.ok and result.count("copied") >= 2
    assert (dest / "base_checkpoints" / "d4" / "model_003000.pt").read_bytes() == \
        (demo_master / "base_checkpoints" / "d4" / "model_003000.pt").read_bytes()
    assert verify_archive(dest).ok
    again = archive([resolve(cat, "base/d4@3000")], dest, remember=False)
    assert again.count("copied") == 0  # resumable: nothing copied twice


def test_ssh_is_read_only_in_the_store(demo_master: Path, sshd_server: SSHServer,
                                       ssh_home: Path) -> None:
    cat = scan(ssh_url(sshd_server, demo_master), now=LATER)
    with pytest.raises(PruneError, match="read-only"):
        plan_rules(cat, cat.tags, Rules(keep_last=1))


def test_ssh_refuses_an_unknown_host_key(demo_master: Path, sshd_server: SSHServer,
                                         ssh_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ssh_home / ".ssh" / "known_hosts").write_text("")
    with pytest.raises(StorageError, match="unknown host key.*ssh-keyscan"):
        open_storage(ssh_url(sshd_server, demo_master))
    code, _, err = run_cli(capsys, "ls", ssh_url(sshd_server, demo_master))
    assert code == 1 and "unknown host key" in err and "Traceback" not in err


def test_ssh_unreachable_host_fails_fast(sshd_server: SSHServer, ssh_home: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from sshd import free_port

    t0 = time.monotonic()
    code, _, err = run_cli(capsys, "ls", f"ssh://{sshd_server.user}@127.0.0.1:{free_port()}/x")
    assert code == 1 and "cannot connect" in err.lower(), err
    assert time.monotonic() - t0 < 10


def test_ssh_missing_dir_is_a_note_not_a_crash(sshd_server: SSHServer, ssh_home: Path,
                                               tmp_path: Path) -> None:
    cat = scan(ssh_url(sshd_server, tmp_path / "nothing-here"))
    assert not cat.exists and "no such directory" in cat.notes[0]


async def test_app_browses_ssh(demo_master: Path, sshd_server: SSHServer, ssh_home: Path) -> None:
    from test_tui_app import settle

    from nanochat_ckpt_tui.tui.app import CkptApp

    app = CkptApp(ssh_url(sshd_server, demo_master), clock=lambda: LATER)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for _ in range(100):
            if app.catalog is not None:
                break
            await pilot.pause(0.05)
        assert app.catalog is not None and app.read_only
        assert digest(app.catalog) == digest(scan(demo_master, now=LATER))
