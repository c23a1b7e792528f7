"""Core and face stay apart; the code stays lint-clean; start-up stays light."""

from __future__ import annotations

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
    assert "1 kept, 0 broken" in proc.stdout or "0 broken" in proc.stdout


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
