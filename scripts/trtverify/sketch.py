"""A streaming quantile sketch with a relative error bound: buckets read off the bits of a float64.

A positive float64 ``x`` falls in bucket ``k = bits(x) >> (52 - m)``: its exponent and the first ``m`` bits of its
mantissa. Bucket ``k`` covers ``[L, U)``, ``L`` the float whose bits are ``k << (52 - m)`` and ``U`` the next
bucket's ``L``, with ``U <= L * (1 + 2**-m)``; its representative ``2 * L * U / (L + U)`` is within relative
distance ``(U - L) / (U + L) <= 2**-m / (2 + 2**-m)`` of everything in it. ``m`` is the smallest that brings this
under ``relative_accuracy`` (6 bits for 1 %). This is DDSketch's guarantee (Masson et al., 2019) with its
logarithm replaced by a shift, so a key costs one integer operation (compare's compiled pass, kernels.py, counts
the keys itself). Exact zeros are counted on their own ("all differences zero" must come back as exactly 0);
below float64's smallest normal number (2.2e-308) buckets have a fixed width of ``2**(-1074 + 52 - m)`` instead.

The quantile of rank ``q`` is the *lower* order statistic: the sorted sample at index ``floor(q * (n - 1))``
(``numpy.quantile(x, q, method="lower")``), a value that really occurred. The bound is then
``|sketch.quantile(q) - numpy.quantile(x, q, method="lower")| <= alpha * numpy.quantile(x, q, method="lower")``.

Memory does not grow with the number of values: one counter per key between the smallest and the largest key
seen, at most ``2**(11 + m)`` (131,072 for 1 %). Two sketches with the same alpha merge by adding counters, so
batches (or processes) can be summarised apart.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DEFAULT_RELATIVE_ACCURACY = 0.01


MANTISSA = 52                                # mantissa bits of a float64
LARGEST = np.array(np.finfo(np.float64).max).view(np.int64)


def mantissa_bits(relative_accuracy: float) -> int:
    """The fewest mantissa bits whose buckets keep every value within ``relative_accuracy``."""
    if not 0.0 < relative_accuracy < 1.0:
        raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy}")
    m = 0
    while 2.0 ** -m / (2.0 + 2.0 ** -m) > relative_accuracy:
        m += 1
    return m


class QuantileSketch:
    """Counts of non-negative finite values in buckets of their leading bits; quantiles within
    ``relative_accuracy``."""

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        self.bits = mantissa_bits(relative_accuracy)
        self.relative_accuracy = float(relative_accuracy)
        self.shift = MANTISSA - self.bits
        self.count = 0
        self.zero_count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.key_offset = 0                      # key of counts[0]
        self.counts = np.zeros(0, dtype=np.int64)

    @property
    def key_space(self) -> int:
        """How many keys there are (the finite positive float64s): the size of a counter array for add_counts."""
        return int(LARGEST >> self.shift) + 1

    # --- adding -----------------------------------------------------------------------------------------------
    def add(self, values: Any) -> None:
        """Add every value of an array (any shape). Values must be finite and >= 0: differences, not signals."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            return
        lo, hi = float(v.min()), float(v.max())
        if not (lo >= 0.0 and math.isfinite(hi)):
            raise ValueError(f"QuantileSketch takes finite non-negative values; got a range [{lo}, {hi}]")
        positive = v[v > 0.0]
        keys = self.key(positive)
        offset = int(keys.min()) if keys.size else 0
        self.add_counts(np.bincount(keys - offset), offset, zeros=v.size - positive.size, total=float(v.sum()),
                        lo=lo, hi=hi)

    def key(self, positive: np.ndarray) -> np.ndarray:
        """Bucket keys of positive float64 values."""
        return np.ascontiguousarray(positive, dtype=np.float64).view(np.int64) >> self.shift

    def add_counts(self, counts: np.ndarray, offset: int, *, zeros: int, total: float, lo: float, hi: float) -> None:
        """Add counters already made (``counts[i]`` values of key ``offset + i``), with the exact zeros, sum and
        range of the same values: what kernels.pair_pass counts, added once at the end."""
        occupied = np.flatnonzero(counts)
        added = int(counts.sum()) + zeros
        if added == 0:
            return
        self.count += added
        self.zero_count += zeros
        self.total += total
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        if occupied.size:
            first, last = int(occupied[0]), int(occupied[-1])
            self._cover(offset + first, offset + last)
            start = offset + first - self.key_offset
            self.counts[start:start + last - first + 1] += counts[first:last + 1]

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
        self.add_counts(other.counts, other.key_offset, zeros=other.zero_count, total=other.total, lo=other.min,
                        hi=other.max)

    # --- reading ----------------------------------------------------------------------------------------------
    def edges(self, keys: Any) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper edges ``[L, U)`` of buckets ``keys`` (the largest key's U is inf)."""
        k = np.asarray(keys, dtype=np.int64)
        return (k << self.shift).view(np.float64), ((k + 1) << self.shift).view(np.float64)

    def representative(self, key: int) -> float:
        """The value reported for bucket ``key``: within relative_accuracy of everything in it."""
        lower, upper = (float(e[0]) for e in self.edges([key]))
        return 2.0 * lower * upper / (lower + upper) if math.isfinite(upper) else lower

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
        return (*self.edges(keys), self.counts[nonzero[0]:nonzero[-1] + 1])

    # --- plain data -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Compact JSON form: the counters from the first to the last occupied key, and the exact extremes."""
        nonzero = np.flatnonzero(self.counts)
        first, last = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, -1)
        return {
            "relative_accuracy": self.relative_accuracy,
            "mantissa_bits": self.bits,
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
        if data.get("mantissa_bits") != sketch.bits:
            raise ValueError("the sketch's buckets are not the bits this trtverify reads (no or another "
                             "mantissa_bits): it was written by another version; rerun the compare step")
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
