"""States that say whether nanochat can use a step, and pruning that never deletes a tag's
newest good checkpoint (real torch.save files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_check import write_step

from nanochat_ckpt_tui.store.layout import State, scan
from nanochat_ckpt_tui.store.prune import Override, Rules, plan_rules, plan_selection
from nanochat_ckpt_tui.store.summary import assess_metas, summarize

HOUR_AGO = time.time() - 3600


def age(tag: Path) -> None:
    for p in tag.iterdir():
        os.utime(p, (HOUR_AGO, HOUR_AGO))


@pytest.fixture
def d3(tmp_path: Path) -> Path:
    """good 100, truncated 200, garbage meta at 300, a 0-byte latest model 500."""
    tag = tmp_path / "base" / "base_checkpoints" / "d3"
    for step in (100, 200, 300, 500):
        write_step(tag, step)
    m200 = tag / "model_000200.pt"
    m200.write_bytes(m200.read_bytes()[:1000])
    (tag / "meta_000300.json").write_text('{"step": 300, garbage')
    (tag / "model_000500.pt").write_bytes(b"")
    age(tag)
    return tag


def catalog(tag: Path):  # noqa: ANN201 - (Catalog, Tag)
    cat = scan(tag.parent.parent)
    assess_metas(cat.checkpoints)
    return cat, cat.stage("base").tag(tag.name)


def test_structural_states(d3: Path) -> None:
    _, tag = catalog(d3)
    states = {c.step: c.state for c in tag.checkpoints}
    assert states == {100: State.COMPLETE, 200: State.CORRUPT, 300: State.BAD_META,
                      500: State.CORRUPT}
    assert "broken JSON" in " ".join(tag.checkpoint(300).problems)


def test_prune_keeps_the_newest_good_step(d3: Path) -> None:
    cat, tag = catalog(d3)
    plan = plan_rules(cat, [tag], Rules(keep_last=1))
    deleted = {i.checkpoint for i in plan.items}
    assert deleted == {"base_checkpoints/d3@200", "base_checkpoints/d3@300"}
    kept = next(p for p in plan.protected if p.checkpoint.endswith("@100"))
    assert kept.reason.startswith("newest good checkpoint") and "500 is damaged" in kept.reason
    assert not kept.overridable
    assert plan.verified and plan.kept_verdicts["base_checkpoints/d3@500"].startswith("damaged")
    unchecked = plan_rules(cat, [tag], Rules(keep_last=1), verify=False)
    assert {i.checkpoint for i in unchecked.items} >= {"base_checkpoints/d3@100"}
    assert any("not verified" in w for w in unchecked.warnings)


def test_a_broken_latest_can_be_deleted_with_an_explicit_confirmation(d3: Path) -> None:
    cat, tag = catalog(d3)
    plan = plan_selection(cat, [tag.latest])
    assert [i.path.name for i in plan.items] == ["model_000500.pt", "meta_000500.json",
                                                  "optim_000500_rank0.pt",
                                                  "optim_000500_rank1.pt"]
    assert plan.confirm and "latest step" in plan.confirm[0] and "model_000500.pt" in plan.confirm[0]
    assert "damaged" in plan.confirm[0]
    assert plan.confirm_keys == [tag.latest.key]  # the step each second yes is about


def test_the_second_yes_is_about_exact_keys_not_prefixes(d3: Path) -> None:
    """What the app keeps or drops after "delete the rest": keys, never text matching (a
    step 500's note must not catch step 5000)."""
    from dataclasses import replace

    from nanochat_ckpt_tui.tui.confirm_delete import latest_keys, without

    cat, tag = catalog(d3)
    plan = plan_selection(cat, [tag.latest])
    key = tag.latest.key
    longer = replace(plan.items[0], checkpoint=key + "0")  # e.g. …@500 and …@5000
    plan = replace(plan, items=[*plan.items, longer])
    assert latest_keys(plan) == [key]
    rest = without(plan, [key])
    assert [i.checkpoint for i in rest.items] == [key + "0"]
    assert rest.confirm == [] and rest.confirm_keys == []


def test_a_nan_in_the_latest_step_protects_the_last_good_one(tmp_path: Path) -> None:
    tag = tmp_path / "base" / "base_checkpoints" / "d2"
    for step in (100, 200):
        write_step(tag, step)

    def nan(sd: dict) -> None:
        sd["lm_head.weight"][1, 1] = float("nan")

    write_step(tag, 300, edit=nan)
    age(tag)
    cat, t = catalog(tag)
    plan = plan_rules(cat, [t], Rules(keep_last=1))
    assert {i.checkpoint for i in plan.items} == {"base_checkpoints/d2@100"}
    kept = next(p for p in plan.protected if p.checkpoint.endswith("@200"))
    assert "300 is unhealthy" in kept.reason and "NaN" in kept.reason
    # explicitly allowed to delete the (unhealthy) latest: the good 200 must still stay
    plan = plan_selection(cat, t.checkpoints, override=Override(latest=True))
    assert "base_checkpoints/d2@200" not in {i.checkpoint for i in plan.items}


def test_bad_metas_unreadable_models_and_missing_shards(tmp_path: Path) -> None:
    tag = tmp_path / "base" / "base_checkpoints" / "d2"
    for step in (100, 200, 300, 400, 500):
        write_step(tag, step)
    (tag / "meta_000100.json").write_text("[1, 2, 3]")
    meta = tag / "meta_000200.json"
    meta.write_text(meta.read_text().replace('"model_config": {', '"model_config": "nope", "x": {'))
    (tag / "model_000300.pt").write_bytes((tag / "meta_000300.json").read_bytes())  # not a zip
    for r in (0, 1):
        (tag / f"optim_000500_rank{r}.pt").unlink()
    age(tag)
    cat, t = catalog(tag)
    st = {c.step: c.state for c in t.checkpoints}
    assert st[100] is State.BAD_META and st[200] is State.BAD_META
    assert st[300] is State.CORRUPT
    assert st[400] is State.COMPLETE
    assert st[500] is State.OPTIM_INCOMPLETE  # the latest, with no shards: cannot resume
    # a model our reader refuses, found when it is read
    m400 = tag / "model_000400.pt"
    import zipfile

    with zipfile.ZipFile(m400, "w") as z:
        z.writestr("model_000400/data.pkl", b"\x80\x02cos\nsystem\nq\x00.")
    os.utime(m400, (HOUR_AGO, HOUR_AGO))
    cat, t = catalog(tag)
    ck = t.checkpoint(400)
    s = summarize(ck)
    assert s.model_error and ck.state is State.UNREADABLE


def test_a_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    tag = tmp_path / "base" / "base_checkpoints" / "d2"
    write_step(tag, 100)
    os.mkfifo(tag / "model_000200.pt")
    age(tag)
    cat, t = catalog(tag)
    ck = t.checkpoint(200)
    assert ck.state is State.CORRUPT and "not a regular file" in ck.problems[0]
    s = summarize(ck)
    assert s.model_error and "not a regular file" in s.model_error
