"""Pre-rendered text: Rich renderables turned into lines off the UI thread, then just shown.

Rendering a checkpoint's tables costs tens of milliseconds (more for deep models). Doing it
in the worker that read the files keeps the UI thread free for key presses; the widget
only hands out stored lines.
"""

from __future__ import annotations

import io

from rich.console import Console, RenderableType
from rich.segment import Segment
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

RenderedLines = list[list[Segment]]


def render_lines(renderable: RenderableType, width: int) -> RenderedLines:
    """Render at ``width`` cells with a private console (safe in a worker thread)."""
    console = Console(width=max(width, 10), file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", legacy_windows=False, highlight=False,
                      emoji=False)
    return console.render_lines(renderable, console.options, pad=False)


class Lines(Widget):
    """Shows stored lines; its height is their number."""

    DEFAULT_CSS = """
    Lines {
        height: auto;
        width: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._strips: list[Strip] = []

    def set_lines(self, lines: RenderedLines) -> None:
        self._strips = [Strip(line) for line in lines]
        self.refresh(layout=True)

    @property
    def text(self) -> str:
        """The plain text shown (tests, debugging)."""
        return "\n".join(strip.text.rstrip() for strip in self._strips)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._strips)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return max((s.cell_length for s in self._strips), default=0)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y >= len(self._strips):
            return Strip.blank(width, base)
        return self._strips[y].adjust_cell_length(width).apply_style(base)
