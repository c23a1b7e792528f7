"""A missing or broken torch: ``demo`` and ``--demo`` say so in one line (exit 1, no
traceback), and the first-run welcome screen's "Open the demo" shows the same message in the
screen instead of waiting forever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nanochat_ckpt_tui.cli import main
from nanochat_ckpt_tui.store.demo import TorchMissing, import_torch
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.testing import settle, wait_for
from nanochat_ckpt_tui.tui.welcome import WelcomeScreen

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> str:
    """Any ``import torch`` fails as if torch were not installed; the TorchMissing line."""
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(TorchMissing) as e:
        import_torch()
    return str(e.value)


def _one_line_error(err: str, message: str) -> None:
    assert err == f"nanochat-ckpt: error: {message}\n"
    assert "Traceback" not in err


def test_demo_without_torch(no_torch: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in no_torch
    code = main(["demo", str(tmp_path / "d")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    _one_line_error(err, no_torch)
    assert not (tmp_path / "d").exists()  # nothing made before the check


def test_default_demo_without_torch(no_torch: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = main(["demo"])
    _, err = capsys.readouterr()
    assert code == 1
    _one_line_error(err, no_torch)
    assert not (tmp_path / "cache").exists()


def test_app_demo_flag_without_torch(no_torch: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = main(["--demo"])  # the app never starts
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    _one_line_error(err, no_torch)


def test_demo_with_a_broken_torch(tmp_path: Path) -> None:
    """A torch that is installed but fails to load (a CUDA build without its libraries)."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise OSError('libcudart.so.12: cannot open shared object file: No such file or "
        "directory')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(ROOT)])}
    for args in (["demo", str(tmp_path / "d")], ["--demo"]):
        proc = subprocess.run([sys.executable, "-m", "nanochat_ckpt_tui", *args],
                              capture_output=True, text=True, env=env, timeout=120,
                              cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1
        assert "PyTorch is installed but fails to load (OSError: libcudart.so.12" in proc.stderr
    assert not (tmp_path / "d").exists()


# --------------------------------------------------------------------------------------------
# the welcome screen


async def _open_demo(app: CkptApp, pilot) -> WelcomeScreen:  # type: ignore[no-untyped-def]
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, WelcomeScreen)
    await pilot.press("enter")  # "Open the demo" has the focus
    assert await wait_for(pilot, lambda: screen.status_text.startswith("Cannot"), 30)
    await settle(pilot)
    return screen


async def test_welcome_demo_without_torch_says_so_in_the_screen(no_torch: str,
                                                                tmp_path: Path) -> None:
    app = CkptApp(tmp_path / "nothing-here", demo_root=tmp_path / "demo", watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_demo(app, pilot)
        assert app.screen is screen  # still the welcome screen, not a blank "writing demo…"
        assert screen.status_text == f"Cannot write the demo: {no_torch}"
        shown = " ".join(str(screen.query_one("#welcome-status").render()).split())
        assert "PyTorch is not installed" in shown
        assert app.focused is not None and app.focused.id == "quit"
        assert not app.busy
        await pilot.press("enter")  # Quit
        await pilot.pause()
    assert not (tmp_path / "demo").exists()


async def test_welcome_any_worker_failure_reaches_the_screen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nanochat_ckpt_tui.tui import welcome

    def boom() -> str | None:
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(welcome, "torch_problem", boom)
    app = CkptApp(tmp_path / "nothing-here", demo_root=tmp_path / "demo", watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_demo(app, pilot)
        assert app.screen is screen and app.is_running
        assert screen.status_text == "Cannot write the demo: RuntimeError: something unexpected"
        # it can be tried again once the cause is fixed
        monkeypatch.setattr(welcome, "torch_problem", lambda: None)
        screen.query_one("#demo").focus()
        await pilot.pause(0.3)  # (a button ignores presses for 0.2 s after one)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: not isinstance(app.screen, WelcomeScreen), 30)
