"""The confirm-delete modal: exact files, bytes, protections, the verdicts of the steps kept and
warnings; Cancel by default. It is dismissed with ``"delete"``, ``"trash"`` (move the files
into the base dir's trash instead, when one is offered) or None (cancelled).

A plan whose ``confirm`` is not empty (a damaged or unhealthy latest step) needs a second
explicit yes: :class:`ConfirmLatest` names each such step and why, after this modal's yes.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
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


def short_key(key: str) -> str:
    """``base_checkpoints/d3@500`` → ``base/d3@500``."""
    return key.replace("_checkpoints/", "/", 1)


def kept_line(key: str, verdict: str) -> str:
    """A kept step's verdict, as markup: green when good, red otherwise."""
    colour = "green" if verdict == "good" else "red"
    return f"[{colour}]kept[/] {escape(short_key(key))}: checked, {escape(verdict)}"


class ConfirmDelete(Dialog["str | None"]):
    """Show a :class:`PrunePlan` in full; ``"delete"`` or ``"trash"`` only on an explicit
    yes (``y``, or ``t`` when a trash dir is offered)."""

    BINDINGS = [
        Binding("y", "confirm", "Yes, delete", show=True),
        Binding("t", "trash", "Move to trash", show=True),
        Binding("n,escape", "cancel", "Cancel", show=True),
    ]
    FLEX = (("#files", 4, 16), ("#notes", 3, 10))

    def __init__(self, plan: PrunePlan, *, trash: Path | None = None,
                 archived: set[Path] | None = None) -> None:
        """``trash``: the trash dir to offer beside deleting (None: deleting only)."""
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
        with Vertical(id="dialog", classes="danger"):
            if plan.items:
                yield Static(f"[b]Delete {len(plan.items)} files, "
                             f"{human_bytes(plan.bytes_freed)}[/b] "
                             f"({plan.bytes_freed:,} bytes) from {len(plan.checkpoints)} "
                             "checkpoint(s)?", id="title")
                table: DataTable[str] = DataTable(id="files", cursor_type="row",
                                                  zebra_stripes=True)
                self._fill(table, self._expected_width())  # (refilled if the guess is off)
                yield table
            else:
                yield Static("[b]Nothing to delete.[/b]", id="title")
            yield from self._notes()
            with Horizontal(id="buttons"):
                yield Button("Cancel (n)", id="cancel", variant="primary")
                if plan.items and self.trash is not None:
                    yield Button(f"Trash {human_bytes(plan.bytes_freed)} (t)", id="trash",
                                 variant="warning")
                if plan.items:
                    yield Button(f"Delete {human_bytes(plan.bytes_freed)} (y)", id="confirm",
                                 variant="error")

    def _notes(self) -> ComposeResult:
        plan = self.plan
        notes = [f"[red]needs a second yes[/] {escape(c)}" for c in plan.confirm]
        notes += [f"[green]protected[/] {escape(short_key(p.checkpoint))}: {escape(p.reason)}"
                  for p in plan.protected]
        notes += [kept_line(k, v) for k, v in plan.kept_verdicts.items()]
        notes += [f"[yellow]warning[/] {escape(w)}" for w in plan.warnings]
        if plan.items and self.trash is not None:
            notes.append(f"[dim]t moves the files to {escape(str(self.trash))} instead: "
                         "nothing is freed until the trash is emptied (ctrl+p → Empty "
                         "trash)[/]")
        if notes:
            with VerticalScroll(id="notes"):
                yield Static("\n".join(notes))

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
        elif event.button.id == "trash":
            self.action_trash()
        else:
            self.action_cancel()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "trash":
            return self.trash is not None and bool(self.plan.items)
        return True

    def action_confirm(self) -> None:
        if self.plan.items:
            self.dismiss("delete")

    def action_trash(self) -> None:
        if self.plan.items and self.trash is not None:
            self.dismiss("trash")

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmLatest(Dialog["str | None"]):
    """The second yes for deleting a tag's latest step that a check found damaged or
    unhealthy (nanochat resumes, chats and evaluates from the latest step). Dismissed with
    ``"all"`` (delete it too), ``"rest"`` (keep it, delete the others) or None (nothing)."""

    BINDINGS = [
        Binding("y", "all", "Yes, delete it too", show=True),
        Binding("k", "rest", "Keep it, delete the rest", show=True),
        Binding("n,escape", "cancel", "Cancel", show=True),
    ]
    FLEX = (("#notes", 3, 12),)

    def __init__(self, plan: PrunePlan) -> None:
        super().__init__()
        self.plan = plan
        self.keys = latest_keys(plan)
        self.others = [i for i in plan.items if i.checkpoint not in self.keys]

    def compose(self) -> ComposeResult:
        names = ", ".join(short_key(k) for k in self.keys) or "the latest step"
        lines = [f"[b]{escape(names)} {'is' if len(self.keys) < 2 else 'are'} the latest step "
                 f"of {'its' if len(self.keys) < 2 else 'their'} tag: delete "
                 f"{'it' if len(self.keys) < 2 else 'them'}?[/b]"]
        with Vertical(id="dialog", classes="danger"):
            yield Static("\n".join(lines), id="title")
            with VerticalScroll(id="notes"):
                rest = ("\nk keeps it and deletes only the other "
                        f"{len({i.checkpoint for i in self.others})} step(s) of the plan."
                        if self.others else "")
                yield Static("\n".join(f"[red]•[/] {escape(c)}" for c in self.plan.confirm)
                             + "\n\nnanochat resumes, chats and evaluates from the latest "
                             "step; once it is gone, the step before it is the latest." + rest)
            with Horizontal(id="buttons"):
                yield Button("Cancel (n)", id="cancel", variant="primary")
                if self.others:
                    yield Button("Delete the rest (k)", id="rest", variant="warning")
                yield Button("Delete it too (y)", id="all", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"all": self.action_all, "rest": self.action_rest}.get(
            event.button.id or "", self.action_cancel)()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return bool(self.others) if action == "rest" else True

    def action_all(self) -> None:
        self.dismiss("all")

    def action_rest(self) -> None:
        if self.others:
            self.dismiss("rest")

    def action_cancel(self) -> None:
        self.dismiss(None)


def latest_keys(plan: PrunePlan) -> list[str]:
    """The checkpoints of the plan that need a second yes (``plan.confirm_keys``)."""
    return [k for k in plan.checkpoints if k in plan.confirm_keys]


def without(plan: PrunePlan, keys: list[str]) -> PrunePlan:
    """The plan less the files of ``keys`` (and no second confirmation left about them)."""
    from dataclasses import replace

    kept = [(c, k) for c, k in zip(plan.confirm, plan.confirm_keys, strict=True)
            if k not in keys]
    return replace(plan, items=[i for i in plan.items if i.checkpoint not in keys],
                   confirm=[c for c, _ in kept], confirm_keys=[k for _, k in kept])
