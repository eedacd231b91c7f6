"""The runners' context-manager contract: what a failed ``activate`` acquired is released before the error surfaces.

Seen on TensorRT 8.5.3 with pycuda on an H200: an error raised inside the TensorRT runner's ``activate`` after it
had pushed the CUDA context (a corrupt engine, a missing API) left the context pushed, because ``with`` never calls
``__exit__`` when ``__enter__`` raises; pycuda then aborted the process at exit ("The context stack was not empty
upon module cleanup", SIGABRT) instead of the one-line message. These tests run the real TensorRT runner against
fake ``tensorrt`` and ``pycuda.driver`` modules that record the context's pushes and pops.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from trtverify.backends import Runner, open_runner
from trtverify.errors import UserError


class Recorder(Runner):
    name = "recorder"

    def __init__(self, artifact: Path, fail: bool) -> None:
        super().__init__(artifact)
        self.fail = fail
        self.events: list[str] = []

    def activate(self) -> None:
        self.events.append("acquire")
        if self.fail:
            raise UserError("recorder: activation failed")

    def deactivate(self) -> None:
        self.events.append("release")


def test_a_failed_activate_is_released_and_reraised(tmp_path: Path) -> None:
    runner = Recorder(tmp_path, fail=True)
    with pytest.raises(UserError, match="activation failed"):
        with runner:
            pytest.fail("the body must not run when activate fails")
    assert runner.events == ["acquire", "release"]


def test_a_successful_activate_is_released_once_after_the_body(tmp_path: Path) -> None:
    runner = Recorder(tmp_path, fail=False)
    with runner:
        assert runner.events == ["acquire"]
    assert runner.events == ["acquire", "release"]


class FakeContext:
    def __init__(self, stack: list[str]) -> None:
        self.stack = stack

    def push(self) -> None:
        self.stack.append("ctx")

    def pop(self) -> None:
        assert self.stack, "pop without a push"
        self.stack.pop()


def fake_modules(stack: list[str], engine: Any) -> dict[str, types.ModuleType]:
    driver = types.ModuleType("pycuda.driver")
    driver.init = lambda: None  # type: ignore[attr-defined]

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        @staticmethod
        def count() -> int:
            return 1

        def retain_primary_context(self) -> FakeContext:
            return FakeContext(stack)

    driver.Device = Device  # type: ignore[attr-defined]
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver  # type: ignore[attr-defined]

    trt = types.ModuleType("tensorrt")

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, blob: bytes) -> Any:
            return engine

    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.Runtime = Runtime  # type: ignore[attr-defined]
    trt.Builder = object  # type: ignore[attr-defined]
    trt.__version__ = "8.5.3.1"  # type: ignore[attr-defined]
    return {"tensorrt": trt, "pycuda": pycuda, "pycuda.driver": driver}


class EngineWithoutTensors:
    """An engine whose tensor-name API fails, as a TensorRT without it (7.x) would."""

    num_io_tensors = 0

    def create_execution_context(self) -> object:
        return object()


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        (None, "could not be deserialized"),
        (EngineWithoutTensors(), "trtverify handles one each"),
    ],
    ids=["corrupt-engine", "no-tensors"],
)
def test_tensorrt_runner_pops_its_context_when_activation_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Any, message: str
) -> None:
    stack: list[str] = []
    for name, module in fake_modules(stack, engine).items():
        monkeypatch.setitem(sys.modules, name, module)
    artifact = tmp_path / "model.trt"
    artifact.write_bytes(b"not an engine")
    runner = open_runner("tensorrt", artifact)
    with pytest.raises(UserError, match=message):
        with runner:
            pytest.fail("the body must not run")
    assert stack == [], "the CUDA context is still pushed after a failed activation"
    assert not hasattr(runner, "ctx")
