"""Write SVG screenshots of the real app on freshly written demo data into ``screenshots/``.

    python scripts/screenshots.py [--out screenshots]

The demo is written with a fixed "now" and the app runs with the same clock, so ages are
stable between runs; sizes are the demo's real sizes, free disk space is the machine's.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot

from nanochat_ckpt_tui.store.demo import write_demo
from nanochat_ckpt_tui.tui.app import CkptApp
from nanochat_ckpt_tui.tui.detail import DetailPane
from nanochat_ckpt_tui.tui.testing import settle
from nanochat_ckpt_tui.tui.tree import CheckpointTree

NOW = 1_780_000_000.0
Step = Callable[[Pilot[None]], Awaitable[None]]


def cursor_on(key: str) -> Step:
    async def step(pilot: Pilot[None]) -> None:
        tree = pilot.app.query_one(CheckpointTree)
        tree.move_cursor(tree.node_for(key))
        await settle(pilot)

    return step


def scroll_detail_to(heading: str) -> Step:
    async def step(pilot: Pilot[None]) -> None:
        pane = pilot.app.query_one(DetailPane)
        pane.focus()
        lines = pane.body.text.splitlines()
        y = next((i for i, line in enumerate(lines) if line.startswith(heading)), 0)
        pane.scroll_to(y=max(0, y - 1), animate=False)
        await settle(pilot)

    return step


def press(*keys: str) -> Step:
    async def step(pilot: Pilot[None]) -> None:
        await pilot.press(*keys)
        await settle(pilot)

    return step


async def wait_diff(pilot: Pilot[None]) -> None:
    """Wait until the diff screen has its report."""
    for _ in range(500):
        if getattr(pilot.app.screen, "report", None) is not None:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)


async def shoot(base: Path, out: Path, size: tuple[int, int], steps: list[Step]) -> None:
    app = CkptApp(base, clock=lambda: NOW, display_name="~/.cache/nanochat")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for step in steps:
            await step(pilot)
        await pilot.pause(0.1)
        out.write_text(app.export_screenshot(title=f"nanochat-ckpt — {out.stem}"),
                       encoding="utf-8")
    print(f"wrote {out}")


async def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nanochat-ckpt-shots-") as tmp:
        base = write_demo(Path(tmp) / "base", now=NOW)
        ck = "base_checkpoints/d4@3000"
        await shoot(base, out_dir / "main.svg", (120, 40), [cursor_on(ck)])
        await shoot(base, out_dir / "checkpoint_tensors.svg", (120, 40),
                    [cursor_on(ck), scroll_detail_to("Optimizer shards")])
        await shoot(base, out_dir / "tag_summary.svg", (120, 40),
                    [cursor_on("base_checkpoints/d4")])
        await shoot(base, out_dir / "narrow_80x24.svg", (80, 24), [cursor_on(ck)])
        await shoot(base, out_dir / "help.svg", (120, 40), [press("question_mark")])
        await shoot(base, out_dir / "filter_sort.svg", (120, 40),
                    [press("s", "s", "s", "s", "slash", "d", "4"), press("enter")])
        await shoot(base, out_dir / "diff.svg", (120, 40),
                    [cursor_on("base_checkpoints/d4@500"), press("space"),
                     cursor_on("base_checkpoints/d4@3000"), press("space", "d"), wait_diff])
        await shoot(base, out_dir / "confirm_delete.svg", (120, 40),
                    [cursor_on("base_checkpoints/d4@500"), press("space", "space"),
                     press("x")])
        # a step that training is still writing: shown, never opened
        d4 = base / "base_checkpoints" / "d4"
        data = (d4 / "model_003000.pt").read_bytes()
        (d4 / "model_003500.pt").write_bytes(data[: len(data) // 2])
        await shoot(base, out_dir / "writing.svg", (120, 40),
                    [cursor_on("base_checkpoints/d4@3500")])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent.parent / "screenshots")
    asyncio.run(main(parser.parse_args().out))
