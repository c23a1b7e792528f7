#!/usr/bin/env python
"""Start-up of the CLI: ``ls --json`` and ``show --json`` of the demo against a bare
``python -c pass`` of the same interpreter, in the same run. Target: within 2.5x.

Run by hand (not a test)::

    python benchmarks/bench_startup.py [--runs 10] [--tree LABEL=DIR ...] [--no-real]
                                       [--demo DIR] [--no-bytecode]

Each measurement is one fresh process, timed from the parent (``subprocess.run``, stdout to
/dev/null). The runs of every command are interleaved (bare, ls, show, bare, ls, show, …) and
the minimum of ``--runs`` is kept: the machine is shared and noisy, and the minimum is what the
code costs when nothing else gets in the way.

Two installs are measured, because they start differently:

- **this venv** (usually ``pip install -e .``): setuptools' editable finder is imported by
  ``site`` in *every* process of the venv, bare ``python -c pass`` included (it pulls in
  pathlib, re, enum, importlib.util, urllib.parse: ~13 ms here), so the bare baseline is slow
  and those modules come free to the CLI.
- **a real install** (``pip install .``, no finder): a wheel of the tree built here and
  installed ``--no-deps`` into a throwaway venv (``ls --json`` and ``show --json`` import
  none of the dependencies; the script checks it). The bare baseline is much faster, and the
  CLI pays for every module it imports.

``--tree LABEL=DIR`` measures a source tree (``DIR`` holds ``nanochat_ckpt_tui/``) on this
venv's interpreter through ``PYTHONPATH`` (and, unless ``--no-real``, as a real install of a
wheel built from it): e.g. ``--tree before=/tmp/before --tree after=.`` compares two versions
in one run. Without ``--tree`` the installed package is measured.

Children get compiled bytecode (``PYTHONPYCACHEPREFIX`` in a temp dir, written by a warm-up
run; a ``PYTHONDONTWRITEBYTECODE`` in the environment is dropped for them), as a user's
install has it; ``--no-bytecode`` measures without (every module compiled in every process).
They get an empty check cache (``NANOCHAT_CKPT_CACHE``): the never-checked case.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 2.5
SHOW_REF = "base/d4@3000"


class Group:
    """One interpreter + environment: its bare start and the CLI commands."""

    def __init__(self, label: str, python: str, env: dict[str, str], cli: list[str],
                 demo: Path) -> None:
        self.label = label
        self.python = python
        self.env = env
        self.commands: list[tuple[str, list[str]]] = [
            ("python -c pass", [python, "-c", "pass"]),
            ("ls DEMO --json", [*cli, "ls", str(demo), "--json"]),
            ("show REF --json", [*cli, "show", SHOW_REF, "--base-dir", str(demo), "--json"]),
        ]
        self.best = [float("inf")] * len(self.commands)

    def run_once(self, i: int) -> None:
        cmd = self.commands[i][1]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=self.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        took = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{self.label}: {' '.join(cmd)} failed: {proc.stderr[-500:]}")
        self.best[i] = min(self.best[i], took)

    def check_light(self, demo: Path) -> str:
        """What ``ls --json`` and ``show --json`` import that they should not: torch, numpy,
        rich, textual, fsspec, and the stdlib modules they no longer need (typing, dataclasses,
        argparse, json, …; not counted where the interpreter's start imported them already, as
        this venv's ``site`` does); for ``ls``, also the pickle reader and sqlite3 (no model is
        read, no check cache exists)."""
        code = ("import sys\npre = set(sys.modules)\nfrom nanochat_ckpt_tui.cli import main\n"
                f"main(['ls', {str(demo)!r}, '--json'])\n"
                "heavy = ['torch', 'numpy', 'rich', 'textual', 'fsspec', 'typing', "
                "'dataclasses', 'inspect', 'argparse', 'gettext', 'shutil', 'threading', "
                "'contextlib', 'datetime', 'json', 'pickle']\n"
                "got = [m for m in heavy + ['sqlite3', 'nanochat_ckpt_tui.store.ptfile'] "
                "if m in sys.modules and m not in pre]\n"
                f"main(['show', {SHOW_REF!r}, '--base-dir', {str(demo)!r}, '--json'])\n"
                "got += ['show: ' + m for m in heavy if m in sys.modules and m not in pre]\n"
                "print(','.join(got), file=sys.stderr)\n")
        proc = subprocess.run([self.python, "-c", code], env=self.env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            return f"failed: {proc.stderr[-300:]}"
        return proc.stderr.strip()


def child_env(pycache: Path | None, cache: Path, pythonpath: str | None = None
              ) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONPATH",
                        "NANOCHAT_BASE_DIR", "PYTHONSTARTUP")}
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["NANOCHAT_CKPT_CACHE"] = str(cache)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def write_demo(where: Path) -> Path:
    code = ("import sys; from nanochat_ckpt_tui.store.demo import write_demo; "
            "write_demo(sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(where)], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return where


def real_install(tree: Path, work: Path, label: str) -> Path:
    """A throwaway venv with a wheel of ``tree`` installed ``--no-deps``; its python."""
    src = work / f"src-{label}"
    shutil.copytree(tree / "nanochat_ckpt_tui", src / "nanochat_ckpt_tui",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", src / "pyproject.toml")
    shutil.copy2(ROOT / "README.md", src / "README.md")
    wheels = work / f"wheels-{label}"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check", "-w", str(wheels),
                    str(src)], check=True, cwd=src)
    venv = work / f"venv-{label}"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", *map(str, wheels.glob("*.whl"))], check=True)
    return py


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min), {os.cpu_count()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                    help="a source tree to measure (repeatable); default: the installed package")
    ap.add_argument("--no-real", action="store_true", help="skip the real (non-editable) installs")
    ap.add_argument("--demo", type=Path, help="an existing demo base dir (else one is written)")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="children compile every module (no .pyc), as with PYTHONDONTWRITEBYTECODE")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nanochat-bench-startup-"))
    try:
        demo = args.demo or write_demo(work / "demo")
        pycache = None if args.no_bytecode else work / "pyc"
        cache = work / "check-cache"
        venv_bin = Path(sys.executable).parent
        groups: list[Group] = []
        trees = [t.split("=", 1) if "=" in t else (Path(t).name, t) for t in args.tree]
        if not trees:
            script = venv_bin / "nanochat-ckpt"
            cli = [str(script)] if script.exists() else [sys.executable, "-m",
                                                          "nanochat_ckpt_tui"]
            groups.append(Group("this venv (editable)", sys.executable,
                                child_env(pycache, cache), cli, demo))
            if not args.no_real:
                py = real_install(ROOT, work, "installed")
                groups.append(Group("real install (pip install .)", str(py),
                                    child_env(pycache, cache), [str(py.parent / "nanochat-ckpt")],
                                    demo))
        script = venv_bin / "nanochat-ckpt"  # (it imports the tree first: PYTHONPATH)
        tree_cli = [str(script)] if script.exists() else [sys.executable, "-m",
                                                          "nanochat_ckpt_tui"]
        for label, tree in trees:
            tree_path = Path(tree).resolve()
            groups.append(Group(f"{label}: this venv, PYTHONPATH", sys.executable,
                                child_env(pycache, cache, str(tree_path)), tree_cli, demo))
            if not args.no_real:
                py = real_install(tree_path, work, label)
                groups.append(Group(f"{label}: real install", str(py),
                                    child_env(pycache, cache),
                                    [str(py.parent / "nanochat-ckpt")], demo))
        print(f"python {sys.version.split()[0]} · {load()} · min of {args.runs} runs, "
              f"interleaved · bytecode {'off' if args.no_bytecode else 'cached'}")
        for g in groups:  # warm-up: bytecode written, files in the page cache
            for i in range(len(g.commands)):
                g.run_once(i)
            g.best = [float("inf")] * len(g.commands)
        for _ in range(args.runs):
            for g in groups:
                for i in range(len(g.commands)):
                    g.run_once(i)
        misses = 0
        for g in groups:
            heavy = g.check_light(demo)
            print(f"\n{g.label}  [{g.python}]"
                  + (f"\n  imported by ls/show --json: {heavy}" if heavy else ""))
            bare = g.best[0]
            for (name, _), best in zip(g.commands, g.best, strict=True):
                if best is bare:
                    print(f"  {name:<18} {best * 1000:7.1f} ms")
                    continue
                ratio = best / bare
                ok = ratio <= TARGET
                misses += not ok
                print(f"  {name:<18} {best * 1000:7.1f} ms  {ratio:5.2f}x bare  "
                      f"{'PASS' if ok else 'MISS'} (target <= {TARGET}x)")
        print(f"\n{load()}")
        print("all PASS" if not misses else f"{misses} MISS")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
