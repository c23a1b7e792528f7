"""``prune``, ``rm``, ``pin`` and ``unpin``: the commands that change a base dir (local only).

``prune`` (by rules) and ``rm`` (the steps named) make a plan with the same protections, then
carry it out the same way. Before planning, the steps that decide whether a tag keeps a good
checkpoint are checked (cache first; ``--no-check`` skips that and the plan says so): reading
them shows progress on stderr and Ctrl-C stops it, deleting nothing (exit 130). A deletion
that protection would have refused but the check allows (a damaged latest step) is listed
with its reason and needs the whole word "yes" at the prompt, or ``--yes``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fmt import human_bytes, plural
from ..store import layout
from ..store.layout import Catalog, Checkpoint
from ..store.pins import PinsError, update_pin
from ..store.prune import (
    Override,
    PruneError,
    PrunePlan,
    Rules,
    check_trash,
    execute,
    plan_rules,
    plan_selection,
)
from ..store.refs import RefError, find_tags, resolve_tag
from ..store.storage import is_url
from ..store.trash import TRASH_DIR, trash_dir
from .common import (
    EXIT_DECLINED,
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    ByteMeter,
    CliError,
    _confirm,
    _console,
    _json_flag,
    _print_json,
    _refuse_remote,
    _scan,
    ctrl_c_cancels,
    resolve_local,
    unreadable_ref,
)

if TYPE_CHECKING:
    from ..store.verdicts import Verdicts

EXIT_CANCELLED = 130


def _print_plan(plan: PrunePlan) -> None:
    """The plan, grouped by checkpoint, every file named in full: nothing is abbreviated."""
    from rich.markup import escape

    con = _console()
    base = plan.base_dir
    if plan.items:
        con.print(f"[bold]would delete {plural(len(plan.items), 'file')}, "
                  f"{human_bytes(plan.bytes_freed)}[/] ({plural(plan.bytes_freed, 'byte')}) "
                  f"under {escape(str(base))}:", highlight=False, soft_wrap=True)
        groups: dict[str, list] = {}
        for item in plan.items:
            groups.setdefault(item.checkpoint, []).append(item)
        for key, items in groups.items():
            size = sum(i.size for i in items)
            con.print(f"  [bold]{escape(key)}[/]  {human_bytes(size)}  "
                      f"[dim]{escape(items[0].reason)}[/]", highlight=False, soft_wrap=True)
            for item in items:
                try:
                    shown = str(item.path.relative_to(base))
                except ValueError:
                    shown = str(item.path)
                con.print(f"    {escape(shown)}  [dim]{item.kind}[/]  {human_bytes(item.size)}",
                          overflow="fold", soft_wrap=True, highlight=False)
    else:
        con.print("nothing to delete")
    for p in plan.protected:
        how = "" if p.overridable else " [dim](cannot be overridden)[/]"
        con.print(f"[green]protected[/] {escape(p.checkpoint)}: {escape(p.reason)}{how}",
                  highlight=False, soft_wrap=True)
    for key, verdict in plan.kept_verdicts.items():
        style = "green" if verdict == "good" else "bold red"
        con.print(f"[dim]kept[/] {escape(key)}: checked, [{style}]{escape(verdict)}[/]",
                  highlight=False, soft_wrap=True)
    for why in plan.confirm:
        con.print(f"[bold red]needs yes:[/] {escape(why)}", highlight=False, soft_wrap=True)
    for w in plan.warnings:
        con.print(f"[bold yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)


def _check_rules(args: argparse.Namespace) -> None:
    """Each keep rule counts steps: 0 (or less) keeps nothing by that rule and is refused, so
    that a typo cannot turn a prune into "delete every step but the protected ones"."""
    for flag, value in (("--keep-last", args.keep_last), ("--keep-every", args.keep_every),
                        ("--keep-best", args.keep_best)):
        if value is not None and value < 1:
            raise CliError(f"{flag} must be 1 or more, not {value}; to prune by the other "
                           "rules only, leave it out", EXIT_USAGE)


class _Cancelled(Exception):
    """The verification was cancelled: nothing was deleted."""


def _verified(args: argparse.Namespace, make: Callable[[Verdicts | None], PrunePlan]
              ) -> PrunePlan:
    """``make(verdicts)``: with the check (progress on stderr, Ctrl-C cancels), or with None
    (``--no-check``: the plan is not verified)."""
    if args.no_check:
        return make(None)
    from ..store.check import CheckCancelled
    from ..store.verdicts import Verdicts

    cancel = threading.Event()
    meter = ByteMeter("verifying the steps kept")
    try:
        with meter, ctrl_c_cancels(cancel, "stopping the verification"):
            return make(Verdicts(progress=meter, cancel=cancel))
    except (CheckCancelled, KeyboardInterrupt):
        meter.stop()
        raise _Cancelled from None


def _empty_hint(plan: PrunePlan, trash: Path) -> str:
    """How to empty the base dir's own trash."""
    if trash.name != TRASH_DIR or trash.parent != Path(plan.base_dir).absolute():
        return ""
    return f": nanochat-ckpt trash {plan.base_dir} --empty"


def _carry_out(args: argparse.Namespace, plan: PrunePlan, trash: Path | None) -> int:
    """Print (or JSON) the plan, ask, execute; prune's and rm's exit codes."""
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
        what = f"{plural(len(plan.items), 'file')}, {human_bytes(plan.bytes_freed)}"
        if plan.confirm:
            n = len(plan.confirm)
            ok = _confirm(f"{verb} {what}, including {'the step' if n == 1 else f'{n} steps'}"
                          " listed under \"needs yes\"? Type yes to confirm: ", strict=True)
        else:
            ok = _confirm(f"{verb} {what}? [y/N] ")
        if not ok:
            print("nothing deleted", file=sys.stderr)
            return EXIT_DECLINED
    result = execute(plan, trash=trash)
    if args.json:
        _print_json({**result.to_json(), "plan": plan.to_json()})
    else:
        con = _console()
        for r in result.results:
            if r.status not in ("removed", "trashed"):
                con.print(f"[yellow]{r.status}[/] {r.path}: {r.detail}", highlight=False,
                          soft_wrap=True)
        con.print(f"{result.count('removed')} removed, {result.count('trashed')} trashed, "
                  f"{result.count('skipped')} skipped, {result.count('failed')} failed; "
                  f"freed {human_bytes(result.bytes_freed)}"
                  + (f", moved {human_bytes(result.bytes_trashed)} to {trash} (freed when you "
                     f"empty it{_empty_hint(plan, trash)})" if trash else ""), highlight=False,
                  soft_wrap=True)
    return EXIT_OK if result.ok else EXIT_PARTIAL


BASE_TRASH = "\0base trash"  # ``--trash`` without DIR: the base dir's own trash


def _trash_target(args: argparse.Namespace, cat: Catalog) -> Path | None:
    """Where ``--trash`` moves files: DIR, or (no DIR) the base dir's trash."""
    if not args.trash:
        return None
    if args.trash == BASE_TRASH:
        return trash_dir(cat.base_dir)
    return Path(args.trash)


def _untangle_trash(args: argparse.Namespace, positionals: str, looks_like_one: Callable[
        [str], bool]) -> None:
    """``--trash`` takes an optional DIR, so in ``rm --trash d20@100`` argparse hands the step
    to ``--trash``: a value that is no existing path but reads as one of the command's
    positionals (a step, a tag) is given back to them, and the base dir's trash is used."""
    value = args.trash
    if value in (None, BASE_TRASH) or os.path.lexists(os.path.expanduser(value)):
        return
    if looks_like_one(value):
        setattr(args, positionals, [value, *getattr(args, positionals)])
        args.trash = BASE_TRASH


def _plan_and_carry_out(args: argparse.Namespace, cat: Catalog,
                        make: Callable[[Verdicts | None], PrunePlan]) -> int:
    try:
        target = _trash_target(args, cat)
        trash = check_trash(target, cat.base_dir) if target is not None else None
        plan = _verified(args, make)
    except PruneError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except _Cancelled:
        print("nanochat-ckpt: cancelled while checking the steps to keep; nothing deleted",
              file=sys.stderr)
        return EXIT_CANCELLED
    return _carry_out(args, plan, trash)


def cmd_prune(args: argparse.Namespace) -> int:
    _refuse_remote(args.base_dir, "prune")
    _check_rules(args)
    cat = _scan(args.base_dir, args)
    _untangle_trash(args, "tags", lambda v: bool(find_tags(cat, v.rstrip("/"))))
    if not args.tags:
        raise CliError("prune: give the TAG(s) to prune (e.g. base/d20)", EXIT_USAGE)
    for spec in args.tags:
        why = unreadable_ref(cat, spec)
        if why:
            raise CliError(why)
    try:
        tags = [resolve_tag(cat, spec) for spec in args.tags]
        rules = Rules(args.keep_last, args.keep_every, args.keep_best, args.optimizer_only)
    except (RefError, PruneError) as e:
        raise CliError(str(e), EXIT_USAGE) from None
    override = Override(latest=args.allow_latest, pinned=args.allow_pinned)
    return _plan_and_carry_out(args, cat, lambda verdicts: plan_rules(
        cat, tags, rules, override, verify=verdicts is not None, verdicts=verdicts))


def _rm_targets(cat: Catalog, refs: list[str]) -> list[Checkpoint]:
    """The steps named: TAG@STEP or a file of a step (a tag alone is refused: say @STEP), as
    the catalog's own objects (their states judged, the tag's other steps known)."""
    found = {(os.path.abspath(c.dir), c.step): c for c in cat.checkpoints}
    out: list[Checkpoint] = []
    for ref in refs:
        if "@" not in ref and not os.path.lexists(os.path.expanduser(ref)):
            raise CliError(f"{ref}: rm takes steps (TAG@STEP, or a file of the step); to delete "
                           f"the latest step say {ref}@latest", EXIT_USAGE)
        ck = resolve_local(cat, ref)
        if ck.step < 0:
            raise CliError(f"{ref} is not a checkpoint step of a tag (a stray file is not "
                           "deleted by this tool)", EXIT_USAGE)
        out.append(found.get((os.path.abspath(ck.dir), ck.step), ck))
    return list({id(c): c for c in out}.values())


def cmd_rm(args: argparse.Namespace) -> int:
    _refuse_remote(args.base_dir, "rm")
    for ref in args.refs:
        if is_url(ref):
            _refuse_remote(ref, "rm")
    _untangle_trash(args, "refs", lambda v: "@" in v)
    if not args.refs:
        raise CliError("rm: give the steps to delete (TAG@STEP, or a file of the step)",
                       EXIT_USAGE)
    cat = _scan(args.base_dir, args)
    cks = _rm_targets(cat, args.refs)
    override = Override(latest=args.allow_latest, pinned=args.allow_pinned)
    return _plan_and_carry_out(args, cat, lambda verdicts: plan_selection(
        cat, cks, optimizer_only=args.optimizer_only, override=override,
        verify=verdicts is not None, verdicts=verdicts))


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


def _deletion_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--optimizer-only", action="store_true",
                   help="delete only the optimizer shards (the weights stay)")
    p.add_argument("--allow-latest", action="store_true",
                   help="allow deleting the latest step of a tag")
    p.add_argument("--allow-pinned", action="store_true", help="allow deleting pinned steps")
    p.add_argument("--no-check", action="store_true",
                   help="do not check the steps kept (faster; the plan then says it was not "
                        "verified, and may delete a tag's newest good checkpoint)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.add_argument("--trash", nargs="?", const=BASE_TRASH, metavar="DIR",
                   help=f"move the files to the base dir's trash ({TRASH_DIR}/; `nanochat-ckpt "
                        "trash` lists it, `trash --empty` frees it), or to DIR (same "
                        "filesystem) instead of deleting them")
    p.add_argument("--base-dir", metavar="BASE_DIR")
    _json_flag(p)


EXITS = ("Exit codes: 0 done (or dry run), 3 nothing to do, 4 partly failed or skipped, 5 "
         "declined at the prompt, 130 cancelled while checking.")


def add_command(sub: Any, name: str) -> None:
    if name == "prune":
        p = sub.add_parser("prune", help="delete old checkpoints by rules (asks first)",
                           description="Keep what the rules keep in each TAG; delete the rest "
                           "(or only their optimizer shards). A tag's newest good checkpoint "
                           "is always kept: the steps that decide it are checked first (cache "
                           "first). " + EXITS)
        p.add_argument("tags", nargs="*", metavar="TAG")
        p.add_argument("--keep-last", type=int, metavar="N", help="keep the last N steps")
        p.add_argument("--keep-every", type=int, metavar="K",
                       help="keep steps that are multiples of K")
        p.add_argument("--keep-best", type=int, metavar="M", help="keep the M lowest val_bpb")
        _deletion_flags(p)
        p.set_defaults(func=cmd_prune)
    elif name == "rm":
        p = sub.add_parser("rm", help="delete the checkpoints named (asks first)",
                           description="Delete these steps (or only their optimizer shards), "
                           "with prune's protections: the latest step of a tag and pinned "
                           "steps unless allowed, and always a tag's newest good checkpoint "
                           "(checked first). A damaged latest step may be deleted after a typed "
                           "yes. " + EXITS)
        p.add_argument("refs", nargs="*", metavar="TAG@STEP|FILE")
        _deletion_flags(p)
        p.set_defaults(func=cmd_rm)
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
