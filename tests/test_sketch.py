"""The quantile sketch: every quantile within its relative bound of numpy's exact lower quantile, on hard inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trtverify.sketch import QuantileSketch

QS = (0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0)


def assert_within_bound(sketch: QuantileSketch, values: np.ndarray) -> None:
    alpha = sketch.relative_accuracy
    for q in QS:
        exact = float(np.quantile(values, q, method="lower"))
        got = sketch.quantile(q)
        # alpha, plus a few ulps for a value that sits on a bucket edge where log() rounds the other way.
        assert abs(got - exact) <= alpha * exact * (1 + 1e-9) + 1e-300, (q, got, exact)


def distributions(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = 5000
    return {
        "uniform": rng.uniform(0, 1, n),
        "wide_dynamic_range": 10.0 ** rng.uniform(-40, 30, n),            # 70 decades
        "subnormal_to_huge": np.concatenate([[5e-324, 1e-310, 1e300], rng.uniform(0, 1, 100)]),
        "all_zeros": np.zeros(n),
        "mostly_zeros": np.where(rng.uniform(size=n) < 0.9, 0.0, rng.exponential(size=n)),
        "duplicates": np.repeat([1e-7, 3.0, 3.0000001, 42.0], n // 4),
        "single_value": np.full(7, 0.125),
        "one_element": np.array([3.5]),
        "bucket_edges": (1.01 / 0.99) ** np.arange(-300, 300, dtype=np.float64),  # exactly on the edges
        "heavy_tail": rng.pareto(0.5, n),
    }


@pytest.mark.parametrize("alpha", [0.01, 0.05])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantiles_within_relative_bound(alpha: float, seed: int) -> None:
    for name, values in distributions(np.random.default_rng(seed)).items():
        sketch = QuantileSketch(alpha)
        sketch.add(values)
        assert sketch.count == values.size, name
        assert_within_bound(sketch, values)
        assert sketch.min == values.min() and sketch.max == values.max()
        assert sketch.mean == pytest.approx(values.mean(), rel=1e-12)


def test_all_zeros_are_exactly_zero() -> None:
    sketch = QuantileSketch()
    sketch.add(np.zeros((10, 3)))
    assert [sketch.quantile(q) for q in (0, 0.5, 0.99, 1)] == [0.0] * 4
    assert sketch.zero_count == 30 and sketch.counts.size == 0
    assert sketch.to_dict()["counts"] == []


def test_streaming_and_merging_equal_one_shot() -> None:
    rng = np.random.default_rng(7)
    values = 10.0 ** rng.uniform(-12, 2, 3001) * (rng.uniform(size=3001) > 0.1)
    whole = QuantileSketch()
    whole.add(values)
    streamed, left, right = QuantileSketch(), QuantileSketch(), QuantileSketch()
    for start in range(0, values.size, 37):
        streamed.add(values[start:start + 37])
    left.add(values[:1000])
    right.add(values[1000:])
    left.merge(right)
    for sketch in (streamed, left):
        assert sketch.to_dict()["counts"] == whole.to_dict()["counts"]
        assert sketch.zero_count == whole.zero_count and sketch.count == whole.count
        assert [sketch.quantile(q) for q in QS] == [whole.quantile(q) for q in QS]


def test_merge_into_empty_and_refuses_other_accuracy() -> None:
    full = QuantileSketch()
    full.add([1.0, 2.0, 0.0])
    empty = QuantileSketch()
    empty.merge(full)
    assert empty.quantile(0.5) == full.quantile(0.5) and empty.count == 3
    with pytest.raises(ValueError, match="relative accuracy"):
        empty.merge(QuantileSketch(0.02))


def test_round_trips_through_json() -> None:
    sketch = QuantileSketch()
    sketch.add(np.linspace(0, 1e-3, 1000))
    data = json.loads(json.dumps(sketch.to_dict()))
    again = QuantileSketch.from_dict(data)
    assert [again.quantile(q) for q in QS] == [sketch.quantile(q) for q in QS]
    assert again.count == sketch.count and again.min == sketch.min and again.max == sketch.max
    data["counts"][0] += 1
    with pytest.raises(ValueError, match="add up"):
        QuantileSketch.from_dict(data)


def test_buckets_cover_every_positive_value() -> None:
    values = np.array([1e-6, 2e-6, 1e-3, 0.0, 0.5])
    sketch = QuantileSketch()
    sketch.add(values)
    lower, upper, counts = sketch.buckets()
    assert counts.sum() == 4
    for v in values[values > 0]:
        hit = np.flatnonzero((lower <= v) & (v < upper))     # buckets are [L, U): one holds each value
        assert hit.size == 1 and counts[hit].sum() >= 1
    assert np.all(upper[:-1] == lower[1:]) and np.all(upper <= lower * (1 + 2.0 ** -sketch.bits))


def test_memory_is_bounded_by_key_range_not_count() -> None:
    sketch = QuantileSketch()
    rng = np.random.default_rng(0)
    for _ in range(20):
        sketch.add(rng.uniform(1e-3, 1.0, 10_000))
    # 10 octaves of 2**bits buckets each: the values' range, not their number
    assert sketch.counts.size <= np.ceil(np.log2(1e3)) * 2 ** sketch.bits + 1


@pytest.mark.parametrize("bad", [[-1.0], [np.nan], [np.inf]])
def test_refuses_negative_and_non_finite(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        QuantileSketch().add(bad)


@pytest.mark.parametrize("alpha", [0.3, 0.1, 0.01, 0.001])
def test_mantissa_bits_are_the_fewest_within_the_accuracy(alpha: float) -> None:
    bits = QuantileSketch(alpha).bits
    assert 2.0 ** -bits / (2 + 2.0 ** -bits) <= alpha < 2.0 ** (1 - bits) / (2 + 2.0 ** (1 - bits))


def test_refuses_a_sketch_of_other_buckets() -> None:
    data = QuantileSketch().to_dict()
    del data["mantissa_bits"]           # what a compare.py before the bit buckets wrote
    with pytest.raises(ValueError, match="rerun the compare step"):
        QuantileSketch.from_dict(data)


def test_empty_sketch() -> None:
    sketch = QuantileSketch()
    sketch.add([])
    assert sketch.quantile(0.5) is None and sketch.mean is None
    assert QuantileSketch.from_dict(sketch.to_dict()).count == 0
