"""``show``'s output for people (rich markup and tables): imported only when no ``--json``
is given, so that ``show --json`` loads neither this code nor :mod:`..fmt`."""

from __future__ import annotations

import time
from types import SimpleNamespace

from ..fmt import human_age, human_bytes, human_count, plural
from .common import STATE_STYLE, VERDICT_BADGE, VERDICT_STYLE, _console, _num, plain_value
from .documents import schedule_json

TYPE_CHECKING = False  # (not imported at run time: start-up)
if TYPE_CHECKING:
    from typing import Any

    from ..store.check_report import CheckReport
    from ..store.summary import CheckpointSummary


def _pairs(items: dict[str, Any]) -> str:
    """``k=v, …`` with JSON-style values (``null``, ``true``), as the meta file has them
    (rich markup escaped)."""
    from rich.markup import escape

    return escape(", ".join(f"{k}={plain_value(v)}" for k, v in items.items()))


def _cols() -> Any:
    """The tables' columns (the table module is loaded for human output only)."""
    global _COLS
    if _COLS is None:
        from .table import Col

        _COLS = SimpleNamespace(
            FILE=[Col("file", fit=True, middle=True), Col("kind"), Col("size", "right"),
                  Col("age", "right", drop=1)],
            SHARD=[Col("file", fit=True, soft_min=22, middle=True), Col("rank", "right"),
                   Col("size", "right"), Col("form"), Col("groups", "right", drop=2),
                   Col("state tensors", "right", drop=1), Col("state bytes", "right")],
            GROUP=[Col("group", "right"), Col("kind"), Col("tensors", "right"),
                   Col("lr", "right"), Col("weight decay", "right"), Col("betas / momentum"),
                   Col("other", fit=True, soft_min=16, hard_min=8)],
            LAYER=[Col("group", fit=True, middle=True), Col("params", "right"),
                   Col("bytes", "right")],
            TENSOR=[Col("name", fit=True, soft_min=28, hard_min=12, middle=True),
                    Col("shape"), Col("dtype"), Col("params", "right", drop=1),
                    Col("bytes", "right", drop=2)],
            HEALTH=[Col("tensor", fit=True, soft_min=28, hard_min=12, middle=True),
                    Col("file", fit=True, soft_min=12, hard_min=6, middle=True, drop=3),
                    Col("NaN", "right"), Col("+Inf", "right"), Col("-Inf", "right"),
                    Col("norm", "right", drop=1), Col("abs max", "right", drop=2)])
    return _COLS


_COLS: Any = None


def print_table(con: Any, cols: Any, rows: Any, **kw: Any) -> None:
    from .table import print_table as table

    table(con, cols, rows, **kw)


GROUP_SHOWN = ("kind", "lr", "weight_decay", "betas", "momentum")


def _hyper(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(_hyper(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}" if v == v and abs(v) != float("inf") else plain_value(v)
    return plain_value(v)


def _group_rows(groups: list[Any]) -> list[list[Any]]:
    rows = []
    for n, g in enumerate(groups):
        h = g.hyper
        betas = h.get("betas")
        moves = _hyper(betas) if betas is not None else (
            f"momentum {_hyper(h['momentum'])}" if "momentum" in h else "—")
        other = " ".join(f"{k}={_hyper(v)}" for k, v in h.items() if k not in GROUP_SHOWN)
        rows.append([str(n), g.kind, str(g.n_params), _hyper(h["lr"]) if "lr" in h else "—",
                     _hyper(h["weight_decay"]) if "weight_decay" in h else "—", moves,
                     (other, "dim")])
    return rows


def _print_groups(con: Any, shards: list[Any]) -> None:
    """Each param group (kind, lr, weight decay, betas or momentum, tensors): once when every
    rank's shard has the same groups (the usual case), else per rank."""
    readable = [sh for sh in shards if sh.optimizer is not None and sh.optimizer.groups]
    if not readable:
        return
    sets: list[tuple[list[Any], list[Any]]] = []  # (groups, shards that have them)
    for sh in readable:
        key = [(g.kind, g.n_params, g.hyper) for g in sh.optimizer.groups]
        for groups, owners in sets:
            if [(g.kind, g.n_params, g.hyper) for g in groups] == key:
                owners.append(sh)
                break
        else:
            sets.append((sh.optimizer.groups, [sh]))
    for groups, owners in sets:
        if len(sets) == 1:
            where = "every shard" if len(owners) > 1 else owners[0].entry.name
        else:
            where = ", ".join(sh.entry.name for sh in owners)
        con.print()
        print_table(con, _cols().GROUP, _group_rows(groups),
                    title=f"[bold]param groups[/] ({plural(len(groups), 'group')}; {where})")



def _sci(v: float | None) -> str:
    return "—" if v is None else f"{v:.3e}"


def _count(n: int) -> str | tuple[str, str]:
    return (f"{n:,}", "bold red") if n else "0"


def _print_check(con: Any, ck: Any, report: CheckReport | None) -> None:
    """The cached check's verdict and findings, or how to check the step."""
    from rich.markup import escape

    if report is None:
        hint = ck.key if ck.step >= 0 else str(ck.weights.path if ck.weights else ck.dir)
        con.print(f"[bold]check[/] not checked: nanochat-ckpt check {escape(hint)}",
                  highlight=False, soft_wrap=True)
        return
    style = VERDICT_STYLE.get(report.verdict, "")
    con.print(f"[bold]check[/] [{style}]{report.verdict}[/] [dim](cached result of "
              f"{plural(len(report.files), 'file')})[/]", highlight=False)
    for f in report.all_findings:
        sev = "dim" if f.severity == "note" else VERDICT_STYLE.get(f.severity, "")
        con.print(f"  [{sev}]{f.severity}[/] {escape(str(f))}", highlight=False,
                  soft_wrap=True)


def _print_health(con: Any, report: CheckReport | None, with_tensors: bool) -> None:
    """Every tensor's health from the cached check (with ``--no-tensors``, only the tensors
    with NaN or Inf)."""
    if report is None:
        return
    rows = [[t.name, file, _count(t.nan), _count(t.posinf), _count(t.neginf), _sci(t.norm),
             _sci(t.absmax)] for file, t in report.tensors() if with_tensors or t.nonfinite]
    if rows:
        con.print()
        what = "health" if with_tensors else "tensors with NaN or Inf"
        print_table(con, _cols().HEALTH, rows, title=f"[bold]{what}[/] (from the check)")


LOSS_KEYS = ("train_loss", "train_loss_ema")


def _print_metrics(con: Any, metrics: dict[str, float | None]) -> None:
    """The meta's metrics; the train loss on its own line, as nanochat logs it (the debiased
    EMA), with the raw EMA from ``loop_state.smooth_train_loss`` beside it."""
    rest = [f"{k}={_num(v)}" for k, v in metrics.items() if k not in LOSS_KEYS]
    if rest:
        con.print("[bold]metrics[/] " + ", ".join(rest), highlight=False)
    if "train_loss" in metrics or "train_loss_ema" in metrics:
        raw = metrics.get("train_loss_ema")
        con.print(f"[bold]train loss (debiased EMA)[/] {_num(metrics.get('train_loss'))}"
                  + (f"  [dim](raw EMA {_num(raw)})[/]" if raw is not None else ""),
                  highlight=False)


def print_summary(s: CheckpointSummary, with_tensors: bool,
                  report: CheckReport | None = None) -> None:
    """The checkpoint for people: files, check, model, configs, shards, layers, tensors."""
    from rich.markup import escape

    con = _console()
    ck = s.checkpoint
    now = time.time()
    step = str(ck.step) if ck.step >= 0 else "?"
    badge = VERDICT_BADGE.get(report.verdict if report else "")
    badges = f"  [{badge[1]}]{badge[0]}[/]" if badge else ""
    badges += "  [bold cyan]latest[/]" if ck.is_latest else ""
    badges += "  [bold magenta]pinned[/]" if ck.pinned else ""
    con.print(f"[bold]{ck.stage.removesuffix('_checkpoints')} / {ck.tag} @ {step}[/]  "
              f"[{STATE_STYLE.get(ck.state.value, '')}]{ck.state.value}[/]{badges}",
              highlight=False, soft_wrap=True)
    if ck.note:
        con.print(f"[magenta]note:[/] {escape(ck.note)}", highlight=False)
    for p in ck.problems:
        con.print(f"  [yellow]![/] {p}", highlight=False)
    rows: list[list[Any]] = [
        [f.name + (" → link" if f.is_link else ""), f.kind.value, human_bytes(f.size),
         human_age(now - f.mtime)] for f in ck.files]
    rows.append([("total", "bold"), "", (human_bytes(ck.total_bytes), "bold"), ""])
    print_table(con, _cols().FILE, rows)
    _print_check(con, ck, report)
    con.print()
    if s.model_error:
        con.print(f"[bold red]model:[/] {s.model_error}", highlight=False)
    ms = s.model_summary
    if s.model and ms:
        dtypes = ", ".join(f"{k} {human_count(v)}" for k, v in ms.dtypes.items())
        con.print(f"[bold]params[/] {human_count(ms.params)} ({ms.params:,})   "
                  f"[bold]depth[/] {ms.depth} [dim]({ms.depth_source})[/]   "
                  f"[bold]tensors[/] {len(s.model.tensors)}   [bold]dtypes[/] {dtypes}")
        tied = "tied" if ms.tied else "untied"
        con.print(f"[bold]embedding[/] {list(ms.embedding_shape or [])}   "
                  f"[bold]lm_head[/] {list(ms.lm_head_shape or [])} ({tied})   "
                  f"[bold]layout[/] {s.model.layout}"
                  + ("  [dim](_orig_mod. prefix)[/]" if s.model.orig_mod_prefix else ""))
    if s.meta_error:
        con.print(f"[bold red]meta:[/] {s.meta_error}", highlight=False)
    if s.model_config:
        con.print("[bold]model_config[/] " + _pairs(s.model_config), highlight=False)
    if s.meta and s.meta.metrics:
        _print_metrics(con, s.meta.metrics)
    sched = schedule_json(s)
    if sched is not None:
        con.print(f"[bold]schedule[/] {sched['text']}", highlight=False)
    if s.meta and s.meta.user_config:
        con.print("[bold]user_config[/] [dim]" + _pairs(s.meta.user_config) + "[/]",
                  highlight=False)
    if s.shards:
        con.print()
        shard_rows: list[list[Any]] = []
        for sh in s.shards:
            o = sh.optimizer
            rank = str(sh.entry.rank if sh.entry.rank is not None else "-")
            if o is None:
                shard_rows.append([sh.entry.name, rank, human_bytes(sh.entry.size),
                                   (sh.error or "unreadable", "red"), "", "", ""])
                continue
            shard_rows.append([sh.entry.name, rank, human_bytes(sh.entry.size), o.form,
                               str(len(o.groups)), str(o.n_state_tensors),
                               human_bytes(o.state_bytes)])
        print_table(con, _cols().SHARD, shard_rows, title="[bold]optimizer shards[/]")
        _print_groups(con, s.shards)
    if ms and s.model:
        con.print()
        print_table(con, _cols().LAYER, [[g.name, f"{g.params:,}", human_bytes(g.nbytes)]
                                      for g in ms.others + ms.layers],
                    title="[bold]by layer[/]")
        if with_tensors:
            con.print()
            print_table(con, _cols().TENSOR, [
                [t.name, str(list(t.shape)), t.dtype, f"{t.numel:,}", human_bytes(t.nbytes)]
                for t in s.model.tensors], title="[bold]tensors[/]")
    _print_health(con, report, with_tensors)
