"""Debiased train loss, the LR schedule position and nanochat's commands for a checkpoint."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from nanochat_ckpt_tui.store.commands import NoCommand, command_for
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.schedule import schedule_of
from nanochat_ckpt_tui.store.summary import Meta, debiased_train_loss


def test_train_loss_is_debiased_as_nanochat_logs_it() -> None:
    # real d2 run, vocab 1000 (ln 1000 = 6.91): the raw EMA rose, the loss fell
    assert debiased_train_loss(1.3123, 2) == pytest.approx(6.9068, abs=1e-3)
    assert debiased_train_loss(3.2319, 6) == pytest.approx(6.8975, abs=1e-3)
    m = Meta(Path("meta_000006.json"), {"step": 6, "loop_state": {"smooth_train_loss": 3.2319}})
    assert m.metrics["train_loss_ema"] == 3.2319
    assert m.metrics["train_loss"] == pytest.approx(6.8975, abs=1e-3)
    assert debiased_train_loss(1.0, 0) is None and debiased_train_loss(None, 5) is None


def test_schedule_matches_base_train() -> None:
    cfg = {"num_iterations": 3000, "warmup_steps": 40, "warmdown_ratio": 0.65,
           "final_lr_frac": 0.05}

    def lrm(it: int) -> float:  # scripts/base_train.py get_lr_multiplier, verbatim
        warmdown = round(0.65 * 3000)
        if it < 40:
            return (it + 1) / 40
        if it <= 3000 - warmdown:
            return 1.0
        progress = (3000 - it) / warmdown
        return progress * 1.0 + (1 - progress) * 0.05

    for it in (0, 10, 39, 40, 500, 1050, 1051, 2000, 2999, 3000):
        s = schedule_of(cfg, it)
        assert s is not None and s.lrm == pytest.approx(lrm(it)), it
    s = schedule_of(cfg, 2000)
    assert s.phase == "warmdown" and s.describe() == "step 2,000 / 3,000 · warmdown · lrm 0.54"
    assert schedule_of({"num_iterations": -1, "warmup_steps": 40}, 10).describe() == \
        "step 10 · warmup · horizon not recorded"
    assert "horizon not recorded" in schedule_of({"num_iterations": -1}, 500).describe()
    assert schedule_of({}, 5) is None


def test_commands_for_a_checkpoint(demo_master: Path) -> None:
    cat = scan(demo_master)
    ck = cat.stage("base").tag("d4").checkpoint(3000)
    resume = command_for(ck, "resume", str(demo_master))
    argv = shlex.split(resume.shell())
    assert argv[0] == f"NANOCHAT_BASE_DIR={demo_master}"
    assert argv[1:5] == ["torchrun", "--standalone", "--nproc_per_node=2", "-m"]
    assert "scripts.base_train" in argv and "--resume-from-step=3000" in argv
    assert "--model-tag=d4" in argv and "--depth=4" in argv and "--num-iterations=3000" in argv
    assert not any(a.startswith("--resume-from-step=-") for a in argv)
    ev = command_for(ck, "eval", "/b")
    assert ev.argv[-2:] == ["--model-tag=d4", "--step=3000"] and "scripts.base_eval" in ev.argv
    assert command_for(ck, "sft", "/b").argv[-2:] == ["--model-tag=d4", "--model-step=3000"]
    assert command_for(ck, "chat", "/b").argv[-6:] == ["-i", "base", "-g", "d4", "-s", "3000"]
    sft = cat.stage("sft").tags[0].latest
    assert command_for(sft, "chat", "/b").argv[3:5] == ["-i", "sft"]
    with pytest.raises(NoCommand, match="only base training resumes"):
        command_for(sft, "resume", "/b")
