"""The "prune tag" form: retention rules with a live preview of what would go."""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Static

from ..fmt import human_bytes
from ..store.prune import PruneError, PrunePlan, Rules
from .dialog import Dialog


class PruneForm(Dialog["Rules | None"]):
    """Ask for rules; ``preview(rules)`` plans them (no deletion) as the user types."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    FLEX = (("#preview-box", 2, 10),)

    def __init__(self, title: str, preview: Callable[[Rules], PrunePlan],
                 initial: Rules | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.preview = preview
        self.initial = initial
        self.rules: Rules | None = None  # the rules the preview on screen is for
        self._asked = 0  # previews asked for; a result for an older one is dropped

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
                yield Static("", id="preview")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Review deletion…", id="review", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#keep_last", Input).focus()
        self.refresh_preview()

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
        self.rules = None
        self.query_one("#review", Button).disabled = True  # until this preview is shown
        try:
            rules = self._rules()
        except (PruneError, ValueError) as e:
            self._show(self.Previewed(self._asked, None, f"[red]{e}[/]"))
            return
        self._plan(self._asked, rules)

    class Previewed(Message):
        def __init__(self, asked: int, rules: Rules | None, text: str,
                     empty: bool = True) -> None:
            super().__init__()
            self.asked, self.rules, self.text, self.empty = asked, rules, text, empty

    @work(thread=True, exclusive=True, group="prune-preview", exit_on_error=False)
    def _plan(self, asked: int, rules: Rules) -> None:
        try:
            plan = self.preview(rules)
        except PruneError as e:
            self.post_message(self.Previewed(asked, None, f"[red]{e}[/]"))
            return
        steps = ", ".join(k.rsplit("@", 1)[1] for k in plan.checkpoints[:12])
        more = f" … and {len(plan.checkpoints) - 12} more" if len(plan.checkpoints) > 12 else ""
        lines = [f"would delete [b]{len(plan.items)} files, {human_bytes(plan.bytes_freed)}[/b]"
                 + (f" from steps {steps}{more}" if plan.items else "")]
        lines += [f"[green]protected[/] {p.checkpoint}: {p.reason}" for p in plan.protected[:5]]
        lines += [f"[yellow]warning[/] {w}" for w in plan.warnings]
        self.post_message(self.Previewed(asked, rules, "\n".join(lines), plan.is_empty))

    @on(Previewed)
    def _show(self, message: Previewed) -> None:
        if message.asked != self._asked:
            return  # the rules changed since: another preview is on its way
        self.query_one("#preview", Static).update(message.text)
        self.call_after_refresh(self.fit)  # (its height changed)
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
