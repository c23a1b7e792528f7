"""The interactive app's launch (``nanochat-ckpt [BASE_DIR]``) and ``demo``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..fmt import human_bytes
from ..store import layout
from ..store.storage import is_url
from .common import EXIT_OK, EXIT_USAGE, CliError, _remote_flag, _storage_options


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo DIR`` writes into a new (or empty) DIR; ``demo`` alone writes where the app's
    first-run demo goes (``$XDG_CACHE_HOME/nanochat-ckpt-demo``, an older demo there is
    replaced), never into the current directory."""
    started = time.perf_counter()
    from ..store.demo import TorchMissing, write_demo

    try:
        if args.dir is None:
            from ..tui.welcome import default_demo_root, write_fresh_demo

            target = write_fresh_demo(default_demo_root())
        else:
            target = Path(args.dir).expanduser()
            if target.exists() and any(target.iterdir()):
                raise CliError(f"{target} exists and is not empty: give a new directory",
                               EXIT_USAGE)
            need_torch()  # before the directory is made
            write_demo(target)
    except TorchMissing as e:
        raise CliError(str(e)) from None
    took = time.perf_counter() - started
    size = layout.scan(target).total_bytes
    print(f"wrote a demo base dir to {target} ({human_bytes(size)} in {took:.1f}s)")
    print(f"open it with: nanochat-ckpt {target}")
    return EXIT_OK


def need_torch() -> None:
    """The demo is written with torch.save: a missing or broken torch is one line, exit 1
    (:class:`~..store.demo.TorchMissing` says how to get the CPU build)."""
    from ..store.demo import TorchMissing, import_torch

    try:
        import_torch()
    except TorchMissing as e:
        raise CliError(str(e)) from None


def run_tui(args: argparse.Namespace) -> int:
    try:
        from ..tui.app import run_app
    except ImportError as e:
        raise CliError(f"the interactive app is not available in this build ({e}); "
                       "the subcommands ls, show, du and demo work") from None
    if args.base_dir and is_url(args.base_dir):
        base: Path | str | None = args.base_dir  # browsed read-only through fsspec
    else:
        base = Path(args.base_dir).expanduser() if args.base_dir else None
    try:
        options = _storage_options(args.storage_option)
    except ValueError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    if args.demo:
        need_torch()  # before the app starts, not an error inside it
    return run_app(base, demo=args.demo, poll=args.poll, read_only=args.read_only,
                   storage_options=options or None) or EXIT_OK


def add_command(sub: Any, name: str) -> None:
    p = sub.add_parser("demo", help="write a realistic demo base dir (real torch.save files)",
                       description="Write a small base dir in nanochat's layout, with real "
                       "torch.save files (needs torch). Without DIR it goes to your cache dir "
                       "($XDG_CACHE_HOME/nanochat-ckpt-demo, else ~/.cache/nanochat-ckpt-demo), "
                       "where the app's first-run demo goes; an older demo there is replaced.")
    p.add_argument("dir", nargs="?", default=None, metavar="DIR",
                   help="a new or empty directory")
    p.set_defaults(func=cmd_demo)


def build_app_parser(commands: list[tuple[str, str]]) -> argparse.ArgumentParser:
    """The app's parser; its help also lists every subcommand (``commands``: name, help), so
    that ``nanochat-ckpt --help`` and ``nanochat-ckpt DIR --help`` say everything."""
    width = max((len(name) for name, _ in commands), default=0)
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, text in commands)
    parser = argparse.ArgumentParser(
        prog="nanochat-ckpt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="See, compare and prune nanochat checkpoints.\n\n"
                    "Without a subcommand, opens the interactive app on BASE_DIR (default:\n"
                    "$NANOCHAT_BASE_DIR, else ~/.cache/nanochat; a URL is browsed read-only).",
        epilog="subcommands (nanochat-ckpt SUBCOMMAND --help for each one's options):\n"
               + listing)
    parser.add_argument("base_dir", nargs="?", metavar="BASE_DIR",
                        help="the nanochat base dir (or URL) to open")
    parser.add_argument("--demo", action="store_true",
                        help="open a freshly written demo base dir")
    parser.add_argument("--poll", action="store_true",
                        help="poll for changes (network filesystems, where inotify is silent)")
    parser.add_argument("--read-only", action="store_true",
                        help="hide and disable everything that writes to the base dir")
    _remote_flag(parser)
    usage = parser.format_usage().removeprefix("usage: ").strip()
    names = ",".join(name for name, _ in commands)
    parser.usage = f"{usage}\n       nanochat-ckpt {{{names}}} ..."
    return parser
