"""The long fuzz run (by hand, not CI): >= 10,000 cases against reader, summary, meta and diff.

    python benchmarks/fuzz_long.py [--cases 12000] [--seed 0] [--base DEMO_DIR]

Prints cases run, failures (any exception other than CheckpointError, any audit event of a
process/exec/network/delete, > 2 s, > 256 MB allocated), the slowest case and the largest
allocation peak. Memory is traced on every 10th case (tracemalloc is slow).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzing  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=12_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", help="an existing demo base dir (else one is written)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="nanochat-fuzz-"))
    base = Path(args.base) if args.base else None
    if base is None:
        from nanochat_ckpt_tui.store.demo import write_demo

        base = write_demo(work / "demo")
    real = sorted(p for p in base.rglob("*.pt"))
    blobs = [p.read_bytes() for p in real]
    os.environ["NANOCHAT_FUZZ_REFERENCE"] = str(base / "base_checkpoints/d4/model_001000.pt")
    fuzzing.warm_up(work)

    def alarm(signum, frame):
        raise TimeoutError("case hung for 10 s")

    signal.signal(signal.SIGALRM, alarm)
    crafted = fuzzing.crafted_cases(rng)
    metas = fuzzing.meta_cases(rng)
    failures: list[str] = []
    slowest = (0.0, "")
    peak = (0, "")
    started = time.perf_counter()
    n = 0
    while n < args.cases:
        kind = n % 10
        if n < len(crafted):
            name, data, meta = *crafted[n], False
        elif n < len(crafted) + len(metas):
            name, data, meta = *metas[n - len(crafted)], True
        elif kind < 7:
            i = rng.randrange(len(blobs))
            name, data = fuzzing.mutate(blobs[i], rng)
            name, meta = f"{real[i].name}:{name}", False
        elif kind < 9:
            shape = tuple(rng.choice([-1, 0, 1, 2, 3, 2**31, 2**62]) for _ in range(
                rng.randint(0, 3)))
            stride = tuple(rng.choice([-1, 0, 1, 2, 2**40]) for _ in range(len(shape)))
            ops = fuzzing.tensor_ops("0", shape, stride, rng.choice([0, 1, -1, 2**40]),
                                     rng.choice([0, 4, -1, 2**40]))
            data = fuzzing.torch_zip(fuzzing.state_dict_pickle([("w", ops)]),
                                     {"0": b"\1" * rng.randint(0, 32)})
            name, meta = f"header {shape} {stride}", False
        else:
            name, data, meta = "random bytes", rng.randbytes(rng.randint(0, 8192)), False
        signal.alarm(10)
        try:
            o = fuzzing.run_case(name, data, work, meta=meta, trace_memory=(n % 10 == 0))
        except TimeoutError as e:
            failures.append(f"{name}: {e}")
            n += 1
            continue
        finally:
            signal.alarm(0)
        if not o.ok:
            failures.append(fuzzing.describe(o))
        if o.seconds > slowest[0]:
            slowest = (o.seconds, name)
        if o.peak_bytes > peak[0]:
            peak = (o.peak_bytes, name)
        n += 1
        if n % 1000 == 0:
            print(f"  {n} cases, {len(failures)} failures, {time.perf_counter() - started:.0f}s",
                  flush=True)
    took = time.perf_counter() - started
    print(f"cases run:        {n} ({took:.0f} s, {n / took:.0f}/s)")
    print(f"readers per case: {', '.join(label for label, _ in fuzzing.readers())}")
    print(f"failures:         {len(failures)}")
    for f in failures[:30]:
        print(f"  {f}")
    print(f"slowest case:     {slowest[0] * 1000:.1f} ms ({slowest[1]})")
    print(f"largest peak:     {peak[0] / 1e6:.1f} MB traced ({peak[1]})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
