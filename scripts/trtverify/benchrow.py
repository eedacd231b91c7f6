"""What every benchmark program shares: the machine's facts, the batch, the command line, and the row.

The programs (one job each): scripts/benchmark.py (SavedModel, ONNX Runtime), scripts/benchmark_tensorrt.py
(TensorRT from Python; its timing is in benchgpu.py) and scripts/bench_cpp_row.py (``trt_infer --timing`` as a row).
Statistics and the row's keys: benchstats.py.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .benchstats import PERCENTILE_METHOD, STAT_DIGITS, STAT_KEYS, LatencyStats, make_row, throughput, time_calls
from .devices import nvidia_smi
from .errors import UserError
from .io import load_npy, write_json

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
    names = nvidia_smi("--query-gpu=name", "--format=csv,noheader")
    return names[0].strip() if names else None


def peak_host_rss_bytes() -> int:
    """Peak resident set of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def cpus_available() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The garbage collector off while timing, so a collection pause is not charged to one iteration."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def timed(fn: Callable[[], Any], warmup: int, iterations: int) -> list[float]:
    with gc_paused():
        return time_calls(fn, warmup, iterations)


# ---------------------------------------------------------------- command line
def measurement_args(p: argparse.ArgumentParser) -> None:
    """The options of a program that measures one artifact at one batch size."""
    p.add_argument("--artifact", required=True, help="SavedModel directory, .onnx file or TensorRT engine")
    p.add_argument("--samples", required=True, help="test samples (.npy, float32)")
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--warmup", type=int, help="untimed calls before timing")
    p.add_argument("--iterations", type=int, help="timed calls")
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True)


# The options of measurement_args whose default is the config's (the schema's, when a program runs by hand).
MEASUREMENT_DEFAULTS = {"warmup": "benchmark.warmup", "iterations": "benchmark.iterations"}


def check_counts(args: argparse.Namespace) -> None:
    if args.batch_size < 1 or args.iterations < 1 or args.warmup < 0:
        raise UserError("need --batch-size >= 1, --iterations >= 1 and --warmup >= 0")


def measuring_main(parse_args: Callable[[Sequence[str] | None], argparse.Namespace],
                   measure: Callable[[argparse.Namespace], dict[str, Any]]) -> Callable[[Sequence[str] | None], int]:
    """The ``main`` of a program that measures: parse its command line, measure, write the row."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = parse_args(argv)
        write_row(args.output, measure(args))
        return 0

    return main


def write_row(path: str, row: dict[str, Any]) -> None:
    """Write the row (atomically) and say what it measured on stderr."""
    write_json(path, row)
    lat = row["latency_ms"]
    print(f"{row['backend']} b{row['batch']}: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, "
          f"{row['throughput_samples_per_s']:.1f} samples/s on {row['device']}", file=sys.stderr)


# ---------------------------------------------------------------- rows
def compute_limit(latency_mean_ms: float, gpu_mean_ms: float, batch: int) -> dict[str, float]:
    """Throughput if only GPU compute took time: the limit the end-to-end throughput is judged against."""
    limit = throughput(batch, gpu_mean_ms)
    return {"compute_limit_samples_per_s": round(limit, 3),
            "of_compute_limit": round(throughput(batch, latency_mean_ms) / limit, 4)}


def versions(backend: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"framework": FRAMEWORK_NAMES[backend], "framework_version": meta.get(FRAMEWORK_KEYS[backend]),
            "python": platform.python_version(), "numpy": np.__version__}


def measured_row(args: argparse.Namespace, backend: str, m: dict[str, Any], meta: dict[str, Any], n_samples: int,
                 device: str, memory: dict[str, int] | None, load_before: float | None, *, precision: str = "fp32",
                 cuda_graph: bool) -> dict[str, Any]:
    """The row of a measurement made in this process (``m``: latency, gpu (or None), timer and extra details)."""
    latency: LatencyStats = m["latency"]
    gpu: LatencyStats | None = m["gpu"]
    details = {**meta, "samples_file": str(args.samples), "distinct_samples_in_batch": min(n_samples, args.batch_size),
               "cpus_available": cpus_available(), "gpu_memory": memory, **m.get("details", {}),
               **(compute_limit(latency.mean, gpu.mean, args.batch_size) if gpu else {}),
               # other processes competing for the cores show up in the tail: judge p99 against this
               "load_average_1min": {"before": load_before, "after": load_average()}}
    return make_row(
        model=args.model, backend=backend, precision=precision, batch=args.batch_size,
        warmup=args.warmup, iterations=args.iterations, cuda_graph=cuda_graph,
        copies_included=True, latency_ms=latency.as_dict(),
        throughput_samples_per_s=round(throughput(args.batch_size, latency.mean), 3),
        gpu_compute_ms=gpu.as_dict() if gpu else None, percentile_method=PERCENTILE_METHOD, timer=m["timer"],
        peak_host_rss_bytes=peak_host_rss_bytes(), gpu_memory_bytes=memory["used_bytes"] if memory else None,
        device=device, versions=versions(backend, meta), details=details)


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


def cpp_timer(timing: dict[str, Any]) -> str:
    if timing.get("overlap"):
        return ("trt_infer --overlap: CUDA events at each batch's completion (end to end: the interval between "
                "completions, two batches in flight) and around enqueueV3 (gpu compute)")
    return "trt_infer: CUDA events around " + ("H2D + enqueueV3 + D2H" if timing.get("copies_included", True)
                                               else "enqueueV3") + " (end to end) and enqueueV3 (gpu compute)"


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
    gpu = stats_from_cpp(timing, "gpu_compute_ms", path)
    batch = int(timing["batch"])
    details = {k: v for k, v in timing.items()
               if k not in CPP_FIELDS + ("copies_included", "timer", "percentile_method")}
    details.update(timing_file=str(path), reported_throughput_samples_per_s=timing["throughput_samples_per_s"])
    if gpu["mean"] > 0 and latency["mean"] > 0:
        details.update(compute_limit(latency["mean"], gpu["mean"], batch))
    return make_row(
        model=model, backend="tensorrt_cpp",
        precision=timing["precision"] if timing["precision"] != "unknown" else (precision or "unknown"), batch=batch,
        warmup=int(timing["warmup"]), iterations=int(timing["iterations"]), cuda_graph=bool(timing["cuda_graph"]),
        copies_included=bool(timing.get("copies_included", True)), latency_ms=latency,
        throughput_samples_per_s=round(throughput(batch, latency["mean"]), 3), gpu_compute_ms=gpu,
        percentile_method=timing.get("percentile_method", "as computed by trt_infer"), timer=cpp_timer(timing),
        peak_host_rss_bytes=timing["peak_host_rss_bytes"], gpu_memory_bytes=timing["peak_gpu_memory_bytes"],
        device=timing["device"],
        versions={"framework": "tensorrt", "framework_version": timing["tensorrt_version"], "tool": timing["tool"]},
        details=details)
