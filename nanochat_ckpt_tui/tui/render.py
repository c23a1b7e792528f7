"""Rich renderables for the detail pane: catalog, stage, tag and checkpoint views.

Pure functions of store objects (no widgets, no I/O), so they are cheap to call on the UI
thread once a worker has read what they need.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ..fmt import (
    ellipsize,
    fmt_duration,
    fmt_metric,
    human_age,
    human_bytes,
    human_count,
    sparkline,
)
from ..store.check_report import CheckReport
from ..store.layout import Catalog, Checkpoint, FileEntry, Stage, State, Tag
from ..store.schedule import schedule_of
from ..store.summary import CheckpointSummary, MetricPoint, ModelSummary
from ..store.trash import TrashUsage
from .check_view import check_line, findings_view, health_table
from .palette import Palette, badges
from .plot import line_chart

MAX_CONFIG_ITEMS = 40
SHORT_DTYPES = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16",
                "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8"}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _kv(rows: list[tuple[str, RenderableType | str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for k, v in rows:
        grid.add_row(k, v)
    return grid


def _title(text: str, pal: Palette) -> Text:
    return Text(text, style=pal.primary)


# how the detail pane, the tag plots and the diff name a metric (others: their key); the
# train loss is what nanochat logs, the debiased EMA (train_loss_ema, the raw value, is only
# in the JSON)
METRIC_LABELS = {"train_loss": "train loss (debiased EMA)"}
HIDDEN_METRICS = frozenset({"train_loss_ema"})


def metric_label(key: str) -> str:
    return METRIC_LABELS.get(key, key)


def _badge_text(ck: Checkpoint, pal: Palette, archived: bool = False,
                verdict: str | None = None) -> Text:
    out = Text()
    for word, style in badges(ck, pal, archived, verdict):
        out.append(" ")
        out.append(f"[{word}]", style=style)
    return out


def _config(cfg: dict[str, Any]) -> Text:
    items = list(cfg.items())
    text = Text()
    for i, (k, v) in enumerate(items[:MAX_CONFIG_ITEMS]):
        if i:
            text.append("  ")
        text.append(f"{k}=", style="dim")
        text.append(str(v)[:60])
    if len(items) > MAX_CONFIG_ITEMS:
        text.append(f"  … {len(items) - MAX_CONFIG_ITEMS} more", style="dim")
    return text


def _problems(problems: list[str], pal: Palette) -> Text:
    text = Text()
    for i, p in enumerate(problems):
        if i:
            text.append("\n")
        text.append("! ", style=pal.warning)
        text.append(p)
    return text


def _cells(out: Text, cells: list[tuple[str | Text, int, bool]], gap: int = 2) -> None:
    """Append one line of cells: (text, width, right-aligned), ``gap`` cells apart, after a
    leading space."""
    out.append(" ")
    for i, (cell, width, right) in enumerate(cells):
        if i:
            out.append(" " * gap)
        text = cell if isinstance(cell, Text) else Text(cell)
        pad = " " * max(0, width - text.cell_len)
        if right:
            out.append(pad)
            out.append_text(text)
        else:
            out.append_text(text)
            if i < len(cells) - 1:
                out.append(pad)
    out.append("\n")


# ------------------------------------------------------------------------------------------
# catalog and stage


def trash_text(trash: TrashUsage | None, pal: Palette) -> Text | None:
    """``trash: 12 files, 1.2 GB, freed when emptied (ctrl+p → Empty trash)``."""
    if trash is None or not trash.files:
        return None
    out = Text("trash: ", style="bold")
    out.append(f"{plural(trash.files, 'file')}, {human_bytes(trash.bytes)}", style=pal.warning)
    out.append(" waiting in .nanochat-ckpt-trash, freed when emptied (ctrl+p → Empty trash)",
               style="dim")
    return out


def overview_view(cat: Catalog, pal: Palette, display: str,
                  trash: TrashUsage | None = None) -> RenderableType:
    """What to show when the tree is empty or nothing is selected."""
    parts: list[RenderableType] = [_title(f"Base dir {display}", pal)]
    if not cat.exists:
        parts.append(Text("The directory does not exist (yet).", style=pal.warning))
    elif not cat.checkpoints:
        parts.append(Text("No checkpoints found: nanochat writes them under "
                          "<base>/base_checkpoints/<tag>/ and friends."))
    else:
        parts.append(Text(f"{len(cat.stages)} stages, {len(cat.tags)} tags, "
                          f"{len(cat.checkpoints)} checkpoints, "
                          f"{human_bytes(cat.total_bytes)}"))
    if (line := trash_text(trash, pal)) is not None:
        parts.append(line)
    if cat.notes:
        parts += [Text(""), Text("Scan notes", style="bold"),
                  _problems(cat.notes[:50], pal)]
    return Group(*parts)


NAME_MIN = 12  # cells a tag name keeps in a table before the table is stacked instead
TITLE_NAME_MIN = 6  # characters a tag name keeps in a title (longer titles wrap)
TREND_W = 12  # cells of a stage table's sparkline, at most
TREND_MIN = 5


def stage_view(stage: Stage, bpb: dict[str, float | None], pal: Palette,
               notes: list[str], width: int = 120,
               trash: TrashUsage | None = None) -> RenderableType:
    """A stage: one row per tag with steps, latest step, val_bpb, size and the val_bpb
    trend. Long names are shortened with an ellipsis, never a column dropped; when even
    that does not fit ``width``, each tag takes two lines instead."""
    default = stage.default_tag
    heads = ("steps", "latest", "val_bpb", "size")
    rows = [(tag, ("…" if tag.scanning else str(len(tag.checkpoints)),
                   str(tag.latest_step or "-"),
                   fmt_metric(latest_bpb(tag, bpb) if bpb else None),
                   human_bytes(tag.total_bytes)))
            for tag in stage.tags]  # (no val_bpb read yet: no step to look through)
    fixed = [max(len(h), *(len(r[1][i]) for r in rows)) if rows else len(h)
             for i, h in enumerate(heads)]
    marks = {tag.name: "*" if tag.name == default else "" for tag, _ in rows}
    name_w = max([3, *(len(t.name) + len(marks[t.name]) for t, _ in rows)])
    trend_w = max([TREND_MIN, *(min(TREND_W, len(t.checkpoints)) for t, _ in rows)])
    room = width - 1 - sum(fixed) - 2 * (len(heads) + 1)
    if name_w + trend_w > room:
        trend_w = max(TREND_MIN, room - name_w)
        name_w = max(min(name_w, NAME_MIN), room - trend_w)
    body: RenderableType
    if name_w + trend_w <= room:
        table = Text(no_wrap=True, overflow="crop")
        head = Text(style="bold")
        _cells(head, [("tag", name_w, False), *((h, w, True) for h, w in zip(heads, fixed,
                                                                           strict=True)),
                      ("trend", trend_w, False)])
        table.append_text(head)
        for tag, values in rows:
            mark = marks[tag.name]
            name = Text(ellipsize(tag.name, name_w - len(mark)))
            name.append(mark, style=pal.accent)
            trend = sparkline([bpb.get(c.key) for c in tag.checkpoints], width=trend_w) \
                if bpb else ""
            _cells(table, [(name, name_w, False),
                           *((v, w, True) for v, w in zip(values, fixed, strict=True)),
                           (Text(trend if trend.strip() else "", style=pal.accent), trend_w,
                            False)])
        table.rstrip()
        body = table
    else:  # too narrow for one line a tag: its name, then its values
        lines = []
        for tag, (steps, latest, val, size) in rows:
            mark = marks[tag.name]
            name = Text(" " + ellipsize(tag.name, max(1, width - 1 - len(mark))),
                        style="bold")
            name.append(mark, style=pal.accent)
            trend = sparkline([bpb.get(c.key) for c in tag.checkpoints],
                              width=min(TREND_W, max(TREND_MIN, width - 4)))
            values = Text(f"{steps} steps · latest {latest} · val_bpb {val} · {size}")
            if trend.strip():
                values.append(" · ")
                values.append(trend, style=pal.accent)
            lines += [name, Padding(values, (0, 0, 0, 3))]
        body = Group(*lines)
    parts: list[RenderableType] = [
        _title(f"Stage {stage.label}  ({stage.dirname})", pal),
        Text(f"{plural(len(stage.tags), 'tag')} · model {human_bytes(stage.model_bytes)} · optimizer "
             f"{human_bytes(stage.optim_bytes)} · total {human_bytes(stage.total_bytes)}"),
    ]
    if (line := trash_text(trash, pal)) is not None:
        parts.append(line)
    parts += [Text(""), body]
    if default:
        parts.append(Text(f"* {ellipsize(default, max(NAME_MIN, width - 40))}: the tag "
                          "nanochat loads when none is given", style="dim"))
    mine = [n for n in notes if f"/{stage.dirname}/" in n or n.endswith(f"/{stage.dirname}")]
    if mine:
        parts += [Text(""), Text("Scan notes", style="bold"), _problems(mine[:30], pal)]
    return Group(*parts)


def latest_bpb(tag: Tag, bpb: dict[str, float | None]) -> float | None:
    """val_bpb of the highest step that has one."""
    at = latest_bpb_at(tag, bpb)
    return at[0] if at is not None else None


def latest_bpb_at(tag: Tag, bpb: dict[str, float | None]) -> tuple[float, int] | None:
    """(val_bpb, step) of the highest step that has one."""
    for ck in reversed(tag.checkpoints):
        v = bpb.get(ck.key)
        if v is not None:
            return v, ck.step
    return None


def best_bpb(tag: Tag, bpb: dict[str, float | None]) -> tuple[float, int] | None:
    """(val_bpb, step) of the step with the lowest finite val_bpb (the earliest on a tie)."""
    best: tuple[float, int] | None = None
    for ck in tag.checkpoints:
        v = bpb.get(ck.key)
        if v is not None and math.isfinite(v) and (best is None or v < best[0]):
            best = (v, ck.step)
    return best


# ------------------------------------------------------------------------------------------
# tag


def _bpb_at(at: tuple[float, int] | None) -> str:
    return f"{fmt_metric(at[0])} (step {at[1]})" if at is not None else "-"


def tag_header(tag: Tag, pal: Palette, default: bool,
               bpb: dict[str, float | None] | None = None,
               width: int | None = None) -> RenderableType:
    """The tag's summary: steps, latest step, val_bpb (latest and best), disk, states. A
    name too long for one line is shortened in the title and given in full below."""
    steps = [c.step for c in tag.checkpoints]
    name = tag.name
    if width is not None:
        name = ellipsize(name, max(TITLE_NAME_MIN, width - len(f"Tag {tag.stage}/")))
    title = _title(f"Tag {tag.stage}/{name}", pal)
    if default:
        title.append("  (default: nanochat loads this tag)", style="dim")
    states: dict[str, int] = {}
    for c in tag.checkpoints:
        states[c.state.value] = states.get(c.state.value, 0) + 1
    rows: list[tuple[str, RenderableType | str]] = []
    if name != tag.name:
        rows.append(("tag", Text(tag.name, overflow="fold")))
    rows += [
        ("steps", "scanning… (this tag's dir is not listed yet)" if tag.scanning else
         f"{len(steps)}" + (f" ({steps[0]} … {steps[-1]})" if steps else "")),
        ("latest step", str(tag.latest_step) if tag.latest_step is not None else "-"),
    ]
    if bpb is not None:
        latest, best = latest_bpb_at(tag, bpb), best_bpb(tag, bpb)
        if latest is None and best is None:
            rows.append(("val_bpb", "-"))
        elif latest is not None and best is not None and latest[1] == best[1]:
            rows.append(("val_bpb", f"latest {_bpb_at(latest)}, the best"))
        else:
            rows.append(("val_bpb", f"latest {_bpb_at(latest)} · best {_bpb_at(best)}"))
    rows += [
        ("disk used", f"{human_bytes(tag.total_bytes)}  (model {human_bytes(tag.model_bytes)}"
                      f" · optimizer {human_bytes(tag.optim_bytes)}"
                      f" · other {human_bytes(tag.other_bytes)})"),
        ("states", ", ".join(f"{n} {s}" for s, n in states.items()) or "-"),
    ]
    return Group(title, _kv(rows))


STEP_HEADS = ("step", "val_bpb", "train_loss", "size", "age", "state")


def steps_table(tag: Tag, points: list[MetricPoint], now: float, pal: Palette,
                width: int) -> Text:
    """A line per step, latest first: step, val_bpb, train loss, size, age, state (and a
    meta file's error on a line of its own). Laid out by hand (a tag can have thousands of
    steps); when the columns do not fit ``width``, each step takes two lines instead."""
    by_step = {p.step: p for p in points}
    rows = []
    for ck in reversed(tag.checkpoints):
        p = by_step.get(ck.step)
        m = p.metrics if p else {}
        state = Text(ck.state.value, style=pal.muted if ck.state is State.COMPLETE else
                     pal.warning)
        rows.append((str(ck.step), fmt_metric(m.get("val_bpb")),
                     fmt_metric(m.get("train_loss")), human_bytes(ck.total_bytes),
                     human_age(now - ck.mtime), state, p.error if p else None))
    widths = [max(len(h), *(len(str(r[i])) for r in rows)) if rows else len(h)
              for i, h in enumerate(STEP_HEADS)]
    out = Text(no_wrap=True, overflow="crop")
    if 1 + sum(widths) + 2 * (len(widths) - 1) <= width:
        head = Text(style="bold")
        _cells(head, [(h, w, h != "state") for h, w in zip(STEP_HEADS, widths, strict=True)])
        out.append_text(head)
        for *cells, error in rows:
            _cells(out, [(c, w, i < 5) for i, (c, w) in enumerate(zip(cells, widths,
                                                                         strict=True))])
            if error:
                out.append_text(Text(f"   meta: {ellipsize(error, max(8, width - 9))}\n",
                                     style=pal.error))
    else:
        step_w = widths[0]
        for step, val, loss, size, age, state, error in rows:
            out.append(f" {step:>{step_w}}", style="bold")
            out.append(f"  val_bpb {val}  loss {loss}\n")
            out.append(f" {'':>{step_w}}  {size} · {age} · ")
            out.append_text(state)
            out.append("\n")
            if error:
                out.append_text(Text(f" {'':>{step_w}}  meta: "
                                     f"{ellipsize(error, max(8, width - step_w - 10))}\n",
                                     style=pal.error))
    out.rstrip()
    return out


def tag_view(tag: Tag, points: list[MetricPoint] | None, now: float, pal: Palette,
             width: int, default: bool,
             bpb: dict[str, float | None] | None = None) -> RenderableType:
    """Tag summary, charts of val_bpb and train loss over steps, and a steps table."""
    parts: list[RenderableType] = [tag_header(tag, pal, default, bpb, width), Text("")]
    if points is None:
        parts.append(Text("reading meta files…", style="dim"))
        return Group(*parts)
    chart_w = max(24, width - 2)
    for key in ("val_bpb", "train_loss"):
        series = [(float(p.step), p.metrics.get(key)) for p in points]
        if any(v is not None for _, v in series) or key == "val_bpb":
            parts += [line_chart(metric_label(key), series, chart_w, 5, pal.accent), Text("")]
    other = sorted({k for p in points for k in p.metrics} - {"val_bpb", "train_loss",
                                                              "min_val_bpb", "train_time"}
                   - HIDDEN_METRICS)
    for key in other:
        parts += [line_chart(key, [(float(p.step), p.metrics.get(key)) for p in points],
                             chart_w, 3, pal.accent), Text("")]
    parts.append(steps_table(tag, points, now, pal, width))
    if tag.other_files:
        parts += [Text(""), Text("Other files (not checkpoint names, never touched)",
                                 style="bold"), _files(tag.other_files, now)]
    return Group(*parts)


# ------------------------------------------------------------------------------------------
# checkpoint


def checkpoint_header(ck: Checkpoint, now: float, pal: Palette, archived: bool = False,
                      width: int | None = None, verdict: str | None = None) -> RenderableType:
    """What the scan alone tells: shown at once, before the files are read. A tag name
    too long for the title's line is shortened with an ellipsis."""
    badge_text = _badge_text(ck, pal, archived, verdict)
    tag = ck.tag
    if width is not None:
        rest = len(f"{ck.stage}/ · step {ck.step}") + badge_text.cell_len
        tag = ellipsize(tag, max(TITLE_NAME_MIN, width - rest))
    title = _title(f"{ck.stage}/{tag} · step {ck.step}", pal)
    title.append_text(badge_text)
    sizes = Text(f"model {human_bytes(ck.model_bytes)} · optimizer "
                 f"{human_bytes(ck.optim_bytes)}"
                 + (f" ({len(ck.optim)} shards)" if len(ck.optim) > 1 else "")
                 + f" · total {human_bytes(ck.total_bytes)} · written {_ago(now - ck.mtime)}")
    parts: list[RenderableType] = [title, sizes]
    if ck.pinned or ck.note:
        parts.append(Text(("pinned" if ck.pinned else "note") + (f": {ck.note}" if ck.note
                                                                 else ""), style=pal.accent))
    if ck.problems:
        parts.append(_problems(ck.problems, pal))
    return Group(*parts)


def _ago(seconds: float) -> str:
    age = human_age(seconds)
    return "just now" if age == "now" else f"{age} ago"


def _files(files: list[FileEntry], now: float) -> Table:
    table = Table(box=None, padding=(0, 1), show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(style="dim")
    table.add_column(justify="right")
    table.add_column(justify="right", style="dim")
    for f in files:
        table.add_row(f.name + (" →" if f.is_link else ""), f.kind.value,
                      human_bytes(f.size), human_age(now - f.mtime))
    return table


def _shards(s: CheckpointSummary, pal: Palette) -> Table:
    table = Table(box=None, padding=(0, 1), header_style="bold")
    table.add_column("shard", no_wrap=True)
    table.add_column("param groups", overflow="fold")
    table.add_column("state", justify="right", no_wrap=True)
    table.add_column("bytes", justify="right", no_wrap=True)
    for sh in s.shards:
        name = f"rank {sh.entry.rank}" if sh.entry.rank is not None else sh.entry.name
        if sh.error or sh.optimizer is None:
            table.add_row(name, Text(f"unreadable: {sh.error}", style=pal.error), "", "")
            continue
        opt = sh.optimizer
        groups = " · ".join(f"{g.kind} {g.n_params}" for g in opt.groups)
        form = "" if opt.form == "dict" else f" ({opt.form} form)"
        table.add_row(name, groups + form, str(opt.n_state_tensors),
                      human_bytes(opt.state_bytes))
    return table


def _tensor_rows(ms: ModelSummary) -> list[tuple[str, str, str, str, str, bool]]:
    rows = []
    groups = [(g, "") for g in ms.others] + [(g, g.name + ".") for g in ms.layers]
    for g, prefix in groups:
        rows.append((g.name, "", "", human_count(g.params), human_bytes(g.nbytes), True))
        for t in g.tensors:
            name = t.name.removeprefix("_orig_mod.")
            short = name[len(prefix):] if prefix and name.startswith(prefix) else name
            rows.append(("  " + short, "×".join(map(str, t.shape)) or "scalar",
                         SHORT_DTYPES.get(t.dtype, t.dtype), human_count(t.numel),
                         human_bytes(t.nbytes), False))
    return rows


def tensor_table(s: CheckpointSummary, width: int) -> Text:
    """Every tensor (name, shape, dtype, params, bytes), grouped: others, then each layer.

    Laid out by hand rather than with a Rich table: a deep model has hundreds of rows and
    this is rendered on every selection.
    """
    ms = s.model_summary
    assert ms is not None
    rows = _tensor_rows(ms)
    head = ("tensor", "shape", "dtype", "params", "bytes")
    w = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(1, 5)]
    name_w = max(12, min(max(len(r[0]) for r in rows), width - sum(w) - 5))
    out = Text(no_wrap=True, overflow="crop")

    def line(cells: tuple[str, ...], style: str, dim_cols: bool) -> None:
        name = cells[0] if len(cells[0]) <= name_w else cells[0][: name_w - 1] + "…"
        out.append(f"{name:<{name_w}}", style=style)
        out.append(f" {cells[1]:<{w[0]}} {cells[2]:<{w[1]}}", style="dim" if dim_cols else style)
        out.append(f" {cells[3]:>{w[2]}} {cells[4]:>{w[3]}}\n", style=style)

    line(head, "bold", False)
    for r in rows:
        line(r[:5], "bold" if r[5] else "", not r[5])
    out.rstrip()
    return out


def metrics_text(metrics: dict[str, float | None]) -> str:
    """``val_bpb 0.8297  train loss (debiased EMA) 2.4561  train_time 21m 00s``."""
    return "  ".join(
        f"{metric_label(k)} {fmt_duration(v) if k == 'train_time' else fmt_metric(v)}"
        for k, v in metrics.items() if k not in HIDDEN_METRICS)


def checkpoint_view(s: CheckpointSummary, now: float, pal: Palette, width: int = 80,
                    ck: Checkpoint | None = None, archived: bool = False,
                    report: CheckReport | None = None) -> RenderableType:
    """The whole checkpoint: header, check verdict, model, metrics, schedule, config,
    findings, files, shards, tensor health, tensors. ``ck``: the same checkpoint in a newer
    scan (its pin, note and badges), when the summary was read from an older one;
    ``report``: its check, from the check cache (None: not checked)."""
    ck = ck if ck is not None else s.checkpoint
    verdict = report.verdict if report is not None else None
    parts: list[RenderableType] = [checkpoint_header(ck, now, pal, archived, width, verdict),
                                   Text("")]
    ms = s.model_summary
    parts.append(_kv([("check", check_line(ck, report, pal))]))
    found = findings_view(report, pal) if report is not None else None
    if found is not None:  # (right under the verdict: what matters most comes first)
        parts.append(found)
    parts.append(Text(""))
    rows: list[tuple[str, RenderableType | str]] = []
    if ms is not None:
        rows.append(("params", f"{human_count(ms.params)} ({ms.params:,})"
                               f" · tensors {human_bytes(ms.nbytes)}"))
        rows.append(("depth", f"{ms.depth if ms.depth is not None else '?'}"
                              f" ({ms.depth_source})"))
        rows.append(("dtypes", " · ".join(f"{d} {human_count(n)}" for d, n in
                                          sorted(ms.dtypes.items(), key=lambda x: -x[1]))))
        emb = "×".join(map(str, ms.embedding_shape)) if ms.embedding_shape else "-"
        head = "×".join(map(str, ms.lm_head_shape)) if ms.lm_head_shape else "-"
        rows.append(("embedding", f"{emb} · lm_head {head}" + (" (tied)" if ms.tied else "")))
        if s.model and s.model.layout == "wrapper":
            rows.append(("layout", "older step_N.pt wrapper {model, step, config"
                         + (", optimizer}" if s.model.has_optimizer else "}")))
        if s.model and s.model.orig_mod_prefix:
            rows.append(("keys", "_orig_mod. prefix (saved from torch.compile)"))
    if s.model_error and ck.is_writing:
        rows.append(("model", Text("not opened while it is still being written; the details "
                                   "appear when the write finishes", style=pal.warning)))
    elif s.model_error:
        rows.append(("model", Text(f"could not be read: {s.model_error}", style=pal.error)))
    if s.meta is not None:
        metrics = metrics_text(s.meta.metrics)
        if metrics:
            rows.append(("metrics", metrics))
        sched = schedule_of(s.meta.user_config, ck.step) if ck.stage == "base_checkpoints" \
            else None
        if sched is not None:
            rows.append(("schedule", sched.describe()))
    elif s.meta_error:
        rows.append(("meta", Text(f"could not be read: {s.meta_error}", style=pal.error)))
    elif ck.meta is None:
        rows.append(("meta", Text("missing", style=pal.warning)))
    cfg = s.model_config
    if cfg:
        rows.append(("config", _config(cfg)))
    if s.meta is not None and s.meta.user_config:
        rows.append(("run args", _config(s.meta.user_config)))
    parts += [_kv(rows), Text(""), Text("Files", style="bold"), _files(ck.files, now)]
    if s.shards:
        parts += [Text(""), Text(f"Optimizer shards ({len(s.shards)})", style="bold"),
                  _shards(s, pal)]
    health = health_table(report, pal, width) if report is not None else None
    if health is not None:
        parts += [Text(""), health]
    if ms is not None:
        parts += [Text(""), Text(f"Tensors ({len(s.model.tensors) if s.model else 0}, "
                                 "grouped by layer)", style="bold"), tensor_table(s, width)]
    return Group(*parts)


def error_view(header: RenderableType, message: str, pal: Palette) -> RenderableType:
    return Group(header, Text(""), Text(message, style=pal.error))
