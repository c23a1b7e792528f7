"""Turn what a user types (a path, ``TAG``, ``STAGE/TAG@STEP``) into a :class:`Checkpoint`."""

from __future__ import annotations

import time
from pathlib import Path

from .layout import Catalog, Checkpoint, FileEntry, FileKind, Tag, _classify, _scan_tag


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


def _parse_step(text: str, tag: Tag) -> Checkpoint:
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


def checkpoint_for_file(path: Path) -> Checkpoint:
    """The checkpoint group a file belongs to, or a lone group for a file of any other name."""
    path = Path(path)
    kind, step, _ = _classify(path.name)
    if kind is not FileKind.OTHER and step is not None:
        stage = path.parent.parent.name
        tag = _scan_tag(stage, path.parent, [], time.time())
        ck = tag.checkpoint(step)
        if ck is not None and any(f.path.name == path.name for f in ck.files):
            return ck
    st = path.stat()
    entry = FileEntry(path, FileKind.MODEL, st.st_size, st.st_mtime, None, None,
                      path.is_symlink())
    return Checkpoint(path.parent.parent.name, path.parent.name, -1, path.parent, model=entry)


def resolve(catalog: Catalog, ref: str) -> Checkpoint:
    """``PATH`` (an existing file), ``TAG``, ``TAG@STEP``, ``STAGE/TAG@STEP`` or ``@latest``."""
    p = Path(ref).expanduser()
    if "@" not in ref and p.is_file():
        return checkpoint_for_file(p)
    spec, _, step = ref.partition("@")
    if "@" not in ref and p.is_dir():  # a tag directory
        tag = _scan_tag(p.parent.name, p, [], time.time())
        return _parse_step("latest", tag)
    return _parse_step(step, resolve_tag(catalog, spec))
