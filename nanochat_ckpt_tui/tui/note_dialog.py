"""A one-line dialog to edit a checkpoint's note (empty clears it)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from ..store.pins import MAX_NOTE
from .dialog import Dialog


class NoteDialog(Dialog["str | None"]):
    """Returns the new note ('' clears it), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str, note: str | None) -> None:
        super().__init__()
        self.what = what
        self.note = note or ""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="small"):
            yield Static(f"[b]Note for {self.what}[/b]  (Enter saves, Esc cancels, empty clears)")
            yield Input(self.note, id="note", max_length=MAX_NOTE,
                        placeholder="best so far, sent to eval, …")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def save(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
