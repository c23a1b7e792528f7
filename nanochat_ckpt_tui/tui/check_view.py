"""The detail pane's view of a checkpoint's check: its verdict, its findings (file, tensor,
message) and every tensor's health (NaN, ±Inf, norm, abs max), from the check cache.

Pure functions of a :class:`~nanochat_ckpt_tui.store.check.CheckReport` (no widgets, no I/O).
"""

from __future__ import annotations

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ..fmt import ellipsize, human_bytes
from ..store.check_report import DAMAGED, GOOD, UNHEALTHY, CheckReport, Finding, TensorHealth
from ..store.layout import Checkpoint
from .palette import Palette

HEALTH_HEADS = ("tensor", "NaN", "±Inf", "norm", "abs max")
NAME_MIN = 12  # cells a tensor name keeps before the table crops instead


def verdict_style(verdict: str, pal: Palette) -> Style:
    return {GOOD: pal.success, DAMAGED: pal.error, UNHEALTHY: pal.error}.get(verdict,
                                                                           pal.warning)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_line(ck: Checkpoint, report: CheckReport | None, pal: Palette) -> Text:
    """The ``check`` row: the verdict and what it covers, or how to check the step."""
    if report is None:
        if not ck.openable:
            return Text("not checked: still being written (c checks it once it is whole)",
                        style=pal.muted)
        if ck.weights is None and not ck.optim:
            return Text("nothing to check: no model or optimizer file", style=pal.muted)
        return Text("not checked: press c", style=pal.muted)
    out = Text(report.verdict, style=verdict_style(report.verdict, pal) + Style(bold=True))
    probs = report.problems
    if probs:
        out.append(f" · {_plural(len(probs), 'problem')}")
    elif report.verdict == GOOD:
        crc = {fc.crc for fc in report.files}
        out.append(" · every byte matches its CRC, no NaN or Inf" if crc <= {"ok"} else
                   " · no NaN or Inf; some records have no CRC to compare")
    size = sum(fc.size for fc in report.files)
    out.append(f" · {_plural(len(report.files), 'file')}, {human_bytes(size)} checked",
               style="dim")
    return out


def _finding_line(f: Finding, pal: Palette) -> Text:
    note = f.severity == "note"
    out = Text()
    out.append(f.severity, style=pal.muted if note else verdict_style(f.severity, pal))
    out.append(" ")
    if f.file:
        out.append(f.file, style="bold")
        out.append(" ")
    if f.tensor:
        out.append(f.tensor, style=pal.accent)
        out.append(" ")
    out.append(f.message, style=pal.muted if note else "")
    return out


def findings_view(report: CheckReport, pal: Palette) -> Table | None:
    """Every finding of the step (problems first, then notes), a line each: severity, file,
    tensor and message, wrapped under themselves; None when there is none."""
    found = sorted(report.all_findings, key=lambda f: f.severity == "note")
    if not found:
        return None
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for f in found:
        note = f.severity == "note"
        grid.add_row(Text(" ·" if note else " !", style=pal.muted if note else
                          verdict_style(f.severity, pal)), _finding_line(f, pal))
    return grid


def _sci(v: float) -> str:
    return f"{v:.3e}"


def _short(name: str) -> str:
    """``_orig_mod.transformer.h.0.attn.c_q.weight`` → ``h.0.attn.c_q.weight``: the part
    that tells tensors apart keeps the room."""
    return name.removeprefix("_orig_mod.").removeprefix("transformer.")


def health_table(report: CheckReport, pal: Palette, width: int) -> Group | None:
    """A title, then a line per tensor of the weights file (name, NaN, ±Inf, norm, abs max)
    and the optimizer state's tensors that hold NaN or Inf; tensors with NaN or Inf in the
    error colour. Laid out by hand (a deep model has hundreds of tensors). None when nothing
    was checked."""
    weights = [(fc.name, t) for fc in report.files if fc.kind in ("model", "legacy")
               for t in fc.tensors]
    optim = [(fc.name, t) for fc in report.files if fc.kind == "optim" for t in fc.tensors]
    bad_optim = [(name, t) for name, t in optim if t.nonfinite]
    if not weights and not optim:
        return None
    rows: list[tuple[str, TensorHealth]] = [(_short(t.name), t) for _, t in weights]
    rows += [(f"{name.removesuffix('.pt')} {t.name}", t) for name, t in bad_optim]
    title = Text(f"Tensor health ({len(weights)} tensors", style="bold")
    if optim:
        shards = len({name for name, _ in optim})
        title.append(f"; optimizer state: {len(optim)} tensors in "
                     f"{_plural(shards, 'shard')}, "
                     + (f"{len(bad_optim)} with NaN or Inf, listed" if bad_optim
                        else "all finite"), style="dim")
    title.append(")", style="bold")
    out = Text(no_wrap=True, overflow="crop")
    if not rows:
        return Group(title)
    cells = [(name, f"{t.nan:,}", f"{t.posinf + t.neginf:,}", _sci(t.norm), _sci(t.absmax), t)
             for name, t in rows]
    w = [max(len(HEALTH_HEADS[i]), *(len(c[i]) for c in cells)) for i in range(1, 5)]
    name_w = max(NAME_MIN, min(max(len(c[0]) for c in cells), width - sum(w) - 5))

    def line(name: str, vals: tuple[str, ...], style: Style | str) -> None:
        out.append(f"{ellipsize(name, name_w):<{name_w}}", style=style)
        for v, wi in zip(vals, w, strict=True):
            out.append(f" {v:>{wi}}", style=style)
        out.append("\n")

    line(HEALTH_HEADS[0], HEALTH_HEADS[1:], "bold")
    for name, nan, inf, norm, absmax, t in cells:
        line(name, (nan, inf, norm, absmax), pal.error if t.nonfinite else "")
    out.rstrip()
    return Group(title, out)
