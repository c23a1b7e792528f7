"""``y``: pick the nanochat command to copy for a checkpoint (resume, eval, chat, sft).

Each kind is one option showing the whole command; a kind that does not apply to this
checkpoint is greyed out with the reason (``NoCommand``). The dialog is dismissed with the
chosen command's shell line, which the app copies to the clipboard (OSC 52: works over SSH
and inside tmux), or None.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..store.commands import KINDS, Command, NoCommand, command_for
from ..store.layout import Checkpoint
from .dialog import Dialog

WHAT = {"resume": "resume training from this step", "eval": "evaluate it",
        "chat": "chat with it", "sft": "fine-tune from it", "rl": "fine-tune it further (RL)"}


class Choice(NamedTuple):
    kind: str  # resume, eval, chat, sft
    command: Command | None
    why_not: str = ""  # the reason when there is no command


def choices(ck: Checkpoint, base_dir: str) -> list[Choice]:
    """Every kind of command for ``ck``, or why it does not apply (reads the meta, cached)."""
    out = []
    for kind in KINDS:
        try:
            out.append(Choice(kind, command_for(ck, kind, base_dir)))
        except NoCommand as e:
            out.append(Choice(kind, None, str(e)))
        except Exception as e:  # noqa: BLE001 - an odd meta: say so, offer the others
            out.append(Choice(kind, None, f"{type(e).__name__}: {e}"))
    return out


class CommandMenu(Dialog["str | None"]):
    """The commands for one checkpoint; Enter (or 1-4) copies the highlighted one."""

    BINDINGS = [
        Binding("escape,n,q", "cancel", "Cancel"),
        Binding("1", "pick(0)", show=False),
        Binding("2", "pick(1)", show=False),
        Binding("3", "pick(2)", show=False),
        Binding("4", "pick(3)", show=False),
    ]
    FLEX = (("#commands", 4, 24),)

    def __init__(self, label: str, options: list[Choice]) -> None:
        super().__init__()
        self.label = label
        self.options = options

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]Copy a nanochat command for {self.label}[/b]\n"
                         "Enter copies it to the clipboard (works over SSH and in tmux); "
                         "Esc closes", id="title")
            yield OptionList(*[self._option(i, c) for i, c in enumerate(self.options)],
                             id="commands")

    @staticmethod
    def _option(i: int, c: Choice) -> Option:
        """``1 resume  what it does`` and, wrapped under it, the command (or why not)."""
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, width=8)
        grid.add_column()
        key = Text(f"{i + 1} {c.kind}", style="bold")
        if c.command is None:
            grid.add_row(key, Text(f"not available: {c.why_not}"))
            return Option(grid, id=c.kind, disabled=True)
        body = Text(WHAT.get(c.command.kind, c.command.kind), style="dim")
        body.append("\n")
        body.append(c.command.shell())
        if c.command.note:
            body.append(f"\n({c.command.note})", style="dim italic")
        grid.add_row(key, body)
        return Option(grid, id=c.kind)

    def on_mount(self) -> None:
        menu = self.query_one("#commands", OptionList)
        menu.focus()
        first = next((i for i, c in enumerate(self.options) if c.command is not None), None)
        menu.highlighted = first

    @on(OptionList.OptionSelected, "#commands")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_pick(event.option_index)

    def action_pick(self, index: int) -> None:
        if not 0 <= index < len(self.options):
            return
        c = self.options[index]
        if c.command is None:
            self.notify(f"{c.kind}: {c.why_not}", severity="warning")
            return
        self.dismiss(c.command.shell())

    def action_cancel(self) -> None:
        self.dismiss(None)
