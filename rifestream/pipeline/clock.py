"""The output clock: which output timestamps fall between two buffered source frames.

One rule serves 2x, any ratio and variable frame rate without drift:
for each output time T in [T0, T1) of the source pair (T0, T1), the engine makes
the frame at ``t = (T - T0) / (T1 - T0)``; t = 0 is frame0 itself. Times are exact
``Fraction`` seconds, so no rounding error accumulates over a long stream.
"""

from __future__ import annotations

import math
from fractions import Fraction

from rifestream.errors import RifestreamError


class OutputClock:
    """Output times for a fixed ``factor`` (N frames per source interval) or a fixed output ``fps``."""

    def __init__(self, *, factor: int | None = None, fps: Fraction | float | str | None = None) -> None:
        if (factor is None) == (fps is None):
            raise RifestreamError("give exactly one of factor (e.g. 2) or fps (e.g. 60)")
        if factor is not None and (int(factor) != factor or factor < 1):
            raise RifestreamError(f"factor must be a whole number ≥ 1, got {factor}")
        self.factor = int(factor) if factor is not None else None
        self.fps = Fraction(fps).limit_denominator(1001 * 1000) if fps is not None else None
        if self.fps is not None and self.fps <= 0:
            raise RifestreamError(f"fps must be positive, got {fps}")
        self._origin: Fraction | None = None

    def output_rate(self, input_rate: Fraction | None) -> Fraction | None:
        """Nominal output frame rate (None for a factor applied to an input of unknown rate)."""
        if self.fps is not None:
            return self.fps
        return None if input_rate is None else input_rate * self.factor

    def output_time_base(self, input_time_base: Fraction) -> Fraction:
        """A time base in which every output time is a whole number of ticks."""
        if self.fps is not None:
            return 1 / self.fps
        return input_time_base / self.factor

    def times_between(self, t0: Fraction, t1: Fraction) -> list[Fraction]:
        """Output times T with t0 ≤ T < t1 (t0 itself when it is on the output grid)."""
        if t1 <= t0:
            return []
        if self._origin is None:
            self._origin = t0
        if self.factor is not None:
            step = (t1 - t0) / self.factor
            return [t0 + j * step for j in range(self.factor)]
        period = 1 / self.fps
        k = math.ceil((t0 - self._origin) / period)
        times = []
        while self._origin + k * period < t1:
            times.append(self._origin + k * period)
            k += 1
        return times

    def is_output_time(self, t: Fraction) -> bool:
        """Whether a lone source time (the last frame of a stream) falls on the output grid."""
        if self.factor is not None or self._origin is None:
            return True
        return ((t - self._origin) * self.fps).denominator == 1

    @staticmethod
    def position(time: Fraction, t0: Fraction, t1: Fraction) -> float:
        """t = (T - T0) / (T1 - T0)."""
        return float((time - t0) / (t1 - t0))
