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
from typing import ClassVar, NamedTuple

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ..fmt import fmt_metric, human_age, human_bytes
from ..store.layout import Catalog, Checkpoint, Stage, Tag
from .palette import Palette, badges
from .render import latest_bpb, plural

Clock = Callable[[], float]


class NodeRef(NamedTuple):
    """What a tree node stands for: ``kind`` is "stage", "tag" or "ck"."""

    kind: str
    key: str


# sort key name, natural direction is ascending unless listed here
SORT_KEYS = ("step", "size", "val_bpb", "age")
SORT_ARROWS = {False: "↑", True: "↓"}
NARROW = 58  # below this width the tree shows one size column instead of model / optim


_OPS = (">=", "<=", ">", "<", "=")
Term = tuple[str | None, int, str]  # (comparison or None, number, word)


def _parse_filter(text: str) -> list[Term]:
    """``"d20 >1000"`` → ``[(None, 0, "d20"), (">", 1000, ">1000")]``."""
    out: list[Term] = []
    for term in text.lower().split():
        op = next((o for o in _OPS if term.startswith(o)), None)
        if op and term[len(op):].isdigit():
            out.append((op, int(term[len(op):]), term))
        else:
            out.append((None, 0, term))
    return out


def _matches(terms: list[Term], hay: str, ck: Checkpoint | None) -> bool:
    """Every term matches: a step comparison, a word in the stage/tag names, or a word in
    the step number (``@3000`` or ``3000``)."""
    for op, n, term in terms:
        if op is not None:
            if ck is None:
                return False
            step = ck.step
            ok = (step >= n if op == ">=" else step <= n if op == "<=" else step > n
                  if op == ">" else step < n if op == "<" else step == n)
            if not ok:
                return False
        elif term in hay:
            continue
        elif ck is None or term.lstrip("@") not in str(ck.step):
            return False
    return True


def _all_keys(wanted: list[tuple[NodeRef, list[tuple[NodeRef, list[NodeRef]]]]]) -> set[str]:
    keys = set()
    for sref, tags in wanted:
        keys.add(sref.key)
        for tref, cks in tags:
            keys.add(tref.key)
            keys.update(c.key for c in cks)
    return keys


def _no_invalidate() -> None:
    """Stands in for Tree._invalidate while nodes are added in a batch."""


def stage_key(stage: Stage) -> str:
    return f"stage:{stage.dirname}"


def tag_key(tag: Tag) -> str:
    return f"{tag.stage}/{tag.name}"


class CheckpointTree(Tree[NodeRef]):
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
        Binding("S", "reverse_sort", "Reverse sort", show=False),
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
        self.sort_key = "step"
        self.sort_reverse = False
        self.filter_text = ""
        self.palette = Palette.default()
        self.first_paint_at: float | None = None
        self._by_key: dict[str, TreeNode[NodeRef]] = {}
        self._expand_state: dict[str, bool] = {}
        self._labels: dict[str, Text] = {}
        self._widths: dict[str, int] = {}  # checkpoint rows' label widths (same lifetime)
        self._totals: dict[str, int] = {}
        self._narrow = False
        self._step_w = 4
        self._default_tags: set[str] = set()

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
        return [line.node.data.key for line in self._tree_lines if line.node.data]

    def set_catalog(self, catalog: Catalog, bpb: dict[str, float | None]) -> None:
        """Show a new scan, keeping cursor, expansion and marks by key."""
        first = self.catalog is None
        self.catalog, self.bpb = catalog, bpb
        self.objects = {}
        self._labels.clear()
        self._widths.clear()
        self._totals.clear()
        self._default_tags = set()
        for stage in catalog.stages:
            self.objects[stage_key(stage)] = stage
            if stage.default_tag:
                self._default_tags.add(f"{stage.dirname}/{stage.default_tag}")
            for tag in stage.tags:
                self.objects[tag_key(tag)] = tag
                for ck in tag.checkpoints:
                    self.objects[ck.key] = ck
        self.marks &= self.objects.keys()
        if first:
            many = len(catalog.checkpoints) > 400
            for stage in catalog.stages:
                for tag in stage.tags:
                    self._expand_state.setdefault(
                        tag_key(tag), not many or tag.name == stage.default_tag)
        steps = [c.step for c in catalog.checkpoints]
        self._step_w = max(4, len(str(max(steps))) if steps else 4)
        self._sync()
        lines = self._tree_lines
        if lines and (self.cursor_line < 0 or self.cursor_node is None):
            self.move_cursor(lines[0].node)  # first rows (or the first after an empty dir)

    def set_filter(self, text: str) -> None:
        text = text.strip()
        if text == self.filter_text:
            return  # e.g. clear_filter, then the Input's Changed message: sync once
        self.filter_text = text
        self._sync()
        self.post_message(self.ViewChanged())

    def set_sort(self, key: str, reverse: bool = False) -> None:
        self.sort_key, self.sort_reverse = key, reverse
        self._sync()
        self.post_message(self.ViewChanged())

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        self.relabel()

    def relabel(self) -> None:
        """Redraw every label (ages, marks, theme)."""
        self._labels.clear()
        self._widths.clear()
        self._updates += 1
        self.refresh()

    def header_text(self) -> Text:
        """Column titles aligned with the checkpoint rows."""
        indent = 2 * self.guide_depth + 2
        sizes = f" {'size':>8}" if self._narrow else f" {'model':>8}/{'optim':<8}"
        return Text(f"{'':{indent}}{'step':>{self._step_w}}{sizes} {'val_bpb':>7} {'age':>4}",
                    style="bold")

    @property
    def sort_label(self) -> str:
        return f"{self.sort_key} {SORT_ARROWS[self.sort_reverse]}"

    # -- sync -------------------------------------------------------------------------------

    def _match(self, stage: Stage, tag: Tag, ck: Checkpoint | None) -> bool:
        terms = _parse_filter(self.filter_text)
        return _matches(terms, f"{stage.label} {stage.dirname} {tag.name}".lower(), ck)

    def _sorted(self, cks: list[Checkpoint]) -> list[Checkpoint]:
        def size(c: Checkpoint) -> float:
            return -c.total_bytes

        def bpb(c: Checkpoint) -> float:
            v = self.bpb.get(c.key)
            return v if v is not None and math.isfinite(v) else math.inf

        def age(c: Checkpoint) -> float:
            return -c.mtime

        keys: dict[str, Callable[[Checkpoint], float]] = {
            "step": lambda c: c.step, "size": size, "val_bpb": bpb, "age": age}
        out = sorted(cks, key=lambda c: (keys[self.sort_key](c), c.step))
        return out[::-1] if self.sort_reverse else out

    def _wanted(self) -> list[tuple[NodeRef, list[tuple[NodeRef, list[NodeRef]]]]]:
        out = []
        assert self.catalog is not None
        terms = _parse_filter(self.filter_text)
        for stage in self.catalog.stages:
            tags = []
            for tag in stage.tags:
                hay = f"{stage.label} {stage.dirname} {tag.name}".lower()
                if not terms:
                    cks = list(tag.checkpoints)
                else:
                    cks = [c for c in tag.checkpoints if _matches(terms, hay, c)]
                if not cks and (tag.checkpoints or not _matches(terms, hay, None)):
                    continue
                tags.append((NodeRef("tag", tag_key(tag)),
                             [NodeRef("ck", c.key) for c in self._sorted(cks)]))
            if tags or not self.filter_text:
                out.append((NodeRef("stage", stage_key(stage)), tags))
        return out

    def _sync(self) -> None:
        if self.catalog is None:
            return
        cursor = self.cursor_node
        cursor_key = cursor.data.key if cursor is not None and cursor.data else None
        wanted = self._wanted()
        before: list[str] = []
        if cursor_key is not None and cursor_key not in _all_keys(wanted):
            before = self.visible_keys()  # to find the nearest row that stays
        # Tree.add invalidates the whole tree (and schedules a layout) per node; with
        # 20,000 rows that alone took ~0.4 s, so invalidate once, after the batch.
        self._invalidate = _no_invalidate  # type: ignore[method-assign]
        try:
            self._sync_children(self.root, [s for s, _ in wanted])
            for sref, tags in wanted:
                snode = self._by_key[sref.key]
                self._sync_children(snode, [t for t, _ in tags])
                for tref, cks in tags:
                    self._sync_children(self._by_key[tref.key], cks)
        finally:
            del self._invalidate
        self._invalidate()
        if cursor_key is not None:
            self._restore_cursor(cursor_key, before)

    def _sync_children(self, parent: TreeNode[NodeRef], wanted: list[NodeRef]) -> None:
        children = parent._children
        if len(children) == len(wanted) and all(
                c.data is not None and c.data.key == ref.key
                for c, ref in zip(children, wanted, strict=True)):
            return  # already these rows in this order
        order = {ref.key: i for i, ref in enumerate(wanted)}
        gone = [c for c in parent.children if c.data is None or c.data.key not in order]
        if gone and len(gone) == len(parent.children):
            for child in gone:
                self._forget(child)
            parent.remove_children()  # one call: removing one by one is quadratic
        else:
            for child in gone:
                self._forget(child)
                child.remove()
        have = {c.data.key for c in parent.children if c.data}
        for ref in wanted:
            if ref.key in have:
                continue
            if ref.kind == "ck":
                node = parent.add_leaf(ref.key, ref)
            else:
                node = parent.add(ref.key, ref, expand=self._expand_state.get(ref.key, True))
            self._by_key[ref.key] = node
        parent._children.sort(key=lambda c: order[c.data.key] if c.data else 0)

    def _forget(self, node: TreeNode[NodeRef]) -> None:
        for child in node.children:
            self._forget(child)
        if node.data is not None:
            self._by_key.pop(node.data.key, None)

    def _restore_cursor(self, key: str, before: list[str]) -> None:
        node = self._by_key.get(key)
        if node is None:  # it vanished: the nearest row that is still there
            i = before.index(key) if key in before else 0
            for k in before[i + 1:] + before[:i][::-1]:
                if k in self._by_key:
                    node = self._by_key[k]
                    break
        if node is None:
            lines = self._tree_lines
            node = lines[0].node if lines else None
        self._cursor_node = node
        if node is not None:
            self._tree_lines  # noqa: B018 - rebuild now so the node has its line
            self.move_cursor(node)

    # -- labels -----------------------------------------------------------------------------

    def process_label(self, label: str | Text) -> Text:
        """Node labels are only the keys (rows are drawn by :meth:`render_label`): no markup
        parse, which cost ~20 µs a node when 20,000 nodes are added at once."""
        return Text(label) if isinstance(label, str) else label

    def render_label(self, node: TreeNode[NodeRef], base_style: Style, style: Style) -> Text:
        ref = node.data
        label = self._label(ref) if ref is not None else Text()
        label = label.copy()
        label.stylize(style)
        if node.allow_expand:
            icon = self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE
            return Text.assemble((icon, base_style + Style.from_meta({"toggle": True})), label)
        return label

    def get_label_width(self, node: TreeNode[NodeRef]) -> int:
        # Called for every row whenever the tree's lines are rebuilt (expand, filter, sort,
        # rescan): a checkpoint row's width is computed without building its label.
        ref = node.data
        if ref is None:
            width = 0
        elif ref.kind == "ck" and ref.key not in self._labels \
                and isinstance(ck := self.objects.get(ref.key), Checkpoint):
            width = self._widths.get(ref.key)
            if width is None:
                width = self._widths[ref.key] = self._ck_width(ck)
        else:
            width = self._label(ref).cell_len
        return width + (2 if node.allow_expand else 0)

    def _ck_width(self, ck: Checkpoint) -> int:
        """``_ck_label(ck).cell_len``, cheaply: every column but val_bpb and the badges is
        padded to a width its value never exceeds (sizes ≤ 8 cells below 1 EB, ages ≤ 4)."""
        width = 2 + max(self._step_w, len(str(ck.step))) + (9 if self._narrow else 18)
        v = self.bpb.get(ck.key)
        width += 1 + max(7, len(fmt_metric(v)) if v is not None else 1) + 5
        for word, _style in badges(ck, self.palette, ck.key in self.archived):
            width += 1 + cell_len(word)
        return width

    def _label(self, ref: NodeRef) -> Text:
        cached = self._labels.get(ref.key)
        if cached is None:
            obj = self.objects.get(ref.key)
            if isinstance(obj, Checkpoint):
                cached = self._ck_label(obj)
            elif isinstance(obj, Tag):
                cached = self._tag_label(obj)
            elif isinstance(obj, Stage):
                cached = self._stage_label(obj)
            else:
                cached = Text(ref.key)
            self._labels[ref.key] = cached
        return cached

    def _total_bytes(self, obj: Stage | Tag) -> int:
        """A stage's or tag's bytes, once per scan (a stage of 200,000 files takes ~0.1 s)."""
        key = stage_key(obj) if isinstance(obj, Stage) else tag_key(obj)
        total = self._totals.get(key)
        if total is None:
            total = self._totals[key] = obj.total_bytes
        return total

    def _stage_label(self, stage: Stage) -> Text:
        cks = sum(len(t.checkpoints) for t in stage.tags)
        return Text.assemble((stage.label, "bold"),
                             (f"  {plural(len(stage.tags), 'tag')} · {plural(cks, 'ckpt')} · "
                              f"{human_bytes(self._total_bytes(stage))}", "dim"))

    def _tag_label(self, tag: Tag) -> Text:
        pal = self.palette
        text = Text(tag.name, style="bold")
        if tag_key(tag) in self._default_tags:
            text.append("*", style=pal.accent)
        n = len(tag.checkpoints)
        text.append(f"  {plural(n, 'step')} · {human_bytes(self._total_bytes(tag))}",
                    style="dim")
        v = latest_bpb(tag, self.bpb)
        if v is not None:
            text.append(f" · bpb {fmt_metric(v)}", style="dim")
        return text

    def _ck_label(self, ck: Checkpoint) -> Text:
        pal = self.palette
        text = Text()
        text.append("● " if ck.key in self.marks else "  ", style=pal.accent)
        text.append(f"{ck.step:>{self._step_w}}", style="bold")
        if self._narrow:
            text.append(f" {human_bytes(ck.total_bytes):>8}")
        else:
            optim = human_bytes(ck.optim_bytes) if ck.optim else "-"
            text.append(f" {human_bytes(ck.model_bytes):>8}")
            text.append("/", style="dim")
            text.append(f"{optim:<8}", style="dim")
        v = self.bpb.get(ck.key)
        text.append(f" {fmt_metric(v) if v is not None else '-':>7}")
        text.append(f" {human_age(self.clock() - ck.mtime):>4}", style="dim")
        for word, style in badges(ck, pal, ck.key in self.archived):
            text.append(" ")
            text.append(word, style=style)
        return text

    # -- events and actions -----------------------------------------------------------------

    def on_mount(self) -> None:
        self.show_root = False
        self.guide_depth = 3

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
        self._line_cache.grow(event.size.height)
        self._invalidate_rendering()
        event.prevent_default()  # (skips Tree._on_resize, which rebuilds every line)
        narrow = self.size.width < NARROW
        if narrow != self._narrow:
            self._narrow = narrow
            self.relabel()
            self.post_message(self.ViewChanged())

    def render_lines(self, crop):  # type: ignore[no-untyped-def]
        lines = super().render_lines(crop)
        if self.first_paint_at is None and self.catalog is not None and self.last_line >= 0:
            self.first_paint_at = time.perf_counter()
            self.post_message(self.Painted().set_sender(self))
        return lines

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeRef]) -> None:
        if event.node.data is not None:
            self._expand_state[event.node.data.key] = True

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[NodeRef]) -> None:
        if event.node.data is not None:
            self._expand_state[event.node.data.key] = False

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

    def action_toggle_mark(self) -> None:
        """Mark or unmark the checkpoint under the cursor, then move down (yazi, ranger)."""
        ref = self.current
        if ref is not None and ref.kind == "ck":
            self.marks ^= {ref.key}
            self._labels.pop(ref.key, None)
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
        """step → step reversed → size → size reversed → val_bpb → … (again reverses)."""
        if not self.sort_reverse:
            self.set_sort(self.sort_key, True)
        else:
            nxt = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
            self.set_sort(nxt, False)

    def action_reverse_sort(self) -> None:
        self.set_sort(self.sort_key, not self.sort_reverse)
