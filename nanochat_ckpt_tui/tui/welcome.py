"""First run: no base dir yet. Offer the demo (written to a scratch dir), or quit.

The demo is written with real ``torch.save`` files. "Open the demo" first makes sure torch
loads, in a worker (importing torch takes a moment): a missing or broken torch is said in this
screen, in the same words as ``nanochat-ckpt demo`` (:class:`~..store.demo.TorchMissing`),
and the screen stays, with Quit; only then is the screen dismissed for the app to write the
demo. Whatever the worker does (returns, raises), its end reaches the screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static
from textual.worker import Worker, WorkerState

CHECKING = "Loading PyTorch to write the demo…"


def torch_problem() -> str | None:
    """Why the demo cannot be written (torch missing or broken: one line), or None."""
    from ..store.demo import TorchMissing, import_torch

    try:
        import_torch()
    except TorchMissing as e:
        return str(e)
    return None


class WelcomeScreen(ModalScreen[bool]):
    """Dismissed with True to open the demo (torch loads), False to quit."""

    DEFAULT_CSS = """
    #welcome-status { height: auto; margin-top: 1; }
    #welcome-status.-hidden { display: none; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "demo", "Open the demo"),
        Binding("escape,q", "quit_app", "Quit"),
    ]

    def __init__(self, base_dir: Path, display: str) -> None:
        super().__init__()
        self.base_dir = base_dir
        self.display_label = display
        self.checking = False  # the torch check is running
        self.status_text = ""  # what the status line says, plain (empty while hidden)

    def compose(self) -> ComposeResult:
        text = Text.assemble(
            ("No checkpoints here yet\n\n", "bold"),
            "There is no nanochat base dir at ", (self.display_label, "bold"), ".\n\n",
            "nanochat writes checkpoints under $NANOCHAT_BASE_DIR (default "
            "~/.cache/nanochat). Start nanochat-ckpt with the right dir "
            "(nanochat-ckpt /path/to/base) or set NANOCHAT_BASE_DIR; this screen closes "
            "by itself when the dir appears.\n\n",
            "Or look around a small demo: a few real checkpoints in nanochat's layout, "
            "written to a scratch dir (takes a few seconds).",
        )
        with Vertical(id="welcome-box"):
            yield Static(text, id="welcome-text")
            yield Static("", id="welcome-status", classes="-hidden")
            with Horizontal(id="welcome-buttons"):
                yield Button("Open the demo", id="demo", variant="primary")
                yield Button("Quit", id="quit")

    def on_mount(self) -> None:
        self.query_one("#demo", Button).focus()

    @on(Button.Pressed, "#demo")
    def action_demo(self) -> None:
        if self.checking:
            return
        self.checking = True
        self._status(CHECKING, Text(CHECKING, style="italic"))
        self._check_torch()

    def _status(self, plain: str, text: Text) -> None:
        self.status_text = plain
        status = self.query_one("#welcome-status", Static)
        status.update(text)
        status.remove_class("-hidden")

    @work(thread=True, group="welcome-torch", exit_on_error=False)
    def _check_torch(self) -> str | None:
        return torch_problem()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The torch check ended: success dismisses the screen (the app writes the demo); a
        missing or broken torch, or any failure of the worker, is shown here."""
        if event.worker.group != "welcome-torch" or event.state not in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self.checking = False
        if event.state is WorkerState.SUCCESS and event.worker.result is None:
            if self.is_current:  # (not when the app closed the screen meanwhile)
                self.dismiss(True)
            return
        if event.state is WorkerState.SUCCESS:
            why = str(event.worker.result)
        elif event.state is WorkerState.ERROR:
            err = event.worker.error
            why = f"{type(err).__name__}: {err}"
        else:
            why = "cancelled"
        self._status(f"Cannot write the demo: {why}",
                     Text.assemble(("Cannot write the demo: ", "bold red"), why))
        self.query_one("#quit", Button).focus()

    @on(Button.Pressed, "#quit")
    def action_quit_app(self) -> None:
        self.dismiss(False)


DEMO_MARKER = ".nanochat-ckpt-demo"


def default_demo_root() -> Path:
    """``$XDG_CACHE_HOME/nanochat-ckpt-demo``, else ``~/.cache/nanochat-ckpt-demo``."""
    import os

    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "nanochat-ckpt-demo"


def write_fresh_demo(root: Path, now: float | None = None) -> Path:
    """Write a fresh demo base dir at ``root`` and return it.

    An old demo there (recognised by its marker file) is replaced; anything else at ``root``
    is left alone and the demo goes to a new temporary dir instead. Imports torch.
    """
    import shutil
    import tempfile

    from ..store.demo import import_torch, write_demo

    import_torch()  # TorchMissing (one line) before anything is written or replaced
    if root.exists():
        if (root / DEMO_MARKER).is_file():
            shutil.rmtree(root)
        else:
            root = Path(tempfile.mkdtemp(prefix="nanochat-ckpt-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("written by nanochat-ckpt --demo; safe to delete\n")
    return write_demo(root, now=now)
