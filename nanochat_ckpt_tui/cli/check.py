"""``check``: every byte of every zip against its CRC, every tensor's health, the meta against
the shapes (:mod:`nanochat_ckpt_tui.store.check`), for one step, a tag, a stage or everything.

What to check: ``TAG@STEP``, a file: one step; ``TAG`` (no ``@``): all its steps, in every
stage that has that tag; a stage (``base``): all its tags; a tag dir, stage dir or base dir
(a path): everything in it; no argument: the whole base dir. URLs too (read-only).

Exit codes: 0 every step good (steps still being written are skipped with a note: they are
checked once written); 1 a step damaged or unhealthy, or a dir that could not be listed;
2 a bad reference or usage; 130 cancelled (Ctrl-C: the files checked so far are remembered,
so running it again goes on where it stopped).

Progress goes to stderr: a bar on a terminal; elsewhere one line every 10 s once a check has
run that long (a short check prints nothing, a long one in a log shows it is alive).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fmt import human_bytes, plural
from ..store import layout
from ..store.layout import LOCAL, Catalog, Checkpoint, FileKind, classify, scan_tag_dir
from ..store.meta import assess_metas
from ..store.refs import RefError, checkpoint_for_file, resolve_url
from ..store.storage import StorageError, is_url, open_storage, redact
from .browse import select_view
from .common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    VERDICT_STYLE,
    ByteMeter,
    CliError,
    _console,
    _json_flag,
    _options,
    _print_json,
    _remote_flag,
    _scan,
    ctrl_c_cancels,
    error_reason,
    resolve_local,
    unreadable_ref,
)
from .table import Col, print_table

SCHEMA = "nanochat-ckpt.check/1"
EXIT_CANCELLED = 130
VERDICTS = ("good", "damaged", "unhealthy", "unchecked")


@dataclass
class Selection:
    """The steps to check, in the order named, each once; and the dirs that could not be
    listed (a problem: what is in them is unknown)."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    base_dir: str | None = None
    seen: set[tuple[str, ...]] = field(default_factory=set)

    def add(self, cks: list[Checkpoint]) -> None:
        for ck in cks:
            ident = tuple(ck.storage.display(f.path) for f in ck.files) or (ck.key,)
            if ident not in self.seen:
                self.seen.add(ident)
                self.checkpoints.append(ck)

    def add_catalog(self, cat: Catalog, view: list[tuple[Any, list[Any]]] | None = None
                    ) -> None:
        for stage, tags in view if view is not None else [(s, s.tags) for s in cat.stages]:
            if stage.error:
                self.unreadable.append(f"{stage.label}: {error_reason(stage.error)} (cannot "
                                       f"list the stage dir {stage.dirname})")
            for tag in tags:
                if tag.error:
                    self.unreadable.append(f"{stage.label}/{tag.name}: "
                                           f"{error_reason(tag.error)} (cannot list the tag dir)")
                self.add(tag.checkpoints)


def _is_path(ref: str, args: argparse.Namespace) -> bool:
    """A path (else a tag or stage name): it starts like one (``/``, ``~``, ``.``), or it
    exists here and no ``--base-dir`` says the names are tags."""
    return ref.startswith(("/", "~", ".")) or (args.base_dir is None and os.path.lexists(ref))


def _local_path(sel: Selection, ref: str) -> None:
    """A file (its step), a base dir (everything), a stage dir or a tag dir (its steps)."""
    path = Path(os.path.abspath(Path(ref).expanduser()))
    if not os.path.lexists(path):
        raise CliError(f"{ref}: no such file or directory", EXIT_USAGE)
    if not path.is_dir():
        try:
            sel.add([checkpoint_for_file(path)])
        except OSError as e:
            raise CliError(f"{ref}: {e.strerror or e}") from None
        return
    cat = layout.scan(path)
    if cat.stages:
        sel.base_dir = sel.base_dir or cat.location
        sel.add_catalog(cat)
        return
    if path.name.endswith("_checkpoints"):
        parent = layout.scan(path.parent)
        stage = parent.stage(path.name)
        if stage is not None:
            sel.add_catalog(parent, [(stage, stage.tags)])
            return
    try:
        tag = scan_tag_dir(LOCAL, path, [], time.time(), path.parent.name)
    except OSError as e:
        raise CliError(f"{ref}: {e.strerror or e} (cannot list it)") from None
    if not tag.checkpoints:
        raise CliError(f"{ref}: no checkpoints here (give a base dir, a stage or tag dir, a "
                       "checkpoint file, or TAG[@STEP])", EXIT_USAGE)
    sel.add(tag.checkpoints)


def _url(sel: Selection, ref: str, args: argparse.Namespace) -> None:
    """``…/TAG@STEP`` or a file URL: one step; else a base dir, a stage dir or a tag dir."""
    options = _options(args)
    last = ref.rstrip("/").rpartition("/")[2]
    try:
        if "@" in last or classify(last)[0] is not FileKind.OTHER:
            sel.add([resolve_url(ref, storage_options=options)])
            return
        if last.endswith("_checkpoints"):  # a stage dir
            parent = layout.scan(ref.rstrip("/").rpartition("/")[0], storage_options=options)
            stage = parent.stage(last)
            if stage is not None:
                sel.add_catalog(parent, [(stage, stage.tags)])
                return
        cat = layout.scan(ref, storage_options=options)
        if cat.exists and cat.stages:
            sel.base_dir = sel.base_dir or cat.location
            sel.add_catalog(cat)
            return
        storage = open_storage(ref, options)
        tag = scan_tag_dir(storage, storage.root, [], time.time())
    except StorageError as e:
        raise CliError(str(e)) from None
    except RefError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except OSError as e:
        raise CliError(f"{redact(ref)}: cannot list ({e.strerror or e})") from None
    if not tag.checkpoints:
        raise CliError(f"{redact(ref)}: no checkpoints there", EXIT_USAGE)
    sel.add(tag.checkpoints)


def select(args: argparse.Namespace) -> Selection:
    """What the arguments name (see the module doc)."""
    sel = Selection()
    cat: Catalog | None = None

    def catalog() -> Catalog:
        nonlocal cat
        if cat is None:
            cat = _scan(args.base_dir, args, metas=False)
            sel.base_dir = cat.location
        return cat

    for ref in args.refs or [None]:
        if ref is None:
            sel.add_catalog(catalog())
        elif is_url(ref):
            _url(sel, ref, args)
        elif "@" in ref:
            sel.add([resolve_local(catalog(), ref)])
        elif _is_path(ref, args):
            _local_path(sel, ref)
        else:
            c = catalog()
            why = unreadable_ref(c, ref)  # a tag named that cannot be listed: as show says
            if why:
                raise CliError(why)
            sel.add_catalog(c, select_view(c, [ref]))  # a tag in every stage, or a stage
    assess_metas(sel.checkpoints)  # `bad meta` states, as ls shows them
    return sel


# --------------------------------------------------------------------------------------------
# the command


def cmd_check(args: argparse.Namespace) -> int:
    from ..store.check import CheckCancelled, check
    from ..store.check_cache import default_cache
    from ..store.step_verdicts import remember, step_keys

    sel = select(args)
    cks = sel.checkpoints
    cache = None if args.no_cache else default_cache()
    keys = step_keys(cks) if cache is not None else []  # (made before anything is read)
    cancel = threading.Event()
    started = time.perf_counter()
    meter = ByteMeter("check", quiet=args.quiet)
    try:
        with meter, ctrl_c_cancels(cancel, "stopping the check after the current chunk"):
            reports = check(cks, progress=meter, cancel=cancel, cache=cache,
                            use_cache=cache is not None)
    except (CheckCancelled, KeyboardInterrupt):
        meter.stop()
        print(f"nanochat-ckpt: check cancelled after {human_bytes(meter.done)} of "
              f"{human_bytes(meter.total)}; the files checked so far are remembered, run it "
              "again to go on", file=sys.stderr)
        return EXIT_CANCELLED
    elapsed = time.perf_counter() - started
    if cache is not None:
        for ck, key, rep in zip(cks, keys, reports, strict=True):
            if ck.weights is not None:  # (as ls finds it: cached_report adds nothing else)
                remember(cache, key, rep)
    counts = {v: sum(1 for r in reports if r.verdict == v) for v in VERDICTS}
    if args.json:
        _print_json({"schema": SCHEMA, "base_dir": sel.base_dir,
                     "reports": [r.to_json(tensors=not args.no_tensors) for r in reports],
                     "counts": counts, "unreadable": sel.unreadable,
                     "bytes_read": sum(r.bytes_read for r in reports),
                     "elapsed_s": elapsed})
    else:
        _print_reports(reports, sel, counts, elapsed)
    bad = counts["damaged"] or counts["unhealthy"] or sel.unreadable
    return EXIT_ERROR if bad else EXIT_OK


CHECK_COLS = [Col("verdict"), Col("checkpoint", fit=True, soft_min=24, hard_min=12, middle=True),
              Col("", fit=True, soft_min=20, hard_min=8)]


def _why(rep: Any) -> str:
    """The one-line summary without its verdict word; for a good step, its size and whether it
    came from the cache, or its first note."""
    if rep.verdict != "good":
        return rep.summary().partition(": ")[2] or rep.summary()
    notes = [f for f in rep.all_findings if f.severity == "note"]
    size = human_bytes(sum(fc.size for fc in rep.files))
    cached = all(fc.cached for fc in rep.files) and rep.files
    text = f"{plural(len(rep.files), 'file')}, {size}" + (" (cached)" if cached else "")
    return f"{text}; {notes[0]}" if notes else text


def _print_reports(reports: list[Any], sel: Selection, counts: dict[str, int],
                   elapsed: float) -> None:
    from rich.markup import escape

    con = _console()
    if not reports and not sel.unreadable:
        con.print("nothing to check (no checkpoints)")
        return
    print_table(con, CHECK_COLS, [[(r.verdict, VERDICT_STYLE.get(r.verdict, "")), r.key,
                                   _why(r)] for r in reports])
    for rep in reports:
        if rep.verdict in ("good", "unchecked"):
            continue
        con.print()
        con.print(f"[bold]{escape(rep.key)}[/]  [{VERDICT_STYLE[rep.verdict]}]{rep.verdict}[/]",
                  highlight=False, soft_wrap=True)
        for f in rep.all_findings:
            style = "dim" if f.severity == "note" else VERDICT_STYLE.get(f.severity, "")
            where = "  ".join(x for x in (f.file or "(step)", f.tensor or "") if x)
            con.print(f"  [{style}]{f.severity:<9}[/] {escape(where)}  {escape(f.message)}",
                      highlight=False, soft_wrap=True)
    for why in sel.unreadable:
        con.print(f"[bold red]unreadable[/] {escape(why)}", highlight=False, soft_wrap=True)
    con.print()
    read = sum(r.bytes_read for r in reports)
    cached = sum(fc.size for r in reports for fc in r.files if fc.cached)
    parts = [f"{counts[v]:,} {v}" for v in VERDICTS if counts[v]]
    rate = f" ({human_bytes(read / elapsed)}/s)" if read and elapsed > 0 else ""
    line = f"{plural(len(reports), 'step')}: {', '.join(parts) or 'none'}; "
    line += f"{human_bytes(read)} read in {elapsed:.1f} s{rate}" if read else \
        f"nothing read ({elapsed:.1f} s)"
    if cached:
        line += f", {human_bytes(cached)} checked before (cached)"
    if sel.unreadable:
        line += f"; {plural(len(sel.unreadable), 'dir')} could not be listed"
    con.print(line, highlight=False, soft_wrap=True)
    if counts["unchecked"]:
        n = counts["unchecked"]
        con.print(f"note: {plural(n, 'step')} still being written {'was' if n == 1 else 'were'}"
                  " not checked; run check again once training has saved "
                  f"{'it' if n == 1 else 'them'}", highlight=False, soft_wrap=True)


def add_command(sub: Any, name: str) -> None:
    p = sub.add_parser(
        "check", help="verify checkpoints: every byte against its CRC, NaN/Inf in every tensor",
        description="Read every byte of the checkpoints named (one step, a TAG's steps in "
                    "every stage, a stage, a dir, or with no argument the whole base dir) "
                    "and compare it with the CRC the zip recorded; count NaN/Inf and compute "
                    "the norm of every tensor (optimizer state included); check the meta "
                    "against the shapes. Results are cached per file version, so a re-check "
                    "reads only what changed. Exit codes: 0 all good (steps still being "
                    "written are skipped with a note), 1 damaged or unhealthy steps found (or "
                    "a dir that could not be listed), 2 bad reference, 130 cancelled.")
    p.add_argument("refs", nargs="*", metavar="TAG[@STEP]|PATH|BASE_DIR|URL",
                   help="what to check (default: the whole base dir)")
    p.add_argument("--base-dir", metavar="BASE_DIR|URL",
                   help="the base dir the TAGs are in (default: $NANOCHAT_BASE_DIR, else "
                        "~/.cache/nanochat)")
    p.add_argument("--no-tensors", action="store_true",
                   help="with --json: leave out the per-tensor health")
    p.add_argument("--no-cache", action="store_true",
                   help="read every file again, ignoring earlier results (and not storing "
                        "these)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    _json_flag(p)
    _remote_flag(p)
    p.set_defaults(func=cmd_check)
