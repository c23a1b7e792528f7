"""``cmd TAG@STEP`` (nanochat's command for a checkpoint) and what ``show`` says about the
schedule and the train loss (debiased EMA, the raw EMA beside it)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from nanochat_ckpt_tui.cli import main
from nanochat_ckpt_tui.store.layout import scan
from nanochat_ckpt_tui.store.summary import debiased_train_loss, read_meta


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# cmd


def test_cmd_defaults_to_resume_for_base_steps(demo_master: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "cmd", "base/d4@3000", "--base-dir", str(demo_master))
    assert code == 0 and err == "" and out.count("\n") == 1
    argv = shlex.split(out)
    assert argv[0] == f"NANOCHAT_BASE_DIR={demo_master}"
    assert argv[1:5] == ["torchrun", "--standalone", "--nproc_per_node=2", "-m"]
    assert "scripts.base_train" in argv and "--resume-from-step=3000" in argv
    assert "--model-tag=d4" in argv and "--num-iterations=3000" in argv


def test_cmd_defaults_to_chat_for_sft_and_rl(demo_master: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for ref, source in (("sft/d4@600", "sft"), ("rl/d4", "rl")):
        code, out, _ = run(capsys, "cmd", ref, "--base-dir", str(demo_master))
        argv = shlex.split(out)
        assert code == 0 and argv[1:5] == ["python", "-m", "scripts.chat_cli", "-i"], out
        assert argv[5] == source


@pytest.mark.parametrize("flag, module, tail", [
    ("--eval", "scripts.base_eval", ["--model-tag=d4", "--step=2000"]),
    ("--chat", "scripts.chat_cli", ["-i", "base", "-g", "d4", "-s", "2000"]),
    ("--sft", "scripts.chat_sft", ["--model-tag=d4", "--model-step=2000"]),
    ("--resume", "scripts.base_train", ["--resume-from-step=2000", "--model-tag=d4"]),
])
def test_cmd_kinds(demo_master: Path, capsys: pytest.CaptureFixture[str], flag: str,
                   module: str, tail: list[str]) -> None:
    code, out, _ = run(capsys, "cmd", "base/d4@2000", flag, "--base-dir", str(demo_master))
    argv = shlex.split(out)
    assert code == 0 and module in argv and argv[-len(tail):] == tail


def test_cmd_json(demo_master: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "cmd", "base/d4@3000", "--chat", "--json", "--base-dir",
                         str(demo_master))
    doc = json.loads(out)
    assert code == 0 and err == ""
    assert set(doc) == {"schema", "kind", "argv", "env", "shell", "note"}
    assert doc["schema"] == "nanochat-ckpt.cmd/1" and doc["kind"] == "chat"
    assert doc["argv"][:3] == ["python", "-m", "scripts.chat_cli"]
    assert doc["env"] == {"NANOCHAT_BASE_DIR": str(demo_master)}
    assert shlex.split(doc["shell"]) == [f"NANOCHAT_BASE_DIR={demo_master}", *doc["argv"]]
    assert "continues text" in doc["note"]
    # the human form: the command on stdout alone, the note on stderr
    code, out, err = run(capsys, "cmd", "base/d4@3000", "--chat", "--base-dir",
                         str(demo_master))
    assert out.strip() == doc["shell"] and err.startswith("# ") and "continues text" in err
    # an SFT step "fine-tunes" with RL: the kind says so
    code, out, _ = run(capsys, "cmd", "sft/d4", "--sft", "--json", "--base-dir",
                       str(demo_master))
    assert json.loads(out)["kind"] == "rl" and "scripts.chat_rl" in json.loads(out)["argv"]


def test_cmd_by_path_sets_its_own_base_dir(demo_master: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "elsewhere"))
    code, out, _ = run(capsys, "cmd", str(demo_master / "base_checkpoints/d4/model_002500.pt"),
                       "--eval", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["env"]["NANOCHAT_BASE_DIR"] == str(demo_master)
    assert doc["argv"][-1] == "--step=2500"


@pytest.mark.parametrize("args, words", [
    (["rl/d4", "--sft"], "an RL model is the last stage"),
    (["sft/d4", "--resume"], "only base training resumes"),
    (["base/d6@1200"], "resuming needs the meta and every rank's optimizer shard"),
    (["mid/d4"], "not a stage nanochat's scripts load from"),
])
def test_cmd_that_does_not_apply_is_one_line(demo_master: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             args: list[str], words: str) -> None:
    code, out, err = run(capsys, "cmd", *args, "--base-dir", str(demo_master))
    assert code == 1 and out == "" and words in err
    assert err.count("\n") == 1 and err.startswith("nanochat-ckpt: error:")


def test_cmd_bad_refs(demo_master: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cmd", "base/d4@777", "--base-dir", str(demo_master))
    assert code == 2 and "no step 777" in err
    code, _, err = run(capsys, "cmd", "s3://bucket/runs/base/d4@3000")
    assert code == 2 and "local base dir" in err
    with pytest.raises(SystemExit) as e:  # argparse: one kind at a time
        main(["cmd", "base/d4", "--eval", "--chat"])
    assert e.value.code == 2


# --------------------------------------------------------------------------------------------
# show: schedule and train loss


def test_show_schedule_and_train_loss(demo_master: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ck = scan(demo_master).stage("base").tag("d4").checkpoint(2000)
    meta = read_meta(ck.meta)
    ema = meta.data["loop_state"]["smooth_train_loss"]
    code, out, _ = run(capsys, "show", "base/d4@2000", "--base-dir", str(demo_master),
                       "--no-tensors")
    assert code == 0
    assert "schedule step 2,000 / 3,000 · warmdown · lrm 0.54" in out
    loss = debiased_train_loss(ema, 2000)
    assert f"train loss (debiased EMA) {loss:.4f}  (raw EMA {ema:.4f})" in out
    assert "train_loss=" not in out and "train_loss_ema=" not in out  # labelled, not raw keys
    assert "val_bpb=" in out


def test_show_json_keeps_both_losses_and_the_schedule(demo_master: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    code, out, _ = run(capsys, "show", "base/d4@500", "--base-dir", str(demo_master), "--json",
                       "--no-tensors")
    doc = json.loads(out)
    ema = doc["meta"]["loop_state"]["smooth_train_loss"]
    assert doc["metrics"]["train_loss_ema"] == ema
    assert doc["metrics"]["train_loss"] == pytest.approx(debiased_train_loss(ema, 500))
    assert doc["schedule"] == {"phase": "constant", "horizon": 3000, "lrm": 1.0,
                               "progress": pytest.approx(500 / 3000),
                               "text": "step 500 / 3,000 · constant · lrm 1.00"}
    # not a base step: no base_train schedule
    code, out, _ = run(capsys, "show", "sft/d4@600", "--base-dir", str(demo_master), "--json",
                       "--no-tensors")
    assert json.loads(out)["schedule"] is None
    code, out, _ = run(capsys, "show", "sft/d4@600", "--base-dir", str(demo_master),
                       "--no-tensors")
    assert "schedule" not in out


def test_show_debiased_loss_of_an_early_step(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Early in a run the debiasing matters: the raw EMA is far below the logged loss."""
    tag = tmp_path / "base_checkpoints" / "d2"
    tag.mkdir(parents=True)
    (tag / "meta_000006.json").write_text(json.dumps({
        "step": 6, "model_config": {"n_layer": 2}, "user_config": {"num_iterations": 100},
        "loop_state": {"smooth_train_loss": 3.2319}}))
    code, out, _ = run(capsys, "show", "base/d2@6", "--base-dir", str(tmp_path), "--json",
                       "--no-tensors")
    doc = json.loads(out)
    assert doc["metrics"]["train_loss"] == pytest.approx(6.8975, abs=1e-3)
    assert doc["metrics"]["train_loss_ema"] == 3.2319
    assert doc["schedule"]["phase"] == "warmup"
    code, out, _ = run(capsys, "show", "base/d2@6", "--base-dir", str(tmp_path), "--no-tensors")
    assert "train loss (debiased EMA) 6.8975  (raw EMA 3.2319)" in out
    assert "schedule step 6 / 100 · warmup · lrm 0.17" in out
