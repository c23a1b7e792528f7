"""Core and face stay apart; the code stays lint-clean; start-up stays light."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_store_never_imports_the_faces() -> None:
    """The import-linter contract in pyproject.toml: store/ imports no textual, rich, tui, cli."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _store_imports() -> dict[str, list[tuple[str, str]]]:
    """Each store module's imports of sibling modules, as (module, name) pairs (function-level
    imports included: a lazy import is still an edge)."""
    root = ROOT / "nanochat_ckpt_tui" / "store"
    mods = {p.stem for p in root.glob("*.py")}
    out: dict[str, list[tuple[str, str]]] = {}
    for p in root.glob("*.py"):
        edges: list[tuple[str, str]] = []
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                if node.module:
                    edges += [(node.module.split(".")[0], a.name) for a in node.names]
                else:
                    edges += [(a.name, "") for a in node.names if a.name in mods]
        out[p.stem] = edges
    return out


def test_store_import_graph_has_no_cycle() -> None:
    graph = {m: {d for d, _ in edges} for m, edges in _store_imports().items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle in store/: " + " -> ".join(path + [d]))
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_store_modules_import_no_private_names_of_others() -> None:
    private = [f"{m} imports {d}.{name}" for m, edges in _store_imports().items()
               for d, name in edges if name.startswith("_")]
    assert not private, private


def test_store_modules_import_no_heavy_packages() -> None:
    """Importing every store module pulls in neither torch, numpy, textual nor rich."""
    mods = [p.stem for p in (ROOT / "nanochat_ckpt_tui" / "store").glob("*.py")
            if p.stem != "__init__"]
    code = ("import sys\n" + "".join(f"import nanochat_ckpt_tui.store.{m}\n" for m in mods)
            + "bad = [m for m in ('torch', 'numpy', 'textual', 'rich') if m in sys.modules]\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_ruff_clean() -> None:
    exe = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(exe).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "check", "."], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2, "README must open with the install and the test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci
