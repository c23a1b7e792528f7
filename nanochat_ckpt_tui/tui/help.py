"""The help screen (``?``): every key, gathered from the widgets' own bindings."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# keys that come from Textual's own widgets or from the terminal, described for people
EXTRA_KEYS: list[tuple[str, str, str]] = [
    ("Tree", "↑ ↓", "move the cursor"),
    ("Tree", "pgup pgdn", "move a page"),
    ("Tree", "click", "select a row (a stage or tag also expands or collapses)"),
    ("Tree", "shift+↑ shift+↓", "previous / next sibling"),
    ("Tree", "space on a tag", "mark every step of the tag (those the filter shows); again "
                               "unmarks them"),
    ("Tree", "x X on a tag", "delete the tag's steps (or their optimizer shards); the latest "
                             "and pinned steps are kept, the confirmation lists everything"),
    ("Tree", "c on a tag or stage", "check every step of it (those the filter shows): every "
                                    "byte against its CRC, NaN/Inf in every tensor; progress "
                                    "in the status bar, esc cancels"),
    ("Tree", "y", "copy the nanochat command (resume, eval, chat, sft) for the highlighted "
                  "checkpoint; works over SSH and in tmux (OSC 52)"),
    ("Tree", "sort order", "s: the next key, in its natural order: step ↑ (first step on "
                           "top) → size ↓ (largest first) → val_bpb ↑ (best first) → age ↓ "
                           "(newest first) → step. S: the other direction. ↑ is ascending "
                           "for every key (smallest, lowest, oldest on top), ↓ descending"),
    ("Anywhere", "tab / shift+tab", "switch between the tree and the detail pane"),
    ("Anywhere", "ctrl+p", "command palette: every action, themes, screenshot"),
    ("Anywhere", "ctrl+c", "quit (copies instead when text is selected)"),
    ("Delete dialog", "y / t / n", "delete / move to the base dir's trash (freed when emptied: "
                                   "ctrl+p → Empty trash) / cancel; a damaged latest step asks "
                                   "a second time"),
    ("Details", "↑ ↓ pgup pgdn home end", "scroll"),
    ("Filter", "enter", "keep the filter and go back to the tree"),
    ("Filter", "escape", "clear the filter"),
    ("Filter", "terms", "tag or stage name, step digits, or >N <N >=N <=N =N on the step"),
    ("Filter", "matches", "the tags holding matching steps open (and close again after); "
                          "the filter bar counts the matches"),
]


def _key_names(key: str) -> str:
    names = {"question_mark": "?", "slash": "/", "space": "space", "escape": "esc",
             "left_square_bracket": "[", "right_square_bracket": "]"}
    return " ".join(names.get(k, k) for k in key.split(","))


def key_rows(sources: list[tuple[str, list[BindingType]]],
             extra: list[tuple[str, str, str]] | None = None) -> list[tuple[str, str, str]]:
    """(where, keys, what) for every binding with a description, plus the keys that come
    from Textual's widgets (``extra``; the main screen's by default)."""
    rows: list[tuple[str, str, str]] = []
    for where, bindings in sources:
        for b in bindings:
            if isinstance(b, Binding) and b.description:
                rows.append((where, _key_names(b.key), b.description))
    return rows + (EXTRA_KEYS if extra is None else extra)


class HelpScreen(ModalScreen[None]):
    """A scrollable table of keys; any of escape, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }

    #help-box {
        width: 90%;
        max-width: 110;
        height: 90%;
        border: round $primary;
        border-title-align: center;
        background: $surface;
        padding: 0 1;
    }

    #help-intro {
        margin-bottom: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close help"),
    ]

    def __init__(self, rows: list[tuple[str, str, str]], intro: str | None = None) -> None:
        super().__init__()
        self.rows = rows
        self.intro = intro

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2), header_style="bold", expand=True)
        table.add_column("where", style="dim", no_wrap=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        for where, key, what in self.rows:
            table.add_row(where, key, what)
        intro = Text(self.intro) if self.intro is not None else Text.assemble(
            ("nanochat-ckpt", "bold"),
            " — checkpoints under the base dir, live while training writes.\n",
            ("Badges: latest · writing (never opened) · corrupt · unreadable · orphan (meta "
             "without model) · bad meta (nanochat cannot load it) · no meta · incomplete "
             "(optimizer shards missing) · verified / damaged / unhealthy (what a check found, "
             "c) · archived.", "dim"))
        with VerticalScroll(id="help-box"):
            yield Static(intro, id="help-intro")
            yield Static(table, id="help-table")
            yield Static(Text("escape, q or ? closes this help", style="dim"))
