"""The CLI on every other Python found on the machine (pyenv's 3.10, 3.12, 3.13 here), without
torch: browsing, show, diff and check never import it. Each interpreter gets a throwaway venv
with the package's light dependencies (numpy, rich, fsspec) from the package index; skipped
where no other Python is found or the venv cannot be made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WANTED = ((3, 10), (3, 12), (3, 13))


def _pythons() -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    roots = [Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"]
    for major, minor in WANTED:
        if (major, minor) == sys.version_info[:2]:
            continue
        name = f"python{major}.{minor}"
        # pyenv's own install first: its shims on PATH fail for versions not selected
        candidates = [str(p / "bin" / name) for r in roots if r.is_dir()
                      for p in sorted(r.glob(f"{major}.{minor}.*"))] + [shutil.which(name)]
        exe = next((c for c in candidates if c and Path(c).exists()), None)
        if exe:
            found[f"{major}.{minor}"] = exe
    return sorted(found.items())


PYTHONS = _pythons()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base dir written by this (torch-equipped) run: the demo, real torch.save files."""
    from nanochat_ckpt_tui.store.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("other_pythons") / "base")


def _venv(version: str, exe: str, where: Path) -> Path:
    env_dir = where / f"py{version}"
    py = env_dir / "bin" / "python"
    if py.exists():
        return py
    made = subprocess.run([exe, "-m", "venv", str(env_dir)], capture_output=True, text=True,
                          timeout=120)
    if made.returncode != 0:
        pytest.skip(f"python {version}: cannot make a venv ({made.stderr.strip()[-200:]})")
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "numpy", "rich>=13", "fsspec"],
                         capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        pytest.skip(f"python {version}: cannot install numpy/rich ({pip.stderr.strip()[-300:]})")
    return py


@pytest.mark.skipif(not PYTHONS, reason="no other Python (3.10, 3.12, 3.13) on this machine")
@pytest.mark.parametrize("version,exe", PYTHONS, ids=[v for v, _ in PYTHONS])
def test_cli_without_torch(version: str, exe: str, written: Path,
                           tmp_path_factory: pytest.TempPathFactory) -> None:
    py = _venv(version, exe, tmp_path_factory.getbasetemp())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NANOCHAT_CKPT_CACHE": str(
        tmp_path_factory.mktemp(f"cache{version}"))}
    env.pop("PYTHONHOME", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        code = ("import sys, runpy; sys.modules['torch'] = None; "  # any torch import fails
                "sys.argv = ['nanochat-ckpt', *sys.argv[1:]]; "
                "runpy.run_module('nanochat_ckpt_tui', run_name='__main__')")
        return subprocess.run([str(py), "-c", code, *args], capture_output=True, text=True,
                              env=env, timeout=300)

    ls = cli("ls", str(written), "--json")
    assert ls.returncode == 0, ls.stderr
    assert {t["name"] for s in json.loads(ls.stdout)["stages"] for t in s["tags"]} >= {"d4"}
    show = cli("show", "base/d4@3000", "--base-dir", str(written), "--json")
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["model"]["params"] > 0
    diff = cli("diff", "base/d4@2500", "base/d4@3000", "--base-dir", str(written), "--json")
    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout)["overall"]["numel"] > 0
    check = cli("check", "base/d4@3000", "--base-dir", str(written))
    assert check.returncode == 0, check.stdout + check.stderr
