"""ssh:// connections against a real OpenSSH server on loopback (tests/sshd.py): the user's
keys, known_hosts and ~/.ssh/config; refused host keys and logins; no hangs; thread safety."""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sshd import SSHServer, keygen, run_sshd

pytest.importorskip("paramiko")

from nanochat_ckpt_tui.store.sftp import SSHError, open_sftp_fs, sftp_kwargs_from_url  # noqa: E402

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A base dir on this machine, so visible to the (local, root) sshd."""
    base = tmp_path / "base"
    (base / "d12").mkdir(parents=True)
    (base / "d12" / "model_000100.pt").write_bytes(PAYLOAD)
    (base / "meta.json").write_text('{"step": 100}')
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.pt").write_bytes(b"x")
    (base / "tagged").symlink_to(tmp_path / "elsewhere")
    return base


def connect(server: SSHServer, **options: object):
    return open_sftp_fs(server.host, server.port, None, dict(options))


def test_import_is_cheap() -> None:
    code = ("import sys, nanochat_ckpt_tui.store.sftp; "
            "print(sorted({'paramiko', 'fsspec'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_url_parts() -> None:
    u = sftp_kwargs_from_url("ssh://alice:s3cret@gpu-box:2222/data/ckpt")
    assert (u.host, u.port, u.user, u.path, u.password) == ("gpu-box", 2222, "alice",
                                                          "/data/ckpt", "s3cret")
    assert "s3cret" not in repr(u)
    assert sftp_kwargs_from_url("sftp://h/~/nanochat").path == "~/nanochat"
    assert sftp_kwargs_from_url("ssh://h").path == "/"
    assert sftp_kwargs_from_url("ssh://u@[::1]:22/x")[:3] == ("::1", 22, "u")
    with pytest.raises(SSHError) as e:
        sftp_kwargs_from_url("ssh://bob:pw@h:notaport/x")
    assert "pw" not in str(e.value).replace("ssh://bob@", "")


def test_default_key_and_known_hosts(ssh_home: Path, sshd_server: SSHServer,
                                     tree: Path) -> None:
    fs = connect(sshd_server)
    try:
        entries = {Path(i["name"]).name: i for i in fs.ls(str(tree), detail=True)}
        assert set(entries) == {"d12", "meta.json", "tagged"}
        assert entries["d12"]["type"] == "directory"
        assert entries["meta.json"]["type"] == "file" and entries["meta.json"]["size"] == 13
        # a symlinked tag dir lists as the directory it points to
        assert entries["tagged"]["type"] == "directory" and entries["tagged"]["islink"]
        assert fs.ls(str(tree / "tagged")) == [str(tree / "tagged" / "x.pt")]
        # a file lists as itself
        assert fs.ls(str(tree / "meta.json")) == [str(tree / "meta.json")]
        path = str(tree / "d12" / "model_000100.pt")
        with fs.open(path, "rb", block_size=4096) as f:
            f.seek(1000)
            assert f.read(10) == PAYLOAD[1000:1010]
            f.seek(15000)
            assert f.read(100) == PAYLOAD[15000:15100]
        assert fs.cat_file(path, start=256, end=300) == PAYLOAD[256:300]
        assert fs.info(path)["size"] == len(PAYLOAD)
        home = pwd.getpwnam(sshd_server.user).pw_dir.rstrip("/")  # the server's, not HOME
        assert fs.expand_home("~/x") == f"{home}/x" and fs.expand_home("/abs") == "/abs"
        with pytest.raises(FileNotFoundError):
            fs.ls(str(tree / "missing"))
    finally:
        fs.close()


def test_key_filename_option(ssh_home: Path, sshd_server: SSHServer, tree: Path) -> None:
    key = ssh_home / "elsewhere_key"
    (ssh_home / ".ssh" / "id_ed25519").rename(key)
    with pytest.raises(SSHError, match="authentication refused"):
        connect(sshd_server)
    fs = connect(sshd_server, key_filename=str(key))
    assert "meta.json" in [Path(p).name for p in fs.ls(str(tree))]
    fs.close()


def test_ssh_config_alias(ssh_home: Path, sshd_server: SSHServer, tree: Path) -> None:
    key = ssh_home / "alias_key"
    (ssh_home / ".ssh" / "id_ed25519").rename(key)
    (ssh_home / ".ssh" / "config").write_text(
        f"Host myalias\n  HostName {sshd_server.host}\n  Port {sshd_server.port}\n"
        f"  User {sshd_server.user}\n  IdentityFile ~/alias_key\n  ConnectTimeout 5\n")
    fs = open_sftp_fs("myalias", None, None, {})
    assert fs.info(str(tree / "meta.json"))["type"] == "file"
    fs.close()


def test_proxy_command_from_ssh_config(ssh_home: Path, sshd_server: SSHServer,
                                       tree: Path) -> None:
    relay = ssh_home / "relay.py"  # what 'nc HOST PORT' does, in Python
    relay.write_text(
        "import socket, sys, threading\n"
        "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
        "def up():\n"
        "    while data := sys.stdin.buffer.read1(65536):\n"
        "        s.sendall(data)\n"
        "threading.Thread(target=up, daemon=True).start()\n"
        "while data := s.recv(65536):\n"
        "    sys.stdout.buffer.write(data); sys.stdout.buffer.flush()\n")
    (ssh_home / ".ssh" / "config").write_text(
        f"Host viaproxy\n  HostName {sshd_server.host}\n  Port {sshd_server.port}\n"
        f"  ProxyCommand {shlex.quote(sys.executable)} {relay} %h %p\n")
    fs = open_sftp_fs("viaproxy", None, None, {})
    assert fs.info(str(tree / "meta.json"))["size"] == 13
    fs.close()


def test_unknown_host_key_refused(ssh_home: Path, sshd_server: SSHServer) -> None:
    (ssh_home / ".ssh" / "known_hosts").write_text("")
    with pytest.raises(SSHError) as e:
        connect(sshd_server)
    msg = str(e.value)
    assert msg.startswith(f"ssh://127.0.0.1:{sshd_server.port}: unknown host key (ssh-ed25519 "
                          "SHA256:")
    assert f"ssh-keyscan -p {sshd_server.port} 127.0.0.1 >> ~/.ssh/known_hosts" in msg
    assert f"ssh -p {sshd_server.port} " in msg
    assert "\n" not in msg


def test_accept_new_records_the_key(ssh_home: Path, sshd_server: SSHServer) -> None:
    known = ssh_home / ".ssh" / "known_hosts"
    known.unlink()
    connect(sshd_server, host_key_policy="accept-new").close()
    assert known.read_text().split() == sshd_server.known_hosts_line().split()
    connect(sshd_server).close()  # now known: strict works


def test_hashed_known_hosts_entry(ssh_home: Path, sshd_server: SSHServer) -> None:
    import paramiko

    known = ssh_home / ".ssh" / "known_hosts"
    hashed = paramiko.HostKeys.hash_host(sshd_server.known_name)
    known.write_text(f"{hashed} {sshd_server.host_key_line}\n")
    connect(sshd_server).close()


def test_changed_host_key_refused(ssh_home: Path, sshd_server: SSHServer,
                                  tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    sshd_server.write_known_hosts(ssh_home / ".ssh" / "known_hosts", other)
    with pytest.raises(SSHError) as e:
        connect(sshd_server)
    msg = str(e.value)
    assert "HOST KEY CHANGED" in msg and "man-in-the-middle" in msg
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd_server.port}'" in msg


def test_wrong_key_refused(ssh_home: Path, sshd_server: SSHServer) -> None:
    key = ssh_home / ".ssh" / "id_ed25519"
    key.unlink()
    key.with_suffix(".pub").unlink(missing_ok=True)
    keygen(key)
    with pytest.raises(SSHError) as e:
        connect(sshd_server, password="hunter2")
    msg = str(e.value)
    assert f"authentication refused for {sshd_server.user}@127.0.0.1" in msg
    assert "~/.ssh/id_ed25519" in msg and "key_filename" in msg
    assert "hunter2" not in msg


def test_connection_refused_is_fast(ssh_home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        t0 = time.monotonic()
        with pytest.raises(SSHError) as e:
            open_sftp_fs("127.0.0.1", port, None, {})
    assert time.monotonic() - t0 < 5
    assert str(e.value) == f"cannot connect to 127.0.0.1:{port} (Connection refused)"


def test_silent_server_times_out(ssh_home: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        held: list[socket.socket] = []
        threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
        t0 = time.monotonic()
        with pytest.raises(SSHError) as e:
            open_sftp_fs("127.0.0.1", port, None, {"timeout": "1"})
        assert time.monotonic() - t0 < 5
        for s in held:
            s.close()
    assert "did not answer as an SSH server within 1 s" in str(e.value)


def test_unknown_option_and_missing_key_file(ssh_home: Path, sshd_server: SSHServer) -> None:
    with pytest.raises(SSHError, match="unknown ssh option 'keyfile'"):
        connect(sshd_server, keyfile="x")
    with pytest.raises(SSHError, match="no such file"):
        connect(sshd_server, key_filename=str(ssh_home / "nope"))


def test_server_without_sftp(ssh_home: Path, sshd_server: SSHServer, tmp_path: Path) -> None:
    root = tmp_path / "nosftp"
    root.mkdir()
    for name in ("user_ed25519", "user_ed25519.pub", "authorized_keys"):
        (root / name).write_bytes((sshd_server.dir / name).read_bytes())
    (root / "user_ed25519").chmod(0o600)
    with run_sshd(root, sftp=False) as server:
        server.write_known_hosts(ssh_home / ".ssh" / "known_hosts")
        with pytest.raises(SSHError, match="offers no SFTP"):
            connect(server)


def test_threads_share_one_connection(ssh_home: Path, sshd_server: SSHServer,
                                      tree: Path) -> None:
    fs = connect(sshd_server)
    path = str(tree / "d12" / "model_000100.pt")

    def work(i: int) -> bool:
        for _ in range(5):
            assert len(fs.ls(str(tree))) == 3
            with fs.open(path, "rb") as f:
                f.seek(i * 100)
                assert f.read(1000) == PAYLOAD[i * 100:i * 100 + 1000]
            assert fs.cat_file(str(tree / "meta.json")) == b'{"step": 100}'
        return True

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(work, i) for i in range(8)]
            assert all(f.result(timeout=30) for f in futures)
    finally:
        fs.close()


def test_stalled_server_raises_and_reconnects(ssh_home: Path, sshd_server: SSHServer,
                                              tree: Path) -> None:
    fs = connect(sshd_server, op_timeout="1")
    fs.ls(str(tree))
    session = _descendants(sshd_server.process.pid)  # this connection's sshd processes
    assert session
    for pid in session:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="no reply within 1 s"):
            fs.ls(str(tree / "d12"))
        assert time.monotonic() - t0 < 5
    finally:
        for pid in session:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert len(fs.ls(str(tree))) == 3  # a fresh connection
    fs.close()


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def test_proxy_jump_becomes_ssh_w(ssh_home: Path) -> None:
    from nanochat_ckpt_tui.store.sftp import _resolve

    (ssh_home / ".ssh" / "config").write_text(
        "Host gpu\n  HostName 10.0.0.5\n  ProxyJump alice@bastion:2200,inner\n"
        "Host gpu2\n  HostName 10.0.0.6\n  Port 2022\n  ProxyJump alice@bastion:2200\n")
    assert _resolve("gpu", None, None, {}).proxy == \
        "ssh -W 10.0.0.5:22 -J alice@bastion:2200 inner"
    assert _resolve("gpu2", None, None, {}).proxy == \
        "ssh -W 10.0.0.6:2022 ssh://alice@bastion:2200"
