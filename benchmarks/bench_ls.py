#!/usr/bin/env python
"""``ls`` of one big tag: 6,000 steps (empty zips for the model and 2 optimizer ranks, a small
nanochat meta each: 24,000 files), human and JSON, in fresh processes. Target: < 0.5 s each.

Run by hand (not a test)::

    python benchmarks/bench_ls.py [--steps 6000] [--ranks 2] [--runs 5] [--keep DIR]
                                  [--tree LABEL=DIR ...]

Each command is a fresh ``python -m nanochat_ckpt_tui …`` process timed from the parent (what
a user waits for: start-up, scan, metas, output, exit), its runs interleaved with the others'
and the minimum of ``--runs`` kept (the machine is shared and noisy):

- ``ls DIR > file``: the human table, written to a file (no terminal: no colours);
- ``ls DIR`` on a terminal: the same through a pseudo-terminal of 120 columns (colours on);
- ``ls DIR --json > file``: the JSON document;
- the same with a check cache that holds 100,000 results of other files and the last 5 steps
  of this tag checked (by ``nanochat-ckpt check``): their verdicts are looked up, the other
  5,995 steps are found never checked (the other rows: a cache in real use).

For reference, in the same rounds: a bare ``python -c pass``, and the scan alone in a fresh
process (``layout.scan``: listing, stats, the zip-end check of each model and shard). Then,
in one process, where a JSON listing's time goes: the scan, the metas (read and judged), the
JSON document, writing it; the meta reads should cost no more than the scan.

``--tree LABEL=DIR`` runs a source tree (``DIR`` holds ``nanochat_ckpt_tui/``) through
``PYTHONPATH`` instead of the installed package; repeat it to compare versions in one run
(``--tree before=/tmp/before --tree after=.``). Children get cached bytecode (as an install
has) and an empty check cache (the never-checked case).
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5
EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18  # an end-of-central-directory record only: whole
DAY = 86400.0

BREAKDOWN = r"""
import gc, io, json, sys, time
t0 = time.perf_counter()
from nanochat_ckpt_tui.cli import browse, common
from nanochat_ckpt_tui.cli.documents import catalog_json
from nanochat_ckpt_tui.store import layout, summary
t1 = time.perf_counter()
gc.disable()  # as cmd_ls runs
base = sys.argv[1]
t = time.perf_counter(); cat = layout.scan(base); scan = time.perf_counter() - t
t = time.perf_counter(); summary.assess_metas(cat.checkpoints); metas = time.perf_counter() - t
t = time.perf_counter()
try:
    doc = catalog_json(cat, "nanochat-ckpt.ls/1", encoded=True)
except TypeError:  # an older tree: dicts, then json.dumps
    doc = catalog_json(cat, "nanochat-ckpt.ls/1")
build = time.perf_counter() - t
encode_doc = getattr(common, "json_text", None) or (
    lambda d: json.dumps(common._json_clean(d), indent=2, allow_nan=False))
t = time.perf_counter(); text = encode_doc(doc); encode = time.perf_counter() - t
t = time.perf_counter()
with open(sys.argv[2], "w") as f:
    f.write(text + "\n")
write = time.perf_counter() - t
print(json.dumps({"import": t1 - t0, "scan": scan, "metas": metas, "document": build,
                  "encode": encode, "write": write, "steps": len(cat.checkpoints),
                  "bytes": len(text)}))
"""


def make_tag(base: Path, steps: int, ranks: int) -> int:
    """One base tag of ``steps`` steps, written with bare os calls; files a day old."""
    stamp = base / ".done"
    want = f"{steps} {ranks}"
    if stamp.exists() and stamp.read_text() == want:
        return steps * (2 + ranks)
    if base.exists():
        shutil.rmtree(base)
    tag = base / "base_checkpoints" / "d20"
    tag.mkdir(parents=True)
    old = time.time() - DAY
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    n = 0
    for s in range(1, steps + 1):
        step = 10 * s
        meta = json.dumps({
            "step": step, "val_bpb": round(1.2 - step * 1e-6, 6),
            "model_config": {"sequence_len": 2048, "vocab_size": 65536, "n_layer": 20,
                             "n_head": 10, "n_kv_head": 10, "n_embd": 1280,
                             "window_pattern": "SSSL"},
            "user_config": {"depth": 20, "num_iterations": 10 * steps, "model_tag": "d20"},
            "loop_state": {"min_val_bpb": 0.9, "smooth_train_loss": 3.1,
                           "total_training_time": 100.0 * s}}, indent=2).encode()
        files = [(f"model_{step:06d}.pt", EMPTY_ZIP), (f"meta_{step:06d}.json", meta)]
        files += [(f"optim_{step:06d}_rank{r}.pt", EMPTY_ZIP) for r in range(ranks)]
        for name, data in files:
            fd = os.open(tag / name, flags, 0o644)
            try:
                os.write(fd, data)
                os.utime(fd, (old, old))
            finally:
                os.close(fd)
            n += 1
    stamp.write_text(want)
    return n


def fill_cache(cache_dir: Path, cli: list[str], env: dict[str, str], base: Path, steps: int,
               others: int = 100_000) -> None:
    """A check cache in use: the last 5 steps checked, plus ``others`` results of other files."""
    import sqlite3

    env = dict(env, NANOCHAT_CKPT_CACHE=str(cache_dir))
    last = [f"base/d20@{10 * s}" for s in range(steps - 4, steps + 1)]
    subprocess.run([*cli, "check", *last, "--base-dir", str(base), "-q"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # (exit 1: damaged)
    db = sqlite3.connect(cache_dir / "checks.sqlite")
    with db:
        db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", (
            (f'["local",2049,{10_000_000 + i},1000000,{1_700_000_000_000_000_000 + i}]',
             '{"v":1,"name":"model.pt","kind":"model","verdict":"good"}', 0.0)
            for i in range(others)))
    db.close()


def run_file(cmd: list[str], env: dict[str, str], out: Path) -> float:
    with open(out, "w") as f:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.PIPE, text=True)
        took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-500:]}")
    return took


def run_tty(cmd: list[str], env: dict[str, str], columns: int = 120) -> float:
    """The command on a pseudo-terminal (its output drained as it comes, as a terminal does)."""
    master, slave = pty.openpty()
    env = {**env, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                if not os.read(master, 1 << 16):
                    break
            except OSError:  # the child closed the terminal
                break
        elif proc.poll() is not None:
            break
    proc.wait()
    took = time.perf_counter() - t0
    os.close(master)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed on a terminal (exit {proc.returncode})")
    return took


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min), {os.cpu_count()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="write the tree here and keep it (reused)")
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nanochat-bench-ls-"))
    try:
        base = args.keep or work / "base"
        files = make_tag(base, args.steps, args.ranks)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "NANOCHAT_BASE_DIR")}
        env["PYTHONPYCACHEPREFIX"] = str(work / "pyc")
        env["NANOCHAT_CKPT_CACHE"] = str(work / "check-cache")
        py = sys.executable
        script = Path(py).parent / "nanochat-ckpt"  # (imports a --tree first: PYTHONPATH)
        cli_start = [str(script)] if script.exists() else [py, "-m", "nanochat_ckpt_tui"]
        trees = [t.split("=", 1) if "=" in t else (Path(t).name, t) for t in args.tree] \
            or [("installed", "")]
        groups = []
        for label, tree in trees:
            genv = dict(env, PYTHONPATH=str(Path(tree).resolve())) if tree else env
            cli = [*cli_start, "ls", str(base)]
            groups.append((label, genv, [
                ("ls > file", lambda c=cli, e=genv: run_file(c, e, work / "out.txt")),
                ("ls on a terminal", lambda c=cli, e=genv: run_tty(c, e)),
                ("ls --json > file",
                 lambda c=cli, e=genv: run_file([*c, "--json"], e, work / "out.json")),
                ("ls --json, a check cache",
                 lambda c=cli, e=dict(genv, NANOCHAT_CKPT_CACHE=str(work / f"cache-{label}")):
                 run_file([*c, "--json"], e, work / "out.json")),
            ]))
            fill_cache(work / f"cache-{label}", cli_start, genv, base, args.steps)
        scan_cmd = [py, "-c", "import sys; from nanochat_ckpt_tui.store.layout import scan; "
                              "scan(sys.argv[1])", str(base)]
        refs = [("python -c pass", lambda: run_file([py, "-c", "pass"], env, work / "o")),
                ("scan alone (fresh process)",
                 lambda: run_file(scan_cmd, dict(groups[-1][1]), work / "o"))]
        print(f"{args.steps:,} steps x (model, meta, {args.ranks} optimizer ranks) = "
              f"{files:,} files · python {sys.version.split()[0]} · {load()} · min of "
              f"{args.runs}, interleaved")
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.runs + 1):  # (the first round warms up: bytecode, page cache)
            for name, fn in refs:
                best[("", name)] = min(best.get(("", name), float("inf")), fn())
            for label, _, cmds in groups:
                for name, fn in cmds:
                    best[(label, name)] = min(best.get((label, name), float("inf")), fn())
        for name, _ in refs:
            print(f"  {name:<28} {best[('', name)] * 1000:7.1f} ms")
        misses = 0
        for label, genv, cmds in groups:
            print(f"\n{label}" + (f"  [PYTHONPATH={genv['PYTHONPATH']}]"
                                  if "PYTHONPATH" in genv else ""))
            for name, _ in cmds:
                took = best[(label, name)]
                ok = took < TARGET_S
                misses += not ok
                print(f"  {name:<28} {took * 1000:7.1f} ms  {'PASS' if ok else 'MISS'} "
                      f"(target < {TARGET_S * 1000:.0f} ms)")
            parts: dict[str, float] = {}
            for _ in range(3):
                proc = subprocess.run([py, "-c", BREAKDOWN, str(base), str(work / "b.json")],
                                      env=genv, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"  (breakdown failed: {proc.stderr.strip()[-300:]})")
                    break
                got = json.loads(proc.stdout)
                parts = {k: min(v, parts.get(k, v)) for k, v in got.items()}
            if parts:
                print("  where a JSON listing's time goes (one process, min of 3): "
                      + ", ".join(f"{k} {parts[k] * 1000:.0f} ms" for k in
                                  ("import", "scan", "metas", "document", "encode", "write")))
                print(f"  meta reads vs the scan: {parts['metas'] / parts['scan']:.2f}x "
                      f"({'PASS' if parts['metas'] <= parts['scan'] else 'MISS'}: no slower)")
        print(f"\n{load()}")
        print("all PASS" if not misses else f"{misses} MISS")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # (a --keep tree is elsewhere: kept)


if __name__ == "__main__":
    main()
