"""store/check.py on real torch.save files: CRCs, tensor health, config vs shapes, the cache."""

from __future__ import annotations

import math
import os
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from nanochat_ckpt_tui.store import check as ck_mod
from nanochat_ckpt_tui.store import check_kernel
from nanochat_ckpt_tui.store.check import cached_report, check
from nanochat_ckpt_tui.store.check_cache import CheckCache
from nanochat_ckpt_tui.store.demo import (
    base_meta,
    make_optimizer_shard,
    make_state_dict,
    model_config,
    save_checkpoint,
)
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.ptfile import read_model

torch = pytest.importorskip("torch")
LATER = time.time() + 3600


def write_step(tag: Path, step: int, *, edit: Any = None, cfg_edit: Any = None,
               world: int = 2, crc: bool = True) -> dict[str, Any]:
    cfg = model_config(2)
    sd = make_state_dict(cfg, step=step, total=1000)
    if edit:
        edit(sd)
    shards = [make_optimizer_shard(sd, rank=r, world=world, step=step) for r in range(world)]
    meta = base_meta(dict(cfg, **(cfg_edit or {})), step, 1000, tag=tag.name)
    from torch.utils.serialization import config

    old = config.save.compute_crc32
    config.save.compute_crc32 = crc
    try:
        save_checkpoint(tag, step, sd, meta, shards)
    finally:
        config.save.compute_crc32 = old
    return sd


def record_of(path: Path, tensor: str) -> tuple[int, int]:
    """(data offset, size) of the zip record holding ``tensor``'s storage."""
    key = next(t.storage_key for t in read_model(path).tensors if t.name == tensor)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"{path.stem}/data/{key}")
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    return info.header_offset + 30 + n + m, info.file_size


def flip(path: Path, offset: int) -> None:
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))


@pytest.fixture
def tag(tmp_path: Path) -> Path:
    return tmp_path / "base" / "base_checkpoints" / "d2"


def reports(tag: Path, **kw: Any) -> dict[int, ck_mod.CheckReport]:
    cat = scan(tag.parent.parent, now=LATER)
    cks = cat.stage("base").tag(tag.name).checkpoints
    return {r.step: r for r in check(cks, **kw)}


def test_good_steps_are_good_with_health_for_every_tensor(tag: Path) -> None:
    sd = write_step(tag, 100)
    rep = reports(tag)[100]
    assert rep.verdict == "good", rep.summary()
    names = {t.name for f, t in rep.tensors() if f == "model_000100.pt"}
    assert names == set(sd)
    h = next(t for f, t in rep.tensors() if t.name == "lm_head.weight")
    ref = sd["lm_head.weight"].double()
    assert h.norm == pytest.approx(float(ref.norm()), rel=1e-5)
    assert h.absmax == pytest.approx(float(ref.abs().max()), rel=1e-6)
    assert h.mean == pytest.approx(float(ref.mean()), rel=1e-4, abs=1e-7)
    assert h.std == pytest.approx(float(ref.std(unbiased=False)), rel=1e-4)
    wte = next(t for f, t in rep.tensors() if t.name == "transformer.wte.weight")
    assert wte.dtype == "bfloat16"
    assert wte.norm == pytest.approx(float(sd["transformer.wte.weight"].double().norm()), rel=1e-5)
    optim = [t for f, t in rep.tensors() if f.startswith("optim_")]
    assert any(t.name.endswith("exp_avg_sq") for t in optim)
    assert all(fc.crc == "ok" for fc in rep.files)


def test_a_flipped_byte_is_damaged_and_names_the_tensor(tag: Path) -> None:
    write_step(tag, 100)
    model = tag / "model_000100.pt"
    at, size = record_of(model, "transformer.wte.weight")
    flip(model, at + size // 2)
    rep = reports(tag)[100]
    assert rep.verdict == "damaged"
    bad = [f for f in rep.problems if "CRC mismatch" in f.message]
    assert bad and bad[0].tensor == "transformer.wte.weight" and bad[0].file == model.name


@pytest.mark.parametrize("zlib_ng", [True, False], ids=["zlib-ng", "zlib fallback"])
def test_the_crc_is_zlibs_with_or_without_zlib_ng(tag: Path, monkeypatch: pytest.MonkeyPatch,
                                                  zlib_ng: bool) -> None:
    import sys
    import zlib

    if zlib_ng:
        pytest.importorskip("zlib_ng")
    else:
        for mod in ("zlib_ng", "zlib_ng.zlib_ng"):  # the import fails, as with no wheel
            monkeypatch.setitem(sys.modules, mod, None)
    crc32 = check_kernel.crc32_function()
    assert (crc32.__module__ or "").startswith("zlib_ng") == zlib_ng
    data = os.urandom(100_003)
    assert crc32(data, 0) == zlib.crc32(data) and crc32(data[7:], crc32(data[:7], 0)) == \
        zlib.crc32(data)
    write_step(tag, 100)
    write_step(tag, 200)
    model = tag / "model_000200.pt"
    at, size = record_of(model, "transformer.wte.weight")
    flip(model, at + 3)
    got = reports(tag, use_cache=False)
    assert got[100].verdict == "good" and all(fc.crc == "ok" for fc in got[100].files)
    assert got[200].verdict == "damaged"


def test_a_nan_with_valid_crcs_is_unhealthy_with_the_count(tag: Path) -> None:
    def nan(sd: dict[str, Any]) -> None:
        sd["lm_head.weight"][0, :3] = float("nan")

    write_step(tag, 100, edit=nan)
    rep = reports(tag)[100]
    assert rep.verdict == "unhealthy"
    f = next(f for f in rep.problems if f.tensor == "lm_head.weight")
    assert "3 NaN" in f.message
    h = next(t for _, t in rep.tensors() if t.name == "lm_head.weight")
    assert h.nan == 3 and math.isfinite(h.norm)


def test_an_inf_in_an_optimizer_shard(tag: Path) -> None:
    write_step(tag, 100)
    shard = tag / "optim_000100_rank1.pt"
    obj = torch.load(shard, weights_only=True)
    t = next(iter(obj["state"].values()))
    buf = t.get("exp_avg_sq", t.get("momentum_buffer"))
    buf.view(-1)[0] = float("-inf")
    torch.save(obj, shard)
    rep = reports(tag)[100]
    assert rep.verdict == "unhealthy"
    f = next(f for f in rep.problems if f.file == shard.name)
    assert "1 -Inf" in f.message and f.tensor and f.tensor.startswith("state.")


def test_config_that_does_not_match_the_shapes(tag: Path) -> None:
    write_step(tag, 100, cfg_edit={"n_embd": 32, "n_layer": 5, "vocab_size": 1000})
    msgs = [f.message for f in reports(tag)[100].problems]
    assert any("n_layer is 5 but the weights have 2 layers" in m for m in msgs)
    assert any("n_embd is 32" in m for m in msgs)
    assert any("vocab_size is 1000 (padded 1024)" in m for m in msgs)


def test_vocab_padding_to_64_is_accepted(tag: Path) -> None:
    write_step(tag, 100, cfg_edit={"vocab_size": 250})  # 256 rows = 250 padded to 64
    assert reports(tag)[100].verdict == "good"


def test_saved_without_crcs_is_not_damaged(tag: Path) -> None:
    write_step(tag, 100, crc=False)
    rep = reports(tag)[100]
    assert rep.verdict == "good"
    assert {fc.crc for fc in rep.files} == {"none recorded"}
    assert any("no CRC recorded" in f.message for f in rep.all_findings)


def test_a_truncated_record_is_damaged(tag: Path) -> None:
    write_step(tag, 100)
    model = tag / "model_000100.pt"
    at, size = record_of(model, "lm_head.weight")
    data = model.read_bytes()
    # cut the file inside lm_head's record, then re-attach the zip's directory so it opens
    with zipfile.ZipFile(model) as z:
        cd_start = z.start_dir
    model.write_bytes(data[:at + size // 2] + data[cd_start:])
    rep = reports(tag)[100]
    assert rep.verdict == "damaged", rep.summary()


def test_a_file_rewritten_while_being_checked_is_unchecked_not_damaged(
        tag: Path, tmp_path: Path) -> None:
    """Truncated under the read (a rerun saving over the step): what was read says nothing
    about the file now. "damaged" would let a prune offer to delete a latest step that is
    merely being written again; the step is unchecked, and nothing is cached for it."""
    write_step(tag, 100)
    model = tag / "model_000100.pt"
    size = model.stat().st_size

    def progress(done: int, total: int) -> None:
        if done and model.stat().st_size == size:
            with open(model, "r+b") as f:
                f.truncate(size // 2)

    cache = CheckCache(tmp_path / "c" / "checks.sqlite")
    rep = reports(tag, progress=progress, cache=cache)[100]
    assert rep.verdict == "unchecked", rep.summary()
    assert "model_000100.pt changed while it was being checked" in rep.summary()
    again = reports(tag, cache=cache)[100]  # read again as it is now: cut in half
    assert again.verdict == "damaged" and not any(fc.cached for fc in again.files
                                                  if fc.name == "model_000100.pt")


def test_a_zero_byte_model_is_damaged(tag: Path) -> None:
    write_step(tag, 100)
    (tag / "model_000100.pt").write_bytes(b"")
    rep = reports(tag)[100]
    assert rep.verdict == "damaged" and "0 bytes" in rep.summary()


def test_cache_hit_touch_and_corrupt_cache(tag: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_step(tag, 100)
    write_step(tag, 200)
    cache = CheckCache(tmp_path / "c" / "checks.sqlite")
    first = reports(tag, cache=cache)
    assert all(fc.bytes_read > 0 and not fc.cached for r in first.values() for fc in r.files)
    again = reports(tag, cache=cache)
    assert all(fc.cached and fc.bytes_read == 0 for r in again.values() for fc in r.files)
    assert again[100].to_json()["verdict"] == "good"
    cat = scan(tag.parent.parent, now=LATER)
    assert cached_report(cat.stage("base").tag("d2").checkpoint(100), cache).verdict == "good"
    os.utime(tag / "model_000200.pt")  # touched: only this file is read again
    third = reports(tag, cache=cache)
    read = [fc.name for r in third.values() for fc in r.files if not fc.cached]
    assert read == ["model_000200.pt"]
    cache.close()
    (tmp_path / "c" / "checks.sqlite").write_bytes(b"this is not a database" * 100)
    for p in (tmp_path / "c").glob("checks.sqlite-*"):
        p.unlink()
    fresh = CheckCache(tmp_path / "c" / "checks.sqlite")
    fourth = reports(tag, cache=fresh)
    assert all(r.verdict == "good" for r in fourth.values())
    assert fresh.note and "corrupt" in fresh.note
    assert all(fc.cached for r in reports(tag, cache=fresh).values() for fc in r.files)
    sqlite3.connect(tmp_path / "c" / "checks.sqlite").execute("SELECT 1 FROM results").close()


def test_cancel_and_progress(tag: Path) -> None:
    write_step(tag, 100)
    seen: list[tuple[int, int]] = []
    reports(tag, progress=lambda d, t: seen.append((d, t)), use_cache=False)
    assert seen and seen[-1][0] == seen[-1][1] > 0

    class Once:
        def is_set(self) -> bool:
            return True

    with pytest.raises(ck_mod.CheckCancelled):
        reports(tag, cancel=Once(), use_cache=False)


def test_meta_step_mismatch_and_bad_meta(tag: Path) -> None:
    write_step(tag, 100)
    write_step(tag, 200)
    meta = tag / "meta_000100.json"
    meta.write_text(meta.read_text().replace('"step": 100', '"step": 300'))
    (tag / "meta_000200.json").write_text('{"step": 200, "model_config": "nope"}')
    got = reports(tag)
    assert got[100].verdict == "unhealthy" and "says step 300" in got[100].summary()
    assert got[200].verdict == "unhealthy" and "model_config is a str" in got[200].summary()


def test_threads_do_not_change_a_single_number(tag: Path) -> None:
    """Records are split across threads; every statistic is the same to the last bit."""
    write_step(tag, 100, edit=lambda sd: sd["lm_head.weight"].__setitem__((0, 0), float("inf")))
    one = reports(tag, use_cache=False, workers=1, chunk_bytes=4096)[100]
    many = reports(tag, use_cache=False, workers=4, chunk_bytes=4096)[100]
    assert one.to_json()["files"] == many.to_json()["files"]
    assert [str(f) for f in one.all_findings] == [str(f) for f in many.all_findings]


def test_norms_over_steps_come_from_the_cache(tag: Path, tmp_path: Path) -> None:
    sds = {step: write_step(tag, step) for step in (100, 200)}
    cache = CheckCache(tmp_path / "n" / "checks.sqlite")
    cat = scan(tag.parent.parent, now=LATER)
    cks = cat.stage("base").tag("d2").checkpoints
    assert ck_mod.norms_over_steps(cks, cache) == {}  # nothing checked yet: nothing read
    check(cks, cache=cache)
    norms = ck_mod.norms_over_steps(cks, cache)
    assert [s for s, _ in norms["model"]] == [100, 200]
    want = math.sqrt(sum(float(t.double().pow(2).sum()) for t in sds[200].values()))
    assert norms["model"][1][1] == pytest.approx(want, rel=1e-5)
    assert {"transformer.h.0", "transformer.h.1"} <= set(norms)


def test_tag_plot_gets_weight_norms_once_checked(tag: Path) -> None:
    from rich.console import Console

    from nanochat_ckpt_tui.store.summary import tag_metrics
    from nanochat_ckpt_tui.tui.detail import with_weight_norms
    from nanochat_ckpt_tui.tui.palette import Palette
    from nanochat_ckpt_tui.tui.render import tag_view

    for step in (100, 200):
        write_step(tag, step)
    t = scan(tag.parent.parent, now=LATER).stage("base").tag("d2")
    assert with_weight_norms(t, tag_metrics(t)) == tag_metrics(t)  # nothing checked yet
    check(t.checkpoints)
    points = with_weight_norms(t, tag_metrics(t))
    assert [p.step for p in points] == [100, 200]
    assert points[1].metrics["weight norm"] > 0 and "weight norm h.1" in points[1].metrics
    con = Console(width=100, record=True)
    con.print(tag_view(t, points, LATER, Palette.default(), 100, True))
    text = con.export_text()
    assert "weight norm h.1" in text and "┌" in text  # charted with axes
