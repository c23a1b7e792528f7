"""The base dir's trash: where deleted checkpoints can go instead of being unlinked.

``<base>/.nanochat-ckpt-trash/`` keeps the files' ``<stage_dir>/<tag>/`` paths. It is inside the
base dir, so on the same filesystem (moving there is a rename: instant, no free space needed),
and outside every ``*_checkpoints`` dir, so neither nanochat nor the scan sees it. Trashed bytes
are freed only when the trash is emptied; :func:`trash_usage` says how many are waiting.
Only a writable storage has a trash.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .storage import Storage

TRASH_DIR = ".nanochat-ckpt-trash"


def trash_dir(base_dir: Path) -> Path:
    return Path(base_dir) / TRASH_DIR


@dataclass(frozen=True)
class TrashUsage:
    path: Path
    files: int
    bytes: int


def trash_usage(storage: Storage, base_dir: Path) -> TrashUsage | None:
    """Files and bytes waiting in the base dir's trash; None when there is no trash (or the
    storage has none: it is not writable)."""
    if not storage.writable:
        return None
    root = trash_dir(base_dir)
    if not root.is_dir() or root.is_symlink():
        return None
    files = total = 0
    for dirpath, _dirs, names in os.walk(root):  # links are not followed
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            files += 1
            total += st.st_size
    return TrashUsage(root, files, total)


def empty_trash(storage: Storage, base_dir: Path) -> TrashUsage | None:
    """Delete everything in the base dir's trash (the trash dir itself too); what was freed.
    Refuses a storage that is not writable (ReadOnlyError)."""
    storage.require_writable("empty the trash")
    usage = trash_usage(storage, base_dir)
    if usage is None:
        return None
    shutil.rmtree(usage.path)  # rmtree never follows links out of the tree
    return usage
