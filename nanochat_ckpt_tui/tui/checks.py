"""Checking checkpoints from the app (``c``), the tree's verdict badges, and the jobs that read
files while the UI stays live (a check, the verification of a deletion plan).

A mixin for :class:`~.app.CkptApp`. ``c`` checks the highlighted checkpoint, the marked ones,
or every step of the highlighted tag or stage in a thread worker; its progress (bytes, rate) is
in the status bar; Esc or the palette's "Cancel check" stops it through a threading.Event the
check looks at between chunks. The result comes back as a message: the tree's badges and the
detail pane are updated, and a notification says what was found (a failure is an error
notification, never silence).

After every scan the verdicts of the steps checked before (here, by ``nanochat-ckpt check`` or
by a prune's verification) are looked up in the check cache in a worker
(:class:`~.verdict_memo.VerdictMemo`), so the tree can badge them without a per-row lookup on the
UI thread.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from textual import work
from textual.message import Message
from textual.worker import get_current_worker

from ..fmt import human_bytes
from ..store.check import CheckCancelled, check
from ..store.check_report import DAMAGED, GOOD, UNCHECKED, UNHEALTHY, CheckReport
from ..store.layout import Catalog, Checkpoint, Stage, Tag
from .diff_screen import side_label
from .verdict_memo import VerdictMemo

if TYPE_CHECKING:
    from .detail import DetailPane
    from .tree import CheckpointTree

PROGRESS_EVERY = 0.2  # seconds between two progress lines of a job


class JobProgress(Message):
    """A job (``check``, ``plan``) says how far it is; "" when it is over."""

    def __init__(self, group: str, text: str) -> None:
        super().__init__()
        self.group, self.text = group, text


class CheckDone(Message):
    """A check finished, was cancelled, or failed."""

    def __init__(self, cks: list[Checkpoint], reports: list[CheckReport] | None,
                 error: str | None = None, cancelled: bool = False,
                 elapsed: float = 0.0) -> None:
        super().__init__()
        self.cks, self.reports, self.error, self.cancelled = cks, reports, error, cancelled
        self.elapsed = elapsed


class VerdictsFound(Message):
    """The cached verdicts of a catalog's steps (``gen``: which lookup this answers;
    ``partial``: found so far, more follows)."""

    def __init__(self, gen: int, verdicts: dict[str, str], partial: bool = False) -> None:
        super().__init__()
        self.gen, self.verdicts, self.partial = gen, verdicts, partial


def progress_text(verb: str, what: str, done: int, total: int, elapsed: float) -> str:
    """``checking base/d4@3000: 12.0 MB of 40.0 MB · 310 MB/s · esc cancels``."""
    rate = done / elapsed if elapsed > 0 else 0.0
    return (f"{verb} {what}: {human_bytes(done)} of {human_bytes(total)} · "
            f"{human_bytes(rate)}/s · esc cancels")


class Throttled:
    """A progress callback for a worker thread: posts at most one line per PROGRESS_EVERY."""

    def __init__(self, post: object, group: str, verb: str, what: str) -> None:
        self.post, self.group, self.verb, self.what = post, group, verb, what
        self.t0 = time.monotonic()
        self.last = 0.0
        self.base = 0  # bytes of the checks before this one (a plan checks step by step)
        self.prev = 0

    def __call__(self, done: int, total: int) -> None:
        if done < self.prev:  # a new check started (Verdicts checks one step at a time)
            self.base += self.prev
        self.prev = done
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY and done < total:
            return
        self.last = now
        text = progress_text(self.verb, self.what, self.base + done, self.base + total,
                             now - self.t0)
        self.post(JobProgress(self.group, text))  # type: ignore[operator]


def describe_targets(cks: list[Checkpoint]) -> str:
    return side_label(cks[0]) if len(cks) == 1 else f"{len(cks)} steps"


class CheckActions:
    """Mixed into the App: needs ``tree_view``, ``detail_pane``, ``catalog``, ``marked()``,
    ``highlighted()``, ``_update_status()``."""

    tree_view: CheckpointTree
    detail_pane: DetailPane
    catalog: Catalog | None
    jobs: dict[str, str]
    cancels: dict[str, threading.Event]
    verdict_memo: VerdictMemo
    _verdict_gen: int = 0

    # -- jobs -----------------------------------------------------------------------------

    def job_started(self, group: str, text: str) -> threading.Event:
        cancel = threading.Event()
        self.cancels[group] = cancel
        self.jobs[group] = text
        self._update_status()  # type: ignore[attr-defined]
        return cancel

    def job_ended(self, group: str) -> None:
        self.cancels.pop(group, None)
        self.jobs.pop(group, None)
        self._update_status()  # type: ignore[attr-defined]

    def on_job_progress(self, message: JobProgress) -> None:
        if message.group in self.cancels:  # (a late line of a job already over: dropped)
            self.jobs[message.group] = message.text
            self._update_status()  # type: ignore[attr-defined]

    @property
    def jobs_running(self) -> bool:
        return bool(self.cancels)

    def action_cancel_jobs(self) -> None:
        """Esc (or the palette): stop the running check and verification."""
        for group, cancel in list(self.cancels.items()):
            if not cancel.is_set():
                cancel.set()
                self.jobs[group] = "cancelling…"
        self._update_status()  # type: ignore[attr-defined]

    # -- c: check -------------------------------------------------------------------------

    def check_targets(self) -> list[Checkpoint]:
        """The marked checkpoints, else the highlighted one, else every step of the
        highlighted tag (those the filter shows) or stage."""
        marked = self.marked()  # type: ignore[attr-defined]
        if marked:
            return marked
        obj = self.tree_view.obj(self.tree_view.current)
        if isinstance(obj, Checkpoint):
            return [obj]
        if isinstance(obj, Tag):
            return self.tree_view.shown_steps(obj)
        if isinstance(obj, Stage):
            return [c for t in obj.tags for c in self.tree_view.shown_steps(t)]
        return []

    def action_check(self) -> None:
        if "check" in self.cancels:
            self.notify("A check is already running (esc cancels it)",  # type: ignore[attr-defined]
                        severity="warning")
            return
        cks = self.check_targets()
        if not cks:
            self.notify("Highlight a checkpoint, a tag or a stage, or mark (space) the "  # type: ignore[attr-defined]
                        "checkpoints to check", severity="warning")
            return
        what = describe_targets(cks)
        cancel = self.job_started("check", f"checking {what}… · esc cancels")
        self._check(cks, cancel, what)

    @work(thread=True, exclusive=True, group="check", exit_on_error=False,
          description="check")  # (a description: no repr of every checkpoint)
    def _check(self, cks: list[Checkpoint], cancel: threading.Event, what: str) -> None:
        post = self.post_message  # type: ignore[attr-defined]
        t0 = time.monotonic()
        try:
            reports = check(cks, progress=Throttled(post, "check", "checking", what),
                            cancel=cancel)
        except CheckCancelled:
            post(CheckDone(cks, None, cancelled=True, elapsed=time.monotonic() - t0))
        except Exception as e:  # noqa: BLE001 - shown to the user, never a crash
            post(CheckDone(cks, None, f"{type(e).__name__}: {e}",
                           elapsed=time.monotonic() - t0))
        else:
            post(CheckDone(cks, reports, elapsed=time.monotonic() - t0))

    def on_check_done(self, message: CheckDone) -> None:
        self.job_ended("check")
        notify = self.notify  # type: ignore[attr-defined]
        if message.cancelled:
            notify("Check cancelled: the files checked so far are cached", severity="warning")
            return
        if message.reports is None:
            notify(f"Check failed: {message.error}", severity="error", timeout=12)
            return
        self.show_check(message.cks, message.reports, message.elapsed)

    def show_check(self, cks: list[Checkpoint], reports: list[CheckReport],
                   elapsed: float = 0.0) -> None:
        """Badge the checked steps, read the detail pane again, and say what was found."""
        for ck, report in zip(cks, reports, strict=True):
            self.verdict_memo.record(ck, report)
        self.set_verdicts(self.verdict_memo.verdicts())
        self.detail_pane.invalidate({ck.key for ck in cks})
        self._show_current()  # type: ignore[attr-defined]
        counts = {v: 0 for v in (GOOD, DAMAGED, UNHEALTHY, UNCHECKED)}
        for r in reports:
            counts[r.verdict] = counts.get(r.verdict, 0) + 1
        read = sum(r.bytes_read for r in reports)
        bad = [r for r in reports if r.verdict in (DAMAGED, UNHEALTHY)]
        what = describe_targets(cks)
        if len(reports) == 1:
            head = f"{what}: {reports[0].summary()}"
        else:
            head = f"Checked {what}: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
            if bad:
                first = bad[0]
                head += f". {first.key.replace('_checkpoints/', '/')}: {first.summary()}"
        tail = f" ({human_bytes(read)} read in {elapsed:.1f} s)" if read else \
            " (from the check cache)"
        notify = self.notify  # type: ignore[attr-defined]
        if bad:
            notify(head + tail, severity="error", timeout=15)
        elif counts[UNCHECKED]:
            notify(head + tail, severity="warning", timeout=10)
        else:
            notify(head + tail, timeout=6)

    # -- verdict badges -------------------------------------------------------------------

    def set_verdicts(self, verdicts: dict[str, str]) -> None:
        self.tree_view.set_verdicts(verdicts)
        self.detail_pane.context.verdicts = verdicts  # (part of the pane's signature)

    def lookup_verdicts(self) -> None:
        """Look up the cached verdicts of the catalog's steps, off the UI thread."""
        self._verdict_gen += 1
        self._lookup_verdicts(self._verdict_gen)

    @work(thread=True, exclusive=True, group="verdicts", exit_on_error=False,
          description="look up the cached verdicts")  # (not a repr of the catalog)
    def _lookup_verdicts(self, gen: int) -> None:
        # (the catalog is not an argument: a finished worker and its messages would keep an
        # old catalog alive, which the disposer is meant to free off the UI thread)
        catalog = self.catalog
        if catalog is None:
            return
        worker = get_current_worker()
        post = self.post_message  # type: ignore[attr-defined]
        found = self.verdict_memo.lookup(
            catalog.checkpoints, lambda: worker.is_cancelled or gen != self._verdict_gen,
            lambda so_far: post(VerdictsFound(gen, so_far, partial=True)))
        if found is not None:
            self.post_message(VerdictsFound(gen, found))  # type: ignore[attr-defined]

    def on_verdicts_found(self, message: VerdictsFound) -> None:
        if message.gen != self._verdict_gen:
            return
        if message.partial:  # (the badges of the steps looked up so far, over the old ones)
            self.set_verdicts({**self.tree_view.verdicts, **message.verdicts})
        else:  # (with what a check found meanwhile)
            self.set_verdicts(self.verdict_memo.verdicts())
            self._show_current()  # type: ignore[attr-defined]
