"""``ls`` and ``du`` for people (tables, rich markup): imported only without ``--json``, so
that ``ls --json`` loads neither this code nor :mod:`..fmt`."""

from __future__ import annotations

import time

from ..fmt import human_age, human_bytes, plural
from ..store.meta import val_bpb_of
from .common import STATE_STYLE, VERDICT_BADGE, _console, _num, error_reason

TYPE_CHECKING = False  # (not imported at run time: start-up)
if TYPE_CHECKING:
    from typing import Any

    from ..store.layout import Catalog, Checkpoint, Stage, Tag
    from ..store.trash import TrashUsage


def _print_preamble(con: Any, cat: Catalog, hint: str | None) -> None:
    """Notes first (an unreadable dir must not hide below 6,000 rows), then, in a base dir
    without stages, the hint (:func:`.browse.misplaced_hint`)."""
    from .plain import escape  # (= rich.markup.escape, without rich)

    for note in cat.notes:
        con.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if not cat.stages:
        con.print(escape(hint or "no *_checkpoints directories here"), highlight=False,
                  soft_wrap=True)


def ls_cols(with_note: bool) -> list[Any]:
    """The columns of an ``ls`` table (the table module is loaded for human output only)."""
    from .table import Col

    cols = [Col("step", "right"), Col("model", "right", drop=1), Col("optim", "right", drop=3),
            Col("total", "right"), Col("val_bpb", "right"), Col("age", "right", drop=2),
            Col("state", fit=True, soft_min=32, hard_min=12)]
    return cols + [Col("note", fit=True, soft_min=16, hard_min=6)] if with_note else cols


def _state_cell(ck: Checkpoint, verdict: str | None = None) -> list[tuple[str, str]]:
    cell = [(ck.state.value, STATE_STYLE.get(ck.state.value, ""))]
    badge = VERDICT_BADGE.get(verdict or "")
    if badge is not None:
        cell += [(" ", ""), badge]
    if ck.is_latest:
        cell += [(" ", ""), ("latest", "bold cyan")]
    if ck.pinned:
        cell += [(" ", ""), ("pinned", "bold magenta")]
    return cell


def _ls_rows(tag: Tag, cks: list[Checkpoint], now: float, with_note: bool,
             with_other: bool = True, verdicts: dict[str, str] | None = None
             ) -> list[list[Any]]:
    rows: list[list[Any]] = []
    sizes: dict[int, str] = {}  # a run's files have a handful of sizes: format each once

    def size(n: int) -> str:
        text = sizes.get(n)
        if text is None:
            text = sizes[n] = human_bytes(n)
        return text

    for ck in cks:
        files = ck.files
        optim = ck.optim
        shards = f" ({len(optim)}r)" if optim else ""
        row: list[Any] = [str(ck.step), size(ck.model_bytes),
                          size(sum([f.size for f in optim])) + shards,
                          size(sum([f.size for f in files])), _num(val_bpb_of(ck)),
                          human_age(now - max([f.mtime for f in files], default=0.0)),
                          _state_cell(ck, verdicts.get(ck.key) if verdicts else None)]
        if with_note:  # one line: a note's line breaks would break the table
            row.append(" ".join((ck.note or "").split()))
        rows.append(row)
    for f in tag.other_files if with_other else []:
        row = [("other", "dim"), "", "", size(f.size), "", "", (f.name, "dim")]
        rows.append(row + [""] if with_note else row)
    return rows


def _tag_title(stage: Stage, tag: Tag) -> str:
    from .plain import escape  # (= rich.markup.escape, without rich)

    default = " (default)" if stage.default_tag == tag.name else ""
    parts = [f"[bold]{escape(stage.label)} / {escape(tag.name)}[/]{default}",
             plural(len(tag.checkpoints), "step"), human_bytes(tag.total_bytes)]
    pins = sum(1 for c in tag.checkpoints if c.pinned)
    if pins:
        parts.append(f"[magenta]{plural(pins, 'pin')}[/]")
    return "  ·  ".join(parts)


def print_listing(cat: Catalog, view: list[tuple[Stage, list[Tag]]], latest_only: bool,
                  verdicts: dict[str, str], hint: str | None) -> None:
    """``ls``: the base dir's line, its notes, and a table of each tag's steps."""
    from .plain import escape, plain_console  # (escape = rich.markup.escape, without rich)
    from .table import print_table

    con = plain_console() or _console()  # (no colours to write: no rich to import)
    now = time.time()
    where = ("remote, read-only" if cat.read_only
             else f"{human_bytes(cat.free_bytes)} free")
    con.print(f"[bold]{escape(cat.location)}[/]  {human_bytes(cat.total_bytes)} in "
              f"checkpoints, {where}", highlight=False, soft_wrap=True)
    _print_preamble(con, cat, hint)
    for stage, tags in view:
        if stage.error:
            con.print(f"[bold]{escape(stage.label)}[/] ({escape(stage.dirname)})  [bold red]"
                      f"{error_reason(stage.error)}[/] (cannot list the stage dir)",
                      highlight=False, soft_wrap=True)
            con.print()
        for tag in tags:
            title = _tag_title(stage, tag)
            if tag.error:
                con.print(f"{title}  [bold red]{error_reason(tag.error)}[/] (cannot list the "
                          "tag dir)", highlight=False, soft_wrap=True)
                con.print()
                continue
            cks = ([tag.latest] if tag.latest is not None else []) if latest_only \
                else tag.checkpoints
            # --latest lists steps only: other files stay in the full listing
            with_other = bool(tag.other_files) and not latest_only
            if not cks and not with_other:
                con.print(f"{title}\n[dim]no checkpoints[/]", highlight=False, soft_wrap=True)
                con.print()
                continue
            with_note = any(c.note for c in cks)
            cols = ls_cols(with_note)
            print_table(con, cols, _ls_rows(tag, cks, now, with_note, with_other, verdicts),
                        title=title)
            con.print()


def print_usage(cat: Catalog, trash: TrashUsage | None, hint: str | None) -> None:
    """``du``: bytes by stage and tag, free space, what waits in the trash."""
    from rich.markup import escape
    from rich.table import Table

    con = _console()
    _print_preamble(con, cat, hint)
    table = Table(title=escape(cat.location), title_justify="left")
    for col in ("stage / tag", "steps", "model", "optimizer", "meta", "other", "total"):
        if col == "stage / tag":  # names are cut with an ellipsis, never broken
            table.add_column(col, justify="left", overflow="ellipsis")
        else:
            table.add_column(col, justify="right", no_wrap=True)

    def row(name: str, steps: int, node: Any, bold: bool = False, error: str | None = None
            ) -> None:
        if error:
            table.add_row(f"{name} [bold red]{error_reason(error)}[/]", "?", "", "", "", "", "")
            return
        other = node.total_bytes - node.model_bytes - node.optim_bytes - node.meta_bytes
        total = human_bytes(node.total_bytes)
        table.add_row(name, str(steps), human_bytes(node.model_bytes),
                      human_bytes(node.optim_bytes), human_bytes(node.meta_bytes),
                      human_bytes(other), f"[bold]{total}[/]" if bold else total)

    for stage in cat.stages:
        row(f"[bold]{escape(stage.label)}[/]",
            sum(len(t.checkpoints) for t in stage.tags), stage, bold=True, error=stage.error)
        for tag in stage.tags:
            row(f"  {escape(tag.name)}", len(tag.checkpoints), tag, error=tag.error)
    table.add_section()
    row("[bold]total[/]", len(cat.checkpoints), cat, bold=True)
    con.print(table)
    if cat.free_bytes is not None:
        con.print(f"free on this filesystem: [bold]{human_bytes(cat.free_bytes)}[/] of "
                  f"{human_bytes(cat.disk_bytes)}")
    if trash is not None and trash.files:
        con.print(f"in the trash: [bold]{human_bytes(trash.bytes)}[/] in "
                  f"{plural(trash.files, 'file')}, freed when you empty it "
                  f"(nanochat-ckpt trash {escape(cat.location)} --empty)", highlight=False,
                  soft_wrap=True)
