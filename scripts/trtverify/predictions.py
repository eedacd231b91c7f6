"""Checks every predicting step makes: on the predictions it is about to write (shape, finite values) and on the
engine it is about to run (the size its build recorded). The Python and the C++ TensorRT steps and the model import
share them, so a backend's predictions are held to the same rules whichever program made them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .io import read_json


def check_predictions(probs: np.ndarray, n: int, backend: str, start: int = 0) -> None:
    """``probs``: the predictions of ``n`` samples, the first of which is sample ``start``."""
    if probs.ndim != 2 or probs.shape[0] != n:
        raise UserError(f"{backend} returned predictions of shape {probs.shape} for {n} samples; "
                        "expected (samples, classes): is the model a classifier with one output?")
    bad = ~np.isfinite(probs)
    if bad.any():
        rows = np.unique(np.argwhere(bad)[:, 0])
        raise UserError(f"{backend} produced {int(np.isnan(probs).sum())} NaN and {int(np.isinf(probs).sum())} Inf "
                        f"values in {len(rows)} samples (first: sample {int(rows[0]) + start}); nothing was written. "
                        "Check the model/engine (an FP16 overflow shows up like this)")


def check_engine(engine: str, info: str) -> dict[str, Any]:
    """An engine whose size is not what build_engine recorded was cut short or replaced after the build: say so
    before TensorRT reads it (its own message for a cut engine names no file and no remedy). Returns the record."""
    recorded = read_json(info, what="engine build record")
    path = Path(engine)
    if not path.is_file():
        raise UserError(f"engine {path} does not exist; run the build_engine step")
    size, expected = path.stat().st_size, recorded.get("engine_bytes") if isinstance(recorded, dict) else None
    if not isinstance(expected, int):
        raise UserError(f"engine build record {info} has no engine_bytes; rebuild the engine (build_engine step)")
    if size != expected:
        raise UserError(f"engine {path} is {size} bytes, but build_engine recorded {expected} bytes in {info}: it was "
                        "cut short or replaced after the build; rebuild it (snakemake --forcerun build_engine)")
    return recorded
