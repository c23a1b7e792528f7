"""The checkpoint reader (store/ptfile.py) against real torch.save files.

Every metadata claim is checked against what ``torch.load(weights_only=True)`` reports for the
same file; every bad input must end in one readable ``CheckpointError``, never another exception.
"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanochat_ckpt_tui.store import demo
from nanochat_ckpt_tui.store.ptfile import (
    CheckpointError,
    ModelFile,
    OptimizerFile,
    TensorInfo,
    read_archive,
    read_model,
    read_optimizer,
    storage_bytes,
    strip_prefix,
)

torch = pytest.importorskip("torch")

V2_DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
             "uint8", "bool", "complex64", "complex128"]
# dtypes without a typed storage class: torch.save writes them through _rebuild_tensor_v3
V3_DTYPES = ["uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
             "float8_e5m2fnuz", "float8_e8m0fnu", "complex32"]


# ---------------------------------------------------------------------------------------------
# helpers


def dtype_name(dt: Any) -> str:
    """torch.float32 -> 'float32': the reader's dtype names are torch's canonical names."""
    return str(dt).removeprefix("torch.")


def torch_tensors(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, tensor) for every tensor in a loaded object, named as the reader names them."""
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list | tuple) else []
    out = []
    for k, v in items:
        out += torch_tensors(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def meta_of_torch(t: Any) -> tuple:
    return (tuple(t.shape), dtype_name(t.dtype), tuple(t.stride()), t.storage_offset(),
            t.numel(), t.numel() * t.element_size(), t.element_size())


def meta_of_info(t: TensorInfo) -> tuple:
    return (t.shape, t.dtype, t.stride, t.storage_offset, t.numel, t.nbytes, t.itemsize)


def same_storage_partition(ours: list[TensorInfo], theirs: list[tuple[str, Any]]) -> None:
    """Tensors share a storage key exactly when torch gives them one storage."""
    by_name = {n: t for n, t in theirs}
    for a in ours:
        for b in ours:
            same_ours = a.storage_key == b.storage_key
            same_torch = (by_name[a.name].untyped_storage().data_ptr()
                          == by_name[b.name].untyped_storage().data_ptr())
            assert same_ours == same_torch, (a.name, b.name)


def assert_model_matches_torch(path: Path, m: ModelFile) -> None:
    loaded = torch.load(path, weights_only=True, map_location="cpu")
    sd = loaded["model"] if m.layout == "wrapper" else loaded
    theirs = [(k, v) for k, v in sd.items() if isinstance(v, torch.Tensor)]
    assert [t.name for t in m.tensors] == [k for k, _ in theirs], path
    for ours, (name, t) in zip(m.tensors, theirs, strict=True):
        assert meta_of_info(ours) == meta_of_torch(t), (path, name)
    assert m.params == sum(t.numel() for _, t in theirs)
    assert m.tensor_bytes == sum(t.numel() * t.element_size() for _, t in theirs)
    same_storage_partition(m.tensors, theirs)
    if m.layout == "wrapper":
        assert m.step == loaded["step"]
        assert m.config == loaded["config"]
        assert m.has_optimizer == (loaded.get("optimizer") is not None)


def assert_optimizer_matches_torch(path: Path, o: OptimizerFile) -> None:
    loaded = torch.load(path, weights_only=True, map_location="cpu")
    parts = loaded if isinstance(loaded, list) else [loaded]
    assert o.form == ("list" if isinstance(loaded, list) else "dict")
    theirs: list[tuple[str, Any]] = []
    for i, sd in enumerate(parts):
        theirs += torch_tensors(sd["state"], f"{i}.state" if o.form == "list" else "state")
    assert sorted(t.name for t in o.tensors) == sorted(n for n, _ in theirs), path
    ours = {t.name: t for t in o.tensors}
    for name, t in theirs:
        assert meta_of_info(ours[name]) == meta_of_torch(t), (path, name)
    assert o.n_state_tensors == len(theirs)
    assert o.n_states == sum(len(sd["state"]) for sd in parts)
    assert o.state_bytes == sum(t.numel() * t.element_size() for _, t in theirs)
    groups = [g for sd in parts for g in sd["param_groups"]]
    assert len(o.groups) == len(groups)
    for ours_g, g in zip(o.groups, groups, strict=True):
        assert ours_g.n_params == len(g["params"])
        if "kind" in g:
            assert ours_g.kind == g["kind"]
        assert "params" not in ours_g.hyper
        assert ours_g.hyper["lr"] == g["lr"]


def assert_error(fn: Any, path: Any, *words: str) -> CheckpointError:
    """``fn(path)`` raises exactly a CheckpointError: one sentence naming the file and ``words``."""
    with pytest.raises(CheckpointError) as info:
        fn(path)
    e = info.value
    assert type(e) is CheckpointError
    msg = str(e)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400, msg
    assert e.path == str(path)
    assert msg.startswith(Path(path).name + ": "), msg
    for w in words:
        assert w.lower() in e.reason.lower(), (w, msg)
    return e


def rewrite_zip(src: Path, dst: Path, *, replace: dict[str, bytes] | None = None,
                drop: tuple[str, ...] = (), compression: int = zipfile.ZIP_STORED) -> None:
    """Copy a torch zip, replacing or dropping members (matched by their name after the prefix)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            tail = info.filename.split("/", 1)[1]
            if tail in drop:
                continue
            data = replace.get(tail, zin.read(info))
            zout.writestr(info.filename, data)


def member_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return z.namelist()


# ---------------------------------------------------------------------------------------------
# fixture files, written once per module


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ptfile")
    out: dict[str, Path] = {}

    def save(name: str, obj: Any) -> None:
        out[name] = d / f"{name}.pt"
        torch.save(obj, out[name])

    save("dtypes", OrderedDict(
        (f"t_{n}", torch.zeros(2, 3, dtype=getattr(torch, n))) for n in V2_DTYPES))
    with warnings.catch_warnings():  # "ComplexHalf support is experimental"
        warnings.simplefilter("ignore", UserWarning)
        save("dtypes_v3", OrderedDict(
            (f"t_{n}", torch.zeros(3, 2, dtype=getattr(torch, n))) for n in V3_DTYPES))
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    save("views", OrderedDict(
        base=base, transposed=base.t(), window=base[1:3, 2:5], every_other=base[:, ::2],
        row=base[2], expanded=torch.arange(3.0).expand(4, 3), scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 5), other=torch.ones(5, dtype=torch.bfloat16)))
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3),
                                torch.nn.LayerNorm(3))
    save("module_state_dict", model.state_dict())  # an OrderedDict with _metadata (a BUILD)
    save("parameters", OrderedDict(
        w=torch.nn.Parameter(torch.randn(3, 2)),
        frozen=torch.nn.Parameter(torch.zeros(2), requires_grad=False),
        plain=torch.ones(1)))
    save("keep_vars", model.state_dict(keep_vars=True))
    cfg = demo.model_config(2)
    save("orig_mod", demo.make_state_dict(cfg, step=1, total=2, prefix="_orig_mod."))
    sd = demo.make_state_dict(cfg, step=1, total=2)
    save("nanochat_model", sd)
    save("optim_dict", demo.make_optimizer_shard(sd, rank=0, world=2, step=1))
    save("optim_list", demo.make_optimizer_shard(sd, rank=0, world=1, step=1, form="list"))
    # real torch optimizers after one step
    params = list(model.parameters())
    adamw = torch.optim.AdamW(params, lr=1e-3)
    sgd = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    model(torch.tensor([1, 2])).sum().backward()
    adamw.step()
    sgd.step()
    save("torch_adamw", adamw.state_dict())
    save("torch_sgd", sgd.state_dict())
    save("torch_list", [adamw.state_dict(), sgd.state_dict()])
    out["legacy_step"] = demo.write_legacy_tag(d / "legacy", depth=2, steps=[7], total=10)[0]
    save("list_of_ints", [1, 2, 3])
    save("plain_dict", {"a": 1, "b": "two"})
    save("empty_model", OrderedDict())
    return out


# ---------------------------------------------------------------------------------------------
# reading: everything agrees with torch.load(weights_only=True)


@pytest.mark.parametrize("name", ["dtypes", "dtypes_v3", "views", "module_state_dict",
                                  "parameters", "keep_vars", "orig_mod", "nanochat_model",
                                  "legacy_step"])
def test_model_metadata_matches_torch(made: dict[str, Path], name: str) -> None:
    m = read_model(made[name])
    assert m.tensors
    assert m.file_size == made[name].stat().st_size
    assert_model_matches_torch(made[name], m)


@pytest.mark.parametrize("name", ["optim_dict", "optim_list", "torch_adamw", "torch_sgd",
                                  "torch_list"])
def test_optimizer_metadata_matches_torch(made: dict[str, Path], name: str) -> None:
    o = read_optimizer(made[name])
    assert o.tensors
    assert_optimizer_matches_torch(made[name], o)


def test_every_dtype_name_and_itemsize(made: dict[str, Path]) -> None:
    m = read_model(made["dtypes"])
    assert {t.name: (t.dtype, t.itemsize) for t in m.tensors} == {
        f"t_{n}": (n, torch.empty(0, dtype=getattr(torch, n)).element_size()) for n in V2_DTYPES}
    v3 = read_model(made["dtypes_v3"])
    assert {t.name: (t.dtype, t.itemsize) for t in v3.tensors} == {
        f"t_{n}": (n, torch.empty(0, dtype=getattr(torch, n)).element_size()) for n in V3_DTYPES}
    assert all(t.nbytes == 6 * t.itemsize for t in v3.tensors)


def test_views_shared_storage_and_contiguity(made: dict[str, Path]) -> None:
    arc = read_archive(made["views"])
    m = read_model(made["views"])
    t = {x.name: x for x in m.tensors}
    assert t["transposed"].stride == (1, 6) and not t["transposed"].is_contiguous
    assert t["window"].storage_offset == 8 and t["window"].extent == 6 + 3
    assert t["every_other"].stride == (6, 2) and not t["every_other"].is_contiguous
    assert t["row"].is_contiguous and t["row"].storage_offset == 12
    assert t["expanded"].stride == (0, 1) and t["expanded"].numel == 12
    assert t["expanded"].extent == 3
    assert t["scalar"].shape == () and t["scalar"].numel == 1 and t["scalar"].extent == 1
    assert t["empty"].numel == 0 and t["empty"].nbytes == 0 and t["empty"].extent == 0
    shared = {t[n].storage_key for n in ["base", "transposed", "window", "every_other", "row"]}
    assert len(shared) == 1
    # shared views count once: base (24 fp32) + expanded (3 fp32) + scalar + empty + other (5 bf16)
    assert storage_bytes(m.tensors, arc) == 24 * 4 + 3 * 4 + 4 + 0 + 5 * 2
    assert m.tensor_bytes > storage_bytes(m.tensors, arc)


def test_parameters_are_read_as_tensors(made: dict[str, Path]) -> None:
    m = read_model(made["parameters"])
    assert [t.name for t in m.tensors] == ["w", "frozen", "plain"]
    assert m.non_tensor_keys == []
    kv = read_model(made["keep_vars"])  # a state dict of nn.Parameters
    assert kv.tensors == read_model(made["module_state_dict"]).tensors
    assert {t.name for t in kv.tensors} == {"0.weight", "1.weight", "1.bias", "2.weight",
                                            "2.bias"}


def test_orig_mod_prefix(made: dict[str, Path]) -> None:
    m = read_model(made["orig_mod"])
    plain = read_model(made["nanochat_model"])
    assert m.orig_mod_prefix and not plain.orig_mod_prefix
    assert all(t.name.startswith("_orig_mod.") for t in m.tensors)
    assert [strip_prefix(t.name) for t in m.tensors] == [t.name for t in plain.tensors]
    assert strip_prefix("lm_head.weight") == "lm_head.weight"
    assert strip_prefix("_orig_mod.lm_head.weight") == "lm_head.weight"
    assert m.tensor("_orig_mod.lm_head.weight") is not None and m.tensor("lm_head.weight") is None


def test_nanochat_dtypes_and_layout(made: dict[str, Path]) -> None:
    m = read_model(made["nanochat_model"])
    assert m.layout == "state_dict" and m.step is None and m.config is None
    dt = {t.name: t.dtype for t in m.tensors}
    assert dt["transformer.wte.weight"] == "bfloat16" and dt["value_embeds.1.weight"] == "bfloat16"
    assert dt["lm_head.weight"] == "float32" and dt["resid_lambdas"] == "float32"
    assert m.tensor("transformer.wte.weight").shape == (demo.VOCAB, 16)


def test_legacy_wrapper(made: dict[str, Path]) -> None:
    m = read_model(made["legacy_step"])
    assert m.layout == "wrapper" and m.step == 7 and m.has_optimizer
    assert m.config == demo.model_config(2, version="old")
    assert m.non_tensor_keys == []


def test_optimizer_groups(made: dict[str, Path]) -> None:
    o = read_optimizer(made["optim_dict"])
    assert o.form == "dict" and [g.kind for g in o.groups] == ["adamw", "muon"]
    assert o.groups[0].hyper["betas"] == [0.8, 0.95] and o.groups[1].hyper["nesterov"] is True
    old = read_optimizer(made["optim_list"])
    assert old.form == "list" and [g.kind for g in old.groups] == ["adamw", "muon"]
    assert all(t.name.startswith(("0.state.", "1.state.")) for t in old.tensors)
    real = read_optimizer(made["torch_list"])
    assert [g.kind for g in real.groups] == ["adamw", "muon"]  # betas -> adamw, momentum -> muon
    assert read_optimizer(made["torch_adamw"]).groups[0].kind == "adamw"


def test_every_demo_file_matches_torch(demo_master: Path) -> None:
    models = sorted(demo_master.rglob("model_*.pt"))
    optims = sorted(demo_master.rglob("optim_*.pt"))
    steps = sorted(demo_master.rglob("step_*.pt"))
    assert len(models) >= 15 and len(optims) >= 15 and len(steps) == 2
    for p in models + steps:
        m = read_model(p)
        assert m.layout == ("wrapper" if p.name.startswith("step_") else "state_dict")
        assert_model_matches_torch(p, m)
    for p in optims:
        assert_optimizer_matches_torch(p, read_optimizer(p))


def test_storage_data_offset_points_at_the_bytes(demo_master: Path, made: dict[str, Path]) -> None:
    """The offset lets numpy read exactly the bytes torch would (views and bf16 included)."""
    paths = [made["views"], made["dtypes"], next(demo_master.rglob("model_*.pt"))]
    for p in paths:
        arc = read_archive(p)
        loaded = torch.load(p, weights_only=True)
        raw = np.memmap(p, dtype=np.uint8, mode="r")
        for t in read_model(p).tensors:
            off = arc.storage_data_offset(t.storage_key)
            assert off % 64 == 0  # torch aligns storages
            size = arc.storages[t.storage_key].file_size
            ref = loaded[t.name]
            storage = torch.empty(0, dtype=torch.uint8).set_(ref.untyped_storage())
            assert bytes(raw[off:off + size]) == storage.numpy().tobytes(), (p, t.name)
            if t.dtype == "float32" and t.numel:
                view = np.lib.stride_tricks.as_strided(
                    np.frombuffer(raw, np.float32, offset=off + t.storage_offset * 4,
                                  count=t.extent),
                    shape=t.shape, strides=tuple(s * 4 for s in t.stride))
                assert np.array_equal(view, ref.numpy()), (p, t.name)


def test_reading_touches_only_the_pickle(made: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    from nanochat_ckpt_tui.store import zipdir

    opened: list[str] = []
    real_read = zipdir.read_member

    def spy(src: Any, member: Any, limit: int) -> bytes:
        opened.append(member.filename)
        return real_read(src, member, limit)

    monkeypatch.setattr(zipdir, "read_member", spy)
    read_model(made["nanochat_model"])
    read_optimizer(made["optim_dict"])
    assert opened and {n.split("/", 1)[1] for n in opened} <= {"data.pkl", "byteorder"}
    monkeypatch.undo()
    # tensor bytes overwritten with garbage (their CRCs now fail): the metadata is unchanged
    src = made["nanochat_model"]
    bad = tmp_path / "garbage_tensors.pt"
    shutil.copy(src, bad)
    arc = read_archive(src)
    with open(bad, "r+b") as f:
        for key, info in arc.storages.items():
            f.seek(arc.storage_data_offset(key))
            f.write(b"\xa5" * info.file_size)
    assert read_model(bad).tensors == read_model(src).tensors


def test_non_tensor_values_in_a_state_dict(tmp_path: Path) -> None:
    p = tmp_path / "mixed.pt"
    torch.save(OrderedDict(w=torch.ones(2), note="hello", n=3), p)
    m = read_model(p)
    assert [t.name for t in m.tensors] == ["w"] and m.non_tensor_keys == ["note", "n"]


# ---------------------------------------------------------------------------------------------
# bad input: always one readable CheckpointError


def test_truncated_almost_everywhere(made: dict[str, Path], tmp_path: Path) -> None:
    """Every cut in the first and last 300 bytes (headers, central directory), 1 in 7 between."""
    data = made["views"].read_bytes()
    cuts = sorted({*range(1, 300), *range(300, len(data) - 300, 7), *range(len(data) - 300,
                                                                           len(data))})
    cut = tmp_path / "cut.pt"
    for n in cuts:
        cut.write_bytes(data[:n])
        assert_error(read_model if n % 2 else read_optimizer, cut, "truncated")


def test_truncated_at_named_points(demo_master: Path, tmp_path: Path) -> None:
    src = next(demo_master.rglob("model_*.pt"))
    data = src.read_bytes()
    with zipfile.ZipFile(src) as z:
        pkl = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
        big = max(z.infolist(), key=lambda i: i.file_size)
    central = data.index(b"PK\x01\x02")
    points = {
        "mid data.pkl": pkl.header_offset + 30 + len(pkl.filename) + pkl.file_size // 2,
        "mid tensor data": big.header_offset + 30 + len(big.filename) + big.file_size // 2,
        "start of central directory": central,
        "mid central directory": (central + len(data)) // 2,
        "inside end record": len(data) - 10,
        "last byte missing": len(data) - 1,
    }
    for where, n in points.items():
        cut = tmp_path / f"{where.replace(' ', '_')}.pt"
        cut.write_bytes(data[:n])
        e = assert_error(read_model, cut, "not a readable torch zip", "truncated")
        assert "still being written" in e.reason, where


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "model_000001.pt"
    p.write_bytes(b"")
    for fn in (read_model, read_optimizer, read_archive):
        assert_error(fn, p, "empty", "0 bytes")


def test_not_a_zip(tmp_path: Path) -> None:
    p = tmp_path / "notes.pt"
    p.write_text("hello, this is not a checkpoint\n" * 10)
    assert_error(read_model, p, "not a readable torch zip")
    p2 = tmp_path / "plain_pickle.pt"
    p2.write_bytes(pickle.dumps({"a": 1}))
    assert_error(read_optimizer, p2, "not a readable torch zip")


def test_legacy_non_zip_torch_file(tmp_path: Path) -> None:
    p = tmp_path / "old.pt"
    torch.save({"w": torch.ones(2)}, p, _use_new_zipfile_serialization=False)
    assert_error(read_model, p, "old-format", "not a zip")


def test_zip_without_data_pkl(tmp_path: Path) -> None:
    p = tmp_path / "other.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "hi")
        z.writestr("archive/data/0", b"\0" * 8)
    assert_error(read_model, p, "not a torch checkpoint", "data.pkl", "readme.txt")
    empty_zip = tmp_path / "empty_zip.pt"
    with zipfile.ZipFile(empty_zip, "w"):
        pass
    assert_error(read_archive, empty_zip, "no */data.pkl", "nothing")


@pytest.mark.parametrize("garbage", [b"", b"garbage!", b"\x80\x02", b"\x80\x05\x95\xff\xff",
                                     b"}(X\x05\x00\x00\x00", bytes(range(256))])
def test_garbage_data_pkl(made: dict[str, Path], tmp_path: Path, garbage: bytes) -> None:
    p = tmp_path / "garbage.pt"
    rewrite_zip(made["nanochat_model"], p, replace={"data.pkl": garbage})
    assert_error(read_model, p, "corrupt pickle")


def test_wrong_content(made: dict[str, Path]) -> None:
    assert_error(read_model, made["list_of_ints"], "holds a list", "not a model state dict")
    assert_error(read_optimizer, made["list_of_ints"], "not an optimizer state", "int")
    assert_error(read_model, made["plain_dict"], "dict with no tensors", "not a model")
    assert_error(read_optimizer, made["plain_dict"], "without param_groups")
    assert_error(read_model, made["empty_model"], "no tensors")
    assert_error(read_optimizer, made["nanochat_model"], "model state dict",
                 "not an optimizer state")
    assert_error(read_optimizer, made["legacy_step"], "model state dict", "not an optimizer")
    assert_error(read_model, made["optim_dict"], "optimizer state", "not a model state dict")
    assert_error(read_model, made["optim_list"], "optimizer state", "not a model state dict")


def test_directory_missing_and_odd_paths(tmp_path: Path) -> None:
    d = tmp_path / "model_000001.pt"
    d.mkdir()
    assert_error(read_model, d, "directory")
    assert_error(read_optimizer, tmp_path / "nope.pt", "not found")
    assert_error(read_model, tmp_path / "nofolder" / "model_000001.pt", "not found")
    assert_error(read_model, str(tmp_path / "a\0b.pt"), "NUL")
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    assert_error(read_model, fifo, "not a regular file")  # and it does not block on the pipe


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_real(made: dict[str, Path], tmp_path: Path) -> None:
    p = tmp_path / "locked.pt"
    shutil.copy(made["nanochat_model"], p)
    p.chmod(0)
    assert_error(read_model, p, "permission denied")


def test_permission_denied_simulated(made: dict[str, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "locked.pt"
    shutil.copy(made["nanochat_model"], p)
    from nanochat_ckpt_tui.store import storage

    real_open = os.open

    def deny(file: Any, *a: Any, **kw: Any) -> Any:
        if str(file) == str(p):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr(storage.os, "open", deny)  # what the local storage opens files with
    assert_error(read_model, p, "permission denied")
    assert_error(read_optimizer, p, "permission denied")


def test_storage_missing(made: dict[str, Path], tmp_path: Path) -> None:
    p = tmp_path / "no_storage.pt"
    rewrite_zip(made["nanochat_model"], p, drop=("data/0",))
    assert_error(read_model, p, "storage data/0 is missing", "tensor")
    o = tmp_path / "no_storage_optim.pt"
    rewrite_zip(made["optim_dict"], o, drop=("data/1",))
    assert_error(read_optimizer, o, "storage data/1 is missing")


def test_tensor_reaching_past_its_storage(made: dict[str, Path], tmp_path: Path) -> None:
    src = made["views"]
    with zipfile.ZipFile(src) as z:
        data0 = z.read(next(n for n in z.namelist() if n.endswith("/data/0")))
    p = tmp_path / "short_storage.pt"
    rewrite_zip(src, p, replace={"data/0": data0[:-4]})  # base is 24 fp32: now 23
    e = assert_error(read_model, p, "reaches byte 96", "92-byte storage")
    assert "base" in e.reason


def _hand_tensor(shape: tuple[int, ...], stride: tuple[int, ...], offset: int = 0,
                 numel: int = 4) -> bytes:
    """Protocol-2 opcodes for ``_rebuild_tensor_v2(FloatStorage '0', offset, shape, stride)``."""
    def i4(n: int) -> bytes:
        return b"J" + struct.pack("<i", n)

    def s(x: str) -> bytes:
        return b"X" + struct.pack("<I", len(x)) + x.encode()

    pid = b"(" + s("storage") + b"ctorch\nFloatStorage\n" + s("0") + s("cpu") + i4(numel) + b"tQ"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + i4(offset)
            + b"(" + b"".join(map(i4, shape)) + b"t(" + b"".join(map(i4, stride)) + b"t"
            + b"\x89ccollections\nOrderedDict\n)RtR")


@pytest.mark.parametrize(("shape", "stride", "offset", "words"), [
    ((-2,), (1,), 0, ("negative", "shape")),
    ((2, -1), (1, 1), 0, ("negative",)),
    ((2,), (-1,), 0, ("negative", "stride")),
    ((2, 2), (1,), 0, ("shape and stride differ",)),
    ((2,), (1,), -1, ("bad storage offset",)),
    ((5,), (1,), 0, ("reaches byte 20", "16-byte storage")),
    ((2,), (1,), 3, ("reaches byte 20",)),
    ((2, 2), (3, 1), 0, ("reaches byte 20",)),
])
def test_bad_tensor_geometry(tmp_path: Path, shape: tuple, stride: tuple, offset: int,
                             words: tuple[str, ...]) -> None:
    p = tmp_path / "geometry.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("geometry/data.pkl", b"\x80\x02}X\x01\x00\x00\x00w"
                   + _hand_tensor(shape, stride, offset) + b"s.")
        z.writestr("geometry/data/0", b"\0" * 16)
    assert_error(read_model, p, *words)


def test_zero_size_tensor_needs_no_bytes(tmp_path: Path) -> None:
    p = tmp_path / "zero.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("zero/data.pkl", b"\x80\x02}X\x01\x00\x00\x00w"
                   + _hand_tensor((0, 1000), (1000, 1), 99, numel=0) + b"s.")
        z.writestr("zero/data/0", b"")
    assert read_model(p).tensors[0].nbytes == 0


def test_compressed_checkpoint(made: dict[str, Path], tmp_path: Path) -> None:
    """A checkpoint re-zipped with deflate reads, but its bytes cannot be used in place."""
    p = tmp_path / "deflated.pt"
    rewrite_zip(made["nanochat_model"], p, compression=zipfile.ZIP_DEFLATED)
    m = read_model(p)
    assert m.tensors == read_model(made["nanochat_model"]).tensors
    arc = read_archive(p)
    assert_error(lambda _: arc.storage_data_offset("0"), p, "compressed")
    # and a deflated data.pkl whose compressed bytes are damaged (zlib.error inside zipfile)
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    start = info.header_offset + 30 + len(info.filename)
    raw[start + 2:start + 40] = b"\xff" * 38
    p.write_bytes(bytes(raw))
    assert_error(read_model, p, "cannot read data.pkl")


def test_storage_offset_after_the_file_shrank(made: dict[str, Path], tmp_path: Path) -> None:
    p = tmp_path / "shrinks.pt"
    shutil.copy(made["nanochat_model"], p)
    arc = read_archive(p)
    key = max(arc.storages, key=lambda k: arc.storages[k].header_offset)
    off = arc.storage_data_offset(key)
    with open(p, "r+b") as f:
        f.truncate(off + 1)
    assert_error(lambda _: arc.storage_data_offset(key), p, "past the end")
    p.unlink()
    assert_error(lambda _: arc.storage_data_offset(key), p, "cannot read storage")


def test_unsupported_zip_version_field(made: dict[str, Path], tmp_path: Path) -> None:
    """A bit flip in a central directory's 'version needed' field: zipfile refuses it
    (NotImplementedError); the members are STORED and unencrypted, so we read them alike."""
    raw = bytearray(made["nanochat_model"].read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 6] = 99  # version needed to extract: 9.9
    p = tmp_path / "version.pt"
    p.write_bytes(bytes(raw))
    assert read_model(p).tensors == read_model(made["nanochat_model"]).tensors


def test_deeply_nested_and_shared_structures(made: dict[str, Path], tmp_path: Path) -> None:
    """Odd keys and hyper-parameters never crash the naming or the JSON-friendly copies."""
    deep_tuple = b"K\x01" + b"\x85" * 50_000  # ((((1,),),),...) 50k deep
    shared = b"]K\x01aq\x000"
    for i in range(40):  # a list holding the previous list twice, 40 levels: 2**40 paths
        shared += b"(h" + bytes([i]) + b"h" + bytes([i]) + b"lq" + bytes([i + 1]) + b"0"
    shared += b"h" + bytes([40])

    def s(x: str) -> bytes:
        return b"X" + struct.pack("<I", len(x)) + x.encode()

    pkl = (b"\x80\x02}(" + s("state") + b"}" + deep_tuple + b"}" + s("exp_avg")
           + _hand_tensor((2,), (1,)) + b"ss" + s("param_groups") + b"](}(" + s("params") + b"]"
           + s("lr") + b"G?\xb9\x99\x99\x99\x99\x99\x9a" + s("odd") + b"(" + deep_tuple + b"\x91"
           + s("dag") + shared + b"ue" + b"u.")
    p = tmp_path / "odd_optim.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("odd_optim/data.pkl", pkl)
        z.writestr("odd_optim/data/0", b"\0" * 16)
    o = read_optimizer(p)
    assert o.n_state_tensors == 1 and o.tensors[0].name.startswith("state.((")
    assert len(o.tensors[0].name) < 200
    g = o.groups[0]
    assert g.hyper["lr"] == 0.1 and isinstance(g.hyper["odd"], str)
    assert "…" in str(g.hyper["dag"])
    wrapper = tmp_path / "odd_wrapper.pt"
    with zipfile.ZipFile(wrapper, "w") as z:
        z.writestr("odd_wrapper/data.pkl", b"\x80\x02}(" + s("model") + b"}" + s("w")
                   + _hand_tensor((2,), (1,)) + b"s" + s("config") + b"}" + s("dag") + shared
                   + b"s" + deep_tuple + b"K\x02su.")
        z.writestr("odd_wrapper/data/0", b"\0" * 16)
    m = read_model(wrapper)
    assert m.layout == "wrapper" and "…" in str(m.config)


def _long(n: int) -> bytes:
    """LONG4: an int of any size."""
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8b" + struct.pack("<i", len(b)) + b


def _one_file(tmp_path: Path, name: str, pkl: bytes, storage: bytes = b"\0" * 16) -> Path:
    p = tmp_path / f"{name}.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(f"{name}/data.pkl", pkl)
        z.writestr(f"{name}/data/0", storage)
    return p


def test_huge_integers(tmp_path: Path) -> None:
    """Ints past Python's 4300-digit str() limit: refused or shown short, never a ValueError."""
    huge = _long(10 ** 5000)
    body = _hand_tensor((2,), (1,)).replace(b"J\x02\x00\x00\x00t(", huge + b"t(", 1)
    p = _one_file(tmp_path, "huge_shape", b"\x80\x02}X\x01\x00\x00\x00w" + body + b"s.")
    assert_error(read_model, p, "bad tensor shape", "64-bit")
    big_offset = _hand_tensor((2,), (1,), 0).replace(b"J\x00\x00\x00\x00(", huge + b"(", 1)
    p = _one_file(tmp_path, "huge_offset", b"\x80\x02}X\x01\x00\x00\x00w" + big_offset + b"s.")
    assert_error(read_model, p, "bad storage offset")
    # a huge int as a state key and as a hyper-parameter value
    opt = (b"\x80\x02}(X\x05\x00\x00\x00state}" + huge + b"}X\x01\x00\x00\x00m"
           + _hand_tensor((2,), (1,)) + b"ssX\x0c\x00\x00\x00param_groups](}(X\x06\x00\x00"
           b"\x00params]X\x02\x00\x00\x00lr" + huge + b"ueu.")
    o = read_optimizer(_one_file(tmp_path, "huge_key", opt))
    assert len(o.tensors[0].name) < 100 and isinstance(o.groups[0].hyper["lr"], str)


def test_deep_or_long_optimizer_state_names_stay_cheap(tmp_path: Path) -> None:
    """Names are built per level: deep nesting is refused and long keys clipped (no O(n^2))."""
    head = b"\x80\x02}(X\x05\x00\x00\x00state}K\x00"
    tail = b"sX\x0c\x00\x00\x00param_groups]u."
    n = 200_000
    deep = _one_file(tmp_path, "deep", head + b"]" * n + _hand_tensor((2,), (1,)) + b"a" * n + tail)
    assert_error(read_optimizer, deep, "nested more than 64 levels", "state.0.0.0")
    key = "k" * 1_000_000  # one key string, memoized, used at 60 levels
    chain = b"X" + struct.pack("<I", len(key)) + key.encode() + b"q\x000" + b"}h\x00" * 60
    long = _one_file(tmp_path, "long", head + chain + _hand_tensor((2,), (1,)) + b"s" * 60 + tail)
    o = read_optimizer(long)
    assert o.n_state_tensors == 1 and len(o.tensors[0].name) < 60 * 202 + 10


def test_names_from_the_file_stay_on_one_line(tmp_path: Path) -> None:
    key = "evil\nkey" + "x" * 10_000
    pkl = _hand_tensor((2,), (1,)).replace(b"X\x01\x00\x00\x000", b"X" + struct.pack(
        "<I", len(key)) + key.encode(), 1)
    name = "w\n" * 5000
    p = _one_file(tmp_path, "lines", b"\x80\x02}X" + struct.pack("<I", len(name)) + name.encode()
                  + pkl + b"s.")
    e = assert_error(read_model, p, "is missing")
    assert len(str(e)) < 400
    z = tmp_path / "names.pt"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a\nb" * 100, b"")
    assert_error(read_model, z, "no */data.pkl")


# ---------------------------------------------------------------------------------------------
# fuzzing: only CheckpointError may escape


@pytest.fixture(scope="module")
def fuzz_bases(made: dict[str, Path]) -> list[bytes]:
    return [made[n].read_bytes() for n in ("views", "optim_dict", "optim_list", "legacy_step")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_only_checkpoint_errors(fuzz_bases: list[bytes], tmp_path: Path,
                                     data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["random", "flip", "truncate", "flip+truncate"]))
    if kind == "random":
        blob = data.draw(st.binary(max_size=2048))
    else:
        blob = bytearray(data.draw(st.sampled_from(fuzz_bases)))
        if "flip" in kind:
            for pos, bit in data.draw(st.lists(
                    st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 7)),
                    min_size=1, max_size=8)):
                blob[pos] ^= 1 << bit
        if "truncate" in kind:
            blob = blob[:data.draw(st.integers(0, len(blob)))]
        blob = bytes(blob)
    p = tmp_path / "fuzz.pt"
    p.write_bytes(blob)
    for fn in (read_model, read_optimizer, read_archive):
        try:
            fn(p)
        except CheckpointError as e:
            assert "\n" not in str(e) and e.reason
