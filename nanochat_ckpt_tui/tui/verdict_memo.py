"""The check verdicts the tree badges (verified, damaged, unhealthy), looked up in the check
cache off the UI thread, remembered for the app's life.

The lookup is the store's, the one ``ls`` uses (:func:`~nanochat_ckpt_tui.store.step_verdicts.
cached_verdicts`): the steps never checked are found in one query per 500 and cost nothing
more; a checked step's verdict is read under its step key, or rebuilt once from its files'
results and remembered there (for the next ``ls`` too). After every scan the app asks again
for every step, so each verdict is also remembered here with the step's signature (its state,
problems, and every file's name, size and mtime): a rescan looks up only the steps whose files
changed. A step without a verdict (never checked in this version) is asked again only when the
cache file changed since (a check ran, here or in another process). When no check ever ran (no
cache file), nothing is looked up.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from ..store.check_cache import CheckCache, cache_dir, existing_cache
from ..store.check_report import GOOD, UNCHECKED, CheckReport
from ..store.layout import Checkpoint
from ..store.step_verdicts import cached_verdicts

CHUNK = 256  # steps looked up at once, between two looks at the cancel flag
PARTIAL_EVERY = 1.0  # seconds: a long lookup hands over what it found so far this often


def cache_file() -> str:
    return str(cache_dir() / "checks.sqlite")


def cache_exists() -> bool:
    """A check ran once (the cache file exists): only then is anything looked up."""
    return os.path.isfile(cache_file())


def _stamp() -> tuple[Hashable, ...]:
    """Changes when the cache is written (SQLite in WAL mode writes the -wal file first)."""
    out: list[Hashable] = []
    for suffix in ("", "-wal"):
        try:
            st = os.stat(cache_file() + suffix)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


def signature(ck: Checkpoint) -> int:
    """What a step's cached verdict depends on, as the scan sees it (a hash: the memo holds
    one int a step, not 20,000 tuples of tuples for the GC to walk)."""
    return hash((ck.state, tuple(ck.problems), ck.openable,
                 tuple((f.name, f.size, f.mtime) for f in ck.files)))


def verdict_of(report: CheckReport | None) -> str | None:
    """good, damaged or unhealthy; None for a step not (fully) checked."""
    if report is None or report.verdict == UNCHECKED:
        return None
    return report.verdict


def _verdicts(checkpoints: list[Checkpoint], cache: CheckCache | None,
              dirs: dict[str, Any]) -> dict[str, str]:
    """key → verdict of those steps a check judged whole (never an ``unchecked``); ``dirs``:
    the tag dirs listed so far in this lookup."""
    try:
        found, _ = cached_verdicts(checkpoints, cache, budget=math.inf, dirs=dirs)
    except Exception:  # noqa: BLE001 - an odd file: look the steps up one by one
        if len(checkpoints) == 1:
            return {}  # (that one: no badge, never a crash)
        found = {}
        for ck in checkpoints:
            found.update(_verdicts([ck], cache, dirs))
    return {k: v for k, v in found.items() if v != UNCHECKED}


class VerdictMemo:
    """Verdicts by checkpoint key, each with the signature it was found for."""

    def __init__(self) -> None:
        self._memo: dict[str, tuple[Hashable, str | None]] = {}
        self._stamp: tuple[Hashable, ...] | None = None
        self._lock = threading.Lock()
        self.looked_up = 0  # steps looked up in the cache (tests)

    def lookup(self, checkpoints: Iterable[Checkpoint],
               cancelled: Callable[[], bool] = lambda: False,
               partial: Callable[[dict[str, str]], None] | None = None
               ) -> dict[str, str] | None:
        """key → verdict of every step with one (call in a worker). None when cancelled.
        A long lookup (thousands of steps checked, each report rebuilt from its files'
        results) calls ``partial`` with the verdicts found so far every PARTIAL_EVERY s."""
        if not cache_exists():
            return {}
        stamp = _stamp()
        with self._lock:
            old, fresh = self._memo, stamp != self._stamp
        memo: dict[str, tuple[Hashable, str | None]] = {}
        out: dict[str, str] = {}
        todo: list[tuple[Checkpoint, int]] = []
        for ck in checkpoints:
            sig = signature(ck)
            known = old.get(ck.key)
            if known is not None and known[0] == sig and (known[1] is not None or not fresh):
                memo[ck.key] = known
                if known[1] is not None:
                    out[ck.key] = known[1]
            else:
                todo.append((ck, sig))
        cache = existing_cache() if todo else None
        writes = cache.writes if cache is not None else 0
        dirs: dict[str, Any] = {}  # (a tag's steps span chunks: its dir is listed once)
        last = time.monotonic()
        for start in range(0, len(todo), CHUNK):
            if cancelled():
                return None
            if partial is not None and time.monotonic() - last > PARTIAL_EVERY:
                last = time.monotonic()
                partial(dict(out))
            part = todo[start:start + CHUNK]
            found = _verdicts([ck for ck, _ in part], cache, dirs)
            self.looked_up += len(part)
            for ck, sig in part:
                verdict = found.get(ck.key)
                memo[ck.key] = (sig, verdict)
                if verdict is not None:
                    out[ck.key] = verdict
        if cancelled():
            return None
        if cache is not None and cache.writes != writes:
            # the lookup remembered rebuilt verdicts under their step keys: the cache changed,
            # but not for the steps without a verdict (a check in another process that ended
            # during this lookup is seen at the cache's next change)
            stamp = _stamp()
        with self._lock:
            for key, (sig, verdict) in self._memo.items():  # recorded meanwhile (a check)
                if key in memo and memo[key][0] == sig and verdict is not None \
                        and old.get(key) != (sig, verdict):
                    memo[key] = (sig, verdict)
                    out[key] = verdict
            self._memo, self._stamp = memo, stamp
        return out

    def verdicts(self) -> dict[str, str]:
        """key → verdict as known now: the last lookup's, and what checks found since."""
        with self._lock:
            return {k: v for k, (_, v) in self._memo.items() if v is not None}

    def record(self, ck: Checkpoint, report: CheckReport) -> str | None:
        """Remember what a check just found for ``ck``; its verdict (None: unchecked)."""
        verdict = verdict_of(report)
        with self._lock:
            self._memo[ck.key] = (signature(ck), verdict)
        return verdict


__all__ = ["GOOD", "VerdictMemo", "cache_exists", "signature", "verdict_of"]
