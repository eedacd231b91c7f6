"""Compare every pair of prediction arrays batch by batch, so memory does not grow with the number of samples.

Inputs are checked first, in a fixed order (names, then shapes, then dtypes, then label values); every problem is
collected and one error lists them all, typed by the first kind that failed (``BackendNameError``, ``ShapeError``,
``DTypeError``, ``LabelError``; all are ``ComparisonInputError``, a ``UserError``). NaN and Inf are counted during the
pass and, unless ``allow_nonfinite``, raise ``NonFiniteError`` with every backend's counts before any number leaves.

Definitions (pair ``a`` vs ``b``, ``a`` the pair's reference; all arithmetic in float64):
  abs diff       ``|a - b|`` per element; max and mean exact, median and p99 from a QuantileSketch (the lower
                 order statistic, within ``relative_accuracy`` = 1% of a value that occurred; sketch.py)
  rel diff       ``|a - b| / max(|a|, relative_floor)``; the floor (1e-6) keeps a probability that is 0 in the
                 reference from dividing by zero, and is far below the atol of any precision, so a tiny absolute
                 difference on a near-zero probability reads as large (<= 1e6 * |a - b|) but never infinite
  cosine         per sample ``a.b / (|a||b|)`` (1 when both rows are zero, 0 when one is), averaged over samples
                 (``cosine_similarity_mean``), its minimum, and over all elements at once (``..._global``)
  outside        elements with ``|a - b| > atol + rtol * |a|``; non-finite elements count as outside unless equal
  top-k          top-1: same arg-max class (ties: the lowest class index); top-5: the same set of the k = min(5, C)
                 highest classes
  top-class change  mean over samples of ``b[r] - a[r]`` at ``r``, the reference's top class
  per-class agreement  for each true class: the share of its samples whose top-1 agrees (None: no samples)
Statistics of differences cover the elements where both values are finite.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .errors import UserError
from .io import read_npy_header
from .sketch import QuantileSketch
from .tolerance import CLASSIFICATION, KINDS, PASSING, PRECISIONS, PROBABILITY_EPSILON, Tolerance, TolerancePolicy, \
    inconclusive_reason, judge, parity_pairs, precision_of

SCHEMA_VERSION = 1
RELATIVE_FLOOR = 1e-6
TOP_K = 5
FLIP_TOP = 3
Z95 = 1.959963984540054       # the standard normal quantile of a two-sided 95 % interval


# --- statistics -----------------------------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval of a share k/n (Wilson 1927): honest near 0 and 1, where the normal one is not."""
    if n <= 0:
        return None
    p, z2 = k / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """Interval of p2 - p1 from the two Wilson intervals (Newcombe 1998, method 10)."""
    a, b = wilson(k1, n1, z), wilson(k2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    d = p2 - p1
    return (d - math.sqrt((p2 - b[0]) ** 2 + (a[1] - p1) ** 2), d + math.sqrt((b[1] - p2) ** 2 + (p1 - a[0]) ** 2))


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum so large logits do not overflow."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- the reference's outputs ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OutputProfile:
    """What the reference outputs: its kind (and how that was decided), its scale and how much it varies."""

    kind: str
    how: str
    scale: float                 # output units per normalised unit: 1 for probabilities, else the spread
    spread: float                # RMS over outputs of the std across samples, relative to the RMS of the values
    predicted_classes: int | None
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def profile_reference(source: Any, *, override: str = "auto", batch_size: int = 4096) -> OutputProfile:
    """One streaming pass over the reference's (N, C) outputs (docs/tolerances.md, "Output kinds")."""
    n, c = source.shape[0], source.shape[1]
    total, squares, classes = np.zeros(c), np.zeros(c), np.zeros(c, dtype=np.int64)
    lo, hi, worst_sum = math.inf, -math.inf, 0.0
    for start in range(0, n, batch_size):
        x = np.asarray(source[start:start + batch_size], dtype=np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        if not x.size:
            continue
        total, squares = total + x.sum(axis=0), squares + (x * x).sum(axis=0)
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        worst_sum = max(worst_sum, float(np.abs(x.sum(axis=1) - 1).max()))
        classes += np.bincount(x.argmax(axis=1), minlength=c)
    mean = total / max(n, 1)
    std = float(np.sqrt(np.maximum(squares / max(n, 1) - mean * mean, 0).mean()))
    rms = float(np.sqrt((squares / max(n, 1)).mean()))
    eps = PROBABILITY_EPSILON
    if c >= 2 and lo >= -eps and hi <= 1 + eps and worst_sum <= eps:
        kind, how = "probabilities", f"detected: values in [0, 1], every row sums to 1 within {eps:g}"
    elif c >= 2:
        kind, how = "logits", "detected: 2 or more columns that are not probabilities"
    else:
        kind, how = "other", "detected: one column"
    if override != "auto":
        if override not in KINDS:
            raise UserError(f"output kind '{override}' is unknown (known: auto, {', '.join(KINDS)})")
        kind, how = override, f"config: models.<name>.output_kind {override} (detected {kind})"
    scale = 1.0 if kind == "probabilities" or std <= 0 else std
    return OutputProfile(kind=kind, how=how, scale=scale, spread=std / rms if rms > 0 else 0.0,
                         predicted_classes=int((classes > 0).sum()) if kind in CLASSIFICATION else None, samples=n)


# --- inputs ---------------------------------------------------------------------------------------------------------
class NpyFile:
    """A .npy file read by ranges of rows with ``pread``: never unpickles, never maps the whole file.

    ``np.load(mmap_mode="r")`` would do for correctness, but pages of a mapped file count in the process's resident
    memory once read, so a pass over 100,000 samples would hold every page it touched. Reading each batch into a
    fresh buffer keeps memory at one batch. Fortran-ordered and version-3 files fall back to a memory map.
    """

    def __init__(self, path: str | os.PathLike[str], *, what: str = "array") -> None:
        self.path, self.what = Path(path), what
        self._fd: int | None = None
        self._map: np.ndarray | None = None
        if not self.path.is_file():
            raise UserError(f"{what} file {self.path} does not exist; run the step that writes it, or fix the path")
        try:
            header = read_npy_header(self.path, what)
        except OSError as exc:
            raise UserError(f"{what} file {self.path} could not be read ({exc}); check it") from None
        if header is None:
            raise UserError(f"{what} file {self.path} is an .npz archive, expected a single .npy array")
        shape, fortran, dtype, self._offset = header
        if shape is None or (fortran and len(shape) > 1):
            mapped = self._open_map()
            shape, dtype = mapped.shape, mapped.dtype
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self._row_items = math.prod(self.shape[1:])

    def _open_map(self) -> np.ndarray:
        try:
            self._map = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(f"{self.what} file {self.path} could not be read ({exc}); regenerate it") from None
        return self._map

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def __getitem__(self, key: slice) -> np.ndarray:
        """Rows ``key.start:key.stop`` (step 1) as a new array."""
        if not isinstance(key, slice) or key.step not in (None, 1) or not self.shape:
            raise TypeError("NpyFile supports only row ranges [start:stop]")
        start, stop, _ = key.indices(self.shape[0])
        stop = max(start, stop)
        if self._map is not None:
            return np.array(self._map[start:stop])
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        row_bytes = self._row_items * self.dtype.itemsize
        size, at = (stop - start) * row_bytes, self._offset + start * row_bytes
        buf = bytearray(size)
        view, done = memoryview(buf), 0
        while done < size:
            n = os.preadv(self._fd, [view[done:]], at + done)
            if n == 0:
                raise UserError(f"{self.what} file {self.path} ended early; it is truncated: regenerate it")
            done += n
        return np.frombuffer(buf, dtype=self.dtype).reshape((stop - start,) + self.shape[1:])

    def take(self, indices: Iterable[int]) -> np.ndarray:
        """Rows at the given indices (a handful: one read each)."""
        rows = [self[int(i):int(i) + 1] for i in indices]
        return np.concatenate(rows) if rows else np.zeros((0,) + self.shape[1:], dtype=self.dtype)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "NpyFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


# --- validation -----------------------------------------------------------------------------------------------------
class ComparisonInputError(UserError):
    """Predictions or labels that cannot be compared; ``problems`` lists every one found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) with the comparison inputs: " + "; ".join(self.problems))


class BackendNameError(ComparisonInputError):
    """A backend name is missing, repeated, malformed, or carries an unknown precision."""


class ShapeError(ComparisonInputError):
    """Arrays of the wrong rank, or whose sample or class counts disagree."""


class DTypeError(ComparisonInputError):
    """Predictions that are not floating point, or labels that are not integers."""


class LabelError(ComparisonInputError):
    """Labels outside ``[0, num_classes)``."""


class NonFiniteError(ComparisonInputError):
    """NaN or Inf in a prediction: every backend's counts are in the message."""


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PRECISION_LIKE = re.compile(r"_((?:fp|tf|bf|int)\d+)$")


def name_problems(names: Sequence[str], reference: str) -> list[str]:
    problems = []
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"backend '{name}' is given {names.count(name)} times")
    for name in dict.fromkeys(names):
        m = PRECISION_LIKE.search(name)
        if not NAME.match(name) or " vs " in name:
            problems.append(f"backend name '{name}' must be letters, digits, '_', '.', '-'")
        elif m and m.group(1) not in PRECISIONS:
            problems.append(f"backend '{name}' has unknown precision '{m.group(1)}' (known: {', '.join(PRECISIONS)})")
    if reference not in names:
        problems.append(f"reference backend '{reference}' is not among the predictions (given: "
                        f"{', '.join(dict.fromkeys(names)) or 'none'})")
    if len(set(names)) < 2:
        problems.append(f"need at least two backends to compare, got {len(set(names))}")
    return problems


def shape_problems(predictions: Sequence[tuple[str, Any]], labels: Any, samples: Any | None) -> list[str]:
    problems = []
    n = labels.shape[0] if labels.ndim == 1 else None
    if labels.ndim != 1:
        problems.append(f"labels have shape {labels.shape}, expected (num_samples,)")
    elif n == 0:
        problems.append("labels are empty: there is nothing to compare")
    if samples is not None and n is not None and (samples.ndim < 1 or samples.shape[0] != n):
        problems.append(f"test samples have shape {samples.shape}: {samples.shape[0] if samples.ndim else 0} "
                        f"samples, the labels {n}")
    classes = {}
    for name, array in predictions:
        if array.ndim != 2:
            problems.append(f"{name}: shape {array.shape}, expected (num_samples, num_classes)")
            continue
        if n is not None and array.shape[0] != n:
            problems.append(f"{name}: {array.shape[0]} samples, the labels have {n}")
        classes[name] = array.shape[1]
    if len(set(classes.values())) > 1:
        problems.append("backends disagree on the number of classes: "
                        + ", ".join(f"{k} {v}" for k, v in classes.items()))
    if 0 in classes.values():
        problems.append("predictions with zero classes: " + ", ".join(k for k, v in classes.items() if v == 0))
    return problems


def dtype_problems(predictions: Sequence[tuple[str, Any]], labels: Any) -> list[str]:
    problems = [f"{name}: dtype {a.dtype}, expected floating point probabilities (float32)"
                for name, a in predictions if np.dtype(a.dtype).kind != "f"]
    if np.dtype(labels.dtype).kind not in "iu":
        problems.append(f"labels: dtype {labels.dtype}, expected integers (int64)")
    return problems


def label_problems(labels: Any, num_classes: int, batch_size: int) -> list[str]:
    lo, hi = math.inf, -math.inf
    for start in range(0, labels.shape[0], batch_size):
        y = np.asarray(labels[start:start + batch_size])
        lo, hi = min(lo, int(y.min())), max(hi, int(y.max()))
    if lo < 0 or hi >= num_classes:
        return [f"labels range from {lo} to {hi}, outside the {num_classes} classes [0, {num_classes})"]
    return []


def validate(predictions: Sequence[tuple[str, Any]], labels: Any, *, reference: str, samples: Any | None = None,
             batch_size: int = 4096, check_labels: bool = True) -> None:
    """Every problem with the inputs, in one error typed by the first kind found; nothing is read but labels
    (label values only with ``check_labels``: they are classes only when the output is a classification)."""
    names = [n for n, _ in predictions]
    found: list[tuple[type[ComparisonInputError], list[str]]] = [
        (BackendNameError, name_problems(names, reference)),
        (ShapeError, shape_problems(predictions, labels, samples)),
        (DTypeError, dtype_problems(predictions, labels)),
    ]
    if check_labels and not any(p for _, p in found):
        found.append((LabelError, label_problems(labels, predictions[0][1].shape[1], batch_size)))
    failed = [(kind, p) for kind, p in found if p]
    if failed:
        raise failed[0][0]([problem for _, problems in failed for problem in problems])


# --- results --------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PairResult:
    """One pair's numbers, tolerance and verdict; truthy when the verdict passes."""

    a: str
    b: str
    precision: str
    tolerance: dict[str, Any]
    parity: bool
    verdict: str
    reason: str
    metrics: dict[str, Any]
    per_class_agreement: list[float | None]
    top1_flips: dict[str, Any]
    first_difference: dict[str, Any] | None
    abs_diff_histogram: dict[str, Any]
    softmax_tolerance: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.a} vs {self.b}"

    def __bool__(self) -> bool:
        return self.verdict in PASSING

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ComparisonResult:
    """Everything one comparison found, as plain data; truthy when no pair is a mismatch."""

    model: str
    reference: str
    num_samples: int
    num_classes: int
    settings: dict[str, Any]
    backends: dict[str, dict[str, Any]]
    pairs: dict[str, PairResult]
    parity: dict[str, dict[str, Any]]
    per_sample: list[dict[str, Any]]
    flipped_samples: dict[str, Any]
    class_counts: list[int]
    output: dict[str, Any] = dataclasses.field(default_factory=dict)
    noise_floor: dict[str, Any] | None = None
    inconclusive: str | None = None

    def __bool__(self) -> bool:
        return all(self.pairs.values())

    @property
    def mismatches(self) -> list[str]:
        return [name for name, pair in self.pairs.items() if not pair]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pairs"] = {name: pair.to_dict() for name, pair in self.pairs.items()}
        return {"schema_version": SCHEMA_VERSION, **d}


# --- accumulation ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Batch:
    """One batch of every backend, with what several pairs need computed once."""

    start: int
    labels: np.ndarray                      # (n,) int64
    values: dict[str, np.ndarray]           # backend -> (n, C) float64
    top: dict[str, np.ndarray]              # backend -> (n, k) classes, most probable first
    finite_rows: dict[str, np.ndarray]      # backend -> (n,) bool: the row has no NaN/Inf

    def top1(self, name: str) -> np.ndarray:
        return self.top[name][:, 0]

    def confidence(self, name: str) -> np.ndarray:
        return np.take_along_axis(self.values[name], self.top[name][:, :1], axis=1)[:, 0]


def make_batch(start: int, labels: np.ndarray, raw: Mapping[str, np.ndarray], k: int) -> Batch:
    values = {name: np.asarray(x, dtype=np.float64) for name, x in raw.items()}
    # A stable sort of -x puts the lowest class index first among ties, as argmax does; NaN sorts last.
    top = {name: np.argsort(-x, axis=1, kind="stable")[:, :k] for name, x in values.items()}
    finite = {name: np.asarray(np.isfinite(x).all(axis=1)) for name, x in values.items()}
    return Batch(start, np.asarray(labels, dtype=np.int64), values, top, finite)


class BackendStats:
    """Per-backend counts: correct top-1, confidence, NaN and Inf (with the first non-finite element)."""

    def __init__(self, name: str) -> None:
        self.name, self.correct, self.confidence_sum, self.nan, self.inf = name, 0, 0.0, 0, 0
        self.first_nonfinite: tuple[int, int] | None = None

    def update(self, batch: Batch) -> None:
        x, top1 = batch.values[self.name], batch.top1(self.name)
        self.correct += int((top1 == batch.labels).sum())
        rows = batch.finite_rows[self.name]
        self.confidence_sum += float(batch.confidence(self.name)[rows].sum())
        if not rows.all():
            self.nan += int(np.isnan(x).sum())
            self.inf += int(np.isinf(x).sum())
            if self.first_nonfinite is None:
                r, c = np.argwhere(~np.isfinite(x))[0]
                self.first_nonfinite = (batch.start + int(r), int(c))

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


def _cosines(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-row cosine similarity (1 for two zero rows, 0 for one), and the row dot products and squared norms."""
    dot, na, nb = (a * b).sum(axis=1), (a * a).sum(axis=1), (b * b).sum(axis=1)
    denominator = np.sqrt(na * nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(denominator > 0, dot / denominator, np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return np.clip(cos, -1.0, 1.0), dot, na, nb


class PairStats:
    """Streaming statistics of one pair; ``a`` is the pair's reference."""

    def __init__(self, a: str, b: str, tolerance: Tolerance, num_classes: int, *, parity: bool,
                 max_flipped: int, relative_floor: float, relative_accuracy: float, kind: str = "probabilities",
                 softmax_tolerance: Tolerance | None = None, tie_margin: float = 0.0) -> None:
        self.a, self.b, self.tolerance, self.parity = a, b, tolerance, parity
        self.kind, self.softmax_tolerance, self.tie_margin = kind, softmax_tolerance, tie_margin
        self.softmax_outside = self.ties = 0
        self.max_flipped, self.relative_floor = max_flipped, relative_floor
        self.sketch = QuantileSketch(relative_accuracy)
        self.samples = self.elements = self.finite_elements = self.outside = self.differing = 0
        self.max_abs = self.sum_abs = self.max_rel = self.sum_rel = 0.0
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
        n, c = a.shape
        self.samples += n
        self.elements += a.size
        self._elementwise(batch, a, b)
        rows = batch.finite_rows[self.a] & batch.finite_rows[self.b]
        cos, dot, na, nb = _cosines(a[rows], b[rows])
        self.cos_sum += float(cos.sum())
        self.cos_min = min(self.cos_min, float(cos.min())) if cos.size else self.cos_min
        self.cos_rows += int(cos.size)
        self.dot, self.norm_a, self.norm_b = self.dot + dot.sum(), self.norm_a + na.sum(), self.norm_b + nb.sum()
        if self.softmax_tolerance is not None:     # logits are also judged as the probabilities they stand for
            sa, sb = softmax(a[rows]), softmax(b[rows])
            t = self.softmax_tolerance
            self.softmax_outside += int((np.abs(sa - sb) > t.atol + t.rtol * np.abs(sa)).sum())
        if self.kind in CLASSIFICATION:
            self._agreement(batch, a, b, rows)

    def _elementwise(self, batch: Batch, a: np.ndarray, b: np.ndarray) -> None:
        equal = ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))
        if not equal.all():
            self.differing += int(a.size - equal.sum())
            if self.first_difference is None:
                flat = int(np.argmin(equal.ravel()))
                r, c = divmod(flat, a.shape[1])
                self.first_difference = {"sample": batch.start + r, "class": c,
                                         self.a: float(a[r, c]), self.b: float(b[r, c])}
        diff = np.abs(a - b)
        ref = np.abs(a)
        finite = np.isfinite(diff) & np.isfinite(ref)
        if not finite.all():
            self.outside += int((~finite & ~equal).sum())
            diff, ref = diff[finite], ref[finite]
        self.finite_elements += diff.size
        if diff.size:
            self.sketch.add(diff)
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.sum_abs += float(diff.sum())
            rel = diff / np.maximum(ref, self.relative_floor)
            self.max_rel = max(self.max_rel, float(rel.max()))
            self.sum_rel += float(rel.sum())
            self.outside += int((diff > self.tolerance.atol + self.tolerance.rtol * ref).sum())

    def _agreement(self, batch: Batch, a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> None:
        top_a, top_b = batch.top[self.a], batch.top[self.b]
        agree = top_a[:, 0] == top_b[:, 0]
        self.top1 += int(agree.sum())
        self.top5 += int((np.sort(top_a, axis=1) == np.sort(top_b, axis=1)).all(axis=1).sum())
        ref_top = top_a[rows, :1]
        change = np.take_along_axis(b[rows], ref_top, axis=1) - np.take_along_axis(a[rows], ref_top, axis=1)
        self.top_change_sum += float(change.sum())
        self.top_change_rows += int(rows.sum())
        c = self.class_total.size
        self.class_total += np.bincount(batch.labels, minlength=c)
        self.class_agree += np.bincount(batch.labels[agree], minlength=c)
        flipped = np.flatnonzero(~agree)
        self.flip_count += int(flipped.size)
        if flipped.size and top_a.shape[1] > 1:    # a flip the reference's own noise could cause is a tie
            first, second = (np.take_along_axis(a[flipped], top_a[flipped, i:i + 1], axis=1)[:, 0] for i in (0, 1))
            self.ties += int((first - second <= self.tie_margin).sum())
        room = self.max_flipped - len(self.flips)
        self.flips += [batch.start + int(i) for i in flipped[:max(room, 0)]]

    def result(self, correct_a: int | None, correct_b: int | None, inconclusive: str | None = None) -> PairResult:
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
            "median_abs_diff": self.sketch.quantile(0.5), "p99_abs_diff": self.sketch.quantile(0.99),
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
            first_difference=self.first_difference, abs_diff_histogram=self.sketch.to_dict(),
            softmax_tolerance=self.softmax_tolerance.to_dict() if self.softmax_tolerance else None)


# --- the comparison -------------------------------------------------------------------------------------------------
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


def pair_order(names: Sequence[str], reference: str) -> list[tuple[str, str]]:
    """Every pair once: the reference against each backend first, then the others in the given order."""
    ordered = [reference] + [n for n in names if n != reference]
    return list(itertools.combinations(ordered, 2))


def nonfinite_message(stats: Mapping[str, BackendStats]) -> list[str]:
    problems = []
    for name, s in stats.items():
        where = f", first at sample {s.first_nonfinite[0]} class {s.first_nonfinite[1]}" if s.first_nonfinite else ""
        problems.append(f"{name}: {s.nan} NaN, {s.inf} Inf{where}")
    return ["predictions contain NaN or Inf, so the backend that wrote them produced invalid numbers"] + problems


def compare(predictions: Mapping[str, Any] | Sequence[tuple[str, Any]], labels: Any, *, reference: str = "savedmodel",
            policy: TolerancePolicy | None = None, model: str = "", samples: Any | None = None,
            batch_size: int = 4096, max_flipped: int = 100, per_sample_limit: int = 10,
            relative_floor: float = RELATIVE_FLOOR, relative_accuracy: float = 0.01, allow_nonfinite: bool = False,
            on_batch: Callable[[Batch], None] | None = None, noise_floor: Mapping[str, Any] | None = None,
            output_kind: str = "auto") -> ComparisonResult:
    """Compare every pair of backends over all samples, ``batch_size`` rows at a time.

    ``predictions`` maps names to (N, C) arrays or anything sliceable by rows with ``shape``/``dtype`` (an NpyFile);
    ``on_batch`` sees every batch (the per-sample CSV is written from it). ``noise_floor``: the reference's
    self-disagreement as convert_onnx.py measured it (its ``floor``, output units, and for logits
    ``softmax_floor``); without it the floor is 0 and the fp32 bound its minimum. ``output_kind``: auto or a kind
    of tolerance.KINDS. Raises a ComparisonInputError subclass listing every problem before computing anything, and
    NonFiniteError after the pass unless ``allow_nonfinite``.
    """
    items = list(predictions.items()) if isinstance(predictions, Mapping) else list(predictions)
    items = [(name, a if hasattr(a, "shape") else np.asarray(a)) for name, a in items]
    labels = labels if hasattr(labels, "shape") else np.asarray(labels)
    if batch_size < 1 or max_flipped < 0 or per_sample_limit < 0:
        raise UserError(f"batch size must be >= 1 and limits >= 0 (got {batch_size}, {max_flipped}, "
                        f"{per_sample_limit})")
    validate(items, labels, reference=reference, samples=samples, batch_size=batch_size, check_labels=False)
    sources = dict(items)
    names = [reference] + [n for n in sources if n != reference]
    n, c = labels.shape[0], sources[reference].shape[1]
    profile = profile_reference(sources[reference], override=output_kind, batch_size=batch_size)
    if profile.kind in CLASSIFICATION:
        problems = label_problems(labels, c, batch_size)
        if problems:
            raise LabelError(problems)
    pairs = make_pairs(names, reference, policy or TolerancePolicy(), profile, noise_floor, c,
                       max_flipped=max_flipped, relative_floor=relative_floor, relative_accuracy=relative_accuracy)
    backends = {name: BackendStats(name) for name in names}
    flipped, rows, class_counts = FlippedSamples(reference, max_flipped), [], np.zeros(c, dtype=np.int64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        batch = make_batch(start, labels[start:stop], {k: sources[k][start:stop] for k in names}, min(TOP_K, c))
        class_counts += np.bincount(batch.labels, minlength=c) if profile.kind in CLASSIFICATION else 0
        updaters: list[BackendStats | PairStats | FlippedSamples] = [*backends.values(), *pairs.values()]
        for stats in updaters + ([flipped] if profile.kind in CLASSIFICATION else []):
            stats.update(batch)
        if start < per_sample_limit:
            rows += per_sample_rows(batch, per_sample_limit)
        if on_batch is not None:
            on_batch(batch)
    if not allow_nonfinite and any(s.nan or s.inf for s in backends.values()):
        raise NonFiniteError(nonfinite_message(backends))
    floor = float((noise_floor or {}).get("floor") or 0.0)
    why = inconclusive_reason(kind=profile.kind, spread=profile.spread, predicted_classes=profile.predicted_classes,
                              samples=n, floor_normalised=floor / profile.scale)
    correct = {name: s.correct if profile.kind in CLASSIFICATION else None for name, s in backends.items()}
    results = {name: p.result(correct[p.a], correct[p.b], why) for name, p in pairs.items()}
    return ComparisonResult(
        model=model, reference=reference, num_samples=n, num_classes=c,
        settings={"batch_size": batch_size, "relative_floor": relative_floor, "relative_accuracy": relative_accuracy,
                  "top_k": min(TOP_K, c), "max_flipped": max_flipped, "per_sample_rows": per_sample_limit},
        backends={name: s.to_dict(n, backends[reference].correct, str(sources[name].dtype), profile.kind)
                  for name, s in backends.items()},
        pairs=results,
        parity={name: parity_entry(r) for name, r in results.items() if r.parity},
        per_sample=rows, flipped_samples=flipped.to_dict(), class_counts=[int(k) for k in class_counts],
        output=profile.to_dict(), noise_floor=dict(noise_floor) if noise_floor else None, inconclusive=why)


def make_pairs(names: Sequence[str], reference: str, policy: TolerancePolicy, profile: OutputProfile,
               noise_floor: Mapping[str, Any] | None, num_classes: int, **options: Any) -> dict[str, PairStats]:
    """Every pair's statistics, with its tolerance from the one policy (tolerance.py) at the output's scale."""
    floor = float((noise_floor or {}).get("floor") or 0.0)
    soft_floor = float((noise_floor or {}).get("softmax_floor") or 0.0)
    parity = set(parity_pairs(names))
    pairs = {}
    for a, b in pair_order(names, reference):
        soft = policy.for_pair(a, b, floor=soft_floor, overrides=("max_outside_share", "min_top1_agreement",
                                                                   "max_accuracy_change")) \
            if profile.kind == "logits" else None
        # A flip is a tie when the reference's top-2 margin is within what its own noise can move: each of the two
        # values may move by the floor.
        pairs[f"{a} vs {b}"] = PairStats(a, b, policy.for_pair(a, b, scale=profile.scale, floor=floor),
                                         num_classes, parity=(a, b) in parity, kind=profile.kind,
                                         softmax_tolerance=soft, tie_margin=2 * floor, **options)
    return pairs


def parity_entry(pair: PairResult) -> dict[str, Any]:
    """'identical', or where the two first differ and how many elements do."""
    if pair.verdict == "identical":
        return {"a": pair.a, "b": pair.b, "result": "identical", "differing_elements": 0, "first_difference": None}
    return {"a": pair.a, "b": pair.b, "result": "differs", "differing_elements": pair.metrics["differing_elements"],
            "first_difference": pair.first_difference}
