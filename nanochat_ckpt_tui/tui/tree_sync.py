"""How the checkpoint tree's nodes follow the catalog: a rescan adds, removes and reorders
nodes by key (the cursor, expansion and marks survive), a tag's step nodes are made the first
time it opens, a filter opens what holds its matches, and the lines are built for trees of
20,000 rows. Mixed into :class:`.tree.CheckpointTree`."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.text import Text
from textual.geometry import Size
from textual.widgets.tree import TreeNode

from ..store.layout import Catalog, Checkpoint, Stage, Tag
from .gc_pause import freeze as freeze_gc
from .tree_filter import filter_view
from .tree_labels import NAME_MIN
from .tree_lines import flatten
from .tree_rows import NodeRef, stage_key, tag_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# A filter opens the tags that hold matching steps; the step rows of tags never expanded
# are made then, up to this many per filter change (the others stay closed, their row
# saying how many of their steps match), so a keystroke never makes 20,000 rows at once.
AUTO_POPULATE = 2000
FREEZE_AFTER = 2000  # nodes made: then the objects alive are frozen (_freeze_new_nodes)

_NO_LABEL = Text()  # checkpoint nodes' own label (never drawn: see render_label)


def _no_invalidate() -> None:
    """Stands in for Tree._invalidate while nodes are added in a batch."""


class TreeSync:
    """Mixed into the tree (before Textual's Tree, whose ``_build`` it replaces)."""

    catalog: Catalog | None
    bpb: dict[str, float | None]
    objects: dict[str, Stage | Tag | Checkpoint]
    sort_key: str
    sort_desc: bool
    filter_text: str
    filter_counts: dict[str, int]
    guide_depth: int
    root: TreeNode[NodeRef]
    _by_key: dict[str, TreeNode[NodeRef]]
    _expand_state: dict[str, bool]
    _labels: dict[str, Text]
    _shown: set[str] | None
    _auto_open: set[str]
    _user_closed: set[str]
    _lost_cursor: tuple[str, list[str]] | None
    _populated: set[str]
    _step_keys: dict[str, list[str]]
    _nodes_made: int
    _width: int
    if TYPE_CHECKING:  # (Tree's and RowLabels' own, used here)
        _invalidate: Callable[[], None]
        _add_node: Any
        _tree_lines_cached: Any
        _tree_lines: Any
        _cursor_node: Any
        cursor_line: int
        cursor_node: TreeNode[NodeRef] | None
        virtual_size: Size

        def _cursor_rows(self) -> tuple[str | None, list[str]]: ...
        def _ck_fixed(self) -> int: ...
        def move_cursor(self, node: Any) -> None: ...

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
