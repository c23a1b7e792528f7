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
    State.ORPHAN: ("orphan", "error"),
    State.NO_META: ("no meta", "warning"),
    State.OPTIM_INCOMPLETE: ("incomplete", "warning"),
}


def badge_words(ck: Checkpoint, archived: bool = False) -> list[tuple[str, str]]:
    """Short badges for a checkpoint as (text, palette role): its state when not complete,
    latest, pinned, archived (in the remembered destination's manifest)."""
    out: list[tuple[str, str]] = []
    state = STATE_BADGES.get(ck.state)
    if state is not None:  # first: it matters most when the row is cut off
        out.append(state)
    if ck.is_latest:
        out.append(("latest", "success"))
    if ck.pinned:
        out.append(("pinned", "accent"))
    if archived:
        out.append(("archived", "success"))
    return out


def badges(ck: Checkpoint, pal: Palette, archived: bool = False) -> list[tuple[str, Style]]:
    """:func:`badge_words` with the palette's styles. Callers join them with spaces."""
    return [(text, getattr(pal, role)) for text, role in badge_words(ck, archived)]
