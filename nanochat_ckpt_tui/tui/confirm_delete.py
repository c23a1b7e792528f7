"""The confirm-delete modal: exact files, bytes, protections and warnings; Cancel by default."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Static

from ..fmt import human_bytes
from ..store.prune import PrunePlan


class ConfirmDelete(ModalScreen[bool]):
    """Show a :class:`PrunePlan` in full and return True only on an explicit yes."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [
        Binding("y", "confirm", "Yes, delete", show=True),
        Binding("n,escape", "cancel", "Cancel", show=True),
    ]

    def __init__(self, plan: PrunePlan, *, trash: Path | None = None,
                 archived: set[Path] | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.trash = trash
        self.archived = archived or set()

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
                table.add_columns("file", "kind", "size", "reason")
                for item in plan.items:
                    try:
                        shown = str(item.path.relative_to(plan.base_dir))
                    except ValueError:
                        shown = str(item.path)
                    if item.path in self.archived:
                        shown += "  [archived ✓]"
                    table.add_row(shown, item.kind, human_bytes(item.size), item.reason)
                yield table
            else:
                yield Static("[b]Nothing to delete.[/b]", id="title")
            notes = [f"[green]protected[/] {p.checkpoint}: {p.reason}" for p in plan.protected]
            notes += [f"[yellow]warning[/] {w}" for w in plan.warnings]
            if notes:
                yield Static("\n".join(notes), id="notes")
            with Horizontal(id="buttons"):
                yield Button("Cancel (n)", id="cancel", variant="primary")
                if plan.items:
                    label = "Trash" if self.trash else "Delete"
                    yield Button(f"{label} {human_bytes(plan.bytes_freed)} (y)", id="confirm",
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
        if self.plan.items:
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
