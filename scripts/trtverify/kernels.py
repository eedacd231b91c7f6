"""Compare's passes over every element, compiled (numba): one loop per backend and one per pair and batch.

In numpy each statistic was its own pass over a float64 copy (about 25 per pair, half of them the quantile
sketch's), which held compare near 0.1 GB/s; one compiled loop reads each element once and keeps every sum in a
register. The definitions are metrics.py's; tests/test_kernels.py checks each figure against plain numpy.

The passes (and one more over the reference, for its output profile) take a batch's rows as ``native`` gives
them (float32 or float64; float16 widened to float32), widen each element to float64, which is exact, and release
the GIL, so backends and pairs can run on several threads. Compiled code is cached next to
this file (numba's ``cache=True``), so only the first run after an install or an edit compiles.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np

from .errors import require

# Every environment the rules use has numba (envs/lock.yaml); a hand-made one without it gets the remedy, not a
# bare ModuleNotFoundError.
numba = require("numba", purpose="compare's compiled passes (trtverify.kernels)",
                hint="pip install numba (envs/requirements-local.txt and envs/tensorflow.yaml pin its version)")
njit = numba.njit


def _load_lowerings_without_blas() -> None:
    """Import numba's array lowerings with scipy.linalg marked absent, then unmark it.

    numba.np.arraymath, which every first call of a compiled pass loads (from the cache too), checks at import
    whether np.dot can compile by importing scipy.linalg: 0.17 s of a 0.7 s compare (SciPy's array API layer,
    numpy.f2py). No pass here calls BLAS. A None in sys.modules makes that import fail, which numba takes as "no
    BLAS" for this process; the mark is removed at once, so anything else may import scipy.linalg as usual. When
    either module is already loaded there is nothing to save, and nothing is touched.
    """
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    sys.modules["scipy.linalg"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("numba.np.arraymath")
    finally:
        if sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


_load_lowerings_without_blas()

# A pair's scalar figures, in the order pair_pass returns them (index names for the caller).
DIFFERING, FIRST_DIFFERENCE, OUTSIDE, FINITE, ZEROS, SUM_ABS, MAX_ABS, MIN_ABS, SUM_REL, MAX_REL = range(10)
FIGURES = MAX_REL + 1


def native(x: Any) -> np.ndarray:
    """Rows as the passes take them: float32 or float64 (float16 widened: exact), native byte order, contiguous."""
    x = np.asarray(x)
    return np.ascontiguousarray(x, dtype=np.float64 if x.dtype.itemsize > 4 else np.float32)


def bits(x: np.ndarray) -> np.ndarray:
    """The array's values as integers of their width: equal integers are the same value with the same sign."""
    return x.view(np.int64 if x.itemsize == 8 else np.int32)


# Sums may be reassociated, so that LLVM runs the loops over a row in SIMD lanes; nothing else of fast math (NaN
# and Inf keep their meaning, no fused multiply-add moves a bound).
LANES = {"reassoc", "nsz"}
BLOCK = 16      # classes per block of a top-k search (_top_k); _max16 is written for 16
COPIES = 4      # copies of a pair's sketch counters (_count); a power of two
# The exponent bits of float32 and float64: all ones is NaN or Inf. The float64 one is also +inf's bits.
EXPONENT_32, EXPONENT_64 = 0x7F800000, 0x7FF0000000000000


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _finite(bits: np.ndarray, exponent: int) -> bool:
    """Whether every value of a row is finite, from its bits: NaN and Inf are the values whose exponent bits are
    all ones. An integer loop over indices (numba's array iterator kept LLVM from vectorising it: 6x slower), so it
    runs in SIMD lanes."""
    bad = 0
    for j in range(bits.size):
        bad += (bits[j] & exponent) == exponent
    return bad == 0


# Only ever called on a row known to be finite, where NaN and Inf cannot occur: full fast math is exact there.
@njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _max16(b: np.ndarray, start: int) -> float:
    """The maximum of b[start:start + 16] as a tree of pairwise maxima, in b's own type (the maximum is one of the
    values, so widening it afterwards is exact). A loop is one chain of 15 comparisons, each waiting on the one
    before: three times slower."""
    m0, m1 = max(b[start], b[start + 1]), max(b[start + 2], b[start + 3])
    m2, m3 = max(b[start + 4], b[start + 5]), max(b[start + 6], b[start + 7])
    m4, m5 = max(b[start + 8], b[start + 9]), max(b[start + 10], b[start + 11])
    m6, m7 = max(b[start + 12], b[start + 13]), max(b[start + 14], b[start + 15])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _block_maxima(row: np.ndarray, maxima: np.ndarray) -> None:
    """The maximum of each block of BLOCK (16) classes; the last block may be shorter."""
    full = row.size // BLOCK
    for i in range(full):
        maxima[i] = _max16(row, i * BLOCK)
    if full < maxima.size:
        high = row[full * BLOCK]
        for j in range(full * BLOCK + 1, row.size):
            high = max(high, row[j])
        maxima[full] = high


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _insert(v: float, j: int, k: int, filled: int, best: np.ndarray, top: np.ndarray) -> int:
    """Put class j of value v among the ``filled`` best so far (at most k kept, best first); a strict > keeps an
    earlier class ahead of an equal one, as a stable sort of -row does (-0 == +0). Returns the new count."""
    if filled == k and not v > best[k - 1]:
        return filled
    p = filled if filled < k else k - 1
    while p > 0 and v > best[p - 1]:
        if p < k:
            best[p], top[p] = best[p - 1], top[p - 1]
        p -= 1
    best[p], top[p] = v, j
    return filled + 1 if filled < k else k


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _top_k(row: np.ndarray, k: int, maxima: np.ndarray, best: np.ndarray, top: np.ndarray) -> None:
    """The k highest classes of a finite row, in the order of a stable argsort of -row. Each of the k best
    values is at least the k-th highest block maximum T (k blocks hold a value >= T), so only the blocks whose
    maximum reaches T are searched, in class order."""
    _block_maxima(row, maxima)
    filled = 0
    for i in range(maxima.size):
        filled = _insert(maxima[i], i, k, filled, best, top)
    threshold = best[filled - 1]
    filled = 0
    for i in range(maxima.size):
        if maxima[i] >= threshold:
            for j in range(i * BLOCK, min((i + 1) * BLOCK, row.size)):
                filled = _insert(np.float64(row[j]), j, k, filled, best, top)


@njit(cache=True, nogil=True, error_model="numpy")
def backend_pass(x: np.ndarray, bits: np.ndarray, k: int, top: np.ndarray, finite_rows: np.ndarray
                 ) -> tuple[int, int, int]:
    """Per row: whether every value is finite, and the k highest classes of a finite row (``_top_k``); rows with
    NaN or Inf are left to the caller. ``bits``: x viewed as integers of its width. Returns the batch's NaN count,
    Inf count and the flat index of its first non-finite element (-1: none)."""
    n, c = x.shape
    nan = inf = 0
    first = -1
    best, maxima = np.empty(k, dtype=np.float64), np.empty((c + BLOCK - 1) // BLOCK, dtype=np.float64)
    exponent = EXPONENT_32 if x.itemsize == 4 else EXPONENT_64
    for r in range(n):
        finite_rows[r] = _finite(bits[r], exponent)
        if finite_rows[r]:
            _top_k(x[r], k, maxima, best, top[r])
            continue
        for j in range(c):
            v = x[r, j]
            if not np.isfinite(v):
                nan += 1 if np.isnan(v) else 0
                inf += 0 if np.isnan(v) else 1
                first = r * c + j if first < 0 else first
    return nan, inf, first


@njit(cache=True, nogil=True, fastmath=LANES, error_model="numpy")
def _finite_row(a: np.ndarray, b: np.ndarray, a_bits: np.ndarray, b_bits: np.ndarray, rtol: float, atol: float,
                relative_floor: float, d_row: np.ndarray, rel_row: np.ndarray, sums: np.ndarray) -> int:
    """Two finite rows: ``|a - b|`` and the relative difference of each element into the row buffers, the row's
    sums into ``sums`` (a.b, |a|^2, |b|^2, sum |a - b|, sum rel), and the count of elements outside the bound
    (returned) and of differing bits (``sums[5]``). Branch-free, so the loop runs in SIMD lanes."""
    s_dot = s_a = s_b = s_abs = s_rel = 0.0
    outside = differing = 0
    for j in range(a.size):
        x, y = np.float64(a[j]), np.float64(b[j])    # float() keeps a float32 a float32 in numba
        d, m = abs(x - y), abs(x)
        rel = d / max(m, relative_floor)
        d_row[j], rel_row[j] = d, rel
        s_dot += x * y
        s_a += x * x
        s_b += y * y
        s_abs += d
        s_rel += rel
        outside += d > rtol * m + atol
        differing += a_bits[j] != b_bits[j]
    sums[0], sums[1], sums[2], sums[3], sums[4], sums[5] = s_dot, s_a, s_b, s_abs, s_rel, differing
    return outside


@njit(cache=True, nogil=True, error_model="numpy")
def pair_pass(a: np.ndarray, b: np.ndarray, a_bits: np.ndarray, b_bits: np.ndarray, rows_finite: np.ndarray,
              rtol: float, atol: float, relative_floor: float, shift: int, counts: np.ndarray,
              dot: np.ndarray, norm_a: np.ndarray, norm_b: np.ndarray) -> np.ndarray:
    """One pair over one batch; ``a`` is the reference. ``*_bits``: the same arrays viewed as integers of their
    width (equal bits: the same value and sign; two NaN count as equal); ``rows_finite``: both rows are finite.

    Per element ``d = |a - b|`` in float64: counted in bucket ``bits(d) >> shift`` of ``counts`` (the
    sketch's buckets, made by ``counters``; exact zeros apart) and in the sums, and outside when
    ``d > atol + rtol * |a|``; an element where ``d`` or ``|a|`` is not finite is outside unless equal and in no
    other figure. Per row: ``a.b``, ``|a|^2`` and ``|b|^2`` (meaningful for finite rows). Returns the scalar
    figures indexed by the module's constants."""
    n, c = a.shape
    out = np.zeros(FIGURES)
    out[FIRST_DIFFERENCE], out[MIN_ABS] = -1.0, np.inf
    d_row, rel_row, sums = np.empty(c), np.empty(c), np.empty(6)
    d_bits, rel_bits = d_row.view(np.int64), rel_row.view(np.int64)
    for r in range(n):
        fast = rows_finite[r]
        if fast:
            outside = _finite_row(a[r], b[r], a_bits[r], b_bits[r], rtol, atol, relative_floor, d_row, rel_row,
                                  sums)
            fast = np.isfinite(sums[3])      # float64 inputs near 1e308: a - b overflowed, take the checked path
        if fast:
            dot[r], norm_a[r], norm_b[r] = sums[0], sums[1], sums[2]
            out[DIFFERING] += sums[5]
            out[OUTSIDE] += outside
            out[FINITE] += c
            out[SUM_ABS] += sums[3]
            out[SUM_REL] += sums[4]
            first_at = 0 if sums[5] > 0 and out[FIRST_DIFFERENCE] < 0 else c
        else:
            first_at = _checked_row(a[r], b[r], a_bits[r], b_bits[r], rtol, atol, relative_floor, d_row, rel_row,
                                    sums, out)
            dot[r], norm_a[r], norm_b[r] = sums[0], sums[1], sums[2]
        for j in range(first_at, c):       # the batch's first differing element, looked for once
            if a_bits[r, j] != b_bits[r, j] and not (np.isnan(a[r, j]) and np.isnan(b[r, j])):
                out[FIRST_DIFFERENCE] = r * c + j
                break
        _count(d_bits, rel_bits, shift, counts, out)
    return out


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _checked_row(a: np.ndarray, b: np.ndarray, a_bits: np.ndarray, b_bits: np.ndarray, rtol: float, atol: float,
                 relative_floor: float, d_row: np.ndarray, rel_row: np.ndarray, sums: np.ndarray,
                 out: np.ndarray) -> int:
    """A row with NaN, Inf or an overflowing difference, element by element: what is not finite is outside unless
    equal, and is left out of the figures and the sketch (-1 in the row buffers); a.b, |a|^2 and |b|^2 into
    ``sums`` as they come. Returns where to look for the first difference (0, or past the row when one is
    already known)."""
    sums[:3] = 0.0
    for j in range(a.size):
        x, y = np.float64(a[j]), np.float64(b[j])
        sums[0] += x * y
        sums[1] += x * x
        sums[2] += y * y
        equal = a_bits[j] == b_bits[j] or (np.isnan(x) and np.isnan(y))
        out[DIFFERING] += 0 if equal else 1
        d, m = abs(x - y), abs(x)
        d_row[j] = rel_row[j] = -1.0
        if not (np.isfinite(d) and np.isfinite(m)):
            out[OUTSIDE] += 0 if equal else 1
            continue
        rel = d / max(m, relative_floor)
        d_row[j], rel_row[j] = d, rel
        out[FINITE] += 1
        out[SUM_ABS] += d
        out[SUM_REL] += rel
        out[OUTSIDE] += d > rtol * m + atol
    return 0 if out[FIRST_DIFFERENCE] < 0 else a.size


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _count(d_bits: np.ndarray, rel_bits: np.ndarray, shift: int, counts: np.ndarray, out: np.ndarray) -> None:
    """A row's differences into the sketch's counters, and the extremes. Non-negative float64s order as their
    bits do, so max and min are integer reductions; -1.0 (an element left out) has the sign bit set, so it is
    negative as an integer and in neither. The extremes and the exact zeros are a first loop with no store, which
    runs in SIMD lanes; the second counts each positive difference in its bucket, element j in copy j % COPIES of
    the counters, so that neighbours in one bucket do not wait on each other's increment."""
    high = rel_high = zeros = 0
    low = np.int64(EXPONENT_64)                 # +inf's bits: above every finite difference
    for j in range(d_bits.size):
        key = d_bits[j]
        high = max(high, key)
        low = min(low, key if key >= 0 else EXPONENT_64)
        rel_high = max(rel_high, rel_bits[j])
        zeros += key == 0
    for j in range(d_bits.size):
        key = d_bits[j]
        if key > 0:                               # exact zeros are counted apart, not in a bucket
            counts[j & (COPIES - 1), key >> shift] += 1
    out[ZEROS] += zeros
    bits = np.array([high, low, rel_high]).view(np.float64)
    out[MAX_ABS] = max(out[MAX_ABS], bits[0])
    if low != EXPONENT_64:
        out[MIN_ABS] = min(out[MIN_ABS], bits[1])
    out[MAX_REL] = max(out[MAX_REL], bits[2])


def counters(key_space: int) -> np.ndarray:
    """Zeroed counters for pair_pass: COPIES rows of the sketch's keys (``merged`` adds them up)."""
    return np.zeros((COPIES, key_space), dtype=np.int64)


def merged(counts: np.ndarray) -> np.ndarray:
    """pair_pass's counters as one per key."""
    return counts.sum(axis=0)


# Only ever called on a row known to be finite (as _block_maxima): full fast math is exact there but for the order
# of the sums.
@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _row_profile(row: np.ndarray, total: np.ndarray, squares: np.ndarray) -> tuple[float, float, float]:
    row_sum, low, high = 0.0, np.inf, -np.inf
    for j in range(row.size):
        v = np.float64(row[j])
        total[j] += v
        squares[j] += v * v
        row_sum += v
        low = v if v < low else low
        high = v if v > high else high
    return row_sum, low, high


@njit(cache=True, nogil=True, error_model="numpy")
def profile_pass(x: np.ndarray, bits: np.ndarray, total: np.ndarray, squares: np.ndarray, classes: np.ndarray,
                 extremes: np.ndarray) -> None:
    """outputs.profile_reference's sums over the finite rows of a batch: per class the sum and the sum of squares,
    the count of rows whose arg-max it is (the first maximum), and ``extremes`` = (lowest value, highest value,
    largest |row sum - 1|), each updated in place."""
    exponent = EXPONENT_32 if x.itemsize == 4 else EXPONENT_64
    for r in range(x.shape[0]):
        if not _finite(bits[r], exponent):
            continue
        row_sum, low, high = _row_profile(x[r], total, squares)
        for j in range(x.shape[1]):          # the first class that holds the maximum
            if x[r, j] == high:
                classes[j] += 1
                break
        extremes[0] = min(extremes[0], low)
        extremes[1] = max(extremes[1], high)
        extremes[2] = max(extremes[2], abs(row_sum - 1.0))


@njit(cache=True, nogil=True, error_model="numpy")
def count_outside(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> int:
    """Elements with ``|a - b| > atol + rtol * |a|`` (float64 arrays of one shape, finite)."""
    n, c = a.shape
    outside = 0
    for r in range(n):
        for j in range(c):
            if abs(a[r, j] - b[r, j]) > rtol * abs(a[r, j]) + atol:
                outside += 1
    return outside
