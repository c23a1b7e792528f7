"""Turn what a user types (a path, ``TAG``, ``STAGE/TAG@STEP``) into a :class:`Checkpoint`."""

from __future__ import annotations

import os
import stat
import time

from .layout import (
    LOCAL,
    STAGE_DIRS,
    Catalog,
    Checkpoint,
    FileEntry,
    FileKind,
    Tag,
    classify,
    resolve_base_dir,
    scan,
    scan_tag_dir,
)
from .localpath import LocalPath
from .storage import StorageError, open_storage, redact

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any


class RefError(ValueError):
    """A reference that names no checkpoint, or more than one."""


def find_tags(catalog: Catalog, spec: str) -> list[Tag]:
    """Tags matching ``TAG`` or ``STAGE/TAG`` (stage by dir name or label)."""
    if "/" in spec:
        stage_name, tag_name = spec.split("/", 1)
        stage = catalog.stage(stage_name)
        tag = stage.tag(tag_name) if stage else None
        return [tag] if tag else []
    return [t for t in catalog.tags if t.name == spec]


def _tag_ref(catalog: Catalog, tag: Tag) -> str:
    stage = catalog.stage(tag.stage)
    return f"{stage.label if stage else tag.stage}/{tag.name}"


def resolve_tag(catalog: Catalog, spec: str) -> Tag:
    tags = find_tags(catalog, spec)
    if not tags:
        known = ", ".join(_tag_ref(catalog, t) for t in catalog.tags[:12]) or "none"
        raise RefError(f"no tag {spec!r} under {catalog.base_dir} (tags: {known})")
    if len(tags) > 1:
        options = ", ".join(_tag_ref(catalog, t) for t in tags)
        raise RefError(f"tag {spec!r} is in several stages; say which: {options}")
    return tags[0]


def parse_step(text: str, tag: Tag) -> Checkpoint:
    if text in ("", "latest"):
        ck = tag.latest
        if ck is None:
            raise RefError(f"tag {tag.name!r} has no model files")
        return ck
    try:
        step = int(text)
    except ValueError:
        raise RefError(f"step must be a number or 'latest', not {text!r}") from None
    ck = tag.checkpoint(step)
    if ck is None:
        steps = ", ".join(str(c.step) for c in tag.checkpoints[-8:]) or "none"
        raise RefError(f"tag {tag.name!r} has no step {step} (last steps: {steps})")
    return ck


def _absolute(path: str | os.PathLike[str]) -> LocalPath:
    """An absolute path, ``.`` and ``..`` folded away, so that a relative path
    (``./model_000006.pt`` inside a tag dir, ``.``) still names its tag and stage dirs. Links are
    not followed: a tag dir that is a symbolic link keeps the name the user sees."""
    return LocalPath(os.path.abspath(LocalPath(path).expanduser()))


def checkpoint_for_file(path: str | os.PathLike[str]) -> Checkpoint:
    """The checkpoint group a file belongs to, or a lone group for a file of any other name."""
    path = _absolute(path)
    kind, step, _ = classify(path.name)
    if kind is not FileKind.OTHER and step is not None:
        tag = scan_tag_dir(LOCAL, path.parent, [], time.time(), path.parent.parent.name,
                           step=step)
        ck = tag.checkpoint(step)
        if ck is not None and any(f.path.name == path.name for f in ck.files):
            return ck
    st = path.stat()
    entry = FileEntry(path, FileKind.MODEL, st.st_size, st.st_mtime, None, None,
                      path.is_symlink())
    return Checkpoint(path.parent.parent.name, path.parent.name, -1, path.parent, model=entry)


def resolve(catalog: Catalog, ref: str) -> Checkpoint:
    """``PATH`` (an existing file), ``TAG``, ``TAG@STEP``, ``STAGE/TAG@STEP`` or ``@latest``.

    A path to anything that exists and is not a directory (a FIFO, socket or device named
    ``model_000200.pt`` too) is that file's checkpoint: reading it says "not a regular file"
    rather than "no tag" (nothing here opens it)."""
    p = LocalPath(ref).expanduser()
    if "@" not in ref and (p.is_file() or (os.path.lexists(p) and not p.is_dir())):
        return checkpoint_for_file(p)
    spec, _, step = ref.partition("@")
    if "@" not in ref and p.is_dir():  # a tag directory
        p = _absolute(p)
        tag = scan_tag_dir(LOCAL, p, [], time.time(), p.parent.name, step="latest")
        return parse_step("latest", tag)
    return parse_step(step, resolve_tag(catalog, spec))


_STAGE_WORDS = frozenset(v for v in STAGE_DIRS.values() if v.isalnum())


def resolve_one_tag(base: str | os.PathLike[str] | None, ref: str, *,
                    now: float | None = None) -> Checkpoint | None:
    """``STAGE/TAG@STEP`` in a local base dir, its tag dir listed alone: what one step needs
    (``show``, ``cmd``), without scanning every other tag. The stage by dir name or by one of
    nanochat's labels (``base``, ``sft``). The checkpoint is the one a full scan gives (of
    the tag's zips, only its own have their end read).

    None for anything else (a path, a bare ``TAG``, another stage name, a stage or tag dir
    that is a link or not a directory, a step that is not there): the full scan then decides,
    and words the error."""
    spec, at, step = ref.partition("@")
    stage_name, slash, tag_name = spec.partition("/")
    if not at or not slash or not stage_name or not tag_name or "/" in tag_name \
            or tag_name in (".", ".."):
        return None
    if stage_name.endswith("_checkpoints"):
        stage_dir = stage_name
    else:
        dirs = [d for d, label in STAGE_DIRS.items() if label == stage_name]
        if len(dirs) != 1:
            return None
        stage_dir = dirs[0]
    try:
        number: int | str = "latest" if step in ("", "latest") else int(step)
    except ValueError:
        return None  # (parse_step's error, worded by the full scan)
    storage = open_storage(resolve_base_dir(base))
    if not storage.writable:
        return None
    root = storage.root
    stage_path = storage.join(root, stage_dir)
    tag_path = storage.join(stage_path, tag_name)
    try:
        if not (stat.S_ISDIR(os.lstat(stage_path).st_mode)
                and stat.S_ISDIR(os.lstat(tag_path).st_mode)):
            return None
        tag = scan_tag_dir(storage, tag_path, [], time.time() if now is None else now,
                           stage_dir, step=number)
        return parse_step(step, tag)
    except (OSError, RefError):
        return None


def resolve_url(url: str, *, storage_options: dict[str, Any] | None = None,
                now: float | None = None) -> Checkpoint:
    """The checkpoint a URL names: ``BASE/TAG@STEP``, ``BASE/STAGE/TAG@STEP`` (stage dir or
    label; ``@latest`` works), a file ``…/<stage_dir>/<tag>/model_N.pt`` (its step's group), or
    a tag dir ``…/<stage_dir>/<tag>`` (its latest step). Raises :class:`.storage.StorageError`
    (unreadable) or :class:`RefError` (names nothing)."""
    text = url.rstrip("/")
    head, _, last = text.rpartition("/")
    if "://" not in head:
        raise RefError(f"{redact(url)}: give BASE_URL/TAG@STEP, a tag dir or a file URL")
    if "@" in last:
        tag_name, _, step = last.partition("@")
        parent, _, maybe_stage = head.rpartition("/")
        if "://" in parent and (maybe_stage.endswith("_checkpoints")
                                or maybe_stage in _STAGE_WORDS):
            cat = scan(parent, storage_options=storage_options, now=now)
            if cat.exists and cat.stage(maybe_stage) is not None:
                return resolve(cat, f"{maybe_stage}/{tag_name}@{step}")
            # no such stage there: a base dir that is itself named like a stage ("…/base")
        cat = scan(head, storage_options=storage_options, now=now)
        if not cat.exists:
            raise StorageError(f"{cat.location}: no such directory")
        return resolve(cat, f"{tag_name}@{step}")
    kind, file_step, _ = classify(last)
    storage = open_storage(head if kind is not FileKind.OTHER else text, storage_options)
    try:
        tag = scan_tag_dir(storage, storage.root, [], time.time() if now is None else now)
    except FileNotFoundError:
        raise StorageError(f"{storage.display()}: no such file or directory") from None
    except NotADirectoryError:
        raise StorageError(f"{storage.display()}: not a tag directory") from None
    except OSError as e:
        raise StorageError(f"{storage.display()}: cannot list ({e.strerror or e})") from None
    if kind is FileKind.OTHER:
        return parse_step("latest", tag)
    ck = tag.checkpoint(file_step) if file_step is not None else None
    if ck is None or not any(f.name == last for f in ck.files):
        raise RefError(f"{redact(url)}: no such checkpoint file")
    return ck


def resolve_location(ref: str, catalog: Catalog | None = None, *,
                     storage_options: dict[str, Any] | None = None) -> Checkpoint:
    """A reference a user typed: a URL (:func:`resolve_url`) or, against ``catalog``, a path
    or ``TAG@STEP`` (:func:`resolve`)."""
    from .storage import is_url

    if is_url(ref):
        return resolve_url(ref, storage_options=storage_options)
    if catalog is None:
        catalog = scan(None)
    return resolve(catalog, os.fspath(ref))
