"""``ls``'s human output without rich where no colours go out (a file, a pipe): importing
rich's console costs ~40 ms, a tenth of a 6,000-step listing's budget.

:class:`PlainConsole` writes what ``rich.console.Console`` writes to such a file: the markup
rendered to plain text (tags dropped, escaped brackets kept), one line a ``print``, at rich's
width (``COLUMNS``, else the size of a terminal on stdin, stdout or stderr, else 80). It is
used only when rich would not colour either: stdout not a terminal and neither
``FORCE_COLOR`` nor ``TTY_COMPATIBLE=1`` set. A test checks both write the same.
"""

from __future__ import annotations

import os
import re
import sys

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from typing import Any

# rich.markup's tag and escape patterns
_TAGS = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def escape(text: str) -> str:
    """``rich.markup.escape``: brackets that would read as a tag are escaped."""
    text = _ESCAPE.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        return text + "\\"
    return text


def render(markup: str) -> str:
    """The plain text rich shows for ``markup`` (its tags dropped, escapes undone)."""
    if "[" not in markup:
        return markup
    out: list[str] = []
    position = 0
    for match in _TAGS.finditer(markup):
        full, escapes, _ = match.groups()
        start, end = match.span()
        if start > position:
            out.append(markup[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            if backslashes:
                out.append("\\" * backslashes)
            if escaped:  # an escaped tag: its text, as is
                out.append(full[len(escapes):])
    if position < len(markup):
        out.append(markup[position:].replace("\\[", "["))
    return "".join(out)


def _width() -> int:
    """rich's console width for a file that is not a terminal."""
    width = None
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd)[0]
        except (AttributeError, ValueError, OSError):
            continue
        break
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80


class PlainConsole:
    """The part of ``rich.console.Console`` that ``ls`` and :mod:`.table` use, for plain text."""

    no_color = True
    color_system = None
    legacy_windows = record = is_jupyter = False

    def __init__(self, file: Any = None) -> None:
        self.file = file if file is not None else sys.stdout
        self.width = _width()

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", **_: Any) -> None:
        self.file.write(sep.join(render(str(o)) for o in objects) + end)


def plain_console() -> PlainConsole | None:
    """A :class:`PlainConsole` where rich would write no colours, else None (use rich)."""
    if os.environ.get("TTY_COMPATIBLE", "") == "1" or os.environ.get("FORCE_COLOR") is not None:
        return None
    try:
        if sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return PlainConsole()
