"""The run statistics' latency state: fixed memory, quantiles within the stated bound."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from rifestream.pipeline.latency_histogram import (
    BUCKETS,
    HIGH_S,
    LOW_S,
    RATIO,
    RELATIVE_ERROR,
    LatencyHistogram,
    bucket_of,
)
from rifestream.pipeline.run_stats import END_TO_END, RunStats


def test_buckets_tile_the_range_and_each_sample_lands_in_its_own():
    edges = LOW_S * RATIO ** np.arange(0, BUCKETS - 1)
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True), start=1):
        assert bucket_of(float(hi)) == i  # upper bound included
        assert bucket_of(float(lo) * (1 + 1e-9)) == i  # just above the lower bound
    assert bucket_of(0.0) == bucket_of(-1.0) == bucket_of(float("nan")) == 0
    assert bucket_of(HIGH_S) == BUCKETS - 2 and bucket_of(HIGH_S * 2) == BUCKETS - 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantiles_are_within_the_stated_bound_of_the_exact_ones(seed):
    rng = np.random.default_rng(seed)
    # a latency-like mix: a bulk near 30 ms, a slow tail, a few microsecond-fast stages
    samples = np.concatenate(
        [rng.lognormal(np.log(0.03), 0.3, 20_000), rng.lognormal(np.log(0.5), 0.8, 500), rng.uniform(2e-6, 1e-4, 300)]
    )
    rng.shuffle(samples)
    h = LatencyHistogram()
    for x in samples:
        h.add(float(x))
    qs = (0.5, 0.95, 0.99, 0.999, 0.0, 1.0)
    exact = np.percentile(samples, [q * 100 for q in qs], method="inverted_cdf")
    got = h.quantiles(qs)
    rel = np.abs(np.asarray(got) / exact - 1.0)
    assert RELATIVE_ERROR < 0.01
    assert rel.max() <= RELATIVE_ERROR + 1e-12, dict(zip(qs, rel, strict=True))
    assert h.count == samples.size
    assert h.mean == pytest.approx(samples.mean(), rel=1e-9)


def test_a_single_sample_is_reported_exactly():
    h = LatencyHistogram()
    h.add(0.0123)
    assert h.quantiles((0.5, 0.99)) == [0.0123, 0.0123]


def test_stats_memory_does_not_grow_with_the_number_of_samples():
    stats = RunStats()
    stages = ("upload", "interpolate", "encode", END_TO_END)

    def feed(n: int) -> None:
        for i in range(n):
            for s in stages:
                stats.stage(s, 0.001 + (i % 997) * 1e-4)

    feed(1_000)  # every stage's histogram exists
    held = stats.state_nbytes()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        feed(200_000)  # 800k samples: the old per-stage deques would hold 100k floats each (~13 MB)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.state_nbytes() == held == len(stages) * BUCKETS * 8
    assert after - before < 64 * 1024, f"RunStats grew by {after - before} bytes over 800k samples"
    summary = stats.summary()
    assert summary.latency[END_TO_END].count == 201_000
    fed = 0.001 + (np.concatenate([np.arange(1_000), np.arange(200_000)]) % 997) * 1e-4
    exact = np.percentile(fed, 99, method="inverted_cdf")
    assert abs(summary.latency[END_TO_END].p99 / exact - 1) <= RELATIVE_ERROR
