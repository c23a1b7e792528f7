"""The "prune tag" form: retention rules with a live preview of what would go.

Each preview is a verified plan: the steps that decide whether the tag keeps a good checkpoint
are checked (cache first), so a preview may read files; it says how far it is, and a newer
preview (the rules changed) or closing the form cancels it. The verdicts found are shared by
every preview of the form and by the plan made after it (:attr:`PruneForm.known`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Static

from ..fmt import human_bytes
from ..store.check import CheckCancelled
from ..store.prune import PruneError, PrunePlan, Rules
from ..store.verdicts import Verdict, Verdicts
from .confirm_delete import kept_line
from .dialog import Dialog

PROGRESS_EVERY = 0.2  # seconds between two progress lines of a preview


class PreviewText(Static):
    """The preview's text: when its height changes (a verified plan lists the kept steps
    too), the form gives its box the rows again (Dialog.fit)."""

    def on_resize(self) -> None:
        screen = self.screen
        if isinstance(screen, Dialog):
            screen.fit_soon()


class PruneForm(Dialog["Rules | None"]):
    """Ask for rules; ``preview(rules, verdicts)`` plans them (no deletion) as the user
    types."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    FLEX = (("#preview-box", 2, 10),)

    def __init__(self, title: str, preview: Callable[[Rules, Verdicts], PrunePlan],
                 initial: Rules | None = None) -> None:
        """``preview(rules, verdicts)`` plans the rules (no deletion), verifying with
        ``verdicts`` (its progress and cancel are the form's)."""
        super().__init__()
        self.title_text = title
        self.preview = preview
        self.initial = initial
        self.rules: Rules | None = None  # the rules the preview on screen is for
        self.known: dict[str, Verdict] = {}  # verdicts found by the previews, by step key
        self._asked = 0  # previews asked for; a result for an older one is dropped
        self._cancel: threading.Event | None = None  # the preview in flight's

    def compose(self) -> ComposeResult:
        init = self.initial

        def val(v: int | None) -> str:
            return "" if v is None else str(v)

        with Vertical(id="dialog"):
            yield Static(f"[b]Prune {self.title_text}[/b]: keep what any rule keeps", id="title")
            with Horizontal(classes="field"):
                yield Label("keep last N steps")
                yield Input(val(init.keep_last if init else 3), id="keep_last",
                            type="integer", placeholder="N")
            with Horizontal(classes="field"):
                yield Label("keep steps that are multiples of K")
                yield Input(val(init.keep_every if init else None), id="keep_every",
                            type="integer", placeholder="K")
            with Horizontal(classes="field"):
                yield Label("keep best M by val_bpb")
                yield Input(val(init.keep_best if init else None), id="keep_best",
                            type="integer", placeholder="M")
            yield Checkbox("for the others, delete only optimizer shards (keep weights)",
                           bool(init and init.optimizer_only), id="optimizer_only")
            with VerticalScroll(id="preview-box"):
                yield PreviewText("", id="preview")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Review deletion…", id="review", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#keep_last", Input).focus()
        # The first preview after the form's first frame: its worker plans in Python (a tag
        # of 400 steps: ~0.5 s) and, sharing the GIL, made that frame twice as long.
        self.call_after_refresh(self.refresh_preview)

    def _rules(self) -> Rules:
        def num(name: str) -> int | None:
            text = self.query_one(f"#{name}", Input).value.strip()
            return int(text) if text else None

        return Rules(num("keep_last"), num("keep_every"), num("keep_best"),
                     self.query_one("#optimizer_only", Checkbox).value)

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def refresh_preview(self) -> None:
        """Plan the rules as they stand, in a worker: a tag of thousands of steps takes tens
        of milliseconds to plan, which a keystroke should not wait for."""
        self._asked += 1
        if self._cancel is not None:
            self._cancel.set()  # (its result would be dropped anyway)
            self._cancel = None
        self.rules = None
        self.query_one("#review", Button).disabled = True  # until this preview is shown
        try:
            rules = self._rules()
        except (PruneError, ValueError) as e:
            self._show(self.Previewed(self._asked, None, f"[red]{e}[/]"))
            return
        self._cancel = threading.Event()
        self._plan(self._asked, rules, self._cancel)

    class Previewed(Message):
        def __init__(self, asked: int, rules: Rules | None, text: str,
                     empty: bool = True) -> None:
            super().__init__()
            self.asked, self.rules, self.text, self.empty = asked, rules, text, empty

    class Progress(Message):
        def __init__(self, asked: int, text: str) -> None:
            super().__init__()
            self.asked, self.text = asked, text

    @work(thread=True, exclusive=True, group="prune-preview", exit_on_error=False)
    def _plan(self, asked: int, rules: Rules, cancel: threading.Event) -> None:
        t0 = time.monotonic()
        last = [0.0, 0, 0]  # time of the last line, bytes of the steps before, bytes now

        def progress(done: int, total: int) -> None:
            if done < last[2]:
                last[1] += last[2]  # (one check per step: a new one starts from 0)
            last[2] = done
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                rate = (last[1] + done) / max(now - t0, 1e-6)
                self.post_message(self.Progress(asked, (
                    f"verifying the steps kept: {human_bytes(last[1] + done)} of "
                    f"{human_bytes(last[1] + total)} read · {human_bytes(rate)}/s")))

        verdicts = Verdicts(progress=progress, cancel=cancel, known=self.known)
        try:
            plan = self.preview(rules, verdicts)
        except CheckCancelled:
            return  # (newer rules, or the form closed)
        except PruneError as e:
            self.post_message(self.Previewed(asked, None, f"[red]{e}[/]"))
            return
        except Exception as e:  # noqa: BLE001 - shown in the preview, never a crash
            self.post_message(self.Previewed(asked, None,
                                             f"[red]cannot plan: {type(e).__name__}: {e}[/]"))
            return
        steps = ", ".join(k.rsplit("@", 1)[1] for k in plan.checkpoints[:12])
        more = f" … and {len(plan.checkpoints) - 12} more" if len(plan.checkpoints) > 12 else ""
        lines = [f"would delete [b]{len(plan.items)} files, {human_bytes(plan.bytes_freed)}[/b]"
                 + (f" from steps {steps}{more}" if plan.items else "")]
        lines += [f"[red]needs a second yes[/] {escape(c)}" for c in plan.confirm]
        lines += [f"[green]protected[/] {escape(p.checkpoint)}: {escape(p.reason)}"
                  for p in plan.protected[:5]]
        lines += [kept_line(k, v) for k, v in list(plan.kept_verdicts.items())[:5]]
        lines += [f"[yellow]warning[/] {escape(w)}" for w in plan.warnings]
        self.post_message(self.Previewed(asked, rules, "\n".join(lines), plan.is_empty))

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        if message.asked == self._asked and self.rules is None:
            self.query_one("#preview", Static).update(message.text)
            self.fit_soon()

    @on(Previewed)
    def _show(self, message: Previewed) -> None:
        if message.asked != self._asked:
            return  # the rules changed since: another preview is on its way
        self.query_one("#preview", Static).update(message.text)
        self.fit_soon()  # (its height changed)
        self.rules = message.rules
        self.query_one("#review", Button).disabled = message.rules is None or message.empty

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_review()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "review":
            self.action_review()
        else:
            self.action_cancel()

    def action_review(self) -> None:
        if self.rules is not None and not self.query_one("#review", Button).disabled:
            self.dismiss(self.rules)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
