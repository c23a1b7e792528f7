"""The real app in a real terminal (tmux, 100x30) beside a live nanochat-like writer.

Navigate, open a detail, watch steps appear while a writer process saves them the way
nanochat does (plain torch.save to the final name, then meta, then optimizer shards), check
that a half-written step is shown as writing and never opened or offered for deletion, mark
two and diff, and delete one through the confirm modal. Each step reads the screen back
with capture-pane.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tmux_driver import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (.ci/run installs it)")
D4 = "base_checkpoints/d4"
HERE = Path(__file__).resolve().parent


def row(screen: str, step: int) -> str:
    """The tree row of a base/d4 step (the first line whose step column is ``step``)."""
    for line in screen.splitlines():
        left = line.split("▕")[0]
        if re.match(rf"^\W*{step}\s", left.lstrip("│├└─ ●")):
            return left
    return ""


def logged(log: Path) -> set[int]:
    return {int(line.split()[0]) for line in log.read_text().splitlines()} if log.exists() \
        else set()


def test_real_terminal_with_a_live_writer(demo_dir: Path, tmp_path: Path) -> None:
    env = {"NANOCHAT_CKPT_STATE": str(tmp_path / "state.json"), "TERM": "xterm-256color"}
    app = Tmux([sys.executable, "-m", "nanochat_ckpt_tui", str(demo_dir)], width=100,
               height=30, env=env)
    writer = None
    try:
        screen = app.wait_for(lambda s: row(s, 3000) != "" and "d Diff" in s, timeout=30)
        assert "▼ base" in screen and "latest" in row(screen, 3000)

        # navigate: base, d2_legacy, 1000, 2000, d4, 500 → the detail of d4@500
        app.keys("j", "j", "j", "j", "j")
        screen = app.wait_for("step 500", timeout=10)
        assert "base_checkpoints/d4" in screen

        # a writer saves steps 3500 and 4000 the way nanochat does, slowly
        log = tmp_path / "writer.log"
        writer = subprocess.Popen(
            [sys.executable, str(HERE / "nanochat_writer.py"), str(demo_dir / D4),
             "--steps", "3500", "4000", "--delay", "4", "--pause", "1", "--log", str(log)],
            env={**os.environ, "PYTHONPATH": str(HERE.parent)})
        screen = app.wait_for(lambda s: "writing" in row(s, 3500), timeout=30)
        assert 3500 not in logged(log)

        # show only that step, highlight it: the detail says it is not opened,
        # and x offers nothing to delete
        app.keys("/")
        app.keys("=3500", literal=True)
        app.keys("Enter")
        app.keys("G")
        screen = app.wait_for("not opened", timeout=10)
        if 3500 not in logged(log):  # still being written: deleting must be refused
            app.keys("x")
            screen = app.wait_for(lambda s: "Nothing to delete" in s or "being written" in s,
                                  timeout=10)
            assert "Delete 1" not in screen and "Delete 4" not in screen
            app.keys("Escape")
        app.keys("Escape")  # clear the filter
        screen = app.wait_for(lambda s: row(s, 1000) != "", timeout=10)

        # both steps finish; the writing badges clear by themselves
        deadline = time.monotonic() + 60
        while logged(log) != {3500, 4000} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert logged(log) == {3500, 4000}
        writer.wait(timeout=30)
        screen = app.wait_for(lambda s: row(s, 4000) and "writing" not in row(s, 4000)
                              and "latest" in row(s, 4000), timeout=30)
        assert "latest" not in row(screen, 3000)

        # mark 500 and 1000, diff them
        app.keys("g", "j", "j", "j", "j", "j")
        app.wait_for("step 500", timeout=10)
        app.keys("Space", "Space")
        screen = app.wait_for("2 marked", timeout=10)
        app.keys("d")
        screen = app.wait_for("rel change", timeout=30)
        assert "base/d4@500" in screen and "base/d4@1000" in screen
        app.keys("Escape")
        app.wait_for("d Diff", timeout=10)

        # delete step 500 through the confirm modal
        app.keys("u", "g", "j", "j", "j", "j", "j")
        app.wait_for("step 500", timeout=10)
        app.keys("x")
        screen = app.wait_for("Delete 4 files", timeout=10)
        assert "model_000500.pt" in screen and "Cancel" in screen
        app.keys("y")
        app.wait_for("Freed", timeout=20)
        assert not (demo_dir / D4 / "model_000500.pt").exists()
        assert (demo_dir / D4 / "model_001000.pt").exists()
        screen = app.wait_for(lambda s: row(s, 500) == "", timeout=15)
        assert app.alive()
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
        app.close()
