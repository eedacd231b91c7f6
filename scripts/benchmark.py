#!/usr/bin/env python3
"""Measure one backend at one batch size and write one benchmark row (JSON); one measurement per process.

  python scripts/benchmark.py --backend savedmodel|onnxruntime|tensorrt --artifact PATH --samples X.npy \
      --batch-size N --warmup W --iterations I [--providers CPUExecutionProvider,...] [--precision fp32] \
      [--cuda-graph] --model NAME --output results/NAME/bench/BACKEND_bN.json
  python scripts/benchmark.py --from-cpp-timing T.json --model NAME [--batch-size N] --output ROW.json

The batch is the first N test samples, tiled when N exceeds them; the same batch is fed every iteration.
``warmup`` untimed calls come first, then ``iterations`` timed ones (garbage collection paused while timing).
SavedModel and ONNX Runtime are timed around ``infer`` (host array in, host array out). TensorRT is timed end to
end (stage + execute + fetch: host-to-device copy, inference, device-to-host copy) with a host clock, and
``gpu_compute_ms`` around ``execute`` alone with CUDA events on the runner's stream. ``--from-cpp-timing`` turns
the timing JSON of ``trt_infer --timing`` into the same row shape. Statistics: scripts/trtverify/benchstats.py.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trtverify.backends.registry import BENCH_RUNNERS
from trtverify.benchstats import (PERCENTILE_METHOD, STAT_DIGITS, STAT_KEYS, make_row, summarize, throughput,
                                  time_calls)
from trtverify.errors import UserError, require, run_main
from trtverify.io import load_npy, read_json, write_json
from trtverify.schema import parse_with_defaults

BACKENDS = BENCH_RUNNERS
FRAMEWORK_KEYS = {"savedmodel": "tensorflow_version", "onnxruntime": "onnxruntime_version",
                  "tensorrt": "tensorrt_version"}
FRAMEWORK_NAMES = {"savedmodel": "tensorflow", "onnxruntime": "onnxruntime", "tensorrt": "tensorrt"}
CPP_FIELDS = ("tool", "tensorrt_version", "device", "precision", "batch", "warmup", "iterations", "cuda_graph",
              "gpu_compute_ms", "end_to_end_ms", "throughput_samples_per_s", "peak_gpu_memory_bytes",
              "peak_host_rss_bytes")


# ---------------------------------------------------------------- environment facts
def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """First GPU's name from nvidia-smi, for backends (ORT CUDA, TF GPU) that do not say which device they used."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def peak_host_rss_bytes() -> int:
    """Peak resident set of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def pycuda_version() -> str | None:
    module = sys.modules.get("pycuda")
    return getattr(module, "VERSION_TEXT", None) if module else None


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def cpus_available() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def device_of(backend: str, runner: Any, meta: dict[str, Any]) -> str:
    if backend == "tensorrt":
        return str(meta.get("device"))
    if backend == "onnxruntime" and meta.get("providers_used", ["CPUExecutionProvider"])[0] != "CPUExecutionProvider":
        return gpu_name() or meta["providers_used"][0]
    if backend == "savedmodel" and any("GPU" in d for d in meta.get("devices", [])):
        tf = runner.tf
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return str(details.get("device_name") or gpu_name() or "GPU")
    return cpu_model()


# ---------------------------------------------------------------- inputs
def tile_batch(samples: np.ndarray, batch: int) -> np.ndarray:
    """The first ``batch`` samples, repeating the set when ``batch`` exceeds it."""
    return np.ascontiguousarray(samples[np.arange(batch) % len(samples)])


def load_samples(path: str) -> np.ndarray:
    x = load_npy(path, what="test samples", finite=True)
    if x.dtype != np.float32 or x.ndim < 2 or len(x) == 0:
        raise UserError(f"test samples {path} have dtype {x.dtype} and shape {x.shape}; expected a non-empty "
                        "float32 array (samples, ...)")
    return x


def check_output(probs: np.ndarray, batch: int, backend: str) -> None:
    if probs.ndim != 2 or probs.shape[0] != batch or not np.isfinite(probs).all():
        raise UserError(f"{backend} returned {probs.shape} (finite: {bool(np.isfinite(probs).all())}) for a batch "
                        f"of {batch}; expected finite (batch, classes): the timings would be meaningless")


# ---------------------------------------------------------------- measurement
def timed(fn: Callable[[], Any], warmup: int, iterations: int) -> list[float]:
    """time_calls with the garbage collector paused, so a collection pause is not charged to one iteration."""
    gc.collect()
    gc.disable()
    try:
        return time_calls(fn, warmup, iterations)
    finally:
        gc.enable()


def measure_host(runner: Any, batch: np.ndarray, warmup: int, iterations: int) -> dict[str, Any]:
    """SavedModel / ONNX Runtime: infer() is synchronous and host-to-host."""
    check_output(runner.infer(batch), len(batch), runner.name)
    times = timed(lambda: runner.infer(batch), warmup, iterations)
    return {"latency": summarize(times), "gpu": None, "timer": "time.perf_counter around infer()"}


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
    """The per-iteration work of ``trt_infer --timing`` (cpp/trt_infer/runner.cpp, Runner::time), so the Python and
    C++ rows time the same thing: the batch is written into the runner's pinned input buffer once, before timing
    (``input_view``: no staging copy); each iteration is host-to-device copy, execute (or the CUDA graph's launch),
    device-to-host copy into the pinned output, on one stream, then a wait for it. End to end: CUDA events around
    the three; GPU compute: CUDA events around execute. The host clock around the same work is kept too
    (host_latency): it adds the Python calls' overhead, which the events see only where the GPU waited for it."""
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
            "host_latency": summarize(host),
            "timer": "CUDA events around H2D + execute + D2H (end to end) and around execute (gpu compute), the "
                     "batch in pinned memory before timing, as trt_infer --timing"
                     + (" (CUDA graph launch)" if cuda_graph else "")}


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


# ---------------------------------------------------------------- rows
def compute_limit(m: dict[str, Any], batch: int) -> dict[str, Any]:
    """Throughput if only GPU compute took time: the limit the end-to-end throughput is judged against."""
    if m["gpu"] is None:
        return {}
    limit = throughput(batch, m["gpu"].mean)
    return {"compute_limit_samples_per_s": round(limit, 3),
            "of_compute_limit": round(throughput(batch, m["latency"].mean) / limit, 4),
            "host_latency_ms": m["host_latency"].as_dict()}


def versions(backend: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"framework": FRAMEWORK_NAMES[backend], "framework_version": meta.get(FRAMEWORK_KEYS[backend]),
            "python": platform.python_version(), "numpy": np.__version__}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from trtverify.backends import open_runner

    x = load_samples(args.samples)
    batch = tile_batch(x, args.batch_size)
    options: dict[str, Any] = {}
    if args.providers:
        options["providers"] = [p for p in args.providers.split(",") if p]  # preference order; the row says which ran
    gpu_mem = GpuMemory() if args.backend == "tensorrt" else None
    load_before = load_average()
    with gpu_mem or contextlib.nullcontext(), open_runner(args.backend, args.artifact, **options) as runner:
        if args.backend == "tensorrt":
            m = measure_tensorrt(runner, batch, args.warmup, args.iterations, args.cuda_graph)
        else:
            m = measure_host(runner, batch, args.warmup, args.iterations)
        meta = runner.metadata()
        memory = gpu_mem.sample() if gpu_mem else None
        device = device_of(args.backend, runner, meta)
    if args.backend == "tensorrt":
        meta["pycuda_version"] = pycuda_version()
    details = {**meta, "samples_file": str(args.samples), "distinct_samples_in_batch": min(len(x), args.batch_size),
               "cpus_available": cpus_available(), "gpu_memory": memory, **compute_limit(m, args.batch_size),
               # other processes competing for the cores show up in the tail: judge p99 against this
               "load_average_1min": {"before": load_before, "after": load_average()}}
    return make_row(
        model=args.model, backend=args.backend, precision=args.precision, batch=args.batch_size,
        warmup=args.warmup, iterations=args.iterations, cuda_graph=bool(args.cuda_graph), copies_included=True,
        latency_ms=m["latency"].as_dict(), throughput_samples_per_s=round(throughput(args.batch_size,
                                                                                     m["latency"].mean), 3),
        gpu_compute_ms=m["gpu"].as_dict() if m["gpu"] else None, percentile_method=PERCENTILE_METHOD,
        timer=m["timer"], peak_host_rss_bytes=peak_host_rss_bytes(),
        gpu_memory_bytes=memory["used_bytes"] if memory else None, device=device,
        versions=versions(args.backend, meta), details=details)


def stats_from_cpp(timing: dict[str, Any], key: str, path: str) -> dict[str, float]:
    stats = timing[key]
    if not isinstance(stats, dict) or set(STAT_KEYS) - set(stats):
        raise UserError(f"{path}: '{key}' must hold {', '.join(STAT_KEYS)}; got {stats!r}")
    s = {k: float(stats[k]) for k in STAT_KEYS}
    if not (s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"] and
            s["min"] <= s["mean"] <= s["max"] and s["min"] >= 0):
        raise UserError(f"{path}: '{key}' is inconsistent (need 0 <= min <= p50 <= p90 <= p95 <= p99 <= max and "
                        f"min <= mean <= max): {s}")
    return {k: round(v, STAT_DIGITS) for k, v in s.items()}


def row_from_cpp_timing(timing: dict[str, Any], model: str, path: str = "timing JSON",
                        precision: str | None = None) -> dict[str, Any]:
    """The row of a ``trt_infer --timing`` file; its end-to-end times become latency_ms.

    ``precision`` fills in a file that says "unknown" (trt_infer run without --precision) and must match one
    that names its own.
    """
    missing = [k for k in CPP_FIELDS if k not in timing]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: is it the --timing output of trt_infer?")
    if precision and timing["precision"] not in ("unknown", precision):
        raise UserError(f"{path} is for precision {timing['precision']}, not {precision}")
    latency = stats_from_cpp(timing, "end_to_end_ms", path)
    batch = int(timing["batch"])
    details = {k: v for k, v in timing.items()
               if k not in CPP_FIELDS + ("copies_included", "timer", "percentile_method")}
    details.update(timing_file=str(path), reported_throughput_samples_per_s=timing["throughput_samples_per_s"])
    gpu = stats_from_cpp(timing, "gpu_compute_ms", path)
    if gpu["mean"] > 0 and latency["mean"] > 0:
        limit = throughput(batch, gpu["mean"])
        details.update(compute_limit_samples_per_s=round(limit, 3),
                       of_compute_limit=round(throughput(batch, latency["mean"]) / limit, 4))
    return make_row(
        model=model, backend="tensorrt_cpp",
        precision=timing["precision"] if timing["precision"] != "unknown" else (precision or "unknown"), batch=batch,
        warmup=int(timing["warmup"]), iterations=int(timing["iterations"]), cuda_graph=bool(timing["cuda_graph"]),
        copies_included=bool(timing.get("copies_included", True)), latency_ms=latency,
        throughput_samples_per_s=round(throughput(batch, latency["mean"]), 3),
        gpu_compute_ms=stats_from_cpp(timing, "gpu_compute_ms", path),
        percentile_method=timing.get("percentile_method", "as computed by trt_infer"),
        timer="trt_infer: CUDA events around " + ("H2D + enqueueV3 + D2H" if timing.get("copies_included", True)
                                                   else "enqueueV3") + " (end to end) and enqueueV3 (gpu compute)",
        peak_host_rss_bytes=timing["peak_host_rss_bytes"], gpu_memory_bytes=timing["peak_gpu_memory_bytes"],
        device=timing["device"],
        versions={"framework": "tensorrt", "framework_version": timing["tensorrt_version"], "tool": timing["tool"]},
        details=details)


# ---------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=BACKENDS)
    p.add_argument("--artifact", help="SavedModel directory, .onnx file or TensorRT engine")
    p.add_argument("--samples", help="test samples (.npy, float32)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--warmup", type=int, help="untimed calls before timing")
    p.add_argument("--iterations", type=int, help="timed calls")
    p.add_argument("--providers", default="", help="ONNX Runtime providers in order of preference (the available "
                   "ones are used and recorded in details.providers_used)")
    p.add_argument("--precision", help="recorded in the row: the engine's build precision (default fp32)")
    p.add_argument("--cuda-graph", action="store_true", help="TensorRT: launch execute() as a captured CUDA graph")
    p.add_argument("--from-cpp-timing", metavar="T.json", help="normalise trt_infer's --timing JSON instead")
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True)
    args = parse_with_defaults(p, argv, {"warmup": "benchmark.warmup", "iterations": "benchmark.iterations"})
    if args.from_cpp_timing:
        return args
    args.precision = args.precision or "fp32"
    missing = [f"--{k.replace('_', '-')}" for k in ("backend", "artifact", "samples", "batch_size")
               if getattr(args, k) is None]
    if missing:
        p.error(f"the following arguments are required without --from-cpp-timing: {', '.join(missing)}")
    if args.batch_size < 1 or args.iterations < 1 or args.warmup < 0:
        raise UserError("need --batch-size >= 1, --iterations >= 1 and --warmup >= 0")
    if args.cuda_graph and args.backend != "tensorrt":
        raise UserError(f"--cuda-graph applies to the tensorrt backend only, not {args.backend}")
    if args.providers and args.backend != "onnxruntime":
        raise UserError(f"--providers applies to the onnxruntime backend only, not {args.backend}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_cpp_timing:
        row = row_from_cpp_timing(read_json(args.from_cpp_timing, what="trt_infer timing"), args.model,
                                  args.from_cpp_timing, args.precision)
        if args.batch_size is not None and args.batch_size != row["batch"]:
            raise UserError(f"{args.from_cpp_timing} is for batch {row['batch']}, not {args.batch_size}")
    else:
        row = run_benchmark(args)
    write_json(args.output, row)
    lat = row["latency_ms"]
    print(f"{row['backend']} b{row['batch']}: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, "
          f"{row['throughput_samples_per_s']:.1f} samples/s on {row['device']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
