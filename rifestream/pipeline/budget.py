"""The latency budget and its fallback ladder: full model → lower scale → blend → repeat.

Before each source pair is interpolated, the budget compares the time left until
the pair's deadline (the newer frame's arrival + budget) with what each step of
the ladder has been costing (an exponential moving average of measured times) and
picks the best step that fits. A step below the full model is a counted fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rifestream.errors import RifestreamError

LADDER = ("model", "scale", "blend", "repeat")
FALLBACK_REASONS = ("scale", "blend", "repeat", "scene_cut")


@dataclass
class LatencyBudget:
    """Chooses a ladder step per source pair.

    ``budget_s`` None means no budget (offline): always the full model.
    ``force`` pins one step (e.g. "blend" to measure the pipeline's own overhead).
    """

    budget_s: float | None = None
    force: str | None = None
    smoothing: float = 0.2
    _cost_s: dict[str, float] = field(default_factory=dict)

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
                return step
        return "repeat"

    def record(self, step: str, seconds: float, frames: int) -> None:
        """Feed back the measured time of one step producing ``frames`` frames."""
        if frames <= 0:
            return
        per_frame = seconds / frames
        old = self._cost_s.get(step)
        self._cost_s[step] = per_frame if old is None else old + self.smoothing * (per_frame - old)

    def expected_cost(self, step: str) -> float | None:
        return self._cost_s.get(step)
