"""The checkpoint tree's lines: the flat list of the nodes shown, made into Textual's line
objects only when read (a frame reads the ~40 on screen, of up to 20,000)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload

from textual.widgets._tree import _TreeLine
from textual.widgets.tree import TreeNode

from .tree_rows import NodeRef


class Lines(Sequence[_TreeLine[NodeRef]]):
    """The tree's lines, held as the flat list of their nodes; Textual's line object (the
    node's path from the top, and whether it is its parent's last child) is made when a line
    is read. A frame reads the ~40 lines on screen, of up to 20,000."""

    __slots__ = ("lasts", "nodes")

    def __init__(self, nodes: list[TreeNode[NodeRef]], lasts: set[int]) -> None:
        self.nodes, self.lasts = nodes, lasts

    def __len__(self) -> int:
        return len(self.nodes)

    @overload
    def __getitem__(self, i: int) -> _TreeLine[NodeRef]: ...
    @overload
    def __getitem__(self, i: slice) -> list[_TreeLine[NodeRef]]: ...

    def __getitem__(self, i: int | slice) -> _TreeLine[NodeRef] | list[_TreeLine[NodeRef]]:
        if isinstance(i, slice):
            return [self._line(n) for n in self.nodes[i]]
        return self._line(self.nodes[i])

    def _line(self, node: TreeNode[NodeRef]) -> _TreeLine[NodeRef]:
        path = [node]
        parent = node._parent
        while parent is not None and parent._parent is not None:  # up to the hidden root
            path.append(parent)
            parent = parent._parent
        path.reverse()
        return _TreeLine(path, id(node) in self.lasts)


def flatten(root: TreeNode[NodeRef], shown: set[str] | None,
            populate: Callable[[TreeNode[NodeRef]], None]) -> Lines:
    """The lines under ``root``: every node whose parents are expanded and which the filter
    shows (``shown``: the keys it lets through, None: all), a tag's checkpoints added in one
    ``extend``; ``populate(node)`` first gives an expanded node its children if it has none
    yet. Each node gets its line number (``_line``)."""
    nodes: list[TreeNode[NodeRef]] = []
    lasts: set[int] = set()  # id() of each parent's last shown child

    def kids(node: TreeNode[NodeRef]) -> list[TreeNode[NodeRef]]:
        populate(node)
        children = node._children
        if shown is None:
            return children
        return [c for c in children if c.data is not None and c.data.key in shown]

    def add(children: list[TreeNode[NodeRef]]) -> None:
        for node in children:
            nodes.append(node)
            if not node._expanded:
                continue
            under = kids(node)
            if not under:
                continue
            lasts.add(id(under[-1]))
            if any(c._allow_expand for c in under):
                add(under)
            else:  # checkpoint rows: one extend
                nodes.extend(under)

    top = kids(root)
    lasts.update(id(n) for n in top)  # (Tree draws top-level rows as last children)
    add(top)
    for i, node in enumerate(nodes):
        node._line = i
    return Lines(nodes, lasts)
