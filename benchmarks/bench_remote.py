#!/usr/bin/env python
"""Bytes fetched to inspect a ~1 GB checkpoint on S3 (moto on loopback): model summary + meta.

Run by hand (not a test)::

    python benchmarks/bench_remote.py [--size-gb 1.0] [--diff] [--keep DIR] [--ssh]

What it does:

1. Writes a synthetic nanochat-like bf16 ``model_000200.pt`` (d20 names, n_embd 1280 for
   1.0 GB: ``bench_core.build_checkpoint``, in a subprocess so this process never imports
   torch) and its ``meta_000200.json``, and uploads both to a bucket on a moto S3 server
   started on 127.0.0.1.
2. Puts a counting TCP proxy between s3fs and the server, so the bytes measured are the bytes
   that really crossed the wire (HTTP headers included), not what our code thinks it asked.
3. ``layout.scan`` of the URL, then ``summary.summarize(ck)`` of the checkpoint:
   reports wire bytes, requests (our ``FsspecStorage.stats``: ranged reads and whole-file reads),
   the data.pkl size, and the time of each step.
4. With ``--diff``, also diffs the checkpoint against itself remotely (streams 2 x the file
   in ranged reads of ``diff.REMOTE_BLOCK_BYTES``) and reports the throughput seen.

Target: inspecting the 1 GB checkpoint fetches under 1 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_core import STEP, build_checkpoint, model_cfg, n_embd_for  # noqa: E402

TARGET_BYTES = 1_000_000


class CountingProxy:
    """A loopback TCP proxy that counts the bytes passed each way."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.down = 0  # server -> client: what was fetched
        self.up = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.down = self.up = 0

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        try:
            while data := src.recv(1 << 16):
                with self.lock:
                    setattr(self, way, getattr(self, way) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fmt(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n} B"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--diff", action="store_true", help="also diff the file with itself")
    ap.add_argument("--keep", metavar="DIR", help="write the files here and leave them")
    ap.add_argument("--ssh", action="store_true",
                    help="over ssh:// (a real sshd on loopback, tests/sshd.py) instead of S3")
    args = ap.parse_args()
    if args.ssh:
        return main_ssh(args)

    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request

    from nanochat_ckpt_tui.store import layout, summary
    from nanochat_ckpt_tui.store.diff import diff

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_remote_"))
    tag = work / "base" / "base_checkpoints" / "d20"
    model = tag / f"model_{STEP:06d}.pt"
    n_embd = n_embd_for(args.size_gb * 1e9)
    t0 = time.perf_counter()
    if not model.exists():
        build_checkpoint(model, n_embd)
    meta = tag / f"meta_{STEP:06d}.json"
    meta.write_text(json.dumps({"step": STEP, "val_bpb": 0.81, "model_config": model_cfg(n_embd),
                                "user_config": {"depth": 20}, "loop_state": {
                                    "min_val_bpb": float("inf")}}, indent=2))
    with zipfile.ZipFile(model) as z:
        pkl = next(i.file_size for i in z.infolist() if i.filename.endswith("/data.pkl"))
    size = model.stat().st_size
    print(f"model {model.name}: {fmt(size)} ({size:,} bytes), n_embd {n_embd}, data.pkl "
          f"{pkl:,} bytes; meta {meta.stat().st_size:,} bytes (built in "
          f"{time.perf_counter() - t0:.1f}s)")

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        proxy = CountingProxy(port)
        opts = {"key": "bench", "secret": "bench", "skip_instance_cache": True,
                "endpoint_url": f"http://127.0.0.1:{proxy.port}",
                "client_kwargs": {"region_name": "eu-west-1"}}
        fs = s3fs.S3FileSystem(**opts)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        fs.mkdir(bucket)
        t0 = time.perf_counter()
        fs.put(str(work / "base"), f"{bucket}/runs", recursive=True)
        print(f"uploaded to s3://{bucket}/runs in {time.perf_counter() - t0:.1f}s "
              f"(moto on 127.0.0.1:{port}, counting proxy on :{proxy.port})")
        url = f"s3://{bucket}/runs"

        proxy.reset()
        t0 = time.perf_counter()
        cat = layout.scan(url, storage_options=opts, now=time.time() + 3600)
        scan_s, scan_wire = time.perf_counter() - t0, proxy.down
        assert cat.storage is not None
        ck = cat.stage("base").tag("d20").latest
        print(f"scan_url: {scan_s * 1000:.0f} ms, {fmt(scan_wire)} on the wire, "
              f"{len(cat.checkpoints)} checkpoint(s), state {ck.state.value}")

        proxy.reset()
        cat.storage.stats.reset()
        t0 = time.perf_counter()
        s = summary.summarize(ck)
        show_s = time.perf_counter() - t0
        wire, stats = proxy.down, cat.storage.stats
        assert s.model is not None and s.model_summary is not None, s.model_error
        assert s.meta is not None, s.meta_error
        print(f"summarize (model summary + meta): {show_s * 1000:.0f} ms; "
              f"{s.model_summary.params:,} params in {len(s.model.tensors)} tensors, depth "
              f"{s.model_summary.depth}")
        print(f"  payload read by our code: {stats.bytes:,} bytes in {stats.requests} reads "
              f"(zip tail 65,558 + data.pkl {pkl:,} + byteorder + 2 local headers + meta)")
        print(f"  bytes on the wire (server -> client, HTTP headers included): {wire:,} "
              f"= {wire / size * 100:.4f}% of the {fmt(size)} file; sent {proxy.up:,}")
        with cat.storage.open(ck.model.path, ck.model.size) as f:  # the server's own latency
            t0 = time.perf_counter()
            f.seek(size // 2)
            f.read(30)
            one = time.perf_counter() - t0
        print(f"  (one 30-byte ranged GET of this object takes {one * 1000:.0f} ms on this moto "
              "server: the time above is the server's, not the bytes')")
        ok = wire < TARGET_BYTES
        print(f"target: < {fmt(TARGET_BYTES)} fetched: {'PASS' if ok else 'FAIL'} ({fmt(wire)})")

        if args.diff:
            proxy.reset()
            t0 = time.perf_counter()
            report = diff(ck, ck)
            took = time.perf_counter() - t0
            print(f"remote diff of the file with itself: {fmt(report.bytes_total)} of tensors in "
                  f"{took:.1f}s ({report.bytes_total / took / 1e6:.0f} MB/s), "
                  f"{fmt(proxy.down)} on the wire, identical={report.identical}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def main_ssh(args: argparse.Namespace) -> int:
    """The same measurement over ssh:// through a real OpenSSH server on loopback."""
    import getpass

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from sshd import run_sshd

    from nanochat_ckpt_tui.store import layout, summary

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_remote_"))
    tag = work / "base" / "base_checkpoints" / "d20"
    model = tag / f"model_{STEP:06d}.pt"
    n_embd = n_embd_for(args.size_gb * 1e9)
    if not model.exists():
        build_checkpoint(model, n_embd)
    (tag / f"meta_{STEP:06d}.json").write_text(json.dumps(
        {"step": STEP, "val_bpb": 0.81, "model_config": model_cfg(n_embd)}))
    old = time.time() - 3600
    for p in tag.iterdir():
        os.utime(p, (old, old))
    size = model.stat().st_size
    ok = False
    try:
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(run_sshd(work / "sshd"))
            proxy = CountingProxy(server.port)
            known = work / "known_hosts"
            known.write_text(f"[127.0.0.1]:{proxy.port} {server.host_key_line}\n")
            opts = {"key_filename": str(server.user_key), "known_hosts": str(known)}
            url = f"ssh://{getpass.getuser()}@127.0.0.1:{proxy.port}{work / 'base'}"
            proxy.reset()
            t0 = time.perf_counter()
            cat = layout.scan(url, storage_options=opts)
            scan_s, scan_wire = time.perf_counter() - t0, proxy.down
            ck = cat.stage("base").tag("d20").latest
            print(f"model {fmt(size)}; ssh scan (connect + list): {scan_s * 1000:.0f} ms, "
                  f"{fmt(scan_wire)} on the wire")
            proxy.reset()
            cat.storage.stats.reset()
            t0 = time.perf_counter()
            s = summary.summarize(ck)
            took = time.perf_counter() - t0
            assert s.model is not None, s.model_error
            wire = proxy.down
            print(f"summarize over ssh: {took * 1000:.0f} ms; payload {cat.storage.stats.bytes:,}"
                  f" bytes in {cat.storage.stats.requests} reads; on the wire {wire:,} bytes "
                  f"(SSH framing included) = {wire / size * 100:.4f}% of the file")
            ok = wire < TARGET_BYTES
            print(f"target: < {fmt(TARGET_BYTES)} on the wire: {'PASS' if ok else 'MISS'}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
