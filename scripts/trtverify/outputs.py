"""What the reference outputs (probabilities, logits or other), its scale and spread: the tolerances depend on it."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from . import kernels
from .errors import UserError
from .lanes import Lanes
from .tolerance import CLASSIFICATION, KINDS, PROBABILITY_EPSILON


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum so large logits do not overflow."""
    e = x - x.max(axis=1, keepdims=True)
    np.exp(e, out=e)                  # in place: a batch of 1,000 classes is tens of MB per temporary
    e /= e.sum(axis=1, keepdims=True)
    return e


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


def profile_reference(source: Any, *, override: str, batch_size: int, threads: int = 1) -> OutputProfile:
    """One streaming pass over the reference's (N, C) outputs (docs/tolerances.md, "Output kinds"), ``batch_size``
    rows at a time on ``threads`` threads; ``override``: models.<name>.output_kind (auto detects the kind).

    Each batch's sums are made apart and added in batch order, so the profile is the same for any number of
    threads. Every later figure waits for this pass (the tolerances depend on it), so on several threads it no
    longer holds the rest of compare back by a whole serial read of the reference."""
    n, c = source.shape[0], source.shape[1]
    total, squares, classes = np.zeros(c), np.zeros(c), np.zeros(c, dtype=np.int64)
    lo, hi, worst_sum = math.inf, -math.inf, 0.0

    def batch_sums(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        sums = np.zeros(c), np.zeros(c), np.zeros(c, dtype=np.int64), np.array([math.inf, -math.inf, 0.0])
        kernels.profile_pass(kernels.native(source[start:start + batch_size]), *sums)
        return sums

    with Lanes(threads) as lanes:
        tasks = [lanes.spread(batch_sums, start) for start in range(0, n, batch_size)]
        for batch_total, batch_squares, batch_classes, extremes in (task.result() for task in tasks):
            total += batch_total
            squares += batch_squares
            classes += batch_classes
            lo, hi, worst_sum = min(lo, extremes[0]), max(hi, extremes[1]), max(worst_sum, extremes[2])
    lo, hi, worst_sum = float(lo), float(hi), float(worst_sum)
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
