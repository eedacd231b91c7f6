"""TensorRT timing from Python: the same work per iteration as ``trt_infer --timing`` (cpp/trt_infer/runner.cpp), so
the Python and C++ rows compare; docs/benchmarks.md, "What is timed", defines both modes once.

- ``measure_tensorrt``: one batch at a time (Runner::time): H2D + execute + D2H on one stream, then a wait.
- ``measure_overlapped``: throughput mode (Runner::time_overlapped): two batches in flight on one execution
  context, their enqueues serialized, the copies of one overlapping the other's compute.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np

from .benchrow import check_output, gc_paused, timed
from .benchstats import summarize
from .errors import UserError, require


def pycuda_version() -> str | None:
    module = sys.modules.get("pycuda")
    return getattr(module, "VERSION_TEXT", None) if module else None


class GpuMemory:
    """Device memory in use by this process's work: free memory before loading the engine minus after the runs.

    mem_get_info is device-wide, so another process on the same GPU changes it; the rule asks for the GPU alone.
    """

    def __enter__(self) -> "GpuMemory":
        self.cuda = require("pycuda.driver", purpose="the TensorRT benchmark (device memory)",
                            hint="pip install pycuda in the TensorRT container")
        self.cuda.init()
        if self.cuda.Device.count() == 0:
            raise UserError("tensorrt: no CUDA device is visible; run this benchmark on a GPU machine")
        self.ctx = self.cuda.Device(0).retain_primary_context()
        self.ctx.push()
        self.free_before, self.total = self.cuda.mem_get_info()
        return self

    def sample(self) -> dict[str, int]:
        free_after, _ = self.cuda.mem_get_info()
        return {"used_bytes": int(self.free_before - free_after), "free_before_bytes": int(self.free_before),
                "free_after_bytes": int(free_after), "total_bytes": int(self.total)}

    def __exit__(self, *exc: object) -> None:
        self.ctx.pop()


def cuda_graph_launcher(runner: Any) -> Callable[[], None]:
    """Capture ``runner.execute()`` on ``runner.stream`` into a CUDA graph; return what launches it.

    pycuda (through 2026.1) has no stream capture, so the capture goes through NVIDIA's cuda-python driver
    bindings on pycuda's stream handle, in the same (current) context.
    """
    try:
        from cuda.bindings import driver as cu  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cuda as cu  # type: ignore[no-redef]  # older cuda-python layout
        except ImportError:
            raise UserError(f"--cuda-graph needs CUDA stream capture, which pycuda {pycuda_version()} "
                            "lacks; install NVIDIA's cuda-python (pip install cuda-python) or drop --cuda-graph "
                            "(benchmark.cuda_graph: false)") from None

    def check(result: tuple[Any, ...], what: str) -> Any:
        if int(result[0]) != 0:
            raise UserError(f"--cuda-graph: {what} failed ({result[0]}); this engine cannot be captured in a "
                            "CUDA graph here: set benchmark.cuda_graph: false")
        return result[1] if len(result) > 1 else None

    stream = cu.CUstream(int(runner.stream.handle))
    check(cu.cuStreamBeginCapture(stream, cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
          "cuStreamBeginCapture")
    try:
        runner.execute()
    finally:
        graph = check(cu.cuStreamEndCapture(stream), "cuStreamEndCapture")
    # CUDA 12 gave cuGraphInstantiate the flags form; 11.x named that cuGraphInstantiateWithFlags (13 dropped it).
    instantiate = getattr(cu, "cuGraphInstantiateWithFlags", None) or cu.cuGraphInstantiate
    graph_exec = check(instantiate(graph, 0), "cuGraphInstantiate")
    return lambda: check(cu.cuGraphLaunch(graph_exec, stream), "cuGraphLaunch")


def measure_tensorrt(runner: Any, batch: np.ndarray, warmup: int, iterations: int,
                     cuda_graph: bool) -> dict[str, Any]:
    """The per-iteration work of ``trt_infer --timing`` (Runner::time): the batch is written into the runner's
    pinned input buffer once, before timing (``input_view``: no staging copy); each iteration is host-to-device
    copy, execute (or the CUDA graph's launch), device-to-host copy into the pinned output, on one stream, then a
    wait for it. End to end: CUDA events around the three; GPU compute: CUDA events around execute. The host clock
    around the same work is kept too (host_latency_ms): it adds the Python calls' overhead, which the events see
    only where the GPU waited for it."""
    staged = runner.input_view(len(batch))
    staged[...] = batch
    runner.stage(staged)
    runner.execute()  # the first enqueue after a shape change does setup that must not be captured or timed
    check_output(runner.fetch(), len(batch), "tensorrt")
    launch = cuda_graph_launcher(runner) if cuda_graph else runner.execute
    start, compute_start, compute_end, end = (runner.cuda.Event() for _ in range(4))
    gpu_ms, end_to_end_ms = [], []

    def one() -> None:
        start.record(runner.stream)
        runner.stage(staged)
        compute_start.record(runner.stream)
        launch()
        compute_end.record(runner.stream)
        runner.download()
        end.record(runner.stream)
        end.synchronize()
        gpu_ms.append(compute_end.time_since(compute_start))
        end_to_end_ms.append(end.time_since(start))

    host = timed(one, warmup, iterations)
    return {"latency": summarize(end_to_end_ms[warmup:]), "gpu": summarize(gpu_ms[warmup:]),
            "details": {"host_latency_ms": summarize(host).as_dict(), "overlap": False},
            "timer": "CUDA events around H2D + execute + D2H (end to end) and around execute (gpu compute), the "
                     "batch in pinned memory before timing, as trt_infer --timing"
                     + (" (CUDA graph launch)" if cuda_graph else "")}


def measure_overlapped(runner: Any, batch: np.ndarray, warmup: int, iterations: int) -> dict[str, Any]:
    """Throughput mode, as ``trt_infer --timing --overlap`` (Runner::time_overlapped): the runner's one execution
    context and two slots (``add_slot``: device and pinned buffers each), their pinned inputs filled once before
    timing. Uploads run on one stream, executes on the runner's (serialized there, as enqueues of one context must
    be), downloads on a third; batch i uses slot i % 2: ``use`` points the context at its buffers just before its
    enqueue, its execute waits (on the GPU) for its upload and its download for its execute, and the host waits for
    batch i-2's download before reusing the slot (so an upload never overwrites an input whose execute still reads
    it), so batch i+1's upload and batch i-1's download run during batch i's compute. Recorded per timed batch: the
    interval between its completion (end of its download) and the previous one's, whose mean is the steady-state
    period (throughput = batch / mean period = timed samples / timed span), and compute alone (events around
    execute): the limit. The host clock over the timed batches is kept too (host_span_ms)."""
    cuda, n = runner.cuda, len(batch)
    compute, upload, download = runner.stream, cuda.Stream(), cuda.Stream()
    slots = [runner.add_slot(n), runner.add_slot(n)]
    try:
        for slot in slots:
            slot.h_in[...] = batch
            cuda.memcpy_htod_async(slot.d_in, slot.h_in, compute)
            runner.use(slot)
            runner.execute()  # the first enqueue after a shape change does setup that must not be timed
            cuda.memcpy_dtoh_async(slot.h_out, slot.d_out, compute)
            compute.synchronize()
            check_output(slot.h_out, n, "tensorrt")
        events, host_span = _overlapped_loop(runner, slots, upload, download, warmup + iterations, warmup)
    finally:
        runner.use(None)  # predictions after this run on the runner's own buffers again
    uploaded, compute_start, compute_end, done, first = events
    timed_ones = range(warmup, warmup + iterations)
    periods = [done[i].time_since(done[i - 1] if i else first) for i in timed_ones]
    return {"latency": summarize(periods), "gpu": summarize(compute_end[i].time_since(compute_start[i])
                                                             for i in timed_ones),
            "details": {"overlap": True, "host_span_ms": round(host_span, 6)},
            "timer": "overlapped (two batches in flight on one execution context, trt_infer --overlap): CUDA events "
                     "at each batch's completion (end to end: the interval between completions) and around execute "
                     "(gpu compute)"}


def _overlapped_loop(runner: Any, slots: list[Any], upload: Any, download: Any, total: int,
                     warmup: int) -> tuple[Any, float]:
    """Issue ``total`` batches as measure_overlapped describes; return the events (uploaded, compute_start,
    compute_end, done per batch, and first: recorded before the first upload) and the host span of the timed ones."""
    cuda, compute = runner.cuda, runner.stream
    uploaded, compute_start, compute_end, done = ([cuda.Event() for _ in range(total)] for _ in range(4))
    first = cuda.Event()
    first.record(upload)
    marks: list[float] = []
    with gc_paused():
        for i in range(total):
            slot = slots[i % 2]
            if i >= 2:
                done[i - 2].synchronize()  # the host takes batch i-2's output: its slot is free again
            if i == warmup:
                marks.append(time.perf_counter())
            cuda.memcpy_htod_async(slot.d_in, slot.h_in, upload)
            uploaded[i].record(upload)
            compute.wait_for_event(uploaded[i])
            runner.use(slot)  # read by the enqueue below when it is issued, not when it runs
            compute_start[i].record(compute)
            runner.execute()
            compute_end[i].record(compute)
            download.wait_for_event(compute_end[i])
            cuda.memcpy_dtoh_async(slot.h_out, slot.d_out, download)
            done[i].record(download)
        done[-1].synchronize()
    return (uploaded, compute_start, compute_end, done, first), (time.perf_counter() - marks[0]) * 1000.0
