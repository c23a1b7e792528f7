"""The confirm-delete modal: exact files, bytes, protections and warnings; Cancel by default."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Static

from ..fmt import human_bytes
from ..store.prune import PrunePlan
from .dialog import SHORT, Dialog

HEADS = ("file", "kind", "size", "reason")
MIN_FILE = 24  # cells: "…/d20/optim_012000_rank7.pt" still names the file
MIN_REASON = 16  # cells: a longer reason wraps over more lines of its row
SCROLLBAR = 2  # cells kept for the table's vertical scrollbar


def left_ellipsis(text: str, width: int) -> str:
    """``"base_checkpoints/d4/model_000500.pt"`` → ``"…/d4/model_000500.pt"``: the end of a
    path names the file, so whole leading directories go first, then characters."""
    if len(text) <= width:
        return text
    parts = text.split("/")
    while len(parts) > 1:
        parts.pop(0)
        short = "…/" + "/".join(parts)
        if len(short) <= width:
            return short
    return "…" + text[len(text) - width + 1:] if width > 1 else "…"


def column_widths(rows: list[tuple[str, str, str, str]], width: int) -> list[int]:
    """Widths of file, kind, size and reason that fit ``width`` cells (each column has one
    cell of padding on either side): kind and size whole; the file column, then the reason,
    give way when the table is narrow."""
    want = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADS)]
    room = width - 2 * len(HEADS)
    file_w, kind_w, size_w, reason_w = want
    over = file_w + kind_w + size_w + reason_w - room
    if over > 0:
        file_w -= min(over, max(0, file_w - min(file_w, MIN_FILE)))
        over = file_w + kind_w + size_w + reason_w - room
    if over > 0:
        reason_w -= min(over, max(0, reason_w - min(reason_w, MIN_REASON)))
        over = file_w + kind_w + size_w + reason_w - room
    if over > 0:
        file_w = max(8, file_w - over)
    return [file_w, kind_w, size_w, reason_w]


class ConfirmDelete(Dialog[bool]):
    """Show a :class:`PrunePlan` in full and return True only on an explicit yes."""

    BINDINGS = [
        Binding("y", "confirm", "Yes, delete", show=True),
        Binding("n,escape", "cancel", "Cancel", show=True),
    ]
    FLEX = (("#files", 4, 16), ("#notes", 3, 10))

    def __init__(self, plan: PrunePlan, *, trash: Path | None = None,
                 archived: set[Path] | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.trash = trash
        self.archived = archived or set()
        self.rows = [self._row(item) for item in plan.items]
        self._table_width = 0  # the width the table's columns were laid out for
        self.refills = 0  # columns laid out again after the first guess (tests)

    def _row(self, item) -> tuple[str, str, str, str]:  # type: ignore[no-untyped-def]
        try:
            shown = str(item.path.relative_to(self.plan.base_dir))
        except ValueError:
            shown = str(item.path)
        if item.path in self.archived:
            shown += "  [archived ✓]"
        return shown, item.kind, human_bytes(item.size), item.reason

    def compose(self) -> ComposeResult:
        plan = self.plan
        verb = f"Move to trash ({self.trash})" if self.trash else "Delete"
        with Vertical(id="dialog", classes="danger"):
            if plan.items:
                yield Static(f"[b]{verb} {len(plan.items)} files, "
                             f"{human_bytes(plan.bytes_freed)}[/b] "
                             f"({plan.bytes_freed:,} bytes) from {len(plan.checkpoints)} "
                             "checkpoint(s)?", id="title")
                table: DataTable[str] = DataTable(id="files", cursor_type="row",
                                                  zebra_stripes=True)
                self._fill(table, self._expected_width())  # (refilled if the guess is off)
                yield table
            else:
                yield Static("[b]Nothing to delete.[/b]", id="title")
            notes = [f"[green]protected[/] {p.checkpoint}: {p.reason}" for p in plan.protected]
            notes += [f"[yellow]warning[/] {w}" for w in plan.warnings]
            if notes:
                with VerticalScroll(id="notes"):
                    yield Static("\n".join(notes))
            with Horizontal(id="buttons"):
                yield Button("Cancel (n)", id="cancel", variant="primary")
                if plan.items:
                    label = "Trash" if self.trash else "Delete"
                    yield Button(f"{label} {human_bytes(plan.bytes_freed)} (y)", id="confirm",
                                 variant="error")

    def _expected_width(self) -> int:
        """The table's width on this terminal, from dialogs.tcss: #dialog is 90% of the
        screen wide (at most 120), less its border and padding (narrower when short)."""
        width, height = self.app.size
        if width <= 0:
            return 0
        return min(int(width * 0.9), 120) - 2 - (2 if height < SHORT else 4) - SCROLLBAR

    def _fill(self, table: DataTable[str], width: int) -> None:
        """The rows, in columns that fit ``width`` cells (0: as wide as they come)."""
        rows = self.rows
        widths = column_widths(rows, width) if width else [None] * len(HEADS)
        row = table.cursor_row
        table.clear(columns=True)
        for head, w in zip(HEADS, widths, strict=True):
            table.add_column(head, width=w)
        file_w, reason_w = widths[0], widths[3]
        for shown, kind, size, reason in rows:
            wrap = reason_w is not None and len(reason) > reason_w
            table.add_row(left_ellipsis(shown, file_w) if file_w else shown, kind, size,
                          Text(reason) if wrap else reason, height=None if wrap else 1)
        if rows:
            table.move_cursor(row=min(row, len(rows) - 1))
        self._table_width = width

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        self.call_after_refresh(self._fit_columns)

    def _fit_columns(self) -> None:
        if not self.is_attached or not self.query("#files"):
            return
        table = self.query_one("#files", DataTable)
        width = table.size.width - SCROLLBAR
        if width > 0 and width != self._table_width:
            self.refills += 1
            self._fill(table, width)
            self.call_after_refresh(self.fit)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        if self.plan.items:
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
