"""Summary: params, depth, layers, tied embeddings, meta JSON quirks, per-piece errors."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.layout import State, scan
from nanochat_ckpt_tui.store.summary import (
    MetaError,
    kind_of,
    layer_of,
    read_meta,
    summarize,
    tag_metrics,
    val_bpb_of,
)


def test_summary_of_current_layout(demo_master: Path) -> None:
    import torch

    ck = scan(demo_master).stage("base").tag("d4").checkpoint(3000)
    s = summarize(ck)
    assert s.model_error is None and s.meta_error is None
    sd = torch.load(ck.model.path, weights_only=True)
    ms = s.model_summary
    assert ms.params == sum(t.numel() for t in sd.values())
    assert ms.depth == 4 and ms.depth_source == "model_config"
    assert ms.embedding_shape == tuple(sd["transformer.wte.weight"].shape)
    assert ms.lm_head_shape == tuple(sd["lm_head.weight"].shape)
    assert not ms.tied
    assert [g.name for g in ms.layers] == [f"transformer.h.{i}" for i in range(4)]
    layer1 = sum(t.numel() for k, t in sd.items() if k.startswith("transformer.h.1."))
    assert ms.layers[1].params == layer1
    assert ms.dtypes["bfloat16"] == sd["transformer.wte.weight"].numel() + sum(
        t.numel() for k, t in sd.items() if k.startswith("value_embeds"))
    assert s.meta.metrics["val_bpb"] == pytest.approx(s.meta.data["val_bpb"])
    assert s.meta.metrics["train_loss"] == s.meta.data["loop_state"]["smooth_train_loss"]
    assert [sh.entry.rank for sh in s.shards] == [0, 1]
    assert {g.kind for g in s.shards[0].optimizer.groups} == {"adamw", "muon"}


def test_depth_inferred_without_meta(demo_master: Path) -> None:
    s = summarize(scan(demo_master).stage("base").tag("d6").checkpoint(1200))
    assert s.meta is None and s.meta_error is None
    assert s.model_summary.depth == 6 and s.model_summary.depth_source == "inferred from keys"


def test_orig_mod_prefix_and_legacy_wrapper(demo_master: Path) -> None:
    cat = scan(demo_master)
    sft = summarize(cat.stage("sft").tag("d4").latest)
    assert sft.model.orig_mod_prefix
    assert [g.name for g in sft.model_summary.layers][:1] == ["transformer.h.0"]
    legacy = summarize(cat.stage("base").tag("d2_legacy").latest)
    assert legacy.model.layout == "wrapper" and legacy.model.step == 2000
    assert legacy.model.has_optimizer
    assert legacy.model_config["n_layer"] == 2  # from the wrapper's config
    assert legacy.model_summary.depth == 2


def test_rl_meta_only_model_config(demo_master: Path) -> None:
    s = summarize(scan(demo_master).stage("rl").tag("d4").latest)
    assert s.meta.step is None and s.meta.metrics == {}
    assert s.model_config["n_layer"] == 4 and s.shards == []


def test_meta_with_infinity_and_null(demo_master: Path) -> None:
    ck = scan(demo_master).stage("base").tag("d6").checkpoint(400)
    raw = ck.meta.path.read_text()
    assert "Infinity" in raw and '"val_bpb": null' in raw
    meta = read_meta(ck.meta)
    assert meta.metrics["min_val_bpb"] == float("inf")
    assert meta.metrics["val_bpb"] is None
    assert meta.val_bpb is None and val_bpb_of(ck) is None
    points = tag_metrics(scan(demo_master).stage("base").tag("d6"))
    assert [p.step for p in points] == [400, 800]


def test_tied_embeddings(tmp_path: Path) -> None:
    import torch

    wte = torch.randn(8, 4)
    sd = OrderedDict([("transformer.wte.weight", wte), ("transformer.h.0.attn.c_q.weight",
                      torch.randn(4, 4)), ("lm_head.weight", wte)])
    d = tmp_path / "base_checkpoints" / "t"
    d.mkdir(parents=True)
    torch.save(sd, d / "model_000001.pt")
    t = time.time() - 3600
    os.utime(d / "model_000001.pt", (t, t))
    s = summarize(scan(tmp_path).stage("base").tag("t").latest)
    assert s.model_summary.tied


@pytest.mark.parametrize("content, words", [
    ("{ not json", "broken JSON at line 1"),
    ("", "empty"),
    ("[1, 2]", "JSON list, not an object"),
    ("\xff\xfe", "not UTF-8 text"),
])
def test_broken_meta_is_a_per_checkpoint_error(demo_dir: Path, content: str, words: str) -> None:
    meta = demo_dir / "base_checkpoints" / "d4" / "meta_001000.json"
    meta.write_text(content, encoding="latin-1")
    t = time.time() - 3600
    os.utime(meta, (t, t))
    cat = scan(demo_dir)
    d4 = cat.stage("base").tag("d4")
    s = summarize(d4.checkpoint(1000))
    assert s.meta is None and words in s.meta_error
    assert s.model is not None  # the rest of the checkpoint still reads
    assert summarize(d4.checkpoint(1500)).meta_error is None
    points = {p.step: p for p in tag_metrics(d4)}
    assert points[1000].error and points[1500].error is None
    with pytest.raises(MetaError):
        read_meta(meta)


def test_corrupt_model_and_shard_errors_stay_local(demo_dir: Path) -> None:
    d = demo_dir / "base_checkpoints" / "d4"
    (d / "optim_002000_rank1.pt").write_bytes(b"PK\x03\x04 garbage")
    model = d / "model_002500.pt"
    model.write_bytes(b"this is not a zip at all, and not being written either.....")
    t = time.time() - 3600
    for p in (d / "optim_002000_rank1.pt", model):
        os.utime(p, (t, t))
    d4 = scan(demo_dir).stage("base").tag("d4")
    s = summarize(d4.checkpoint(2000))
    assert s.model is not None and s.shards[0].optimizer and s.shards[1].error
    s = summarize(d4.checkpoint(2500))
    assert s.model is None and "not a readable torch zip" in s.model_error
    assert s.meta is not None


def test_a_whole_zip_opens_inside_the_write_window(demo_dir: Path) -> None:
    """A file copied a moment ago (cp, rsync) keeps its "writing" badge for the window, but a
    zip that is whole opens at once; only a zip with no end yet is refused."""
    now = time.time()
    model = demo_dir / "base_checkpoints" / "d4" / "model_003000.pt"
    os.utime(model, (now, now))
    ck = scan(demo_dir, now=now).stage("base").tag("d4").checkpoint(3000)
    assert ck.state is State.WRITING and ck.openable
    s = summarize(ck)
    assert s.model is not None and s.model_error is None


def test_a_zip_without_its_end_is_not_opened(demo_dir: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    from nanochat_ckpt_tui.store import summary

    now = time.time()
    model = demo_dir / "base_checkpoints" / "d4" / "model_003000.pt"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # torch.save mid-way
    ck = scan(demo_dir, now=now).stage("base").tag("d4").checkpoint(3000)
    assert ck.state is State.WRITING and ck.unfinished == ("model_003000.pt",)

    def boom(*a: object, **kw: object) -> None:
        raise AssertionError("a file being written was opened")

    monkeypatch.setattr(summary, "read_model", boom)
    monkeypatch.setattr(summary, "read_optimizer", boom)
    s = summarize(ck)
    assert s.model is None and "still being written" in s.model_error


def test_kinds_and_layers() -> None:
    assert layer_of("transformer.h.12.attn.c_q.weight") == 12
    assert layer_of("_orig_mod.transformer.h.3.mlp.c_fc.weight") == 3
    assert layer_of("value_embeds.3.weight") is None
    assert kind_of("transformer.h.1.attn.ve_gate.weight") == "attn.ve_gate"
    assert kind_of("_orig_mod.transformer.h.0.mlp.c_proj.weight") == "mlp.c_proj"
    assert kind_of("transformer.wte.weight") == "wte"
    assert kind_of("value_embeds.1.weight") == "value_embeds"
    assert kind_of("resid_lambdas") == "lambdas"
    assert kind_of("lm_head.weight") == "lm_head"


def test_layers_found_as_the_regex_finds_them() -> None:
    """layer_of and kind_of search with str methods what LAYER_PATTERN finds (leftmost match,
    any Unicode decimal digit, the ``^`` alternative): random names of the pattern's pieces."""
    import random
    import re

    from nanochat_ckpt_tui.store.summary import LAYER_PATTERN

    rng = random.Random(7)
    pieces = ["h", ".", "h.", ".h.", "1", "12", "0", "\u0663", "\uff12", "x", "attn", "_orig_mod."]
    names = ["", "h.", "h.1", "h.1.", ".h.1.", "h.h.1.", "transformer.h.12.attn.c_q.weight"]
    names += ["".join(rng.choices(pieces, k=rng.randint(1, 9))) for _ in range(20_000)]
    for name in names:
        m = re.search(LAYER_PATTERN, name)
        assert layer_of(name) == (int(m.group(1)) if m else None), name
        if m and not name.startswith("_orig_mod."):
            rest = re.split(LAYER_PATTERN, name, maxsplit=1)[-1]
            assert kind_of(name) == rest.removesuffix(".weight").removesuffix(".bias"), name
