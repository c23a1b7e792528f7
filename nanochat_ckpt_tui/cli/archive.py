"""``nanochat-ckpt archive`` and ``nanochat-ckpt verify``: the CLI face of :mod:`nanochat_ckpt_tui.store.archive`.

The CLI registers them with :func:`add_archive_commands`. Each command returns an exit code
(0 ok, 1 error, failure or mismatch, 2 usage) and prints its own one-line errors on stderr, so
it needs nothing from the CLI's ``CliError`` handling (tests call ``args.func`` directly).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from functools import partial
from typing import Any

from ..fmt import human_bytes
from ..store import layout
from ..store.archive import (
    MANIFEST,
    ArchiveError,
    ArchiveResult,
    Progress,
    VerifyReport,
    archive,
    last_destination,
    verify_archive,
)
from ..store.refs import RefError, resolve
from ..store.storage import is_url
from .common import _storage_options, ctrl_c_cancels, unreadable_ref

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
ARCHIVE_STATUS_STYLE = {"copied": "green", "present": "dim", "failed": "bold red",
                        "cancelled": "yellow"}
VERIFY_STATUS_STYLE = {"ok": "green", "missing": "bold red", "mismatch": "bold red",
                       "error": "bold red"}


def _error(message: str, code: int = EXIT_ERROR) -> int:
    print(f"nanochat-ckpt: error: {message}", file=sys.stderr)
    return code


def _print_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")


class _Bar:
    """A rich progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.progress = None
        self.task = None
        if not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self.progress = RichProgress(
            # work = bytes copied + bytes re-read to verify: a percentage, not a byte count
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task(label, total=None)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, p: Progress) -> None:
        if self.progress is not None and self.task is not None:
            name = p.file.rsplit("/", 1)[-1]
            self.progress.update(self.task, completed=p.bytes_done, total=p.bytes_total,
                                 description=f"{p.phase} {name} ({p.files_done}/{p.files_total})")


def cmd_archive(args: argparse.Namespace) -> int:
    items: list[str] = list(args.items)
    if args.last:
        dest = last_destination()
        if dest is None:
            return _error("--last: no destination remembered yet; give DEST", EXIT_USAGE)
        refs = items
    else:
        if len(items) < 2:
            return _error("give at least one TAG@STEP and a DEST (or --last)", EXIT_USAGE)
        refs, dest = items[:-1], items[-1]
    try:
        options = _storage_options(args.storage_option)
    except ValueError as e:
        return _error(str(e), EXIT_USAGE)
    cat = layout.scan(args.base_dir)
    if not cat.exists:
        return _error(f"base dir {cat.base_dir} does not exist (give --base-dir or set "
                      "NANOCHAT_BASE_DIR)")
    try:
        cks = [resolve(cat, ref) for ref in refs]
    except RefError as e:
        why = next((w for w in map(partial(unreadable_ref, cat), refs) if w), None)
        return _error(why, EXIT_ERROR) if why else _error(str(e), EXIT_USAGE)
    except OSError as e:
        return _error(f"{e.filename}: {e.strerror or e}")
    cancel = threading.Event()
    try:
        with _Bar("archive") as bar, ctrl_c_cancels(cancel):
            result = archive(cks, dest, with_optimizer=args.with_optimizer,
                             with_tokenizer=not args.no_tokenizer, verify=args.verify,
                             progress=bar.update, cancel=cancel, storage_options=options,
                             allow_damaged=args.allow_damaged)
    except ArchiveError as e:
        return _error(str(e))
    if args.json:
        _print_json(result.to_json())
    else:
        _print_archive(result, dest)
    return EXIT_OK if result.ok else EXIT_ERROR


def _print_archive(result: ArchiveResult, dest: str) -> None:
    from rich.console import Console

    con = Console(soft_wrap=True)  # paths are never broken across lines
    for r in result.results:
        if r.status != "present" or r.detail:
            style = ARCHIVE_STATUS_STYLE.get(r.status, "")
            detail = f"  [dim]{r.detail}[/]" if r.detail else ""
            con.print(f"[{style}]{r.status:>9}[/] {r.rel}  {human_bytes(r.size)}{detail}")
    for w in result.warnings:
        con.print(f"[bold yellow]warning:[/] {w}")
    rate = f" at {human_bytes(result.rate)}/s" if result.count("copied") else ""
    con.print(f"{result.count('copied')} copied ({human_bytes(result.bytes_copied)}{rate}), "
              f"{result.count('present')} already there, {result.count('failed')} failed"
              + (", [yellow]cancelled[/]" if result.cancelled else "")
              + f" → {result.dest} ({result.strategy}; checksums in {MANIFEST})")
    if result.archived:
        con.print("archived: " + ", ".join(result.archived))
        if not is_url(dest):
            con.print(f"[dim]load from it with NANOCHAT_BASE_DIR={result.dest}[/]")
    if any(r.status == "failed" and "source is damaged" in r.detail for r in result.results):
        con.print("[dim]a damaged source is not archived: `nanochat-ckpt check` says what is "
                  "wrong with it; --allow-damaged copies it anyway[/]")
    if not result.ok:
        con.print("[dim]run the same command again to copy only what is missing[/]")


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        options = _storage_options(args.storage_option)
    except ValueError as e:
        return _error(str(e), EXIT_USAGE)
    dest = args.dest or last_destination()
    if dest is None:
        return _error("give DEST (no archive destination remembered yet)", EXIT_USAGE)
    try:
        with _Bar("verify") as bar:
            report = verify_archive(dest, progress=bar.update, storage_options=options)
    except ArchiveError as e:
        return _error(str(e))
    if args.json:
        _print_json(report.to_json())
    else:
        _print_verify(report)
    return EXIT_OK if report.ok else EXIT_ERROR


def _print_verify(report: VerifyReport) -> None:
    from rich.console import Console

    con = Console(soft_wrap=True)  # paths are never broken across lines
    for e in report.entries:
        if e.status != "ok":
            style = VERIFY_STATUS_STYLE.get(e.status, "")
            con.print(f"[{style}]{e.status:>8}[/] {e.rel}  [dim]{e.detail}[/]")
    size = sum(e.size for e in report.entries if e.status == "ok")
    verdict = "[green]all good[/]" if report.ok else "[bold red]problems found[/]"
    con.print(f"{report.dest}: {report.count('ok')} ok ({human_bytes(size)}), "
              f"{report.count('missing')} missing, {report.count('mismatch')} mismatched, "
              f"{report.count('error')} unreadable: {verdict}")


def _storage_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option for the destination, e.g. endpoint_url=http://…; "
                        "credentials are better left to the backend's env vars")


def add_archive_commands(subparsers: Any) -> None:
    """Register ``archive`` and ``verify`` on an ``add_subparsers()`` object."""
    add_command(subparsers, "archive")
    add_command(subparsers, "verify")


def add_command(subparsers: Any, name: str) -> None:
    """Register ``archive`` or ``verify``."""
    if name == "archive":
        _add_archive(subparsers)
    else:
        _add_verify(subparsers)


def _add_archive(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "archive", help="copy checkpoints to a safe place (dir or s3://, gs://, ssh://…)",
        description="Copy checkpoints (weights + meta, optionally optimizer shards, the "
                    "tokenizer, pins) to DEST in nanochat's layout, verified by sha256 and "
                    "recorded in DEST/" + MANIFEST + ". Each source zip is checked against "
                    "its CRCs while it is copied: a damaged one is not archived (unless "
                    "--allow-damaged). Re-running copies only what is missing. URLs need the "
                    "fsspec backend (s3fs, gcsfs, paramiko…). Exit codes: 0 ok, 1 a file "
                    "failed, 2 usage.")
    p.add_argument("items", nargs="+", metavar="TAG@STEP... DEST",
                   help="checkpoints (d20@5000, base/d20@latest, a file) then the destination")
    p.add_argument("--last", action="store_true",
                   help="all arguments are checkpoints; archive to the last destination used")
    p.add_argument("--with-optimizer", action="store_true",
                   help="also copy the optimizer shards (needed to resume training)")
    p.add_argument("--no-tokenizer", action="store_true",
                   help="do not copy the base dir's tokenizer/ files")
    p.add_argument("--verify", action="store_true",
                   help="re-check files already at the destination by checksum, not size")
    p.add_argument("--allow-damaged", action="store_true",
                   help="copy a source even when its bytes do not match its zip CRCs (it is "
                        "checked while copied; by default a damaged file is not archived)")
    p.add_argument("--json", action="store_true", help="print a JSON document")
    p.add_argument("--base-dir", metavar="BASE_DIR")
    _storage_flag(p)
    p.set_defaults(func=cmd_archive)


def _add_verify(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "verify", help="check an archive against its manifest (size and sha256)",
        description="Re-read every file listed in DEST/" + MANIFEST + " and compare size and "
                    "sha256. Exit codes: 0 all ok, 1 missing/mismatch/error, 2 usage.")
    p.add_argument("dest", nargs="?", metavar="DEST", help="default: the last destination used")
    p.add_argument("--json", action="store_true", help="print a JSON document")
    _storage_flag(p)
    p.set_defaults(func=cmd_verify)
