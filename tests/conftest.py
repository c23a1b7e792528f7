"""Shared fixtures: real checkpoint files written with torch.save in nanochat's layout."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["sshd"]  # the real-sshd fixtures: sshd_server, ssh_home


@pytest.fixture(scope="session")
def demo_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo base dir, written once per session. Read-only: copy it to modify it."""
    from nanochat_ckpt_tui.store.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("demo_master") / "base")


@pytest.fixture
def demo_dir(demo_master: Path, tmp_path: Path) -> Path:
    """A private copy of the demo base dir that a test may change."""
    dst = tmp_path / "base"
    shutil.copytree(demo_master, dst, copy_function=shutil.copy2)
    return dst


@pytest.fixture(autouse=True)
def _private_app_state(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test remembers its own archive destination and check results, never the user's."""
    state = tmp_path_factory.mktemp("state") / "state.json"
    monkeypatch.setenv("NANOCHAT_CKPT_STATE", str(state))
    monkeypatch.setenv("NANOCHAT_CKPT_CACHE", str(state.parent / "cache"))  # check results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, Any]]:
    """An S3-compatible server (moto) on loopback; yields s3fs storage options for it."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("s3fs") is None:
        pytest.skip("moto[server] and s3fs are not installed: pip install 'moto[server]' s3fs "
                    "to run the S3 tests")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {"key": "testing", "secret": "testing", "endpoint_url": f"http://127.0.0.1:{port}",
               "client_kwargs": {"region_name": "eu-west-1"}, "skip_instance_cache": True}
    finally:
        server.stop()


@contextlib.contextmanager
def memory_copy(src: Path) -> Iterator[str]:
    """``src`` copied into fsspec's in-memory filesystem (a remote base dir in the same
    process): its ``memory://`` URL, removed afterwards."""
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"/nanochat-{uuid.uuid4().hex[:8]}"
    for p in src.rglob("*"):
        if p.is_file():
            fs.pipe(f"{root}/{p.relative_to(src)}", p.read_bytes())
    try:
        yield f"memory://{root}"
    finally:
        fs.rm(root, recursive=True)


@pytest.fixture
def memory_base(demo_master: Path) -> Iterator[str]:
    """The demo as a remote (read-only) base dir: its ``memory://`` URL."""
    with memory_copy(demo_master) as url:
        yield url
