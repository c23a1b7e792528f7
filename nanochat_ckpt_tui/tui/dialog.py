"""The modal dialogs' common frame: centered, and always fitting the terminal.

A dialog is a ``#dialog`` container of at most 90% of the screen's height. In a short
terminal (fewer than :data:`SHORT` rows) it is drawn tighter (less padding; inputs,
checkboxes and buttons one row tall instead of three), and its scrolling parts (``FLEX``:
a file list, a preview) get only the rows left once the fixed parts (title, fields,
buttons) have theirs, so the buttons are always on screen and the lists scroll.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.screen import ModalScreen, ScreenResultType
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input

SHORT = 30  # rows: below this, dialogs are drawn compact
HEIGHT = 0.9  # #dialog's max-height (dialogs.tcss)


class Dialog(ModalScreen[ScreenResultType]):
    """A modal screen holding one ``#dialog`` container (see the module's docstring)."""

    CSS_PATH = "dialogs.tcss"
    # (selector, fewest rows, most rows) of the parts that scroll; the later give way first
    FLEX: ClassVar[tuple[tuple[str, int, int], ...]] = ()

    def on_resize(self, event: events.Resize) -> None:
        short = event.size.height < SHORT
        self.set_class(short, "-short")
        for widget in self.query("Input, Checkbox, Button"):
            if isinstance(widget, Input | Checkbox | Button):
                widget.compact = short
        self.call_after_refresh(self.fit)

    def fit_soon(self) -> None:
        """Fit after the next refresh, and once more after the one after it: a scrolling
        part whose content just changed knows its new height only once it is laid out."""
        def twice() -> None:
            self.fit()
            self.call_after_refresh(self.fit)

        self.call_after_refresh(twice)

    def fit(self) -> None:
        """Give the scrolling parts the rows the fixed parts leave (call again when their
        contents change)."""
        if not self.is_attached or not self.FLEX:
            return
        dialog = self.query_one("#dialog")
        flex = [(w, lo, hi) for sel, lo, hi in self.FLEX for w in self.query(sel)
                if w.display]
        mine = {id(w) for w, _, _ in flex}
        room = int(self.size.height * HEIGHT) - dialog.styles.gutter.height
        for child in dialog.children:
            if child.display:
                room -= child.styles.margin.height
                if id(child) not in mine:
                    room -= child.outer_size.height
        wants = [min(hi, max(1, self.rows_wanted(w))) for w, _, hi in flex]
        heights = list(wants)
        over = sum(heights) - room
        for i in reversed(range(len(flex))):  # the later parts give way first
            if over <= 0:
                break
            give = min(over, heights[i] - min(flex[i][1], wants[i]))
            heights[i] -= give
            over -= give
        for (widget, _, _), height in zip(flex, heights, strict=True):
            if widget.styles.max_height is None or \
                    widget.styles.max_height.value != height:
                widget.styles.max_height = height

    @staticmethod
    def rows_wanted(widget: Widget) -> int:
        """The rows a scrolling part would take to show all of its content."""
        return widget.virtual_size.height + widget.styles.gutter.height
