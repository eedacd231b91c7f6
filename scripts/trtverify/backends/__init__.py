"""The backends' shared contract, after Polygraphy's runners: activate, infer, deactivate, as a context manager.

``Runner.infer`` checks the batch against the runner's input metadata, then calls the backend's ``_infer_impl``.
Each backend is one short module, named by its registry entry (registry.py), importing its framework only when
activated.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .registry import BY_NAME, RUNNERS

BACKENDS = RUNNERS  # what open_runner runs by name: the registry's entries that have a runner module


class Runner:
    """Base class: subclasses set input_name, input_shape (batch dim None), output_name in ``activate``."""

    name = "runner"
    input_name: str
    input_shape: tuple[int | None, ...]
    output_name: str

    def __init__(self, artifact: str | Path, **options: Any) -> None:
        self.artifact = Path(artifact)
        self.options = options
        if not self.artifact.exists():
            raise UserError(f"{self.name}: {self.artifact} does not exist; run the step that writes it")

    def activate(self) -> None:
        raise NotImplementedError

    def deactivate(self) -> None:
        pass

    def metadata(self) -> dict[str, Any]:
        return {"backend": self.name, "artifact": str(self.artifact)}

    def __enter__(self) -> "Runner":
        try:
            self.activate()
        except BaseException:
            # ``with`` calls __exit__ only after __enter__ returned: release what a failed activate acquired (a
            # pushed CUDA context left behind makes pycuda abort the process at exit instead of reporting the error).
            self.deactivate()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        expected = tuple(self.input_shape[1:])
        if batch.ndim != len(self.input_shape) or tuple(batch.shape[1:]) != expected:
            raise UserError(
                f"{self.name}: input '{self.input_name}' expects samples of shape {expected} "
                f"(batch shape {('N',) + expected}), got {tuple(batch.shape)}: the test data does not fit this model"
            )
        if batch.dtype != np.float32:
            raise UserError(f"{self.name}: input '{self.input_name}' expects float32, got {batch.dtype}")
        return np.ascontiguousarray(batch)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._infer_impl(self.check_batch(batch)), dtype=np.float32)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def open_runner(backend: str, artifact: str | Path, **options: Any) -> Runner:
    """Make the runner of ``backend`` (not yet activated: use it in a ``with`` block)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    module = importlib.import_module(f"{__name__}.{BY_NAME[backend].runner}")
    runner: Runner = module.RUNNER(artifact, **options)
    return runner
