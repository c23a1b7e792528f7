"""The app's actions on checkpoints: diff, delete, prune by rules, pin, note, archive.

A mixin for :class:`~.app.CkptApp`, kept apart from the browsing code. Every deletion goes
through :class:`~.confirm_delete.ConfirmDelete` and runs in a thread worker; ``--read-only``
hides and disables every action that writes to the base dir.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from textual import work
from textual.widgets import Static

from ..fmt import human_bytes
from ..store.layout import Checkpoint, Tag
from ..store.pins import PinsError, update_pin
from ..store.prune import PrunePlan, PruneResult, Rules, execute, plan_rules, plan_selection
from .archive_dialog import ArchiveDialog, ArchiveRequest
from .confirm_delete import ConfirmDelete
from .diff_screen import DiffScreen, side_label
from .note_dialog import NoteDialog
from .prune_form import PruneForm

if TYPE_CHECKING:
    from .detail import DetailPane
    from .tree import CheckpointTree

WRITES_TO_BASE = frozenset({"delete", "delete_optimizer", "prune_tag", "pin", "note"})
ON_THE_TREE = WRITES_TO_BASE | {"diff", "archive", "why_not"}
# what each action would have done, for "read-only: deleting is disabled (…)"
DOING = {"delete": "deleting", "delete_optimizer": "deleting optimizer shards",
         "prune_tag": "pruning", "pin": "pinning", "note": "editing notes",
         "archive": "archiving"}


class ManageActions:
    """Mixed into the App: needs ``tree_view``, ``catalog``, ``read_only``, ``request_scan``."""

    tree_view: CheckpointTree
    detail_pane: DetailPane
    job_line: Static
    read_only: bool
    archived_keys: set[str]
    _archive_cancel: threading.Event | None = None

    # -- read-only ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False hides the binding from the footer and never runs it. The actions on the tree's
        # selection only run on the main screen, never from behind a diff or a dialog.
        if action in ON_THE_TREE and len(self.screen_stack) > 1:
            return False
        if action == "archive" and getattr(self, "remote_url", None):
            return False  # archiving copies local files; a remote base is only browsed
        return not (self.read_only and action in WRITES_TO_BASE)

    def action_why_not(self, action: str) -> None:
        """A key whose action is off here: say why, rather than do nothing."""
        doing = DOING.get(action, action)
        if getattr(self, "remote_url", None):
            why = f"{doing} is disabled: a remote base dir is only browsed" if \
                action != "archive" else "archiving copies local files: a remote base dir " \
                "is only browsed"
        else:
            why = f"{doing} is disabled (opened with --read-only)"
        self.notify(f"read-only: {why}", severity="warning", timeout=5)

    # -- selection ------------------------------------------------------------------------

    def marked(self) -> list[Checkpoint]:
        tree = self.tree_view
        cks = [tree.objects[k] for k in tree.marks if isinstance(tree.objects.get(k), Checkpoint)]
        return sorted(cks, key=lambda c: (c.stage, c.tag, c.step))

    def highlighted(self) -> Checkpoint | Tag | None:
        obj = self.tree_view.obj(self.tree_view.current)
        return obj if isinstance(obj, Checkpoint | Tag) else None

    def selection(self) -> list[Checkpoint]:
        """The marked checkpoints, else the highlighted one."""
        marked = self.marked()
        if marked:
            return marked
        obj = self.highlighted()
        return [obj] if isinstance(obj, Checkpoint) else []

    def marks_changed(self) -> None:
        n = len(self.tree_view.marks)
        if n == 3:
            self.notify("3 marked: d compares exactly two (unmark one, or u clears all); "
                        "x deletes every marked checkpoint", timeout=6)

    # -- diff -----------------------------------------------------------------------------

    def action_diff(self) -> None:
        marked = self.marked()
        if len(marked) > 2:
            self.notify(f"{len(marked)} marked: d compares exactly two (u clears marks)",
                        severity="warning")
            return
        obj = self.highlighted()
        if len(marked) == 2:
            a, b = marked
        elif len(marked) == 1 and isinstance(obj, Checkpoint) and obj.key != marked[0].key:
            a, b = marked[0], obj
        else:
            b = marked[0] if marked else obj
            if not isinstance(b, Checkpoint):
                self.notify("Highlight a checkpoint, or mark two with space, then press d",
                            severity="warning")
                return
            tag = self._tag_of(b)
            earlier = [c for c in (tag.checkpoints if tag else []) if c.step < b.step
                       and c.weights is not None]
            if not earlier:
                self.notify(f"{side_label(b)} has no earlier step to compare with",
                            severity="warning")
                return
            a = earlier[-1]
        if (a.stage, a.tag) == (b.stage, b.tag) and a.step > b.step or \
                (a.stage, a.tag) != (b.stage, b.tag) and a.mtime > b.mtime:
            a, b = b, a  # older first, so B − A is how training moved
        for ck in (a, b):
            if ck.is_writing:
                self.notify(f"{side_label(ck)} is still being written", severity="warning")
                return
            if ck.weights is None:
                self.notify(f"{side_label(ck)} has no model file", severity="warning")
                return
        self.push_screen(DiffScreen(a, b))

    def _tag_of(self, ck: Checkpoint) -> Tag | None:
        cat = self.catalog
        stage = cat.stage(ck.stage) if cat else None
        return stage.tag(ck.tag) if stage else None

    # -- delete and prune -----------------------------------------------------------------

    def action_delete(self) -> None:
        self._delete(optimizer_only=False)

    def action_delete_optimizer(self) -> None:
        self._delete(optimizer_only=True)

    def _delete(self, optimizer_only: bool) -> None:
        cks = self.selection()
        obj = self.highlighted()
        if not cks and isinstance(obj, Tag):  # a tag's row: its steps (those shown)
            cks = self.tree_view.shown_steps(obj)
            if not cks:
                self.notify(f"{obj.name} has no steps to delete", severity="warning")
                return
        if not cks or self.catalog is None:
            self.notify("Highlight a checkpoint or a tag, or mark (space) the checkpoints to "
                        "delete", severity="warning")
            return
        self.confirm_plan(plan_selection(self.catalog, cks, optimizer_only=optimizer_only))

    def action_prune_tag(self) -> None:
        obj = self.highlighted()
        tag = obj if isinstance(obj, Tag) else self._tag_of(obj) if obj else None
        if tag is None or self.catalog is None:
            self.notify("Highlight a tag (or one of its checkpoints) to prune it",
                        severity="warning")
            return
        cat = self.catalog

        def preview(rules: Rules) -> PrunePlan:
            return plan_rules(cat, [tag], rules)

        def chosen(rules: Rules | None) -> None:
            if rules is not None:
                self.confirm_plan(plan_rules(cat, [tag], rules))

        label = f"{tag.stage.removesuffix('_checkpoints')}/{tag.name}"
        self.push_screen(PruneForm(label, preview), chosen)

    def confirm_plan(self, plan: PrunePlan) -> None:
        archived = {i.path for i in plan.items if i.checkpoint in self.archived_keys}

        def answered(yes: bool | None) -> None:
            if yes:
                self._execute(plan)

        self.push_screen(ConfirmDelete(plan, archived=archived), answered)

    @work(thread=True, group="prune", exit_on_error=False)
    def _execute(self, plan: PrunePlan) -> None:
        result = execute(plan)
        self.call_from_thread(self._executed, plan, result)

    def _executed(self, plan: PrunePlan, result: PruneResult) -> None:
        removed = result.count("removed")
        others = [r for r in result.results if r.status not in ("removed", "trashed")]
        msg = f"Freed {human_bytes(result.bytes_freed)}: {removed} of {len(plan.items)} files"
        if others:  # every file that stayed, with why (up to a dozen: a toast is small)
            details = "; ".join(f"{r.path.name}: {r.status}: {r.detail}" for r in others[:12])
            more = f"; and {len(others) - 12} more" if len(others) > 12 else ""
            self.notify(f"{msg}. Not removed: {details}{more}", severity="warning",
                        timeout=12)
        else:
            self.notify(msg, timeout=6)
        gone = {i.checkpoint for i in plan.items if i.kind != "optim"}
        self.tree_view.marks -= gone
        self.changed({i.checkpoint for i in plan.items})

    # -- pins and notes -------------------------------------------------------------------

    def action_pin(self) -> None:
        cks = self.selection()
        if not cks:
            self.notify("Highlight or mark a checkpoint to pin", severity="warning")
            return
        pin = not all(c.pinned for c in cks)
        try:
            for ck in cks:
                update_pin(ck.dir, ck.step, pinned=pin)
        except PinsError as e:
            self.notify(str(e), severity="error", timeout=12)
        else:
            word = "Pinned" if pin else "Unpinned"
            self.notify(f"{word} {', '.join(side_label(c) for c in cks[:4])}"
                        + (" …" if len(cks) > 4 else ""), timeout=3)
        self.changed({c.key for c in cks})

    def action_note(self) -> None:
        obj = self.highlighted()
        if not isinstance(obj, Checkpoint):
            self.notify("Highlight a checkpoint to write its note", severity="warning")
            return
        ck = obj

        def save(note: str | None) -> None:
            if note is None:
                return
            try:
                update_pin(ck.dir, ck.step, note=note, clear_note=not note)
            except PinsError as e:
                self.notify(str(e), severity="error", timeout=12)
            self.changed({ck.key})

        self.push_screen(NoteDialog(side_label(ck), ck.note), save)

    # -- archive --------------------------------------------------------------------------

    def action_archive(self) -> None:
        from ..store.archive import last_destination

        cks = [c for c in self.selection() if c.step >= 0]
        if not cks:
            self.notify("Highlight or mark the checkpoints to archive", severity="warning")
            return
        if self._archive_cancel is not None:
            self.notify("An archive is already running (palette: Cancel archive)",
                        severity="warning")
            return
        what = side_label(cks[0]) if len(cks) == 1 else f"{len(cks)} checkpoints"

        def go(req: ArchiveRequest | None) -> None:
            if req is not None:
                self._archive_cancel = threading.Event()
                self.set_job(f"archiving {what} to {req.dest}…")
                self._archive(cks, req, self._archive_cancel)

        self.push_screen(ArchiveDialog(what, last_destination()), go)

    def action_cancel_archive(self) -> None:
        if self._archive_cancel is not None:
            self._archive_cancel.set()

    @work(thread=True, group="archive", exit_on_error=False)
    def _archive(self, cks: list[Checkpoint], req: ArchiveRequest,
                 cancel: threading.Event) -> None:
        from ..store.archive import ArchiveError, archive

        last = [0.0]

        def progress(p: Any) -> None:
            now = time.monotonic()
            if now - last[0] > 0.2 or p.bytes_done == p.bytes_total:
                last[0] = now
                self.call_from_thread(
                    self.set_job, f"archiving: {human_bytes(p.bytes_done)} of "
                    f"{human_bytes(p.bytes_total)} · {human_bytes(p.rate)}/s · {p.phase} "
                    f"{p.file} · ctrl+p → Cancel archive")

        try:
            result = archive(cks, req.dest, with_optimizer=req.with_optimizer,
                             progress=progress, cancel=cancel)
        except ArchiveError as e:
            self.call_from_thread(self._archived, None, str(e))
            return
        self.call_from_thread(self._archived, result, None)

    def _archived(self, result: Any, error: str | None) -> None:
        self._archive_cancel = None
        self.set_job(None)
        if error is not None:
            self.notify(f"Archive refused: {error}", severity="error", timeout=12)
            return
        failed = result.count("failed")
        if result.cancelled:
            self.notify("Archive cancelled; run it again to resume", severity="warning")
        elif failed:
            self.notify(f"Archive: {failed} files failed; {len(result.archived)} checkpoints "
                        f"complete at {result.dest}", severity="warning", timeout=12)
        else:
            self.notify(f"Archived and verified {len(result.archived)} checkpoints to "
                        f"{result.dest} ({human_bytes(result.bytes_copied)} copied)", timeout=8)
        self.load_archived()

    @work(thread=True, group="archived", exclusive=True, exit_on_error=False)
    def load_archived(self) -> None:
        """Read the remembered destination's manifest for the "archived" badges."""
        from ..store.archive import ArchiveError, archived_steps, last_destination

        dest = last_destination()
        if not dest:
            return
        try:
            keys = {f"{stage}/{tag}@{step}" for stage, tag, step in archived_steps(dest)}
        except (ArchiveError, OSError, ValueError):
            return  # no manifest there yet, or unreachable: no badges
        self.call_from_thread(self._set_archived, keys)

    def _set_archived(self, keys: set[str]) -> None:
        self.archived_keys = keys
        self.tree_view.archived = keys
        self.tree_view.relabel()
        self.detail_pane.context.archived = keys  # (part of the pane's signature: repaints)
        self._show_current()

    # -- after a change -------------------------------------------------------------------

    def changed(self, keys: set[str]) -> None:
        """The app changed these checkpoints on disk (pin, note, deletion): forget what the
        detail pane read for them and rescan; the rescan repaints the tree and the pane."""
        self.detail_pane.invalidate(keys)
        self.request_scan()

    def set_job(self, text: str | None) -> None:
        job = self.job_line
        job.display = text is not None
        if text is not None:
            job.update(text)
