"""Bytes the app writes to the terminal per action: what a user pays over SSH (run by hand).

    python benchmarks/bench_wire.py [--size 120x40] [--huge 2000] [--keep] [--idle 31] [--env K=V]
        [--local]

The real app (this checkout's, whatever the venv's editable install points at) runs in a real
terminal (tmux, ``TERM=xterm-256color``), as over SSH (``SSH_CONNECTION`` set, unless
``--local``). ``tmux pipe-pane`` hands everything it writes to a
stamper that keeps the bytes and the time of each chunk; the app's detail pane logs each
repaint (a wrapper around ``DetailPane._show_lines``, nothing else changed). Per action:

- where the bytes go on screen: the detail pane (right of the tree's border) or the rest
  (tree, status line, footer); a byte counts where its cursor-positioning sequence put it;
- frames: bursts of output (chunks < ``GAP`` apart); those that send the detail pane's text,
  and those that touch only its last two columns (its scrollbar), counted apart;
- detail paints: the app's own count of detail-pane repaints;
- for the screens: how many cells were drawn and how the bytes split into colour/style
  (SGR), cursor moves and text.

Actions: one ``j``; ten ``j`` 30 ms apart (a held key repeating) and ten in one write (a
faster burst), from a step row 21 rows above the bottom (over steps, tags and stages in
the demo; over steps in the big tree); ``?`` (help) and Escape; ``g`` and ``G`` (top and
bottom: the big tree scrolls); ten ``j`` 30 ms apart past the last visible row (the big
tree scrolls a row per key); Space Space ``d`` on the last tag's last two steps (the diff
screen) and ``q``; ``--idle`` seconds idle (31: one of the tree's 30 s age refreshes; the
app must still be running: checked). On the demo base dir and on a tree of ``--huge``
checkpoints (empty zips, small metas).

Targets: a cursor move without its detail repaint ≤ 2 KB (alone and on average in a burst);
a burst repaints the detail once (one app paint, its text in one frame, after the last key);
idle 0 B.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout this benchmark lives in
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from tmux_driver import Tmux  # noqa: E402

QUIET = 0.6  # seconds without output = the screen is settled
GAP = 0.012  # seconds: chunks closer than this are one frame
MOVE = re.compile(rb"\x1b\[(\d+);(\d+)H")
SGR = re.compile(rb"\x1b\[[0-9;]*m")
CSI = re.compile(rb"\x1b\[[0-9;?$]*[A-Za-z]")


# -- the two helper processes: the pipe-pane stamper and the instrumented app ----------------

def stamp(raw: Path) -> None:
    """pipe-pane's command: append stdin to ``raw``, one "time offset length" line per chunk
    to ``raw``.idx."""
    with raw.open("ab") as out, raw.with_suffix(".idx").open("a") as idx:
        offset = out.tell()
        while chunk := os.read(0, 1 << 16):
            out.write(chunk)
            out.flush()
            idx.write(f"{time.monotonic():.6f} {offset} {len(chunk)}\n")
            idx.flush()
            offset += len(chunk)


def run_app(events: Path, base: str) -> None:
    """The app as ``nanochat-ckpt BASE`` runs it, logging "time key" per detail repaint."""
    from nanochat_ckpt_tui.tui import app, detail

    log = events.open("a", buffering=1)
    show = detail.DetailPane._show_lines

    def logged(self: detail.DetailPane, lines: detail.RenderedLines) -> None:
        show(self, lines)
        log.write(f"{time.monotonic():.6f} {self._ref.key if self._ref else '-'}\n")

    detail.DetailPane._show_lines = logged  # type: ignore[method-assign]
    app.run_app(base)


# -- reading what was written ----------------------------------------------------------------

@dataclass
class Window:
    """What one action wrote."""

    start: int = 0  # offset in the log
    total: int = 0
    detail: int = 0  # bytes positioned inside the detail pane
    frames: int = 0
    detail_frames: int = 0  # frames that send the pane's text
    bar_frames: int = 0  # frames that touch only the pane's scrollbar column
    paints: int = 0  # the app's detail-pane repaints
    data: bytes = b""
    painted: list[str] = field(default_factory=list)
    screen: str = ""  # the screen after it

    @property
    def rest(self) -> int:
        return self.total - self.detail


class Wire:
    """The pane's output so far, split by time and by screen region."""

    def __init__(self, tmux: Tmux, work: Path, label: str, width: int) -> None:
        self.tmux, self.width = tmux, width
        self.raw, self.events = work / f"wire-{label}.log", work / f"wire-{label}.paints"
        self.idx = self.raw.with_suffix(".idx")
        for p in (self.raw, self.idx):
            p.unlink(missing_ok=True)
        pipe = shlex.join([sys.executable, str(Path(__file__).resolve()), "--stamp",
                           str(self.raw)])
        subprocess.run(["tmux", "pipe-pane", "-o", "-t", tmux.name, pipe], check=True)
        self.detail_col = 0  # first column (1-based) of the detail pane
        self.rows = range(0)  # its rows (1-based)

    def find_detail(self) -> None:
        """The detail pane is right of the tree's border (▕), on the rows that show it."""
        lines = self.tmux.screen().splitlines()
        cols = [line.find("▕") for line in lines]
        col = max(set(cols), key=cols.count)
        if col < 0:
            raise RuntimeError("no tree border on screen:\n" + "\n".join(lines))
        rows = [i + 1 for i, c in enumerate(cols) if c == col]
        self.detail_col, self.rows = col + 2, range(rows[0], rows[-1] + 1)

    def size(self) -> int:
        try:
            return self.raw.stat().st_size
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

    def measure(self, action, timeout: float = 20.0) -> Window:  # type: ignore[no-untyped-def]
        """Run ``action()``, wait until quiet, and return what was written meanwhile."""
        start, t0 = self.quiet(), time.monotonic()
        action()
        end = self.quiet(timeout)
        return self.window(start, end, t0)

    def window(self, start: int, end: int, t0: float) -> Window:
        data = self.raw.read_bytes()
        w = Window(start=start, total=end - start, data=data[start:end],
                   screen=self.tmux.screen())
        # where each byte went: the position set by the last cursor move before it; 1 in
        # the detail pane's text, 2 in its last two columns (its scrollbar, and the blank
        # column right of it)
        inside = bytearray(len(data))
        moves = list(MOVE.finditer(data))
        for m, nxt in zip(moves, moves[1:] + [None], strict=True):
            row, col = int(m[1]), int(m[2])
            if row in self.rows and col >= self.detail_col:
                stop = nxt.start() if nxt else len(data)
                mark = b"\2" if col >= self.width - 1 else b"\1"
                inside[m.start():stop] = mark * (stop - m.start())
        w.detail = len(inside[start:end]) - inside[start:end].count(0)
        chunks = [(float(t), int(o), int(n)) for t, o, n in
                  (line.split() for line in self.idx.read_text().splitlines())]
        frames: list[set[int]] = []  # per frame: what it touched
        last_t = -1.0
        for t, o, n in (c for c in chunks if start <= c[1] < end):
            if t - last_t > GAP:
                frames.append(set())
            frames[-1] |= set(inside[o:o + n])
            last_t = t
        w.frames = len(frames)
        w.detail_frames = sum(1 in f for f in frames)
        w.bar_frames = sum(2 in f and 1 not in f for f in frames)
        if self.events.exists():
            for line in self.events.read_text().splitlines():
                t, key = line.split(" ", 1)
                if float(t) >= t0:
                    w.paints += 1
                    w.painted.append(key)
        return w


def anatomy(data: bytes) -> str:
    """Where the bytes go: SGR (colour/style), cursor moves, other control, text."""
    sgr = sum(len(m[0]) for m in SGR.finditer(data))
    moves = sum(len(m[0]) for m in MOVE.finditer(data))
    ctl = sum(len(m[0]) for m in CSI.finditer(data)) - sgr - moves
    text = data.count(b"\r\n") * 2
    plain = SGR.sub(b"", CSI.sub(b"", data)).replace(b"\r\n", b"")
    cells = len(plain.decode("utf-8", "replace"))
    text += len(plain)
    pct = (lambda n: f"{100 * n // max(len(data), 1)}%")  # noqa: E731
    return (f"{cells:,} cells ({cells / max(len(data), 1) * 100:.0f} per 100 B): "
            f"SGR {pct(sgr)} in {len(SGR.findall(data)):,} sequences, cursor moves "
            f"{pct(moves)}, other control {pct(ctl)}, text {pct(text)}")


# -- the run ---------------------------------------------------------------------------------

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


def measure(base: Path, width: int, height: int, work: Path, label: str,
            extra_env: dict[str, str], idle: float) -> dict[str, Window]:
    events = work / f"wire-{label}.paints"
    events.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--app", str(events), str(base)]
    # PYTHONPATH is exported in the pane's own shell: a tmux server started earlier (by
    # someone else) would not pass ours on, and the venv may point at another checkout.
    env = {"TERM": "xterm-256color", "PYTHONPATH": str(ROOT), **extra_env}
    tmux = Tmux(cmd, width=width, height=height, env=env, cwd=ROOT)
    out: dict[str, Window] = {}
    try:
        wire = Wire(tmux, work, label, width)
        t0 = time.monotonic()
        tmux.wait_for(lambda s: "▕" in s and " d" in s, timeout=60)
        out["startup"] = wire.window(0, wire.quiet(), t0)
        wire.find_detail()
        # onto a step row: the bottom, then 21 up (demo: d4@500, with tags and stages below
        # it; the huge tree: d19@17800, steps below it in its only expanded tag)
        for keys in (["G"], ["k"] * 21):
            wire.keys(*keys)
            wire.quiet()
        out["cursor move"] = wire.measure(lambda: wire.keys("j"))

        def held() -> None:
            for _ in range(10):
                wire.keys("j")
                time.sleep(0.03)

        out["held j x10"] = wire.measure(held)
        out["burst j x10"] = wire.measure(lambda: wire.keys(*["j"] * 10))
        out["help"] = wire.measure(lambda: wire.keys("?"))
        out["help closes"] = wire.measure(lambda: wire.keys("Escape"))
        out["g (top)"] = wire.measure(lambda: wire.keys("g"))
        out["G (bottom)"] = wire.measure(lambda: wire.keys("G"))
        # held j past the tree's last visible row: each key scrolls the tree one row (the
        # demo's rows all fit: its cursor stays on the last row, nothing moves)
        for keys in (["g"], ["j"] * (height + 5)):
            wire.keys(*keys)
            wire.quiet()
        out["held j, scroll"] = wire.measure(held)
        for key in ("G", "k"):  # the last two steps of the last tag
            wire.keys(key)
            wire.quiet()
        out["diff screen"] = wire.measure(lambda: wire.keys("Space", "Space", "d"), timeout=60)
        if "Close" not in out["diff screen"].screen:  # (its footer's first key)
            raise RuntimeError("the diff screen did not open:\n" + out["diff screen"].screen)
        out["diff closes"] = wire.measure(lambda: wire.keys("q"))
        out["idle"] = wire.measure(lambda: time.sleep(idle))
        if not tmux.alive():
            raise RuntimeError("the app exited during the run:\n" + tmux.screen())
    finally:
        tmux.close()
    return out


def report(runs: dict[str, dict[str, Window]]) -> None:
    names = list(next(iter(runs.values())))
    head = "bytes  detail    rest frames pane+bar paints"
    print(f"{'':14}" + "".join(f"{k:>48}" for k in runs))
    print(f"{'action':14}" + "".join(f"{head:>48}" for _ in runs))
    for n in names:
        print(f"{n:14}" + "".join(
            f"{w.total:>9,} {w.detail:>7,} {w.rest:>7,} {w.frames:>6} {w.detail_frames:>4}+"
            f"{w.bar_frames:<3} {w.paints:>6}" for w in (r[n] for r in runs.values())))
    print("(detail: bytes drawn in the detail pane; frames: bursts of output; pane+bar: "
          "frames with the pane's text, frames with only its scrollbar; paints: the app's "
          "detail repaints)")
    ok = (lambda c: "PASS" if c else "MISS")  # noqa: E731
    for label, r in runs.items():
        move = r["cursor move"]
        print(f"{label}:")
        print(f"  cursor move: {move.rest:,} B besides the detail (≤ 2 KB): {ok(move.rest <= 2048)};"
              f" then the detail: {move.detail:,} B, {move.paints} paint(s)")
        for n in ("held j x10", "burst j x10"):
            w = r[n]
            once = w.paints == 1 and w.detail_frames == 1
            bar = f", plus {w.bar_frames} with only the scrollbar" if w.bar_frames else ""
            print(f"  {n}: {w.total:,} B; detail repainted once, after the last key "
                  f"({w.paints} paint(s), its text in {w.detail_frames} frame(s){bar}): "
                  f"{ok(once)}; {w.rest / 10:,.0f} B per move besides the detail (≤ 2 KB): "
                  f"{ok(w.rest <= 10 * 2048)}")
        idle = r["idle"].total
        print(f"  idle: {idle:,} B (0 B): {ok(idle == 0)}")
        for n in ("startup", "help", "help closes", "g (top)", "G (bottom)", "held j, scroll",
                  "diff screen", "diff closes"):
            print(f"  {n}: {r[n].total:,} B in {r[n].frames} frame(s); {anatomy(r[n].data)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--huge", type=int, default=2000)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--idle", type=float, default=31.0, help="seconds of idle measured")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="set for the app, e.g. TEXTUAL_ANIMATIONS=full")
    ap.add_argument("--local", action="store_true",
                    help="run the app as in a local terminal (no SSH_CONNECTION)")
    ap.add_argument("--stamp", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--app", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stamp:
        return stamp(args.stamp)
    if args.app:
        return run_app(Path(args.app[0]), args.app[1])
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed: apt-get install tmux")
    width, height = (int(x) for x in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench_wire_"))
    try:
        from nanochat_ckpt_tui.store.demo import write_demo

        demo = write_demo(work / "demo")
        load = os.getloadavg()[0]
        # as over SSH (sshd sets SSH_CONNECTION; the app then turns Textual's animations off)
        env = {} if args.local else {"SSH_CONNECTION": "127.0.0.1 50022 127.0.0.1 22"}
        env.update(kv.split("=", 1) for kv in args.env)
        runs = {"demo": measure(demo, width, height, work, "demo", env, args.idle)}
        if args.huge:
            runs[f"{args.huge} checkpoints"] = measure(make_huge(work, args.huge), width,
                                                       height, work, "huge", env, args.idle)
        shown = " ".join(f"{k}={v!r}" for k, v in env.items())
        print(f"bytes written to a {width}x{height} terminal by {ROOT}"
              f"{' with ' + shown if shown else ''}; load average "
              f"{load:.2f} → {os.getloadavg()[0]:.2f}")
        report(runs)
        if args.keep:
            for label, r in runs.items():
                (work / f"screens-{label.split()[-1]}.txt").write_text("".join(
                    f"== {n} (log offset {w.start:,}, paints {w.painted})\n{w.screen}\n"
                    for n, w in r.items()))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
