"""A short pause of Python's cyclic garbage collector around a burst of UI work.

A full collection walks every object the GC tracks and frees the cyclic garbage Textual's
rendering leaves behind (strips that cache themselves): 10-50 ms here. Landing inside a new
screen's first frames, which restyle and draw the whole screen (50-70 ms for a dialog over a
20,000-row tree), it pushed them past 100 ms. Paused, the collection runs a moment later,
in a short frame of its own.
"""

from __future__ import annotations

import gc

from textual.app import App

PAUSE = 0.3  # seconds


def pause_gc(app: App[object]) -> None:
    """Turn the GC off for PAUSE seconds; not when something else has turned it off (a scan
    worker, which turns it back on itself), so it is never left off."""
    if gc.isenabled():
        gc.disable()
        app.set_timer(PAUSE, gc.enable)
