"""What a check finds about a step besides its files' bytes: the meta nanochat would load
(it parses, its step is the file name's, its ``model_config`` matches the weights' shapes) and
the step's own state (optimizer shards missing, weights missing).
"""

from __future__ import annotations

import re
from typing import Any

from .check_report import UNHEALTHY, FileCheck, Finding
from .layout import Checkpoint, State
from .meta import meta_problem, read_meta

LAYER_RE = re.compile(r"(?:^|\.)transformer\.h\.(\d+)\.")


def meta_findings(ck: Checkpoint, models: list[FileCheck]) -> list[Finding]:
    out: list[Finding] = []
    if ck.meta is None:
        return out
    name = ck.meta.name
    problem = meta_problem(ck)
    if problem is not None:
        return [Finding(UNHEALTHY, name, "nanochat cannot load this meta: "
                        + problem.removeprefix(name + ": "))]
    meta = read_meta(ck.meta, ck.storage)
    cfg = meta.data.get("model_config")
    step = meta.data.get("step")
    if isinstance(step, int) and not isinstance(step, bool) and step != ck.step:
        out.append(Finding(UNHEALTHY, name, f"the meta says step {step}, the file name "
                           f"{ck.step}"))
    if cfg and models:
        out += config_findings(cfg, models[0])
    return out


def config_findings(cfg: dict[str, Any], model: FileCheck) -> list[Finding]:
    out: list[Finding] = []
    shapes = {t.name.removeprefix("_orig_mod."): t.shape for t in model.tensors}
    layers = {int(m.group(1)) for n in shapes if (m := LAYER_RE.search("." + n))}

    def num(k: str) -> int | None:
        v = cfg.get(k)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    n_layer, n_embd, vocab = num("n_layer"), num("n_embd"), num("vocab_size")
    if n_layer is not None and layers and max(layers) + 1 != n_layer:
        out.append(Finding(UNHEALTHY, model.name, f"model_config.n_layer is {n_layer} but the "
                           f"weights have {max(layers) + 1} layers (transformer.h.*)"))
    for tname in ("transformer.wte.weight", "lm_head.weight"):
        shape = shapes.get(tname)
        if shape is None or len(shape) != 2:
            continue
        rows, width = shape
        if n_embd is not None and width != n_embd:
            out.append(Finding(UNHEALTHY, model.name, f"model_config.n_embd is {n_embd} but "
                               f"{tname} is {rows}×{width}", tname))
        if vocab is not None:
            padded = -(-vocab // 64) * 64  # nanochat pads the vocab to a multiple of 64
            if rows not in (vocab, padded):
                out.append(Finding(UNHEALTHY, model.name, f"model_config.vocab_size is {vocab} "
                                   f"(padded {padded}) but {tname} has {rows} rows", tname))
    return out


def step_findings(ck: Checkpoint) -> list[Finding]:
    out = []
    if ck.state is State.OPTIM_INCOMPLETE or ck.state is State.ORPHAN:
        out += [Finding(UNHEALTHY, "", p) for p in ck.problems if "optimizer" in p or
                "without a model" in p]
    return out
