"""Fuzz inputs for the reader, the summary and the diff, shared by the fast hypothesis tests
(tests/test_fuzz.py) and the long run (benchmarks/fuzz_long.py).

Cases are bytes of a would-be checkpoint file (or meta JSON). ``run_case`` feeds one to every
reader and reports what escaped: the only exception allowed is ``CheckpointError``; nothing may
be executed (an audit hook watches for process, exec, network and import events), and nothing
may allocate more than 256 MB (tracemalloc) or take more than 2 s.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import struct
import sys
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_SECONDS = 2.0
MAX_BYTES = 256 * 1024 * 1024

# ----------------------------------------------------------------------------- pickle writing


def lit(obj: object) -> bytes:
    """Pickle opcodes for a plain literal (int, str, tuple, ...), without PROTO and STOP."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tensor_ops(key: str, shape: tuple, stride: tuple, offset: int = 0, numel: int = 4,
               storage: str = "FloatStorage", rebuild: str = "_rebuild_tensor_v2") -> bytes:
    pid = b"(" + lit("storage") + glob("torch", storage) + lit(key) + lit("cpu") + lit(numel) \
        + b"tQ"
    args = b"(" + pid + lit(offset) + lit(shape) + lit(stride) + b"\x89" \
        + glob("collections", "OrderedDict") + b")R" + b"t"
    return glob("torch._utils", rebuild) + args + b"R"


def state_dict_pickle(entries: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(lit(k) + v for k, v in entries)
    return b"\x80\x02}(" + body + b"u."


def torch_zip(pkl: bytes, storages: dict[str, bytes], prefix: str = "archive") -> bytes:
    """A torch.save-shaped zip (stored, not compressed) around a given data.pkl."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"{prefix}/data/{key}", data)
        z.writestr(f"{prefix}/version", "3\n")
    return buf.getvalue()


MALICIOUS_GLOBALS = [
    ("os", "system"), ("posix", "system"), ("builtins", "exec"), ("builtins", "eval"),
    ("subprocess", "Popen"), ("subprocess", "check_output"), ("builtins", "__import__"),
    ("builtins", "getattr"), ("nt", "system"), ("pty", "spawn"), ("shutil", "rmtree"),
    ("torch", "load"), ("torch.serialization", "load"), ("numpy", "load"),
    ("collections", "defaultdict"), ("torch._utils", "_rebuild_from_type_v2"),
    ("functools", "partial"), ("operator", "attrgetter"), ("webbrowser", "open"),
]


def crafted_cases(rng: random.Random) -> list[tuple[str, bytes]]:
    """Hand-made hostile or broken checkpoints."""
    ok = tensor_ops("0", (2, 2), (2, 1))
    four = struct.pack("<4f", 1, 2, 3, 4)
    cases: list[tuple[str, bytes]] = []
    for mod, name in MALICIOUS_GLOBALS:
        pkl = b"\x80\x02" + glob(mod, name) + lit("touch /tmp/nanochat-ckpt-pwned") + b"\x85R."
        cases.append((f"global {mod}.{name}", torch_zip(pkl, {})))
    # the same through opcodes other than GLOBAL
    cases.append(("STACK_GLOBAL os.system", torch_zip(
        b"\x80\x04" + lit("os") + lit("system") + b"\x93" + lit("id") + b"\x85R.", {})))
    cases.append(("INST os.system", torch_zip(b"(" + lit("id") + b"ios\nsystem\n.", {})))
    cases.append(("OBJ", torch_zip(b"\x80\x02(" + glob("os", "system") + lit("id") + b"o.",
                                   {})))
    cases.append(("EXT1", torch_zip(b"\x80\x02\x82\x01" + lit("id") + b"\x85R.", {})))
    cases.append(("BUILD on a stand-in", torch_zip(
        b"\x80\x02" + glob("torch", "FloatStorage") + b"}" + lit("dtype") + lit("x") + b"sb.",
        {})))
    cases.append(("NEWOBJ", torch_zip(b"\x80\x02" + glob("torch", "FloatStorage") + b")\x81.",
                                      {})))
    cases.append(("REDUCE a storage class", torch_zip(
        b"\x80\x02" + glob("torch", "FloatStorage") + b")R.", {})))
    # shapes, strides, offsets
    for shape, stride, offset, numel in [((-1, 2), (2, 1), 0, 4), ((2, 2), (-2, 1), 0, 4),
                                         ((10**12, 10**12), (10**12, 1), 0, 4),
                                         ((2, 2), (2, 1), 10**15, 4), ((2, 2), (2, 1), -5, 4),
                                         ((2, 2), (2, 1), 3, 4), ((3, 3), (3, 1), 0, 4),
                                         ((2,) * 65, (1,) * 65, 0, 4), ((2, 2), (2,), 0, 4),
                                         ((2, 2), (2, 1), 0, -1), ((0, 5), (5, 1), 0, 0)]:
        pkl = state_dict_pickle([("w", tensor_ops("0", shape, stride, offset, numel))])
        cases.append((f"shape {shape[:3]} stride {stride[:3]} offset {offset}",
                      torch_zip(pkl, {"0": four * 1})))
    cases.append(("missing storage", torch_zip(state_dict_pickle([("w", ok)]), {})))
    cases.append(("storage shorter than tensor", torch_zip(state_dict_pickle([("w", ok)]),
                                                           {"0": b"\0" * 7})))
    cases.append(("bad shape type", torch_zip(state_dict_pickle(
        [("w", tensor_ops("0", ("a", 2), (2, 1)))]), {"0": four})))
    cases.append(("non-string key", torch_zip(b"\x80\x02}(" + lit(1) + ok + b"u.",
                                              {"0": four})))
    deep = b"\x80\x02" + b"]" * 20_000 + b"a" * 19_999 + b"."
    cases.append(("deep nesting", torch_zip(deep, {})))
    cases.append(("deep dicts", torch_zip(b"\x80\x02" + (b"}" + lit("k")) * 20_000
                                          + b"s" * 20_000 + b".", {})))
    recursive = b"\x80\x02]q\x00h\x00a."  # a list containing itself
    cases.append(("recursive list", torch_zip(recursive, {})))
    rec_dict = b"\x80\x02}q\x00(" + lit("model") + b"h\x00u."  # {'model': <itself>}
    cases.append(("recursive wrapper", torch_zip(rec_dict, {})))
    cases.append(("huge string", torch_zip(b"\x80\x02X" + struct.pack("<I", 2**31) + b"ab.",
                                           {})))
    cases.append(("huge memo index", torch_zip(b"\x80\x02j\xff\xff\xff\x7f.", {})))
    cases.append(("persistent id junk", torch_zip(b"\x80\x02" + lit(("storage",)) + b"Q.", {})))
    cases.append(("empty pickle", torch_zip(b"", {})))
    cases.append(("pickle of a list of ints", torch_zip(lit([1, 2, 3]) + b".", {})))
    cases.append(("two data.pkl", _two_pickles()))
    cases.append(("compressed data.pkl", _deflated(state_dict_pickle([("w", ok)]), four)))
    big_zip = io.BytesIO()
    with zipfile.ZipFile(big_zip, "w") as z:
        z.writestr("x/data.pkl", b"\x80\x02" + b"(" * 10)
        for i in range(2000):
            z.writestr(f"x/data/{i}", b"")
    cases.append(("many members", big_zip.getvalue()))
    cases.append(("random bytes", rng.randbytes(rng.randint(0, 4096))))
    cases.append(("zip magic then junk", b"PK\x03\x04" + rng.randbytes(200)))
    cases.append(("empty", b""))
    return cases


def _two_pickles() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a/data.pkl", state_dict_pickle([]))
        z.writestr("b/data.pkl", b"\x80\x02" + glob("os", "system") + b".")
    return buf.getvalue()


def _deflated(pkl: bytes, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", data)
    return buf.getvalue()


def scramble_pickle(data: bytes, rng: random.Random) -> bytes:
    """Damage bytes inside data.pkl and fix its CRC-32 (local header and central directory),
    as a crafted file would: the damage reaches the unpickler instead of failing the CRC."""
    import zlib

    z = zipfile.ZipFile(io.BytesIO(data))
    info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    h = info.header_offset  # the local header's extra field (alignment padding) may differ
    start = h + 30 + int.from_bytes(data[h + 26:h + 28], "little") + int.from_bytes(
        data[h + 28:h + 30], "little")
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        i = start + rng.randrange(max(info.file_size, 1))
        buf[i] = rng.randrange(256)
    crc = zlib.crc32(bytes(buf[start:start + info.file_size])).to_bytes(4, "little")
    buf[info.header_offset + 14:info.header_offset + 18] = crc
    name = info.filename.encode()
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        nlen = int.from_bytes(data[pos + 28:pos + 30], "little")
        if data[pos + 46:pos + 46 + nlen] == name:
            buf[pos + 16:pos + 20] = crc
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    return bytes(buf)


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A truncated, bit-flipped, spliced or zeroed copy of a real file, or one whose pickle is
    damaged behind a valid CRC."""
    if rng.randrange(4) == 0:
        try:
            return "pickle-crc-fixed", scramble_pickle(data, rng)
        except (StopIteration, zipfile.BadZipFile):
            pass
    choice = rng.randrange(5)
    if choice == 0 or not data:
        cut = rng.randrange(len(data) + 1) if data else 0
        return f"truncate@{cut}", data[:cut]
    buf = bytearray(data)
    if choice == 1:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        return "bitflip", bytes(buf)
    if choice == 2:  # damage the pickle region or the central directory specifically
        where = data.find(b"data.pkl")
        start = rng.randrange(max(where, 1), len(buf)) if where >= 0 else rng.randrange(len(buf))
        for i in range(start, min(start + rng.randint(1, 64), len(buf))):
            buf[i] = rng.randrange(256)
        return f"scramble@{start}", bytes(buf)
    if choice == 3:
        i = rng.randrange(len(buf))
        return f"zero-tail@{i}", bytes(buf[:i]) + b"\0" * (len(buf) - i)
    i, j = sorted(rng.randrange(len(buf)) for _ in range(2))
    return f"splice@{i}-{j}", bytes(buf[:i]) + bytes(buf[j:]) + bytes(buf[i:j])


def meta_cases(rng: random.Random) -> list[tuple[str, bytes]]:
    return [
        ("meta infinity", b'{"val_bpb": Infinity, "loop_state": {"min_val_bpb": NaN}}'),
        ("meta deep", b"[" * 100_000 + b"]" * 100_000),
        ("meta huge", b'{"x": "' + b"a" * (20 * 1024 * 1024) + b'"}'),
        ("meta wrong types", b'{"val_bpb": "low", "model_config": [1], "loop_state": 3}'),
        ("meta not utf8", rng.randbytes(64)),
        ("meta truncated", b'{"step": 100, "val_bpb": 0.9'),
    ]


# ------------------------------------------------------------------------------- running


FORBIDDEN_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                    "subprocess.Popen", "exec", "compile", "socket.", "ctypes.", "os.remove",
                    "os.unlink", "os.rmdir", "shutil.rmtree", "webbrowser.open", "pty.spawn")

_WATCH: dict[str, object] = {"on": False, "events": []}


def _audit(event: str, args: tuple) -> None:
    if _WATCH["on"] and event.startswith(FORBIDDEN_EVENTS):
        _WATCH["events"].append(event)  # type: ignore[union-attr]


_HOOKED = False


def install_audit_hook() -> None:
    global _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True


@dataclass
class Outcome:
    name: str
    seconds: float
    peak_bytes: int
    escaped: str | None  # an exception other than CheckpointError
    events: list[str]

    @property
    def ok(self) -> bool:
        return (self.escaped is None and not self.events and self.seconds <= MAX_SECONDS
                and self.peak_bytes <= MAX_BYTES)


def readers() -> list[tuple[str, Callable[[Path], object]]]:
    from nanochat_ckpt_tui.store import ptfile, summary

    def summarize_file(p: Path) -> object:
        m = ptfile.read_model(p)
        return summary.summarize_model(m, None)

    out: list[tuple[str, Callable[[Path], object]]] = [
        ("read_archive", ptfile.read_archive), ("read_model", ptfile.read_model),
        ("read_optimizer", ptfile.read_optimizer), ("summarize", summarize_file),
    ]
    try:
        from nanochat_ckpt_tui.store import diff as diff_mod
    except ImportError:
        return out
    reference = os.environ.get("NANOCHAT_FUZZ_REFERENCE")
    if reference and hasattr(diff_mod, "diff"):
        out.append(("diff", lambda p: diff_mod.diff(Path(reference), p)))
    return out


def warm_up(workdir: Path) -> None:
    """Run every reader once on a valid file, so lazy imports (codecs, numpy) happen before
    the audit hook starts watching: after this, any exec or import event is the input's doing."""
    import encodings.cp437  # noqa: F401 - zipfile decodes member names with it

    ok = tensor_ops("0", (2, 2), (2, 1))
    good = torch_zip(state_dict_pickle([("w", ok)]), {"0": struct.pack("<4f", 1, 2, 3, 4)})
    for data, meta in ((good, False), (b'{"val_bpb": Infinity}', True)):
        o = _run(data, workdir, meta, traced=False)
        assert o[0] is None, o


def _run(data: bytes, workdir: Path, meta: bool, traced: bool
         ) -> tuple[str | None, float, int, list[str]]:
    from nanochat_ckpt_tui.store.meta import _META_CACHE, read_meta
    from nanochat_ckpt_tui.store.ptfile import CheckpointError

    path = workdir / ("meta_000001.json" if meta else "model_000001.pt")
    path.write_bytes(data)
    _META_CACHE.clear()
    funcs = [("read_meta", read_meta)] if meta else readers()
    escaped = None
    if traced:
        tracemalloc.start()
    _WATCH["events"] = []
    _WATCH["on"] = True
    started = time.perf_counter()
    try:
        for label, fn in funcs:
            try:
                fn(path)
            except CheckpointError as e:
                if not str(e).strip():
                    escaped = f"{label}: CheckpointError with an empty message"
            except Exception as e:  # noqa: BLE001 - this is what we are hunting
                escaped = f"{label}: {type(e).__name__}: {str(e)[:160]}"
                break
    finally:
        _WATCH["on"] = False
        seconds = time.perf_counter() - started
        peak = 0
        if traced:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return escaped, seconds, peak, list(_WATCH["events"])  # type: ignore[arg-type]


def run_case(name: str, data: bytes, workdir: Path, *, meta: bool = False,
             trace_memory: bool = True) -> Outcome:
    """Feed ``data`` (as a file) to every reader, or to the meta reader: time and exceptions
    in a plain pass, then the allocation peak in a traced pass (tracemalloc is slow)."""
    install_audit_hook()
    escaped, seconds, _, events = _run(data, workdir, meta, traced=False)
    peak = _run(data, workdir, meta, traced=True)[2] if trace_memory else 0
    return Outcome(name, seconds, peak, escaped, events)


def describe(o: Outcome) -> str:
    why = o.escaped or (f"events {o.events}" if o.events else "")
    if o.seconds > MAX_SECONDS:
        why += f" slow {o.seconds:.2f}s"
    if o.peak_bytes > MAX_BYTES:
        why += f" peak {o.peak_bytes / 1e6:.0f} MB"
    return f"{o.name}: {why.strip()}"


def json_meta_ok(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True
