"""Pre-rendered text: Rich renderables turned into lines off the UI thread, then just shown.

Rendering a checkpoint's tables costs tens of milliseconds (more for deep models). Doing it
in the worker that read the files keeps the UI thread free for key presses; the view only
hands out stored lines.

The view is one line-API widget (not a scroll container holding a child): new lines are drawn
in one frame (a child's new height used to take a second layout pass and a second full
repaint when the scrollbar came or went), each screen row is one run of output (the
container's padding and the child were separate runs, each with its own cursor move and
colours), and when the lines keep their number only the rows that changed are sent: steps
of one tag differ in a few rows. Over SSH every row is a few hundred bytes.
"""

from __future__ import annotations

import io

from rich.console import Console, RenderableType
from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

RenderedLines = list[list[Segment]]


def render_lines(renderable: RenderableType, width: int) -> RenderedLines:
    """Render at ``width`` cells with a private console (safe in a worker thread)."""
    console = Console(width=max(width, 10), file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", legacy_windows=False, highlight=False,
                      emoji=False)
    return console.render_lines(renderable, console.options, pad=False)


def changed_runs(old: list[Strip], new: list[Strip], start: int, stop: int) -> list[range]:
    """The runs of rows in ``start:stop`` whose strips differ between ``old`` and ``new``."""
    runs: list[range] = []
    first = None
    for y in range(start, stop + 1):
        differs = y < stop and (old[y] if y < len(old) else None) != \
            (new[y] if y < len(new) else None)
        if differs and first is None:
            first = y
        elif not differs and first is not None:
            runs.append(range(first, y))
            first = None
    return runs


class LinesView(ScrollView):
    """Shows stored lines, scrollable; redraws only the rows that changed."""

    DEFAULT_CSS = """
    LinesView {
        overflow-x: hidden;
        overflow-y: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._strips: list[Strip] = []

    @property
    def text(self) -> str:
        """The plain text shown (tests, debugging)."""
        return "\n".join(strip.text.rstrip() for strip in self._strips)

    def set_lines(self, lines: RenderedLines, width: int, *, top: bool = False) -> None:
        """Show ``lines`` (rendered ``width`` cells wide); ``top``: from the first line."""
        # (runs of one style joined: a table cell is often several segments of one style,
        # and Textual sends each segment with its full colours: 20-30% of a step's bytes)
        old, new = self._strips, [Strip(line).simplify() for line in lines]
        self._strips = new
        size = Size(width, len(new))
        if size != self.virtual_size:
            # No layout pass for a new height (the reactive would ask for one, and a
            # ScrollView resends its scrollbar in a frame of its own after each): size the
            # scrollbar here, in this frame. Only a scrollbar that comes or goes takes a
            # layout (and that extra frame, one column).
            self.set_reactive(LinesView.virtual_size, size)
            self._scroll_update(size)
        y = self.scroll_offset.y
        if (top and y) or y > self.max_scroll_y:
            self.scroll_to(y=0 if top else self.max_scroll_y, animate=False)  # (redraws all)
            return
        # Only the rows on screen that differ, a longer or shorter view too (blank rows stay)
        for run in changed_runs(old, new, y, y + self.scrollable_content_region.height):
            self.refresh_lines(run.start, len(run))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = scroll_y + y
        if index >= len(self._strips):
            return Strip.blank(width, base)
        return self._strips[index].crop_extend(scroll_x, scroll_x + width, base) \
            .apply_style(base)
