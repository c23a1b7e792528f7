"""A real OpenSSH server on loopback for the ssh:// tests (a pytest plugin: conftest.py lists it
in ``pytest_plugins``).

``sshd_server`` (session) runs ``/usr/sbin/sshd -D`` with throwaway ed25519 host and user keys,
key-only login for the current user and ``internal-sftp``; the tests are skipped with the
reason when sshd is missing or does not start. ``ssh_home`` (function) points HOME at a fresh
dir holding that user key as ``~/.ssh/id_ed25519`` and the host key in ``~/.ssh/known_hosts``,
exactly what a real user has after a first ``ssh`` to the server.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


@dataclass
class SSHServer:
    """A running sshd: where it listens, who may log in and with which key."""

    host: str
    port: int
    user: str
    user_key: Path  # private key (its public half is in authorized_keys)
    host_key_line: str  # "ssh-ed25519 AAAA…" (the server's public host key)
    dir: Path
    process: subprocess.Popen | None = None

    @property
    def known_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def known_hosts_line(self, key_line: str | None = None) -> str:
        return f"{self.known_name} {key_line or self.host_key_line}\n"

    def write_known_hosts(self, path: Path, key_line: str | None = None) -> Path:
        """Write a known_hosts file trusting this server (or ``key_line`` for it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.known_hosts_line(key_line))
        return path


def keygen(path: Path) -> str:
    """A new passphrase-less ed25519 key pair at ``path``; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-C", "nanochat-test",
                    "-f", str(path)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_banner(port: int, proc: subprocess.Popen, deadline: float) -> str | None:
    """None once sshd answers with its SSH banner, else why not (bounded by ``deadline``)."""
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"sshd exited with code {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return None
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    return f"no SSH banner within the deadline ({last})"


@contextlib.contextmanager
def run_sshd(root: Path, *, sftp: bool = True) -> Iterator[SSHServer]:
    """Run an sshd from files under ``root`` (keys, config); skip the test if it cannot."""
    if not os.path.isfile(SSHD):
        pytest.skip(f"{SSHD} is not installed (apt-get install openssh-server): "
                    "the ssh:// tests need a real server")
    with contextlib.suppress(OSError):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
    root.mkdir(parents=True, exist_ok=True)
    host_key_line = keygen(root / "host_ed25519")
    if not (root / "user_ed25519").exists():
        (root / "authorized_keys").write_text(keygen(root / "user_ed25519") + "\n")
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {root / 'host_ed25519'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "PermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nLogLevel ERROR\n"
        + ("Subsystem sftp internal-sftp\n" if sftp else ""))
    log = (root / "sshd.log").open("w+")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        why = _wait_banner(port, proc, time.monotonic() + 10)
        if why is not None:
            log.seek(0)
            pytest.skip(f"sshd did not start: {why}: {log.read().strip()[-500:]}")
        yield SSHServer("127.0.0.1", port, getpass.getuser(), root / "user_ed25519",
                        host_key_line, root, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A real sshd on 127.0.0.1 (key login for the current user, internal-sftp)."""
    with run_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sshd_server: SSHServer) -> Path:
    """HOME with the server's user key as ``~/.ssh/id_ed25519`` and its host key in
    ``~/.ssh/known_hosts``; no ssh-agent."""
    home = tmp_path / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    key = ssh / "id_ed25519"
    key.write_bytes(sshd_server.user_key.read_bytes())
    key.chmod(0o600)
    sshd_server.write_known_hosts(ssh / "known_hosts")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home
