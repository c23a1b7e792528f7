"""Theme-aware Rich styles for renderables that Textual CSS cannot reach (tree labels, tables)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from textual.color import Color, ColorParseError

from ..store.layout import Checkpoint, State


@dataclass(frozen=True)
class Palette:
    """Rich styles derived from the current Textual theme's variables."""

    success: Style
    warning: Style
    error: Style
    accent: Style
    primary: Style
    muted: Style

    @classmethod
    def from_variables(cls, variables: dict[str, str]) -> Palette:
        def style(name: str, fallback: str, **kw: bool) -> Style:
            try:
                color = Color.parse(variables.get(name, fallback)).rich_color
            except (ColorParseError, ValueError):
                color = Color.parse(fallback).rich_color
            return Style(color=color, **kw)

        return cls(
            success=style("success", "green"),
            warning=style("warning", "yellow"),
            error=style("error", "red", bold=True),
            accent=style("accent", "magenta"),
            primary=style("primary", "blue", bold=True),
            muted=Style(dim=True),
        )

    @classmethod
    def default(cls) -> Palette:
        return cls.from_variables({})


# badge text and palette role per state (COMPLETE shows none)
STATE_BADGES: dict[State, tuple[str, str]] = {
    State.WRITING: ("writing", "warning"),
    State.CORRUPT: ("corrupt", "error"),
    State.UNREADABLE: ("unreadable", "error"),
    State.ORPHAN: ("orphan", "error"),
    State.BAD_META: ("bad meta", "error"),
    State.NO_META: ("no meta", "warning"),
    State.OPTIM_INCOMPLETE: ("incomplete", "warning"),
}


# badge text and palette role per check verdict (from the check cache; unchecked shows none)
VERDICT_BADGES: dict[str, tuple[str, str]] = {
    "good": ("verified", "success"),
    "damaged": ("damaged", "error"),
    "unhealthy": ("unhealthy", "error"),
}


def badge_words(ck: Checkpoint, archived: bool = False,
                verdict: str | None = None) -> list[tuple[str, str]]:
    """Short badges for a checkpoint as (text, palette role), most urgent first: its state
    when not complete, a damaged or unhealthy check verdict, latest, pinned, verified (a check
    found nothing wrong with its files as they are now), archived (a copy of these bytes is in
    the remembered destination's manifest)."""
    out: list[tuple[str, str]] = []
    state = STATE_BADGES.get(ck.state)
    if state is not None:  # first: it matters most when the row is cut off
        out.append(state)
    judged = VERDICT_BADGES.get(verdict) if verdict else None
    if judged is not None and verdict != "good":
        out.append(judged)
    if ck.is_latest:
        out.append(("latest", "success"))
    if ck.pinned:
        out.append(("pinned", "accent"))
    if judged is not None and verdict == "good":
        out.append(judged)
    if archived:
        out.append(("archived", "success"))
    return out


def badges(ck: Checkpoint, pal: Palette, archived: bool = False,
           verdict: str | None = None) -> list[tuple[str, Style]]:
    """:func:`badge_words` with the palette's styles. Callers join them with spaces."""
    return [(text, getattr(pal, role)) for text, role in badge_words(ck, archived, verdict)]


# shorter forms of the longer badges, for a narrow tree
SHORT_BADGES = {"incomplete": "incompl", "archived": "arch", "pinned": "pin",
                "verified": "ok", "unhealthy": "unhlthy", "unreadable": "unread"}


def fit_badges(words: list[tuple[str, Style]], room: int,
               more: Style) -> list[tuple[str, Style]]:
    """Badges that fit in ``room`` cells (each takes a space before it): all of them; else
    their short forms; else the most urgent ones (they come first) and ``+N`` for the N
    left out; else the most urgent alone (the detail pane lists them all), else ``+N``;
    never a word cut in two."""
    def width(ws: list[tuple[str, Style]]) -> int:
        return sum(1 + len(w) for w, _ in ws)

    if width(words) <= room:
        return words
    short = [(SHORT_BADGES.get(w, w), s) for w, s in words]
    if width(short) <= room:
        return short
    for keep in range(len(short) - 1, 0, -1):
        out = [*short[:keep], (f"+{len(short) - keep}", more)]
        if width(out) <= room:
            return out
    for out in (short[:1], [(f"+{len(short)}", more)]):
        if width(out) <= room:
            return out
    return []
