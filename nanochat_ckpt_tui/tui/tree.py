"""The checkpoint tree: stages → tags → checkpoints, updated in place from each new scan.

Nodes are keyed (``stage:base_checkpoints``, ``base_checkpoints/d4``,
``base_checkpoints/d4@3000``); a rescan adds, removes and reorders nodes by key, so the
cursor, expansion and marks survive while training writes. Labels are drawn at render time
from the current catalog, so a rescan only has to invalidate them.
"""

from __future__ import annotations

import math
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
from .gc_pause import freeze as freeze_gc
from .palette import Palette
from .tree_filter import filter_view, summary
from .tree_labels import NAME_MIN, RowLabels
from .tree_lines import Lines, flatten
from .tree_rows import Index, NodeRef, expected_steps, index_rows, stage_key, tag_key

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
# A filter opens the tags that hold matching steps; the step rows of tags never expanded
# are made then, up to this many per filter change (the others stay closed, their row
# saying how many of their steps match), so a keystroke never makes 20,000 rows at once.
AUTO_POPULATE = 2000
EXPAND_BATCH = 2000  # step rows expand-all makes a frame
FREEZE_AFTER = 2000  # nodes made: then the objects alive are frozen (_freeze_new_nodes)


_NO_LABEL = Text()  # checkpoint nodes' own label (never drawn: see render_label)


def _no_invalidate() -> None:
    """Stands in for Tree._invalidate while nodes are added in a batch."""


class CheckpointTree(RowLabels, Tree[NodeRef]):
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

    # -- sync -------------------------------------------------------------------------------

    def _sorted(self, cks: list[Checkpoint]) -> list[Checkpoint]:
        """``cks`` in the sort order: ascending by the key (ties by step), or all of it
        reversed; checkpoints without a finite val_bpb come last either way."""
        key, desc = self.sort_key, self.sort_desc
        if key == "val_bpb":
            bpb = self.bpb
            have: list[tuple[float, int, Checkpoint]] = []
            missing: list[Checkpoint] = []
            for c in cks:
                v = bpb.get(c.key)
                if v is not None and math.isfinite(v):
                    have.append((v, c.step, c))
                else:
                    missing.append(c)
            have.sort(key=lambda t: (t[0], t[1]), reverse=desc)
            missing.sort(key=lambda c: c.step, reverse=desc)
            return [t[2] for t in have] + missing
        keys: dict[str, Callable[[Checkpoint], tuple[float, int]]] = {
            "step": lambda c: (c.step, 0), "size": lambda c: (c.total_bytes, c.step),
            "age": lambda c: (c.mtime, c.step)}
        return sorted(cks, key=keys[key], reverse=desc)

    def _step_refs(self, tag: Tag) -> list[NodeRef]:
        return [NodeRef("ck", c.key) for c in self._sorted(tag.checkpoints)]

    def _sync_steps(self, node: TreeNode[NodeRef], tag: Tag) -> None:
        """Give a tag node its step nodes in the sort order. In step order, a tag whose steps
        are the ones shown (most tags, in a rescan) is left as it is without sorting or
        making a reference per step (20,000 of them cost ~25 ms)."""
        if self.sort_key == "step":
            cks = tag.checkpoints
            keys = [c.key for c in (reversed(cks) if self.sort_desc else cks)]
            key = tag_key(tag)
            if keys == self._step_keys.get(key):
                return
            self._step_keys[key] = keys
        self._sync_children(node, self._step_refs(tag))

    def _populate(self, node: TreeNode[NodeRef]) -> None:
        """Give a tag node its step nodes, the first time it is expanded. A big base dir
        opens with most tags collapsed: 20,000 nodes made up front cost ~0.2 s of start-up."""
        ref = node.data
        if ref is None or ref.kind != "tag" or ref.key in self._populated:
            return
        self._populated.add(ref.key)
        tag = self.objects.get(ref.key)
        if isinstance(tag, Tag):  # (new leaves only: no per-node invalidation to suppress)
            self._sync_steps(node, tag)

    def _sync(self) -> None:
        """Make the nodes match the catalog and the sort order, and apply the filter.

        Nodes exist for every checkpoint whatever the filter: the filter only decides which
        become lines (:meth:`_build`), so typing a filter never adds or removes nodes, and
        a rescan only adds or removes what changed on disk."""
        if self.catalog is None:
            return
        cursor_key, before = self._cursor_rows()
        stages = self.catalog.stages
        populated, by_key = self._populated, self._by_key
        # Tree.add invalidates the whole tree (and schedules a layout) per node; with
        # 20,000 rows that alone took ~0.4 s, so invalidate once, after the batch.
        self._invalidate = _no_invalidate  # type: ignore[method-assign]
        try:
            self._sync_children(self.root, [NodeRef("stage", stage_key(s)) for s in stages])
            for stage in stages:
                self._sync_children(by_key[stage_key(stage)],
                                    [NodeRef("tag", tag_key(t)) for t in stage.tags])
                for tag in stage.tags:
                    if (key := tag_key(tag)) in populated:
                        self._sync_steps(by_key[key], tag)
        finally:
            del self._invalidate
        self._apply_filter(cursor_key, before)
        self._freeze_new_nodes()

    def _apply_filter(self, cursor_key: str | None, before: list[str]) -> None:
        shown, counts, opening = filter_view(self.catalog, self.filter_text)
        if counts or self.filter_counts:  # tag rows say "k/n steps" under a filter
            for key in counts.keys() | self.filter_counts.keys():
                self._labels.pop(key, None)
        self._shown, self.filter_counts = shown, counts
        if cursor_key is None and self._lost_cursor is not None:
            cursor_key, before = self._lost_cursor  # (a filter that matched nothing)
        self._open_matches(opening, cursor_key)
        self._invalidate()
        if cursor_key is not None:
            self._restore_cursor(cursor_key, before)

    def _open_matches(self, opening: list[str], cursor_key: str | None) -> None:
        """Open the tags (and stages) that hold what the filter shows; close again those it
        opened and no longer needs, except the one holding the cursor. Opening changes no
        expand state the user set (a rescan or a cleared filter gives the old view back)."""
        by_key, objects = self._by_key, self.objects
        if self._shown is None:
            self._user_closed.clear()
        want: set[str] = set()
        budget = AUTO_POPULATE
        for tkey in opening:
            if tkey in self._user_closed:
                continue
            if tkey not in self._populated:
                tag = objects.get(tkey)
                n = len(tag.checkpoints) if isinstance(tag, Tag) else 0
                if n > budget:
                    continue
                budget -= n
            want.add(tkey)
        if self._shown:  # the stages of the tags shown (O(tags), not O(rows))
            want.update(k for t in self.filter_counts
                        if (k := "stage:" + t.split("/", 1)[0]) not in self._user_closed)
        keep: set[str] = set()
        if cursor_key is not None and (node := by_key.get(cursor_key)) is not None:
            keep = {n.data.key for n in self._ancestors(node) if n.data is not None}
        for key in self._auto_open - want:
            node = by_key.get(key)
            if node is not None and node._expanded and key not in keep:
                node._expanded = False
                node._updates += 1
        opened = set()
        for key in want:
            node = by_key.get(key)
            if node is not None and not node._expanded:
                node._expanded = True
                node._updates += 1
                opened.add(key)
        self._auto_open = (self._auto_open & want) | opened

    @staticmethod
    def _ancestors(node: TreeNode[NodeRef]) -> list[TreeNode[NodeRef]]:
        out = []
        parent = node._parent
        while parent is not None and parent._parent is not None:
            out.append(parent)
            parent = parent._parent
        return out

    def _sync_children(self, parent: TreeNode[NodeRef], wanted: list[NodeRef]) -> None:
        children = parent._children
        if len(children) == len(wanted) and all(
                c.data is not None and c.data.key == ref.key
                for c, ref in zip(children, wanted, strict=True)):
            return  # already these rows in this order
        order = {ref.key: i for i, ref in enumerate(wanted)}
        gone = [c for c in children if c.data is None or c.data.key not in order]
        if gone and len(gone) == len(children):
            for child in gone:
                self._forget(child)
            parent.remove_children()  # one call: removing one by one is quadratic
        elif gone:
            for child in gone:
                self._forget(child)
                child.remove()
        have = {c.data.key for c in parent._children if c.data}
        by_key, add_node, leaves = self._by_key, self._add_node, parent._children
        made = 0
        for ref in wanted:
            if ref.key in have:
                continue
            made += 1
            if ref.kind == "ck":  # (TreeNode.add_leaf, minus its per-call checks and label)
                node = add_node(parent, _NO_LABEL, ref)
                node._allow_expand = False
                leaves.append(node)
            else:
                node = parent.add(ref.key, ref, expand=self._expand_state.get(ref.key, True))
            by_key[ref.key] = node
        self._nodes_made += made
        parent._updates += 1
        parent._children.sort(key=lambda c: order[c.data.key] if c.data else 0)

    def _forget(self, node: TreeNode[NodeRef]) -> None:
        for child in node._children:
            self._forget(child)
        if node.data is not None:
            self._by_key.pop(node.data.key, None)
            self._step_keys.pop(node.data.key, None)

    def _freeze_new_nodes(self) -> None:
        """Move the objects alive now out of the cyclic GC's reach (``gc.freeze``) once
        thousands of nodes were made since the last time. 20,000 step nodes are ~60,000
        objects; left in the oldest generation, every full collection walks them all, and
        Textual's rendering (its strips refer to themselves) makes full collections frequent
        while scrolling: ~10-20 ms more per collection idle, 50-100 ms on a busy machine.
        Nodes are freed by reference counting when they go (:meth:`_forget`)."""
        if self._nodes_made >= FREEZE_AFTER:
            self._nodes_made = 0
            freeze_gc()

    def _build(self) -> None:
        """Tree._build for big trees (:func:`.tree_lines.flatten`): every node gets its line
        number, -1 when it has none."""
        for node in self._by_key.values():
            node._line = -1
        lines = flatten(self.root, self._shown, self._populate)
        nodes = lines.nodes
        self._tree_lines_cached = lines  # type: ignore[assignment]
        self._freeze_new_nodes()  # (expanded tags were given their step nodes)
        self.virtual_size = Size(self._virtual_width(), len(nodes))
        if self.cursor_line != -1 and self.cursor_node is not None:
            if self.cursor_node._line != -1:
                self.cursor_line = self.cursor_node._line
            elif self.cursor_line >= len(nodes):
                self.cursor_line = len(nodes) - 1  # (hidden: the filter's caller moves it)

    def _virtual_width(self) -> int:
        """Every label is fitted to the width (:meth:`_room`), so the tree is as wide as the
        widget, unless it is narrower than the least a row needs (a checkpoint row's
        columns; a shortened name with its step count)."""
        least = max(2 * self.guide_depth + self._ck_fixed() + 7,
                    self.guide_depth + 2 + NAME_MIN + 10)
        return max(self._width, least)

    def _restore_cursor(self, key: str, before: list[str]) -> None:
        """Back onto the row ``key``, or, when it vanished or the filter hides it, onto the
        nearest row (in ``before``, the rows shown until now) that is still shown."""
        lines = self._tree_lines  # (builds the lines: every shown node has its line number)

        def shown(k: str) -> TreeNode[NodeRef] | None:
            node = self._by_key.get(k)
            return node if node is not None and node._line != -1 else None

        node = shown(key)
        own = self._by_key.get(key)
        if node is None and own is not None:
            ancestors = self._ancestors(own)
            if any(not a._expanded for a in ancestors):  # closed over it: onto the closed row
                node = next((a for a in ancestors if a._line != -1), None)
        if node is None:
            i = before.index(key) if key in before else 0
            node = next((n for k in before[i + 1:] + before[:i][::-1] if (n := shown(k))),
                        None)
        if node is None:
            node = lines[0].node if lines else None
        # With no row left (a filter matching nothing, as ">" on the way to ">1000"), keep
        # the cursor's row to come back to when rows show again.
        self._lost_cursor = (key, before) if node is None else None
        self._cursor_node = node
        if node is not None:
            self.move_cursor(node)

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
