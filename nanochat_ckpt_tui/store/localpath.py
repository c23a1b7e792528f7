"""``LocalPath``: the path type of local files in the store (base dirs, steps, checkpoint files,
the check cache).

Why not :class:`pathlib.Path`: importing pathlib (with the ``urllib.parse`` and ``ipaddress`` it
pulls in) costs ~3.3 ms, a third of a bare interpreter's start, in every ``ls --json`` or
``show --json`` a script runs; and before Python 3.12 each Path parses its text when built, which
the scan does for every file. A LocalPath holds its normalised text and does the rest with
:mod:`os`. It behaves as a ``PosixPath`` for what the code uses: ``name``, ``parent``, ``/``,
``relative_to``, ``stat``, ``open``, ``mkdir``, … and is equal to, hashes as, and sorts with the
``PosixPath`` of the same text, so the two mix in sets, dicts and comparisons.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Any

_OLD_HASH = sys.version_info < (3, 12)  # pathlib hashed the tuple of parts before 3.12


def _normalise(text: str) -> str:
    """What ``str(PosixPath(text))`` is: no empty or ``.`` parts, no trailing slash, ``//``
    kept as a root (POSIX leaves it to the system), ``.`` for nothing."""
    if "//" not in text and "/." not in text and not text.startswith(".") and \
            not text.endswith("/") and text:
        return text  # the common case, already normal
    if not text:
        return "."
    root = ""
    if text[0] == "/":
        root = "//" if text[1:2] == "/" and text[2:3] != "/" else "/"
    body = "/".join(p for p in text.split("/") if p and p != ".")
    return root + body if root or body else "."


def _text(part: Any) -> str:
    text = part if type(part) is str else os.fspath(part)
    if not isinstance(text, str):
        raise TypeError(f"a path must be text, not {type(text).__name__}")
    return text


def _pathlib_posix(other: object) -> bool:
    """Whether ``other`` is a pathlib POSIX path (pathlib is not imported to find out)."""
    pathlib = sys.modules.get("pathlib")
    return pathlib is not None and isinstance(other, pathlib.PurePosixPath)


class LocalPath:
    """A path on the local filesystem (see the module's docstring)."""

    __slots__ = ("_str", "_hash")

    def __init__(self, *parts: str | os.PathLike[str]) -> None:
        if len(parts) == 1:
            part = parts[0]
            if type(part) is LocalPath:
                self._str = part._str
                return
            self._str = _normalise(_text(part))
            return
        text = ""
        for part in parts:
            piece = _text(part)
            if piece.startswith("/") or not text:
                text = piece
            elif piece:
                text = text + "/" + piece if not text.endswith("/") else text + piece
        self._str = _normalise(text)

    # -- text
    def __str__(self) -> str:
        return self._str

    def __fspath__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"LocalPath({self._str!r})"

    def __reduce__(self) -> tuple[type[LocalPath], tuple[str]]:
        return LocalPath, (self._str,)

    def as_posix(self) -> str:
        return self._str

    # -- comparison (as PosixPath: by parts)
    def _parts_key(self) -> list[str]:
        s = self._str
        if s == ".":
            return []
        if s.startswith("/"):
            root = "//" if s.startswith("//") else "/"
            rest = s[len(root):]
            return [root, *rest.split("/")] if rest else [root]
        return s.split("/")

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            self._hash = hash(tuple(self._parts_key())) if _OLD_HASH else hash(self._str)
            return self._hash

    def __eq__(self, other: object) -> bool:
        if type(other) is LocalPath:
            return self._str == other._str
        if _pathlib_posix(other):
            return self._str == str(other)
        return NotImplemented

    def _sort_key(self) -> list[str]:
        # pathlib sorts by parts: ["/", "a"] for "/a" before 3.12, ["", "a"] since
        return self._parts_key() if _OLD_HASH else self._str.split("/")

    def _key_of(self, other: object) -> list[str] | None:
        if type(other) is LocalPath:
            return other._sort_key()
        if _pathlib_posix(other):
            return LocalPath(str(other))._sort_key()
        return None

    def __lt__(self, other: object) -> bool:
        key = self._key_of(other)
        return NotImplemented if key is None else self._sort_key() < key

    def __le__(self, other: object) -> bool:
        key = self._key_of(other)
        return NotImplemented if key is None else self._sort_key() <= key

    def __gt__(self, other: object) -> bool:
        key = self._key_of(other)
        return NotImplemented if key is None else self._sort_key() > key

    def __ge__(self, other: object) -> bool:
        key = self._key_of(other)
        return NotImplemented if key is None else self._sort_key() >= key

    # -- pure path operations
    @property
    def name(self) -> str:
        s = self._str
        return s[s.rfind("/") + 1:] if s != "." else ""

    @property
    def parent(self) -> LocalPath:
        s = self._str
        cut = s.rfind("/")
        if cut < 0:
            return self if s == "." else LocalPath(".")
        head = s[:cut]
        if not head.strip("/"):
            head = s[:cut + 1]  # the root: "/" (or "//")
            if head == s:
                return self
        p = object.__new__(LocalPath)
        p._str = head
        return p

    @property
    def parents(self) -> list[LocalPath]:
        out: list[LocalPath] = []
        p = self
        while (q := p.parent) != p:
            out.append(q)
            p = q
        return out

    @property
    def suffix(self) -> str:
        name = self.name
        i = name.rfind(".")
        return name[i:] if 0 < i < len(name) - 1 else ""

    @property
    def stem(self) -> str:
        name, suffix = self.name, self.suffix
        return name[:-len(suffix)] if suffix else name

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self._parts_key())

    def is_absolute(self) -> bool:
        return self._str.startswith("/")

    def __truediv__(self, other: str | os.PathLike[str]) -> LocalPath:
        if type(other) is str and other and "/" not in other and other not in (".", ".."):
            return child(self, other)
        try:
            return LocalPath(self._str, other)
        except TypeError:
            return NotImplemented

    def __rtruediv__(self, other: str | os.PathLike[str]) -> LocalPath:
        try:
            return LocalPath(other, self._str)
        except TypeError:
            return NotImplemented

    def joinpath(self, *others: str | os.PathLike[str]) -> LocalPath:
        return LocalPath(self._str, *others)

    def with_name(self, name: str) -> LocalPath:
        if not self.name:
            raise ValueError(f"{self!r} has an empty name")
        if not name or "/" in name or name == ".":
            raise ValueError(f"invalid name {name!r}")
        return child(self.parent, name)

    def with_suffix(self, suffix: str) -> LocalPath:
        if suffix and (not suffix.startswith(".") or suffix == "." or "/" in suffix):
            raise ValueError(f"invalid suffix {suffix!r}")
        return self.with_name(self.stem + suffix)

    def relative_to(self, other: str | os.PathLike[str]) -> LocalPath:
        base = LocalPath(other)._parts_key()
        mine = self._parts_key()
        if mine[:len(base)] != base:
            raise ValueError(f"{self._str!r} is not in the subpath of {str(LocalPath(other))!r}")
        return LocalPath("/".join(mine[len(base):]) if len(mine) > len(base) else ".")

    def is_relative_to(self, other: str | os.PathLike[str]) -> bool:
        try:
            self.relative_to(other)
        except ValueError:
            return False
        return True

    # -- the filesystem
    @classmethod
    def cwd(cls) -> LocalPath:
        return cls(os.getcwd())

    @classmethod
    def home(cls) -> LocalPath:
        return cls(os.path.expanduser("~"))

    def expanduser(self) -> LocalPath:
        return LocalPath(os.path.expanduser(self._str)) if self._str.startswith("~") else self

    def absolute(self) -> LocalPath:
        return self if self.is_absolute() else LocalPath(os.getcwd(), self._str)

    def resolve(self) -> LocalPath:
        return LocalPath(os.path.realpath(self._str))

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return os.stat(self._str, follow_symlinks=follow_symlinks)

    def lstat(self) -> os.stat_result:
        return os.lstat(self._str)

    def exists(self) -> bool:
        return os.path.exists(self._str)

    def is_file(self) -> bool:
        return os.path.isfile(self._str)

    def is_dir(self) -> bool:
        return os.path.isdir(self._str)

    def is_symlink(self) -> bool:
        return os.path.islink(self._str)

    def iterdir(self) -> Iterator[LocalPath]:
        for name in os.listdir(self._str):
            yield child(self, name)

    def glob(self, pattern: str) -> Iterator[LocalPath]:
        """``pattern`` (``*``, ``?``, ``[…]`` in each part) below this dir."""
        import glob

        base = len(glob.escape(self._str)) + 1
        for hit in glob.glob(os.path.join(glob.escape(self._str), pattern)):
            yield LocalPath(self._str, hit[base:])

    def rglob(self, pattern: str) -> Iterator[LocalPath]:
        """``pattern`` in this dir and every dir below it (links to dirs not followed)."""
        from fnmatch import fnmatch

        for top, dirs, files in os.walk(self._str):
            dirs.sort()
            here = LocalPath(top)
            yield from (here / name for name in sorted(dirs + files) if fnmatch(name, pattern))

    def symlink_to(self, target: str | os.PathLike[str],
                   target_is_directory: bool = False) -> None:
        os.symlink(target, self._str, target_is_directory)

    def open(self, mode: str = "r", buffering: int = -1, encoding: str | None = None,
             errors: str | None = None, newline: str | None = None) -> IO[Any]:
        if "b" not in mode and encoding is None:
            encoding = "locale"  # as pathlib (and open) do: the locale's encoding
        return open(self._str, mode, buffering, encoding, errors, newline)

    def read_bytes(self) -> bytes:
        with open(self._str, "rb") as f:
            return f.read()

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        with self.open("r", encoding=encoding, errors=errors) as f:
            return f.read()  # type: ignore[no-any-return]

    def write_bytes(self, data: bytes) -> int:
        with open(self._str, "wb") as f:
            return f.write(memoryview(data))

    def write_text(self, data: str, encoding: str | None = None, errors: str | None = None,
                   newline: str | None = None) -> int:
        with self.open("w", encoding=encoding, errors=errors, newline=newline) as f:
            return f.write(data)  # type: ignore[no-any-return]

    def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None:
        flags = os.O_CREAT | os.O_WRONLY | (0 if exist_ok else os.O_EXCL)
        os.close(os.open(self._str, flags, mode))
        os.utime(self._str)

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        try:
            os.mkdir(self._str, mode)
        except FileNotFoundError:
            if not parents or self.parent == self:
                raise
            self.parent.mkdir(parents=True, exist_ok=True)
            self.mkdir(mode, parents=False, exist_ok=exist_ok)
        except OSError:
            if not exist_ok or not self.is_dir():
                raise

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            os.unlink(self._str)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmdir(self) -> None:
        os.rmdir(self._str)

    def rename(self, target: str | os.PathLike[str]) -> LocalPath:
        os.rename(self._str, target)
        return LocalPath(target)

    def replace(self, target: str | os.PathLike[str]) -> LocalPath:
        os.replace(self._str, target)
        return LocalPath(target)

    def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        os.chmod(self._str, mode, follow_symlinks=follow_symlinks)

    def samefile(self, other: str | os.PathLike[str]) -> bool:
        return os.path.samefile(self._str, other)


def child(parent: LocalPath, name: str) -> LocalPath:
    """``parent / name`` for a name from a directory listing (no slash, never ``.`` or ``..``),
    made without parsing: a scan makes one per file."""
    p = object.__new__(LocalPath)
    s = parent._str
    p._str = name if s == "." else (s + name if s.endswith("/") else s + "/" + name)
    return p
