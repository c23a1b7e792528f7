"""Command line: ``nanochat-ckpt [BASE_DIR]`` opens the app; subcommands are its script twin.

Every subcommand prints with rich, or a stable JSON document with ``--json`` (schemas in
README.md, each tagged with a ``"schema"`` key). Errors: one line on stderr, non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from .cli_archive import _storage_options, add_archive_commands
from .fmt import human_age, human_bytes, human_count
from .store import layout
from .store.layout import Catalog, Checkpoint, Tag
from .store.pins import PinsError, update_pin
from .store.prune import (
    Override,
    PruneError,
    PrunePlan,
    Rules,
    check_trash,
    execute,
    plan_rules,
)
from .store.refs import RefError, resolve, resolve_tag, resolve_url
from .store.storage import StorageError, is_url, redact
from .store.summary import CheckpointSummary, prefetch_metas, summarize, val_bpb_of

SUBCOMMANDS = ("ls", "show", "du", "diff", "prune", "pin", "unpin", "archive", "verify",
               "demo")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_NOTHING, EXIT_PARTIAL, EXIT_DECLINED = 3, 4, 5


class CliError(Exception):
    """An error for the user: printed as one line on stderr."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# formatting


def _num(v: float | None) -> str:
    if v is None:
        return "—"
    if math.isinf(v) or math.isnan(v):
        return str(v)
    return f"{v:.4f}"


def _json_float(v: float | None) -> float | str | None:
    """JSON has no Infinity/NaN: write them as the strings "Infinity"/"NaN"."""
    if v is None or math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _json_clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_clean(v) for v in obj]
    return obj


def _print_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(_json_clean(doc), indent=2, allow_nan=False) + "\n")


def _console():  # rich is imported only for human output
    from rich.console import Console

    return Console()


# --------------------------------------------------------------------------------------------
# JSON documents


def _path_text(path: Any, storage: Any) -> str:
    """A file's path as shown: local as is, remote as its URL (no password)."""
    return storage.display(path)


def checkpoint_json(ck: Checkpoint) -> dict[str, Any]:
    return {
        "step": ck.step,
        "key": ck.key,
        "state": ck.state.value,
        "problems": ck.problems,
        "latest": ck.is_latest,
        "val_bpb": val_bpb_of(ck),
        "model_bytes": ck.model_bytes,
        "optim_bytes": ck.optim_bytes,
        "meta_bytes": ck.meta_bytes,
        "total_bytes": ck.total_bytes,
        "mtime": ck.mtime,
        "optim_ranks": ck.ranks,
        "pinned": ck.pinned,
        "note": ck.note,
        "files": [{"name": f.name, "path": _path_text(f.path, ck.storage), "kind": f.kind.value,
                   "size": f.size,
                   "mtime": f.mtime, "rank": f.rank, "is_link": f.is_link} for f in ck.files],
    }


def tag_json(tag: Tag, with_checkpoints: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": tag.name,
        "path": _path_text(tag.path, tag.storage),
        "steps": len(tag.checkpoints),
        "latest_step": tag.latest_step,
        "total_bytes": tag.total_bytes,
        "model_bytes": tag.model_bytes,
        "optim_bytes": tag.optim_bytes,
        "meta_bytes": tag.meta_bytes,
        "other_bytes": tag.other_bytes,
        "other_files": [{"name": f.name, "size": f.size} for f in tag.other_files],
    }
    if with_checkpoints:
        doc["checkpoints"] = [checkpoint_json(c) for c in tag.checkpoints]
    return doc


def catalog_json(cat: Catalog, schema: str, with_checkpoints: bool = True) -> dict[str, Any]:
    return {
        "schema": schema,
        "base_dir": cat.location,  # a URL for a remote (read-only) base dir
        "exists": cat.exists,
        "scanned_at": cat.scanned_at,
        "total_bytes": cat.total_bytes,
        "model_bytes": cat.model_bytes,
        "optim_bytes": cat.optim_bytes,
        "meta_bytes": cat.meta_bytes,
        "free_bytes": cat.free_bytes,
        "disk_bytes": cat.disk_bytes,
        "stages": [{
            "dir": s.dirname,
            "label": s.label,
            "default_tag": s.default_tag,
            "total_bytes": s.total_bytes,
            "model_bytes": s.model_bytes,
            "optim_bytes": s.optim_bytes,
            "meta_bytes": s.meta_bytes,
            "other_files": [{"name": f.name, "size": f.size} for f in s.other_files],
            "tags": [tag_json(t, with_checkpoints) for t in s.tags],
        } for s in cat.stages],
        "notes": cat.notes,
    }


def summary_json(s: CheckpointSummary, with_tensors: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": "nanochat-ckpt.show/1", "checkpoint": checkpoint_json(
        s.checkpoint), "stage": s.checkpoint.stage, "tag": s.checkpoint.tag}
    doc["model_error"] = s.model_error
    doc["meta_error"] = s.meta_error
    doc["meta"] = s.meta.data if s.meta else None
    doc["metrics"] = s.meta.metrics if s.meta else {}
    doc["model_config"] = s.model_config
    ms = s.model_summary
    doc["model"] = None
    if s.model and ms:
        doc["model"] = {
            "layout": s.model.layout,
            "orig_mod_prefix": s.model.orig_mod_prefix,
            "params": ms.params,
            "tensor_bytes": ms.nbytes,
            "depth": ms.depth,
            "depth_source": ms.depth_source,
            "embedding_shape": ms.embedding_shape,
            "lm_head_shape": ms.lm_head_shape,
            "tied_embeddings": ms.tied,
            "dtypes": ms.dtypes,
            "layers": [{"name": g.name, "params": g.params, "bytes": g.nbytes}
                       for g in ms.layers],
            "others": [{"name": g.name, "params": g.params, "bytes": g.nbytes}
                       for g in ms.others],
            "wrapper_step": s.model.step,
            "non_tensor_keys": s.model.non_tensor_keys,
        }
        if with_tensors:
            doc["model"]["tensors"] = [
                {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "numel": t.numel,
                 "bytes": t.nbytes} for t in s.model.tensors]
    doc["optimizer_shards"] = [{
        "name": sh.entry.name, "rank": sh.entry.rank, "size": sh.entry.size, "error": sh.error,
        "form": sh.optimizer.form if sh.optimizer else None,
        "groups": [{"kind": g.kind, "params": g.n_params, "hyper": g.hyper}
                   for g in sh.optimizer.groups] if sh.optimizer else [],
        "state_tensors": sh.optimizer.n_state_tensors if sh.optimizer else None,
        "state_bytes": sh.optimizer.state_bytes if sh.optimizer else None,
    } for sh in s.shards]
    return doc


# --------------------------------------------------------------------------------------------
# commands


def _base_arg(base: str | None) -> str | None:
    """The base dir as given, else ``$NANOCHAT_BASE_DIR`` (which may be a URL too)."""
    return base or os.environ.get("NANOCHAT_BASE_DIR") or None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return _storage_options(getattr(args, "storage_option", None))
    except ValueError as e:
        raise CliError(str(e), EXIT_USAGE) from None


def _load(base: str | None, args: argparse.Namespace) -> Catalog:
    """Scan a local base dir, or list a URL (read-only) with the ``-o`` storage options."""
    base = _base_arg(base)
    try:
        return layout.scan(base, storage_options=_options(args) if base and is_url(base) else None)
    except StorageError as e:
        raise CliError(str(e)) from None


def _scan(base: str | None, args: argparse.Namespace) -> Catalog:
    cat = _load(base, args)
    if not cat.exists:
        raise CliError(f"base dir {cat.location} does not exist "
                       "(give BASE_DIR, set NANOCHAT_BASE_DIR, or try `nanochat-ckpt demo`)")
    return cat


def _refuse_remote(base: str | None, what: str) -> None:
    """Remote browsing is read-only: one clear line, before anything is scanned."""
    base = _base_arg(base)
    if base is not None and is_url(base):
        raise CliError(f"{what} needs a local base dir: {redact(base)} is a URL, and remote "
                       "browsing is read-only", EXIT_USAGE)


def _resolve(cat: Catalog | None, ref: str, args: argparse.Namespace) -> Checkpoint:
    """A reference: a URL naming one checkpoint (``s3://b/runs/base/d20@5000``), or a path or
    TAG[@STEP] in the base dir (scanned, from ``--base-dir``, on first need)."""
    if is_url(ref):
        try:
            return resolve_url(ref, storage_options=_options(args))
        except StorageError as e:
            raise CliError(str(e)) from None
        except RefError as e:
            raise CliError(str(e), EXIT_USAGE) from None
    if cat is None:
        cat = _load(args.base_dir, args)
    try:
        return resolve(cat, ref)
    except RefError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except OSError as e:
        raise CliError(f"{ref}: {e.strerror or e}") from None


STATE_STYLE = {"complete": "green", "writing": "bold yellow", "corrupt": "bold red",
               "orphan": "red", "no meta": "yellow", "optim incomplete": "yellow"}


def cmd_ls(args: argparse.Namespace) -> int:
    cat = _scan(args.base_dir, args)
    prefetch_metas(cat.checkpoints)  # every step's val_bpb is shown (concurrent where remote)
    if args.json:
        _print_json(catalog_json(cat, "nanochat-ckpt.ls/1"))
        return EXIT_OK
    from rich.table import Table

    con = _console()
    now = time.time()
    where = ("remote, read-only" if cat.read_only
             else f"{human_bytes(cat.free_bytes)} free")
    con.print(f"[bold]{cat.location}[/]  {human_bytes(cat.total_bytes)} in checkpoints, {where}",
              highlight=False)
    if not cat.stages:
        con.print("no *_checkpoints directories here")
    for stage in cat.stages:
        for tag in stage.tags:
            default = " (default)" if stage.default_tag == tag.name else ""
            table = Table(title=f"{stage.label} / {tag.name}{default}  ·  {len(tag.checkpoints)} "
                          f"steps  ·  {human_bytes(tag.total_bytes)}", title_justify="left",
                          box=None, pad_edge=False)
            for col, just in (("step", "right"), ("model", "right"), ("optim", "right"),
                              ("total", "right"), ("val_bpb", "right"), ("age", "right"),
                              ("state", "left")):
                table.add_column(col, justify=just)
            for ck in tag.checkpoints:
                style = STATE_STYLE.get(ck.state.value, "")
                state = f"[{style}]{ck.state.value}[/]"
                if ck.is_latest:
                    state += " [bold cyan]latest[/]"
                shards = f" ({len(ck.optim)}r)" if ck.optim else ""
                table.add_row(str(ck.step), human_bytes(ck.model_bytes),
                              human_bytes(ck.optim_bytes) + shards, human_bytes(ck.total_bytes),
                              _num(val_bpb_of(ck)), human_age(now - ck.mtime), state)
            for f in tag.other_files:
                table.add_row("[dim]other[/]", "", "", human_bytes(f.size), "", "",
                              f"[dim]{f.name}[/]")
            con.print(table)
            con.print()
    for note in cat.notes:
        con.print(f"[yellow]note:[/] {note}")
    return EXIT_OK


def cmd_du(args: argparse.Namespace) -> int:
    cat = _scan(args.base_dir, args)
    if args.json:
        _print_json(catalog_json(cat, "nanochat-ckpt.du/1", with_checkpoints=False))
        return EXIT_OK
    from rich.table import Table

    table = Table(title=cat.location, title_justify="left")
    for col in ("stage / tag", "steps", "model", "optimizer", "meta", "other", "total"):
        table.add_column(col, justify="left" if col == "stage / tag" else "right")

    def row(name: str, steps: int, node: Any, bold: bool = False) -> None:
        other = node.total_bytes - node.model_bytes - node.optim_bytes - node.meta_bytes
        total = human_bytes(node.total_bytes)
        table.add_row(name, str(steps), human_bytes(node.model_bytes),
                      human_bytes(node.optim_bytes), human_bytes(node.meta_bytes),
                      human_bytes(other), f"[bold]{total}[/]" if bold else total)

    for stage in cat.stages:
        row(f"[bold]{stage.label}[/]",
            sum(len(t.checkpoints) for t in stage.tags), stage, bold=True)
        for tag in stage.tags:
            row(f"  {tag.name}", len(tag.checkpoints), tag)
    table.add_section()
    row("[bold]total[/]", len(cat.checkpoints), cat, bold=True)
    con = _console()
    con.print(table)
    if cat.free_bytes is not None:
        con.print(f"free on this filesystem: [bold]{human_bytes(cat.free_bytes)}[/] of "
                  f"{human_bytes(cat.disk_bytes)}")
    for note in cat.notes:
        con.print(f"[yellow]note:[/] {note}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    ck = _resolve(None, args.ref, args)
    s = summarize(ck)
    if args.json:
        _print_json(summary_json(s, with_tensors=not args.no_tensors))
    else:
        _print_summary(s, with_tensors=not args.no_tensors)
    return EXIT_ERROR if s.model is None and ck.weights is not None else EXIT_OK


def _print_summary(s: CheckpointSummary, with_tensors: bool) -> None:
    from rich.table import Table

    con = _console()
    ck = s.checkpoint
    now = time.time()
    step = str(ck.step) if ck.step >= 0 else "?"
    latest = "  [bold cyan]latest[/]" if ck.is_latest else ""
    con.print(f"[bold]{ck.stage.removesuffix('_checkpoints')} / {ck.tag} @ {step}[/]  "
              f"[{STATE_STYLE.get(ck.state.value, '')}]{ck.state.value}[/]{latest}")
    for p in ck.problems:
        con.print(f"  [yellow]![/] {p}")
    files = Table(box=None, pad_edge=False, show_header=True)
    for col in ("file", "kind", "size", "age"):
        files.add_column(col, justify="right" if col in ("size", "age") else "left")
    for f in ck.files:
        files.add_row(f.name + (" [dim]→ link[/]" if f.is_link else ""), f.kind.value,
                      human_bytes(f.size), human_age(now - f.mtime))
    files.add_row("[bold]total[/]", "", f"[bold]{human_bytes(ck.total_bytes)}[/]", "")
    con.print(files)
    con.print()
    if s.model_error:
        con.print(f"[bold red]model:[/] {s.model_error}")
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
        con.print(f"[bold red]meta:[/] {s.meta_error}")
    if s.model_config:
        con.print("[bold]model_config[/] " + ", ".join(f"{k}={v}" for k, v in
                                                       s.model_config.items()))
    if s.meta and s.meta.metrics:
        con.print("[bold]metrics[/] " + ", ".join(f"{k}={_num(v)}" for k, v in
                                                  s.meta.metrics.items()))
    if s.meta and s.meta.user_config:
        uc = s.meta.user_config
        con.print("[bold]user_config[/] [dim]" + ", ".join(f"{k}={v}" for k, v in uc.items())
                  + "[/]")
    if s.shards:
        con.print()
        opt = Table(title="optimizer shards", title_justify="left", box=None, pad_edge=False)
        for col in ("file", "rank", "size", "form", "groups", "state tensors", "state bytes"):
            opt.add_column(col)
        for sh in s.shards:
            o = sh.optimizer
            if o is None:
                opt.add_row(sh.entry.name, str(sh.entry.rank), human_bytes(sh.entry.size),
                            f"[red]{sh.error}[/]", "", "", "")
                continue
            groups = ", ".join(f"{g.kind}×{g.n_params}" for g in o.groups)
            opt.add_row(sh.entry.name, str(sh.entry.rank if sh.entry.rank is not None else "-"),
                        human_bytes(sh.entry.size), o.form, groups, str(o.n_state_tensors),
                        human_bytes(o.state_bytes))
        con.print(opt)
    if ms and s.model:
        con.print()
        layers = Table(title="by layer", title_justify="left", box=None, pad_edge=False)
        for col in ("group", "params", "bytes"):
            layers.add_column(col, justify="left" if col == "group" else "right")
        for g in ms.others + ms.layers:
            layers.add_row(g.name, f"{g.params:,}", human_bytes(g.nbytes))
        con.print(layers)
        if with_tensors:
            con.print()
            tensors = Table(title="tensors", title_justify="left", box=None, pad_edge=False)
            for col in ("name", "shape", "dtype", "params", "bytes"):
                tensors.add_column(col, justify="right" if col in ("params", "bytes") else "left")
            for t in s.model.tensors:
                tensors.add_row(t.name, str(list(t.shape)), t.dtype, f"{t.numel:,}",
                                human_bytes(t.nbytes))
            con.print(tensors)


def _sci(v: float | None) -> str:
    return "—" if v is None else f"{v:.3e}"


def cmd_diff(args: argparse.Namespace) -> int:
    from .store.diff import DiffCancelled, diff
    from .store.ptfile import CheckpointError

    cat = None if is_url(args.a) and is_url(args.b) else _load(args.base_dir, args)
    a, b = _resolve(cat, args.a, args), _resolve(cat, args.b, args)
    for ck in (a, b):
        if ck.is_writing:
            raise CliError(f"{ck.key} is still being written; diff it when the write is done")
    progress = None
    bar = None
    if sys.stderr.isatty() and not args.quiet:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        bar = Progress("diff", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                       transient=True, console=_console_err())
        task = bar.add_task("diff", total=None)
        bar.start()

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
    try:
        report = diff(a, b, progress=progress)
    except CheckpointError as e:
        raise CliError(str(e)) from None
    except DiffCancelled:
        raise CliError("cancelled") from None
    finally:
        if bar is not None:
            bar.stop()
    if args.json:
        doc = report.to_json()
        if args.top:
            doc["tensors"] = sorted(doc["tensors"], key=lambda t: -(t["rel_change"] or 0))[
                :args.top]
        _print_json(doc)
        return EXIT_OK
    _print_diff(report, args.top or 15)
    return EXIT_OK


def _console_err():
    from rich.console import Console

    return Console(stderr=True)


def _print_diff(report: Any, top: int) -> None:
    from rich.table import Table

    con = _console()
    a, b = report.a, report.b
    con.print(f"[bold]A[/] {a.label}   [bold]B[/] {b.label}")
    parts = []
    if a.val_bpb is not None and b.val_bpb is not None:
        parts.append(f"val_bpb {a.val_bpb:.4f} → {b.val_bpb:.4f} ({b.val_bpb - a.val_bpb:+.4f})")
    if a.mtime and b.mtime:
        parts.append(f"{human_age(abs(b.mtime - a.mtime))} apart")
    if a.size is not None and b.size is not None:
        parts.append(f"size {human_bytes(a.size)} → {human_bytes(b.size)}")
    if parts:
        con.print("   ".join(parts))
    o = report.overall
    con.print(f"[bold]overall[/] rel change {_sci(o.rel_change)}  cosine "
              f"{'—' if o.cosine is None else f'{o.cosine:.6f}'}  max |B−A| "
              f"{_sci(o.max_abs_diff)}  over {o.n_tensors} tensors, "
              f"{human_bytes(report.bytes_total)} read in {report.elapsed_s:.2f}s")
    if report.identical:
        con.print("[green]identical[/]: same keys, shapes, dtypes and values")
    layers = Table(title="relative change by layer", title_justify="left", box=None,
                   pad_edge=False)
    for col in ("group", "rel change", "", "cosine"):
        layers.add_column(col)
    groups = report.layers + [k for k in report.kinds if k.name in (
        "wte", "value_embeds", "lm_head", "lambdas")]
    peak = max((g.rel_change or 0 for g in groups), default=0) or 1
    for g in groups:
        r = g.rel_change or 0
        layers.add_row(g.name, _sci(g.rel_change), "█" * max(0, round(24 * r / peak)),
                       "—" if g.cosine is None else f"{g.cosine:.6f}")
    con.print(layers)
    tensors = Table(title=f"top {top} tensors by relative change", title_justify="left",
                    box=None, pad_edge=False)
    tensors.add_column("tensor", overflow="fold")
    for col in ("rel change", "cosine", "max |B−A|", "NaN/Inf A→B"):
        tensors.add_column(col, no_wrap=True)
    for t in sorted(report.tensors, key=lambda t: -(t.rel_change or 0))[:top]:
        nonfinite = f"{t.nan_a + t.inf_a}→{t.nan_b + t.inf_b}" if (
            t.nan_a or t.inf_a or t.nan_b or t.inf_b) else ""
        tensors.add_row(t.name, _sci(t.rel_change),
                        "—" if t.cosine is None else f"{t.cosine:.6f}", _sci(t.max_abs_diff),
                        f"[red]{nonfinite}[/]" if nonfinite else "")
    con.print(tensors)
    for k in report.only_a:
        con.print(f"[red]- only in A[/] {k.name} {list(k.shape)} {k.dtype}")
    for k in report.only_b:
        con.print(f"[green]+ only in B[/] {k.name} {list(k.shape)} {k.dtype}")
    for c in report.changed:
        con.print(f"[yellow]~ changed[/] {c.name} {list(c.shape_a)} {c.dtype_a} → "
                  f"{list(c.shape_b)} {c.dtype_b}")
    if report.meta_changes:
        con.print("[bold]meta differences[/]")
        for m in report.meta_changes:
            con.print(f"  {m.path}: {m.a!r} → {m.b!r}")
    for n in report.notes:
        con.print(f"[dim]note: {n}[/]")


def _print_plan(plan: PrunePlan) -> None:
    """The plan, grouped by checkpoint, every file named in full: nothing is abbreviated."""
    con = _console()
    base = plan.base_dir
    if plan.items:
        con.print(f"[bold]would delete {len(plan.items)} files, {human_bytes(plan.bytes_freed)}"
                  f"[/] ({plan.bytes_freed:,} bytes) under {base}:")
        groups: dict[str, list] = {}
        for item in plan.items:
            groups.setdefault(item.checkpoint, []).append(item)
        for key, items in groups.items():
            size = sum(i.size for i in items)
            con.print(f"  [bold]{key}[/]  {human_bytes(size)}  [dim]{items[0].reason}[/]")
            for item in items:
                try:
                    shown = str(item.path.relative_to(base))
                except ValueError:
                    shown = str(item.path)
                con.print(f"    {shown}  [dim]{item.kind}[/]  {human_bytes(item.size)}",
                          overflow="fold", soft_wrap=True)
    else:
        con.print("nothing to delete")
    for p in plan.protected:
        how = "" if p.overridable else " [dim](cannot be overridden)[/]"
        con.print(f"[green]protected[/] {p.checkpoint}: {p.reason}{how}")
    for w in plan.warnings:
        con.print(f"[bold yellow]warning:[/] {w}")


def _confirm(question: str) -> bool:
    """Ask on stdout, read one line from stdin; anything but y/yes (or no stdin) is a no."""
    sys.stdout.write(question)
    sys.stdout.flush()
    try:
        answer = sys.stdin.readline() if sys.stdin else ""
    except (OSError, ValueError):
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def cmd_prune(args: argparse.Namespace) -> int:
    _refuse_remote(args.base_dir, "prune")
    cat = _scan(args.base_dir, args)
    try:
        tags = [resolve_tag(cat, spec) for spec in args.tags]
        rules = Rules(args.keep_last, args.keep_every, args.keep_best, args.optimizer_only)
        override = Override(latest=args.allow_latest, pinned=args.allow_pinned)
        plan = plan_rules(cat, tags, rules, override)
        trash = check_trash(Path(args.trash), cat.base_dir) if args.trash else None
    except (RefError, PruneError) as e:
        raise CliError(str(e), EXIT_USAGE) from None
    if args.dry_run or plan.is_empty or not args.yes:
        if args.json and (args.dry_run or plan.is_empty):
            _print_json(plan.to_json())
        elif not args.json:
            _print_plan(plan)
    if plan.is_empty:
        return EXIT_NOTHING
    if args.dry_run:
        return EXIT_OK
    if not args.yes:
        if args.json:
            raise CliError("--json without --dry-run needs --yes (there is no prompt in JSON "
                           "mode)", EXIT_USAGE)
        verb = "Move to trash" if trash else "Delete"
        sys.stdout.flush()
        if not _confirm(f"{verb} {len(plan.items)} files, {human_bytes(plan.bytes_freed)}? "
                        "[y/N] "):
            print("nothing deleted", file=sys.stderr)
            return EXIT_DECLINED
    result = execute(plan, trash=trash)
    if args.json:
        _print_json({**result.to_json(), "plan": plan.to_json()})
    else:
        con = _console()
        for r in result.results:
            if r.status not in ("removed", "trashed"):
                con.print(f"[yellow]{r.status}[/] {r.path}: {r.detail}")
        con.print(f"{result.count('removed')} removed, {result.count('trashed')} trashed, "
                  f"{result.count('skipped')} skipped, {result.count('failed')} failed; "
                  f"freed {human_bytes(result.bytes_freed)}"
                  + (f", moved {human_bytes(result.bytes_trashed)} to {trash} (freed when you "
                     "empty it)" if trash else ""))
    return EXIT_OK if result.ok else EXIT_PARTIAL


def cmd_pin(args: argparse.Namespace) -> int:
    _refuse_remote(args.base_dir, args.command)
    if is_url(args.ref):
        _refuse_remote(args.ref, args.command)
    cat = layout.scan(args.base_dir)
    try:
        ck = resolve(cat, args.ref)
    except RefError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    if ck.step < 0:
        raise CliError(f"{args.ref} is not a checkpoint step of a tag", EXIT_USAGE)
    pinned = args.command == "pin"
    try:
        entry = update_pin(ck.dir, ck.step, pinned=pinned, note=args.note,
                           clear_note=not pinned and args.clear_note)
    except PinsError as e:
        raise CliError(str(e)) from None
    note = f" ({entry.note})" if entry.note else ""
    print(f"{'pinned' if entry.pinned else 'unpinned'} {ck.key}{note}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .store.demo import write_demo

    target = Path(args.dir).expanduser()
    if target.exists() and any(target.iterdir()):
        raise CliError(f"{target} exists and is not empty: give a new directory", EXIT_USAGE)
    started = time.perf_counter()
    write_demo(target)
    took = time.perf_counter() - started
    size = layout.scan(target).total_bytes
    print(f"wrote a demo base dir to {target} ({human_bytes(size)} in {took:.1f}s)")
    print(f"open it with: nanochat-ckpt {target}")
    return EXIT_OK


def run_tui(args: argparse.Namespace) -> int:
    try:
        from .tui.app import run_app
    except ImportError as e:
        raise CliError(f"the interactive app is not available in this build ({e}); "
                       "the subcommands ls, show, du and demo work") from None
    if args.base_dir and is_url(args.base_dir):
        base: Path | str | None = args.base_dir  # browsed read-only through fsspec
    else:
        base = Path(args.base_dir).expanduser() if args.base_dir else None
    try:
        options = _storage_options(args.storage_option)
    except ValueError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    return run_app(base, demo=args.demo, poll=args.poll, read_only=args.read_only,
                   storage_options=options or None) or EXIT_OK


# --------------------------------------------------------------------------------------------
# parsing


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON document (see README)")


def _remote_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option when the base dir is a URL (read-only), e.g. "
                        "endpoint_url=http://…; credentials are better left to the backend's "
                        "env vars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanochat-ckpt",
        description="See, compare and prune nanochat checkpoints. Without a subcommand, opens "
                    "the interactive app on BASE_DIR (default: $NANOCHAT_BASE_DIR, else "
                    "~/.cache/nanochat).")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    p = sub.add_parser("ls", help="stages, tags and steps with sizes, val_bpb and state")
    p.add_argument("base_dir", nargs="?", metavar="BASE_DIR|URL")
    _json_flag(p)
    _remote_flag(p)
    p.set_defaults(func=cmd_ls)
    p = sub.add_parser("show", help="one checkpoint: summary, optimizer shards, tensors")
    p.add_argument("ref", metavar="PATH|TAG[@STEP]|URL",
                   help="a file, or a tag such as d20, base/d20@5000, sft/d20@latest, or a URL "
                        "such as s3://bucket/runs/base/d20@5000")
    p.add_argument("--base-dir", metavar="BASE_DIR|URL")
    p.add_argument("--no-tensors", action="store_true", help="leave out the tensor table")
    _json_flag(p)
    _remote_flag(p)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("du", help="disk used by stage and tag, model vs optimizer, free disk")
    p.add_argument("base_dir", nargs="?", metavar="BASE_DIR|URL")
    _json_flag(p)
    _remote_flag(p)
    p.set_defaults(func=cmd_du)
    p = sub.add_parser("diff", help="how the weights moved between two checkpoints")
    p.add_argument("a", metavar="A", help="PATH, TAG[@STEP] or URL")
    p.add_argument("b", metavar="B", help="PATH, TAG[@STEP] or URL")
    p.add_argument("--top", type=int, metavar="N", help="show (or with --json keep) the N "
                   "tensors that changed most")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--base-dir", metavar="BASE_DIR|URL")
    _json_flag(p)
    _remote_flag(p)
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("prune", help="delete old checkpoints by rules (asks first)",
                       description="Keep what the rules keep in each TAG; delete the rest (or "
                       "only their optimizer shards). Exit codes: 0 done (or dry run), 3 nothing "
                       "to do, 4 partly failed or skipped, 5 declined at the prompt.")
    p.add_argument("tags", nargs="+", metavar="TAG")
    p.add_argument("--keep-last", type=int, metavar="N", help="keep the last N steps")
    p.add_argument("--keep-every", type=int, metavar="K",
                   help="keep steps that are multiples of K")
    p.add_argument("--keep-best", type=int, metavar="M", help="keep the M lowest val_bpb")
    p.add_argument("--optimizer-only", action="store_true",
                   help="for the steps not kept, delete only the optimizer shards")
    p.add_argument("--allow-latest", action="store_true",
                   help="allow deleting the latest step of a tag")
    p.add_argument("--allow-pinned", action="store_true", help="allow deleting pinned steps")
    p.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.add_argument("--trash", metavar="DIR", help="move files here (same filesystem)")
    p.add_argument("--base-dir", metavar="BASE_DIR")
    _json_flag(p)
    p.set_defaults(func=cmd_prune)
    for name, helptext in (("pin", "pin a checkpoint (protects it from pruning)"),
                           ("unpin", "unpin a checkpoint")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("ref", metavar="TAG@STEP")
        p.add_argument("--note", metavar="TEXT", help="attach a short note")
        if name == "unpin":
            p.add_argument("--clear-note", action="store_true", help="also remove the note")
        p.add_argument("--base-dir", metavar="BASE_DIR")
        p.set_defaults(func=cmd_pin, clear_note=False)
    add_archive_commands(sub)
    p = sub.add_parser("demo", help="write a realistic demo base dir (real torch.save files)")
    p.add_argument("dir", nargs="?", default="nanochat-ckpt-demo", metavar="DIR")
    p.set_defaults(func=cmd_demo)
    return parser


def build_app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanochat-ckpt",
        description="Open the interactive app. Subcommands: "
                    + ", ".join(SUBCOMMANDS) + " (nanochat-ckpt SUBCOMMAND --help).")
    parser.add_argument("base_dir", nargs="?", metavar="BASE_DIR")
    parser.add_argument("--demo", action="store_true", help="open a freshly written demo dir")
    parser.add_argument("--poll", action="store_true",
                        help="poll for changes (network filesystems, where inotify is silent)")
    parser.add_argument("--read-only", action="store_true", help="disable destructive actions")
    _remote_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in SUBCOMMANDS:
            args = build_parser().parse_args(argv)
            return args.func(args)
        if argv and argv[0] in ("-h", "--help"):
            build_parser().print_help()
            return EXIT_OK
        return run_tui(build_app_parser().parse_args(argv))
    except CliError as e:
        print(f"nanochat-ckpt: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
