"""Streaming statistics of one batch at a time: per backend, per pair, and the samples whose top-1 flips.

The numbers are defined at the top of metrics.py; each class keeps sums and counts, so memory does not grow with
the number of samples.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from . import kernels
from .intervals import newcombe, wilson
from .results import PairResult
from .sketch import QuantileSketch
from .tolerance import CLASSIFICATION, Tolerance, judge, precision_of

TOP_K = 5
FLIP_TOP = 3


@dataclasses.dataclass
class Batch:
    """One batch of every backend, with what several pairs need computed once."""

    start: int
    labels: np.ndarray                      # (n,) int64
    values: dict[str, np.ndarray]           # backend -> (n, C) float32 or float64, native byte order, contiguous
    top: dict[str, np.ndarray]              # backend -> (n, k) classes, most probable first
    finite_rows: dict[str, np.ndarray]      # backend -> (n,) bool: the row has no NaN/Inf
    nonfinite: dict[str, tuple[int, int, int]]   # backend -> NaN count, Inf count, flat index of the first (or -1)
    # backend -> its top-1 values, gathered once (the backend's statistics, its pairs and the per-sample CSV read them)
    _confidence: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    # backend -> its top k sorted by class, once (each of its pairs compares them)
    _top_sets: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def top1(self, name: str) -> np.ndarray:
        return self.top[name][:, 0]

    def confidence(self, name: str) -> np.ndarray:
        """The value of each row at its top-1 class, as float64."""
        if name not in self._confidence:
            self._confidence[name] = gather(self.values[name], self.top[name][:, 0])
        return self._confidence[name]

    def top_set(self, name: str) -> np.ndarray:
        """The top k classes of each row in class order: two rows' top k are the same set when these are equal."""
        if name not in self._top_sets:
            self._top_sets[name] = np.sort(self.top[name], axis=1)
        return self._top_sets[name]


def gather(x: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``x[r, columns[r]]`` of every row, as float64 (so that sums and differences of them are exact). By flat index:
    take_along_axis took twice as long."""
    rows, width = x.shape
    return np.take(x, np.arange(rows) * width + columns).astype(np.float64)


def scan(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """(top k classes, finite rows, (NaN, Inf, first non-finite flat index)) of a float32/float64 batch.

    The top k are the first k of a stable argsort of -x: the highest classes, ties to the lowest class index as
    argmax does. One compiled pass keeps the k best of each finite row (a full sort of 1,000 classes was half the
    time of a comparison); rows with NaN or Inf take the full sort.
    """
    top = np.zeros((x.shape[0], k), dtype=np.int64)
    finite = np.empty(x.shape[0], dtype=np.bool_)
    counts = kernels.backend_pass(x, k, top, finite)
    if not finite.all():
        top[~finite] = np.argsort(-x[~finite], axis=1, kind="stable")[:, :k]
    return top, finite, counts


class BackendStats:
    """Per-backend counts: correct top-1, confidence, NaN and Inf (with the first non-finite element)."""

    def __init__(self, name: str) -> None:
        self.name, self.correct, self.confidence_sum, self.nan, self.inf = name, 0, 0.0, 0, 0
        self.first_nonfinite: tuple[int, int] | None = None

    def update(self, batch: Batch) -> None:
        top1 = batch.top1(self.name)
        self.correct += int((top1 == batch.labels).sum())
        rows = batch.finite_rows[self.name]
        self.confidence_sum += float(batch.confidence(self.name)[rows].sum())
        nan, inf, first = batch.nonfinite[self.name]
        self.nan, self.inf = self.nan + nan, self.inf + inf
        if first >= 0 and self.first_nonfinite is None:
            r, c = divmod(first, batch.values[self.name].shape[1])
            self.first_nonfinite = (batch.start + r, c)

    def to_dict(self, n: int, reference_correct: int, dtype: str, kind: str) -> dict[str, Any]:
        """Accuracy (with its Wilson interval) and top-1 confidence only where the output is a classification."""
        classify = kind in CLASSIFICATION
        accuracy = self.correct / n
        return {"precision": precision_of(self.name), "dtype": dtype, "accuracy": accuracy if classify else None,
                "accuracy_ci95": wilson(self.correct, n) if classify else None,
                "accuracy_change": accuracy - reference_correct / n if classify else None,
                "correct": self.correct if classify else None,
                "mean_top1_confidence": self.confidence_sum / n if kind == "probabilities" else None,
                "nan_count": self.nan, "inf_count": self.inf}


def _cosines(dot: np.ndarray, na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity (1 for two zero rows, 0 for one) from the rows' dot products and squared norms."""
    denominator = np.sqrt(na * nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(denominator > 0, dot / denominator, np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return np.clip(cos, -1.0, 1.0)


class PairStats:
    """Streaming statistics of one pair; ``a`` is the pair's reference."""

    def __init__(self, a: str, b: str, tolerance: Tolerance, num_classes: int, *, parity: bool,
                 max_flipped: int, relative_floor: float, relative_accuracy: float, kind: str = "probabilities",
                 softmax_tolerance: Tolerance | None = None, tie_margin: float = 0.0) -> None:
        self.a, self.b, self.tolerance, self.parity = a, b, tolerance, parity
        self.kind, self.softmax_tolerance, self.tie_margin = kind, softmax_tolerance, tie_margin
        self.softmax_outside = self.ties = 0
        self.max_flipped, self.relative_floor = max_flipped, relative_floor
        self.sketch = QuantileSketch(relative_accuracy)    # empty: its buckets are what pair_pass counts in
        self.samples = self.elements = self.finite_elements = self.outside = self.differing = 0
        self.max_abs = self.sum_abs = self.max_rel = self.sum_rel = 0.0
        self.min_abs, self.min_positive, self.zeros = math.inf, math.inf, 0
        self.counts = kernels.counters(self.sketch.key_space)   # the sketch's counters, filled by pair_pass
        self.cos_sum, self.cos_min, self.cos_rows = 0.0, math.inf, 0
        self.dot = self.norm_a = self.norm_b = 0.0
        self.top1 = self.top5 = 0
        self.top_change_sum, self.top_change_rows = 0.0, 0
        self.class_total = np.zeros(num_classes, dtype=np.int64)
        self.class_agree = np.zeros(num_classes, dtype=np.int64)
        self.flips: list[int] = []
        self.flip_count = 0
        self.first_difference: dict[str, Any] | None = None

    def update(self, batch: Batch) -> None:
        a, b = batch.values[self.a], batch.values[self.b]
        if a.dtype != b.dtype:                     # float32 against float64: compared as float64 (exact)
            a, b = a.astype(np.float64), b.astype(np.float64)
        n = a.shape[0]
        self.samples += n
        self.elements += a.size
        dot, na, nb = np.empty(n), np.empty(n), np.empty(n)
        t = self.tolerance
        rows = batch.finite_rows[self.a] & batch.finite_rows[self.b]
        f = kernels.pair_pass(a, b, rows, t.rtol, t.atol, self.relative_floor, self.sketch.shift,
                              self.counts, dot, na, nb)
        self._add(batch, f, a, b)
        if not rows.all():
            dot, na, nb = dot[rows], na[rows], nb[rows]
        cos = _cosines(dot, na, nb)
        self.cos_sum += float(cos.sum())
        self.cos_min = min(self.cos_min, float(cos.min())) if cos.size else self.cos_min
        self.cos_rows += int(cos.size)
        self.dot, self.norm_a, self.norm_b = self.dot + dot.sum(), self.norm_a + na.sum(), self.norm_b + nb.sum()
        if self.kind in CLASSIFICATION:
            self._agreement(batch, a, b, rows)

    def _add(self, batch: Batch, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """The batch's figures from kernels.pair_pass added to the pair's."""
        k = kernels
        self.differing += int(f[k.DIFFERING])
        self.outside += int(f[k.OUTSIDE])
        self.finite_elements += int(f[k.FINITE])
        self.zeros += int(f[k.ZEROS])
        self.sum_abs += f[k.SUM_ABS]
        self.sum_rel += f[k.SUM_REL]
        if f[k.FINITE]:
            self.max_abs, self.max_rel = max(self.max_abs, f[k.MAX_ABS]), max(self.max_rel, f[k.MAX_REL])
            self.min_abs = min(self.min_abs, f[k.MIN_ABS])
            self.min_positive = min(self.min_positive, f[k.MIN_POSITIVE])
        if f[k.FIRST_DIFFERENCE] >= 0 and self.first_difference is None:
            r, c = divmod(int(f[k.FIRST_DIFFERENCE]), a.shape[1])
            self.first_difference = {"sample": batch.start + r, "class": c, self.a: float(a[r, c]),
                                     self.b: float(b[r, c])}

    def _agreement(self, batch: Batch, a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> None:
        top_a, top_b = batch.top[self.a], batch.top[self.b]
        agree = top_a[:, 0] == top_b[:, 0]
        self.top1 += int(agree.sum())
        self.top5 += int((batch.top_set(self.a) == batch.top_set(self.b)).all(axis=1).sum())
        # b's value at the reference's top-1 class against the reference's (its confidence, already gathered)
        change = gather(b, top_a[:, 0])[rows] - batch.confidence(self.a)[rows]
        self.top_change_sum += float(change.sum())
        self.top_change_rows += int(rows.sum())
        c = self.class_total.size
        self.class_total += np.bincount(batch.labels, minlength=c)
        self.class_agree += np.bincount(batch.labels[agree], minlength=c)
        flipped = np.flatnonzero(~agree)
        self.flip_count += int(flipped.size)
        if flipped.size and top_a.shape[1] > 1:    # a flip the reference's own noise could cause is a tie
            first, second = (gather(a[flipped], top_a[flipped, i]) for i in (0, 1))
            self.ties += int((first - second <= self.tie_margin).sum())
        room = self.max_flipped - len(self.flips)
        self.flips += [batch.start + int(i) for i in flipped[:max(room, 0)]]

    def histogram(self) -> QuantileSketch:
        """The sketch of |a - b| over the finite elements, from the counters pair_pass filled: only the keys from
        the least positive difference's to the largest's can have counts, so only those are read (all 131,008 took
        1.5 ms a pair, most of it faulting in pages no count had touched)."""
        sketch = QuantileSketch(self.sketch.relative_accuracy)
        first, counts = 0, np.zeros(0, dtype=np.int64)
        if math.isfinite(self.min_positive):     # some difference is positive
            first, last = (int(key) for key in sketch.key(np.array([self.min_positive, self.max_abs])))
            counts = kernels.merged(self.counts[first:last + 1])
        sketch.add_counts(counts, first, zeros=self.zeros, total=self.sum_abs, lo=self.min_abs, hi=self.max_abs)
        return sketch

    def result(self, correct_a: int | None, correct_b: int | None, inconclusive: str | None = None) -> PairResult:
        sketch = self.histogram()
        share = self.outside / self.elements
        n, classify = self.samples, self.kind in CLASSIFICATION
        top1 = self.top1 / n if classify else None
        judged = (self.top1 + self.ties) / n if classify else None
        accuracy_a, accuracy_b = (None, None) if correct_a is None or correct_b is None else \
            (correct_a / n, correct_b / n)
        accuracy_change = None if accuracy_a is None or accuracy_b is None else accuracy_b - accuracy_a
        soft = None if self.softmax_tolerance is None else \
            (self.softmax_outside, self.softmax_outside / self.elements, self.softmax_tolerance)
        verdict, reason = judge(identical=self.differing == 0, outside_count=self.outside, outside_share=share,
                                top1_agreement=judged, accuracy_change=accuracy_change, tolerance=self.tolerance,
                                parity=self.parity, inconclusive=inconclusive, softmax=soft, ties=self.ties,
                                max_abs_diff=self.max_abs if self.finite_elements else None)
        fin = self.finite_elements
        global_cos = (self.dot / math.sqrt(self.norm_a * self.norm_b) if self.norm_a * self.norm_b > 0
                      else (1.0 if self.norm_a == self.norm_b == 0 else 0.0))
        metrics = {
            "elements": self.elements, "finite_elements": fin,
            "max_abs_diff": self.max_abs if fin else None, "mean_abs_diff": self.sum_abs / fin if fin else None,
            "median_abs_diff": sketch.quantile(0.5), "p99_abs_diff": sketch.quantile(0.99),
            "max_rel_diff": self.max_rel if fin else None, "mean_rel_diff": self.sum_rel / fin if fin else None,
            "cosine_similarity_mean": self.cos_sum / self.cos_rows if self.cos_rows else None,
            "cosine_similarity_min": self.cos_min if self.cos_rows else None,
            "cosine_similarity_global": min(max(global_cos, -1.0), 1.0) if self.cos_rows else None,
            "outside_tolerance_count": self.outside, "outside_tolerance_share": share,
            "differing_elements": self.differing,
            "softmax_outside_tolerance_count": soft[0] if soft else None,
            "top1_agreement": top1, "top1_agreement_ci95": wilson(self.top1, n) if classify else None,
            "top5_agreement": self.top5 / n if classify else None,
            "top1_flips": self.flip_count if classify else None, "ties": self.ties if classify else None,
            "top1_agreement_with_ties": judged,
            "mean_top_class_prob_change": (self.top_change_sum / self.top_change_rows
                                           if self.top_change_rows and self.kind == "probabilities" else None),
            "accuracy_a": accuracy_a, "accuracy_b": accuracy_b, "accuracy_change": accuracy_change,
            "accuracy_change_ci95": (newcombe(correct_a, n, correct_b, n)
                                     if correct_a is not None and correct_b is not None else None),
        }
        per_class = [int(g) / int(t) if t and classify else None for g, t in zip(self.class_agree, self.class_total)]
        return PairResult(
            a=self.a, b=self.b, precision=self.tolerance.precision, tolerance=self.tolerance.to_dict(),
            parity=self.parity, verdict=verdict, reason=reason, metrics=metrics, per_class_agreement=per_class,
            top1_flips={"count": self.flip_count, "indices": self.flips, "stored": len(self.flips)},
            first_difference=self.first_difference, abs_diff_histogram=sketch.to_dict(),
            softmax_tolerance=self.softmax_tolerance.to_dict() if self.softmax_tolerance else None)


class FlippedSamples:
    """Samples where some backend's top-1 differs from the reference's: all counted, the first few kept in full."""

    def __init__(self, reference: str, limit: int) -> None:
        self.reference, self.limit, self.count = reference, limit, 0
        self.samples: list[dict[str, Any]] = []

    def update(self, batch: Batch) -> None:
        ref = batch.top1(self.reference)
        flipped = np.zeros(ref.shape, dtype=bool)
        for name in batch.top:
            flipped |= batch.top1(name) != ref
        rows = np.flatnonzero(flipped)
        self.count += int(rows.size)
        for r in rows[:max(self.limit - len(self.samples), 0)]:
            self.samples.append({"index": batch.start + int(r), "label": int(batch.labels[r]), "predictions": {
                name: {"classes": [int(c) for c in top[r, :FLIP_TOP]],
                       "probabilities": [float(batch.values[name][r, c]) for c in top[r, :FLIP_TOP]]}
                for name, top in batch.top.items()}})

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "stored": len(self.samples), "limit": self.limit, "samples": self.samples}


def per_sample_rows(batch: Batch, limit: int) -> list[dict[str, Any]]:
    """The first rows of the per-sample table: true label, each backend's class and confidence."""
    rows = []
    for r in range(min(limit - batch.start, batch.labels.size)):
        rows.append({"index": batch.start + r, "label": int(batch.labels[r]), "predictions": {
            name: {"class": int(batch.top1(name)[r]), "confidence": float(batch.values[name][r, batch.top1(name)[r]])}
            for name in batch.values}})
    return rows
