"""The TUI and Python's cyclic garbage collector: a short pause around a burst of UI work, and
freezing long-lived objects without keeping garbage frozen with them.

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
# Up to this many objects (frozen ones included), a freeze first collects all the garbage,
# the frozen kind too: ~0.1-0.2 µs an object here (150,000: 16-30 ms), holding the GIL.
COLLECT_ALL_BEFORE_FREEZE = 200_000
# ... else up to this many new objects, it collects the young generations first.
COLLECT_YOUNG_BEFORE_FREEZE = 50_000


def pause_gc(app: App[object]) -> None:
    """Turn the GC off for PAUSE seconds; not when something else has turned it off (a scan
    worker, which turns it back on itself), so it is never left off."""
    if gc.isenabled():
        gc.disable()
        app.set_timer(PAUSE, gc.enable)


def freeze() -> None:
    """``gc.freeze()``: the objects alive move out of the cyclic GC's reach, so a big catalog is
    not walked by every full collection. What was frozen and became cyclic garbage later (an
    old catalog's tree nodes, Textual's strips that cache themselves) is never collected
    while frozen: on the demo a rescan leaked ~2,000 objects, ~270 KB, every rescan, for as
    long as the app ran. So while that is cheap, the frozen objects are first let go and
    everything is collected (COLLECT_ALL_BEFORE_FREEZE objects in all: up to ~2,000 steps). A huge base dir, where a collection of everything
    would stall the UI (measured: 130-140 ms at start-up and expand-all on 200,000 files),
    collects only its young generations, and only when they are small."""
    young = gc.get_count()[0]
    if gc.get_freeze_count() + young <= COLLECT_ALL_BEFORE_FREEZE:
        gc.unfreeze()
        gc.collect()
    elif young <= COLLECT_YOUNG_BEFORE_FREEZE:
        gc.collect(1)
    gc.freeze()
