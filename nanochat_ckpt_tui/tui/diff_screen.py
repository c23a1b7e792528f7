"""The diff screen: progress while the engine streams both files, then the report.

The comparison runs in a thread worker (numpy only, bounded memory); Esc or q cancels it
through a threading.Event that the engine checks between chunks, and closes the screen (back
to the tree: q never quits from here; ctrl+c and the palette do). ``1``-``4`` pick the
report's tabs, ``[`` / ``]`` the previous / next one; ``?`` lists this screen's keys.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, WorkerState

from ..fmt import human_age, human_bytes
from ..store.layout import Checkpoint
from .help import HelpScreen, key_rows
from .render import HIDDEN_METRICS, metric_label

SORTS = ("rel change", "cosine", "max abs", "name")
TABS = ("tab-tensors", "tab-layers", "tab-keys", "tab-meta")
TAB_KEYS = Binding.Group("tab", compact=True)
PREV_NEXT = Binding.Group("prev/next tab", compact=True)
# keys from Textual's widgets, for the help screen
EXTRA_KEYS: list[tuple[str, str, str]] = [
    ("Tensors", "↑ ↓ pgup pgdn", "move through the tensors"),
    ("Filter", "escape", "clear the filter (a second escape closes the diff)"),
    ("Layers, Keys, Meta", "↑ ↓ pgup pgdn", "scroll"),
    ("Anywhere", "tab / shift+tab", "move between the tab bar, the filter and the table"),
    ("Anywhere", "ctrl+p", "command palette (Quit is there)"),
    ("Anywhere", "ctrl+c", "quit the app (copies instead when text is selected)"),
]


def meta_label(path: str) -> str:
    """``metrics.train_loss`` → ``metrics.train loss (debiased EMA)``."""
    head, _, key = path.partition(".")
    return f"metrics.{metric_label(key)}" if head == "metrics" and key else path


def hidden_meta(path: str) -> bool:
    head, _, key = path.partition(".")
    return head == "metrics" and key in HIDDEN_METRICS


def sci(v: float | None) -> str:
    return "—" if v is None else f"{v:.3e}"


def cos(v: float | None) -> str:
    return "—" if v is None else f"{v:.6f}"


def side_label(ck: Checkpoint) -> str:
    return f"{ck.stage.removesuffix('_checkpoints')}/{ck.tag}@{ck.step}"


class DiffScreen(Screen[None]):
    """Compare checkpoint ``a`` to ``b``."""

    CSS_PATH = "diff.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close the diff (back to the tree)", show=False),
        Binding("1", "tab(0)", "Tensors tab", group=TAB_KEYS),
        Binding("2", "tab(1)", "Layers tab", group=TAB_KEYS),
        Binding("3", "tab(2)", "Keys tab", group=TAB_KEYS),
        Binding("4", "tab(3)", "Meta tab", group=TAB_KEYS),
        Binding("left_square_bracket", "next_tab(-1)", "Previous tab", group=PREV_NEXT),
        Binding("right_square_bracket", "next_tab(1)", "Next tab", group=PREV_NEXT),
        Binding("s", "sort", "Sort"),
        Binding("slash", "filter", "Filter"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(self, a: Checkpoint, b: Checkpoint, *, chunk_elems: int | None = None) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.chunk_elems = chunk_elems
        self.cancel = threading.Event()
        self.report = None
        self.error: str | None = None
        self.sort_index = 0
        self.started = 0.0

    def compose(self) -> ComposeResult:
        yield Static(f"[b]A[/b] {side_label(self.a)}   [b]B[/b] {side_label(self.b)}",
                     id="diff-header")
        with Vertical(id="diff-running"):
            yield Static("reading both checkpoints…", id="diff-status")
            yield ProgressBar(id="diff-progress", show_eta=True)
        with TabbedContent(id="diff-tabs"):
            with TabPane("Tensors", id="tab-tensors"):
                yield Input(placeholder="filter tensors by name (/)", id="diff-filter")
                yield DataTable(id="diff-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Layers", id="tab-layers"), VerticalScroll():
                yield Static(id="diff-layers")
            with TabPane("Keys", id="tab-keys"), VerticalScroll():
                yield Static(id="diff-keys")
            with TabPane("Meta", id="tab-meta"), VerticalScroll():
                yield Static(id="diff-meta")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#diff-tabs").display = False
        table = self.query_one("#diff-table", DataTable)
        table.add_columns("tensor", "rel change", "cosine", "max |B−A|", "mean |B−A|",
                          "NaN/Inf")
        self.started = time.monotonic()
        self.compute()

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def compute(self):
        from ..store.diff import diff

        kwargs = {"chunk_elems": self.chunk_elems} if self.chunk_elems else {}
        return diff(self.a, self.b, progress=self._progress_from_thread, cancel=self.cancel,
                    **kwargs)

    def _progress_from_thread(self, done: int, total: int) -> None:
        if not self.cancel.is_set():
            self.app.call_from_thread(self._progress, done, total)

    def _progress(self, done: int, total: int) -> None:
        self.query_one("#diff-progress", ProgressBar).update(total=total or 1, progress=done)
        self.query_one("#diff-status", Static).update(
            f"read {human_bytes(done)} of {human_bytes(total)} · Esc cancels")

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "diff":
            return
        if event.state == WorkerState.SUCCESS:
            self.report = event.worker.result
            self.show_report()
        elif event.state == WorkerState.ERROR:
            from ..store.diff import DiffCancelled

            err = event.worker.error
            if isinstance(err, DiffCancelled):
                return
            self.error = str(err)
            self.query_one("#diff-status", Static).update(f"[red]cannot diff:[/] {err}")
            self.query_one("#diff-progress").display = False

    # ------------------------------------------------------------------ report

    def show_report(self) -> None:
        r = self.report
        self.query_one("#diff-running").display = False
        self.query_one("#diff-tabs").display = True
        a, b = r.a, r.b
        lines = [f"[b]A[/b] {side_label(self.a)}   [b]B[/b] {side_label(self.b)}"]
        parts = []
        if a.val_bpb is not None and b.val_bpb is not None:
            d = b.val_bpb - a.val_bpb
            color = "green" if d < 0 else "red"
            parts.append(f"val_bpb {a.val_bpb:.4f} → {b.val_bpb:.4f} [{color}]({d:+.4f})[/]")
        if a.mtime and b.mtime:
            parts.append(f"{human_age(abs(b.mtime - a.mtime))} apart")
        if a.size is not None and b.size is not None:
            parts.append(f"{human_bytes(a.size)} → {human_bytes(b.size)}")
        o = r.overall
        parts.append(f"overall Δ {sci(o.rel_change)}, cos {cos(o.cosine)}")
        lines.append("   ".join(parts))
        if r.identical:
            lines.append("[green]identical: same keys, shapes, dtypes and values[/]")
        self.query_one("#diff-header", Static).update("\n".join(lines))
        self.fill_table()
        self.query_one("#diff-layers", Static).update(self.layer_chart())
        self.query_one("#diff-keys", Static).update(self.keys_text())
        self.query_one("#diff-meta", Static).update(self.meta_text())
        self.query_one("#diff-table", DataTable).focus()

    def fill_table(self) -> None:
        if self.report is None:
            return
        table = self.query_one("#diff-table", DataTable)
        table.clear()
        needle = self.query_one("#diff-filter", Input).value.strip().lower()
        rows = [t for t in self.report.tensors if needle in t.name.lower()]
        key = SORTS[self.sort_index]
        if key == "rel change":
            rows.sort(key=lambda t: -(t.rel_change or 0))
        elif key == "cosine":
            rows.sort(key=lambda t: t.cosine if t.cosine is not None else 2)
        elif key == "max abs":
            rows.sort(key=lambda t: -(t.max_abs_diff or 0))
        for t in rows:
            bad = t.nan_a + t.inf_a + t.nan_b + t.inf_b
            nonfinite = f"[red]{t.nan_a + t.inf_a}→{t.nan_b + t.inf_b}[/]" if bad else ""
            table.add_row(t.name, sci(t.rel_change), cos(t.cosine), sci(t.max_abs_diff),
                          sci(t.mean_abs_diff), nonfinite if t.compared else (t.note or ""),
                          key=t.name)
        self.query_one("#diff-filter", Input).border_title = (
            f"{len(rows)} of {len(self.report.tensors)} tensors · sorted by {key} (s)")

    def layer_chart(self) -> str:
        r = self.report
        groups = r.groups  # every tensor once: the layers, then the rest by kind
        if not groups:
            return "no layers in common"
        peak = max((g.rel_change or 0) for g in groups) or 1.0
        width = 30
        out = ["[b]relative change ‖B−A‖/‖A‖ per layer[/b]"]
        for g in groups:
            v = g.rel_change or 0
            filled = v / peak * width
            bar = "█" * int(filled) + ("▌" if filled - int(filled) >= 0.5 else "")
            out.append(f"{g.name:<18} {bar:<{width + 1}} {sci(g.rel_change)}  cos {cos(g.cosine)}")
        return "\n".join(out)

    def keys_text(self) -> str:
        r = self.report
        out = []
        for k in r.only_a:
            out.append(f"[red]- removed[/] {k.name} {list(k.shape)} {k.dtype}")
        for k in r.only_b:
            out.append(f"[green]+ added[/]   {k.name} {list(k.shape)} {k.dtype}")
        for c in r.changed:
            out.append(f"[yellow]~ changed[/] {c.name} {list(c.shape_a)} {c.dtype_a} → "
                       f"{list(c.shape_b)} {c.dtype_b}")
        return "\n".join(out) or "same keys, shapes and dtypes on both sides"

    def meta_text(self) -> str:
        """The meta's differences; the metrics named as the detail pane names them (the
        train loss is the debiased EMA; the raw EMA is left to the JSON)."""
        r = self.report
        out = [f"{escape(meta_label(m.path))}: {escape(repr(m.a))} → {escape(repr(m.b))}"
               for m in r.meta_changes if not hidden_meta(m.path)]
        out += [f"[dim]note: {n}[/]" for n in r.notes]
        return "\n".join(out) or "no differences in meta"

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("tab", "next_tab", "sort", "filter"):
            return self.report is not None  # (no tabs while reading: hidden till then)
        return True

    def action_tab(self, index: int) -> None:
        tabs = self.query_one("#diff-tabs", TabbedContent)
        tabs.active = TABS[index]
        target = self.query_one("#diff-table", DataTable) if index == 0 else \
            self.query_one(f"#{TABS[index]} VerticalScroll", VerticalScroll)
        target.focus()  # (↑↓ move in the tab shown, not in a hidden one)

    def action_next_tab(self, step: int) -> None:
        active = self.query_one("#diff-tabs", TabbedContent).active
        i = TABS.index(active) if active in TABS else 0
        self.action_tab((i + step) % len(TABS))

    def action_help(self) -> None:
        rows = key_rows([("Diff", self.BINDINGS)], extra=EXTRA_KEYS)
        self.app.push_screen(HelpScreen(rows, intro=(
            f"Diff of {side_label(self.a)} (A) and {side_label(self.b)} (B): how the weights "
            "moved from A to B, per tensor, per layer, in the keys and in the meta.")))

    @on(Input.Changed, "#diff-filter")
    def filter_changed(self) -> None:
        self.fill_table()

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.fill_table()

    def action_filter(self) -> None:
        if self.report is not None:
            self.query_one("#diff-tabs", TabbedContent).active = "tab-tensors"
            self.query_one("#diff-filter", Input).focus()

    def action_close(self) -> None:
        """Esc: clear the filter if it has text, else close; q (never typed in the filter)
        closes."""
        focused = self.focused
        if isinstance(focused, Input) and focused.value:
            focused.value = ""
            return
        self.cancel.set()
        self.dismiss(None)

    def on_unmount(self) -> None:
        self.cancel.set()
