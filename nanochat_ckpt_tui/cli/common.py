"""What every subcommand shares: errors and exit codes, loading and resolving, JSON printing.

Nothing here imports rich at module level: a console is made only for human output, so
``ls --json`` never pays for rich (nor textual, numpy, torch or fsspec).
"""

from __future__ import annotations

import math
import os
import sys
import time

from ..store import fastjson, layout
from ..store.layout import Catalog, Checkpoint, FileKind, classify
from ..store.meta import assess_metas
from ..store.storage import StorageError, is_url, redact

# Not imported at run time (start-up): typing, and argparse and threading, which only some
# commands use (``ls`` and ``show`` parse plain arguments without argparse: see cli.parse_plain).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import contextlib
    import threading
    from collections.abc import Iterator
    from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_NOTHING, EXIT_PARTIAL, EXIT_DECLINED = 3, 4, 5

STATE_STYLE = {"complete": "green", "writing": "bold yellow", "corrupt": "bold red",
               "unreadable": "bold red", "orphan": "red", "bad meta": "red",
               "no meta": "yellow", "optim incomplete": "yellow"}
# a cached check verdict, as a badge ("good" reads "verified" next to a state)
VERDICT_BADGE = {"good": ("verified", "bold green"), "damaged": ("damaged", "bold red"),
                 "unhealthy": ("unhealthy", "bold red")}
VERDICT_STYLE = {"good": "green", "damaged": "bold red", "unhealthy": "bold red",
                 "unchecked": "yellow"}


class CliError(Exception):
    """An error for the user: printed as one line on stderr."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# output


def _num(v: float | None) -> str:
    if v is None:
        return "—"
    if math.isinf(v) or math.isnan(v):
        return str(_json_float(v))  # "Infinity", as nanochat's meta files spell it
    return f"{v:.4f}"


def plain_value(v: Any) -> str:
    """A config value for people, spelled as in JSON: ``null``, ``true``, ``0.02``,
    ``Infinity``, ``[1, 2]``; strings as they are."""
    if isinstance(v, str):
        return v
    import json  # (human output only)

    if v is None or isinstance(v, bool | int | float):
        return json.dumps(_json_clean(v)).strip('"')
    try:
        return json.dumps(_json_clean(v), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(v)


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


# Lists written one element per line (each element compact): the long lists of records. Their
# elements are encoded by json's C encoder, the rest (a few dozen keys) is indented as with
# ``indent=2``, which would run json's pure-Python encoder over every value: ~0.5 s for an
# ``ls`` of 6,000 steps against ~0.1 s this way.
ONE_PER_LINE = frozenset(("checkpoints", "tensors", "items", "layers", "findings"))
RECORDS_A_PIECE = 500  # of such a list: a 6,000-step listing is written in pieces, never whole
_ENCODE = fastjson.encoder(allow_nan=False)  # = json.JSONEncoder(allow_nan=False).encode


class RawJSON(str):
    """Text that is JSON already (a record encoded by :func:`.documents.checkpoint_json_text`):
    written as it is."""

    __slots__ = ()


_QUOTE = fastjson.encode_basestring_ascii
_INT_TEXT, _FLOAT_TEXT = int.__repr__, float.__repr__  # what json writes for them


def _item_text(v: Any) -> str:
    """``_ENCODE(v)``; the scalars a document is made of written as json's encoder writes them,
    without making one (a show document has ~400)."""
    t = type(v)
    if t is RawJSON:  # (a listing's records)
        return v  # type: ignore[no-any-return]
    if t is str:
        return _QUOTE(v)  # type: ignore[no-any-return]
    if t is int:
        return _INT_TEXT(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is float and v - v == 0.0:  # (finite: NaN and infinities raise ValueError below)
        return _FLOAT_TEXT(v)
    return _ENCODE(v)


def _key_text(k: Any) -> str:
    if type(k) is str:
        return _QUOTE(k)  # type: ignore[no-any-return]
    if isinstance(k, str):
        return _ENCODE(k)
    return _ENCODE(str(_ENCODE(k)).strip('"'))  # as json.dumps spells a non-str key


def _scalars(items: Any) -> bool:
    return not any(isinstance(v, dict | list | tuple) for v in items)


def _write_json(obj: Any, out: list[str], pad: str) -> None:
    """``obj`` indented by two spaces a level; short lists of scalars on one line; the lists
    under an :data:`ONE_PER_LINE` key one element a line."""
    if isinstance(obj, dict) and obj:
        inner = pad + "  "
        sep = "{\n"
        for k, v in obj.items():
            head = sep + inner + _key_text(k) + ": "
            sep = ",\n"
            if not isinstance(v, dict | list | tuple):  # a scalar: most of a document
                out.append(head + _item_text(v))
            elif k in ONE_PER_LINE and isinstance(v, list | tuple) and v:
                step = ",\n" + inner + "  "
                out.append(head + "[\n" + inner + "  ")
                for start in range(0, len(v), RECORDS_A_PIECE):
                    if start:
                        out.append(step)
                    out.append(step.join(map(_item_text, v[start:start + RECORDS_A_PIECE])))
                out.append("\n" + inner + "]")
            else:
                out.append(head)
                _write_json(v, out, inner)
        out.append("\n" + pad + "}")
    elif isinstance(obj, list | tuple) and obj:
        if len(obj) <= 16 and _scalars(obj):
            out.append(_ENCODE(obj))
            return
        inner = pad + "  "
        sep = "[\n"
        for v in obj:
            out.append(sep + inner)
            sep = ",\n"
            _write_json(v, out, inner)
        out.append("\n" + pad + "]")
    else:
        out.append(_item_text(obj))


def _json_pieces(doc: Any) -> list[str]:
    """:func:`json_text` in pieces (all made before any is written: an error leaves no
    half-written document)."""
    out: list[str] = []
    try:
        _write_json(doc, out, "")
    except ValueError:  # a NaN or Infinity somewhere (rare): spell them, then write again
        out = []
        _write_json(_json_clean(doc), out, "")
    return out


def json_text(doc: Any) -> str:
    """The document as strict JSON: non-finite numbers as the strings "Infinity", "NaN"."""
    return "".join(_json_pieces(doc))


WRITE_CHUNK = 1 << 16  # characters of the document per write


def _print_json(doc: dict[str, Any]) -> None:
    """The document on stdout, its pieces joined into writes of ~64 K characters: a 6,000-step
    listing (4 MB) is never joined into one string, and a small document is one write (not a
    write per piece: with stdout unbuffered, as PYTHONUNBUFFERED=1 makes it, each is a system
    call)."""
    write = sys.stdout.write
    chunk: list[str] = []
    size = 0
    for piece in _json_pieces(doc):
        chunk.append(piece)
        size += len(piece)
        if size >= WRITE_CHUNK:
            write("".join(chunk))
            chunk, size = [], 0
    chunk.append("\n")
    write("".join(chunk))


def _console():  # rich is imported only for human output
    from rich.console import Console

    return Console()


def _console_err():
    from rich.console import Console

    return Console(stderr=True)


def _confirm(question: str, *, strict: bool = False) -> bool:
    """Ask on stdout, read one line from stdin; anything but y/yes (or no stdin) is a no.
    ``strict``: only the whole word "yes" is a yes (for what protection would have kept)."""
    sys.stdout.write(question)
    sys.stdout.flush()
    try:
        answer = sys.stdin.readline() if sys.stdin else ""
    except (OSError, ValueError):
        answer = ""
    return answer.strip().lower() in (("yes",) if strict else ("y", "yes"))


PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


class ByteMeter:
    """Bytes read so far, on stderr, as a ``progress(done, total)`` callback.

    On a terminal: a transient rich bar (bytes done / total, rate, time left). Anywhere else (a
    log, CI, a pipe): one plain line at most every ``every`` seconds, the first only once the
    work has run that long, so a short run prints nothing and a long one shows it is alive.
    Nothing at all with ``quiet``. Successive runs reporting from 0 again (one check per step,
    as a prune's verification makes) add up."""

    def __init__(self, label: str, *, quiet: bool = False, every: float | None = None) -> None:
        self.label = label
        self.every = PROGRESS_EVERY if every is None else every
        self.quiet = quiet
        self.started = time.monotonic()
        self.printed = self.started  # a plain line, the first after ``every`` seconds
        self.base = 0  # bytes of the runs before this one
        self.last = (0, 0)  # the last (done, total) of the current run
        self.bar: Any = None
        self.task: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
                                console=_console_err())
            self.task = self.bar.add_task(label, total=None)

    def __enter__(self) -> ByteMeter:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    @property
    def done(self) -> int:
        return self.base + self.last[0]

    @property
    def total(self) -> int:
        return self.base + self.last[1]

    def __call__(self, done: int, total: int) -> None:
        if done < self.last[0]:  # a new run started
            self.base += self.last[1]
        self.last = (done, total)
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, total=self.total)
            return
        now = time.monotonic()
        if now - self.printed >= self.every and done < total:
            from ..fmt import human_bytes  # (here: the quick commands never print progress)

            self.printed = now
            rate = self.done / max(now - self.started, 1e-9)
            print(f"{self.label}: {human_bytes(self.done)} of {human_bytes(self.total)} "
                  f"({100 * self.done // max(self.total, 1)}%), {human_bytes(rate)}/s",
                  file=sys.stderr, flush=True)


def ctrl_c_cancels(cancel: threading.Event, what: str = "stopping after the current chunk"
                   ) -> contextlib.AbstractContextManager[None]:
    """The first Ctrl-C sets ``cancel`` (the work stops at its next chunk, cleanly); a second
    one interrupts at once (KeyboardInterrupt). Outside the main thread: plain Ctrl-C."""
    import contextlib  # (here, as threading: the commands that read quickly never use them)

    return contextlib.contextmanager(_ctrl_c_cancels)(cancel, what)


def _ctrl_c_cancels(cancel: threading.Event, what: str) -> Iterator[None]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    import signal

    def handler(signum: int, frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print(f"nanochat-ckpt: {what} (Ctrl-C again to abort)", file=sys.stderr, flush=True)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


# --------------------------------------------------------------------------------------------
# arguments


def _storage_options(pairs: list[str] | None) -> dict[str, Any]:
    """``-o key=value`` pairs; values are read as JSON when they parse (numbers, booleans)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"storage option {pair!r} is not KEY=VALUE")
        try:
            out[key] = fastjson.loads(value)
        except ValueError:
            out[key] = value
    return out


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON document (see README)")


def _remote_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option when the base dir is a URL (read-only), e.g. "
                        "endpoint_url=http://…; credentials are better left to the backend's "
                        "env vars")


# --------------------------------------------------------------------------------------------
# loading and resolving


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


def _scan(base: str | None, args: argparse.Namespace, *, metas: bool = True) -> Catalog:
    """Scan the base dir (it must exist); with ``metas``, every step's meta is read and judged
    (a meta nanochat cannot load gives the step the ``bad meta`` state). ``ls`` passes False
    and judges only the steps it shows; ``du`` needs no meta."""
    cat = _load(base, args)
    if not cat.exists and cat.storage.writable and os.path.lexists(cat.base_dir):
        hint = ""
        if classify(cat.base_dir.name)[0] is not FileKind.OTHER:
            hint = f"; to look at one checkpoint: nanochat-ckpt show {cat.location}"
        raise CliError(f"{cat.location} is not a directory (give the base dir that holds "
                       f"base_checkpoints/ and friends{hint})")
    if not cat.exists:
        raise CliError(f"base dir {cat.location} does not exist "
                       "(give BASE_DIR, set NANOCHAT_BASE_DIR, or try `nanochat-ckpt demo`)")
    if metas:
        assess_metas(cat.checkpoints)
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
    from ..store.refs import RefError, resolve_one_tag, resolve_url  # (not for ls: start-up)

    if is_url(ref):
        try:
            return resolve_url(ref, storage_options=_options(args))
        except StorageError as e:
            raise CliError(str(e)) from None
        except RefError as e:
            raise CliError(str(e), EXIT_USAGE) from None
    if cat is None:
        base = _base_arg(args.base_dir)
        if not (base and is_url(base)):
            ck = resolve_one_tag(base, ref)  # one tag dir listed, not the whole base dir
            if ck is not None:
                return ck
        cat = _load(args.base_dir, args)
    return resolve_local(cat, ref)


def resolve_local(cat: Catalog, ref: str) -> Checkpoint:
    """A path or TAG[@STEP] in ``cat``; an unreadable tag or stage dir says so."""
    from ..store.refs import RefError, resolve

    try:
        return resolve(cat, ref)
    except RefError as e:
        why = unreadable_ref(cat, ref)
        raise CliError(why or str(e), EXIT_ERROR if why else EXIT_USAGE) from None
    except PermissionError as e:
        what = "the tag dir" if e.filename and os.path.isdir(e.filename) else e.filename
        raise CliError(f"{ref}: permission denied (cannot list {what or 'it'})") from None
    except OSError as e:
        raise CliError(f"{ref}: {e.strerror or e}") from None


def error_reason(error: str) -> str:
    """A stage's or tag's scan error as a reason: ``"permission denied"``."""
    return error.removesuffix(", skipped")


def unreadable_ref(cat: Catalog, ref: str) -> str | None:
    """Why ``TAG[@STEP]`` names nothing when the cause is a dir the scan could not list:
    ``"base/d7: permission denied (cannot list the tag dir)"``, else None."""
    from ..store.refs import find_tags

    spec = ref.partition("@")[0].rstrip("/")
    tags = find_tags(cat, spec)
    if len(tags) == 1 and tags[0].error:
        return f"{spec}: {error_reason(tags[0].error)} (cannot list the tag dir)"
    if tags:
        return None
    stage_name = spec.partition("/")[0] if "/" in spec else None
    stages = [cat.stage(stage_name)] if stage_name else cat.stages
    bad = [s for s in stages if s is not None and s.error]
    if len(bad) == 1:
        return (f"{spec}: {error_reason(bad[0].error or '')} (cannot list the stage dir "
                f"{bad[0].dirname}, where the tag may be)")
    return None
