"""``show``: one checkpoint: its files, model summary, configs, optimizer shards, tensors (for
people: :mod:`.show_text`)."""

from __future__ import annotations

from ..store.check_cache import existing_cache
from ..store.summary import summarize
from . import Spec
from .common import EXIT_ERROR, EXIT_OK, _json_flag, _print_json, _remote_flag, _resolve
from .documents import summary_json

TYPE_CHECKING = False  # (not imported at run time: start-up)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..store.check_report import CheckReport


def cmd_show(args: argparse.Namespace) -> int:
    ck = _resolve(None, args.ref, args)
    s = summarize(ck)
    report = _cached_check(ck)
    if args.json:
        _print_json(summary_json(s, with_tensors=not args.no_tensors, check=report))
    else:
        from .show_text import print_summary

        print_summary(s, with_tensors=not args.no_tensors, report=report)
    return EXIT_ERROR if s.model is None and ck.weights is not None else EXIT_OK


def _cached_check(ck: Any) -> CheckReport | None:
    """The step's report from the check cache (no byte read), if its files were checked."""
    cache = existing_cache()
    if cache is None:
        return None
    from ..store.check import cached_report

    return cached_report(ck, cache)


# the arguments add_command gives argparse, for plain command lines (see cli.parse_plain)
QUICK = {"show": Spec("ref", None, {"--base-dir": ("base_dir", "store"),
                                    "-o": ("storage_option", "append"),
                                    "--storage-option": ("storage_option", "append")},
                      {"--no-tensors": "no_tensors", "--json": "json"}, cmd_show)}


def add_command(sub: Any, name: str) -> None:
    p = sub.add_parser("show", help="one checkpoint: summary, optimizer shards, tensors")
    p.add_argument("ref", metavar="PATH|TAG[@STEP]|URL",
                   help="a file, or a tag such as d20, base/d20@5000, sft/d20@latest, or a URL "
                        "such as s3://bucket/runs/base/d20@5000")
    p.add_argument("--base-dir", metavar="BASE_DIR|URL")
    p.add_argument("--no-tensors", action="store_true",
                   help="leave out the tensor table (and the health of healthy tensors)")
    _json_flag(p)
    _remote_flag(p)
    p.set_defaults(func=cmd_show)
