"""Write a realistic nanochat base dir with real ``torch.save`` files (demo data and fixtures).

The parameter names, meta JSON and optimizer shards follow nanochat's current layout
(``../shared/NANOCHAT_FORMAT.md``), with its older variants: a ``mid_checkpoints`` tag from an
older model version with the single-name optimizer in list form, an ``step_N.pt`` wrapper tag,
an RL tag whose meta holds only ``model_config``, meta with bare ``Infinity``, a stray file and
a model without meta. Tensors are tiny: the whole demo is a few MB.

torch is imported inside the functions, never at module import.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

VOCAB = 256  # already a multiple of 64, as nanochat pads it


def model_config(depth: int, *, version: str = "head") -> dict[str, Any]:
    """nanochat's GPTConfig for a tiny model of this depth (n_embd = 8 * depth here)."""
    n_embd = 8 * depth
    cfg: dict[str, Any] = {
        "sequence_len": 256, "vocab_size": VOCAB, "n_layer": depth,
        "n_head": max(1, n_embd // 16), "n_kv_head": max(1, n_embd // 16), "n_embd": n_embd,
    }
    if version == "head":
        cfg["window_pattern"] = "SSSL"
    return cfg


def param_shapes(cfg: dict[str, Any], *, version: str = "head") -> OrderedDict[str, tuple]:
    """Parameter names and shapes as nanochat's GPT has them (``version`` 'head' or 'old')."""
    L, E, V = cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"]
    hd = E // cfg["n_head"]
    kv = cfg["n_kv_head"] * hd
    shapes: OrderedDict[str, tuple] = OrderedDict()
    if version == "head":
        shapes["resid_lambdas"] = (L,)
        shapes["x0_lambdas"] = (L,)
        shapes["smear_lambda"] = (1,)
        shapes["backout_lambda"] = (1,)
    shapes["transformer.wte.weight"] = (V, E)
    for i in range(L):
        p = f"transformer.h.{i}."
        shapes[p + "attn.c_q.weight"] = (cfg["n_head"] * hd, E)
        shapes[p + "attn.c_k.weight"] = (kv, E)
        shapes[p + "attn.c_v.weight"] = (kv, E)
        shapes[p + "attn.c_proj.weight"] = (E, E)
        if version == "head" and i % 2 == 1:
            shapes[p + "attn.ve_gate.weight"] = (cfg["n_kv_head"], 12)
        shapes[p + "mlp.c_fc.weight"] = (4 * E, E)
        shapes[p + "mlp.c_proj.weight"] = (E, 4 * E)
    if version == "head":
        for i in range(1, L, 2):
            shapes[f"value_embeds.{i}.weight"] = (V, kv)
        shapes["smear_gate.weight"] = (1, 24)
    shapes["lm_head.weight"] = (V, E)
    return shapes


def make_state_dict(cfg: dict[str, Any], *, step: int, total: int, seed: int = 0,
                    version: str = "head", low_precision: str | None = "bfloat16",
                    prefix: str = "") -> OrderedDict[str, Any]:
    """Weights that drift smoothly with ``step`` (so diffs between steps are meaningful)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    frac = step / max(total, 1)
    sd: OrderedDict[str, Any] = OrderedDict()
    for name, shape in param_shapes(cfg, version=version).items():
        if "lambda" in name:
            t = torch.ones(shape) * (1.0 - 0.3 * frac)
        else:
            w0 = torch.randn(shape, generator=gen) * 0.02
            drift = torch.randn(shape, generator=gen) * 0.01
            t = w0 + drift * frac
        if low_precision and (name == "transformer.wte.weight" or name.startswith("value_embeds")):
            t = t.to(getattr(torch, low_precision))
        sd[prefix + name] = t
    return sd


def make_optimizer_shard(sd: dict[str, Any], *, rank: int, world: int, step: int,
                         form: str = "dict") -> Any:
    """One rank's optimizer shard: AdamW moments for embeddings/lambdas, Muon momentum else."""
    import torch

    names = list(sd)
    adamw = [i for i, n in enumerate(names) if sd[n].dim() != 2 or "wte" in n or "lm_head" in n
             or "value_embeds" in n]
    muon = [i for i in range(len(names)) if i not in adamw]
    state: dict[int, dict[str, Any]] = {}
    for i in adamw + muon:
        if i % world != rank:
            continue
        shape = sd[names[i]].shape
        if i in adamw:
            state[i] = {"step": torch.tensor(float(step)),
                        "exp_avg": torch.randn(shape) * 1e-3,
                        "exp_avg_sq": torch.rand(shape) * 1e-6}
        else:
            state[i] = {"momentum_buffer": torch.randn(shape) * 1e-3}
    g_adamw = {"lr": 0.004, "betas": (0.8, 0.95), "eps": 1e-10, "weight_decay": 0.0,
               "initial_lr": 0.004, "params": adamw}
    g_muon = {"lr": 0.02, "momentum": 0.95, "nesterov": True, "ns_steps": 5,
              "initial_lr": 0.02, "params": muon}
    if form == "list":  # before 2026-01-29: [adamw.state_dict(), muon.state_dict()]
        return [{"state": {i: s for i, s in state.items() if i in adamw}, "param_groups": [g_adamw]},
                {"state": {i: s for i, s in state.items() if i in muon}, "param_groups": [g_muon]}]
    return {"state": state, "param_groups": [{"kind": "adamw", **g_adamw},
                                             {"kind": "muon", **g_muon}]}


def val_bpb_at(step: int, total: int, start: float = 1.35, end: float = 0.82) -> float:
    """A plausible falling validation bits-per-byte curve."""
    return round(end + (start - end) * math.exp(-4.0 * step / max(total, 1)), 4)


def base_meta(cfg: dict[str, Any], step: int, total: int, *, tag: str, evals: bool = True,
              save_every: int = 500) -> dict[str, Any]:
    vb = val_bpb_at(step, total) if evals else None
    return {
        "step": step,
        "val_bpb": vb,
        "model_config": cfg,
        "user_config": {"run": "demo", "depth": cfg["n_layer"], "max_seq_len": 256,
                        "num_iterations": total, "save_every": save_every, "model_tag": tag,
                        "device_batch_size": 32, "total_batch_size": 524288,
                        "embedding_lr": 0.3, "unembedding_lr": 0.004, "matrix_lr": 0.02,
                        "eval_every": 250 if evals else -1},
        "device_batch_size": 32,
        "max_seq_len": 256,
        "total_batch_size": 524288,
        "dataloader_state_dict": {"pq_idx": step // 400, "rg_idx": step % 17, "epoch": 1},
        "loop_state": {
            "min_val_bpb": vb if evals else math.inf,
            "smooth_train_loss": round(2.9 * val_bpb_at(step, total) + 0.05, 4),
            "total_training_time": round(step * 0.42, 1),
        },
    }


def save_checkpoint(tag_dir: Path, step: int, model: Any, meta: dict[str, Any] | None,
                    optim: list[Any] | None = None, *, old_optim_name: bool = False) -> list[Path]:
    """Write one step the way nanochat does: model, then meta, then one optimizer file per rank."""
    import torch

    tag_dir.mkdir(parents=True, exist_ok=True)
    written = [tag_dir / f"model_{step:06d}.pt"]
    torch.save(model, written[0])
    if meta is not None:
        written.append(tag_dir / f"meta_{step:06d}.json")
        with open(written[-1], "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)  # allow_nan: Infinity stays bare, as nanochat writes it
    for rank, shard in enumerate(optim or []):
        name = f"optim_{step:06d}.pt" if old_optim_name else f"optim_{step:06d}_rank{rank}.pt"
        written.append(tag_dir / name)
        torch.save(shard, written[-1])
    return written


def write_tag(tag_dir: Path, *, depth: int, steps: list[int], total: int, seed: int = 0,
              version: str = "head", world: int = 2, meta_kind: str = "base",
              evals: bool = True, prefix: str = "", optim_form: str = "dict",
              low_precision: str | None = "bfloat16") -> list[Path]:
    """Write a whole tag of checkpoints (the fixture workhorse)."""
    cfg = model_config(depth, version=version)
    written: list[Path] = []
    for step in steps:
        sd = make_state_dict(cfg, step=step, total=total, seed=seed, version=version,
                             prefix=prefix, low_precision=low_precision)
        if meta_kind == "base":
            meta: dict[str, Any] | None = base_meta(cfg, step, total, tag=tag_dir.name, evals=evals)
        elif meta_kind == "sft":
            meta = {"step": step, "val_bpb": val_bpb_at(step, total, 0.9, 0.7),
                    "model_config": cfg, "user_config": {"run": "demo", "model_tag": tag_dir.name,
                                                         "num_iterations": total}}
        elif meta_kind == "rl":
            meta = {"model_config": cfg}
        elif meta_kind == "old_mid":
            meta = {"step": step, "val_bpb": val_bpb_at(step, total, 1.0, 0.85),
                    "model_config": cfg, "user_config": {"run": "demo", "model_tag": tag_dir.name}}
        else:
            meta = None
        shards = [make_optimizer_shard(sd, rank=r, world=world, step=step, form=optim_form)
                  for r in range(world)] if world else None
        written += save_checkpoint(tag_dir, step, sd, meta, shards,
                                   old_optim_name=optim_form == "list")
    return written


def write_legacy_tag(tag_dir: Path, *, depth: int, steps: list[int], total: int,
                     seed: int = 0) -> list[Path]:
    """The older checkpoint-manager layout: ``step_N.pt`` = {'model', 'step', 'config', ...}."""
    import torch

    tag_dir.mkdir(parents=True, exist_ok=True)
    cfg = model_config(depth, version="old")
    out = []
    for step in steps:
        sd = make_state_dict(cfg, step=step, total=total, seed=seed, version="old",
                             low_precision=None)
        wrapper = {"model": sd, "step": step, "config": cfg,
                   "optimizer": make_optimizer_shard(sd, rank=0, world=1, step=step)}
        out.append(tag_dir / f"step_{step}.pt")
        torch.save(wrapper, out[-1])
    return out


def _age(paths: list[Path], seconds_ago: float, now: float) -> None:
    for p in paths:
        t = now - seconds_ago
        os.utime(p, (t, t))


class TorchMissing(RuntimeError):
    """Writing the demo needs PyTorch (real torch.save files); the message says how to get it."""


def import_torch() -> Any:
    """torch, or :class:`TorchMissing` with one clear line: not installed, or installed but
    failing to load (a CUDA build whose libraries are missing is common on GPU boxes)."""
    try:
        import torch
    except ModuleNotFoundError as e:
        if e.name not in ("torch", None) and not str(e.name).startswith("torch"):
            raise TorchMissing(f"PyTorch is installed but cannot load: it needs the module "
                               f"{e.name!r} ({e}); reinstall torch") from None
        raise TorchMissing(
            "the demo is written with real torch.save files and PyTorch is not installed: "
            "pip install torch (CPU-only, small: pip install torch --index-url "
            "https://download.pytorch.org/whl/cpu). Browsing, show, diff, check and prune "
            "never need it.") from None
    except (ImportError, OSError) as e:  # e.g. libcudart.so missing, a broken wheel
        raise TorchMissing(f"PyTorch is installed but fails to load ({type(e).__name__}: "
                           f"{str(e)[:200]}): the demo cannot be written; browsing, show, "
                           "diff, check and prune never need torch") from None
    return torch


def write_demo(base: str | os.PathLike[str], *, now: float | None = None) -> Path:
    """Write the demo base dir. Files get plausible past mtimes; nothing looks in flight.
    Raises :class:`TorchMissing` (one line) when torch is missing or broken."""
    torch = import_torch()
    torch.set_num_threads(1)
    base = Path(base)
    now = time.time() if now is None else now
    hour = 3600.0

    def tag(stage: str, name: str, steps: list[int], age0: float, gap: float, **kw: Any) -> Path:
        d = base / stage / name
        for i, step in enumerate(steps):
            files = write_tag(d, steps=[step], **kw)
            _age(files, age0 - i * gap, now)
        return d

    # base d4: six steps, 2 ranks, bf16 embeddings; a stray backup copy beside them
    d4 = tag("base_checkpoints", "d4", [500, 1000, 1500, 2000, 2500, 3000], 30 * hour, 2 * hour,
             depth=4, total=3000, seed=4)
    stray = d4 / "model_002000_backup.pt"
    stray.write_bytes((d4 / "model_002000.pt").read_bytes())
    _age([stray], 20 * hour, now)
    # base d6: eval off (val_bpb null, min_val_bpb Infinity); the last step crashed before meta
    d6 = tag("base_checkpoints", "d6", [400, 800], 14 * hour, 3 * hour,
             depth=6, total=1200, seed=6, evals=False)
    last = write_tag(d6, depth=6, steps=[1200], total=1200, seed=6, meta_kind="none", world=0)
    _age(last, 7 * hour, now)
    # old-style wrapper files from the original checkpoint-manager scripts
    old = write_legacy_tag(base / "base_checkpoints" / "d2_legacy", depth=2, steps=[1000, 2000],
                           total=2000, seed=2)
    _age(old, 400 * hour, now)
    # mid (existed 2025-10 .. 2026-01-31): older model version, old optimizer name and form
    tag("mid_checkpoints", "d4", [200, 400], 300 * hour, 1 * hour, depth=4, total=400, seed=5,
        version="old", world=1, meta_kind="old_mid", optim_form="list", low_precision=None)
    # chat SFT: torch.compile'd keys (_orig_mod. prefix)
    tag("chatsft_checkpoints", "d4", [300, 600], 5 * hour, 1 * hour, depth=4, total=600, seed=7,
        meta_kind="sft", prefix="_orig_mod.")
    # chat RL: meta holds only model_config, no optimizer files
    tag("chatrl_checkpoints", "d4", [100, 200], 2 * hour, 0.5 * hour, depth=4, total=200, seed=8,
        meta_kind="rl", world=0)
    # things in a base dir that are not checkpoints
    (base / "tokenizer").mkdir(exist_ok=True)
    (base / "tokenizer" / "tokenizer.pkl").write_bytes(b"not read by nanochat-ckpt")
    (base / "report").mkdir(exist_ok=True)
    (base / "report.md").write_text("# nanochat training report (demo)\n")
    return base
