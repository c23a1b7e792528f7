"""Plain command lines of the quick commands (``ls``, ``show``), read without argparse.

Importing argparse (with gettext, locale and shutil, which it brings along) and building a
subcommand's parser cost ~5 ms: a fifth of all that ``ls --json`` of a small base dir takes.
So a command module declares its arguments in ``QUICK`` (command name → :class:`Spec`), and
:func:`parse` reads a plain command line of that command. Anything else goes to argparse, as
before, which writes the help and every error message unchanged.

Plain: each option spelled exactly as declared (no abbreviation, no ``--opt=value`` or
``-oVALUE``, no ``--``, no ``-h``); no option value and no positional starting with ``-``; the
positionals in one run, as many as the command takes. argparse reads such a line the same
way: tests/test_cli_startup.py checks that both agree, and that each ``Spec`` is its parser.
"""

from __future__ import annotations

from types import SimpleNamespace

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable


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


def parse(spec: Spec, command: str, args: list[str]) -> SimpleNamespace | None:
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
