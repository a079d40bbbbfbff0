"""The latency budget and its fallback ladder: full model → lower scale → classical flow → blend → repeat.

Before each source pair is interpolated, the budget compares the time left until
the pair's deadline (the newer frame's arrival + budget) with what each step of
the ladder has been costing (an exponential moving average of measured times) and
picks the best step that fits. A step below the full model is a counted fallback.

A step that did not fit is tried again now and then (after ``retry_after`` source
pairs, the wait doubling after each try that still does not fit, up to
``retry_max``), and a try's measurement replaces the step's cost: one slow call (a
CUDA graph captured, a hiccup of the machine) does not shut the model out for good.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rifestream.config import LADDER_STEPS as LADDER
from rifestream.errors import RifestreamError


@dataclass
class LatencyBudget:
    """Chooses a ladder step per source pair.

    ``budget_s`` None means no budget (offline): always the full model.
    ``force`` pins one step (e.g. "blend" to measure the pipeline's own overhead).
    """

    budget_s: float | None = None
    force: str | None = None
    smoothing: float = 0.2
    retry_after: int = 30  # source pairs a step that did not fit waits before it is tried again …
    retry_max: int = 1920  # … the wait doubling per failed try up to this (about a minute at 30 fps)
    _cost_s: dict[str, float] = field(default_factory=dict)
    _skipped: dict[str, int] = field(default_factory=dict)  # pairs since the step was last run
    _wait: dict[str, int] = field(default_factory=dict)  # pairs it waits now before its next try
    _trying: str | None = None  # the step chosen as a try, until its time is recorded

    def __post_init__(self) -> None:
        if self.force is not None and self.force not in LADDER:
            raise RifestreamError(f"unknown ladder step {self.force!r}; expected one of {', '.join(LADDER)}")
        if self.budget_s is not None and self.budget_s <= 0:
            raise RifestreamError(f"latency budget must be positive, got {self.budget_s * 1000:g} ms")

    def choose(self, remaining_s: float | None, frames: int) -> str:
        """The best step whose expected cost for ``frames`` output frames fits in ``remaining_s``."""
        if self.force is not None:
            return self.force
        if self.budget_s is None or remaining_s is None:
            return "model"
        for step in LADDER[:-1]:
            cost = self._cost_s.get(step)
            if cost is None or cost * frames <= remaining_s:  # untried steps get one chance to be measured
                self._skipped[step] = 0
                self._wait.pop(step, None)
                return step
            if self._due(step, remaining_s):
                return step
        return "repeat"

    def _due(self, step: str, remaining_s: float) -> bool:
        """Whether ``step``, too slow by its cost, is tried this pair (never when already late)."""
        if remaining_s <= 0:
            return False
        if self._trying == step:  # its last try was not measured (a capture): try again now
            return True
        skipped = self._skipped[step] = self._skipped.get(step, 0) + 1
        wait = self._wait.get(step, self.retry_after)
        if skipped <= wait:
            return False
        self._skipped[step] = 0
        self._wait[step] = min(self.retry_max, 2 * wait)
        self._trying = step
        return True

    def record(self, step: str, seconds: float, frames: int) -> None:
        """Feed back the measured time of one step producing ``frames`` frames (a try's replaces the cost)."""
        if frames <= 0:
            return
        per_frame = seconds / frames
        old = self._cost_s.get(step)
        fresh = old is None or self._trying == step
        self._cost_s[step] = per_frame if fresh else old + self.smoothing * (per_frame - old)
        if self._trying == step:
            self._trying = None

    def expected_cost(self, step: str) -> float | None:
        return self._cost_s.get(step)
