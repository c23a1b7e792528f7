"""Tables for the CLI that never break a name across lines, and print 6,000 rows fast.

Column widths are computed once from the cell strings; a table wider than the terminal first
narrows its ``fit`` columns (names, notes: cut with an ellipsis at the end or, for names whose
end tells them apart, in the middle; never wrapped) down to a
comfortable width, then drops its droppable columns (``drop`` 1 first, then 2, …), then narrows
the ``fit`` columns further. Lines are then written in chunks of one :class:`rich.text.Text`
each (or as plain strings when the console has no colours), which is ~10x cheaper than
``rich.table.Table`` laying out thousands of rows.

A cell is a string, ``(text, style)``, or a list of ``(text, style)`` pieces.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing and dataclasses are not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, Union

    Cell = Union[str, "Piece", list["Piece"]]  # noqa: UP007

Piece = tuple[str, str]

GAP = "  "
ELLIPSIS = "…"
CHUNK = 500  # lines per print: one Text each


class Col:
    """A column (what ``@dataclass`` gave it, ``repr`` and ``==``, written out)."""

    _fields = ("title", "justify", "drop", "fit", "soft_min", "hard_min", "middle")

    def __init__(self, title: str, justify: str = "left", drop: int = 0, fit: bool = False,
                 soft_min: int = 24, hard_min: int = 8, middle: bool = False) -> None:
        self.title = title
        self.justify = justify  # or "right"
        self.drop = drop  # 0: always shown; otherwise dropped on a narrow terminal, 1 first
        self.fit = fit  # may be cut with an ellipsis (names, notes), never wrapped
        self.soft_min = soft_min  # a fit column is narrowed to this before any is dropped
        self.hard_min = hard_min  # and to this after every droppable column is gone
        self.middle = middle  # cut in the middle (names whose end tells them apart: a.b…c.w)

    def __repr__(self) -> str:
        return "Col(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields) + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Col) or other.__class__ is not self.__class__:
            return NotImplemented
        return [getattr(self, n) for n in self._fields] == [getattr(other, n)
                                                             for n in self._fields]

    __hash__ = None  # type: ignore[assignment]  # (mutable, as a dataclass's)


def _width(text: str) -> int:
    if text.isascii():
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)


def _pieces(cell: Cell) -> list[Piece]:
    if isinstance(cell, str):
        return [(cell, "")]
    if isinstance(cell, tuple):
        return [cell]
    return cell


def cell_text(cell: Cell) -> str:
    if isinstance(cell, str):
        return cell
    if isinstance(cell, tuple):
        return cell[0]
    return "".join(t for t, _ in cell)


def _cut(pieces: list[Piece], width: int) -> list[Piece]:
    """The pieces cut to ``width`` cells, the last one ending in an ellipsis."""
    out: list[Piece] = []
    room = width - 1
    for text, style in pieces:
        w = _width(text)
        if w <= room:
            out.append((text, style))
            room -= w
            continue
        if text.isascii():
            text = text[:max(room, 0)]
        else:
            from rich.cells import set_cell_size

            text = set_cell_size(text, max(room, 0))
        out.append((text + ELLIPSIS, style))
        break
    return out


def _cut_middle(text: str, width: int) -> str:
    """``transformer.h.11.attn.c_proj.weight`` in 20 cells: ``transfo…attn.c_proj.weight``."""
    if not text.isascii():
        return _cut([(text, "")], width)[0][0]
    head = (width - 1) // 3
    return text[:head] + ELLIPSIS + text[len(text) - (width - 1 - head):]


def layout(cols: Sequence[Col], natural: Sequence[int], width: int) -> tuple[list[int], list[int]]:
    """Which columns to show (indices) and their widths, to fit ``width`` cells."""
    shown = list(range(len(cols)))
    droppable = sorted((i for i, c in enumerate(cols) if c.drop), key=lambda i: cols[i].drop)

    def need(floor_of: Any) -> int:
        return sum(natural[i] if not cols[i].fit else min(natural[i], floor_of(cols[i]))
                   for i in shown) + len(GAP) * (len(shown) - 1)

    def soft(c: Col) -> int:
        return max(c.soft_min, _width(c.title))

    def hard(c: Col) -> int:
        return max(c.hard_min, _width(c.title))

    floor = soft
    while need(floor) > width:
        if droppable:
            shown.remove(droppable.pop(0))
        elif floor is soft:
            floor = hard
        else:
            break  # as narrow as it goes: the terminal wraps the rest
    widths = {i: natural[i] for i in shown}
    excess = sum(widths.values()) + len(GAP) * (len(shown) - 1) - width
    fits = [i for i in shown if cols[i].fit]
    while excess > 0 and fits:  # narrow the widest fit column, one cell at a time
        i = max(fits, key=lambda j: widths[j] - floor(cols[j]))
        if widths[i] <= floor(cols[i]):
            break
        widths[i] -= 1
        excess -= 1
    return shown, [widths[i] for i in shown]


def _pad(text: str, width: int, right: bool) -> str:
    """``text`` padded to ``width`` cells (``str.rjust`` counts characters, not cells)."""
    if text.isascii():
        return text.rjust(width) if right else text.ljust(width)
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def _natural(cols: Sequence[Col], texts: list[list[str]]) -> list[int]:
    natural = []
    for i, col in enumerate(cols):
        column = [row[i] for row in texts]
        measure = len if "".join(column).isascii() else _width
        natural.append(max(max(map(measure, column), default=0), _width(col.title)))
    return natural


def render(cols: Sequence[Col], rows: Iterable[Sequence[Cell]], width: int,
           header_style: str = "bold") -> list[list[Piece]]:
    """The table as lines of pieces (header first), fitted to ``width``."""
    cells = [[(c.title, header_style) for c in cols], *rows]
    texts = [[cell_text(c) for c in row] for row in cells]
    shown, widths = layout(cols, _natural(cols, texts), width)
    plan = [(i, w, cols[i].justify == "right") for i, w in zip(shown, widths, strict=True)]
    last = len(plan) - 1
    out: list[list[Piece]] = []
    for row, text_row in zip(cells, texts, strict=True):
        line: list[Piece] = []
        plain: list[str] = []  # unstyled text is merged: fewer spans to render
        for n, (i, w, right) in enumerate(plan):
            if n:
                plain.append(GAP)
            cell, text = row[i], text_row[i]
            if isinstance(cell, str):
                if len(text) > w or not text.isascii():
                    if _width(text) > w:
                        text = _cut_middle(text, w) if cols[i].middle \
                            else _cut([(text, "")], w)[0][0]
                    text = _pad(text, w, right) if right or n < last else text
                elif right:
                    text = text.rjust(w)
                elif n < last:
                    text = text.ljust(w)
                plain.append(text)
                continue
            pieces = _pieces(cell)
            cw = _width(text)
            if cw > w:
                pieces, cw = _cut(pieces, w), w
            if right:
                plain.append(" " * (w - cw))
            if plain:
                line.append(("".join(plain), ""))
                plain = []
            line.extend(pieces)
            if not right and n < last:
                plain.append(" " * (w - cw))
        if plain:
            line.append(("".join(plain), ""))
        out.append(line)
    return out


def _sgr(con: Any) -> Any:
    """A function style → (start, end) ANSI codes for this console, or None where rich must
    do the writing (Windows consoles, recording, Jupyter)."""
    from rich.color import ColorSystem
    from rich.style import Style

    systems = {"standard": ColorSystem.STANDARD, "256": ColorSystem.EIGHT_BIT,
               "truecolor": ColorSystem.TRUECOLOR}
    system = systems.get(con.color_system or "")
    if system is None or con.legacy_windows or con.record or con.is_jupyter:
        return None
    cache: dict[str, tuple[str, str]] = {}

    def codes(style: str) -> tuple[str, str]:
        got = cache.get(style)
        if got is None:
            start, _, end = Style.parse(style).render("\0", color_system=system).partition("\0")
            got = cache[style] = (start, end)
        return got
    return codes


def print_lines(con: Any, lines: list[list[Piece]]) -> None:
    """Print lines of pieces in chunks: plain strings without colours, ANSI codes made once per
    style with them (rich's per-segment rendering costs ~15 µs a line: 0.1 s for 6,000)."""
    if con.no_color or con.color_system is None:
        write = con.file.write
        for start in range(0, len(lines), CHUNK):
            write("".join("".join([t for t, _ in line]).rstrip() + "\n"
                          for line in lines[start:start + CHUNK]))
        con.file.flush()
        return
    codes = _sgr(con)
    if codes is not None:
        write = con.file.write
        for start in range(0, len(lines), CHUNK):
            out = []
            for line in lines[start:start + CHUNK]:
                for t, style in line:
                    if style:
                        a, b = codes(style)
                        out.append(a + t + b)
                    else:
                        out.append(t)
                out.append("\n")
            write("".join(out))
        con.file.flush()
        return
    from rich.text import Text

    for start in range(0, len(lines), CHUNK):
        text = Text(no_wrap=True, overflow="ignore", end="\n")
        append = text.append
        for n, line in enumerate(lines[start:start + CHUNK]):
            if n:
                append("\n")
            for t, style in line:
                append(t, style or None)
        con.print(text, soft_wrap=True, highlight=False)


def print_table(con: Any, cols: Sequence[Col], rows: Iterable[Sequence[Cell]],
                title: str | None = None, width: int | None = None) -> None:
    """A titled table fitted to the console's width (or ``width``)."""
    if title is not None:
        con.print(title, highlight=False, soft_wrap=True)
    print_lines(con, render(cols, rows, width or con.width))
