"""The one-line status bar: base dir, counts, disk used and free, the trash, watch mode, sort,
filter, and the progress of a running check or verification (which then comes first on the
right, the sort's words giving it room)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ..fmt import human_bytes
from ..store.layout import Catalog
from ..store.trash import TrashUsage


@dataclass
class StatusInfo:
    display: str = ""
    catalog: Catalog | None = None
    mode: str = ""  # "watching", "polling", "not watching", "scanning…"
    read_only: bool = False
    sort: str = ""  # "size ↓"
    sort_words: str = ""  # "largest first"
    filter: str = ""
    marks: int = 0
    trash: TrashUsage | None = None  # the base dir's trash, when it holds something
    job: str = ""  # "checking 3 steps: 12 MB of 40 MB · 310 MB/s · esc cancels"


class StatusBar(Static):
    """Left: where and how much. Right: what the view is doing. Drops words when narrow."""

    WIDE = 110

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info = StatusInfo()
        self.text = ""  # the plain text shown (tests)
        self._totals: tuple[Catalog, int, int] | None = None

    def _counts(self, cat: Catalog) -> tuple[int, int]:
        """Bytes and checkpoints of a catalog, summed once per scan (not per keystroke:
        200,000 files take ~0.1 s to sum)."""
        if self._totals is None or self._totals[0] is not cat:
            self._totals = (cat, cat.total_bytes, len(cat.checkpoints))
        return self._totals[1], self._totals[2]

    def show_info(self, info: StatusInfo) -> None:
        self.info = info
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        info, cat = self.info, self.info.catalog
        wide = self.size.width >= self.WIDE or self.size.width == 0
        left = Text()
        if wide:
            left.append("nanochat-ckpt ", style="bold")
        left.append(info.display)
        if cat is not None and cat.exists:
            total, count = self._counts(cat)
            left.append(f"  {human_bytes(total)}")
            if cat.free_bytes is not None:
                left.append(f" · {human_bytes(cat.free_bytes)} free")
            left.append(f" · {count} ckpts")
            if info.trash is not None and info.trash.files:
                left.append(f" · trash {human_bytes(info.trash.bytes)}", style="italic")
            if cat.notes:
                left.append(f" · {len(cat.notes)} notes", style="italic")
        elif cat is not None:
            left.append("  (missing)", style="italic")
        bits = []
        if info.job:
            bits.append(info.job)
        if info.filter:
            bits.append(f"/{info.filter}")
        if info.marks:
            bits.append(f"{info.marks} marked")
        if info.sort and (wide or not info.job):  # (narrow: a job's progress needs the room)
            words = f" {info.sort_words}" if info.sort_words else ""
            bits.append(f"sort {info.sort}{words}" if wide and not info.job else info.sort)
        if info.read_only and not info.job:
            bits.append("read-only")
        if info.mode and not info.job:  # (a job's progress needs the room)
            bits.append(info.mode)
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True, overflow="ellipsis")
        right = Text(" · ".join(bits))
        grid.add_row(left, right)
        self.text = f"{left.plain}  {right.plain}"
        self.update(grid)
