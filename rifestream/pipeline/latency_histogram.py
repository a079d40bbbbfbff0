"""A fixed-size latency histogram: constant memory however many samples it sees.

Buckets are geometric: bucket ``i`` holds (``LOW · RATIO^(i-1)``, ``LOW · RATIO^i``], with one bucket
at or below ``LOW`` (1 µs) and one above the last edge (``TOP`` ≈ 1010 s, the first edge past ``HIGH``).
A quantile is the bucket that holds the sample of that rank (the "inverted CDF" definition: the
``ceil(q · n)``-th smallest), reported as the bucket's geometric midpoint and clamped to the
smallest and largest sample seen. So a reported
p50/p95/p99 lies in the same bucket as the exact one, within a factor ``sqrt(RATIO)`` of it:
at most ±1 % relative error (RATIO 1.02) for any latency between 1 µs and 1000 s.
"""

from __future__ import annotations

import math

import numpy as np

LOW_S = 1e-6
HIGH_S = 1e3
RATIO = 1.02
BUCKETS = math.ceil(math.log(HIGH_S / LOW_S) / math.log(RATIO)) + 2  # + below LOW + above HIGH
RELATIVE_ERROR = math.sqrt(RATIO) - 1.0  # the bound a reported quantile keeps (≈ 0.995 %)
TOP_S = LOW_S * RATIO ** (BUCKETS - 2)
_LOG_LOW = math.log(LOW_S)
_LOG_RATIO = math.log(RATIO)


def bucket_of(seconds: float) -> int:
    """The bucket index of one sample (0: at or below LOW_S; BUCKETS - 1: above TOP_S)."""
    if not seconds > LOW_S:  # also NaN and negatives
        return 0
    if seconds > TOP_S:
        return BUCKETS - 1
    return min(BUCKETS - 2, max(1, math.ceil((math.log(seconds) - _LOG_LOW) / _LOG_RATIO - 1e-12)))


def bucket_midpoint(index: int) -> float:
    """The geometric midpoint of bucket ``index`` (its bounds for the two end buckets)."""
    if index <= 0:
        return LOW_S
    if index >= BUCKETS - 1:
        return TOP_S
    return LOW_S * RATIO ** (index - 0.5)


class LatencyHistogram:
    """Counts of latency samples in ``BUCKETS`` fixed buckets, plus the exact count, sum, min and max."""

    __slots__ = ("counts", "count", "total", "low", "high")

    def __init__(self) -> None:
        self.counts = np.zeros(BUCKETS, dtype=np.int64)
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, seconds: float) -> None:
        self.counts[bucket_of(seconds)] += 1
        self.count += 1
        self.total += seconds
        self.low = min(self.low, seconds)
        self.high = max(self.high, seconds)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def nbytes(self) -> int:
        """Memory held by the histogram's counts (the same for 1 sample or a billion)."""
        return int(self.counts.nbytes)

    def quantiles(self, qs: tuple[float, ...]) -> list[float]:
        """The ``qs`` quantiles (each in [0, 1]) within ±``RELATIVE_ERROR`` of the exact ones."""
        if not self.count:
            raise ValueError("no samples")
        cumulative = np.cumsum(self.counts)
        result = []
        for q in qs:
            rank = max(1, math.ceil(q * self.count))  # the rank-th smallest sample
            index = int(np.searchsorted(cumulative, rank))
            result.append(min(self.high, max(self.low, bucket_midpoint(index))))
        return result
