"""Bytes the app writes to the terminal per action: what a user pays over SSH (run by hand).

    python benchmarks/bench_wire.py [--size 120x40] [--huge 2000] [--keep]

The real app runs in a real terminal (tmux, ``TERM=xterm-256color``); ``tmux pipe-pane``
appends everything the app writes to a file, whose size is sampled around each action:

- startup: from launch until the screen is quiet (informational);
- cursor move: one ``j``, bytes until the detail pane's debounced reload starts (the move
  itself), then until quiet (the detail repaint);
- held ``j``: ten presses 30 ms apart (a key repeat), until quiet;
- help: ``?``, until quiet, then Escape;
- diff screen: mark two steps (Space Space) and ``d``, until the diff is drawn, then ``q``;
- idle: 3 s with nothing pressed.

On the demo base dir and on a tree of ``--huge`` checkpoints (empty zips, small metas).
Targets: a cursor move without its detail repaint ≤ 2 KB; ten held ``j`` cost at most one
detail repaint beyond the moves themselves; idle 0 B.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tmux_driver import Tmux  # noqa: E402

QUIET = 0.6  # seconds without output = the screen is settled


class Wire:
    def __init__(self, tmux: Tmux, log: Path) -> None:
        self.tmux, self.log = tmux, log
        subprocess.run(["tmux", "pipe-pane", "-o", "-t", tmux.name, f"cat >> {log}"],
                       check=True)

    def size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def quiet(self, timeout: float = 20.0) -> int:
        """Wait until nothing is written for ``QUIET`` seconds; the log size then."""
        deadline = time.monotonic() + timeout
        last, since = self.size(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.size()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= QUIET:
                return now
        return self.size()

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.tmux.name, *keys], check=True)


def make_huge(root: Path, n: int) -> Path:
    """``n`` checkpoints in tags of 200 steps: empty zips and small metas, a day old."""
    base = root / "huge"
    if base.exists():
        return base
    empty_zip = b"PK\x05\x06" + b"\0" * 18
    old = time.time() - 86400
    for i in range(n):
        tag = base / "base_checkpoints" / f"d{10 + i // 200}"
        tag.mkdir(parents=True, exist_ok=True)
        step = (i % 200) * 100
        for name, data in ((f"model_{step:06d}.pt", empty_zip),
                           (f"meta_{step:06d}.json",
                            json.dumps({"step": step, "val_bpb": 1.0 - step / 1e5,
                                        "model_config": {"n_layer": 20}}).encode())):
            p = tag / name
            p.write_bytes(data)
            os.utime(p, (old, old))
    return base


def measure(base: Path, width: int, height: int, work: Path, label: str) -> dict[str, int]:
    log = work / f"wire-{label}.log"
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "nanochat_ckpt_tui", str(base)]
    tmux = Tmux(cmd, width=width, height=height, env={"TERM": "xterm-256color"})
    out: dict[str, int] = {}
    try:
        wire = Wire(tmux, log)
        tmux.wait_for(lambda s: "base" in s and "d" in s, timeout=60)
        out["startup"] = wire.quiet()
        for _ in range(2):  # onto a step row (the tree opens on the first stage)
            wire.keys("j")
            wire.quiet()
        t0 = wire.size()
        wire.keys("j")
        time.sleep(0.08)  # before the detail pane's debounced reload
        moved = wire.size()
        end = wire.quiet()
        out["cursor move"] = moved - t0
        out["detail repaint"] = end - moved
        t0 = end
        for _ in range(10):
            wire.keys("j")
            time.sleep(0.03)
        out["held j x10"] = wire.quiet() - t0
        t0 = wire.size()
        wire.keys("?")
        out["help"] = wire.quiet() - t0
        wire.keys("Escape")
        wire.quiet()
        t0 = wire.size()
        wire.keys("Space")
        wire.keys("Space")
        wire.keys("d")
        out["diff screen"] = wire.quiet(timeout=60) - t0
        wire.keys("q")
        wire.quiet()
        t0 = wire.size()
        time.sleep(3)
        out["idle 3 s"] = wire.size() - t0
    finally:
        tmux.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--huge", type=int, default=2000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed: apt-get install tmux")
    width, height = (int(x) for x in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench_wire_"))
    try:
        from nanochat_ckpt_tui.store.demo import write_demo

        demo = write_demo(work / "demo")
        runs = {"demo": measure(demo, width, height, work, "demo"),
                f"{args.huge} checkpoints": measure(make_huge(work, args.huge), width, height,
                                                     work, "huge")}
        names = list(next(iter(runs.values())))
        print(f"bytes written to a {width}x{height} terminal; load average "
              f"{os.getloadavg()[0]:.2f}")
        print(f"{'action':18}" + "".join(f"{k:>20}" for k in runs))
        for n in names:
            print(f"{n:18}" + "".join(f"{r[n]:>20,}" for r in runs.values()))
        for label, r in runs.items():
            one = r["cursor move"]
            ok_move = one <= 2048
            ok_held = r["held j x10"] <= 10 * max(one, 1) + 1.5 * r["detail repaint"] + 2048
            ok_idle = r["idle 3 s"] == 0
            print(f"{label}: cursor move {one:,} B ≤ 2 KB {'PASS' if ok_move else 'MISS'}; "
                  f"held j repaints the detail once {'PASS' if ok_held else 'MISS'}; "
                  f"idle 0 B {'PASS' if ok_idle else 'MISS'}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
