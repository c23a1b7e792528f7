#!/usr/bin/env python
"""Core benchmark of nanochat-ckpt: metadata read vs ``torch.load``, and the base-dir scan.

Run by hand (not a test)::

    python benchmarks/bench_core.py [--size-gb 1.0] [--with-3gb] [--runs 5] [--keep DIR]
                                    [--quiet-wait 120] [--cold]

What it does, in one run:

1. Writes synthetic nanochat-like bf16 checkpoints with ``torch.save`` (in a subprocess, so
   this process never imports torch): nanochat's parameter names for a 20-layer model
   (``demo.param_shapes``, vocab 65536, head dim 128, without the ``value_embeds`` tables so the
   d20 file is the usual ~1.1 GB) at three widths: ~100 MB, ``--size-gb`` (n_embd 1280 for the
   default 1.0 = d20) and, with ``--with-3gb``, ~3 GB. Every file has the same parameter names
   and tensor count, so only the file size changes.
   Each measurement runs in a fresh subprocess, warm (the whole file is read once right before
   each run; this machine evicts idle page cache after about a minute):
   (a) ``ptfile.read_model(path)``: time of the read, time including the module's import, peak
   RSS (``ru_maxrss`` at the end of the child), and whether torch or numpy got imported;
   (b) ``torch.load(path, weights_only=True)``: time of the load (torch import reported
   separately) and peak RSS; plus ``torch.load(mmap=True)`` for reference.
2. Scan: a base dir of 50 tags x 200 steps (model, meta, optim rank0, optim rank1 per step,
   40,000 files, mtimes three days old), once with zero-byte files (stat only: the zip tail
   check stops at the size) and once with 100-byte files ending in a valid zip end record (so the
   22-byte tail read really happens). ``layout.scan()`` is timed in fresh processes: first call
   (empty tail cache) and second call (warm tail cache).

Children that import our package get cached bytecode (``PYTHONPYCACHEPREFIX`` in the work dir;
a ``PYTHONDONTWRITEBYTECODE`` in the environment is dropped for them) so import times are what a
user's install sees. Wall and CPU (process) times are both printed: on a shared machine the CPU
time shows whether a slow wall time was our code or the neighbours.

``--quiet-wait S`` waits up to S seconds before each measurement group for the machine (shared
with other agents) to have a CPU free; the load seen before each group is printed either way.
``--cold`` (root only) also drops the page cache (``/proc/sys/vm/drop_caches``) before a few
extra runs of the metadata read and the first scan: this disturbs anything else running on the
machine, so it is off by default.

Everything large goes under ``--tmp`` (default: the system temp dir) and is deleted at the
end unless ``--keep DIR`` is given (then files are written to, and left in, DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MiB = 1024 * 1024

VOCAB = 65536
LAYERS = 20
HEAD_DIM = 128
STEP = 200  # the step in the synthetic model file names (model_000200.pt)

# targets
READ_SPEEDUP_TARGET = 300.0
READ_RSS_TARGET_MB = 50.0
FLAT_TOLERANCE = 1.5  # slowest median read <= 1.5x the fastest, across file sizes
SCAN_TARGET_S = 0.5

# ---------------------------------------------------------------------------------------------
# child programs: run with ``python -c`` so a measured child imports nothing but what it tests

_CHILD_PRELUDE = """
import json, resource, sys, time
def _done(out):
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["torch_imported"] = "torch" in sys.modules
    out["numpy_imported"] = "numpy" in sys.modules
    print(json.dumps(out))
"""

CHILD_BASELINE = _CHILD_PRELUDE + """
_done({})
"""

CHILD_READ = _CHILD_PRELUDE + """
t0 = time.perf_counter()
from nanochat_ckpt_tui.store.ptfile import read_model
t1 = time.perf_counter()
c1 = time.process_time()
m = read_model(sys.argv[1])
t2 = time.perf_counter()
_done({"import_s": t1 - t0, "read_s": t2 - t1, "total_s": t2 - t0,
       "read_cpu_s": time.process_time() - c1,
       "n_tensors": len(m.tensors), "params": m.params, "tensor_bytes": m.tensor_bytes})
"""

CHILD_TORCH = _CHILD_PRELUDE + """
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
sd = torch.load(sys.argv[1], weights_only=True, mmap=sys.argv[2] == "mmap")
t2 = time.perf_counter()
_done({"import_s": t1 - t0, "read_s": t2 - t1, "total_s": t2 - t0, "n_tensors": len(sd),
       "params": sum(t.numel() for t in sd.values()),
       "tensor_bytes": sum(t.numel() * t.element_size() for t in sd.values())})
"""

CHILD_SCAN = _CHILD_PRELUDE + """
import collections
t0 = time.perf_counter()
from nanochat_ckpt_tui.store import layout
t1 = time.perf_counter()
times, cpus, cats = [], [], []
for _ in range(int(sys.argv[2])):
    a, c = time.perf_counter(), time.process_time()
    cats.append(layout.scan(sys.argv[1]))
    times.append(time.perf_counter() - a)
    cpus.append(time.process_time() - c)
def digest(cat):
    rows = [(s.dirname, t.name, c.step, c.state.value, tuple(c.problems),
             tuple((f.name, f.kind.value, f.size, f.mtime, f.step, f.rank, f.is_link)
                   for f in c.files), c.is_latest)
            for s in cat.stages for t in s.tags for c in t.checkpoints]
    other = [(t.name, f.name) for t in cat.tags for f in t.other_files]
    return hash((tuple(rows), tuple(other), tuple(cat.notes)))
c = cats[0]
_done({"import_s": t1 - t0, "scan_s": times, "scan_cpu_s": cpus, "stages": len(c.stages), "tags": len(c.tags),
       "checkpoints": len(c.checkpoints), "files": sum(len(k.files) for k in c.checkpoints),
       "notes": len(c.notes),
       "states": dict(collections.Counter(k.state.value for k in c.checkpoints)),
       "same_catalog": len({digest(k) for k in cats}) == 1})
"""


# Environment of the children that import our package. This sandbox sets
# PYTHONDONTWRITEBYTECODE=1, which would recompile our modules from source in every child
# (~10 ms more per import) where a user's install has cached bytecode: cache it under the
# work dir instead (set by _run). torch's children keep the environment: its bytecode is
# already cached in site-packages, and a pycache prefix would hide that.
OUR_ENV: dict[str, str] | None = None


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run a child program in a fresh interpreter; its JSON result plus the wall time seen here."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    out["maxrss_mb"] = out["maxrss_kb"] / 1024
    return out


# ---------------------------------------------------------------------------------------------
# building the synthetic files


def model_cfg(n_embd: int) -> dict:
    n_head = n_embd // HEAD_DIM
    return {"sequence_len": 2048, "vocab_size": VOCAB, "n_layer": LAYERS, "n_head": n_head,
            "n_kv_head": n_head, "n_embd": n_embd, "window_pattern": "SSSL"}


def shapes_for(n_embd: int) -> dict[str, tuple[int, ...]]:
    """nanochat's parameter names and shapes (HEAD), minus the big value_embeds tables."""
    from nanochat_ckpt_tui.store.demo import param_shapes  # no torch at import

    return {k: tuple(v) for k, v in param_shapes(model_cfg(n_embd)).items()
            if not k.startswith("value_embeds.")}


def expected_bytes(n_embd: int) -> int:
    total = 0
    for shape in shapes_for(n_embd).values():
        n = 1
        for d in shape:
            n *= d
        total += 2 * n
    return total


def n_embd_for(target_bytes: float) -> int:
    """The widest multiple of HEAD_DIM whose file is at most 15% over the nominal size.

    As nanochat users count it, a d20 (n_embd 1280, 1.12 GB in bf16) is "1 GB"; this picks
    n_embd 256 (98 MB) for 0.1 GB, 1280 for 1 GB and 2304 (3.15 GB) for 3 GB.
    """
    fits = [e for e in range(HEAD_DIM, 64 * HEAD_DIM, HEAD_DIM)
            if expected_bytes(e) <= 1.15 * target_bytes]
    return max(fits, default=HEAD_DIM)


def build_checkpoint(path: Path, n_embd: int) -> None:
    """Write the synthetic checkpoint in a subprocess: this process never imports torch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_build", str(path),
                    str(n_embd)], check=True)


def _build_child(path: str, n_embd: int) -> None:
    import torch

    sd = {}
    for name, shape in shapes_for(n_embd).items():
        if "lambda" in name:
            sd[name] = torch.ones(shape, dtype=torch.bfloat16)
        elif len(shape) == 2 and shape[0] * shape[1] < 1_000_000:
            sd[name] = torch.empty(shape, dtype=torch.bfloat16).normal_(0, 0.02)
        else:  # zeros are cheap to make; the reader and torch.load never look at values
            sd[name] = torch.zeros(shape, dtype=torch.bfloat16)
    from collections import OrderedDict

    torch.save(OrderedDict(sd), path)


def warm(path: Path) -> float:
    """Read the whole file once (page cache warm); returns the read speed in GB/s."""
    buf = memoryview(bytearray(4 * MiB))
    n = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            n += k
    return n / max(time.perf_counter() - t0, 1e-9) / 1e9


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


EOCD = b"PK\x05\x06" + bytes(18)  # an empty zip's end-of-central-directory record (22 bytes)
# the same after 78 bytes of padding: its (empty) central directory starts at byte 78, right
# before the record, as in a whole zip (the scan checks that the record fits the file size)
EOCD_AT_78 = b"PK\x05\x06" + bytes(12) + (78).to_bytes(4, "little") + bytes(2)


def build_tree(base: Path, n_tags: int, n_steps: int, ranks: int, payload: bool) -> int:
    """nanochat base dir: base_checkpoints/<tag>/{model,meta,optim_rank*} for every step."""
    old = time.time() - 3 * 86400
    pt = bytes(78) + EOCD_AT_78 if payload else b""
    n = 0
    for t in range(n_tags):
        tag = base / "base_checkpoints" / f"d20_run{t:02d}"
        tag.mkdir(parents=True)
        for s in range(n_steps):
            step = (s + 1) * 100
            files = {f"model_{step:06d}.pt": pt,
                     f"meta_{step:06d}.json": (b'{"step": %d}' % step) if payload else b""}
            for r in range(ranks):
                files[f"optim_{step:06d}_rank{r}.pt"] = pt
            mtime_ns = int((old + s) * 1e9)
            for name, data in files.items():
                fd = os.open(tag / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    if data:
                        os.write(fd, data)
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
                finally:
                    os.close(fd)
                n += 1
        os.utime(tag, ns=(int(old * 1e9),) * 2)
    return n


# ---------------------------------------------------------------------------------------------
# measuring


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return sum(vals[:8]), vals[3] + vals[4]  # total, idle + iowait


def busy(interval: float = 1.0) -> float:
    """Percent of all CPUs busy over ``interval`` (this process sleeps: it is the others)."""
    try:
        t0, i0 = _cpu_times()
        time.sleep(interval)
        t1, i1 = _cpu_times()
    except OSError:
        return float("nan")
    return 100.0 * (1 - (i1 - i0) / max(t1 - t0, 1))


def machine_state(max_wait: float) -> str:
    """Wait (up to max_wait s) for the other processes to leave a CPU free; describe the load."""
    deadline = time.time() + max_wait
    b = busy()
    while b > 30.0 and time.time() < deadline:
        b = busy(2.0)
    return f"load {loadavg()}, CPUs {b:.0f}% busy with other work"


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float], scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(min(xs) * scale)}-{fmt.format(max(xs) * scale)}"


def measure_cold_read(path: Path, runs: int) -> list[dict]:
    out = []
    for _ in range(runs):
        drop_caches()
        out.append(run_child(CHILD_READ, str(path), env=OUR_ENV))
    return out


def fmt_size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned numbers."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gb", type=float, default=1.0,
                    help="size of the main checkpoint (default 1.0: n_embd 1280, a d20)")
    ap.add_argument("--with-3gb", action="store_true", help="also a ~3 GB file (read + load)")
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per measurement")
    ap.add_argument("--scan-runs", type=int, default=5, help="fresh processes per scan tree")
    ap.add_argument("--tags", type=int, default=50)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--skip-torch", action="store_true", help="skip torch.load (no ratio)")
    ap.add_argument("--skip-read", action="store_true", help="only the scan part")
    ap.add_argument("--cold", action="store_true",
                    help="also cold runs (root: drops the page cache of the whole machine)")
    ap.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                    help="before each measurement group, wait up to S seconds for the other "
                         "processes to use less than 30%% of the CPUs (default 0: don't wait)")
    ap.add_argument("--keep", metavar="DIR", help="write files into DIR and keep them")
    ap.add_argument("--tmp", default=None, help="where to write when not --keep")
    ap.add_argument("--_build", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._build:
        _build_child(args._build[0], int(args._build[1]))
        return 0
    if args.cold and os.geteuid() != 0:
        ap.error("--cold needs root (it writes /proc/sys/vm/drop_caches)")

    if args.keep:
        work = Path(args.keep).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="nanochat_bench_", dir=args.tmp))
    try:
        return _run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    global OUR_ENV
    t_start = time.time()
    OUR_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    OUR_ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    states: list[str] = []

    def state(when: str) -> str:
        st = machine_state(args.quiet_wait)
        states.append(f"{when}: {st}")
        return st

    print("nanochat-ckpt core benchmark")
    print(f"  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  python "
          f"{platform.python_version()}  {os.cpu_count()} CPUs  {platform.machine()}  "
          f"work dir {work}")
    print(f"  at start: {state('start')}")
    run_child(CHILD_BASELINE, env=OUR_ENV)
    base = run_child(CHILD_BASELINE, env=OUR_ENV)
    print(f"  bare interpreter child: wall {base['wall_s'] * 1e3:.0f} ms, "
          f"peak RSS {base['maxrss_mb']:.1f} MiB")
    print("  children that import nanochat_ckpt_tui use cached bytecode (PYTHONPYCACHEPREFIX in "
          "the work dir" + ("; PYTHONDONTWRITEBYTECODE, set here, is dropped for them)"
                            if os.environ.get("PYTHONDONTWRITEBYTECODE") else ")"))

    problems: list[str] = []
    results = [] if args.skip_read else _bench_read(args, work, state, problems)
    scan_results, n_groups = _bench_scan(args, work, state, problems)

    # -- verdicts -----------------------------------------------------------------------------
    print("\nTargets (2-core machine)")
    rows = []
    if results:
        main_r = results[1]
        if not args.skip_torch:
            ratio = med([x["read_s"] for x in main_r["loads"]]) / med(
                [x["read_s"] for x in main_r["reads"]])
            rows.append([f"read_model >= {READ_SPEEDUP_TARGET:.0f}x faster than torch.load "
                         f"({main_r['label']}, warm)", f"{ratio:.0f}x",
                         "PASS" if ratio >= READ_SPEEDUP_TARGET else "MISS"])
        peak = max(x["maxrss_mb"] for r in results for x in r["reads"])
        rows.append([f"read_model peak RSS <= {READ_RSS_TARGET_MB:.0f} MB (all files, all runs)",
                     f"{peak:.1f} MiB",
                     "PASS" if peak * MiB / 1e6 <= READ_RSS_TARGET_MB else "MISS"])
        meds = [med([x["read_s"] for x in r["reads"]]) for r in results]
        flat = max(meds) / min(meds)
        size_ratio = results[-1]["size"] / results[0]["size"]
        rows.append([f"read_model flat in file size (slowest/fastest median <= "
                     f"{FLAT_TOLERANCE}; files differ {size_ratio:.0f}x)",
                     " / ".join(f"{m * 1e3:.2f}" for m in meds) + f" ms -> {flat:.2f}",
                     "PASS" if flat <= FLAT_TOLERANCE else "MISS"])
    for payload, _tree, runs, _cold in scan_results:
        first = med([x["scan_s"][0] for x in runs])
        label = "100-byte zips" if payload else "zero-byte files"
        rows.append([f"scan {n_groups:,} groups < {SCAN_TARGET_S} s (first call, {label})",
                     f"{first:.3f} s", "PASS" if first < SCAN_TARGET_S else "MISS"])
    print(table(["target", "measured", "result"], rows))
    print(f"\nmachine ({os.cpu_count()} CPUs, shared with other agents), sampled over 1 s before "
          "each measurement group:")
    for line in [*states, f"end: load {loadavg()}"]:
        print("  " + line)
    print(f"total {time.time() - t_start:.0f} s")
    for p in problems:
        print("PROBLEM:", p)
    if args.keep:
        print(f"files kept in {Path(args.keep).resolve()}")
    return 1 if problems else 0


def _bench_read(args: argparse.Namespace, work: Path, state: Callable[[str], str],
                problems: list[str]) -> list[dict]:
    """Part 1: read_model vs torch.load, per file size."""
    sizes = [("~100 MB", 0.1e9), (f"~{args.size_gb:g} GB", args.size_gb * 1e9)]
    if args.with_3gb:
        sizes.append(("~3 GB", 3.0e9))
    files = []
    for label, target in sizes:
        e = n_embd_for(target)
        path = work / f"ckpt_e{e}" / f"model_{STEP:06d}.pt"
        if not (path.exists() and path.stat().st_size >= expected_bytes(e)):
            t0 = time.perf_counter()
            build_checkpoint(path, e)
            print(f"  wrote {path} ({fmt_size(path.stat().st_size)}, n_embd {e}) in "
                  f"{time.perf_counter() - t0:.1f} s")
        files.append((label, e, path))

    print(f"\n[1] metadata read vs torch.load: warm (file read once before each run), each run "
          f"a fresh process, {args.runs} rounds over all files and kinds, median (min-max); "
          f"{LAYERS} layers, vocab {VOCAB}, bf16, nanochat names")
    results = [{"label": label, "e": e, "path": path, "size": path.stat().st_size,
                "reads": [], "loads": [], "mmaps": []} for label, e, path in files]
    for r in results:  # unmeasured: caches our bytecode
        run_child(CHILD_READ, str(r["path"]), env=OUR_ENV)
    # Round-robin over files and kinds, so a slow spell of the (shared) machine hits every
    # column alike instead of one file size or one side of a ratio.
    for i in range(args.runs):
        print(f"  round {i + 1}/{args.runs}: {state(f'round {i + 1}')}")
        for r in results:
            warm(r["path"])
            r["reads"].append(run_child(CHILD_READ, str(r["path"]), env=OUR_ENV))
            if not args.skip_torch:
                for kind, mode in (("loads", "full"), ("mmaps", "mmap")):
                    warm(r["path"])
                    r[kind].append(run_child(CHILD_TORCH, str(r["path"]), mode))

    rows = []
    for r in results:
        reads = r["reads"]
        rt = [x["read_s"] for x in reads]
        tt = [x["total_s"] for x in reads]
        rss = [x["maxrss_mb"] for x in reads]
        row = [f"{r['label']} (n_embd {r['e']})", fmt_size(r["size"]), str(reads[0]["n_tensors"]),
               f"{med(rt) * 1e3:.2f} ({spread(rt, 1e3, '{:.2f}')})",
               f"{med([x['read_cpu_s'] for x in reads]) * 1e3:.2f}",
               f"{med(tt) * 1e3:.1f}", f"{med([x['wall_s'] for x in reads]) * 1e3:.0f}",
               f"{max(rss):.1f}", "yes" if any(x["torch_imported"] for x in reads) else "no"]
        if any(x["torch_imported"] or x["numpy_imported"] for x in reads):
            problems.append(f"{r['label']}: the read child imported torch or numpy")
        rows.append(row)
    print("\n(a) ours: nanochat_ckpt_tui.store.ptfile.read_model(path)")
    print(table(["file", "size", "tensors", "read ms", "read CPU ms", "+import ms",
                 "process ms", "peak RSS MiB", "torch?"], rows))
    print("    read = read_model() alone (wall; CPU = process time); +import = import of ptfile + "
          "read; process = the whole child as the parent sees it (interpreter start-up "
          "included); peak RSS = ru_maxrss, max over runs")

    if not args.skip_torch:
        rows = []
        for r in results:
            ld, mm, reads = r["loads"], r["mmaps"], r["reads"]
            lt = [x["read_s"] for x in ld]
            imp = [x["import_s"] for x in ld + mm]
            ratio = med(lt) / med([x["read_s"] for x in reads])
            ratio_all = med([x["total_s"] for x in ld]) / med([x["total_s"] for x in reads])
            rows.append([
                r["label"], f"{med(imp):.2f} ({spread(imp, 1, '{:.2f}')})",
                f"{med(lt):.3f} ({spread(lt, 1, '{:.2f}')})",
                f"{med([x['maxrss_mb'] for x in ld]):.0f}",
                f"{med([x['read_s'] for x in mm]) * 1e3:.1f}",
                f"{med([x['maxrss_mb'] for x in mm]):.0f}",
                f"{ratio:.0f}x", f"{ratio_all:.0f}x"])
            for x in ld + mm:
                if x["n_tensors"] != reads[0]["n_tensors"] or x["params"] != reads[0]["params"]:
                    problems.append(f"{r['label']}: torch.load and read_model disagree")
        print("\n(b) torch.load(path, weights_only=True) (torch CPU, default threads)")
        print(table(["file", "import torch s", "full load s", "peak RSS MiB", "mmap=True ms",
                     "mmap RSS MiB", "ratio load/read", "ratio incl. imports"], rows))
        print("    ratio load/read = median torch.load time / median read_model time (imports "
              "excluded); incl. imports = (import torch + load) / (import ptfile + read)")

    if args.cold:
        rows = []
        for r in results:
            reads = measure_cold_read(r["path"], 3)
            rt = [x["read_s"] for x in reads]
            rows.append([r["label"], fmt_size(r["size"]),
                         f"{med(rt) * 1e3:.1f} ({spread(rt, 1e3)})",
                         f"{med([x['total_s'] for x in reads]) * 1e3:.1f}",
                         f"{med([x['wall_s'] for x in reads]) * 1e3:.0f}",
                         f"{max(x['maxrss_mb'] for x in reads):.1f}"])
        print("\n(c) ours, COLD (page cache dropped before each of 3 runs)")
        print(table(["file", "size", "read ms", "+import ms", "process ms", "peak RSS MiB"],
                    rows))

    return results


def _bench_scan(args: argparse.Namespace, work: Path, state: Callable[[str], str],
                problems: list[str]
                ) -> tuple[list, int]:
    """Part 2: scan() of the two synthetic trees."""
    n_groups = args.tags * args.steps
    print(f"\n[2] scan(): {args.tags} tags x {args.steps} steps = {n_groups:,} groups, "
          f"{2 + args.ranks} files each, all three days old; warm (one unmeasured scan process "
          "first); first call in a fresh process (empty tail cache) and second call (cached "
          f"tails); median of {args.scan_runs} processes (min-max)")
    scan_results = []
    for payload in (False, True):
        tree = work / ("scan_100b" if payload else "scan_empty")
        if not tree.exists():
            t0 = time.perf_counter()
            n = build_tree(tree, args.tags, args.steps, args.ranks, payload)
            print(f"  wrote {n:,} files under {tree} in {time.perf_counter() - t0:.1f} s")
        print(f"  {tree.name}: {state(f'before {tree.name}')}")
        # unmeasured first: warms dentries, inodes, the files' tails and our bytecode
        run_child(CHILD_SCAN, str(tree), "1", env=OUR_ENV)
        runs = [run_child(CHILD_SCAN, str(tree), "2", env=OUR_ENV) for _ in range(args.scan_runs)]
        cold = []
        if args.cold:
            for _ in range(3):
                drop_caches()
                cold.append(run_child(CHILD_SCAN, str(tree), "2", env=OUR_ENV))
        scan_results.append((payload, tree, runs, cold))

    rows = []
    for payload, _tree, runs, cold in scan_results:
        first = [x["scan_s"][0] for x in runs]
        second = [x["scan_s"][1] for x in runs]
        c = runs[0]
        st = ", ".join(f"{k} {v:,}" for k, v in sorted(c["states"].items()))
        label = "100-byte zips (tail read)" if payload else "zero-byte (stat only)"
        rows.append([label, f"{c['checkpoints']:,}", f"{c['files']:,}",
                     f"{med(first):.3f} ({spread(first, 1, '{:.3f}')})",
                     f"{med([x['scan_cpu_s'][0] for x in runs]):.3f}",
                     f"{med(second):.3f} ({spread(second, 1, '{:.3f}')})",
                     f"{med([x['import_s'] for x in runs]) * 1e3:.0f}",
                     f"{max(x['maxrss_mb'] for x in runs):.0f}", st])
        if cold:
            cf = [x["scan_s"][0] for x in cold]
            rows.append([label + " COLD", "", "", f"{med(cf):.3f} ({spread(cf, 1, '{:.3f}')})",
                         f"{med([x['scan_cpu_s'][0] for x in cold]):.3f}",
                         f"{med([x['scan_s'][1] for x in cold]):.3f}", "", "", ""])
        if c["checkpoints"] != n_groups or not all(x["same_catalog"] for x in runs):
            problems.append(f"scan {label}: wrong group count or catalogs differ between calls")
        if any(x["torch_imported"] or x["numpy_imported"] for x in runs):
            problems.append(f"scan {label}: imported torch or numpy")
    print(table(["tree", "groups", "files", "first scan s", "first CPU s", "second scan s",
                 "import ms", "peak RSS MiB", "states"], rows))

    return scan_results, n_groups


if __name__ == "__main__":
    sys.exit(main())
