"""``ls`` and ``du``: what is in a base dir, step by step or summed by stage and tag (for
people: :mod:`.browse_text`)."""

from __future__ import annotations

import gc
import os

from ..store.layout import STAGE_DIRS, Catalog, Checkpoint, FileKind, Stage, Tag, classify
from ..store.localpath import LocalPath
from ..store.meta import assess_metas
from ..store.step_verdicts import cached_verdicts, skipped_note
from ..store.storage import is_url
from . import Spec
from .common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    _json_flag,
    _print_json,
    _remote_flag,
    _scan,
)
from .documents import catalog_json

TYPE_CHECKING = False  # (not imported at run time: start-up)
if TYPE_CHECKING:
    import argparse
    from typing import Any

# --------------------------------------------------------------------------------------------
# what to list


def _looks_like_base(text: str) -> bool:
    """Is ``ls``'s first argument the base dir (else it is a tag)? A URL, or a path that exists
    or starts like one (``/``, ``~``, ``.``); ``d20`` and ``base/d20`` are tags unless such a
    dir exists here (then ``ls`` says whether it looks like a stage or tag dir)."""
    return is_url(text) or text.startswith(("/", "~", ".")) or os.path.lexists(text)


def _split_targets(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    items = list(args.targets)
    base = args.base_dir
    if base is None and items and _looks_like_base(items[0]):
        base = items.pop(0)
    return base, items


def select_view(cat: Catalog, specs: list[str]) -> list[tuple[Stage, list[Tag]]]:
    """The stages and tags to list: all, or those ``ls TAG...`` names (a tag name in several
    stages: each of them; a stage, ``base``: all its tags), in catalog order."""
    if not specs:
        return [(s, s.tags) for s in cat.stages]
    from ..store.refs import RefError, find_tags, resolve_tag  # (only to pick: start-up)

    tag_ids: set[int] = set()
    stage_ids: set[int] = set()
    for spec in specs:
        if "@" in spec:
            raise CliError(f"{spec}: ls takes tags, not steps (try `nanochat-ckpt show {spec}`)",
                           EXIT_USAGE)
        spec = spec.rstrip("/")
        tags = find_tags(cat, spec)
        stage = None if tags or "/" in spec else cat.stage(spec)
        if stage is not None:
            stage_ids.add(id(stage))
            tags = stage.tags
        elif not tags:
            try:
                resolve_tag(cat, spec)
            except RefError as e:
                raise CliError(str(e), EXIT_USAGE) from None
        tag_ids.update(id(t) for t in tags)
    view = [(s, [t for t in s.tags if id(t) in tag_ids]) for s in cat.stages]
    return [(s, ts) for s, ts in view if ts or id(s) in stage_ids]


def _shown(tag: Tag, latest_only: bool) -> list[Checkpoint]:
    if latest_only:
        return [tag.latest] if tag.latest is not None else []
    return tag.checkpoints


# --------------------------------------------------------------------------------------------
# a dir one level off


def _parent_text(cat: Catalog, levels: int = 1) -> str:
    loc = cat.location
    if is_url(loc):
        for _ in range(levels):
            loc = loc.rstrip("/").rpartition("/")[0]
        return loc
    path = LocalPath(os.path.abspath(loc))
    for _ in range(levels):
        path = path.parent
    return str(path)


def _holds_steps(rows: list[Any]) -> bool:
    return any(not r[1] and classify(r[0])[0] is not FileKind.OTHER for r in rows)


def misplaced_hint(cat: Catalog) -> str | None:
    """For a base dir with no ``*_checkpoints`` dirs: is it a stage dir or a tag dir?"""
    storage, root = cat.storage, cat.base_dir
    stage_hint = f"this looks like a stage dir; did you mean its parent, {_parent_text(cat)}?"
    if root.name.endswith("_checkpoints"):
        return stage_hint
    try:
        rows = storage.list_dir(root)
    except Exception:
        return None
    if _holds_steps(rows):
        parent = LocalPath(os.path.abspath(cat.location)).parent.name if not is_url(cat.location) \
            else cat.location.rstrip("/").rpartition("/")[0].rpartition("/")[2]
        if parent.endswith("_checkpoints"):
            stage = STAGE_DIRS.get(parent, parent.removesuffix("_checkpoints"))
            return (f"this looks like a tag dir (stage {stage}); did you mean "
                    f"{_parent_text(cat, 2)}?")
        return ("this holds checkpoint files itself, but nanochat keeps them in "
                "BASE_DIR/<stage>_checkpoints/<tag>/; `nanochat-ckpt show "
                f"{cat.location}` reads one tag dir")
    for r in [r for r in rows if r[1]][:8]:
        try:
            if _holds_steps(storage.list_dir(storage.join(root, r[0]))):
                return stage_hint
        except Exception:
            continue
    return None


def _add_hint(cat: Catalog) -> None:
    """JSON: the hint for a dir one level off goes to ``notes``."""
    hint = None if cat.stages else misplaced_hint(cat)
    if hint:
        cat.notes.append(hint)


# --------------------------------------------------------------------------------------------
# ls


def cmd_ls(args: argparse.Namespace) -> int:
    # ~10 objects a step, no cycles: the cyclic GC's collections of the growing heap would
    # cost a sixth of a 6,000-step listing
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _ls(args)
    finally:
        if enabled:
            gc.enable()


def _ls(args: argparse.Namespace) -> int:
    base, specs = _split_targets(args)
    try:
        cat = _scan(base, args, metas=False)  # only the steps shown are judged, below
        view = select_view(cat, specs)
    except CliError as e:
        if base is None and args.base_dir is None and specs and "/" not in specs[0]:
            # `ls myruns` with a typo: it was taken for a tag, say it is no dir either
            raise CliError(f"{e} ({specs[0]!r} is not a directory here either)", e.code
                           ) from None
        raise
    shown = [c for _, tags in view for t in tags for c in _shown(t, args.latest)]
    # every shown step's val_bpb is shown, and its meta judged (`bad meta`): the metas are
    # read concurrently where remote; the verdicts of earlier checks come from the cache
    assess_metas(shown)
    verdicts, skipped = cached_verdicts(shown)
    if skipped:
        cat.notes.append(skipped_note(skipped))
    if args.json:
        _add_hint(cat)
        _print_json(catalog_json(cat, "nanochat-ckpt.ls/1", stages=view,
                                 latest_only=args.latest, verdicts=verdicts, encoded=True))
        return EXIT_OK
    from .browse_text import print_listing

    print_listing(cat, view, args.latest, verdicts, None if cat.stages else misplaced_hint(cat))
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# du


def _trash_usage(cat: Catalog) -> Any:
    """What waits in the base dir's trash (None: no trash, or a remote base dir)."""
    from ..store.trash import trash_usage

    try:
        return trash_usage(cat.storage, cat.base_dir)
    except OSError:
        return None


def cmd_du(args: argparse.Namespace) -> int:
    cat = _scan(args.base_dir, args, metas=False)  # sizes only
    trash = _trash_usage(cat)
    if args.json:
        _add_hint(cat)
        doc = catalog_json(cat, "nanochat-ckpt.du/1", with_checkpoints=False)
        # bytes waiting in the base dir's trash: 0 when there is none, null when the base dir
        # cannot have one (remote, read-only)
        doc["trash_bytes"] = trash.bytes if trash is not None else (
            0 if cat.storage.writable else None)
        _print_json(doc)
        return EXIT_OK
    from .browse_text import print_usage

    print_usage(cat, trash, None if cat.stages else misplaced_hint(cat))
    return EXIT_OK


# ``ls``'s arguments as add_command gives them to argparse, for plain lines (cli.parse_plain)
QUICK = {"ls": Spec("targets", "*", {"--base-dir": ("base_dir", "store"),
                                     "-o": ("storage_option", "append"),
                                     "--storage-option": ("storage_option", "append")},
                    {"--latest": "latest", "--json": "json"}, cmd_ls)}


def add_command(sub: Any, name: str) -> None:
    if name == "ls":
        p = sub.add_parser(
            "ls", help="stages, tags and steps with sizes, val_bpb and state",
            description="List the steps of every tag, or only of the TAGs given (d20: that "
                        "tag in every stage; base/d20; or a stage: base). The first argument "
                        "is the base dir when it is a URL or a path that exists (or starts "
                        "with /, ~ or .); else the base dir is $NANOCHAT_BASE_DIR, else "
                        "~/.cache/nanochat. Notes on unreadable dirs come first. A step an "
                        "earlier `check` judged is badged verified, damaged or unhealthy.")
        p.add_argument("targets", nargs="*", metavar="[BASE_DIR|URL] [TAG...]")
        p.add_argument("--base-dir", metavar="BASE_DIR|URL",
                       help="the base dir (then every argument is a tag)")
        p.add_argument("--latest", action="store_true", help="only each tag's latest step")
        _json_flag(p)
        _remote_flag(p)
        p.set_defaults(func=cmd_ls)
    else:
        p = sub.add_parser("du", help="disk used by stage and tag, model vs optimizer, free disk")
        p.add_argument("base_dir", nargs="?", metavar="BASE_DIR|URL")
        _json_flag(p)
        _remote_flag(p)
        p.set_defaults(func=cmd_du)
