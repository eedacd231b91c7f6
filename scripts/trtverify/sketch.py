"""A streaming quantile sketch with a relative error bound: log-sized buckets, after DDSketch (Masson et al., 2019).

A positive value ``x`` falls in bucket ``k = ceil(log(x) / log(gamma))``, which covers ``(gamma**(k-1), gamma**k]``
with ``gamma = (1 + alpha) / (1 - alpha)``. Every value in a bucket is within relative distance ``alpha`` of the
bucket's representative ``2 * gamma**k / (gamma + 1)``, so a quantile answered by that representative is within
``alpha * x`` of the true sample value ``x`` of the same rank. Exact zeros are counted on their own (their
logarithm does not exist, and "all differences zero" must come back as exactly 0).

The quantile of rank ``q`` is the *lower* order statistic: the sorted sample at index ``floor(q * (n - 1))``
(``numpy.quantile(x, q, method="lower")``), a value that really occurred. The bound is then
``|sketch.quantile(q) - numpy.quantile(x, q, method="lower")| <= alpha * numpy.quantile(x, q, method="lower")``.

Memory does not grow with the number of values: one counter per occupied key between the smallest and the largest
key seen, and float64's range caps that at about ``1500 / log(gamma)`` keys (37,000 for alpha = 0.01, 300 KiB).
Two sketches with the same alpha merge by adding counters, so batches (or processes) can be summarised apart.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DEFAULT_RELATIVE_ACCURACY = 0.01


class QuantileSketch:
    """Counts of non-negative finite values in log-sized buckets; quantiles within ``relative_accuracy``."""

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy}")
        self.relative_accuracy = float(relative_accuracy)
        self.gamma = (1.0 + self.relative_accuracy) / (1.0 - self.relative_accuracy)
        self._log_gamma = math.log(self.gamma)
        self.count = 0
        self.zero_count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.key_offset = 0                      # key of counts[0]
        self.counts = np.zeros(0, dtype=np.int64)

    # --- adding -----------------------------------------------------------------------------------------------
    def add(self, values: Any) -> None:
        """Add every value of an array (any shape). Values must be finite and >= 0: differences, not signals."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            return
        lo, hi = float(v.min()), float(v.max())
        if not (lo >= 0.0 and math.isfinite(hi)):
            raise ValueError(f"QuantileSketch takes finite non-negative values; got a range [{lo}, {hi}]")
        self.count += v.size
        self.total += float(v.sum())
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        positive = v[v > 0.0] if lo == 0.0 else v.copy()   # a copy either way: key() works in it
        self.zero_count += v.size - positive.size
        if positive.size:
            keys = self.key(positive, in_place=True)
            self._cover(int(keys.min()), int(keys.max()))
            self.counts += np.bincount(keys - self.key_offset, minlength=self.counts.size)

    def key(self, positive: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """Bucket keys of positive values; ``in_place`` works in ``positive``'s own memory (a float64 array the caller
        no longer needs), as a batch of differences is tens of MB and each temporary costs its page faults."""
        x = np.log(positive, out=positive if in_place else None)
        x = np.divide(x, self._log_gamma, out=x if in_place else None)
        return np.ceil(x, out=x if in_place else None).astype(np.int64)

    def _cover(self, lo: int, hi: int) -> None:
        """Grow the counter array so that keys lo..hi have a counter."""
        if self.counts.size == 0:
            self.key_offset, self.counts = lo, np.zeros(hi - lo + 1, dtype=np.int64)
            return
        start, stop = min(lo, self.key_offset), max(hi, self.key_offset + self.counts.size - 1)
        if (start, stop) != (self.key_offset, self.key_offset + self.counts.size - 1):
            grown = np.zeros(stop - start + 1, dtype=np.int64)
            grown[self.key_offset - start:self.key_offset - start + self.counts.size] = self.counts
            self.key_offset, self.counts = start, grown

    def merge(self, other: "QuantileSketch") -> None:
        """Add another sketch's counts to this one (same relative accuracy only)."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("cannot merge sketches of different relative accuracy "
                             f"({self.relative_accuracy} and {other.relative_accuracy})")
        if other.count == 0:
            return
        self.count += other.count
        self.zero_count += other.zero_count
        self.total += other.total
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        if other.counts.size:
            self._cover(other.key_offset, other.key_offset + other.counts.size - 1)
            start = other.key_offset - self.key_offset
            self.counts[start:start + other.counts.size] += other.counts

    # --- reading ----------------------------------------------------------------------------------------------
    def representative(self, key: int) -> float:
        """The value reported for bucket ``key``: within relative_accuracy of everything in it."""
        return 2.0 * self.gamma ** key / (self.gamma + 1.0)

    def quantile(self, q: float) -> float | None:
        """The value of rank ``floor(q * (count - 1))``, within relative_accuracy of the true one; None if empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile rank must be in [0, 1], got {q}")
        if self.count == 0:
            return None
        if q == 0.0:
            return self.min
        if q == 1.0:
            return self.max
        rank = math.floor(q * (self.count - 1))
        if rank < self.zero_count:
            return 0.0
        index = int(np.searchsorted(np.cumsum(self.counts), rank - self.zero_count, side="right"))
        # Clamping to the exact extremes can only move the answer towards the true value, which lies between them.
        return min(max(self.representative(self.key_offset + index), self.min), self.max)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def buckets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower edges, upper edges, counts) of the occupied key range, for a histogram plot; zeros excluded."""
        nonzero = np.flatnonzero(self.counts)
        if nonzero.size == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
        keys = np.arange(nonzero[0], nonzero[-1] + 1) + self.key_offset
        counts = self.counts[nonzero[0]:nonzero[-1] + 1]
        return self.gamma ** (keys - 1.0), self.gamma ** keys.astype(np.float64), counts

    # --- plain data -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Compact JSON form: the counters from the first to the last occupied key, and the exact extremes."""
        nonzero = np.flatnonzero(self.counts)
        first, last = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, -1)
        return {
            "relative_accuracy": self.relative_accuracy,
            "count": int(self.count),
            "zero_count": int(self.zero_count),
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "sum": self.total,
            "key_offset": self.key_offset + first if nonzero.size else 0,
            "counts": [int(c) for c in self.counts[first:last + 1]],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuantileSketch":
        sketch = cls(data["relative_accuracy"])
        sketch.count, sketch.zero_count = int(data["count"]), int(data["zero_count"])
        sketch.total = float(data["sum"])
        if sketch.count:
            sketch.min, sketch.max = float(data["min"]), float(data["max"])
        sketch.key_offset = int(data["key_offset"])
        sketch.counts = np.asarray(data["counts"], dtype=np.int64)
        if int(sketch.counts.sum()) + sketch.zero_count != sketch.count:
            raise ValueError("sketch counters do not add up to its count: the data was edited or truncated")
        return sketch

    def __repr__(self) -> str:
        return (f"QuantileSketch(relative_accuracy={self.relative_accuracy}, count={self.count}, "
                f"zeros={self.zero_count}, keys={self.counts.size})")
