"""The app's actions on checkpoints: diff, delete, prune by rules, pin, note, archive, copy a
nanochat command, empty the trash.

A mixin for :class:`~.app.CkptApp`, kept apart from the browsing code. Every deletion is
planned with verification (the steps that decide whether a tag keeps a good checkpoint are
checked, cache first) in a thread worker whose progress is in the status bar and which Esc
cancels; it then goes through :class:`~.confirm_delete.ConfirmDelete` (and
:class:`~.confirm_delete.ConfirmLatest` for a damaged latest step) and runs in a thread
worker, deleting or moving the files into the base dir's trash. ``--read-only`` hides and
disables every action that writes to the base dir.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.widgets import Static

from ..fmt import human_bytes
from ..store.check import CheckCancelled
from ..store.layout import Catalog, Checkpoint, Tag
from ..store.pins import PinsError, update_pin
from ..store.prune import (
    PruneError,
    PrunePlan,
    PruneResult,
    Rules,
    check_trash,
    execute,
    plan_rules,
    plan_selection,
)
from ..store.trash import TrashUsage, empty_trash, trash_dir
from ..store.verdicts import Verdict, Verdicts
from .archive_dialog import ArchiveDialog, ArchiveRequest
from .checks import Throttled
from .command_menu import CommandMenu, choices
from .confirm_delete import ConfirmDelete, ConfirmLatest, latest_keys, without
from .diff_screen import DiffScreen, side_label
from .note_dialog import NoteDialog
from .prune_form import PruneForm
from .trash_dialog import EmptyTrashDialog, trash_files

if TYPE_CHECKING:
    from .detail import DetailPane
    from .tree import CheckpointTree
    from .verdict_memo import VerdictMemo

WRITES_TO_BASE = frozenset({"delete", "delete_optimizer", "prune_tag", "pin", "note",
                            "empty_trash"})
ON_THE_TREE = WRITES_TO_BASE | {"diff", "archive", "why_not", "check", "copy_command"}
# what each action would have done, for "read-only: deleting is disabled (…)"
DOING = {"delete": "deleting", "delete_optimizer": "deleting optimizer shards",
         "prune_tag": "pruning", "pin": "pinning", "note": "editing notes",
         "archive": "archiving", "empty_trash": "emptying the trash"}


class PlanReady(Message):
    """A deletion plan was made (verified) in a worker, or could not be."""

    def __init__(self, plan: PrunePlan | None, known: dict[str, Verdict],
                 error: str | None = None, cancelled: bool = False) -> None:
        super().__init__()
        self.plan, self.known, self.error, self.cancelled = plan, known, error, cancelled


class Executed(Message):
    """A plan was executed (``trash``: moved there), or refused as a whole."""

    def __init__(self, plan: PrunePlan, result: PruneResult | None, trash: Path | None,
                 error: str | None = None) -> None:
        super().__init__()
        self.plan, self.result, self.trash, self.error = plan, result, trash, error


class TrashListed(Message):
    def __init__(self, root: Path, files: list[tuple[str, int]] | None,
                 error: str | None = None) -> None:
        super().__init__()
        self.root, self.files, self.error = root, files, error


class TrashEmptied(Message):
    def __init__(self, usage: TrashUsage | None, error: str | None = None) -> None:
        super().__init__()
        self.usage, self.error = usage, error


class ManageActions:
    """Mixed into the App: needs ``tree_view``, ``catalog``, ``read_only``, ``request_scan``."""

    tree_view: CheckpointTree
    detail_pane: DetailPane
    job_line: Static
    read_only: bool
    archived_keys: set[str]
    catalog: Catalog | None
    cancels: dict[str, threading.Event]
    verdict_memo: VerdictMemo
    trash_usage: TrashUsage | None
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
        cat = self.catalog
        what = side_label(cks[0]) if len(cks) == 1 else f"{len(cks)} steps"
        self.start_plan(lambda v: plan_selection(cat, cks, optimizer_only=optimizer_only,
                                                 verdicts=v), f"the deletion of {what}")

    def action_prune_tag(self) -> None:
        obj = self.highlighted()
        tag = obj if isinstance(obj, Tag) else self._tag_of(obj) if obj else None
        if tag is None or self.catalog is None:
            self.notify("Highlight a tag (or one of its checkpoints) to prune it",
                        severity="warning")
            return
        cat = self.catalog
        label = f"{tag.stage.removesuffix('_checkpoints')}/{tag.name}"

        def preview(rules: Rules, verdicts: Verdicts) -> PrunePlan:
            return plan_rules(cat, [tag], rules, verdicts=verdicts)

        def chosen(rules: Rules | None) -> None:
            if rules is not None:  # (the verdicts the previews found are not looked for again)
                self.start_plan(lambda v: plan_rules(cat, [tag], rules, verdicts=v),
                                f"the pruning of {label}", known=form.known)

        form = PruneForm(label, preview)
        self.push_screen(form, chosen)

    def start_plan(self, make: Callable[[Verdicts], PrunePlan], what: str,
                   known: dict[str, Verdict] | None = None) -> None:
        """Make a verified plan in a worker (progress in the status bar, Esc cancels), then
        ask for confirmation."""
        if "plan" in self.cancels:
            self.notify("A deletion is already being planned (esc cancels it)",
                        severity="warning")
            return
        cancel = self.job_started("plan", f"verifying {what}… · esc cancels")  # type: ignore[attr-defined]
        self._plan(make, what, cancel, known if known is not None else {})

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False,
          description="plan a deletion")
    def _plan(self, make: Callable[[Verdicts], PrunePlan], what: str, cancel: threading.Event,
              known: dict[str, Verdict]) -> None:
        post = self.post_message  # type: ignore[attr-defined]
        verdicts = Verdicts(progress=Throttled(post, "plan", "verifying", what),
                            cancel=cancel, known=known)
        try:
            plan = make(verdicts)
        except CheckCancelled:
            post(PlanReady(None, known, cancelled=True))
        except PruneError as e:
            post(PlanReady(None, known, str(e)))
        except Exception as e:  # noqa: BLE001 - shown to the user, never a crash
            post(PlanReady(None, known, f"{type(e).__name__}: {e}"))
        else:
            post(PlanReady(plan, known))

    def on_plan_ready(self, message: PlanReady) -> None:
        self.job_ended("plan")  # type: ignore[attr-defined]
        self.remember_verdicts(message.known)
        if message.cancelled:
            self.notify("Cancelled while verifying: nothing deleted", severity="warning")
        elif message.plan is None:
            self.notify(f"Cannot plan this deletion: {message.error}", severity="error",
                        timeout=12)
        elif len(self.screen_stack) > 1:
            self.notify("The deletion was planned behind a dialog: press the key again",
                        severity="warning")
        else:
            self.confirm_plan(message.plan)

    def remember_verdicts(self, known: dict[str, Verdict]) -> None:
        """Badge the steps a plan's verification checked."""
        objects = self.tree_view.objects
        found = False
        for key, v in list(known.items()):
            ck = objects.get(key)
            if isinstance(ck, Checkpoint) and v.report is not None:
                self.verdict_memo.record(ck, v.report)
                found = True
        if found:
            self.set_verdicts(self.verdict_memo.verdicts())  # type: ignore[attr-defined]

    def trash_offer(self) -> Path | None:
        """The base dir's trash, when files can be moved there (a writable local base dir;
        the trash on the same filesystem)."""
        cat = self.catalog
        if cat is None or self.read_only or not cat.storage.writable:
            return None
        try:
            return check_trash(trash_dir(cat.base_dir), cat.base_dir)
        except (PruneError, OSError):
            return None

    def confirm_plan(self, plan: PrunePlan) -> None:
        archived = {i.path for i in plan.items if i.checkpoint in self.archived_keys}
        trash = self.trash_offer()

        def answered(choice: str | None) -> None:
            if choice not in ("delete", "trash"):
                return
            into = trash if choice == "trash" else None
            if latest_keys(plan):
                self.push_screen(ConfirmLatest(plan), lambda again: second(again, into))
            else:
                self._execute(plan, into)

        def second(again: str | None, into: Path | None) -> None:
            if again == "all":
                self._execute(plan, into)
            elif again == "rest":
                self._execute(without(plan, latest_keys(plan)), into)
            else:
                self.notify("Nothing deleted", timeout=3)

        self.push_screen(ConfirmDelete(plan, archived=archived, trash=trash), answered)

    @work(thread=True, group="prune", exit_on_error=False,
          description="delete")  # (a plan's repr lists every file)
    def _execute(self, plan: PrunePlan, trash: Path | None = None) -> None:
        try:
            result = execute(plan, trash=trash)
        except (PruneError, OSError) as e:
            self.post_message(Executed(plan, None, trash, str(e)))  # type: ignore[attr-defined]
            return
        self.post_message(Executed(plan, result, trash))  # type: ignore[attr-defined]

    def on_executed(self, message: Executed) -> None:
        plan, result = message.plan, message.result
        if result is None:
            self.notify(f"Nothing deleted: {message.error}", severity="error", timeout=12)
            return
        removed, trashed = result.count("removed"), result.count("trashed")
        others = [r for r in result.results if r.status not in ("removed", "trashed")]
        if message.trash is not None:
            msg = (f"Moved {trashed} of {len(plan.items)} files "
                   f"({human_bytes(result.bytes_trashed)}) to the trash; ctrl+p → Empty "
                   "trash frees them")
        else:
            msg = (f"Freed {human_bytes(result.bytes_freed)}: {removed} of "
                   f"{len(plan.items)} files")
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

    @work(thread=True, group="archive", exit_on_error=False, description="archive")
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

    def load_archived(self) -> None:
        """Badge the checkpoints whose bytes the remembered destination holds (after each
        scan and each archive), read in a worker."""
        if self.catalog is not None:
            self._load_archived()

    @work(thread=True, group="archived", exclusive=True, exit_on_error=False,
          description="find the archived checkpoints")  # (not a repr of the catalog)
    def _load_archived(self) -> None:
        """Read the remembered destination's manifest: a checkpoint is archived when the
        copy's sha256 is the one of its files as they are now (not only the same names). (The
        catalog is not an argument: a finished worker would keep an old one alive.)"""
        from ..store.archive import ArchiveError, last_destination
        from ..store.manifest import archived_checkpoints

        dest = last_destination()
        catalog = self.catalog
        if not dest or catalog is None:
            return
        try:
            keys = archived_checkpoints(catalog.checkpoints, dest)
        except (ArchiveError, OSError, ValueError):
            return  # no manifest there yet, or unreachable: no badges
        self.call_from_thread(self._set_archived, keys)

    def _set_archived(self, keys: set[str]) -> None:
        if keys == self.archived_keys:
            return
        self.archived_keys = keys
        self.tree_view.archived = keys
        self.tree_view.relabel()
        self.detail_pane.context.archived = keys  # (part of the pane's signature: repaints)
        self._show_current()

    # -- y: copy a nanochat command --------------------------------------------------------

    def action_copy_command(self) -> None:
        obj = self.highlighted()
        if not isinstance(obj, Checkpoint) or self.catalog is None:
            self.notify("Highlight a checkpoint to copy the nanochat command that resumes, "
                        "evaluates, chats with or fine-tunes from it", severity="warning")
            return
        base = str(self.catalog.base_dir)
        menu = CommandMenu(side_label(obj), choices(obj, base))

        def chosen(text: str | None) -> None:
            if text:
                self.copy_to_clipboard(text)  # type: ignore[attr-defined]
                self.notify(f"Copied to the clipboard: {text}", title="nanochat command",
                            timeout=10)

        self.push_screen(menu, chosen)

    # -- trash ----------------------------------------------------------------------------

    def action_empty_trash(self) -> None:
        if self.read_only:
            self.action_why_not("empty_trash")
            return
        usage = self.trash_usage
        if usage is None or not usage.files:
            self.notify("The trash is empty", timeout=3)
            return
        self._list_trash(usage.path)

    @work(thread=True, exclusive=True, group="trash", exit_on_error=False,
          description="list the trash")
    def _list_trash(self, root: Path) -> None:
        try:
            files = trash_files(root)
        except OSError as e:
            self.post_message(TrashListed(root, None, e.strerror or str(e)))  # type: ignore[attr-defined]
            return
        self.post_message(TrashListed(root, files))  # type: ignore[attr-defined]

    def on_trash_listed(self, message: TrashListed) -> None:
        if message.files is None:
            self.notify(f"Cannot list the trash: {message.error}", severity="error")
            return
        if not message.files:
            self.notify("The trash is empty", timeout=3)
            return
        if len(self.screen_stack) > 1:
            self.notify("The trash was listed behind a dialog: ctrl+p → Empty trash again",
                        severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._empty_trash()

        self.push_screen(EmptyTrashDialog(message.root, message.files), answered)

    @work(thread=True, exclusive=True, group="trash", exit_on_error=False,
          description="empty the trash")
    def _empty_trash(self) -> None:
        cat = self.catalog
        try:
            if cat is None:
                raise OSError("no base dir scanned")
            usage = empty_trash(cat.storage, cat.base_dir)
        except Exception as e:  # noqa: BLE001 - shown to the user
            self.post_message(TrashEmptied(None, f"{type(e).__name__}: {e}"))  # type: ignore[attr-defined]
            return
        self.post_message(TrashEmptied(usage))  # type: ignore[attr-defined]

    def on_trash_emptied(self, message: TrashEmptied) -> None:
        if message.error is not None:
            self.notify(f"Could not empty the trash: {message.error}", severity="error",
                        timeout=12)
        elif message.usage is None:
            self.notify("The trash was already empty", timeout=3)
        else:
            self.notify(f"Emptied the trash: freed {human_bytes(message.usage.bytes)} "
                        f"({message.usage.files} files)", timeout=6)
        self.request_scan()  # type: ignore[attr-defined]

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
