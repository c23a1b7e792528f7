"""The nanochat command that uses a checkpoint: resume training from it, evaluate it, chat with
it, fine-tune from it, with nanochat's real flags (scripts at nanochat HEAD, 2026-07).

Every command reads ``$NANOCHAT_BASE_DIR``, so it is set to the checkpoint's base dir. A run on
several GPUs goes through ``torchrun --standalone --nproc_per_node=N -m scripts.X -- ARGS``;
N is the run's world size (its optimizer shards per step) when known. A resume replays the
run's own arguments from the meta's ``user_config`` (``--resume-from-step`` and
``--model-tag`` set to this step and tag).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from .layout import Checkpoint
from .meta import MetaError, read_meta

KINDS = ("resume", "eval", "chat", "sft")
SOURCES = {"base_checkpoints": "base", "chatsft_checkpoints": "sft", "sft_checkpoints": "sft",
           "chatrl_checkpoints": "rl"}
_SKIP = {"resume_from_step", "model_tag"}  # set from the checkpoint itself


@dataclass(frozen=True)
class Command:
    kind: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def shell(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (env + " " if env else "") + shlex.join(self.argv)


class NoCommand(ValueError):
    """This kind of command does not apply to this checkpoint; the message says why."""


def _launcher(module: str, world: int) -> list[str]:
    if world > 1:
        return ["torchrun", "--standalone", f"--nproc_per_node={world}", "-m", module, "--"]
    return ["python", "-m", module]


def _flags(user_config: dict[str, Any]) -> list[str]:
    """argparse flags that reproduce ``user_config`` (store_true flags only when set)."""
    out = []
    for key, value in user_config.items():
        if key in _SKIP or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False:
            continue
        elif isinstance(value, int | float | str):
            out.append(f"{flag}={value}")
    return out


def command_for(ck: Checkpoint, kind: str, base_dir: str) -> Command:
    """The ``kind`` command (resume, eval, chat, sft) for this checkpoint. Raises
    :class:`NoCommand` when it does not apply (e.g. resuming without optimizer shards)."""
    source = SOURCES.get(ck.stage)
    if source is None:
        raise NoCommand(f"{ck.stage} is not a stage nanochat's scripts load from")
    env = {"NANOCHAT_BASE_DIR": base_dir}
    world = len(ck.ranks) or (1 if ck.optim else 0)
    tag, step = ck.tag, str(ck.step)
    if kind == "resume":
        if source != "base":
            raise NoCommand("only base training resumes (chat_sft/chat_rl start from a model)")
        if not ck.optim or not ck.meta:
            raise NoCommand("resuming needs the meta and every rank's optimizer shard of this "
                            "step")
        try:
            user_config = read_meta(ck.meta, ck.storage).user_config
        except MetaError as e:
            raise NoCommand(f"the meta is unreadable ({e.reason})") from None
        argv = _launcher("scripts.base_train", world) + _flags(user_config) + [
            f"--resume-from-step={step}", f"--model-tag={tag}"]
        note = "" if user_config else "the meta has no user_config: the run's arguments are unknown"
        return Command(kind, argv, env, note)
    if kind == "eval":
        if source == "base":
            return Command(kind, _launcher("scripts.base_eval", world) + [
                f"--model-tag={tag}", f"--step={step}"], env)
        return Command(kind, _launcher("scripts.chat_eval", world) + [
            "-i", source, "-g", tag, "-s", step], env)
    if kind == "chat":
        return Command(kind, ["python", "-m", "scripts.chat_cli", "-i", source, "-g", tag,
                              "-s", step], env,
                       "" if source != "base" else "a base model: it continues text")
    if kind == "sft":
        if source == "base":
            return Command(kind, _launcher("scripts.chat_sft", world) + [
                f"--model-tag={tag}", f"--model-step={step}"], env)
        if source == "sft":
            return Command("rl", _launcher("scripts.chat_rl", world) + [
                f"--model-tag={tag}", f"--model-step={step}"], env,
                "an SFT model fine-tunes further with RL (chat_rl)")
        raise NoCommand("an RL model is the last stage: nothing fine-tunes from it")
    raise NoCommand(f"unknown command kind {kind!r} (one of {', '.join(KINDS)})")
