"""The checkpoint tree: stages → tags → checkpoints, updated in place from each new scan.

Nodes are keyed (``stage:base_checkpoints``, ``base_checkpoints/d4``,
``base_checkpoints/d4@3000``); a rescan adds, removes and reorders nodes by key, so the
cursor, expansion and marks survive while training writes. Labels are drawn at render time
from the current catalog, so a rescan only has to invalidate them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ..store.layout import Catalog, Checkpoint, Stage, Tag
from .palette import Palette
from .tree_filter import summary
from .tree_labels import RowLabels
from .tree_lines import Lines
from .tree_rows import Index, NodeRef, expected_steps, index_rows, stage_key, tag_key
from .tree_sync import TreeSync

__all__ = ["CheckpointTree", "Index", "NodeRef", "index_rows", "sort_name", "stage_key",
           "tag_key"]

Clock = Callable[[], float]


# The sort keys in the order ``s`` cycles them, each first in its natural direction.
# ↑ is ascending for every key (first step, smallest, lowest val_bpb, oldest on top), ↓
# descending; ``S`` flips it.
SORT_KEYS = ("step", "size", "val_bpb", "age")
SORT_NATURAL_DESC = {"step": False, "size": True, "val_bpb": False, "age": True}
SORT_ARROWS = {False: "↑", True: "↓"}
SORT_WORDS = {
    ("step", False): "first step on top", ("step", True): "last step on top",
    ("size", False): "smallest first", ("size", True): "largest first",
    ("val_bpb", False): "best first", ("val_bpb", True): "worst first",
    ("age", False): "oldest first", ("age", True): "newest first",
}


def sort_name(key: str, desc: bool) -> str:
    """``"size ↓ largest first"``: the key, its arrow and what the arrow means for it."""
    return f"{key} {SORT_ARROWS[desc]} {SORT_WORDS[key, desc]}"


LINE_CACHE = 256  # rendered lines (at least 4 screenfuls: see on_resize)
NARROW = 58  # below this width the tree shows one size column instead of model / optim
EXPAND_BATCH = 2000  # step rows expand-all makes a frame


class CheckpointTree(TreeSync, RowLabels, Tree[NodeRef]):
    """Tree of the catalog with vim keys, marks, a sort order and a filter."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
        Binding("l,right", "expand_or_child", "Expand", show=False),
        Binding("h,left", "collapse_or_parent", "Collapse", show=False),
        Binding("enter", "open", "Open / expand", show=False),
        Binding("space", "toggle_mark", "Mark"),
        Binding("u", "clear_marks", "Clear marks", show=False),
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse sort", show=False),  # (footer: room for d, x)
    ]

    class ViewChanged(Message):
        """Sort, filter or marks changed (the status line shows them)."""

    class Opened(Message):
        """Enter on a checkpoint: the user wants to read its details."""

        def __init__(self, ref: NodeRef) -> None:
            super().__init__()
            self.ref = ref

    class Painted(Message):
        """The tree drew its first non-empty frame (start-up time is measured to here)."""

    def __init__(self, *, clock: Clock = time.time, id: str | None = None) -> None:
        super().__init__("catalog", NodeRef("root", ""), id=id)
        self.clock = clock
        self.catalog: Catalog | None = None
        self.bpb: dict[str, float | None] = {}
        self.objects: dict[str, Stage | Tag | Checkpoint] = {}
        self.marks: set[str] = set()
        self.archived: set[str] = set()  # checkpoint keys in the archive manifest
        self.verdicts: dict[str, str] = {}  # checkpoint key → cached check verdict
        self.sort_key = "step"
        self.sort_desc = False  # ↓: descending (see SORT_KEYS)
        self.filter_text = ""
        self.palette = Palette.default()
        self.first_paint_at: float | None = None
        self._by_key: dict[str, TreeNode[NodeRef]] = {}
        self._expand_state: dict[str, bool] = {}
        self._labels: dict[str, Text] = {}
        self._best: dict[str, tuple[float, int] | None] = {}  # tag key → (val_bpb, step)
        self._width = 0  # the cells a row has (labels are fitted to it; 0: not laid out)
        self._narrow = False
        self._step_w = 4
        self._default_tags: set[str] = set()
        self._shown: set[str] | None = None  # the filter's rows (None: every row)
        self.filter_counts: dict[str, int] = {}  # tag key → its steps the filter shows
        self._auto_open: set[str] = set()  # stages and tags the filter opened
        self._user_closed: set[str] = set()  # closed by hand while this filter is on
        self._lost_cursor: tuple[str, list[str]] | None = None  # see _restore_cursor
        self._populated: set[str] = set()  # tags whose step nodes exist (expanded once)
        self._step_keys: dict[str, list[str]] = {}  # tag key → its step rows (_sync_steps)
        self._nodes_made = 0  # since the last gc.freeze (see _freeze_new_nodes)
        self._expand_queue: list[TreeNode[NodeRef]] = []  # tags expand_all opens next

    # -- public API -------------------------------------------------------------------------

    @property
    def current(self) -> NodeRef | None:
        node = self.cursor_node
        return node.data if node is not None and node.data is not None else None

    def obj(self, ref: NodeRef | None) -> Stage | Tag | Checkpoint | None:
        return self.objects.get(ref.key) if ref is not None else None

    def ref_for(self, key: str) -> NodeRef:
        """The reference of the row with ``key`` (KeyError if it is not in the tree)."""
        node = self._by_key[key]
        assert node.data is not None
        return node.data

    def node_for(self, key: str) -> TreeNode[NodeRef] | None:
        return self._by_key.get(key)

    def visible_keys(self) -> list[str]:
        """Keys of the rows currently shown, top to bottom."""
        lines: Lines = self._tree_lines  # type: ignore[assignment] # (always: see _build)
        return [node.data.key for node in lines.nodes if node.data]

    def visible_keys_count(self) -> int:
        """How many rows are shown."""
        return len(self._tree_lines)

    def _cursor_rows(self) -> tuple[str | None, list[str]]:
        """The cursor's row key and the rows shown now (to find the nearest one later)."""
        cursor = self.cursor_node
        key = cursor.data.key if cursor is not None and cursor.data else None
        return key, self.visible_keys() if key is not None else []

    def set_catalog(self, catalog: Catalog, bpb: dict[str, float | None],
                    index: Index | None = None) -> None:
        """Show a new scan (or a partial one, or the same with more val_bpb), keeping
        cursor, expansion and marks by key. ``index``: :func:`index_rows` of the catalog,
        made off the UI thread (20,000 rows: ~10 ms)."""
        if catalog is self.catalog:
            self.set_bpb(bpb)
            return
        first = self.catalog is None
        self.catalog, self.bpb = catalog, bpb
        self.objects = index_rows(catalog) if index is None else index
        self._labels.clear()
        self._best.clear()
        self._default_tags = {f"{s.dirname}/{s.default_tag}" for s in catalog.stages
                              if s.default_tag}
        self.marks &= self.objects.keys()
        if first:  # (a partial catalog: as many steps as its tags listed so far suggest)
            many = expected_steps(catalog) > 400
            for stage in catalog.stages:
                for tag in stage.tags:
                    self._expand_state.setdefault(
                        tag_key(tag), not many or tag.name == stage.default_tag)
        last = max((t.checkpoints[-1].step for t in catalog.tags if t.checkpoints), default=0)
        self._step_w = max(4, len(str(last)))  # (a tag's steps are in step order)
        self._sync()
        lines = self._tree_lines
        if lines and (self.cursor_line < 0 or self.cursor_node is None):
            self.move_cursor(lines[0].node)  # first rows (or the first after an empty dir)

    def set_bpb(self, bpb: dict[str, float | None]) -> None:
        """Show these val_bpb (more of the same scan's metas were read)."""
        self.bpb = bpb
        self._best.clear()
        if self.sort_key == "val_bpb":
            self._labels.clear()
            self._sync()
        else:
            self.relabel()

    def set_filter(self, text: str) -> None:
        text = text.strip()
        if text == self.filter_text:
            return  # e.g. clear_filter, then the Input's Changed message: apply once
        self.filter_text = text
        if self.catalog is not None:
            self._apply_filter(*self._cursor_rows())
        self.post_message(self.ViewChanged())

    def set_sort(self, key: str, descending: bool | None = None) -> None:
        """Sort the steps by ``key``, descending or not (None: the key's natural order)."""
        self.sort_key = key
        self.sort_desc = SORT_NATURAL_DESC[key] if descending is None else descending
        self._step_keys.clear()
        self._sync()
        self.post_message(self.ViewChanged())

    def set_verdicts(self, verdicts: dict[str, str]) -> None:
        """Badge the checkpoints with these check verdicts (key → good, damaged, unhealthy),
        found off the UI thread; labels are drawn again as they come on screen."""
        if verdicts != self.verdicts:
            self.verdicts = verdicts
            self.relabel()

    def expand_all(self, expand: bool) -> None:
        """Open (or close) every stage and tag. The step rows of tags never opened are made
        EXPAND_BATCH at a time, a batch a frame: 20,000 at once held the UI ~80-115 ms."""
        nodes = [n for s in self.root._children for n in (s, *s._children) if n._allow_expand]
        self._expand_queue = []
        if not expand:
            for node in nodes:
                node.collapse()
            return
        for node in nodes:
            if node.data is not None and node.data.kind == "tag" and \
                    node.data.key not in self._populated:
                self._expand_queue.append(node)
            else:
                node.expand()
        self._expand_more()

    def _expand_more(self) -> None:
        made = 0
        while self._expand_queue:
            node = self._expand_queue.pop(0)
            if node.data is None or self._by_key.get(node.data.key) is not node:
                continue  # (gone in a rescan meanwhile)
            tag = self.objects.get(node.data.key)
            made += len(tag.checkpoints) if isinstance(tag, Tag) else 0
            node.expand()
            if made >= EXPAND_BATCH:
                break
        if self._expand_queue:
            self.call_after_refresh(self._expand_more)

    @property
    def expanding(self) -> bool:
        """Expand-all is still opening tags (a batch a frame)."""
        return bool(self._expand_queue)

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        self.relabel()

    def relabel(self) -> None:
        """Redraw every label (ages, marks, theme)."""
        self._labels.clear()
        self._updates += 1
        self.refresh()

    def refresh_labels(self) -> None:
        """Ages moved on, or a step's state changed: redraw only the rows on screen whose label
        changed (most ages change hourly or daily; a whole redraw is the tree's size over SSH,
        ~9 KB)."""
        old, self._labels = self._labels, {}
        self._updates += 1  # (rows drawn later are rendered anew)
        top, lines = self.scroll_offset.y, self._tree_lines.nodes  # type: ignore[attr-defined]
        for y, node in enumerate(lines[top:top + self.size.height], top):
            if node.data is not None and self._label(node.data) != old.get(node.data.key):
                self._refresh_line(y)

    @property
    def sort_label(self) -> str:
        """``"size ↓"``."""
        return f"{self.sort_key} {SORT_ARROWS[self.sort_desc]}"

    @property
    def sort_words(self) -> str:
        """What the arrow means for this key: ``"largest first"``."""
        return SORT_WORDS[self.sort_key, self.sort_desc]

    @property
    def filter_matches(self) -> int | None:
        """Steps the filter shows (None: no filter)."""
        return None if self._shown is None else sum(self.filter_counts.values())

    def filter_summary(self) -> str:
        """``"6 matches in 3 tags"``, ``"no matches for 'foo'"`` or "" (no filter)."""
        return summary(self.filter_text, self._shown, self.filter_counts)

    # -- events and actions -----------------------------------------------------------------

    def on_mount(self) -> None:
        self.show_root = False
        self.guide_depth = 3
        # Tree keeps 1,024 rendered lines; each holds a Strip with seven small caches of its
        # own. A few screenfuls are what scrolling back reuses; more only feeds the GC.
        self._line_cache.maxsize = LINE_CACHE

    # Tree invalidates everything on a resize and on any style change (focus moving to or
    # from the tree: the filter, a dialog): the next frame rebuilds every line and asks
    # every row's width, ~0.2 s for 20,000 rows. Which lines exist and how wide they are
    # depends on neither, so keep the lines and only drop the rendered-line cache.

    def _invalidate_rendering(self) -> None:
        if not self._tree_lines_cached:
            self._invalidate()  # no lines: the virtual width follows the size
            return
        self._line_cache.clear()
        self._updates += 1
        self.root._reset()
        self.refresh(layout=True)

    def notify_style_update(self) -> None:
        super(Tree, self).notify_style_update()  # (Tree's own would rebuild every line)
        self._invalidate_rendering()

    def on_resize(self, event: events.Resize) -> None:
        self._line_cache.grow(4 * event.size.height)
        self._invalidate_rendering()
        event.prevent_default()  # (skips Tree._on_resize, which rebuilds every line)
        # (the scrollbar's column is kept whether it shows or not: no resize says when)
        width = max(0, self.size.width - self.styles.scrollbar_size_vertical)
        narrow = self.size.width < NARROW
        if width != self._width or narrow != self._narrow:
            self._width = width  # labels are fitted to it: draw them again
            self.virtual_size = Size(self._virtual_width(), self.virtual_size.height)
            if narrow != self._narrow:
                self._narrow = narrow
                self.post_message(self.ViewChanged())
            self.relabel()

    def render_lines(self, crop):  # type: ignore[no-untyped-def]
        lines = super().render_lines(crop)
        if self.first_paint_at is None and self.catalog is not None and self.last_line >= 0:
            self.first_paint_at = time.perf_counter()
            self.post_message(self.Painted().set_sender(self))
        return lines

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeRef]) -> None:
        if event.node.data is not None:
            key = event.node.data.key
            self._expand_state[key] = True
            self._auto_open.discard(key)  # the user's now
            self._user_closed.discard(key)

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[NodeRef]) -> None:
        if event.node.data is not None:
            key = event.node.data.key
            self._expand_state[key] = False
            self._auto_open.discard(key)
            if self._shown is not None:
                self._user_closed.add(key)  # the filter leaves it closed

    def action_expand_or_child(self) -> None:
        node = self.cursor_node
        if node is None or not node.allow_expand:
            return
        if not node.is_expanded:
            node.expand()
        elif node.children:
            self.move_cursor(node.children[0])

    def action_collapse_or_parent(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def action_open(self) -> None:
        """Enter: expand or collapse a stage or tag; on a checkpoint, go to its details."""
        ref = self.current
        if ref is not None and ref.kind == "ck":
            self.post_message(self.Opened(ref))
        else:
            self.action_select_cursor()

    def shown_steps(self, tag: Tag) -> list[Checkpoint]:
        """The tag's checkpoints the filter shows (all of them without a filter)."""
        shown = self._shown
        return [c for c in tag.checkpoints if shown is None or c.key in shown]

    def action_toggle_mark(self) -> None:
        """Mark or unmark the checkpoint under the cursor, then move down (yazi, ranger).
        On a tag: mark every step of it (those the filter shows), or unmark them all when
        all are marked."""
        ref = self.current
        if ref is None:
            return
        if ref.kind == "ck":
            keys = {ref.key}
            self.marks ^= keys
        elif isinstance(tag := self.objects.get(ref.key), Tag):
            keys = {c.key for c in self.shown_steps(tag)}
            if not keys:
                self.notify(f"{tag.name} has no steps to mark", severity="warning")
                return
            if keys <= self.marks:
                self.marks -= keys
            else:
                self.marks |= keys
        else:
            self.notify("Space marks a checkpoint, or every step of a tag; this row is a "
                        "stage (→ opens it)", severity="warning")
            return
        for key in keys:
            self._labels.pop(key, None)
        self._updates += 1
        self.refresh()
        self.post_message(self.ViewChanged())
        self.action_cursor_down()

    def action_clear_marks(self) -> None:
        if self.marks:
            self.marks.clear()
            self.relabel()
            self.post_message(self.ViewChanged())

    def action_cycle_sort(self) -> None:
        """The next sort key (step → size → val_bpb → age → step), in its natural order."""
        nxt = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.set_sort(nxt)

    def action_reverse_sort(self) -> None:
        """The same key, the other direction."""
        self.set_sort(self.sort_key, not self.sort_desc)
