"""The key footer: Textual's, rebuilt only when the keys it shows change.

Textual rebuilds a footer whenever its screen's keys may have changed: a dialog opening over
the screen or closing, a focus move. Under a dialog each rebuild makes Textual send the whole
screen again (about 20 KB over SSH, twice per dialog: benchmarks/bench_wire.py), and after it
one more full frame. This footer skips a rebuild that would show the same keys, and waits
while its screen is under another one (dimmed there, its keys not reaching the screen): it
catches up when its screen is on top again.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.screen import Screen
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    """A footer that is rebuilt only when what it shows would change."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: Hashable | None = None  # the keys of the last rebuild

    def keys(self) -> Hashable:
        """What the footer shows: its screen's active keys, with names and states."""
        return tuple((key, b.binding.action, b.binding.description, b.binding.show, b.enabled,
                      b.tooltip) for key, b in self.screen.active_bindings.items())

    def bindings_changed(self, screen: Screen) -> None:
        if screen is not self.app.screen or not self.app.app_focus:
            return  # under a dialog (or the terminal away): brought up to date when back
        keys = self.keys()
        if keys == self._shown:
            return
        self._shown = keys
        super().bindings_changed(screen)
