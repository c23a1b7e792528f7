"""Where in its training schedule a step is, as nanochat's base_train computes it.

``get_lr_multiplier(it)`` (scripts/base_train.py): linear warmup ``(it+1)/warmup_steps`` while
``it < warmup_steps``; 1.0 until ``num_iterations - round(warmdown_ratio × num_iterations)``;
then linear down to ``final_lr_frac`` at ``num_iterations``. The horizon is known only when the
run was given ``--num-iterations`` (``user_config.num_iterations > 0``); otherwise nanochat
derives it at run time (target FLOPs or data:param ratio) and does not save it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing is not imported at run time: CLI start-up)
if TYPE_CHECKING:
    from typing import Any

WARMUP_STEPS, WARMDOWN_RATIO, FINAL_LR_FRAC = 40, 0.65, 0.05  # base_train's defaults


class Schedule:
    """A step's place in the schedule: immutable, compared and hashed by value (what
    ``@dataclass(frozen=True)`` gave, without generating code at import)."""

    step: int
    phase: str  # "warmup", "constant", "warmdown", "done", or "unknown"
    horizon: int | None  # num_iterations, when recorded
    lrm: float | None  # the LR multiplier at this step, when the horizon is known

    def __init__(self, step: int, phase: str, horizon: int | None, lrm: float | None) -> None:
        d = self.__dict__  # (frozen: set through the dict, as a frozen dataclass does)
        d["step"], d["phase"], d["horizon"], d["lrm"] = step, phase, horizon, lrm

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[int, str, int | None, float | None]:
        return (self.step, self.phase, self.horizon, self.lrm)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return (f"Schedule(step={self.step!r}, phase={self.phase!r}, "
                f"horizon={self.horizon!r}, lrm={self.lrm!r})")

    @property
    def progress(self) -> float | None:
        return self.step / self.horizon if self.horizon else None

    def describe(self) -> str:
        """``step 2,000 / 3,000 · warmdown · lrm 0.42`` (or the phase and why it is partial)."""
        if self.horizon:
            return (f"step {self.step:,} / {self.horizon:,} · {self.phase} · "
                    f"lrm {self.lrm:.2f}")
        if self.phase == "warmup":
            return f"step {self.step:,} · warmup · horizon not recorded"
        return f"step {self.step:,} · after warmup · horizon not recorded"


def _num(cfg: dict[str, Any], key: str, default: float) -> float:
    v = cfg.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default


def schedule_of(user_config: dict[str, Any], step: int) -> Schedule | None:
    """The schedule position of ``step`` for a base_train run's ``user_config`` (None when the
    config is not a base_train one: no warmup/warmdown settings and no horizon)."""
    if not user_config or not any(k in user_config for k in
                                  ("num_iterations", "warmup_steps", "warmdown_ratio")):
        return None
    warmup = int(_num(user_config, "warmup_steps", WARMUP_STEPS))
    ratio = _num(user_config, "warmdown_ratio", WARMDOWN_RATIO)
    final = _num(user_config, "final_lr_frac", FINAL_LR_FRAC)
    n = int(_num(user_config, "num_iterations", -1))
    if n <= 0:
        return Schedule(step, "warmup" if step < warmup else "unknown", None, None)
    warmdown = round(ratio * n)
    if step < warmup:
        return Schedule(step, "warmup", n, (step + 1) / warmup)
    if step <= n - warmdown:
        return Schedule(step, "constant", n, 1.0)
    if step >= n:
        return Schedule(step, "done", n, final)
    frac = (n - step) / warmdown
    return Schedule(step, "warmdown", n, frac + (1 - frac) * final)
