"""Pruning, planned then executed: nothing is removed that the plan did not list.

:func:`plan_rules` (keep last N, keep every K-th step, keep best M by val_bpb, optimizer only)
and :func:`plan_selection` (explicit checkpoints) build a :class:`PrunePlan`: each file with its
bytes and reason, every protected item with its reason, and warnings about nanochat workflows a
deletion breaks. :func:`execute` re-checks every file right before touching it (vanished,
changed since the plan, now a link, being written: skipped and reported), keeps going past
per-file errors, and can move files to a trash dir on the same filesystem instead.

Protected unless overridden: the latest step of each tag, pinned checkpoints, every step of a
tag whose pins file is unreadable. Never overridable: files being written, links, and files
whose real path is outside the base dir.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import WRITE_WINDOW, Catalog, Checkpoint, FileEntry, FileKind, State, Tag
from .meta import val_bpb_of
from .storage import LOCAL, Storage
from .verdicts import Verdicts, latest_is_bad, newest_good_guard


class PruneError(Exception):
    """A plan that cannot be made or executed as asked (bad rules, bad trash dir)."""


@dataclass(frozen=True)
class Rules:
    """Retention rules for one tag. A checkpoint is kept if any keep rule keeps it."""

    keep_last: int | None = None  # the last N steps
    keep_every: int | None = None  # steps that are multiples of K (stable as steps are added)
    keep_best: int | None = None  # the M lowest val_bpb
    optimizer_only: bool = False  # for the others, drop only the optimizer shards

    def __post_init__(self) -> None:
        for name in ("keep_last", "keep_every", "keep_best"):
            v = getattr(self, name)
            if v is not None and v < 1:  # 0 would keep nothing by that rule: refused, as a typo
                raise PruneError(f"{name.replace('_', '-')} must be 1 or more, not {v} (to "
                                 "prune by the other rules only, leave it out)")
        if self.keep_last is None and self.keep_every is None and self.keep_best is None:
            raise PruneError("give at least one rule: keep-last, keep-every or keep-best")

    def describe(self) -> str:
        parts = []
        if self.keep_last is not None:
            parts.append(f"keep last {self.keep_last}")
        if self.keep_every is not None:
            parts.append(f"keep every {self.keep_every}-th step")
        if self.keep_best is not None:
            parts.append(f"keep best {self.keep_best} by val_bpb")
        return ", ".join(parts) + ("; optimizer shards only" if self.optimizer_only else "")


@dataclass(frozen=True)
class PlanItem:
    path: Path
    size: int
    mtime: float
    kind: str
    checkpoint: str  # Checkpoint.key
    reason: str


@dataclass(frozen=True)
class ProtectedItem:
    checkpoint: str
    reason: str
    files: tuple[str, ...] = ()
    overridable: bool = True


@dataclass
class PrunePlan:
    base_dir: Path
    items: list[PlanItem] = field(default_factory=list)
    protected: list[ProtectedItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    verified: bool = False  # the newest good step of each tag was looked for (check, cache first)
    kept_verdicts: dict[str, str] = field(default_factory=dict)  # kept steps judged: key → verdict
    confirm: list[str] = field(default_factory=list)  # deletions that need an explicit "yes"
    confirm_keys: list[str] = field(default_factory=list)  # the steps ``confirm`` is about

    @property
    def bytes_freed(self) -> int:
        return sum(i.size for i in self.items)

    @property
    def checkpoints(self) -> list[str]:
        return list(dict.fromkeys(i.checkpoint for i in self.items))

    @property
    def is_empty(self) -> bool:
        return not self.items
    storage: Storage = field(default=LOCAL, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "nanochat-ckpt.prune-plan/1",
            "base_dir": str(self.base_dir),
            "bytes_freed": self.bytes_freed,
            "files": [{"path": str(i.path), "size": i.size, "kind": i.kind,
                       "checkpoint": i.checkpoint, "reason": i.reason} for i in self.items],
            "protected": [{"checkpoint": p.checkpoint, "reason": p.reason,
                           "files": list(p.files), "overridable": p.overridable}
                          for p in self.protected],
            "warnings": self.warnings,
            "verified": self.verified,
            "kept_verdicts": self.kept_verdicts,
            "confirm": self.confirm,
        }


@dataclass(frozen=True)
class Override:
    """What the user explicitly allowed to be deleted despite protection."""

    latest: bool = False
    pinned: bool = False


# --------------------------------------------------------------------------------------------
# planning


def _inside(real: str, base_real: str) -> bool:
    return real == base_real or real.startswith(base_real.rstrip(os.sep) + os.sep)


def _hard_protection(ck: Checkpoint, files: list[FileEntry], base_real: str,
                     real_dirs: dict[str, str] | None = None) -> str | None:
    if ck.state is State.WRITING:
        return "being written"
    for f in files:
        if f.is_link:
            return f"{f.name} is a symbolic link (links are never followed or removed)"
        if real_dirs is not None:
            # The file is not a link (above), so its real path is its dir's real path plus
            # its name: one realpath per dir, not per file (200,000 files took ~4 s).
            parent, name = os.path.split(str(f.path))  # (str keys: Path hashing is slow)
            real_dir = real_dirs.get(parent)
            if real_dir is None:
                real_dir = real_dirs[parent] = os.path.realpath(parent)
            real = os.path.join(real_dir, name)
            inside = real == base_real or real.startswith(base_real.rstrip(os.sep) + os.sep)
        else:
            inside = _inside(os.path.realpath(f.path), base_real)
        if not inside:
            return f"{f.name} is outside the base dir (real path {os.path.realpath(f.path)})"
    return None


def _soft_protection(ck: Checkpoint, tag: Tag | None, override: Override,
                     verdicts: Verdicts | None, plan: PrunePlan) -> str | None:
    if tag is not None and tag.pins_error and not override.pinned:
        return "pins file unreadable, so pins are unknown: " + tag.pins_error
    if ck.pinned and not override.pinned:
        return "pinned" + (f" ({ck.note})" if ck.note else "")
    if ck.is_latest and not override.latest:
        bad = latest_is_bad(ck, verdicts)
        if bad is None:
            return "latest step of its tag (nanochat's default for chat, eval and resume)"
        plan.confirm.append(f"{ck.key} is the latest step of its tag and it is "
                            f"{bad.describe()}: delete it so nanochat stops resuming from it")
        plan.confirm_keys.append(ck.key)
    return None


class _Planner:
    def __init__(self, catalog: Catalog, override: Override, verdicts: Verdicts | None) -> None:
        if not catalog.storage.writable:  # the store refuses, whatever the face asked
            raise PruneError(f"{catalog.location} is read-only: nothing can be deleted there")
        self.catalog = catalog
        self.override = override
        self.verdicts = verdicts
        self.deleting: dict[tuple[str, str], set[int]] = {}  # whole steps, by tag
        self.plan = PrunePlan(catalog.base_dir)
        self.plan.storage = catalog.storage
        self.base_real = catalog.storage.realpath(catalog.base_dir)
        self.tags = {(t.stage, t.name): t for t in catalog.tags}
        self.real_dirs: dict[str, str] = {}

    def add(self, ck: Checkpoint, optimizer_only: bool, reason: str) -> None:
        files = list(ck.optim) if optimizer_only else ck.files
        if optimizer_only and ck.legacy is not None and not ck.optim:
            self.plan.protected.append(ProtectedItem(
                ck.key, "older step_N.pt layout keeps the optimizer inside the weights file",
                (ck.legacy.name,), overridable=False))
            return
        if not files:
            return
        hard = _hard_protection(ck, files, self.base_real, self.real_dirs)
        if hard:
            self.plan.protected.append(ProtectedItem(ck.key, hard, tuple(f.name for f in files),
                                                     overridable=False))
            return
        soft = _soft_protection(ck, self.tags.get((ck.stage, ck.tag)), self.override,
                                self.verdicts, self.plan)
        if soft:
            self.plan.protected.append(ProtectedItem(ck.key, soft, tuple(f.name for f in files)))
            return
        for f in files:
            self.plan.items.append(PlanItem(f.path, f.size, f.mtime, f.kind._value_, ck.key, reason))
        if not optimizer_only and ck.weights is not None:
            self.deleting.setdefault((ck.stage, ck.tag), set()).add(ck.step)

    def _guard(self) -> None:
        """Never delete a tag's newest good step (checked, cache first)."""
        assert self.verdicts is not None
        for (stage, name), steps in self.deleting.items():
            tag = self.tags.get((stage, name))
            if tag is None:
                continue
            kept = newest_good_guard(tag, steps, self.verdicts,
                                     latest_allowed=self.override.latest)
            if kept is not None:
                step, why = kept
                key = f"{stage}/{name}@{step}"
                files = tuple(i.path.name for i in self.plan.items if i.checkpoint == key)
                self.plan.items = [i for i in self.plan.items if i.checkpoint != key]
                self.plan.protected.append(ProtectedItem(key, why, files, overridable=False))
            for ck in tag.checkpoints:
                v = self.verdicts.known.get(ck.key)
                if v is not None and ck.step not in steps:
                    self.plan.kept_verdicts[ck.key] = v.describe()

    def finish(self) -> PrunePlan:
        if self.verdicts is not None:
            self._guard()
            self.plan.verified = True
        elif self.deleting:
            self.plan.warnings.append("not verified (--no-check): the steps kept were not "
                                      "checked, so this may delete the newest good checkpoint")
        self.plan.warnings[:0] = _warnings(self.catalog, self.plan)
        return self.plan


def plan_rules(catalog: Catalog, tags: Iterable[Tag], rules: Rules,
               override: Override = Override(), *, verify: bool = True,
               verdicts: Verdicts | None = None) -> PrunePlan:
    """Apply retention rules to each tag. With ``verify`` (the default) the steps that decide
    whether a tag keeps a good checkpoint are checked (cache first; ``verdicts`` may carry a
    cache, progress and cancel)."""
    planner = _Planner(catalog, override, (verdicts or Verdicts()) if verify else None)
    for tag in tags:
        cks = [c for c in tag.checkpoints if c.weights is not None or c.optim]
        keep: dict[int, str] = {}
        if rules.keep_last:
            for c in cks[-rules.keep_last:]:
                keep.setdefault(c.step, f"among the last {rules.keep_last}")
        if rules.keep_every:
            for c in cks:
                if c.step % rules.keep_every == 0:
                    keep.setdefault(c.step, f"a multiple of {rules.keep_every}")
        if rules.keep_best:
            scored = sorted((v, c.step) for c in cks if (v := val_bpb_of(c)) is not None)
            for v, step in scored[:rules.keep_best]:
                keep.setdefault(step, f"among the best {rules.keep_best} (val_bpb {v:.4f})")
        why = rules.describe()
        for c in cks:
            if c.step not in keep:
                planner.add(c, rules.optimizer_only, f"not kept by: {why}")
    return planner.finish()


def plan_selection(catalog: Catalog, checkpoints: Iterable[Checkpoint], *,
                   optimizer_only: bool = False, override: Override = Override(),
                   verify: bool = True, verdicts: Verdicts | None = None) -> PrunePlan:
    """Delete exactly these checkpoints (or only their optimizer shards); the same protections
    and checks as :func:`plan_rules`."""
    planner = _Planner(catalog, override, (verdicts or Verdicts()) if verify else None)
    reason = "selected (optimizer shards only)" if optimizer_only else "selected"
    for ck in checkpoints:
        planner.add(ck, optimizer_only, reason)
    return planner.finish()


def _warnings(catalog: Catalog, plan: PrunePlan) -> list[str]:
    """What the planned deletions break in nanochat's workflows, in plain words."""
    out: list[str] = []
    doomed: dict[str, set[str]] = {}
    for item in plan.items:
        doomed.setdefault(item.checkpoint, set()).add(item.kind)
    for tag in catalog.tags:
        hit = [c for c in tag.checkpoints if c.key in doomed]
        if not hit:
            continue
        whole = {c.step for c in hit if doomed[c.key] != {FileKind.OPTIM.value}}
        label = f"{tag.stage.removesuffix('_checkpoints')}/{tag.name}"
        partial = [c.step for c in hit if c.step not in whole]
        if partial:
            one = len(partial) == 1
            out.append(f"{label}: {'step' if one else 'steps'} {_steps(partial)} "
                       f"{'loses its' if one else 'lose their'} optimizer shards: "
                       f"--resume-from-step will no longer work from {'it' if one else 'them'}")
        remaining = [c for c in tag.checkpoints if c.step not in whole and c.model is not None]
        if tag.latest_step in whole:
            new = max((c.step for c in remaining), default=None)
            out.append(f"{label}: deleting the latest step {tag.latest_step}; chat/eval will "
                       + (f"load step {new} instead" if new is not None else
                          "find no checkpoint in this tag"))
        if tag.stage == "base_checkpoints" and remaining:
            last = max(remaining, key=lambda c: c.step)
            had = bool(tag.latest and tag.latest.optim)
            if had and (not last.optim or last.step in partial):
                out.append(f"{label}: chat_sft warm-starts from the last step's optimizer "
                           f"shards; step {last.step} will have none")
    return out


def _steps(steps: list[int]) -> str:
    return ", ".join(map(str, steps[:8])) + (f" and {len(steps) - 8} more" if len(steps) > 8
                                             else "")


# --------------------------------------------------------------------------------------------
# execution


@dataclass(frozen=True)
class FileResult:
    path: Path
    status: str  # "removed", "trashed", "skipped", "failed"
    detail: str = ""
    size: int = 0  # bytes removed or moved


@dataclass
class PruneResult:
    results: list[FileResult] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        """Bytes actually freed on disk (trashed files free nothing until the trash is emptied)."""
        return sum(r.size for r in self.results if r.status == "removed")

    @property
    def bytes_trashed(self) -> int:
        return sum(r.size for r in self.results if r.status == "trashed")

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.status in ("removed", "trashed") for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"schema": "nanochat-ckpt.prune-result/1", "bytes_freed": self.bytes_freed,
                "bytes_trashed": self.bytes_trashed,
                "files": [{"path": str(r.path), "status": r.status, "detail": r.detail,
                           "size": r.size} for r in self.results]}


def check_trash(trash: Path, base_dir: Path) -> Path:
    """A trash dir must be on the base dir's filesystem (else moving frees nothing there)."""
    trash = Path(trash).expanduser().absolute()
    probe = trash
    while not probe.exists():
        probe = probe.parent
    if os.stat(probe).st_dev != os.stat(base_dir).st_dev:
        raise PruneError(f"trash dir {trash} is on another filesystem than {base_dir}: moving "
                         "files there copies them and frees nothing here; pick a trash dir on "
                         "the same disk, or delete without --trash")
    base_real = os.path.realpath(base_dir)
    rel = os.path.relpath(os.path.realpath(trash), base_real)
    if not rel.startswith("..") and rel.split(os.sep)[0].endswith("_checkpoints"):
        raise PruneError(f"trash dir {trash} is inside a checkpoint stage dir, where nanochat "
                         "and this tool would see it; pick one outside the *_checkpoints dirs")
    return trash


def _trash_dest(trash: Path, base_dir: Path, path: Path) -> Path:
    try:
        rel = path.relative_to(base_dir)
    except ValueError:
        rel = Path(path.name)
    dest = trash / rel
    n = 1
    while dest.exists():
        dest = dest.with_name(f"{rel.name}.{n}")
        n += 1
    return dest


def execute(plan: PrunePlan, *, trash: Path | None = None,
            progress: Callable[[int, int], None] | None = None,
            now: Callable[[], float] = time.time) -> PruneResult:
    """Remove (or move to ``trash``) each planned file after re-checking it. Never raises
    for a single file; a bad trash dir raises :class:`PruneError` before anything is touched."""
    storage = plan.storage
    if not storage.writable:
        raise PruneError(f"{storage.display()} is read-only: nothing can be deleted there")
    base_real = storage.realpath(plan.base_dir)
    if trash is not None:
        trash = check_trash(trash, plan.base_dir)
    result = PruneResult()
    total = len(plan.items)
    for n, item in enumerate(plan.items):
        result.results.append(_execute_one(storage, item, plan.base_dir, base_real, trash,
                                           now()))
        if progress:
            progress(n + 1, total)
    return result


def _execute_one(storage: Storage, item: PlanItem, base_dir: Path, base_real: str,
                 trash: Path | None, now: float) -> FileResult:
    path = item.path
    try:
        size, mtime, is_link = storage.lstat(path)
    except FileNotFoundError:
        return FileResult(path, "skipped", "vanished since the plan")
    except OSError as e:
        return FileResult(path, "failed", f"cannot stat: {e.strerror or e}")
    if is_link or not _inside(storage.realpath(path), base_real):
        return FileResult(path, "skipped", "is now a link or outside the base dir")
    if size != item.size or abs(mtime - item.mtime) > 1e-6:
        return FileResult(path, "skipped", "changed since the plan (size or mtime)")
    if now - mtime < WRITE_WINDOW:
        return FileResult(path, "skipped", "being written")
    try:
        if trash is None:
            storage.unlink(path)
            return FileResult(path, "removed", "", size)
        dest = _trash_dest(trash, base_dir, path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        storage.rename(path, dest)  # same filesystem (checked): atomic, needs no free space
        return FileResult(path, "trashed", str(dest), size)
    except OSError as e:
        if e.errno == errno.EXDEV:
            return FileResult(path, "failed", "trash is on another filesystem; not moved")
        if e.errno == errno.ENOSPC:
            return FileResult(path, "failed", "disk full while moving to trash; file kept")
        return FileResult(path, "failed", e.strerror or str(e))
