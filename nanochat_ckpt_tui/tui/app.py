"""The nanochat-ckpt TUI: a tree of checkpoints, a detail pane, a live watcher.

Blocking work runs in thread workers (scans, detail loads, the demo writer); the file
watcher is an async worker that only asks for rescans, which are coalesced so a burst of
events costs one scan. Nothing here imports torch, except writing the demo on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Label, Static, Tree
from textual.worker import Worker, WorkerState

from ..fmt import human_bytes
from ..store.layout import Catalog, resolve_base_dir, scan
from ..store.meta import assess_metas, val_bpb_of
from ..store.storage import Storage
from ..store.trash import TrashUsage, trash_usage
from ..store.watch import recheck_delay, watch_base
from .checks import CheckActions
from .detail import DetailPane
from .disposer import Disposer
from .footer import Footer  # (rebuilt only when its keys change: bytes over SSH)
from .gc_pause import freeze as freeze_gc
from .gc_pause import pause_gc
from .help import HelpScreen, key_rows
from .manage import ManageActions
from .palette import Palette
from .ssh import animation_level
from .status import StatusBar, StatusInfo
from .tree import (
    SORT_KEYS,
    SORT_NATURAL_DESC,
    CheckpointTree,
    Index,
    NodeRef,
    index_rows,
    sort_name,
)
from .verdict_memo import VerdictMemo
from .welcome import WelcomeScreen, default_demo_root, write_fresh_demo

AGE_REFRESH = 30.0  # seconds between redraws of the ages in the tree
MAX_RECHECK = 30.0
SWITCH_INTERVAL = 0.001  # seconds (Python's default is 0.005)
EARLY_AT = 2000  # checkpoints: a first scan of more shows the tree before reading val_bpb
META_CHUNK = 2000  # metas read between two looks at the clock (val_bpb shown as it comes)
META_EVERY = 0.5  # seconds between val_bpb updates while a first scan reads its metas


def pretty_path(path: Path) -> str:
    """``/home/me/.cache/nanochat`` → ``~/.cache/nanochat``."""
    home = str(Path.home())
    s = str(path)
    return "~" + s[len(home):] if home != "/" and (s == home or s.startswith(home + "/")) else s


class Scanned(Message):
    """A scan finished in a worker (``early``: a first scan shows what it has so far: a
    partial catalog, or the whole one with the val_bpb read until now)."""

    def __init__(self, base: Path, catalog: Catalog | None, bpb: dict[str, float | None],
                 error: str | None = None, early: bool = False,
                 trash: TrashUsage | None = None, index: Index | None = None,
                 recheck: float | None = None) -> None:
        super().__init__()
        self.base, self.catalog, self.bpb, self.error = base, catalog, bpb, error
        self.early = early  # shown before the scan and its metas are done; more follows
        self.trash = trash  # the base dir's trash (None: none, or not writable)
        self.index = index  # the catalog's rows by key (made off the UI thread)
        self.recheck = recheck  # seconds until a "writing" verdict can change (a rescan)


class DemoReady(Message):
    def __init__(self, path: Path | None, error: str | None = None) -> None:
        super().__init__()
        self.path, self.error = path, error


class CkptApp(CheckActions, ManageActions, App[None]):
    """See, compare and prune nanochat checkpoints."""

    TITLE = "nanochat-ckpt"
    # (absolute: subclasses live elsewhere). The dialogs' and the diff screen's own CSS is
    # read now too: read when the first of them opens, new CSS makes Textual parse every
    # sheet again and restyle every widget of the app, ~60-100 ms on that key.
    CSS_PATH: ClassVar[list[str | os.PathLike[str]]] = [
        Path(__file__).with_name(name) for name in ("app.tcss", "dialogs.tcss", "diff.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        # Textual's default ctrl+c only says which key quits (help lists ctrl+c: EXTRA_KEYS)
        Binding("ctrl+c", "quit", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter"),
        Binding("r", "rescan", "Refresh"),
        Binding("d", "diff", "Diff"),
        Binding("x,delete", "delete", "Delete"),
        Binding("c", "check", "Check"),
        Binding("y", "copy_command", "Copy command"),
        Binding("X", "delete_optimizer", "Delete optimizer shards", show=False),
        Binding("P", "prune_tag", "Prune tag", show=False),
        Binding("p", "pin", "Pin", show=False),
        Binding("n", "note", "Note", show=False),
        Binding("a", "archive", "Archive", show=False),
        # When the action above is off (--read-only, a remote base dir), the same key says
        # why instead of doing nothing (manage.py: why_not).
        Binding("x,delete", "why_not('delete')", show=False),
        Binding("X", "why_not('delete_optimizer')", show=False),
        Binding("P", "why_not('prune_tag')", show=False),
        Binding("p", "why_not('pin')", show=False),
        Binding("n", "why_not('note')", show=False),
        Binding("a", "why_not('archive')", show=False),
        Binding("escape", "escape", "Cancel the check, else clear the filter", show=False),
    ]

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, *, poll: bool = False,
                 read_only: bool = False, demo: bool = False,
                 clock: Callable[[], float] | None = None, display_name: str | None = None,
                 demo_root: Path | None = None, watch: bool = True,
                 demo_now: float | None = None,
                 storage_options: dict[str, object] | None = None) -> None:
        super().__init__()
        self.animation_level = animation_level(self.animation_level)  # none over SSH: bytes
        from ..store.storage import is_url, redact

        # A URL (s3://…, ssh://…, memory://…) is browsed read-only through fsspec: no watcher
        # (r rescans), no writes, no archiving from it.
        self.remote_url = str(base_dir) if base_dir and is_url(str(base_dir)) else None
        self.storage_options = storage_options
        self._remote_fs: object | None = None
        if self.remote_url:
            self.base_dir = Path(self.remote_url)  # an identity for scans, never opened
            read_only, watch = True, False
            display_name = display_name or redact(self.remote_url)
        else:
            self.base_dir = resolve_base_dir(base_dir)
        self.poll = poll
        self.read_only = read_only
        self.demo = demo
        self.clock: Callable[[], float] = clock or time.time
        self.display_name = display_name
        self.demo_root = demo_root or default_demo_root()
        self.demo_now = demo_now
        self.watch_enabled = watch
        self.catalog: Catalog | None = None
        self.scan_count = 0
        self.events_seen = 0
        self._scanning = False
        self._scan_again = False
        self._metas_pending = False  # an early catalog is shown, its val_bpb not read yet
        self._reload_detail = False  # r: read the detail pane's row again after the scan
        self._recheck: Timer | None = None
        self._mode = "scanning…"
        self._welcome: WelcomeScreen | None = None
        self._vanished = False  # the base dir existed in this session, then went away
        self._switch_interval = sys.getswitchinterval()
        self._disposer = Disposer()
        self._status = StatusBar(id="status")
        self._tree_header = Static(id="tree-header")
        self._tree = CheckpointTree(clock=self.clock, id="tree")
        self._detail = DetailPane(clock=self.clock, id="detail")
        self._filter_bar = Horizontal(id="filter-bar")
        self._filter = Input(placeholder="tag, stage or step (>1000 <5000 =3000)", id="filter")
        self._filter_count = Label(id="filter-count")
        self.job_line = Static(id="job")
        self.archived_keys: set[str] = set()
        self.jobs: dict[str, str] = {}  # running jobs' progress lines (check, plan)
        self.cancels: dict[str, threading.Event] = {}  # and their cancel events
        self.verdict_memo = VerdictMemo()
        self.trash_usage: TrashUsage | None = None

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self._status
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield self._tree_header
                yield self._tree
            yield self._detail
        with self._filter_bar:
            yield Label("/", id="filter-label")
            yield self._filter
            yield self._filter_count
        yield self.job_line
        yield Footer()

    # The main screen's widgets, held directly: ``query_one`` searches the *active* screen,
    # which is a modal while help or the first-run screen is open, and scans go on then.
    @property
    def tree_view(self) -> CheckpointTree:
        return self._tree

    @property
    def detail_pane(self) -> DetailPane:
        return self._detail

    @property
    def display_label(self) -> str:
        """How the base dir is named on screen (a given display name, or a ~ path)."""
        return self.display_name or pretty_path(self.base_dir)

    def on_mount(self) -> None:
        # Worker threads (detail loads, scans) hold the GIL in long pure-Python stretches;
        # a shorter switch interval hands it back to the UI thread sooner (key latency).
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._apply_theme()
        self.theme_changed_signal.subscribe(self, lambda _theme: self._apply_theme())
        self.set_interval(AGE_REFRESH, self.tree_view.refresh_labels)
        self.tree_view.focus()
        if self.demo:
            self.open_demo()
        else:
            self.open_base(self.base_dir, self.display_name)

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)
        self._disposer.close()

    def _apply_theme(self) -> None:
        pal = Palette.from_variables(self.theme_variables)
        self.tree_view.set_palette(pal)
        self.detail_pane.palette = pal
        self.detail_pane.rerender()

    # -- base dir, scans, watcher -----------------------------------------------------------

    def open_base(self, base: Path, display: str | None = None) -> None:
        """Show ``base``: scan it and watch it."""
        self.base_dir, self.display_name = Path(base), display
        self.catalog = None
        self._vanished = False
        self._mode = "scanning…"
        self._update_status()
        self.request_scan()
        if self.watch_enabled:
            self._watch(self.base_dir)
        else:
            self._mode = "not watching"

    def request_scan(self) -> None:
        """Scan now, or once more right after the scan in flight (coalesced)."""
        if self._scanning:
            self._scan_again = True
            return
        self._scanning = True
        self._scan(self.base_dir, early=self.catalog is None)

    @work(thread=True, group="scan", exit_on_error=False)
    def _scan(self, base: Path, early: bool = False) -> None:
        # A big base dir's catalog is hundreds of thousands of long-lived objects without
        # reference cycles (200,000 files: ~900,000). Left to the cyclic GC, every full
        # collection walks all of them, ~0.8 s with the GIL held: a frozen UI right after
        # each scan and now and then while scrolling or typing a filter. So collect nothing
        # during the scan, then move what exists to the GC's permanent generation
        # (gc.freeze): reference counting still frees an old catalog when a new one
        # replaces it. The cyclic garbage made meanwhile is collected first (gc_pause.freeze),
        # unless the scan made so many objects that a collection would stall the UI.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            shown: list[bool] = []  # partial catalogs posted

            def partial(cat: Catalog) -> None:  # (a first scan that takes a while)
                cat.warm()  # byte totals summed here, not on the UI thread
                shown.append(True)
                freeze_gc()
                self.post_message(Scanned(base, cat, {}, early=True, index=index_rows(cat)))

            where = self._remote_storage() if self.remote_url else base
            cat = scan(where, now=self.clock(), partial=partial if early else None)  # type: ignore[arg-type]
            cat.warm()
            index = index_rows(cat)
            early = early and (bool(shown) or len(cat.checkpoints) > EARLY_AT)
            if early:  # a big first scan: the whole tree now, then val_bpb as it is read
                freeze_gc()
                self.post_message(Scanned(base, cat, {}, early=True, index=index))
            bpb = self._read_metas(base, cat, early)
            trash = None
            with contextlib.suppress(OSError):  # (an unreadable trash: not shown)
                trash = trash_usage(cat.storage, cat.base_dir)
            freeze_gc()
            self.post_message(Scanned(base, cat, bpb, trash=trash, index=index,
                                      recheck=recheck_delay(cat, self.clock())))
        except Exception as e:  # noqa: BLE001 - a scan must never take the app down
            self.post_message(Scanned(base, None, {}, f"{type(e).__name__}: {e}"))
        finally:
            if gc_was_enabled:
                gc.enable()

    def _remote_storage(self) -> Storage:
        """The remote base dir's storage, opened once (in the scan worker) and kept: its
        connection serves every rescan."""
        from ..store.storage import open_storage

        if self._remote_fs is None:
            self._remote_fs = open_storage(self.remote_url, self.storage_options)  # type: ignore[arg-type]
        return self._remote_fs  # type: ignore[return-value]

    def _read_metas(self, base: Path, cat: Catalog, early: bool) -> dict[str, float | None]:
        """Judge every step's meta and read its val_bpb (concurrently where the storage
        allows); ``early``: the default tags first, posting what is read every META_EVERY."""
        cks = cat.checkpoints
        if not early:
            assess_metas(cks)  # (a meta nanochat cannot load: "bad meta")
            return {ck.key: val_bpb_of(ck) for ck in cks}
        defaults = [t for s in cat.stages for t in s.tags if t.name == s.default_tag]
        first = {id(t) for t in defaults}
        cks = [c for t in defaults for c in t.checkpoints] + [
            c for t in cat.tags if id(t) not in first for c in t.checkpoints]
        bpb: dict[str, float | None] = {}
        due = time.monotonic() + META_EVERY
        for i in range(0, len(cks), META_CHUNK):
            chunk = cks[i:i + META_CHUNK]
            assess_metas(chunk)
            bpb.update({ck.key: val_bpb_of(ck) for ck in chunk})
            if time.monotonic() >= due and i + META_CHUNK < len(cks):
                due = time.monotonic() + META_EVERY
                self.post_message(Scanned(base, cat, dict(bpb), early=True))
        return bpb

    @on(Scanned)
    def _scanned(self, message: Scanned) -> None:
        if message.early:
            if message.base == self.base_dir and message.catalog is not None:
                self._metas_pending = message.catalog.complete
                self._show_catalog(message.catalog, message.bpb, message.index)
            return
        self._scanning = False
        self._metas_pending = False
        self.scan_count += 1
        if self._scan_again:
            self._scan_again = False
            self.request_scan()
        if message.base != self.base_dir:
            return  # a scan of a dir we have since left
        if message.catalog is None:
            self.notify(f"Scan failed: {message.error}", severity="error")
            return
        was_there = self.catalog is not None and self.catalog.exists
        cat = message.catalog  # (_show_catalog makes it self.catalog)
        if self._reload_detail:
            self._reload_detail = False
            self.detail_pane.invalidate()  # r re-reads what the pane shows, changed or not
        if self._mode == "scanning…":
            self._mode = ("polling" if self.poll else "watching") if self.watch_enabled \
                else "not watching"
        self.trash_usage = message.trash
        self.detail_pane.context.trash = message.trash
        self._show_catalog(cat, message.bpb, message.index)
        self._schedule_recheck(message.recheck)
        self.lookup_verdicts()  # the tree's check badges, off this thread
        self.load_archived()
        if not cat.exists and was_there:
            # Deleted (or unmounted) under a running app: say so, and keep watching for it
            # (not the first-run screen, whose Quit would end the session).
            self._vanished = True
            watching = " It shows again when the dir is back." if self.watch_enabled \
                else " Press r to rescan."
            self.notify(f"{self.display_label} was deleted (or unmounted): nothing to show."
                        + watching, severity="warning", timeout=10)
        elif cat.exists and self._vanished:
            self._vanished = False
            self.notify(f"{self.display_label} is back", timeout=4)
        elif not cat.exists and self.remote_url:
            self.notify(f"{self.display_label}: nothing there (yet); r rescans", severity="warning")
        elif not cat.exists and not self.demo and self._welcome is None and not self._vanished:
            self._welcome = WelcomeScreen(self.base_dir, self.display_label)
            self.push_screen(self._welcome, self._welcome_done)
        elif cat.exists and self._welcome is not None and self.screen is self._welcome:
            self._welcome.dismiss(None)

    def _show_catalog(self, cat: Catalog, bpb: dict[str, float | None],
                      index: Index | None = None) -> None:
        ctx = self.detail_pane.context
        again = ctx.catalog is cat  # the same scan, now with its val_bpb (after an early one)
        old = self.catalog
        self.catalog = cat
        self.tree_view.set_catalog(cat, bpb, index)
        ctx.catalog, ctx.bpb, ctx.display = cat, bpb, self.display_label
        ctx.default_tags = {f"{s.dirname}/{s.default_tag}" for s in cat.stages if s.default_tag}
        # The detail pane after the tree's next frame: a stage's view reads every step of its
        # tags (~30 ms for 20,000), which would make one long stall with the tree's update;
        # while a first scan's val_bpb come in, it is drawn again only once they are all read.
        self.call_after_refresh(self._show_detail, again and not self._metas_pending)
        self._update_status()
        if old is not None and old is not cat:
            self._disposer.drop(old)  # freed off this thread (disposer.py)
            del old

    def _show_detail(self, again: bool) -> None:
        self._show_current()
        if again and self.detail_pane.is_attached:
            self.detail_pane.rerender()

    def _schedule_recheck(self, delay: float | None) -> None:
        """Rescan when a "writing" badge can clear, since no file event will say so
        (``delay``: from recheck_delay, in the scan's worker)."""
        if self._recheck is not None:
            self._recheck.stop()
            self._recheck = None
        if delay is not None:
            self._recheck = self.set_timer(min(delay, MAX_RECHECK), self.request_scan)

    @work(exclusive=True, group="watcher", exit_on_error=False)
    async def _watch(self, base: Path) -> None:
        async for batch in watch_base(base, poll=self.poll):
            self.events_seen += len(batch)
            if batch.error:
                self.notify(batch.error, severity="warning")
            self.request_scan()

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is WorkerState.ERROR:
            if worker.group == "watcher":
                self._mode = "not watching"
                self._update_status()
                self.notify(f"File watcher stopped: {worker.error}. Press r to rescan.",
                            severity="warning")
            elif worker.group == "scan":
                self._scanning = False
            else:
                if worker.group in self.cancels:  # (a job's progress line goes too)
                    self.job_ended(worker.group)
                self.notify(f"{worker.group} failed: {worker.error}", severity="error")

    @property
    def busy(self) -> bool:
        """A scan, demo write or detail load is pending (the watcher does not count)."""
        if self._scanning or self.detail_pane.busy or self.tree_view.expanding:
            return True
        return any(w.group != "watcher" and w.state in (WorkerState.PENDING,
                                                          WorkerState.RUNNING)
                   for w in self.workers)

    async def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing but the watcher is working (tests, screenshots, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.busy:
                return True
            await asyncio.sleep(0.01)
        return False

    # -- first run and demo -----------------------------------------------------------------

    def _welcome_done(self, open_demo: bool | None) -> None:
        self._welcome = None
        if open_demo:
            self.open_demo()
        elif open_demo is False:
            self.exit()

    def open_demo(self) -> None:
        """Write a fresh demo base dir (in a worker: it imports torch) and open it."""
        self._mode = "writing demo…"
        self._update_status()
        self.notify("Writing the demo checkpoints…", timeout=4)
        self._write_demo(self.demo_root)

    @work(thread=True, group="demo", exit_on_error=False)
    def _write_demo(self, root: Path) -> None:
        try:
            self.post_message(DemoReady(write_fresh_demo(root, now=self.demo_now)))
        except Exception as e:  # noqa: BLE001 - tell the user, keep running
            self.post_message(DemoReady(None, f"{type(e).__name__}: {e}"))

    @on(DemoReady)
    def _demo_ready(self, message: DemoReady) -> None:
        if message.path is None:
            self.notify(f"Could not write the demo: {message.error}", severity="error")
            return
        self.demo = True
        self.open_base(message.path, self.display_name if self.display_name else None)

    # -- tree ↔ detail ----------------------------------------------------------------------

    def _show_current(self) -> None:
        if not self.detail_pane.is_attached:
            return  # (the app is closing: a late message)
        ref = self.tree_view.current
        self.detail_pane.show(ref, self.tree_view.obj(ref))

    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted[NodeRef]) -> None:
        self._show_current()

    @on(DetailPane.StateChanged)
    def _state_changed(self) -> None:
        self.tree_view.refresh_labels()  # the new badge now (only rows whose label changed)

    @on(CheckpointTree.Opened)
    def _opened(self) -> None:
        self.detail_pane.focus()

    @on(CheckpointTree.ViewChanged)
    def _view_changed(self) -> None:
        self.marks_changed()
        self._update_status()
        self._show_current()

    def _update_status(self) -> None:
        tree = self.tree_view
        summary = tree.filter_summary()  # "6 matches in 3 tags", "no matches for 'foo'"
        self._filter_count.update(summary)
        if tree.filter_matches is not None and not tree.visible_keys_count():
            self._tree_header.update(Text(summary, style="italic"))
        else:
            self._tree_header.update(tree.header_text())
        mode = self._mode
        if self.catalog is not None and not self.catalog.complete:
            tags = self.catalog.tags
            mode = f"scanning… {sum(not t.scanning for t in tags)}/{len(tags)} tags"
        elif self._metas_pending:
            mode = "reading metas…"
        self._status.show_info(StatusInfo(
            display=self.display_label, catalog=self.catalog, mode=mode,
            read_only=self.read_only, sort=tree.sort_label, sort_words=tree.sort_words,
            filter=tree.filter_text,
            marks=len(tree.marks), trash=self.trash_usage,
            job=" · ".join(self.jobs.values())))

    def push_screen(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """(No garbage collection during a new screen's first frames: see gc_pause.)"""
        pause_gc(self)
        return super().push_screen(*args, **kwargs)

    # -- filter -----------------------------------------------------------------------------

    def action_filter(self) -> None:
        self._filter_bar.display = True
        self._filter.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.tree_view.set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self._filter_bar.display = False
        self.tree_view.focus()

    def action_escape(self) -> None:
        """Esc stops a running check or verification first, then clears the filter."""
        if self.jobs_running:
            self.action_cancel_jobs()
        else:
            self.clear_filter()

    def clear_filter(self) -> None:
        self._filter.value = ""
        self.tree_view.set_filter("")
        self._filter_bar.display = False
        self.tree_view.focus()

    # -- actions ----------------------------------------------------------------------------

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        rows = key_rows([("Anywhere", self.BINDINGS), ("Tree", CheckpointTree.BINDINGS),
                         ("Details", DetailPane.BINDINGS)])
        self.push_screen(HelpScreen(rows))

    def action_rescan(self) -> None:
        self._reload_detail = True
        self.request_scan()
        self.notify("Rescanning…", timeout=1.5)

    def expand_all(self, expand: bool) -> None:
        self.tree_view.expand_all(expand)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        tree = self.tree_view
        yield SystemCommand("Refresh", "Rescan the base dir now (r)", self.action_rescan)
        yield SystemCommand("Help", "Every key (?)", self.action_help)
        yield SystemCommand("Filter", "Filter by tag, stage or step (/)", self.action_filter)
        yield SystemCommand("Clear filter", "Show every checkpoint (escape)", self.clear_filter)
        for key in SORT_KEYS:
            yield SystemCommand(f"Sort by {key}", f"Order the steps by {key}: "
                                f"{sort_name(key, SORT_NATURAL_DESC[key])} (s cycles)",
                                lambda key=key: tree.set_sort(key))
        yield SystemCommand("Reverse sort", "Reverse the order of the steps (S)",
                            tree.action_reverse_sort)
        yield SystemCommand("Clear marks", "Unmark every checkpoint (u)",
                            tree.action_clear_marks)
        yield SystemCommand("Expand all", "Show every checkpoint of every tag",
                            lambda: self.expand_all(True))
        yield SystemCommand("Collapse all", "Show only stages and tags",
                            lambda: self.expand_all(False))
        yield SystemCommand("Focus details", "Move the keyboard to the detail pane (tab)",
                            self.detail_pane.focus)
        yield SystemCommand("Open demo", "Write a fresh demo base dir and open it",
                            self.open_demo)
        yield SystemCommand("Diff", "Compare two marked checkpoints, or the highlighted one "
                            "with the previous step (d)", self.action_diff)
        yield SystemCommand("Check", "Verify the highlighted, marked, or a whole tag's "
                            "checkpoints: every byte against its CRC, NaN/Inf (c)",
                            self.action_check)
        if "check" in self.cancels:
            yield SystemCommand("Cancel check", "Stop the running check (esc); what was "
                                "checked so far is cached", self.action_cancel_jobs)
        if "plan" in self.cancels:
            yield SystemCommand("Cancel verification", "Stop verifying the deletion being "
                                "planned (esc); nothing is deleted", self.action_cancel_jobs)
        yield SystemCommand("Copy command", "Copy the nanochat command that resumes, evaluates, "
                            "chats with or fine-tunes from the highlighted checkpoint (y)",
                            self.action_copy_command)
        yield SystemCommand("Archive", "Copy the highlighted or marked checkpoints to a dir or "
                            "URL, checksummed (a)", self.action_archive)
        if self._archive_cancel is not None:
            yield SystemCommand("Cancel archive", "Stop the running archive (re-run resumes)",
                                self.action_cancel_archive)
        if not self.read_only:
            yield SystemCommand("Delete", "Delete the highlighted or marked checkpoints, after "
                                "a confirmation listing every file (x)", self.action_delete)
            yield SystemCommand("Delete optimizer shards", "Free the optimizer state of the "
                                "highlighted or marked checkpoints, keep weights (X)",
                                self.action_delete_optimizer)
            yield SystemCommand("Prune tag", "Keep last N / every K-th / best M of a tag, with "
                                "a preview (P)", self.action_prune_tag)
            yield SystemCommand("Pin / unpin", "Protect checkpoints from pruning (p)",
                                self.action_pin)
            yield SystemCommand("Note", "Attach a note to the highlighted checkpoint (n)",
                                self.action_note)
            usage = self.trash_usage
            if usage is not None and usage.files:
                yield SystemCommand("Empty trash", f"Delete the {usage.files} files "
                                    f"({human_bytes(usage.bytes)}) waiting in the base dir's "
                                    "trash, after a confirmation", self.action_empty_trash)


def run_app(base_dir: Path | str | None, demo: bool = False, poll: bool = False,
            read_only: bool = False, storage_options: dict[str, object] | None = None) -> None:
    """Entry point for the CLI: ``nanochat-ckpt [BASE_DIR|URL] [--demo] [--poll]
    [--read-only] [-o KEY=VALUE]``."""
    CkptApp(base_dir, demo=demo, poll=poll, read_only=read_only,
            storage_options=storage_options).run()


__all__ = ["CkptApp", "run_app"]
