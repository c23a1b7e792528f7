"""Pins on a shared GPU box: teammates who can read the tag dir can read its pins."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.pins import SIDECAR, PinsError, update_pin
from nanochat_ckpt_tui.store.remote import FsspecStorage


@pytest.mark.parametrize("dir_mode,file_mode", [(0o755, 0o644), (0o750, 0o640), (0o700, 0o600)])
def test_sidecar_takes_the_tag_dirs_read_bits(tmp_path: Path, dir_mode: int,
                                              file_mode: int) -> None:
    tag = tmp_path / "d4"
    tag.mkdir()
    tag.chmod(dir_mode)
    old = os.umask(0o077)  # a strict umask must not hide pins from the team either
    try:
        update_pin(tag, 1000, pinned=True, note="best so far")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tag / SIDECAR).stat().st_mode) == file_mode
    assert not [p for p in tag.iterdir() if p.name != SIDECAR]  # no temp file left


def test_pins_refuse_a_read_only_storage(tmp_path: Path) -> None:
    import fsspec

    storage = FsspecStorage(fsspec.filesystem("memory"), "/pins-ro", "memory:///pins-ro")
    with pytest.raises(PinsError, match="read-only"):
        update_pin(storage.root / "d4", 1000, pinned=True, storage=storage)


def test_trash_usage_and_emptying(tmp_path: Path) -> None:
    from nanochat_ckpt_tui.store.storage import LocalStorage, ReadOnlyError
    from nanochat_ckpt_tui.store.trash import empty_trash, trash_dir, trash_usage

    base = tmp_path / "base"
    storage = LocalStorage(base)
    (base / "base_checkpoints").mkdir(parents=True)
    assert trash_usage(storage, base) is None
    inner = trash_dir(base) / "base_checkpoints" / "d4"
    inner.mkdir(parents=True)
    (inner / "model_000100.pt").write_bytes(b"x" * 1000)
    (inner / "meta_000100.json").write_bytes(b"{}")
    outside = tmp_path / "keep.txt"
    outside.write_text("not in the trash")
    (inner / "link").symlink_to(outside)
    got = trash_usage(storage, base)
    assert got is not None and got.files == 3 and got.bytes >= 1002
    with pytest.raises(ReadOnlyError):
        empty_trash(LocalStorage(base, writable=False), base)
    assert empty_trash(storage, base).files == 3
    assert not trash_dir(base).exists() and outside.read_text() == "not in the trash"
