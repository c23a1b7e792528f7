"""What the core asks a storage it can do, instead of asking whether it is local: plain path
text (``plain_prefix``), a directory's file ids in one listing (``lists_ids``/``dir_ids``), and
small files read at the size a listing gave (``read_many(paths, sizes, limit)``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import memory_copy

from nanochat_ckpt_tui.store.localpath import LocalPath
from nanochat_ckpt_tui.store.storage import LocalStorage, open_storage


def test_local_plain_prefix_is_the_path_text(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path)
    for directory in (LocalPath(tmp_path), LocalPath("."), LocalPath("/"), LocalPath("rel/d")):
        prefix = st.plain_prefix(directory)
        assert prefix is not None
        path = st.join(directory, "meta_000100.json")
        assert prefix + "meta_000100.json" == st.display(path) == str(path)
        assert st.cache_key(path, 5, 1.0) == (prefix + "meta_000100.json", 5, 1.0)


def test_local_dir_ids_give_each_file_key_without_a_stat(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path)
    assert st.lists_ids
    for name in ("model_000100.pt", "meta_000100.json"):
        (tmp_path / name).write_bytes(b"x" * 10)
    dev, ids = st.dir_ids(LocalPath(tmp_path))
    for name, ino in ids.items():
        s = os.stat(tmp_path / name)
        assert st.file_key(tmp_path / name, 10, s.st_mtime) == \
            ("local", dev, ino, s.st_size, s.st_mtime_ns)
    with pytest.raises(FileNotFoundError):
        st.dir_ids(LocalPath(tmp_path / "gone"))


def test_local_read_many_at_the_listed_sizes(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path)
    same, grown, huge, empty = (tmp_path / n for n in ("same", "grown", "huge", "empty"))
    same.write_bytes(b"a" * 100)
    grown.write_bytes(b"b" * 300)  # listed at 100, written on since
    huge.write_bytes(b"c" * 5000)  # listed at 100, now past the limit
    empty.write_bytes(b"d" * 10)  # listed empty
    paths = [same, grown, huge, empty, tmp_path / "gone"]
    got = st.read_many(paths, [100, 100, 100, 0, 50], limit=1000)
    assert got[:2] == [b"a" * 100, b"b" * 300]
    assert all(isinstance(e, OSError) for e in got[2:])
    assert isinstance(got[4], FileNotFoundError)
    plain = st.read_many(paths[:3], limit=1000)  # no sizes: read as read_bytes reads
    assert plain[:2] == got[:2] and isinstance(plain[2], OSError)


def test_a_remote_storage_says_it_has_neither(demo_master: Path) -> None:
    with memory_copy(demo_master) as url:
        st = open_storage(url)
        assert not st.lists_ids and st.plain_prefix(st.root) is None
        meta = st.join(st.join(st.join(st.root, "base_checkpoints"), "d4"), "meta_003000.json")
        size = st.stat(meta)[0]
        (raw,) = st.read_many([meta], [size], limit=1 << 20)
        assert isinstance(raw, bytes) and len(raw) == size
