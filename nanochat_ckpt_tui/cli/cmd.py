"""``cmd TAG@STEP``: the nanochat command that uses a checkpoint (resume training from it,
evaluate it, chat with it, fine-tune from it), ready to paste on the GPU box."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    _json_flag,
    _load,
    _print_json,
    _refuse_remote,
    resolve_local,
)

SCHEMA = "nanochat-ckpt.cmd/1"
KIND_FLAGS = {"resume": "resume pre-training from this step (base steps: the default)",
              "eval": "evaluate it (base_eval, or chat_eval for sft/rl)",
              "chat": "chat with it (chat_cli; the default for sft and rl steps)",
              "sft": "fine-tune from it (chat_sft from a base step, chat_rl from an sft step)"}


def default_kind(stage: str) -> str:
    """``resume`` for a base step, ``chat`` for the chat stages (sft, rl)."""
    return "resume" if stage == "base_checkpoints" else "chat"


def cmd_cmd(args: argparse.Namespace) -> int:
    from ..store.commands import NoCommand, command_for

    _refuse_remote(args.base_dir, "cmd")
    _refuse_remote(args.ref, "cmd")
    cat = _load(args.base_dir, args)
    ck = resolve_local(cat, args.ref)
    if ck.step < 0:
        raise CliError(f"{args.ref} is not a checkpoint step of a tag", EXIT_USAGE)
    kind = args.kind or default_kind(ck.stage)
    try:
        # the base dir the step is in (a PATH may be outside the default base dir)
        command = command_for(ck, kind, os.path.abspath(ck.dir.parent.parent))
    except NoCommand as e:
        raise CliError(f"{ck.key}: no {kind} command: {e}", EXIT_ERROR) from None
    if args.json:
        _print_json({"schema": SCHEMA, "kind": command.kind, "argv": command.argv,
                     "env": command.env, "shell": command.shell(), "note": command.note})
        return EXIT_OK
    if command.note:  # on stderr: stdout is the command alone, to paste or to eval
        print(f"# {command.note}", file=sys.stderr)
    print(command.shell())
    return EXIT_OK


def add_command(sub: Any, name: str) -> None:
    p = sub.add_parser(
        "cmd", help="nanochat's command for a step: resume, evaluate, chat, fine-tune",
        description="Print the nanochat command for this checkpoint, with the run's own "
                    "arguments (from the meta's user_config) and NANOCHAT_BASE_DIR set. "
                    "Default: --resume for a base step, --chat for sft and rl steps. A command "
                    "that does not apply (resuming without optimizer shards, an RL model "
                    "fine-tuned further) is a one-line error, exit code 1.")
    p.add_argument("ref", metavar="TAG@STEP|PATH", help="e.g. base/d20@5000, sft/d20@latest")
    kinds = p.add_mutually_exclusive_group()
    for kind, text in KIND_FLAGS.items():
        kinds.add_argument(f"--{kind}", dest="kind", action="store_const", const=kind,
                           help=text)
    p.add_argument("--base-dir", metavar="BASE_DIR")
    _json_flag(p)
    p.set_defaults(func=cmd_cmd, kind=None)
