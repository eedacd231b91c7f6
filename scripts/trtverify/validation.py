"""The checks of the comparison's inputs, in a fixed order (names, shapes, dtypes, label values): every problem is
collected and one error lists them all, typed by the first kind that failed."""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

from .errors import UserError
from .tolerance import PRECISIONS


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


def validate(predictions: Sequence[tuple[str, Any]], labels: Any, *, reference: str, batch_size: int,
             samples: Any | None = None, check_labels: bool = True) -> None:
    """Every problem with the inputs, in one error typed by the first kind found; nothing is read but labels
    (label values only with ``check_labels``, ``batch_size`` at a time: they are classes only when the output is a
    classification)."""
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
