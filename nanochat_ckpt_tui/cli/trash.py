"""``trash``: what waits in the base dir's trash (``<base>/.nanochat-ckpt-trash``), and
emptying it (``--empty``, after the usual confirmation).

``prune --trash`` and ``rm --trash`` (no DIR) move files there instead of unlinking them: a
rename inside the base dir, instant and on the same filesystem. The bytes are freed only when
the trash is emptied; ``du`` shows how many are waiting. Local base dirs only (a remote one is
read-only and has no trash).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fmt import human_bytes, plural
from ..store.layout import STAGE_DIRS, resolve_base_dir
from ..store.storage import LocalStorage
from ..store.trash import TRASH_DIR, empty_trash, trash_dir, trash_usage
from .common import (
    EXIT_DECLINED,
    EXIT_ERROR,
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    _base_arg,
    _confirm,
    _console,
    _json_flag,
    _print_json,
    _refuse_remote,
)

SCHEMA = "nanochat-ckpt.trash/1"


@dataclass
class TrashItem:
    path: str  # relative to the trash dir: <stage_dir>/<tag>/<file> for what prune/rm moved
    size: int
    mtime: float


@dataclass
class TrashGroup:
    stage: str | None  # the stage dir (base_checkpoints), None for files outside any tag
    tag: str | None
    items: list[TrashItem] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.stage is None:
            return "(other files)"
        return f"{STAGE_DIRS.get(self.stage, self.stage.removesuffix('_checkpoints'))} / " \
               f"{self.tag}"

    @property
    def bytes(self) -> int:
        return sum(i.size for i in self.items)


def list_trash(root: Path) -> list[TrashGroup]:
    """Every file in the trash (links not followed, sizes as ``trash_usage`` counts them),
    grouped by the stage and tag they were moved from, in name order."""
    groups: dict[tuple[str | None, str | None], TrashGroup] = {}
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue  # gone meanwhile
            rel = os.path.relpath(full, root)
            parts = rel.split(os.sep)
            key: tuple[str | None, str | None] = (parts[0], parts[1]) \
                if len(parts) >= 3 and parts[0].endswith("_checkpoints") else (None, None)
            group = groups.get(key)
            if group is None:
                group = groups[key] = TrashGroup(*key)
            group.items.append(TrashItem(rel, st.st_size, st.st_mtime))
    return sorted(groups.values(), key=lambda g: (g.stage is None, g.stage or "", g.tag or ""))


def trash_json(base: Path, root: Path, groups: list[TrashGroup] | None, *, emptied: bool
               ) -> dict[str, Any]:
    items = [i for g in groups or [] for i in g.items]
    return {
        "schema": SCHEMA,
        "base_dir": str(base),
        "trash_dir": str(root),
        "exists": groups is not None,
        "files": len(items),
        "bytes": sum(i.size for i in items),
        "tags": [{"stage": g.stage, "tag": g.tag, "label": g.label, "files": len(g.items),
                  "bytes": g.bytes} for g in groups or []],
        "items": [{"path": i.path, "size": i.size, "mtime": i.mtime} for i in items],
        "emptied": emptied,
    }


def _base(args: argparse.Namespace) -> Path:
    _refuse_remote(args.base_dir, "the trash")
    base = resolve_base_dir(_base_arg(args.base_dir))
    if not base.is_dir():
        what = "is not a directory" if os.path.lexists(base) else "does not exist"
        raise CliError(f"base dir {base} {what} (give BASE_DIR or set NANOCHAT_BASE_DIR)")
    return base


def _print_listing(base: Path, root: Path, groups: list[TrashGroup], *, every_file: bool
                   ) -> None:
    from rich.markup import escape

    con = _console()
    total = sum(g.bytes for g in groups)
    n = sum(len(g.items) for g in groups)
    con.print(f"[bold]trash of {escape(str(base))}[/]: {plural(n, 'file')}, "
              f"{human_bytes(total)} ({plural(total, 'byte')}) in {escape(str(root))}",
              highlight=False, soft_wrap=True)
    for g in groups:
        con.print(f"  [bold]{escape(g.label)}[/]  {plural(len(g.items), 'file')}  "
                  f"{human_bytes(g.bytes)}", highlight=False, soft_wrap=True)
        if every_file:
            for item in g.items:
                con.print(f"    {escape(item.path)}  {human_bytes(item.size)}",
                          highlight=False, soft_wrap=True, overflow="fold")


def cmd_trash(args: argparse.Namespace) -> int:
    base = _base(args)
    storage = LocalStorage(base)
    root = trash_dir(base)
    usage = trash_usage(storage, base)
    groups = list_trash(root) if usage is not None else None
    n = sum(len(g.items) for g in groups or [])
    if not args.empty:
        if args.json:
            _print_json(trash_json(base, root, groups, emptied=False))
        elif not n:
            print(f"the trash of {base} is empty" + ("" if groups is not None else
                                                     f" (there is no {TRASH_DIR} dir)"))
        else:
            _print_listing(base, root, groups or [], every_file=False)
            print(f"empty it with: nanochat-ckpt trash {base} --empty")
        return EXIT_OK
    if not n:
        if args.json:
            _print_json(trash_json(base, root, groups, emptied=False))
        else:
            print(f"nothing to empty: the trash of {base} is empty")
        return EXIT_NOTHING
    groups = groups or []
    total = sum(g.bytes for g in groups)
    if not args.yes:
        if args.json:
            raise CliError("--empty --json needs --yes (there is no prompt in JSON mode)",
                           EXIT_USAGE)
        _print_listing(base, root, groups, every_file=True)
        sys.stdout.flush()
        if not _confirm(f"Delete these {plural(n, 'file')}, {human_bytes(total)}, for good? "
                        "[y/N] "):
            print("nothing deleted", file=sys.stderr)
            return EXIT_DECLINED
    try:
        freed = empty_trash(storage, base)
    except OSError as e:
        raise CliError(f"could not empty {root}: {e.strerror or e}", EXIT_ERROR) from None
    if args.json:
        _print_json(trash_json(base, root, groups, emptied=True))
    else:
        got = freed.bytes if freed is not None else total
        print(f"emptied the trash: freed {human_bytes(got)} ({plural(n, 'file')})")
    return EXIT_OK


def add_command(sub: Any, name: str) -> None:
    p = sub.add_parser(
        "trash", help="the base dir's trash (prune/rm --trash); --empty frees it",
        description=f"List the base dir's trash ({TRASH_DIR}/, where `prune --trash` and `rm "
                    "--trash` move files) by stage and tag, or delete it with --empty (asks "
                    "first, listing every file and its bytes). Exit codes: 0 done, 3 nothing to "
                    "empty, 5 declined at the prompt.")
    p.add_argument("base_dir", nargs="?", metavar="BASE_DIR",
                   help="the base dir (default: $NANOCHAT_BASE_DIR, else ~/.cache/nanochat)")
    p.add_argument("--empty", action="store_true", help="delete everything in the trash")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    _json_flag(p)
    p.set_defaults(func=cmd_trash)
