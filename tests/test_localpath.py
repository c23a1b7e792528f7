"""``LocalPath`` against ``pathlib.PosixPath``: the same text, parts, name, parent, joins,
equality, hash and order for every path shape, and the filesystem methods the store uses."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path, PurePosixPath

import pytest

from nanochat_ckpt_tui.store.localpath import LocalPath

SHAPES = ["", ".", "./", "/", "//", "///", "a", "a/", "./a", "a/./b", "a//b", "/a", "//a",
          "///a", "/a/b/", "a/..", "../a", ".hidden", "a/.hidden", "/a/.b/c.d", "a.tar.gz",
          "~", "~/x", "a b/c", "/ünï/cödé", "a/b.", "..", "/..", "a/b/../c"]


def _random_shapes(n: int) -> list[str]:
    rng = random.Random(7)
    bits = ["", "/", "//", ".", "..", "a", "b.c", ".d", "x y", "~"]
    return ["".join(rng.choice(bits) for _ in range(rng.randint(0, 6))) for _ in range(n)]


@pytest.mark.parametrize("text", SHAPES + _random_shapes(300))
def test_a_local_path_reads_as_a_posix_path(text: str) -> None:
    mine, ref = LocalPath(text), Path(text)
    assert str(mine) == str(ref) and os.fspath(mine) == os.fspath(ref)
    assert mine.parts == ref.parts and mine.name == ref.name
    assert str(mine.parent) == str(ref.parent) and mine.parent == ref.parent
    assert mine.suffix == ref.suffix and mine.stem == ref.stem
    assert mine.is_absolute() == ref.is_absolute()
    assert [str(p) for p in mine.parents] == [str(p) for p in ref.parents]
    assert mine == ref and ref == mine and hash(mine) == hash(ref)
    assert {mine} == {ref} and ref in {mine: 1}
    for name in ("x", "x/y", "/abs", "", ".", ".."):
        assert str(mine / name) == str(ref / name)
        assert str(name / mine) == str(name / ref)
    assert str(mine.joinpath("p", "q")) == str(ref.joinpath("p", "q"))
    assert str(LocalPath(text, "z", "")) == str(Path(text, "z", ""))
    if ref.name:
        assert str(mine.with_name("n.e")) == str(ref.with_name("n.e"))
        assert str(mine.with_suffix(".s")) == str(ref.with_suffix(".s"))
    else:
        with pytest.raises(ValueError):
            mine.with_name("n")
    assert pickle.loads(pickle.dumps(mine)) == mine
    assert LocalPath(mine) == mine and LocalPath(ref) == mine


def test_local_paths_sort_and_relate_as_posix_paths() -> None:
    texts = SHAPES + _random_shapes(200)
    mixed = [LocalPath(t) if i % 2 else Path(t) for i, t in enumerate(texts)]
    assert [str(p) for p in sorted(mixed)] == [str(p) for p in sorted(map(Path, texts))]
    assert LocalPath("/a") < Path("/b") and Path("/a/z") < LocalPath("/a-b")
    base = LocalPath("/base/dir")
    for text in ["/base/dir", "/base/dir/a", "/base/dir/a/b", "/base/dirx", "/other", "rel"]:
        ref, mine = Path(text), LocalPath(text)
        try:
            want = str(ref.relative_to("/base/dir"))
        except ValueError:
            want = None
        if want is None:
            with pytest.raises(ValueError):
                mine.relative_to(base)
            assert not mine.is_relative_to(Path("/base/dir"))
        else:
            assert str(mine.relative_to(Path("/base/dir"))) == want
    assert LocalPath("/a") != "/a" and LocalPath("/a") != PurePosixPath("/b")


def test_the_filesystem_methods(tmp_path: Path) -> None:
    root = LocalPath(tmp_path)
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    deep.mkdir(parents=True, exist_ok=True)
    with pytest.raises(FileExistsError):
        deep.mkdir()
    with pytest.raises(FileNotFoundError):
        (root / "x" / "y").mkdir()
    f = deep / "f.txt"
    assert f.write_text("héllo", encoding="utf-8") == 5 and f.read_text(encoding="utf-8") == "héllo"
    assert f.write_bytes(b"\x00\x01") == 2 and f.read_bytes() == b"\x00\x01"
    assert f.exists() and f.is_file() and not f.is_dir() and deep.is_dir()
    assert f.stat().st_size == 2 == f.lstat().st_size and not f.is_symlink()
    with f.open("rb") as fh:
        assert fh.read() == b"\x00\x01"
    link = root / "link"
    os.symlink(f, link)
    assert link.is_symlink() and link.samefile(f) and link.resolve() == Path(f).resolve()
    assert sorted(p.name for p in deep.iterdir()) == ["f.txt"]
    assert [p.name for p in root.glob("a/*/*.txt")] == ["f.txt"]
    moved = f.rename(deep / "g.txt")
    assert isinstance(moved, LocalPath) and moved.exists() and not f.exists()
    moved.replace(f)
    f.chmod(0o600)
    assert f.stat().st_mode & 0o777 == 0o600
    f.unlink()
    f.unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        f.unlink()
    (deep / "t").touch()
    assert (deep / "t").exists()
    assert LocalPath("~/x").expanduser() == Path("~/x").expanduser()
    assert LocalPath("rel").absolute() == Path("rel").absolute()
    assert LocalPath.home() == Path.home() and LocalPath.cwd() == Path.cwd()


def test_globs_and_links(tmp_path: Path) -> None:
    for rel in ("a/x.pt", "a/b/y.pt", "a/b/z.json", "c.pt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    root = LocalPath(tmp_path)
    assert sorted(root.rglob("*.pt")) == sorted(tmp_path.rglob("*.pt"))
    assert sorted(root.rglob("*")) == sorted(tmp_path.rglob("*"))
    assert sorted(root.glob("*")) == sorted(tmp_path.glob("*"))
    (root / "ln").symlink_to(root / "c.pt")
    assert (root / "ln").is_symlink() and os.readlink(root / "ln") == str(root / "c.pt")
