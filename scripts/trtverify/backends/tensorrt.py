"""TensorRT engines from Python: tensor-name API (8.5, 10.x, TensorRT-RTX) with pycuda device memory.

Besides ``infer`` it exposes the stages (``stage``, ``execute``, ``download``/``fetch``) on ``stream`` so benchmarks can
time the GPU work apart from the host-device copies, and ``input_view``: the pinned input buffer itself, which a
caller fills in place so that ``stage`` copies nothing on the host (pinned memory is what lets the H2D copy run at
full speed and asynchronously; an extra host copy into it per batch is what made Python slower than C++).
``add_slot`` gives a further batch in flight (buffers of its own, run on the one execution context through ``use``),
for overlapped timing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError, require
from ..schema import schema_default
from ..tensorrt_compat import dims, import_tensorrt, profile_shape, version_of
from . import Runner

if TYPE_CHECKING:  # mypy checks the TensorRT calls against tensorrt-stubs (the TensorRT 10 API)
    import tensorrt


class Slot:
    """One batch in flight for overlapped timing: device buffers of its own and the pinned host buffers the caller
    fills and reads. It has no execution context: TensorRT 8.5 gives a further context of a one-profile engine no
    profile (enqueue asserts) and refuses it profile 0 while the runner's context holds it, so every slot runs on the
    runner's one context (``TensorRTRunner.use`` points it at a slot's buffers before each enqueue)."""

    def __init__(self, n: int) -> None:
        self.batch = n
        self.d_in: Any = None
        self.d_out: Any = None

    def allocate(self, runner: "TensorRTRunner", out_shape: tuple[int, ...]) -> None:
        cuda = runner.cuda
        self.h_in = cuda.pagelocked_empty((self.batch, *runner.max_shape[1:]), runner.in_dtype)
        self.h_out = cuda.pagelocked_empty(out_shape, runner.out_dtype)
        self.d_in = cuda.mem_alloc(self.h_in.nbytes)
        self.d_out = cuda.mem_alloc(self.h_out.nbytes)

    def free(self) -> None:
        """Free what ``allocate`` got, also when it stopped halfway (device memory ran out)."""
        for buffer in (self.d_in, self.d_out):
            if buffer is not None:
                buffer.free()
        self.d_in = self.d_out = None


class TensorRTRunner(Runner):
    name = "tensorrt"

    def activate(self) -> None:
        # predict.py passes none: tensorrt.flavour as a config that leaves it out has it (auto: whichever is installed)
        trt, self.flavour = import_tensorrt(self.options.get("flavour") or schema_default("tensorrt.flavour"))
        cuda = require("pycuda.driver", purpose="the TensorRT Python backend (device memory)",
                       hint="pip install pycuda in the TensorRT container (it needs the CUDA toolkit to build)")
        self.trt, self.cuda = trt, cuda
        cuda.init()
        if cuda.Device.count() == 0:
            raise UserError("tensorrt: no CUDA device is visible; run this step on a GPU machine "
                            "(with --use-singularity, Snakemake passes --nv through the profile's singularity-args)")
        ctx = cuda.Device(int(self.options.get("device", 0))).retain_primary_context()
        ctx.push()
        self.ctx = ctx  # only a pushed context is popped by deactivate
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime: tensorrt.Runtime = trt.Runtime(self.logger)
        engine: tensorrt.ICudaEngine | None = runtime.deserialize_cuda_engine(self.artifact.read_bytes())
        if engine is None:
            raise UserError(f"tensorrt: {self.artifact} could not be deserialized by {self.flavour} "
                            f"{version_of(trt)}: it is corrupt or was built by another TensorRT version or for "
                            "another GPU; rebuild the engine where it runs")
        self.engine: tensorrt.ICudaEngine = engine
        self.context: tensorrt.IExecutionContext = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"tensorrt: engine has inputs {inputs} and outputs {outputs}; trtverify handles one each")
        self.input_name, self.output_name = inputs[0], outputs[0]
        declared = dims(engine.get_tensor_shape(self.input_name))
        self.input_shape = (None, *declared[1:])
        if declared[0] >= 0:  # a static batch: no profile to ask
            self.min_shape = self.max_shape = declared
        else:
            (self.min_shape, _, self.max_shape) = profile_shape(trt, engine, self.input_name)
        self.max_batch = self.max_shape[0]
        self.in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self.out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output_name)))
        self._set_batch(self.max_batch)
        out_max = dims(self.context.get_tensor_shape(self.output_name))
        self.stream = cuda.Stream()
        self.h_in = cuda.pagelocked_empty(self.max_shape, self.in_dtype)
        self.h_out = cuda.pagelocked_empty(out_max, self.out_dtype)
        self.d_in = cuda.mem_alloc(self.h_in.nbytes)
        self.d_out = cuda.mem_alloc(self.h_out.nbytes)
        self.batch = 0
        self.slots: list[Slot] = []
        self.use(None)

    def deactivate(self) -> None:
        for slot in getattr(self, "slots", []):
            slot.free()
        self.slots = []
        for attr in ("d_in", "d_out"):
            if hasattr(self, attr):
                getattr(self, attr).free()
                delattr(self, attr)
        for attr in ("context", "engine"):
            if hasattr(self, attr):
                delattr(self, attr)
        if hasattr(self, "ctx"):
            self.ctx.pop()
            del self.ctx

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "tensorrt_flavour": self.flavour, "tensorrt_version": version_of(self.trt),
                "device": self.cuda.Device(int(self.options.get("device", 0))).name(),
                "profile_min_batch": self.min_shape[0], "profile_max_batch": self.max_batch}

    def _set_batch(self, n: int) -> None:
        if not self.min_shape[0] <= n <= self.max_batch:
            raise UserError(f"tensorrt: batch {n} is outside the engine's profile [{self.min_shape[0]}, "
                            f"{self.max_batch}]; rebuild with other tensorrt.profile values")
        if not self.context.set_input_shape(self.input_name, (n, *self.max_shape[1:])):
            raise UserError(f"tensorrt: set_input_shape({self.input_name}, batch {n}) was refused")
        self.batch = n

    def add_slot(self, n: int) -> Slot:
        """A further batch of ``n`` in flight (freed with the runner): fill ``slot.h_in``, copy it to ``slot.d_in``
        on any stream, ``use(slot)`` and ``execute()`` (on ``stream``), copy ``slot.d_out`` back into ``slot.h_out``.
        Sets the one context's batch to ``n``."""
        self._set_batch(n)
        slot = Slot(n)
        self.slots.append(slot)  # listed before allocating, so deactivate frees a slot that stopped halfway
        slot.allocate(self, dims(self.context.get_tensor_shape(self.output_name)))
        return slot

    def use(self, slot: Slot | None) -> None:
        """Point the execution context at ``slot``'s device buffers (None: the runner's own) for the next
        ``execute``s. An enqueue reads the addresses when it is called, so the next batch's buffers may be set as
        soon as this batch is enqueued."""
        d_in, d_out = (self.d_in, self.d_out) if slot is None else (slot.d_in, slot.d_out)
        if slot is not None and slot.batch != self.batch:
            self._set_batch(slot.batch)
        if not (self.context.set_tensor_address(self.input_name, int(d_in))
                and self.context.set_tensor_address(self.output_name, int(d_out))):
            raise UserError("tensorrt: set_tensor_address was refused (see the TensorRT messages above)")

    def input_view(self, n: int) -> np.ndarray:
        """The pinned input buffer for a batch of ``n``: write the batch here, then ``stage`` it without a copy."""
        if not 0 < n <= self.max_batch:
            raise UserError(f"tensorrt: batch {n} is outside [1, {self.max_batch}] (the engine's profile)")
        return self.h_in[:n]

    def stage(self, batch: np.ndarray) -> None:
        """Copy a batch to the device (asynchronously on ``stream``) and set the input shape. A batch that is
        ``input_view``'s buffer is already in pinned memory: only the host-to-device copy is made."""
        n = batch.shape[0]
        if n != self.batch:  # a shape change costs host time that benchmarks would count as latency
            self._set_batch(n)
        if batch.ctypes.data != self.h_in.ctypes.data or batch.dtype != self.in_dtype:
            self.h_in[:n] = batch
        self.cuda.memcpy_htod_async(self.d_in, self.h_in[:n], self.stream)

    def execute(self) -> None:
        """Enqueue the engine on the staged buffers."""
        if not self.context.execute_async_v3(stream_handle=self.stream.handle):
            raise UserError("tensorrt: execute_async_v3 failed (see the TensorRT messages above)")

    def download(self) -> None:
        """Enqueue the copy of the last ``execute``'s output into the pinned output buffer (no wait)."""
        self.cuda.memcpy_dtoh_async(self.h_out[:self.batch], self.d_out, self.stream)

    def fetch(self, copy: bool = True) -> np.ndarray:
        """Copy the output of the last ``execute`` back and wait for the stream; ``copy=False`` returns the pinned
        buffer itself (valid until the next batch)."""
        self.download()
        self.stream.synchronize()
        out = self.h_out[:self.batch]
        return np.array(out, dtype=np.float32) if copy else out

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        chunks = []
        for start in range(0, batch.shape[0], self.max_batch):
            self.stage(batch[start:start + self.max_batch].astype(self.in_dtype, copy=False))
            self.execute()
            chunks.append(self.fetch())
        return np.concatenate(chunks)


RUNNER = TensorRTRunner
