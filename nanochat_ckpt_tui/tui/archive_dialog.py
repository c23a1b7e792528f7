"""Ask where to archive the selected checkpoints (remembered for next time)."""

from __future__ import annotations

from typing import NamedTuple

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Static

from .dialog import Dialog


class ArchiveRequest(NamedTuple):
    dest: str
    with_optimizer: bool


class ArchiveDialog(Dialog["ArchiveRequest | None"]):
    """A destination (local dir or fsspec URL) and whether to include optimizer shards."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str, last: str | None) -> None:
        super().__init__()
        self.what = what
        self.last = last or ""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="small"):
            yield Static(f"[b]Archive {self.what}[/b]\nto a local dir or a URL (s3://bucket/path, "
                         "ssh://host/path, …); files are checksummed and a re-run resumes",
                         id="title")
            yield Input(self.last, id="dest", placeholder="/mnt/backup/nanochat or s3://…")
            yield Checkbox("include optimizer shards (needed to resume training)", False,
                           id="with_optimizer")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Archive", id="archive", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#dest", Input).focus()

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_archive()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "archive":
            self.action_archive()
        else:
            self.action_cancel()

    def action_archive(self) -> None:
        dest = self.query_one("#dest", Input).value.strip()
        if not dest:
            self.notify("Type a destination first", severity="warning")
            return
        self.dismiss(ArchiveRequest(dest, self.query_one("#with_optimizer", Checkbox).value))

    def action_cancel(self) -> None:
        self.dismiss(None)
