"""The detail pane: what the highlighted stage, tag or checkpoint holds.

Stages render from the scan. Tags and checkpoints read the rest (meta JSON, the pickle's
tensor list, optimizer shards; never tensor bytes) in a thread worker, showing the scan's
facts meanwhile if the read is slow (``READING_AFTER``). Every selection is debounced: drawn
only once the cursor has rested for ``DEBOUNCE``, from the cache or not, a stage too. A newer
selection cancels an older load, and a result is shown only if it still matches the
selection: holding an arrow key over many large checkpoints never blocks the UI, and the
pane is redrawn once when the cursor settles, not once per key (each redraw is kilobytes on
the wire over SSH).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.timer import Timer
from textual.worker import get_current_worker

from ..store.check import cached_report, norms_over_steps
from ..store.check_report import CheckReport
from ..store.layout import Catalog, Checkpoint, Stage, Tag
from ..store.summary import CheckpointSummary, MetricPoint, summarize, tag_metrics
from ..store.trash import TrashUsage
from .lines import LinesView, RenderedLines, render_lines
from .palette import Palette
from .render import (
    checkpoint_header,
    checkpoint_view,
    error_view,
    overview_view,
    stage_view,
    tag_header,
    tag_view,
)
from .tree import NodeRef
from .verdict_memo import cache_exists

Target = Stage | Tag | Checkpoint | None
CACHE_SIZE = 64


def _files_sig(ck: Checkpoint) -> tuple[Hashable, ...]:
    # (pins and notes live in the tag's sidecar file, not in the checkpoint's files)
    return (ck.state, ck.is_latest, ck.pinned, ck.note,
            tuple((f.name, f.size, f.mtime) for f in ck.files))


def signature(obj: Target, archived: set[str] | frozenset[str] = frozenset(),
              verdicts: dict[str, str] | None = None) -> Hashable:
    """Changes whenever what the pane shows for ``obj`` could change (its files, its
    state, its pin and note, whether the archive holds it, its check verdict)."""
    if isinstance(obj, Checkpoint):
        return (_files_sig(obj), obj.key in archived, (verdicts or {}).get(obj.key))
    if isinstance(obj, Tag):
        return (obj.scanning, tuple((c.step, _files_sig(c)) for c in obj.checkpoints),
                tuple((f.name, f.size) for f in obj.other_files))
    return id(obj)


@dataclass
class Context:
    """What the views need besides the object: the catalog's values and notes."""

    catalog: Catalog | None = None
    bpb: dict[str, float | None] = field(default_factory=dict)
    default_tags: set[str] = field(default_factory=set)
    display: str = ""
    archived: set[str] = field(default_factory=set)  # checkpoint keys in the archive
    verdicts: dict[str, str] = field(default_factory=dict)  # key → cached check verdict
    trash: TrashUsage | None = None  # the base dir's trash, when it holds something


@dataclass
class CheckpointDetails:
    """What the worker read for a checkpoint: its summary and its cached check (or None)."""

    summary: CheckpointSummary
    report: CheckReport | None = None


class DetailPane(LinesView, can_focus=True):
    """Scrollable details of the tree's current row."""

    # seconds a selection must stay before it is drawn or its files are read: a key repeat
    # (25-30/s, bunched or spread by SSH) must not redraw the pane for each row it passes
    DEBOUNCE = 0.1
    READING_AFTER = 0.15  # seconds: then show the scan's facts while the read goes on

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Scroll down", show=False),
        Binding("k", "scroll_up", "Scroll up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    class Loaded(Message):
        """A worker finished reading ``want``; shown only if it is still wanted."""

        def __init__(self, want: tuple[str, Hashable], obj: Target, result: Any,
                     error: str | None, lines: RenderedLines | None = None,
                     width: int = 0) -> None:
            super().__init__()
            self.want, self.obj, self.result, self.error = want, obj, result, error
            self.lines, self.width = lines, width

    class StateChanged(Message):
        """Reading ``checkpoint`` changed its state (its model turned out ``unreadable``): its
        row's badge is due now, not at the next age refresh."""

        def __init__(self, checkpoint: Checkpoint) -> None:
            super().__init__()
            self.checkpoint = checkpoint

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.palette = Palette.default()
        self.context = Context()
        self.loads_started = 0
        self.paints = 0  # times the pane was given new lines to draw (tests, bench_wire)
        self.rendered: list[str] = []  # keys whose full details were shown, in order
        self._want: tuple[str, Hashable] | None = None
        self._ref: NodeRef | None = None
        self._obj: Target = None
        self._result: Any = None
        self._timer: Timer | None = None
        self._cache: OrderedDict[tuple[str, Hashable], Any] = OrderedDict()
        self._painted_width = 0
        self._painted_key: str | None = None

    @property
    def body(self) -> LinesView:
        """What draws the lines: the pane itself (``body.text`` is the plain text shown)."""
        return self

    @property
    def shown_key(self) -> str | None:
        """The key whose full details are on screen (None while loading)."""
        return self._ref.key if self._ref is not None and self._result is not None else None

    @property
    def busy(self) -> bool:
        """A load is waiting for its debounce, running, or not yet shown."""
        return self._timer is not None or (
            isinstance(self._obj, Checkpoint | Tag) and self._result is None)

    def show(self, ref: NodeRef | None, obj: Target) -> None:
        """Show ``obj`` (the tree's current row), reading its files in a worker if needed."""
        want = (ref.key, signature(obj, self.context.archived, self.context.verdicts)) \
            if ref is not None \
            else ("", id(self.context.catalog))
        if want == self._want:
            self._obj = obj  # the same row in a newer scan: let go of the old scan's object
            return
        self._want, self._ref, self._obj, self._result = want, ref, obj, None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        # Nothing is drawn until the selection has stayed put for DEBOUNCE (the first view
        # at once): while an arrow key repeats, each press repaints only two tree rows.
        if self.DEBOUNCE > 0 and self.paints:
            self._timer = self.set_timer(self.DEBOUNCE, lambda: self._settled(want))
        else:
            self._settled(want)

    def _settled(self, want: tuple[str, Hashable]) -> None:
        """The selection rested: draw it (a stage, a cached read) or start reading it."""
        self._timer = None
        if want != self._want:
            return
        obj = self._obj  # (the newest scan's object for this row)
        if not isinstance(obj, Checkpoint | Tag):
            self._result = obj
            self._paint()
            return
        cached = self._cache.get(want)
        if cached is not None:
            self._cache.move_to_end(want)
            self._result = cached
            self._paint()
            return
        self.loads_started += 1
        self._load(want, obj, self.palette, self._width())
        # most loads finish within a frame or two; only a slow one shows "reading…"
        self.set_timer(self.READING_AFTER, lambda: self._reading(want))

    def rerender(self) -> None:
        """Draw the current view again (theme, width or context changed); a selection still
        settling is drawn when it settles, with what is current then."""
        if self._timer is None:
            self._paint()

    def invalidate(self, keys: set[str] | None = None) -> None:
        """Forget what was read for ``keys`` (every key when None): the app changed them
        (pin, note, delete, archive) or the user asked for a rescan. If the row on screen is
        one of them, the next :meth:`show` reads it again, even for the same scan."""
        for want in [w for w in self._cache if keys is None or w[0] in keys]:
            del self._cache[want]
        if self._want is not None and (keys is None or self._want[0] in keys):
            self._want = None

    def _reading(self, want: tuple[str, Hashable]) -> None:
        if want == self._want and self._result is None:
            self._paint()  # the scan's facts, with "reading…"

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False,
          description="read the details")  # (a tag's repr lists all its steps)
    def _load(self, want: tuple[str, Hashable], obj: Target, pal: Palette, width: int) -> None:
        """Read the files and render the view, all off the UI thread."""
        worker = get_current_worker()
        if worker.is_cancelled or want != self._want:
            return
        result: Any = None
        error = None
        try:
            if isinstance(obj, Checkpoint):
                state = obj.state
                summary = summarize(obj)
                if obj.state != state:  # (posted even if the selection moved on)
                    self.post_message(self.StateChanged(obj))
                report = cached_report(obj) if cache_exists() else None
                result = CheckpointDetails(summary, report)
            elif isinstance(obj, Tag):
                result = tag_metrics(obj)
                if cache_exists():
                    result = with_weight_norms(obj, result)
        except Exception as e:  # noqa: BLE001 - bad input must never take the app down
            error = f"{type(e).__name__}: {e}"
        if worker.is_cancelled or want != self._want:
            return
        lines = None
        try:
            view = build_view(obj, error if error else result, self.context, pal,
                              self.clock(), width)
            lines = render_lines(view, width)
        except Exception:  # noqa: BLE001 - rendered again on the UI thread, errors shown
            lines = None
        if worker.is_cancelled or want != self._want:
            return
        self.post_message(self.Loaded(want, obj, result, error, lines, width))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        message.stop()
        if message.want != self._want:
            return  # the selection moved on
        if message.error is None:
            self._cache[message.want] = message.result
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
            self._result = message.result
        else:
            self._result = message.error
        if message.lines is not None and message.width == self._width() \
                and message.obj is self._obj:
            self._show_lines(message.lines)
        else:
            self._paint()

    def _paint(self) -> None:
        width = self._width()
        try:
            view = build_view(self._obj, self._result, self.context, self.palette,
                              self.clock(), width)
            lines = render_lines(view, width)
        except Exception as e:  # noqa: BLE001 - odd contents must not take the app down
            lines = render_lines(Text(f"Cannot display this: {type(e).__name__}: {e}",
                                      style=self.palette.error), width)
        self._show_lines(lines)

    def _show_lines(self, lines: RenderedLines) -> None:
        self.paints += 1
        self._painted_width = self._width()
        key = self._ref.key if self._ref is not None else None
        top = key != self._painted_key  # another row: start at the top
        self._painted_key = key
        self.set_lines(lines, self._painted_width, top=top)
        if self._result is not None and self._ref is not None:
            self.rendered.append(self._ref.key)
            del self.rendered[:-200]

    def _width(self) -> int:
        width = self.scrollable_content_region.width
        return width if width > 10 else 60

    def on_resize(self) -> None:
        if self._width() != self._painted_width and self._timer is None:
            self._paint()


def build_view(obj: Target, res: Any, ctx: Context, pal: Palette, now: float,
               width: int) -> RenderableType:
    """The view of ``obj`` given what was read (``res``: a summary, metric points, an error
    string, the object itself for stages, or None while reading)."""
    if isinstance(obj, Checkpoint):
        header = checkpoint_header(obj, now, pal, obj.key in ctx.archived, width,
                                   ctx.verdicts.get(obj.key))
        if isinstance(res, CheckpointSummary):
            res = CheckpointDetails(res)
        if isinstance(res, CheckpointDetails):  # (the header from this scan's checkpoint)
            return checkpoint_view(res.summary, now, pal, width, ck=obj,
                                   archived=obj.key in ctx.archived, report=res.report)
        if isinstance(res, str):
            return error_view(header, f"Could not read this checkpoint: {res}", pal)
        return Group(header, Text(""), Text("reading…", style="dim"))
    if isinstance(obj, Tag):
        default = f"{obj.stage}/{obj.name}" in ctx.default_tags
        if isinstance(res, str):
            return error_view(tag_header(obj, pal, default, ctx.bpb, width),
                              f"Could not read the meta files: {res}", pal)
        points: list[MetricPoint] | None = res if isinstance(res, list) else None
        return tag_view(obj, points, now, pal, max(24, width - 1), default, ctx.bpb)
    if isinstance(obj, Stage):
        return stage_view(obj, ctx.bpb, pal, ctx.catalog.notes if ctx.catalog else [],
                          width, ctx.trash)
    if ctx.catalog is not None:
        return overview_view(ctx.catalog, pal, ctx.display, ctx.trash)
    return Text("scanning…", style="dim")


def with_weight_norms(tag: Tag, points: list[MetricPoint]) -> list[MetricPoint]:
    """The tag's metrics plus weight norms over the steps that were checked (from the check
    cache, no file read): the whole model's, and four layers' (first, last, two between),
    charted with the other metrics."""
    norms = norms_over_steps(tag.checkpoints)
    if not norms:
        return points
    layers = sorted((k for k in norms if k != "model"), key=lambda k: int(k.rsplit(".", 1)[1]))
    picks = [layers[i] for i in sorted({round(j * (len(layers) - 1) / 3) for j in range(4)})] \
        if layers else []
    by_step: dict[int, dict[str, float | None]] = {}
    for key in ["model", *picks]:
        label = "weight norm" if key == "model" else f"weight norm {key.removeprefix('transformer.')}"
        for step, value in norms.get(key, []):
            by_step.setdefault(step, {})[label] = value
    out = [MetricPoint(p.step, {**p.metrics, **by_step.get(p.step, {})}, p.error) for p in points]
    seen = {p.step for p in points}
    out += [MetricPoint(step, m) for step, m in by_step.items() if step not in seen]
    return sorted(out, key=lambda p: p.step)

