"""Results of checks, and sha256 sums, cached per file version in the user's cache dir.

A file version is its storage's :meth:`~.storage.Storage.file_key` (local: device, inode, size
and mtime in ns; remote: URL, size, mtime), so a touched, rewritten or replaced file misses the
cache and is read again; nothing else is. The cache is one SQLite file at
``$XDG_CACHE_HOME/nanochat-ckpt/checks.sqlite`` (default ``~/.cache/nanochat-ckpt/``), never
inside a base dir; ``NANOCHAT_CKPT_CACHE`` overrides the directory. A corrupt or unreadable
cache is moved aside and rebuilt; if even that fails, checking works uncached. SQLite (stdlib)
is used rather than a JSON file because 200,000 per-file rows must be updated one at a time,
from several processes, without rewriting the whole file.
"""

from __future__ import annotations

import _thread
import os
import time

from . import fastjson
from .localpath import LocalPath

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

SCHEMA_VERSION = 1
CACHE_ENV = "NANOCHAT_CKPT_CACHE"


def cache_dir() -> LocalPath:
    env = os.environ.get(CACHE_ENV)
    if env:
        return LocalPath(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (LocalPath(xdg).expanduser() if xdg else LocalPath("~/.cache").expanduser()) / \
        "nanochat-ckpt"


# = json.JSONEncoder(separators=(",", ":")).encode (json.dumps makes one a call)
_COMPACT = fastjson.encoder(separators=(",", ":"))


def key_text(key: tuple[Any, ...]) -> str:
    return _COMPACT(list(key))


class CheckCache:
    """Per-file check results (JSON documents) and sha256 sums, by file key."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = LocalPath(path) if path else cache_dir() / "checks.sqlite"
        self._lock = _thread.allocate_lock()  # (= threading.Lock(): not importing threading)
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self.note: str | None = None  # why the cache is not used, or was rebuilt
        self.writes = 0  # rows this object wrote (a reader tells its own writes from others')

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self._broken:
            return self._db
        import sqlite3  # (on first use: a listing that finds no cache never loads it)

        for attempt in range(2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=5, check_same_thread=False)
                if not self._ready(db):  # (a cache in use is opened without writing to it)
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
                    row = db.execute("SELECT v FROM meta WHERE k='version'").fetchone()
                    if row is not None and row[0] != str(SCHEMA_VERSION):
                        db.execute("DROP TABLE IF EXISTS results")
                        db.execute("DROP TABLE IF EXISTS hashes")
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)",
                               (str(SCHEMA_VERSION),))
                    db.execute("CREATE TABLE IF NOT EXISTS results "
                               "(key TEXT PRIMARY KEY, doc TEXT NOT NULL, at REAL)")
                    db.execute("CREATE TABLE IF NOT EXISTS hashes "
                               "(key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, at REAL)")
                    db.commit()
                self._db = db
                return db
            except sqlite3.DatabaseError as e:  # corrupt: move it aside and start over
                if attempt == 0 and self.path.exists():
                    self._set_aside(f"rebuilt a corrupt check cache ({e})")
                    continue
                self._broken, self.note = True, f"check cache unusable ({e}): not cached"
            except OSError as e:
                self._broken, self.note = True, f"check cache unusable ({e}): not cached"
        return None

    @staticmethod
    def _ready(db: Any) -> bool:
        """The file is a cache of this version already: WAL, its tables there (then opening
        it writes nothing: a listing that looks verdicts up is a reader)."""
        import sqlite3

        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                return False
            row = db.execute("SELECT v FROM meta WHERE k='version'").fetchone()
            if row is None or row[0] != str(SCHEMA_VERSION):
                return False
            tables = {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError:
            return False  # (a corrupt file: the full path below finds it and sets it aside)
        return {"meta", "results", "hashes"} <= tables

    def _set_aside(self, why: str) -> None:
        import contextlib

        self.note = why
        for suffix in ("", "-wal", "-shm"):
            p = LocalPath(str(self.path) + suffix)
            with contextlib.suppress(OSError):
                p.replace(p.with_name(p.name + f".corrupt-{int(time.time())}"))

    def _run(self, sql: str, args: tuple[Any, ...], fetch: bool) -> Any:
        import contextlib
        import sqlite3

        with self._lock:
            db = self._connect()
            if db is None:
                return None
            try:
                cur = db.execute(sql, args)
                if fetch:
                    return cur.fetchone()
                db.commit()
            except sqlite3.DatabaseError as e:
                self._db = None
                with contextlib.suppress(Exception):
                    db.close()
                self._set_aside(f"rebuilt a corrupt check cache ({e})")
        return None

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        row = self._run("SELECT doc FROM results WHERE key=?", (key_text(key),), True)
        if row is None:
            return None
        try:
            doc = fastjson.loads(row[0])
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    BATCH = 500  # keys a query (SQLite allows at least 999 parameters)

    def _many(self, sql: str, texts: list[str]) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (``… IN ({})``) over ``texts``, a batch of keys a query."""
        import contextlib
        import sqlite3

        rows: list[tuple[Any, ...]] = []
        with self._lock:
            db = self._connect()
            if db is None:
                return rows
            try:
                for i in range(0, len(texts), self.BATCH):
                    part = texts[i:i + self.BATCH]
                    rows += db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
            except sqlite3.DatabaseError as e:
                self._db = None
                with contextlib.suppress(Exception):
                    db.close()
                self._set_aside(f"rebuilt a corrupt check cache ({e})")
        return rows

    def get_many(self, texts: list[str]) -> dict[str, dict[str, Any]]:
        """:meth:`get` of many keys (their ``key_text``) in a few queries, one per
        :attr:`BATCH`: key text → document, for the keys found (6,000 lookups one by one cost
        25 ms more)."""
        out: dict[str, dict[str, Any]] = {}
        for text, raw in self._many("SELECT key, doc FROM results WHERE key IN ({})", texts):
            try:
                doc = fastjson.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out[text] = doc
        return out

    def existing(self, texts: list[str]) -> set[str]:
        """The key texts (``key_text``) that have a result (documents not read)."""
        return {text for (text,) in self._many("SELECT key FROM results WHERE key IN ({})",
                                               texts)}

    def put(self, key: tuple[Any, ...], doc: dict[str, Any]) -> None:
        self.writes += 1
        self._run("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                  (key_text(key), _COMPACT(doc), time.time()), False)

    def sha256(self, key: tuple[Any, ...]) -> str | None:
        row = self._run("SELECT sha256 FROM hashes WHERE key=?", (key_text(key),), True)
        return row[0] if row else None

    def put_sha256(self, key: tuple[Any, ...], sha: str) -> None:
        self.writes += 1
        self._run("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)",
                  (key_text(key), sha, time.time()), False)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


_DEFAULT: CheckCache | None = None
_DEFAULT_LOCK = _thread.allocate_lock()


def default_cache() -> CheckCache:
    """The process's cache in the user's cache dir (re-made when the dir setting changes)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        path = cache_dir() / "checks.sqlite"
        if _DEFAULT is None or _DEFAULT.path != path:
            _DEFAULT = CheckCache(path)
        return _DEFAULT


def existing_cache() -> CheckCache | None:
    """The user's check cache, or None when it was never written (nothing checked yet)."""
    path = cache_dir() / "checks.sqlite"
    return default_cache() if path.is_file() else None
