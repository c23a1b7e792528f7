"""A stand-in for nanochat's training loop writing checkpoints, run as its own process.

    python tests/nanochat_writer.py TAG_DIR --steps 3500 4000 --delay 1.0 --log LOG

Like ``save_checkpoint``: plain non-atomic ``torch.save`` straight to the final
``model_NNNNNN.pt`` (written slowly, in pieces, so a reader can catch it half-written), then
the meta JSON, then one optimizer shard per rank. Each finished step is appended to LOG.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

from nanochat_ckpt_tui.store.demo import (
    base_meta,
    make_optimizer_shard,
    make_state_dict,
    model_config,
)


def slow_save(obj: object, path: Path, pieces: int, delay: float) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    step = max(1, len(data) // pieces)
    with open(path, "wb") as f:  # the final name from the first byte, as torch.save does
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(delay / pieces)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tag_dir", type=Path)
    ap.add_argument("--steps", type=int, nargs="+", required=True)
    ap.add_argument("--total", type=int, default=5000)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--delay", type=float, default=1.0, help="seconds to write one model file")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between steps")
    ap.add_argument("--log", type=Path)
    args = ap.parse_args()
    cfg = model_config(args.depth)
    for step in args.steps:
        sd = make_state_dict(cfg, step=step, total=args.total, seed=args.depth)
        slow_save(sd, args.tag_dir / f"model_{step:06d}.pt", pieces=20, delay=args.delay)
        with open(args.tag_dir / f"meta_{step:06d}.json", "w") as f:
            json.dump(base_meta(cfg, step, args.total, tag=args.tag_dir.name), f, indent=2)
        for rank in range(2):
            shard = make_optimizer_shard(sd, rank=rank, world=2, step=step)
            slow_save(shard, args.tag_dir / f"optim_{step:06d}_rank{rank}.pt", pieces=4,
                      delay=args.delay / 4)
        if args.log:
            with open(args.log, "a") as f:
                f.write(f"{step} {time.time()}\n")
        time.sleep(args.pause)


if __name__ == "__main__":
    main()
