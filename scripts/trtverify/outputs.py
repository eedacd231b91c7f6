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


class ProfileSums:
    """The sums behind an OutputProfile, over the finite rows of the reference's batches, added in batch order (so
    the profile is the same however the batches were shared among threads)."""

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.total, self.squares = np.zeros(classes), np.zeros(classes)
        self.top = np.zeros(classes, dtype=np.int64)
        self.lo, self.hi, self.worst_sum = math.inf, -math.inf, 0.0

    @staticmethod
    def of_batch(rows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One batch's sums (kernels.profile_pass), to be given to ``add`` in batch order."""
        c = rows.shape[1]
        sums = np.zeros(c), np.zeros(c), np.zeros(c, dtype=np.int64), np.array([math.inf, -math.inf, 0.0])
        kernels.profile_pass(kernels.native(rows), *sums)
        return sums

    def add(self, sums: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        total, squares, top, extremes = sums
        self.total += total
        self.squares += squares
        self.top += top
        self.lo, self.hi = min(self.lo, extremes[0]), max(self.hi, extremes[1])
        self.worst_sum = max(self.worst_sum, extremes[2])

    def detected(self) -> tuple[str, str]:
        """The kind the rows added so far show, and how that was decided (docs/tolerances.md, "Output kinds")."""
        eps = PROBABILITY_EPSILON
        if self.classes >= 2 and self.lo >= -eps and self.hi <= 1 + eps and self.worst_sum <= eps:
            return "probabilities", f"detected: values in [0, 1], every row sums to 1 within {eps:g}"
        if self.classes >= 2:
            return "logits", "detected: 2 or more columns that are not probabilities"
        return "other", "detected: one column"

    def profile(self, override: str, samples: int) -> OutputProfile:
        """The profile of ``samples`` rows, all added; ``override``: models.<name>.output_kind (auto: detected)."""
        n = max(samples, 1)
        mean = self.total / n
        std = float(np.sqrt(np.maximum(self.squares / n - mean * mean, 0).mean()))
        rms = float(np.sqrt((self.squares / n).mean()))
        kind, how = self.detected()
        if override != "auto":
            if override not in KINDS:
                raise UserError(f"output kind '{override}' is unknown (known: auto, {', '.join(KINDS)})")
            kind, how = override, f"config: models.<name>.output_kind {override} (detected {kind})"
        scale = 1.0 if kind == "probabilities" or std <= 0 else std
        return OutputProfile(kind=kind, how=how, scale=scale, spread=std / rms if rms > 0 else 0.0,
                             predicted_classes=int((self.top > 0).sum()) if kind in CLASSIFICATION else None,
                             samples=samples)


def profile_reference(source: Any, *, override: str, batch_size: int, threads: int = 1) -> OutputProfile:
    """One streaming pass over the reference's (N, C) outputs (docs/tolerances.md, "Output kinds"), ``batch_size``
    rows at a time on ``threads`` threads; ``override``: models.<name>.output_kind (auto detects the kind).

    Each batch's sums are made apart and added in batch order, so the profile is the same for any number of
    threads. metrics.compare makes these sums during its own pass where the tolerances cannot depend on them
    (probabilities); elsewhere every later figure waits for this pass, so on several threads it does not hold the
    rest back by a whole serial read of the reference."""
    n = source.shape[0]
    sums = ProfileSums(source.shape[1])

    def batch_sums(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return ProfileSums.of_batch(source[start:start + batch_size])   # read on the lane: a batch at a time

    with Lanes(threads) as lanes:
        tasks = [lanes.spread(batch_sums, start) for start in range(0, n, batch_size)]
        for task in tasks:
            sums.add(task.result())
    return sums.profile(override, n)
