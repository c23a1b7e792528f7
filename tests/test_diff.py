"""The streaming diff engine: analytic cases, a float64 reference, strides, NaN, cancel, errors.

Every file here is a real ``torch.save`` file written through the demo helpers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanochat_ckpt_tui.store.demo import make_state_dict, model_config, save_checkpoint, write_tag
from nanochat_ckpt_tui.store.diff import SCHEMA, DiffCancelled, DiffReport, diff
from nanochat_ckpt_tui.store.layout import Checkpoint, scan
from nanochat_ckpt_tui.store.ptfile import CheckpointError, read_model

CFG = model_config(4)
STATS = ("norm_a", "norm_b", "norm_diff", "rel_change", "cosine", "max_abs_diff",
         "mean_abs_diff")


def save(dir_: Path, step: int, sd: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
    """Write one model file the nanochat way (demo helper); returns its path."""
    return save_checkpoint(dir_, step, sd, meta)[0]


def base_sd(**kw: Any) -> OrderedDict[str, Any]:
    return make_state_dict(CFG, step=100, total=1000, seed=1, **kw)


def reference(a: Any, b: Any) -> dict[str, float | int | None]:
    """float64 statistics of one tensor pair over its finite pairs (torch, whole tensors)."""
    x, y = a.double().flatten(), b.double().flatten()
    m = torch.isfinite(x) & torch.isfinite(y)
    x, y = x[m], y[m]
    d = y - x
    na, nb, nd = x.norm().item(), y.norm().item(), d.norm().item()
    return {
        "norm_a": na, "norm_b": nb, "norm_diff": nd,
        "rel_change": nd / na if na else None,
        "cosine": (x @ y).item() / (na * nb) if na and nb else None,
        "max_abs_diff": d.abs().max().item() if d.numel() else None,
        "mean_abs_diff": d.abs().mean().item() if d.numel() else None,
        "finite_pairs": int(m.sum().item()),
    }


def assert_matches(td: Any, ref: dict[str, Any], rel: float = 1e-5) -> None:
    assert td.finite_pairs == ref["finite_pairs"], td.name
    for stat in STATS:
        got, want = getattr(td, stat), ref[stat]
        if want is None:
            assert got is None, (td.name, stat)
        else:
            assert got == pytest.approx(want, rel=rel, abs=1e-12), (td.name, stat)


# ---------------------------------------------------------------------------------------------
# analytic cases


def test_identical(tmp_path: Path) -> None:
    sd = base_sd()
    rep = diff(save(tmp_path / "a", 1, sd), save(tmp_path / "b", 2, sd))
    assert rep.identical
    assert not rep.only_a and not rep.only_b and not rep.changed
    assert len(rep.tensors) == len(sd)
    for t in [*rep.tensors, rep.overall, *rep.layers, *rep.kinds]:
        assert t.sum_sq_diff == 0 and t.max_abs_diff == 0 and t.mean_abs_diff == 0
        assert t.rel_change == 0
        assert t.cosine == pytest.approx(1.0, abs=1e-12)
    assert rep.overall.numel == sum(t.numel() for t in sd.values())
    assert rep.bytes_total == 2 * sum(t.numel() * t.element_size() for t in sd.values())


def test_doubled(tmp_path: Path) -> None:
    sd = base_sd()  # bf16 embeddings and fp32 matrices: 2x is exact in both
    rep = diff(save(tmp_path / "a", 1, sd),
               save(tmp_path / "b", 2, OrderedDict((k, 2 * v) for k, v in sd.items())))
    for t in [*rep.tensors, rep.overall, *rep.layers, *rep.kinds]:
        assert t.rel_change == pytest.approx(1.0, rel=1e-6)
        assert t.cosine == pytest.approx(1.0, abs=1e-9)
        assert t.norm_b == pytest.approx(2 * t.norm_a, rel=1e-6)


def test_negated(tmp_path: Path) -> None:
    sd = base_sd()
    rep = diff(save(tmp_path / "a", 1, sd),
               save(tmp_path / "b", 2, OrderedDict((k, -v) for k, v in sd.items())))
    for t in [*rep.tensors, rep.overall]:
        assert t.cosine == pytest.approx(-1.0, abs=1e-9)
        assert t.rel_change == pytest.approx(2.0, rel=1e-6)


def test_one_tensor_changed_and_roll_ups(tmp_path: Path) -> None:
    sd = base_sd(low_precision=None)
    sd2 = OrderedDict(sd)
    name = "transformer.h.1.attn.c_q.weight"
    sd2[name] = sd[name] + 0.125
    rep = diff(save(tmp_path / "a", 1, sd), save(tmp_path / "b", 2, sd2))
    moved = [t.name for t in rep.tensors if t.sum_sq_diff > 0]
    assert moved == [name]
    t = rep.tensor(name)
    assert t is not None and t.kind == "attn.c_q" and t.layer == 1
    assert t.max_abs_diff == pytest.approx(0.125, rel=1e-6)
    assert t.mean_abs_diff == pytest.approx(0.125, rel=1e-6)
    assert_matches(t, reference(sd[name], sd2[name]))
    layers = {g.name: g for g in rep.layers}
    assert set(layers) == {f"transformer.h.{i}" for i in range(4)}
    assert layers["transformer.h.1"].sum_sq_diff == t.sum_sq_diff
    assert all(g.sum_sq_diff == 0 for n, g in layers.items() if n != "transformer.h.1")
    kinds = {g.name: g for g in rep.kinds}
    assert kinds["attn.c_q"].n_tensors == 4 and kinds["attn.c_q"].sum_sq_diff == t.sum_sq_diff
    assert {"wte", "lm_head", "lambdas", "value_embeds", "attn.ve_gate", "mlp.c_proj"} \
        <= set(kinds)
    # roll-ups come from the summed squares, not from averaging per-tensor ratios
    o = rep.overall
    assert o.n_tensors == len(sd)
    assert o.rel_change == pytest.approx(
        math.sqrt(t.sum_sq_diff) / math.sqrt(sum(x.sum_sq_a for x in rep.tensors)), rel=1e-12)
    assert o.max_abs_diff == t.max_abs_diff
    assert o.mean_abs_diff == pytest.approx(t.sum_abs_diff / o.numel, rel=1e-12)


def test_nan_and_inf(tmp_path: Path) -> None:
    a = torch.randn(64, 40)
    b = a + 0.01 * torch.randn(64, 40)
    a.view(-1)[[3, 500, 2000]] = float("nan")
    b.view(-1)[[500, 7]] = float("inf")
    b.view(-1)[9] = float("-inf")
    a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
    rep = diff(save(tmp_path / "a", 1, {"w": a, "w16": a16}),
               save(tmp_path / "b", 2, {"w": b, "w16": b16}), chunk_elems=500)
    for name, (x, y) in {"w": (a, b), "w16": (a16, b16)}.items():
        t = rep.tensor(name)
        assert t is not None
        assert (t.nan_a, t.inf_a, t.nan_b, t.inf_b) == (3, 0, 0, 3)
        assert t.finite_pairs == t.numel - 5 and t.nonfinite_pairs == 5
        assert "NaN/Inf" in (t.note or "")
        assert_matches(t, reference(x, y))
    assert rep.overall.nan_a == 6 and rep.overall.inf_b == 6
    json.dumps(rep.to_json(), allow_nan=False)  # strict JSON even with NaN inside


def test_float32_overflow_falls_back_to_float64(tmp_path: Path) -> None:
    a = torch.full((1000,), 3e38)
    b = -a  # b - a overflows float32; squares overflow too
    rep = diff(save(tmp_path / "a", 1, {"w": a}), save(tmp_path / "b", 2, {"w": b}))
    t = rep.tensors[0]
    assert t.finite_pairs == 1000 and t.nan_a == t.inf_b == 0
    assert t.norm_a == pytest.approx(3e38 * math.sqrt(1000), rel=1e-6)
    assert t.max_abs_diff == pytest.approx(6e38, rel=1e-6)
    assert t.cosine == pytest.approx(-1.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# keys, dtypes, versions


def test_added_removed_and_reshaped_keys(tmp_path: Path) -> None:
    old = make_state_dict(CFG, step=100, total=1000, seed=1, version="old")
    head = make_state_dict(CFG, step=100, total=1000, seed=1, version="head")
    reshaped = OrderedDict(head)
    reshaped["transformer.h.1.attn.ve_gate.weight"] = torch.randn(CFG["n_kv_head"], 32)
    rep = diff(save(tmp_path / "a", 1, old), save(tmp_path / "b", 2, head))
    added = set(head) - set(old)
    assert {k.name for k in rep.only_b} == added
    assert "value_embeds.1.weight" in added and "resid_lambdas" in added
    assert any("ve_gate" in k for k in added)
    assert not rep.only_a and not rep.changed
    assert {t.name for t in rep.tensors} == set(old)
    rev = diff(save(tmp_path / "c", 3, head), save(tmp_path / "d", 4, old))
    assert {k.name for k in rev.only_a} == added and not rev.only_b

    rep2 = diff(save(tmp_path / "e", 5, head), save(tmp_path / "f", 6, reshaped))
    (ch,) = rep2.changed
    assert ch.name == "transformer.h.1.attn.ve_gate.weight"
    assert ch.shape_a == (CFG["n_kv_head"], 12) and ch.shape_b == (CFG["n_kv_head"], 32)
    assert ch.shape_changed and not ch.dtype_changed
    assert rep2.tensor(ch.name) is None  # a shape change is listed, not compared
    assert len(rep2.tensors) == len(head) - 1
    j = rep2.to_json()
    assert j["changed"][0]["shape_b"] == [CFG["n_kv_head"], 32]


def test_bf16_versus_fp32_of_the_same_values(tmp_path: Path) -> None:
    a = torch.randn(300, 70) * 0.02
    rep = diff(save(tmp_path / "a", 1, {"w": a}),
               save(tmp_path / "b", 2, {"w": a.to(torch.bfloat16)}), chunk_elems=4096)
    (ch,) = rep.changed
    assert (ch.dtype_a, ch.dtype_b) == ("float32", "bfloat16") and not ch.shape_changed
    t = rep.tensor("w")
    assert t is not None and (t.dtype_a, t.dtype_b) == ("float32", "bfloat16")
    ref = reference(a, a.to(torch.bfloat16).float())
    assert_matches(t, ref)
    # bf16 keeps 8 significant bits: the relative change is about 2^-9, never more than 2^-8
    assert 1e-4 < t.rel_change < 2.0 ** -8
    assert t.cosine == pytest.approx(1.0, abs=1e-4)


def test_fp16(tmp_path: Path) -> None:
    a = (torch.randn(123, 45) * 0.5).half()
    b = (a.float() + 0.01 * torch.randn(123, 45)).half()
    rep = diff(save(tmp_path / "a", 1, {"h": a, "mixed": a}),
               save(tmp_path / "b", 2, {"h": b, "mixed": b.float()}), chunk_elems=1000)
    assert_matches(rep.tensor("h"), reference(a, b))
    assert_matches(rep.tensor("mixed"), reference(a, b.float()))
    assert [c.name for c in rep.changed] == ["mixed"]


def test_integer_bool_and_float64(tmp_path: Path) -> None:
    sd_a = {"i": torch.arange(1000, dtype=torch.int64) * 3, "m": torch.arange(50) % 3 == 0,
            "d": torch.randn(77, dtype=torch.float64), "u": torch.arange(200, dtype=torch.uint8)}
    sd_b = {"i": torch.arange(1000, dtype=torch.int64) * 3 + 1, "m": torch.arange(50) % 2 == 0,
            "d": sd_a["d"] * 1.5, "u": torch.arange(200, dtype=torch.uint8).flip(0)}
    rep = diff(save(tmp_path / "a", 1, sd_a), save(tmp_path / "b", 2, sd_b), chunk_elems=64)
    for k in sd_a:
        assert_matches(rep.tensor(k), reference(sd_a[k], sd_b[k]), rel=1e-12)
    assert rep.tensor("i").max_abs_diff == 1.0


def test_unsupported_dtype_is_listed_not_compared(tmp_path: Path) -> None:
    sd_a = {"c": torch.randn(10, dtype=torch.complex64), "w": torch.ones(10)}
    sd_b = {"c": torch.randn(10, dtype=torch.complex64), "w": torch.ones(10) * 3}
    rep = diff(save(tmp_path / "a", 1, sd_a), save(tmp_path / "b", 2, sd_b))
    c = rep.tensor("c")
    assert c is not None and not c.compared and "complex64" in (c.note or "")
    assert rep.overall.n_tensors == 1 and rep.overall.rel_change == pytest.approx(2.0)
    assert rep.bytes_total == 2 * 10 * 4
    assert not rep.identical
    json.dumps(rep.to_json(), allow_nan=False)


def test_orig_mod_prefix_is_stripped(tmp_path: Path) -> None:
    sd = base_sd()
    pre = OrderedDict(("_orig_mod." + k, v) for k, v in sd.items())
    rep = diff(save(tmp_path / "a", 1, pre), save(tmp_path / "b", 2, sd))
    assert rep.identical and len(rep.tensors) == len(sd)
    assert all(not t.name.startswith("_orig_mod.") for t in rep.tensors)
    assert rep.a.orig_mod_prefix and not rep.b.orig_mod_prefix
    assert any("_orig_mod." in n for n in rep.notes)


# ---------------------------------------------------------------------------------------------
# chunking, strides, reference


def test_chunked_equals_float64_reference(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    sd_a, sd_b = OrderedDict(), OrderedDict()
    # odd sizes (bf16 tail element), tensors spanning many chunks, a scalar and an empty one
    for name, shape, dtype in [("big", (257, 129), torch.float32),
                               ("big16", (301, 77), torch.bfloat16),
                               ("odd16", (37, 29), torch.bfloat16),
                               ("half", (99, 101), torch.float16),
                               ("scalar", (), torch.float32), ("empty", (0, 5), torch.float32)]:
        x = torch.randn(shape, generator=gen) * 0.02
        y = x + torch.randn(shape, generator=gen) * 1e-3
        sd_a[name], sd_b[name] = x.to(dtype), y.to(dtype)
    pa, pb = save(tmp_path / "a", 1, sd_a), save(tmp_path / "b", 2, sd_b)
    sd_a, sd_b = torch.load(pa, weights_only=True), torch.load(pb, weights_only=True)
    for chunk in (999, 1000, 4096, 1 << 18):
        rep = diff(pa, pb, chunk_elems=chunk)
        assert rep.chunk_elems == chunk & ~1
        for name in sd_a:
            if sd_a[name].numel() == 0:
                t = rep.tensor(name)
                assert t.numel == 0 and t.finite_pairs == 0 and t.cosine is None
                continue
            assert_matches(rep.tensor(name), reference(sd_a[name], sd_b[name]))


def test_non_contiguous_tensors(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(120, 90, generator=gen)
    sd_a = {
        "transposed": torch.randn(64, 48, generator=gen).t(),
        "slice": base[10:70, 5:85],  # storage offset + row stride
        "t16": torch.randn(40, 30, generator=gen).to(torch.bfloat16).t(),
        "expanded": torch.randn(1, 16, generator=gen).expand(50, 16),  # stride 0
        "rows3d": torch.randn(6, 500, 4, generator=gen).permute(2, 0, 1),  # rows > chunk
        "plain": torch.randn(48, 64, generator=gen),
    }
    sd_b = {k: (v.contiguous() * 1.01 + 0.001) for k, v in sd_a.items()}
    sd_b["plain"] = sd_a["plain"].t().contiguous().t()  # same values, B side strided
    pa, pb = save(tmp_path / "a", 1, sd_a), save(tmp_path / "b", 2, sd_b)
    infos = {t.name: t for t in read_model(pa).tensors}
    assert not infos["transposed"].is_contiguous and infos["slice"].storage_offset > 0
    assert infos["expanded"].stride[0] == 0
    assert not read_model(pb).tensor("plain").is_contiguous
    rep = diff(pa, pb, chunk_elems=256)
    for k in sd_a:
        assert_matches(rep.tensor(k), reference(sd_a[k], sd_b[k]))
    assert rep.tensor("plain").sum_sq_diff == 0


DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
       da=st.sampled_from(sorted(DTYPES)), db=st.sampled_from(sorted(DTYPES)),
       transpose=st.booleans(), chunk=st.integers(2, 700), seed=st.integers(0, 2**31))
def test_random_pairs_match_reference(tmp_path: Path, shape: list[int], da: str, db: str,
                                      transpose: bool, chunk: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    y = x + 0.1 * torch.randn(shape, generator=gen)
    a, b = x.to(DTYPES[da]), y.to(DTYPES[db])
    if transpose and len(shape) > 1:
        a = a.transpose(0, -1).contiguous().transpose(0, -1)  # same values, strided storage
    d = tmp_path / f"h{seed}_{chunk}"
    rep = diff(save(d / "a", 1, {"w": a}), save(d / "b", 2, {"w": b}), chunk_elems=chunk)
    assert_matches(rep.tensor("w"), reference(a, b))


# ---------------------------------------------------------------------------------------------
# progress, cancel, memory


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    a = make_state_dict(CFG, step=100, total=1000, seed=1)
    b = make_state_dict(CFG, step=900, total=1000, seed=1)
    return save(tmp_path / "a", 1, a), save(tmp_path / "b", 2, b)


def test_progress_is_monotone_and_ends_at_total(tmp_path: Path) -> None:
    pa, pb = _pair(tmp_path)
    calls: list[tuple[int, int]] = []
    rep = diff(pa, pb, progress=lambda d, t: calls.append((d, t)), chunk_elems=256)
    assert len(calls) > 10
    assert calls[-1] == (rep.bytes_total, rep.bytes_total)
    assert calls.count(calls[-1]) == 1
    assert all(t == rep.bytes_total for _, t in calls)
    assert all(x[0] <= y[0] for x, y in zip(calls, calls[1:], strict=False))
    expected = sum(t.numel * (2 if "bfloat16" in t.dtype_a else 4) * 2 for t in rep.tensors)
    assert rep.bytes_total == expected


def test_cancel_stops_early(tmp_path: Path) -> None:
    pa, pb = _pair(tmp_path)
    cancel = threading.Event()
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            cancel.set()

    with pytest.raises(DiffCancelled) as err:
        diff(pa, pb, progress=progress, cancel=cancel, chunk_elems=256, workers=1)
    assert len(calls) == 3
    assert err.value.done_bytes == calls[-1] < err.value.total_bytes
    calls.clear()
    cancel.clear()
    with pytest.raises(DiffCancelled) as err:  # with threads: each stops at its next chunk
        diff(pa, pb, progress=progress, cancel=cancel, chunk_elems=256, workers=4)
    assert 3 <= len(calls) <= 3 + 4 and err.value.done_bytes < err.value.total_bytes
    pre = threading.Event()
    pre.set()
    with pytest.raises(DiffCancelled) as err2:
        diff(pa, pb, cancel=pre)
    assert err2.value.done_bytes == 0
    # the files are released: the same pair diffs fine afterwards
    assert diff(pa, pb).overall.numel > 0


def _rss_anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_memory_stays_bounded(tmp_path: Path) -> None:
    n = 6 << 20  # 24 MB fp32 per side, 24 chunks of the default size
    pa = save(tmp_path / "a", 1, {"w": torch.ones(n), "e": torch.ones(n // 2).bfloat16()})
    pb = save(tmp_path / "b", 2, {"w": torch.full((n,), 2.0),
                                  "e": torch.ones(n // 2).bfloat16()})
    diff(pa, pb)  # warm-up: numpy and the buffers' first allocation
    base = _rss_anon_kb()
    peak = [base]
    rep = diff(pa, pb, progress=lambda d, t: peak.__setitem__(0, max(peak[0], _rss_anon_kb())))
    assert rep.tensor("w").rel_change == pytest.approx(1.0)
    assert (peak[0] - base) < 20 * 1024  # a whole-tensor temporary alone would be 24 MB


# ---------------------------------------------------------------------------------------------
# checkpoints, meta, errors, JSON


def test_checkpoints_with_meta(tmp_path: Path) -> None:
    base = tmp_path / "base"
    write_tag(base / "base_checkpoints" / "d4", depth=4, steps=[100, 300], total=300, world=0)
    cat = scan(base, now=time.time() + 3600)
    a, b = cat.checkpoints
    rep = diff(a, b)
    assert rep.a_label == "base_checkpoints/d4@100" and rep.b_label == "base_checkpoints/d4@300"
    assert (rep.a.step, rep.b.step) == (100, 300)
    assert rep.a.val_bpb is not None and rep.b.val_bpb < rep.a.val_bpb
    assert rep.a.size == a.model.size and rep.a.mtime is not None
    changes = {m.path: (m.a, m.b) for m in rep.meta_changes}
    assert changes["step"] == (100, 300)
    assert changes["metrics.val_bpb"] == (rep.a.val_bpb, rep.b.val_bpb)
    assert not any(p.startswith("model_config") for p in changes)
    assert 0 < rep.overall.rel_change < 1 and 0 < rep.overall.cosine < 1
    # plain paths: no meta is read; the step comes from the file name
    rep2 = diff(a.model.path, b.model.path)
    assert rep2.meta_changes == [("step", 100, 300)] and rep2.a.val_bpb is None
    assert rep2.a_label == str(a.model.path)
    assert rep2.overall.sum_sq_diff == rep.overall.sum_sq_diff


def test_demo_versions_and_layouts_never_raise(demo_master: Path) -> None:
    cat = scan(demo_master)
    base = cat.stage("base").tag("d4").checkpoints
    mid = cat.stage("mid").tag("d4").checkpoints[-1]
    sft = cat.stage("sft").tag("d4").checkpoints[-1]
    legacy = cat.stage("base").tag("d2_legacy").checkpoints
    rep = diff(mid, base[-1])  # old model version -> head
    added = {k.name for k in rep.only_b}
    assert {"resid_lambdas", "x0_lambdas", "value_embeds.1.weight",
            "transformer.h.1.attn.ve_gate.weight"} <= added
    assert not rep.only_a
    assert {c.path for c in rep.meta_changes} >= {"model_config.window_pattern"}
    rep_sft = diff(base[-1], sft)  # _orig_mod. keys on one side
    assert not rep_sft.only_a and not rep_sft.only_b and rep_sft.overall.n_tensors > 0
    rep_leg = diff(legacy[0], legacy[1])  # step_N.pt wrappers
    assert rep_leg.overall.n_tensors > 0 and rep_leg.a.step == 1000
    for r in (rep, rep_sft, rep_leg):
        json.dumps(r.to_json(), allow_nan=False)


def test_corrupt_inputs_raise_checkpoint_error(tmp_path: Path) -> None:
    pa, pb = _pair(tmp_path)
    data = pa.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip at all" * 100)
    for bad in (truncated, garbage, tmp_path / "missing.pt", tmp_path):
        with pytest.raises(CheckpointError):
            diff(bad, pb)
        with pytest.raises(CheckpointError):
            diff(pa, bad)
    orphan = Checkpoint("base_checkpoints", "d4", 7, tmp_path)  # meta without a model file
    with pytest.raises(CheckpointError, match="no model file"):
        diff(orphan, pb)
    # a storage whose local header was overwritten
    broken = tmp_path / "broken.pt"
    i = data.index(b"PK\x03\x04", data.index(b"/data/") - 200)
    j = data.index(b"PK\x03\x04", i + 4)  # the second member: a storage
    broken.write_bytes(data[:j] + b"XXXX" + data[j + 4:])
    with pytest.raises(CheckpointError):
        diff(broken, pb)


def test_file_truncated_during_the_diff(tmp_path: Path) -> None:
    pa, pb = _pair(tmp_path)
    size = pb.stat().st_size

    def progress(done: int, total: int) -> None:
        if done > total // 4 and pb.stat().st_size == size:
            with open(pb, "r+b") as f:  # what a torch.save over the same path does first
                f.truncate(size // 2)

    with pytest.raises(CheckpointError, match="truncated"):
        diff(pa, pb, progress=progress, chunk_elems=256)


def test_json_schema(tmp_path: Path) -> None:
    rep: DiffReport = diff(*_pair(tmp_path))
    j = rep.to_json()
    assert j["schema"] == SCHEMA == "nanochat-ckpt.diff/1"
    assert j["stats_over"] == "finite_pairs"
    assert set(j) == {"schema", "a", "b", "bytes_total", "elapsed_s", "chunk_elems",
                      "stats_over", "overall", "layers", "others", "kinds", "tensors", "only_a",
                      "only_b", "changed", "meta_changes", "notes"}
    stat_keys = {"numel", "finite_pairs", "nan_a", "inf_a", "nan_b", "inf_b", "norm_a",
                 "norm_b", "norm_diff", "rel_change", "cosine", "max_abs_diff", "mean_abs_diff"}
    assert set(j["overall"]) == stat_keys | {"name", "n_tensors"}
    assert set(j["tensors"][0]) == stat_keys | {"name", "kind", "layer", "shape", "dtype_a",
                                                "dtype_b", "compared", "note"}
    assert set(j["a"]) == {"label", "path", "step", "val_bpb", "mtime", "size", "n_tensors",
                           "params", "orig_mod_prefix"}
    assert j["layers"][0]["name"] == "transformer.h.0"
    assert json.loads(json.dumps(j, allow_nan=False)) == j


def test_import_is_cheap() -> None:
    code = ("import sys, nanochat_ckpt_tui.store.diff; "
            "print('torch' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("version", ["head", "old"])
def test_groups_partition_the_tensors(tmp_path: Path, version: str) -> None:
    """"By layer" shows every compared tensor exactly once (smear_gate, lambdas, embeddings and
    lm_head too), for nanochat's current names and the older ones."""
    from nanochat_ckpt_tui.store.demo import make_state_dict, model_config

    cfg = model_config(4, version=version)
    pa, pb = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(make_state_dict(cfg, step=100, total=1000, version=version), pa)
    torch.save(make_state_dict(cfg, step=900, total=1000, version=version), pb)
    rep = diff(pa, pb)
    compared = [t for t in rep.tensors if t.compared]
    assert sum(g.n_tensors for g in rep.groups) == len(compared)
    assert sum(g.numel for g in rep.groups) == rep.overall.numel
    names = {g.name for g in rep.groups}
    if version == "head":
        assert {"smear_gate", "lambdas", "wte", "lm_head", "value_embeds"} <= names


def test_threads_give_the_same_numbers(tmp_path: Path) -> None:
    pa, pb = _pair(tmp_path)
    one = diff(pa, pb, chunk_elems=256, workers=1).to_json()
    many = diff(pa, pb, chunk_elems=256, workers=4).to_json()
    for doc in (one, many):
        doc.pop("elapsed_s")
    assert one == many


def test_the_numbers_do_not_depend_on_the_core_count(tmp_path: Path) -> None:
    """One default chunk everywhere: one core, several threads, worker processes."""
    from nanochat_ckpt_tui.store.diff_report import DEFAULT_CHUNK_ELEMS

    pa, pb = _pair(tmp_path)
    docs = [diff(pa, pb, workers=1).to_json(), diff(pa, pb, workers=2).to_json(),
            diff(pa, pb, workers=2, processes=True).to_json(), diff(pa, pb).to_json()]
    for doc in docs:
        doc.pop("elapsed_s")
    assert docs[0]["chunk_elems"] == DEFAULT_CHUNK_ELEMS
    assert all(doc == docs[0] for doc in docs[1:])
    assert diff(pa, pb, chunk_elems=1001, workers=2).chunk_elems == 1000
