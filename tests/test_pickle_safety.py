"""The reader never executes a pickle: malicious data.pkl payloads in real .pt zips.

Each payload would create a marker file if it ran (``test_payloads_are_live`` proves that with
plain ``pickle.loads``). Read through ``ptfile`` it must be refused with a ``CheckpointError``
that names the refused global, and the marker must not exist afterwards.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nanochat_ckpt_tui.store import unpickler
from nanochat_ckpt_tui.store.ptfile import CheckpointError, read_archive, read_model, read_optimizer

READERS = [read_archive, read_model, read_optimizer]


# ---------------------------------------------------------------------------------------------
# a tiny pickle assembler (protocol 2 opcodes unless said otherwise)


def s(x: str) -> bytes:
    """BINUNICODE"""
    b = x.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def g(module: str, name: str) -> bytes:
    """GLOBAL"""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL (protocol 4): module and name from the stack"""
    return s(module) + s(name) + b"\x93"


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args) through MARK ... TUPLE, REDUCE"""
    return func + b"(" + b"".join(args) + b"tR"


def ext(code: int) -> bytes:
    if code < 256:
        return b"\x82" + bytes([code])
    if code < 65536:
        return b"\x83" + struct.pack("<H", code)
    return b"\x84" + struct.pack("<i", code)


def proto(body: bytes, version: int = 2) -> bytes:
    return b"\x80" + bytes([version]) + body + b"."


def state_dict_around(value: bytes) -> bytes:
    """A plausible state dict ``{'w': <value>}``: the payload hides where a tensor would be."""
    return proto(b"}" + s("w") + value + b"s")


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def real_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real torch.save file whose data.pkl the tests replace."""
    torch = pytest.importorskip("torch")
    p = tmp_path_factory.mktemp("real") / "model_000001.pt"
    torch.save(OrderedDict(w=torch.ones(2, 2), b=torch.zeros(2, dtype=torch.bfloat16)), p)
    return p


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    m = tmp_path / "PWNED"
    yield m
    if m.exists():
        m.unlink()


def write_pt(real_pt: Path, dst: Path, pkl: bytes) -> Path:
    """``real_pt`` with its ``*/data.pkl`` replaced by ``pkl`` (storages and all else kept)."""
    with zipfile.ZipFile(real_pt) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = pkl if info.filename.endswith("/data.pkl") else zin.read(info)
            zout.writestr(info.filename, data)
    return dst


def refused(path: Path, *names: str) -> None:
    """Every reader refuses ``path`` with one sentence that names one of ``names``."""
    for fn in READERS:
        with pytest.raises(CheckpointError) as info:
            fn(path)
        e = info.value
        assert type(e) is CheckpointError and e.path == str(path)
        assert "\n" not in str(e)
        assert any(n in e.reason for n in names), (names, e.reason)


@pytest.fixture
def extensions() -> Iterator[Callable[[str, str, int], None]]:
    """Register copyreg extension codes for one test; removed (and uncached) afterwards."""
    added: list[tuple[str, str, int]] = []

    def add(module: str, name: str, code: int) -> None:
        copyreg.add_extension(module, name, code)
        added.append((module, name, code))

    yield add
    for module, name, code in added:
        copyreg.remove_extension(module, name, code)


# ---------------------------------------------------------------------------------------------
# payloads: name -> (pickle bytes for a marker path, words the refusal must contain)


class _Reduce:
    """An object whose pickle calls ``func(*args)`` on load: what a real attacker writes."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _python_code(m: Path) -> str:
    return f"open({str(m)!r}, 'w').close()"


PAYLOADS: dict[str, tuple[Callable[[Path], bytes], tuple[str, ...]]] = {
    # what pickle.dumps writes for os.system: the global is posix.system
    "os.system via __reduce__": (
        lambda m: pickle.dumps({"w": _Reduce(os.system, f"touch {m}")}, protocol=2),
        ("posix.system",)),
    "os.system by name": (
        lambda m: state_dict_around(call(g("os", "system"), s(f"touch {m}"))), ("os.system",)),
    "posix.system": (
        lambda m: state_dict_around(call(g("posix", "system"), s(f"touch {m}"))),
        ("posix.system",)),
    "builtins.exec": (
        lambda m: state_dict_around(call(g("builtins", "exec"), s(_python_code(m)))),
        ("builtins.exec",)),
    "builtins.eval": (
        lambda m: state_dict_around(call(g("builtins", "eval"), s(_python_code(m)))),
        ("builtins.eval",)),
    "__builtin__.eval (python 2 name)": (
        lambda m: state_dict_around(call(g("__builtin__", "eval"), s(_python_code(m)))),
        ("__builtin__.eval",)),
    "subprocess.Popen": (
        lambda m: pickle.dumps(_Reduce(subprocess.Popen, ["touch", str(m)]), protocol=2),
        ("subprocess.Popen",)),
    "subprocess.check_output": (
        lambda m: pickle.dumps(_Reduce(subprocess.check_output, ["touch", str(m)]), protocol=4),
        ("subprocess.check_output",)),
    "builtins.__import__ then getattr": (
        lambda m: state_dict_around(call(
            call(g("builtins", "getattr"), call(g("builtins", "__import__"), s("os")), s("system")),
            s(f"touch {m}"))),
        ("builtins.getattr",)),
    "builtins.__import__": (
        lambda m: proto(call(g("builtins", "__import__"), s("os"))),
        ("builtins.__import__",)),
    "dotted name through an allowed module (STACK_GLOBAL)": (
        lambda m: proto(call(sg("collections", "OrderedDict.__init__.__globals__"), s("x")), 4),
        ("collections.OrderedDict.__init__.__globals__",)),
    "dotted name through an allowed function": (
        lambda m: proto(sg("torch._utils", "_rebuild_tensor_v2.__globals__"), 4),
        ("torch._utils._rebuild_tensor_v2.__globals__",)),
    "a name with a newline": (
        lambda m: proto(call(sg("os", "system\nor\nwhat"), s(f"touch {m}")), 4),
        ("os.system\\nor\\nwhat",)),
    "torch.load itself": (
        lambda m: proto(call(g("torch", "load"), s(str(m)))), ("torch.load",)),
    "INST opcode": (
        lambda m: proto(b"(" + s(f"touch {m}") + b"ios\nsystem\n"), ("os.system",)),
    "INST opcode, subprocess": (
        lambda m: proto(b"(]" + s("touch") + b"a" + s(str(m)) + b"a" + b"isubprocess\ncheck_output\n"),
        ("subprocess.check_output",)),
    "OBJ opcode": (
        lambda m: proto(b"(" + g("posix", "system") + s(f"touch {m}") + b"o"),
        ("posix.system",)),
    "NEWOBJ opcode": (
        lambda m: proto(g("subprocess", "Popen") + b"(]" + s("touch") + b"a" + s(str(m)) + b"at"
                        + b"\x81"),
        ("subprocess.Popen",)),
    "NEWOBJ_EX opcode": (
        lambda m: proto(sg("subprocess", "Popen") + b"(]" + s("touch") + b"a" + s(str(m))
                        + b"at}\x92", 4),
        ("subprocess.Popen",)),
    "payload as a persistent id storage type": (
        lambda m: state_dict_around(
            b"(" + s("storage") + call(g("posix", "system"), s(f"touch {m}")) + s("0") + s("cpu")
            + b"K\x04tQ"),
        ("posix.system",)),
    "payload inside an optimizer param group": (
        lambda m: proto(b"}(" + s("state") + b"}" + s("param_groups") + b"](}(" + s("lr")
                        + call(g("builtins", "exec"), s(_python_code(m))) + b"ueu"),
        ("builtins.exec",)),
}


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_payloads_are_refused(name: str, real_pt: Path, marker: Path, tmp_path: Path) -> None:
    make, words = PAYLOADS[name]
    p = write_pt(real_pt, tmp_path / "evil.pt", make(marker))
    refused(p, *words)
    assert not marker.exists()
    for fn in READERS:  # the message says nothing ran
        with pytest.raises(CheckpointError, match="nothing was executed"):
            fn(p)


LIVE = ["os.system via __reduce__", "posix.system", "builtins.exec", "builtins.eval",
        "subprocess.check_output", "builtins.__import__ then getattr", "INST opcode", "OBJ opcode",
        "payload inside an optimizer param group"]


@pytest.mark.parametrize("name", LIVE)
def test_payloads_are_live(name: str, marker: Path) -> None:
    """The payloads are real: an ordinary unpickler does run them (so the tests above bite)."""
    make, _ = PAYLOADS[name]
    assert not marker.exists()
    pickle.loads(make(marker))
    assert marker.exists()


def test_payload_in_a_zip_built_from_scratch(marker: Path, tmp_path: Path) -> None:
    p = tmp_path / "scratch.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("scratch/data.pkl", pickle.dumps(_Reduce(os.system, f"touch {marker}"), 2))
        z.writestr("scratch/version", "3\n")
    refused(p, "posix.system")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# the copyreg extension registry (EXT1 / EXT2 / EXT4)


@pytest.mark.parametrize("code", [0x55, 0x1234, 0x7654321])
@pytest.mark.parametrize(("target", "arg"), [
    (("posix", "system"), "touch {m}"),
    (("builtins", "exec"), "open({m!r}, 'w').close()"),
    (("subprocess", "check_output"), None),
])
def test_ext_opcodes_are_refused(real_pt: Path, marker: Path, tmp_path: Path,
                                 extensions: Callable[[str, str, int], None], code: int,
                                 target: tuple[str, str], arg: str | None) -> None:
    extensions(*target, code)
    args = s(arg.format(m=str(marker))) if arg else b"]" + s("touch") + b"a" + s(str(marker)) + b"a"
    payload = proto(ext(code) + b"(" + args + b"tR")
    p = write_pt(real_pt, tmp_path / "ext.pt", payload)
    refused(p, f"{target[0]}.{target[1]}")
    assert not marker.exists()
    # the same code already resolved once (in copyreg's cache) must not slip past find_class
    assert pickle.loads(proto(ext(code))) is not None
    assert code in copyreg._extension_cache  # type: ignore[attr-defined]
    refused(p, f"{target[0]}.{target[1]}")
    assert not marker.exists()
    pickle.loads(payload)  # and the payload is live
    assert marker.exists()


def test_ext_of_an_allow_listed_name_is_refused_and_not_cached(
        real_pt: Path, tmp_path: Path, extensions: Callable[[str, str, int], None]) -> None:
    """No stand-in may leak into copyreg's process-wide cache (other unpicklers would get it)."""
    extensions("torch._utils", "_rebuild_tensor_v2", 0x66)
    extensions("collections", "OrderedDict", 0x67)
    p = write_pt(real_pt, tmp_path / "ext_allowed.pt", proto(ext(0x67) + b")R"))
    refused(p, "collections.OrderedDict")
    p2 = write_pt(real_pt, tmp_path / "ext_allowed2.pt", proto(ext(0x66)))
    refused(p2, "torch._utils._rebuild_tensor_v2")
    assert 0x66 not in copyreg._extension_cache  # type: ignore[attr-defined]
    assert 0x67 not in copyreg._extension_cache  # type: ignore[attr-defined]


def test_ext_opcode_without_any_registration(real_pt: Path, tmp_path: Path) -> None:
    assert not copyreg._inverted_registry  # type: ignore[attr-defined]
    p = write_pt(real_pt, tmp_path / "ext_none.pt", proto(ext(0x42) + s("x") + b"\x85R"))
    for fn in READERS:
        with pytest.raises(CheckpointError, match="refused.*extension code 66"):
            fn(p)


def test_registered_extensions_do_not_break_real_files(
        real_pt: Path, extensions: Callable[[str, str, int], None]) -> None:
    extensions("posix", "system", 0x77)
    m = read_model(real_pt)  # the slow path (an opcode scan) reads the same
    assert [t.name for t in m.tensors] == ["w", "b"]


def test_malformed_pickle_with_extensions_registered(
        real_pt: Path, tmp_path: Path, extensions: Callable[[str, str, int], None]) -> None:
    extensions("posix", "system", 0x78)
    p = write_pt(real_pt, tmp_path / "bad.pt", b"\x80\x02}X\xff\xff\xff\x7fabc")
    with pytest.raises(CheckpointError, match="corrupt pickle"):
        read_model(p)


# ---------------------------------------------------------------------------------------------
# BUILD: the stand-ins (and the tensors built from them) cannot be changed by a pickle


ALLOWED_NAMES = sorted(k for k in unpickler._ALLOWED if k != ("collections", "OrderedDict"))


@pytest.mark.parametrize("global_name", ALLOWED_NAMES, ids=lambda k: ".".join(k))
@pytest.mark.parametrize("state", ["dict", "slots"])
def test_build_on_a_stand_in_is_refused(real_pt: Path, tmp_path: Path, global_name: tuple,
                                        state: str) -> None:
    module, name = global_name
    if state == "dict":
        build_state = b"}" + s("__call__") + s("evil") + b"s"
    else:  # (None, {slot: value}): setattr on the object itself
        build_state = b"N}" + s("__name__") + s("evil") + b"s" + b"\x86"
    p = write_pt(real_pt, tmp_path / "build.pt", proto(g(module, name) + build_state + b"b"))
    refused(p, "tries to change", "nothing was changed")
    fresh = unpickler._ALLOWED[global_name]()
    assert not hasattr(fresh, "__dict__")
    assert unpickler._rebuild_tensor.__name__ == "_rebuild_tensor"
    assert not vars(unpickler._rebuild_tensor) and not vars(unpickler._rebuild_parameter)
    assert [t.name for t in read_model(real_pt).tensors] == ["w", "b"]


def test_build_on_the_ordered_dict_class_is_refused(real_pt: Path, tmp_path: Path) -> None:
    for build_state in (b"}" + s("fromkeys") + s("evil") + b"s",
                        b"N}" + s("fromkeys") + s("evil") + b"s\x86"):
        p = write_pt(real_pt, tmp_path / "build_od.pt",
                     proto(g("collections", "OrderedDict") + build_state + b"b"))
        refused(p, "corrupt pickle")
    assert OrderedDict.fromkeys("a") == {"a": None}


def _tensor(key: str = "0") -> bytes:
    pid = b"(" + s("storage") + g("torch", "FloatStorage") + s(key) + s("cpu") + b"K\x04tQ"
    return call(g("torch._utils", "_rebuild_tensor_v2"), pid, b"K\x00", b"(K\x02K\x02t",
                b"(K\x02K\x01t", b"\x89", call(g("collections", "OrderedDict")))


@pytest.mark.parametrize("build_state", [
    b"}(" + s("shape") + b"(J\xfb\xff\xff\xfft" + s("stride") + b"(K\x01tu",  # shape (-5,)
    b"}" + s("storage") + s("junk") + b"s",
    b"N}" + s("shape") + b"(J\x00\x00\x00\x10ts\x86",
])
def test_build_cannot_change_a_validated_tensor(real_pt: Path, tmp_path: Path,
                                                build_state: bytes) -> None:
    p = write_pt(real_pt, tmp_path / "build_tensor.pt",
                 proto(b"}" + s("w") + _tensor() + build_state + b"bs"))
    refused(p, "tries to change a tensor")


def test_build_cannot_change_a_storage(real_pt: Path, tmp_path: Path) -> None:
    pid = b"(" + s("storage") + g("torch", "FloatStorage") + s("0") + s("cpu") + b"K\x04tQ"
    p = write_pt(real_pt, tmp_path / "build_storage.pt",
                 proto(pid + b"}" + s("key") + s("../../etc/passwd") + b"sb"))
    refused(p, "tries to change storage 0")


def test_build_on_an_ordered_dict_instance_still_works(tmp_path: Path) -> None:
    """nn.Module.state_dict() pickles its _metadata with a BUILD on the OrderedDict: allowed."""
    torch = pytest.importorskip("torch")
    p = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), p)
    arc = read_archive(p)
    assert isinstance(arc.root, OrderedDict) and "_metadata" in vars(arc.root)
    assert [t.name for t in read_model(p).tensors] == ["weight", "bias"]


def test_stand_ins_refuse_misuse(real_pt: Path, tmp_path: Path) -> None:
    """Calling a storage class, NEWOBJ on a function stand-in: refused as corrupt, not run."""
    cases = [
        proto(call(g("torch", "FloatStorage"), b"K\x04")),
        proto(g("torch._utils", "_rebuild_tensor_v2") + b")\x81"),
        proto(call(g("torch._utils", "_rebuild_parameter"), b"K\x01")),
        proto(call(g("torch._utils", "_rebuild_tensor_v2"), b"K\x01", b"K\x00", b")", b")")),
        proto(b"(" + s("storage") + s("FloatStorage") + s("0") + s("cpu") + b"K\x04tQ"),
        proto(b"(" + s("nope") + b"tQ"),
        proto(s("not a tuple") + b"Q"),
    ]
    for i, pkl in enumerate(cases):
        p = write_pt(real_pt, tmp_path / f"misuse{i}.pt", pkl)
        with pytest.raises(CheckpointError):
            read_archive(p)


# ---------------------------------------------------------------------------------------------
# torch stays out of the process


def test_reading_does_not_import_torch(demo_master: Path) -> None:
    model = next(demo_master.rglob("model_*.pt"))
    optim = next(demo_master.rglob("optim_*_rank0.pt"))
    legacy = next(demo_master.rglob("step_*.pt"))
    code = (
        "import sys\n"
        "from nanochat_ckpt_tui.store.ptfile import read_archive, read_model, read_optimizer\n"
        f"m = read_model({str(model)!r}); o = read_optimizer({str(optim)!r})\n"
        f"w = read_model({str(legacy)!r}); a = read_archive({str(model)!r})\n"
        "a.storage_data_offset(m.tensors[0].storage_key)\n"
        "assert m.tensors and o.tensors and w.step\n"
        "print(sorted(n for n in sys.modules if n == 'torch' or n.startswith('torch.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("op", [b"r" + (1_239_817_249).to_bytes(4, "little"),
                                b"j" + (536_871_179).to_bytes(4, "little"),
                                b"p900000000\n", b"g900000000\n"])
def test_memo_bomb_is_refused_before_the_unpickler_allocates(real_pt: Path, tmp_path: Path,
                                                             op: bytes) -> None:
    """The C unpickler sizes its memo array to twice the index: ~20 GB for these (found by
    fuzzing, once CRC checks no longer masked scrambled pickles)."""
    p = write_pt(real_pt, tmp_path / "memo.pt", proto(b"N" + op + b"."))
    for fn in READERS:
        with pytest.raises(CheckpointError, match="memory bomb"):
            fn(p)


@pytest.mark.parametrize("op", [b"\x96" + (2**62).to_bytes(8, "little"),  # BYTEARRAY8
                                b"\x8e" + (2**40).to_bytes(8, "little"),  # BINBYTES8
                                b"X" + (2**31).to_bytes(4, "little")])  # BINUNICODE
def test_length_past_the_end_is_refused_before_allocation(real_pt: Path, tmp_path: Path,
                                                          op: bytes) -> None:
    """The C unpickler allocates a BYTEARRAY8 before reading it; a huge length is refused first."""
    p = write_pt(real_pt, tmp_path / "length.pt", proto(op + b"."))
    for fn in READERS:
        with pytest.raises(CheckpointError, match="bytes more than"):
            fn(p)
