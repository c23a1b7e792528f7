"""First run: no base dir yet. Offer the demo (written to a scratch dir), or quit."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class WelcomeScreen(ModalScreen[bool]):
    """Dismissed with True to open the demo, False to quit."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "demo", "Open the demo"),
        Binding("escape,q", "quit_app", "Quit"),
    ]

    def __init__(self, base_dir: Path, display: str) -> None:
        super().__init__()
        self.base_dir = base_dir
        self.display_label = display

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
            with Horizontal(id="welcome-buttons"):
                yield Button("Open the demo", id="demo", variant="primary")
                yield Button("Quit", id="quit")

    def on_mount(self) -> None:
        self.query_one("#demo", Button).focus()

    @on(Button.Pressed, "#demo")
    def action_demo(self) -> None:
        self.dismiss(True)

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

    from ..store.demo import write_demo

    if root.exists():
        if (root / DEMO_MARKER).is_file():
            shutil.rmtree(root)
        else:
            root = Path(tempfile.mkdtemp(prefix="nanochat-ckpt-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("written by nanochat-ckpt --demo; safe to delete\n")
    return write_demo(root, now=now)
