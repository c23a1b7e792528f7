"""Whether a step is good, for decisions that delete: cheap states first, then a check (cache
first), remembered for one plan.

A step is *good* when its state is complete (or only "writing" inside the write window with
whole zips, or weights-only) and a :func:`.check.check` of its files finds nothing wrong.
:func:`newest_good_guard` keeps a plan from deleting a tag's newest good step: the promise that
pruning never leaves a tag with only broken checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .check import check
from .check_cache import CheckCache
from .check_report import DAMAGED, GOOD, UNCHECKED, UNHEALTHY, CheckReport
from .layout import Checkpoint, State, Tag
from .stream import CancelLike, ProgressFn

# states that say "nanochat cannot use this step" without reading a byte more
_BROKEN = {State.CORRUPT: DAMAGED, State.UNREADABLE: DAMAGED, State.BAD_META: UNHEALTHY,
           State.ORPHAN: UNHEALTHY}


@dataclass
class Verdict:
    verdict: str  # good, damaged, unhealthy, unchecked
    why: str = ""  # the first reason, when not good
    report: CheckReport | None = None

    @property
    def good(self) -> bool:
        return self.verdict == GOOD

    def describe(self) -> str:
        return self.verdict + (f": {self.why}" if self.why else "")


@dataclass
class Verdicts:
    """Verdicts of steps, each decided once: from the state when it already says the step is
    broken, else by a check (files cached by version are not read again)."""

    cache: CheckCache | None = None
    progress: ProgressFn | None = None
    cancel: CancelLike | None = None
    known: dict[str, Verdict] = field(default_factory=dict)

    def of(self, ck: Checkpoint) -> Verdict:
        got = self.known.get(ck.key)
        if got is None:
            got = self.known[ck.key] = self._decide(ck)
        return got

    def _decide(self, ck: Checkpoint) -> Verdict:
        if ck.weights is None:
            return Verdict(UNHEALTHY, "no model file")
        broken = _BROKEN.get(ck.state)
        if broken is not None:
            return Verdict(broken, ck.problems[0] if ck.problems else ck.state.value)
        if not ck.openable:
            return Verdict(UNCHECKED, "still being written")
        report = check([ck], cache=self.cache, progress=self.progress, cancel=self.cancel)[0]
        probs = report.problems
        return Verdict(report.verdict, str(probs[0]) if probs else
                       (report.unchecked_why or ""), report)


def newest_good_guard(tag: Tag, deleted: set[int], verdicts: Verdicts, *,
                      latest_allowed: bool = False) -> tuple[int, str] | None:
    """If deleting the ``deleted`` steps (their weights) would remove the tag's newest good
    step, that step and the reason to keep it; else None. Steps are judged from the newest
    down, stopping at the first good one, so only what the decision needs is checked.

    ``latest_allowed`` (the user explicitly allowed deleting the latest step): deleting good
    newer steps is fine as long as an older good step is kept, which becomes the newest."""
    if not deleted:
        return None
    bad: list[str] = []
    first_good: int | None = None
    for ck in sorted((c for c in tag.checkpoints if c.weights is not None),
                     key=lambda c: c.step, reverse=True):
        v = verdicts.of(ck)
        if v.good:
            if ck.step not in deleted:
                return None
            if first_good is None:
                first_good = ck.step
            if not latest_allowed:
                break
        elif first_good is None:
            bad.append(f"{ck.step} is {v.describe()}")
    if first_good is None:
        return None
    why = "; ".join(bad[:2]) + (f" and {len(bad) - 2} more" if len(bad) > 2 else "")
    return first_good, "newest good checkpoint of its tag" + (f" (step {why})" if why else "")


def latest_is_bad(ck: Checkpoint, verdicts: Verdicts | None) -> Verdict | None:
    """The latest step's verdict when it is damaged or unhealthy (so it may be deleted, after
    an explicit confirmation), else None."""
    broken = _BROKEN.get(ck.state)
    if broken is not None or ck.weights is None:
        return Verdict(broken or UNHEALTHY, ck.problems[0] if ck.problems else "no model file")
    if verdicts is None:
        return None
    v = verdicts.of(ck)
    return v if v.verdict in (DAMAGED, UNHEALTHY) else None

