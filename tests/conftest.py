"""Shared fixtures: real checkpoint files written with torch.save in nanochat's layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


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
    """Each test remembers its own archive destination, never the user's."""
    state = tmp_path_factory.mktemp("state") / "state.json"
    monkeypatch.setenv("NANOCHAT_CKPT_STATE", str(state))
