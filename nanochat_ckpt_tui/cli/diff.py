"""``diff``: how the weights moved from checkpoint A to checkpoint B (streamed, no torch)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..fmt import human_bytes, human_span, plural
from ..store.storage import is_url
from .common import (
    EXIT_OK,
    CliError,
    _console,
    _console_err,
    _json_clean,
    _json_flag,
    _load,
    _print_json,
    _remote_flag,
    _resolve,
)
from .table import Col, print_table


def _sci(v: float | None) -> str:
    return "—" if v is None else f"{v:.3e}"


def cmd_diff(args: argparse.Namespace) -> int:
    from ..store.diff import DiffCancelled, diff
    from ..store.ptfile import CheckpointError

    cat = None if is_url(args.a) and is_url(args.b) else _load(args.base_dir, args)
    a, b = _resolve(cat, args.a, args), _resolve(cat, args.b, args)
    for ck in (a, b):
        if not ck.openable:  # a whole zip opens even inside the write window
            raise CliError(f"{ck.key} is still being written ({', '.join(ck.unfinished)} has "
                           "no zip end yet); diff it when the write is done")
    progress = None
    bar = None
    if sys.stderr.isatty() and not args.quiet:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        bar = Progress("diff", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                       transient=True, console=_console_err())
        task = bar.add_task("diff", total=None)
        bar.start()

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
    try:
        report = diff(a, b, progress=progress)
    except CheckpointError as e:
        raise CliError(str(e)) from None
    except DiffCancelled:
        raise CliError("cancelled") from None
    finally:
        if bar is not None:
            bar.stop()
    if args.json:
        doc = report.to_json()
        if args.top:
            doc["tensors"] = sorted(doc["tensors"], key=lambda t: -(t["rel_change"] or 0))[
                :args.top]
        _print_json(doc)
        return EXIT_OK
    _print_diff(report, args.top or 15)
    return EXIT_OK


LAYER_COLS = [Col("group", fit=True, soft_min=16, middle=True), Col("rel change", "right"),
              Col("", drop=2), Col("cosine", "right", drop=1)]


def _tensor_cols(nonfinite: bool) -> list[Col]:
    cols = [Col("tensor", fit=True, soft_min=28, hard_min=12, middle=True),
            Col("rel change", "right"), Col("cosine", "right", drop=2),
            Col("max |B−A|", "right", drop=1)]
    return cols + [Col("NaN/Inf A→B", "right")] if nonfinite else cols


def _meta_value(v: Any) -> str:
    """A meta value as JSON spells it (``null``, ``"d20"``, ``0.02``), never Python's repr."""
    try:
        return json.dumps(_json_clean(v), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(v)


def _print_diff(report: Any, top: int) -> None:
    from rich.markup import escape

    con = _console()
    a, b = report.a, report.b
    con.print(f"[bold]A[/] {escape(a.label)}   [bold]B[/] {escape(b.label)}", highlight=False,
              soft_wrap=True)
    parts = []
    if a.val_bpb is not None and b.val_bpb is not None:
        parts.append(f"val_bpb {a.val_bpb:.4f} → {b.val_bpb:.4f} ({b.val_bpb - a.val_bpb:+.4f})")
    if a.mtime and b.mtime:
        parts.append(f"{human_span(b.mtime - a.mtime)} apart")
    if a.size is not None and b.size is not None:
        parts.append(f"size {human_bytes(a.size)} → {human_bytes(b.size)}")
    if parts:
        con.print("   ".join(parts), highlight=False)
    o = report.overall
    con.print(f"[bold]overall[/] rel change {_sci(o.rel_change)}  cosine "
              f"{'—' if o.cosine is None else f'{o.cosine:.6f}'}  max |B−A| "
              f"{_sci(o.max_abs_diff)}  over {plural(o.n_tensors, 'tensor')}, "
              f"{human_bytes(report.bytes_total)} read in {report.elapsed_s:.2f}s",
              highlight=False)
    if report.identical:
        con.print("[green]identical[/]: same keys, shapes, dtypes and values")
    groups = report.groups  # every tensor once: the layers, then the rest by kind
    peak = max((g.rel_change or 0 for g in groups), default=0) or 1
    print_table(con, LAYER_COLS, [
        [g.name, _sci(g.rel_change), "█" * max(0, round(24 * (g.rel_change or 0) / peak)),
         "—" if g.cosine is None else f"{g.cosine:.6f}"] for g in groups],
        title="[bold]relative change by layer[/]")
    shown = sorted(report.tensors, key=lambda t: -(t.rel_change or 0))[:top]
    nonfinite = any(t.nan_a or t.inf_a or t.nan_b or t.inf_b for t in shown)
    rows = []
    for t in shown:
        row: list[Any] = [t.name, _sci(t.rel_change),
                          "—" if t.cosine is None else f"{t.cosine:.6f}", _sci(t.max_abs_diff)]
        if nonfinite:
            bad = t.nan_a or t.inf_a or t.nan_b or t.inf_b
            row.append((f"{t.nan_a + t.inf_a}→{t.nan_b + t.inf_b}", "red") if bad else "")
        rows.append(row)
    print_table(con, _tensor_cols(nonfinite), rows,
                title=f"[bold]top {plural(len(shown), 'tensor')} by relative change[/]")
    for k in report.only_a:
        con.print(f"[red]- only in A[/] {escape(k.name)} {list(k.shape)} {k.dtype}",
                  highlight=False, soft_wrap=True)
    for k in report.only_b:
        con.print(f"[green]+ only in B[/] {escape(k.name)} {list(k.shape)} {k.dtype}",
                  highlight=False, soft_wrap=True)
    for c in report.changed:
        con.print(f"[yellow]~ changed[/] {escape(c.name)} {list(c.shape_a)} {c.dtype_a} → "
                  f"{list(c.shape_b)} {c.dtype_b}", highlight=False, soft_wrap=True)
    if report.meta_changes:
        con.print("[bold]meta differences[/]")
        for m in report.meta_changes:
            con.print(f"  {escape(m.path)}: {escape(_meta_value(m.a))} → "
                      f"{escape(_meta_value(m.b))}", highlight=False)
    for n in report.notes:
        con.print(f"[dim]note: {escape(n)}[/]", highlight=False)


def add_command(sub: Any, name: str) -> None:
    p = sub.add_parser("diff", help="how the weights moved between two checkpoints")
    p.add_argument("a", metavar="A", help="PATH, TAG[@STEP] or URL")
    p.add_argument("b", metavar="B", help="PATH, TAG[@STEP] or URL")
    p.add_argument("--top", type=int, metavar="N", help="show (or with --json keep) the N "
                   "tensors that changed most")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--base-dir", metavar="BASE_DIR|URL")
    _json_flag(p)
    _remote_flag(p)
    p.set_defaults(func=cmd_diff)
