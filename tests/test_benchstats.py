"""Latency statistics: percentiles against hand-computed values, warm-up excluded, throughput, the row shape."""

from __future__ import annotations

import random
import time

import pytest

from trtverify.benchstats import ROW_KEYS, make_row, summarize, throughput, time_calls
from trtverify.errors import UserError


def test_percentiles_linear_interpolation_by_hand() -> None:
    # 1..10: the p-th percentile sits at rank p/100 * (n - 1) = p * 0.09, interpolated between neighbours.
    s = summarize(range(1, 11))
    assert s.p50 == pytest.approx(5.5)    # rank 4.5: halfway between 5 and 6
    assert s.p90 == pytest.approx(9.1)    # rank 8.1: 9 + 0.1 * (10 - 9)
    assert s.p95 == pytest.approx(9.55)   # rank 8.55
    assert s.p99 == pytest.approx(9.91)   # rank 8.91
    assert (s.mean, s.min, s.max, s.count) == (5.5, 1.0, 10.0, 10)


def test_percentiles_of_four_values_and_order_does_not_matter() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    s = summarize(values)
    assert s.p50 == pytest.approx(25.0)   # rank 1.5 between 20 and 30
    assert s.p90 == pytest.approx(37.0)   # rank 2.7: 30 + 0.7 * 10
    assert s.p99 == pytest.approx(39.7)   # rank 2.97
    shuffled = values[:]
    random.Random(0).shuffle(shuffled)
    assert summarize(shuffled) == s


def test_single_iteration_is_every_statistic() -> None:
    s = summarize([2.5])
    assert s.as_dict() == {k: 2.5 for k in ("mean", "p50", "p90", "p95", "p99", "min", "max")}


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")], [-1.0, 2.0]])
def test_summarize_refuses_empty_or_invalid_times(bad: list[float]) -> None:
    with pytest.raises(UserError):
        summarize(bad)


class FakeClock:
    """A clock the fake workload advances: no real time passes, so the test is exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_warmup_calls_are_never_timed() -> None:
    clock, calls = FakeClock(), []

    def workload() -> None:
        calls.append(1)
        clock.now += 5.0 if len(calls) <= 3 else 0.002  # the first three calls take 5 s, the rest 2 ms

    times = time_calls(workload, warmup=3, iterations=7, clock=clock)
    assert len(calls) == 10
    assert times == pytest.approx([2.0] * 7)


def test_warmup_excluded_with_the_real_clock() -> None:
    calls = []

    def workload() -> None:
        calls.append(1)
        if len(calls) <= 2:
            time.sleep(0.05)

    times = time_calls(workload, warmup=2, iterations=5)
    assert len(times) == 5 and max(times) < 40.0  # a 50 ms warm-up call would show up as >= 50 ms


def test_warmup_shorter_than_the_slow_start_shows_in_the_statistics() -> None:
    clock, calls = FakeClock(), []

    def workload() -> None:
        calls.append(1)
        clock.now += 0.1 if len(calls) == 1 else 0.001

    s = summarize(time_calls(workload, warmup=0, iterations=10, clock=clock))
    assert s.max == pytest.approx(100.0) and s.p50 == pytest.approx(1.0)


@pytest.mark.parametrize("warmup,iterations", [(-1, 5), (0, 0)])
def test_time_calls_refuses_bad_counts(warmup: int, iterations: int) -> None:
    with pytest.raises(UserError):
        time_calls(lambda: None, warmup, iterations)


def test_throughput_is_batch_over_mean_latency() -> None:
    assert throughput(32, 4.0) == pytest.approx(8000.0)
    assert throughput(1, 0.5) == pytest.approx(2000.0)
    s = summarize([1.0, 2.0, 3.0])
    assert throughput(8, s.mean) == pytest.approx(4000.0)
    with pytest.raises(UserError):
        throughput(0, 1.0)
    with pytest.raises(UserError):
        throughput(8, 0.0)


def test_row_has_exactly_the_pinned_keys_in_order() -> None:
    assert ROW_KEYS == (
        "model", "backend", "precision", "batch", "warmup", "iterations", "cuda_graph", "copies_included",
        "latency_ms", "throughput_samples_per_s", "gpu_compute_ms", "percentile_method", "timer",
        "peak_host_rss_bytes", "gpu_memory_bytes", "device", "versions", "details",
    )
    fields = {k: None for k in reversed(ROW_KEYS)}
    assert list(make_row(**fields)) == list(ROW_KEYS)
    with pytest.raises(ValueError, match="missing"):
        make_row(**{k: None for k in ROW_KEYS[1:]})
    with pytest.raises(ValueError, match="unknown"):
        make_row(**fields, extra=1)
