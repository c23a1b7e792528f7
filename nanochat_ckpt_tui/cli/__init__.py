"""Command line: ``nanochat-ckpt [BASE_DIR]`` opens the app; subcommands are its script twin.

Every subcommand prints with rich, or a stable JSON document with ``--json`` (schemas in
README.md, each tagged with a ``"schema"`` key). Errors: one line on stderr, non-zero exit.

One module per command group, over :mod:`.common` (errors, exit codes, loading, JSON) and
:mod:`.table` (tables that never break a name): :mod:`.browse` (ls, du), :mod:`.show`,
:mod:`.diff`, :mod:`.check`, :mod:`.manage` (prune, rm, pin, unpin), :mod:`.trash`,
:mod:`.cmd` (nanochat's command for a step), :mod:`.archive` (archive, verify), :mod:`.app`
(the interactive app, demo); :mod:`.documents` builds the JSON
documents, :mod:`.verdicts` looks the verdicts of earlier checks up in the check cache.
A command's module is imported only when that command runs (``ls`` never imports the
archive or prune code), and this module imports none of them, nor :mod:`.common` (and the
store under it), until :func:`main` runs: so the names below are re-exported lazily.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

# subcommand → the module that defines it, in the order the help lists them
COMMANDS = {"ls": "browse", "show": "show", "cmd": "cmd", "du": "browse", "diff": "diff",
            "check": "check", "prune": "manage", "rm": "manage", "trash": "trash",
            "pin": "manage", "unpin": "manage", "archive": "archive", "verify": "archive",
            "demo": "app"}
SUBCOMMANDS = tuple(COMMANDS)

_LAZY = {"EXIT_DECLINED": "common", "EXIT_ERROR": "common", "EXIT_NOTHING": "common",
         "EXIT_OK": "common", "EXIT_PARTIAL": "common", "EXIT_USAGE": "common",
         "CliError": "common", "catalog_json": "documents", "checkpoint_json": "documents",
         "summary_json": "documents", "tag_json": "documents", "cmd_ls": "browse",
         "cmd_du": "browse", "cmd_show": "show", "cmd_diff": "diff", "cmd_check": "check",
         "cmd_prune": "manage", "cmd_rm": "manage",
         "cmd_pin": "manage", "cmd_archive": "archive", "cmd_verify": "archive",
         "cmd_cmd": "cmd", "cmd_trash": "trash",
         "add_archive_commands": "archive", "cmd_demo": "app", "run_tui": "app"}

TYPE_CHECKING = False  # (not imported at run time: start-up; argparse only where needed)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

__all__ = ["COMMANDS", "SUBCOMMANDS", "build_app_parser", "build_parser", "main", *_LAZY]


def _module(name: str) -> Any:
    full = f"{__name__}.{name}"
    __import__(full)  # (as importlib.import_module does, without importing importlib)
    return sys.modules[full]


def __getattr__(name: str) -> Any:  # the lazy re-exports (PEP 562)
    if name in _LAZY:
        return getattr(_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The subcommands' parser (with ``only``, just that subcommand: fewer imports)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="nanochat-ckpt",
        description="See, compare and prune nanochat checkpoints. Without a subcommand, opens "
                    "the interactive app on BASE_DIR (default: $NANOCHAT_BASE_DIR, else "
                    "~/.cache/nanochat).")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, module in COMMANDS.items():
        if only is None or name == only:
            _module(module).add_command(sub, name)
    return parser


class _OneCommand:
    """Stands in for the subparsers action when one subcommand's parser is built on its own:
    the same parser (prog ``nanochat-ckpt NAME``, same errors and help), without building
    the top-level one first."""

    parser: argparse.ArgumentParser | None = None

    def add_parser(self, name: str, **kw: Any) -> argparse.ArgumentParser:
        import argparse

        kw.pop("help", None)
        self.parser = argparse.ArgumentParser(prog=f"nanochat-ckpt {name}", **kw)
        return self.parser


# --------------------------------------------------------------------------------------------
# plain command lines of the quick commands (``ls``, ``show``), read without argparse
#
# Importing argparse (with gettext, locale and shutil, which it brings along) and building a
# subcommand's parser cost ~5 ms: a fifth of all that ``ls --json`` of a small base dir takes.
# So a command module declares its arguments in ``QUICK`` (command name → :class:`Spec`), and
# :func:`parse_plain` reads a plain command line of that command. Anything else goes to
# argparse, as before, which writes the help and every error message unchanged.
#
# Plain: each option spelled exactly as declared (no abbreviation, no ``--opt=value`` or
# ``-oVALUE``, no ``--``, no ``-h``); no option value and no positional starting with ``-``; the
# positionals in one run, as many as the command takes. argparse reads such a line the same
# way: tests/test_cli_startup.py checks that both agree, and that each ``Spec`` is its parser.


class Spec:
    """One command's arguments, as its argparse parser has them: one positional ``dest``
    (``nargs`` ``"*"``: any number, as a list; ``None``: exactly one), options that take a
    value (option string → (dest, ``"store"``: the last one given wins, or ``"append"``: a
    list)), flags (``store_true``: option string → dest), and the command's function."""

    def __init__(self, positional: str, nargs: str | None,
                 values: dict[str, tuple[str, str]], flags: dict[str, str],
                 func: Callable[..., int]) -> None:
        self.positional = positional
        self.nargs = nargs
        self.values = values
        self.flags = flags
        self.func = func


def parse_plain(spec: Spec, command: str, args: list[str]) -> SimpleNamespace | None:
    """The namespace argparse would give for ``command`` with ``args`` (after the command's
    name), or None when the line is not plain (then argparse must read it)."""
    ns: dict[str, object] = {dest: None for dest, _ in spec.values.values()}
    ns.update((dest, False) for dest in spec.flags.values())
    positionals: list[str] = []
    ended = False  # an option came after the positionals: no more may come
    i, n = 0, len(args)
    while i < n:
        arg = args[i]
        if not arg.startswith("-"):
            if ended:
                return None  # (argparse: "unrecognized arguments")
            positionals.append(arg)
            i += 1
            continue
        ended = bool(positionals)
        flag = spec.flags.get(arg)
        if flag is not None:
            ns[flag] = True
            i += 1
            continue
        option = spec.values.get(arg)
        if option is None or i + 1 >= n or args[i + 1].startswith("-"):
            return None  # help, an abbreviation, a typo, a missing value: argparse says
        dest, kind = option
        if kind == "append":
            got = ns[dest]
            ns[dest] = [*got, args[i + 1]] if isinstance(got, list) else [args[i + 1]]
        else:
            ns[dest] = args[i + 1]
        i += 2
    if spec.nargs is None:
        if len(positionals) != 1:
            return None
        ns[spec.positional] = positionals[0]
    else:
        ns[spec.positional] = positionals
    return SimpleNamespace(**ns, func=spec.func, command=command)


def _parse_command(argv: list[str]) -> argparse.Namespace | SimpleNamespace:
    """``argv[0]``'s arguments, by that subcommand's parser alone (a plain command line of
    ``ls`` or ``show``: without argparse, see :func:`parse_plain`)."""
    module = _module(COMMANDS[argv[0]])
    spec = getattr(module, "QUICK", {}).get(argv[0])
    if spec is not None:
        args = parse_plain(spec, argv[0], argv[1:])
        if args is not None:
            return args
    sub = _OneCommand()
    module.add_command(sub, argv[0])
    if sub.parser is None:  # (a module that builds its parser some other way)
        return build_parser(only=argv[0]).parse_args(argv)
    args = sub.parser.parse_args(argv[1:])
    args.command = argv[0]
    return args


def _command_help() -> list[tuple[str, str]]:
    """(name, one-line help) of every subcommand, as the subcommands' parser has them."""
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [(a.dest, a.help or "") for a in sub._choices_actions]


def build_app_parser() -> argparse.ArgumentParser:
    return _module("app").build_app_parser(_command_help())


# Read-only commands that end the process at once when run as the command (``argv`` None):
# freeing a 6,000-step catalog and the interpreter's teardown cost ~35 ms that nobody waits for
# otherwise (as mypy's hard exit). Everything is written out first. NANOCHAT_CKPT_FULL_EXIT=1
# keeps the normal exit (e.g. for coverage, which writes its data at exit).
QUICK_EXIT = frozenset(("ls", "du", "show", "cmd"))
# ... and collect cycles less often: such a command imports its modules and builds its result,
# freeing next to nothing before it ends, and the cyclic GC's passes over that growing heap
# (one every 700 new objects by default) cost ~1 ms of its start. 100x fewer passes, as mypy
# does; still bounded, should a run ever make garbage cycles (it makes none to speak of).
QUICK_GC = (100_000, 10, 10)


def _exit_now(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (contextlib is not imported by the quick commands)
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`ls --json | head`)
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """The command line; ``argv`` None: ``sys.argv`` (the ``nanochat-ckpt`` command itself,
    which may end the process at once after a read-only command, see ``QUICK_EXIT``)."""
    as_command = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if as_command and argv and argv[0] in QUICK_EXIT:
        import gc

        gc.set_threshold(*QUICK_GC)
    code = _main(argv)
    if as_command and argv and argv[0] in QUICK_EXIT \
            and not os.environ.get("NANOCHAT_CKPT_FULL_EXIT"):
        _exit_now(code)
    return code


def _main(argv: list[str]) -> int:
    from .common import EXIT_OK, CliError  # (what every command imports: no cost here)

    try:
        if argv and argv[0] in SUBCOMMANDS:
            args = _parse_command(argv)
            return args.func(args)
        if argv and argv[0] in ("-h", "--help"):  # the app's usage, then every subcommand
            build_app_parser().print_help()
            return EXIT_OK
        return _module("app").run_tui(build_app_parser().parse_args(argv))
    except CliError as e:
        print(f"nanochat-ckpt: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
