"""How the checkpoint tree draws its rows: a stage's and a tag's counts, a checkpoint's
columns (step, sizes, val_bpb, age, badges), each fitted to the tree's width and cached."""

from __future__ import annotations

from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual.widgets.tree import TreeNode

from ..fmt import ellipsize, fmt_metric, human_age, human_bytes
from ..store.layout import Checkpoint, Stage, Tag
from .palette import Palette, badges, fit_badges
from .render import best_bpb, latest_bpb_at, plural
from .tree_rows import NodeRef, tag_key

# Labels drawn since the last clear: a screenful is ~40. Unbounded, scrolling through 20,000
# rows kept ~200,000 small objects alive, and each full GC pass over them took 0.1-0.15 s.
LABEL_CACHE = 1024
NAME_MIN = 12  # cells a stage or tag name keeps (…-shortened) before its counts go


class RowLabels:
    """Mixed into the tree (before Textual's Tree, whose label methods it replaces)."""

    ICON_NODE: str
    ICON_NODE_EXPANDED: str
    guide_depth: int
    clock: Callable[[], float]
    palette: Palette
    objects: dict[str, Stage | Tag | Checkpoint]
    bpb: dict[str, float | None]
    marks: set[str]
    archived: set[str]
    verdicts: dict[str, str]
    filter_counts: dict[str, int]
    _shown: set[str] | None
    _default_tags: set[str]
    _labels: dict[str, Text]
    _best: dict[str, tuple[float, int] | None]
    _width: int
    _narrow: bool
    _step_w: int

    def header_text(self) -> Text:
        """Column titles aligned with the checkpoint rows."""
        indent = 2 * self.guide_depth + 2
        sizes = f" {'size':>8}" if self._narrow else f" {'model':>8}/{'optim':<8}"
        return Text(f"{'':{indent}}{'step':>{self._step_w}}{sizes} {'val_bpb':>7} {'age':>4}",
                    style="bold")

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
        """(Tree asks it for a row's clickable region.)"""
        ref = node.data
        width = self._label(ref).cell_len if ref is not None else 0
        return width + (2 if node.allow_expand else 0)

    def _ck_fixed(self) -> int:
        """The cells of a checkpoint row before its val_bpb: every column is padded to a
        width its value never exceeds (steps to the catalog's widest, sizes ≤ 8 cells below
        1 EB, ages ≤ 4)."""
        return 2 + self._step_w + (9 if self._narrow else 18) + 1 + 5

    def _room(self, kind: str) -> int | None:
        """The cells a stage, tag or checkpoint row's label has, right of the tree's guides
        and the expand icon (None before the tree is laid out: labels are not fitted)."""
        if self._width <= 0:
            return None
        indent = {"stage": 2, "tag": self.guide_depth + 2}.get(kind, 2 * self.guide_depth)
        return self._width - indent

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
            if len(self._labels) >= LABEL_CACHE:
                self._labels.clear()
            if self._width > 0:  # (fitted to a width, not to "unknown")
                self._labels[ref.key] = cached
        return cached

    def _fitted(self, name: str, mark: str, parts: list[tuple[str, int]],
                room: int | None) -> Text:
        """``name* part · part · part`` in ``room`` cells: when too wide, parts go, highest
        rank first, then the name is shortened with an ellipsis down to NAME_MIN cells; a
        word is never cut. ``mark``: the default tag's star."""
        def width(kept: list[tuple[str, int]], name_w: int) -> int:
            return name_w + len(mark) + (2 + sum(len(p) for p, _ in kept)
                                         + 3 * (len(kept) - 1) if kept else 0)

        kept = list(parts)
        if room is not None:
            least = min(len(name), NAME_MIN)
            while kept and width(kept, least) > room:
                kept.remove(max(kept, key=lambda p: p[1]))
            name = ellipsize(name, max(least, room - width(kept, 0)))
        out = Text(name, style="bold")
        if mark:
            out.append(mark, style=self.palette.accent)
        if kept:
            out.append("  " + " · ".join(p for p, _ in kept), style="dim")
        return out

    def _stage_label(self, stage: Stage) -> Text:
        cks = sum(len(t.checkpoints) for t in stage.tags)
        waiting = sum(t.scanning for t in stage.tags)
        parts = [(plural(len(stage.tags), "tag"), 0), (plural(cks, "ckpt"), 1),
                 (human_bytes(stage.total_bytes), 2)]
        if waiting:
            parts.insert(1, (f"{waiting} scanning…", 0))
        return self._fitted(stage.label, "", parts, self._room("stage"))

    def best(self, tag: Tag) -> tuple[float, int] | None:
        """The tag's lowest val_bpb and its step (cached per scan)."""
        key = tag_key(tag)
        if key not in self._best:  # (none read yet: no step to look through)
            self._best[key] = best_bpb(tag, self.bpb) if self.bpb else None
        return self._best[key]

    def _tag_label(self, tag: Tag) -> Text:
        mark = "*" if tag_key(tag) in self._default_tags else ""
        if tag.scanning:
            return self._fitted(tag.name, mark, [("scanning…", 0)], self._room("tag"))
        n = len(tag.checkpoints)
        k = self.filter_counts.get(tag_key(tag)) if self._shown is not None else None
        parts = [(plural(n, "step") if k is None else f"{k}/{n} steps", 0),
                 (human_bytes(tag.total_bytes), 3)]
        latest = latest_bpb_at(tag, self.bpb) if self.bpb else None
        best = self.best(tag)
        if latest is not None:  # (ranks: the size goes first, then the best, then bpb)
            v, step = latest
            if best is not None and best[1] == step:
                parts.append((f"bpb {fmt_metric(v)} (best)", 1))
            else:
                parts.append((f"bpb {fmt_metric(v)}", 1))
                if best is not None:
                    parts.append((f"best {fmt_metric(best[0])}@{best[1]}", 2))
        return self._fitted(tag.name, mark, parts, self._room("tag"))

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
        words = badges(ck, pal, ck.key in self.archived, self.verdicts.get(ck.key))
        room = self._room("ck")
        if words and room is not None:
            words = fit_badges(words, room - text.cell_len, pal.muted)
        for word, style in words:
            text.append(" ")
            text.append(word, style=style)
        return text
