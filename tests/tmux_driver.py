"""Drive the real app in a real terminal: tmux new-session / send-keys / capture-pane."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class Tmux:
    """One detached tmux session running one command at a fixed size."""

    def __init__(self, command: list[str], *, width: int = 100, height: int = 30,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed")
        self.name = f"nanochat-ckpt-test-{time.monotonic_ns()}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        cmd = f"{exports} exec {shlex.join(command)}" if exports else f"exec {shlex.join(command)}"
        subprocess.run(["tmux", "-f", "/dev/null", "new-session", "-d", "-s", self.name,
                        "-x", str(width), "-y", str(height), "sh", "-c", cmd],
                       check=True, cwd=cwd)
        subprocess.run(["tmux", "set-option", "-t", self.name, "remain-on-exit", "on"],
                       check=False, capture_output=True)

    def keys(self, *keys: str, literal: bool = False, settle: float = 0.25) -> None:
        """Type keys, then give the app ``settle`` seconds (focus moves are asynchronous)."""
        args = ["tmux", "send-keys", "-t", self.name]
        if literal:
            args.append("-l")
        subprocess.run(args + list(keys), check=True)
        time.sleep(settle)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True, check=False)
        return out.stdout

    def wait_for(self, predicate: Callable[[str], bool] | str, timeout: float = 20.0) -> str:
        """Poll the screen until ``predicate`` (or a substring) holds; return that screen."""
        test = (lambda s: predicate in s) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if test(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {predicate!r}; "
                             f"screen was:\n{screen}")

    def alive(self) -> bool:
        out = subprocess.run(["tmux", "list-panes", "-t", self.name, "-F", "#{pane_dead}"],
                             capture_output=True, text=True, check=False)
        return out.returncode == 0 and out.stdout.strip() == "0"

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False,
                       capture_output=True)
