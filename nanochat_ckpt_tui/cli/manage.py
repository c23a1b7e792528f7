"""``prune``, ``pin`` and ``unpin``: the commands that change a base dir (local only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..fmt import human_bytes, plural
from ..store import layout
from ..store.pins import PinsError, update_pin
from ..store.prune import Override, PruneError, PrunePlan, Rules, check_trash, execute, plan_rules
from ..store.refs import RefError, resolve_tag
from ..store.storage import is_url
from .common import (
    EXIT_DECLINED,
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CliError,
    _confirm,
    _console,
    _json_flag,
    _print_json,
    _refuse_remote,
    _scan,
    resolve_local,
    unreadable_ref,
)


def _print_plan(plan: PrunePlan) -> None:
    """The plan, grouped by checkpoint, every file named in full: nothing is abbreviated."""
    con = _console()
    base = plan.base_dir
    if plan.items:
        con.print(f"[bold]would delete {plural(len(plan.items), 'file')}, "
                  f"{human_bytes(plan.bytes_freed)}[/] ({plural(plan.bytes_freed, 'byte')}) "
                  f"under {base}:")
        groups: dict[str, list] = {}
        for item in plan.items:
            groups.setdefault(item.checkpoint, []).append(item)
        for key, items in groups.items():
            size = sum(i.size for i in items)
            con.print(f"  [bold]{key}[/]  {human_bytes(size)}  [dim]{items[0].reason}[/]")
            for item in items:
                try:
                    shown = str(item.path.relative_to(base))
                except ValueError:
                    shown = str(item.path)
                con.print(f"    {shown}  [dim]{item.kind}[/]  {human_bytes(item.size)}",
                          overflow="fold", soft_wrap=True)
    else:
        con.print("nothing to delete")
    for p in plan.protected:
        how = "" if p.overridable else " [dim](cannot be overridden)[/]"
        con.print(f"[green]protected[/] {p.checkpoint}: {p.reason}{how}")
    for w in plan.warnings:
        con.print(f"[bold yellow]warning:[/] {w}")


def _check_rules(args: argparse.Namespace) -> None:
    """Each keep rule counts steps: 0 (or less) keeps nothing by that rule and is refused, so
    that a typo cannot turn a prune into "delete every step but the protected ones"."""
    for flag, value in (("--keep-last", args.keep_last), ("--keep-every", args.keep_every),
                        ("--keep-best", args.keep_best)):
        if value is not None and value < 1:
            raise CliError(f"{flag} must be a positive number (1 or more), not {value}; to "
                           "prune by the other rules only, leave it out", EXIT_USAGE)


def cmd_prune(args: argparse.Namespace) -> int:
    _refuse_remote(args.base_dir, "prune")
    _check_rules(args)
    cat = _scan(args.base_dir, args)
    for spec in args.tags:
        why = unreadable_ref(cat, spec)
        if why:
            raise CliError(why)
    try:
        tags = [resolve_tag(cat, spec) for spec in args.tags]
        rules = Rules(args.keep_last, args.keep_every, args.keep_best, args.optimizer_only)
        override = Override(latest=args.allow_latest, pinned=args.allow_pinned)
        plan = plan_rules(cat, tags, rules, override)
        trash = check_trash(Path(args.trash), cat.base_dir) if args.trash else None
    except (RefError, PruneError) as e:
        raise CliError(str(e), EXIT_USAGE) from None
    if args.dry_run or plan.is_empty or not args.yes:
        if args.json and (args.dry_run or plan.is_empty):
            _print_json(plan.to_json())
        elif not args.json:
            _print_plan(plan)
    if plan.is_empty:
        return EXIT_NOTHING
    if args.dry_run:
        return EXIT_OK
    if not args.yes:
        if args.json:
            raise CliError("--json without --dry-run needs --yes (there is no prompt in JSON "
                           "mode)", EXIT_USAGE)
        verb = "Move to trash" if trash else "Delete"
        sys.stdout.flush()
        if not _confirm(f"{verb} {plural(len(plan.items), 'file')}, "
                        f"{human_bytes(plan.bytes_freed)}? [y/N] "):
            print("nothing deleted", file=sys.stderr)
            return EXIT_DECLINED
    result = execute(plan, trash=trash)
    if args.json:
        _print_json({**result.to_json(), "plan": plan.to_json()})
    else:
        con = _console()
        for r in result.results:
            if r.status not in ("removed", "trashed"):
                con.print(f"[yellow]{r.status}[/] {r.path}: {r.detail}")
        con.print(f"{result.count('removed')} removed, {result.count('trashed')} trashed, "
                  f"{result.count('skipped')} skipped, {result.count('failed')} failed; "
                  f"freed {human_bytes(result.bytes_freed)}"
                  + (f", moved {human_bytes(result.bytes_trashed)} to {trash} (freed when you "
                     "empty it)" if trash else ""))
    return EXIT_OK if result.ok else EXIT_PARTIAL


def cmd_pin(args: argparse.Namespace) -> int:
    _refuse_remote(args.base_dir, args.command)
    if is_url(args.ref):
        _refuse_remote(args.ref, args.command)
    ck = resolve_local(layout.scan(args.base_dir), args.ref)
    if ck.step < 0:
        raise CliError(f"{args.ref} is not a checkpoint step of a tag", EXIT_USAGE)
    pinned = args.command == "pin"
    try:
        entry = update_pin(ck.dir, ck.step, pinned=pinned, note=getattr(args, "note", None),
                           clear_note=not pinned and args.clear_note)
    except PinsError as e:
        raise CliError(str(e)) from None
    note = f" ({entry.note})" if entry.note else ""
    print(f"{'pinned' if entry.pinned else 'unpinned'} {ck.key}{note}")
    return EXIT_OK


def add_command(sub: Any, name: str) -> None:
    if name == "prune":
        p = sub.add_parser("prune", help="delete old checkpoints by rules (asks first)",
                           description="Keep what the rules keep in each TAG; delete the rest "
                           "(or only their optimizer shards). Exit codes: 0 done (or dry run), 3 "
                           "nothing to do, 4 partly failed or skipped, 5 declined at the prompt.")
        p.add_argument("tags", nargs="+", metavar="TAG")
        p.add_argument("--keep-last", type=int, metavar="N", help="keep the last N steps")
        p.add_argument("--keep-every", type=int, metavar="K",
                       help="keep steps that are multiples of K")
        p.add_argument("--keep-best", type=int, metavar="M", help="keep the M lowest val_bpb")
        p.add_argument("--optimizer-only", action="store_true",
                       help="for the steps not kept, delete only the optimizer shards")
        p.add_argument("--allow-latest", action="store_true",
                       help="allow deleting the latest step of a tag")
        p.add_argument("--allow-pinned", action="store_true",
                       help="allow deleting pinned steps")
        p.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
        p.add_argument("--yes", "-y", action="store_true", help="do not ask")
        p.add_argument("--trash", metavar="DIR", help="move files here (same filesystem)")
        p.add_argument("--base-dir", metavar="BASE_DIR")
        _json_flag(p)
        p.set_defaults(func=cmd_prune)
    elif name == "pin":
        p = sub.add_parser("pin", help="pin a checkpoint (protects it from pruning)")
        p.add_argument("ref", metavar="TAG@STEP")
        p.add_argument("--note", metavar="TEXT", help="attach a short note")
        p.add_argument("--base-dir", metavar="BASE_DIR")
        p.set_defaults(func=cmd_pin, clear_note=False)
    else:
        p = sub.add_parser("unpin", help="unpin a checkpoint (its note stays unless --clear-note)")
        p.add_argument("ref", metavar="TAG@STEP")
        p.add_argument("--clear-note", action="store_true", help="also remove the note")
        p.add_argument("--base-dir", metavar="BASE_DIR")
        p.set_defaults(func=cmd_pin, note=None)
