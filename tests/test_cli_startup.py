"""What keeps ``ls --json`` and ``show --json`` quick to start, checked without timing: the
modules they import (none of the ones a real install would pay for needlessly), and the plain
command lines read without argparse (:func:`nanochat_ckpt_tui.cli.parse_plain`) read as argparse
reads them."""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from nanochat_ckpt_tui import cli

ROOT = Path(__file__).resolve().parents[1]

# Modules a quick command used to import and no longer needs (stdlib: typing, dataclasses and
# their dependencies, pathlib, argparse and what it brings, json (its C part is used directly: see
# store/fastjson.py), …; dependencies: the heavy ones).
NEVER = ("torch", "numpy", "rich", "textual", "fsspec", "typing", "dataclasses", "inspect",
         "ast", "argparse", "gettext", "locale", "shutil", "threading", "contextlib",
         "datetime", "mmap", "importlib", "sqlite3", "hashlib", "json", "collections.abc",
         # pathlib and what it pulls in (~3.3 ms): the store's local paths are LocalPaths
         "pathlib", "urllib.parse", "ipaddress",
         # our own modules that only some paths need: output for people (and fmt, which only
         # it uses), pins (the demo has no sidecar)
         "nanochat_ckpt_tui.fmt", "nanochat_ckpt_tui.cli.show_text",
         "nanochat_ckpt_tui.cli.browse_text", "nanochat_ckpt_tui.store.pins")
NEVER_IN_LS = ("pickle", "zlib", "nanochat_ckpt_tui.store.ptfile",
               "nanochat_ckpt_tui.store.torchzip", "nanochat_ckpt_tui.store.unpickler",
               "nanochat_ckpt_tui.store.refs",
               "nanochat_ckpt_tui.store.summary")  # (metas only: store.meta)
NEVER_IN_SHOW = ("nanochat_ckpt_tui.store.step_verdicts",)


def _imported_by(argv: list[str], cache: Path, *, bare: bool = True) -> tuple[list[str], str]:
    """The modules a fresh interpreter holds after the command ran in it (``bare``: ``-S``, no
    site and no site-packages, as bare as a real install starts), and what it printed."""
    code = ("import io, sys\nfrom nanochat_ckpt_tui.cli import main\n"
            "out, sys.stdout = sys.stdout, io.StringIO()\n"
            f"code = main({argv!r})\ntext, sys.stdout = sys.stdout.getvalue(), out\n"
            "assert code == 0, code\n"
            "print(repr(sorted(sys.modules)))\nprint(text)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NANOCHAT_CKPT_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, *(["-S"] if bare else []), "-c", code],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    mods, _, text = proc.stdout.partition("\n")
    return eval(mods), text  # (a list of strings, repr'd above)


def test_ls_and_show_json_import_only_what_they_use(demo_master: Path, tmp_path: Path) -> None:
    mods, text = _imported_by(["ls", str(demo_master), "--json"], tmp_path / "cache")
    assert json.loads(text)["schema"] == "nanochat-ckpt.ls/1"
    got = [m for m in NEVER + NEVER_IN_LS if m in mods]
    assert not got, f"ls --json imported {got}"
    # the pieces it does need, so the list above is not vacuous
    assert "nanochat_ckpt_tui.store.layout" in mods and "_json" in mods
    mods, text = _imported_by(["show", "base/d4@3000", "--base-dir", str(demo_master), "--json"],
                              tmp_path / "cache")
    assert json.loads(text)["checkpoint"]["step"] == 3000
    got = [m for m in NEVER + NEVER_IN_SHOW if m in mods]
    assert not got, f"show --json imported {got}"
    assert "nanochat_ckpt_tui.store.ptfile" in mods


@pytest.mark.parametrize("argv", [["ls", "DEMO", "--json"],
                                  ["show", "base/d4@3000", "--base-dir", "DEMO", "--json"]])
def test_a_quick_command_run_as_the_command_collects_cycles_less_often(
        demo_master: Path, tmp_path: Path, argv: list[str]) -> None:
    """``nanochat-ckpt ls|show`` (``main()`` on sys.argv) raises the GC's thresholds for its
    one short run; ``main(argv)`` called as a library leaves them as they were."""
    argv = [str(demo_master) if a == "DEMO" else a for a in argv]
    code = ("import gc, io, sys\nfrom nanochat_ckpt_tui import cli\n"
            "out, sys.stdout = sys.stdout, io.StringIO()\nbefore = gc.get_threshold()\n"
            f"cli.main({argv!r})\nlibrary = gc.get_threshold()\n"
            f"sys.argv = ['nanochat-ckpt', *{argv!r}]\ncli.main()\nsys.stdout = out\n"
            "print(repr([before, library, gc.get_threshold(), cli.QUICK_GC]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NANOCHAT_CKPT_CACHE": str(tmp_path),
           "NANOCHAT_CKPT_FULL_EXIT": "1"}  # (main returns: the thresholds can be read)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    before, library, command, quick_gc = ast.literal_eval(proc.stdout)
    assert library == before and command == quick_gc and quick_gc[0] >= 50 * before[0]


def test_human_ls_imports_no_rich_console_argparse_or_dataclasses(demo_master: Path,
                                                                   tmp_path: Path) -> None:
    """To a file (no colours) ``ls`` writes its table without rich's console (its cell widths
    of non-ASCII text come from rich.cells)."""
    mods, text = _imported_by(["ls", str(demo_master)], tmp_path / "cache", bare=False)
    assert "base / d4" in text
    got = [m for m in ("rich.console", "argparse", "dataclasses", "textual", "numpy", "torch",
                       "fsspec", "sqlite3") if m in mods]
    assert not got, f"ls imported {got}"


# --------------------------------------------------------------------------------------------
# the quick commands' arguments


def _quick_specs() -> list[tuple[str, cli.Spec, argparse.ArgumentParser]]:
    """Each quick command's Spec and the argparse parser its module builds."""
    out = []
    for name, module in cli.COMMANDS.items():
        spec = getattr(cli._module(module), "QUICK", {}).get(name)
        if spec is None:
            continue
        sub = cli._OneCommand()
        cli._module(module).add_command(sub, name)
        assert sub.parser is not None
        out.append((name, spec, sub.parser))
    return out


def test_the_quick_commands_are_ls_and_show() -> None:
    assert sorted(name for name, _, _ in _quick_specs()) == ["ls", "show"]


@pytest.mark.parametrize("name", ["ls", "show"])
def test_each_spec_is_its_parser(name: str) -> None:
    """The options, destinations, kinds and defaults a Spec declares are its parser's."""
    [(_, spec, parser)] = [s for s in _quick_specs() if s[0] == name]
    kinds = {argparse._StoreAction: "store", argparse._AppendAction: "append"}
    values: dict[str, tuple[str, str]] = {}
    flags: dict[str, str] = {}
    positionals = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:
            positionals.append((action.dest, action.nargs))
            continue
        assert action.default in (None, False) and action.choices is None and \
            action.type is None and not action.required, action
        for opt in action.option_strings:
            if isinstance(action, argparse._StoreTrueAction):
                flags[opt] = action.dest
            else:
                assert action.nargs is None, action
                values[opt] = (action.dest, kinds[type(action)])
    assert positionals == [(spec.positional, spec.nargs)]
    assert values == spec.values and flags == spec.flags
    assert parser.get_default("func") is spec.func
    assert parser.prefix_chars == "-" and parser.fromfile_prefix_chars is None


def _argparse_reads(parser: argparse.ArgumentParser, args: list[str]
                    ) -> dict[str, object] | None:
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return vars(parser.parse_args(args))
        except SystemExit:
            return None


WORDS = ["d20", "base/d4@3000", "/tmp/base", "~/runs", "", "a b", "k=v", "s3://b/runs"]
NEAR_MISSES = ["--js", "--json=1", "-ok=v", "--base-dir=/x", "--", "-", "-h", "--help", "-1",
               "-x", "--no-tensor", "--lat", "-oo", "--storage"]


@pytest.mark.parametrize("name", ["ls", "show"])
def test_quick_reads_a_plain_line_as_argparse_does(name: str) -> None:
    """Lines of words, the command's options and near misses in any order: wherever the quick
    reader answers, argparse gives the same namespace (and accepts the line)."""
    [(_, spec, parser)] = [s for s in _quick_specs() if s[0] == name]
    options = list(spec.values) + list(spec.flags)
    rng = random.Random(13)
    vocabulary = WORDS + options * 2 + NEAR_MISSES
    lines = [[]] + [[w] for w in vocabulary] + [
        rng.choices(vocabulary, k=rng.randint(1, 7)) for _ in range(3000)]
    lines += [["/tmp/base", "--json"], ["d20", "--base-dir", "/tmp/base", "--json", "--latest"],
              ["--json", "d20", "base/d4@3000"], ["-o", "a=1", "-o", "b=2", "d20"]]
    answered = 0
    for line in lines:
        got = cli.parse_plain(spec, name, line)
        if got is None:
            continue
        answered += 1
        want = _argparse_reads(parser, line)
        assert want is not None, f"argparse refuses {line!r}, the quick reader did not"
        assert vars(got) == {**want, "command": name}, line
    assert answered > 100  # (the quick reader is not just refusing everything)
    assert cli.parse_plain(spec, name, ["base/d4@3000", "--base-dir", "/tmp/base", "--json"])


@pytest.mark.parametrize("argv, exit_code, text", [
    (["ls", "--help"], 0, "usage: nanochat-ckpt ls [-h]"),
    (["ls", "--bogus"], 2, "nanochat-ckpt ls: error: unrecognized arguments: --bogus"),
    (["ls", "a", "--json", "b"], 2, "unrecognized arguments: b"),
    (["show"], 2, "the following arguments are required: PATH|TAG[@STEP]|URL"),
    (["show", "a", "b"], 2, "unrecognized arguments: b"),
    (["show", "x", "--base-dir"], 2, "argument --base-dir: expected one argument"),
])
def test_argparse_still_writes_help_and_errors(argv: list[str], exit_code: int, text: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Help and mistakes are not plain: argparse reads them, and says what it always said."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == exit_code
    out, err = capsys.readouterr()
    assert text in out + err


@pytest.mark.parametrize("text", [
    "s3://b/x", "ssh://u:p@h/x", "file:///x", "memory://", "a://x", "ab://x", "a1+b.c-d://",
    "1a://x", "/abs/path", "rel/path", "C:\\x", "C://x", "s3:/x", "s3//x", "", "://x",
    "a:b://x", "é://x", "ab ://x", "x\n://", "gs://b://c", "h_t://x", "\u0391b://x",
])
def test_is_url_is_the_regex_it_replaced(text: str) -> None:
    import re

    from nanochat_ckpt_tui.store.storage import is_url

    assert is_url(text) == bool(re.match(r"^[A-Za-z][A-Za-z0-9+.\-]+://", text))


def test_local_disk_usage_is_shutils(tmp_path: Path) -> None:
    """Free and total bytes from os.statvfs, as shutil.disk_usage computes them (shutil is not
    imported for it: it loads the compression modules)."""
    import shutil

    from nanochat_ckpt_tui.store.storage import LocalStorage

    got = LocalStorage(tmp_path).disk_usage()
    want = shutil.disk_usage(tmp_path)
    assert got is not None and got[1] == want.total
    assert abs(got[0] - want.free) < 64 << 20  # (others write to this disk meanwhile)
    assert LocalStorage(tmp_path / "gone").disk_usage() is None
