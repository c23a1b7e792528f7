"""Emptying the base dir's trash: what goes (each file with its bytes), Cancel by default.

Files deleted with "Trash" wait in ``<base>/.nanochat-ckpt-trash`` (same filesystem, outside
every stage dir, so nanochat and the scan never see them); their bytes are freed only when the
trash is emptied, here or with ``rm -r``.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Static

from ..fmt import human_bytes
from .dialog import Dialog

MAX_LISTED = 5000  # rows of the list (the total counts every file)


def trash_files(root: Path) -> list[tuple[str, int]]:
    """(path under the trash, bytes) of every file in it, links not followed (call in a
    worker: a trash can hold thousands of files)."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            try:
                size = os.lstat(path).st_size
            except OSError:
                continue
            out.append((os.path.relpath(path, root), size))
    out.sort()
    return out


class EmptyTrashDialog(Dialog[bool]):
    """Returns True only on an explicit yes."""

    BINDINGS = [
        Binding("y", "confirm", "Yes, empty it", show=True),
        Binding("n,escape", "cancel", "Cancel", show=True),
    ]
    FLEX = (("#files", 4, 16),)

    def __init__(self, root: Path, files: list[tuple[str, int]]) -> None:
        super().__init__()
        self.root = root
        self.files = files

    @property
    def total(self) -> int:
        return sum(size for _, size in self.files)

    def compose(self) -> ComposeResult:
        n = len(self.files)
        with Vertical(id="dialog", classes="danger"):
            yield Static(f"[b]Empty the trash: delete {n} file{'' if n == 1 else 's'}, "
                         f"{human_bytes(self.total)}[/b] ({self.total:,} bytes) for good?\n"
                         f"[dim]{escape(str(self.root))}[/]", id="title")
            table: DataTable[str] = DataTable(id="files", cursor_type="row", zebra_stripes=True)
            table.add_column("file")
            table.add_column("size")
            for name, size in self.files[:MAX_LISTED]:
                table.add_row(name, human_bytes(size))
            if n > MAX_LISTED:
                table.add_row(f"… and {n - MAX_LISTED} more files", "")
            yield table
            with Horizontal(id="buttons"):
                yield Button("Cancel (n)", id="cancel", variant="primary")
                yield Button(f"Empty trash, free {human_bytes(self.total)} (y)", id="confirm",
                             variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
