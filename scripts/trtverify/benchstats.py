"""Latency statistics of a benchmark, and the one row shape every backend's measurement is written in.

The timer runs ``warmup`` untimed calls, then ``iterations`` timed ones, so warm-up never reaches the statistics.
Percentiles use numpy's default method ("linear": interpolate between the two nearest ranks, the same as
``numpy.percentile(..., method="linear")`` and Excel's PERCENTILE.INC). Throughput is samples per second at the
mean latency: ``batch / mean``, so it is the rate one caller achieves issuing batches back to back.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Final, Iterable, Literal

import numpy as np

from .errors import UserError

PERCENTILE_METHOD: Final[Literal["linear"]] = "linear"
STAT_KEYS = ("mean", "p50", "p90", "p95", "p99", "min", "max")
STAT_DIGITS = 6  # milliseconds to the nanosecond: the rows of every backend, Python or C++, are rounded alike

# The keys of a benchmark row, in order: trtverify.benchrow makes them, bench_table.py reads them, a test pins them.
ROW_KEYS = (
    "model", "backend", "precision", "batch", "warmup", "iterations", "cuda_graph", "copies_included",
    "latency_ms", "throughput_samples_per_s", "gpu_compute_ms", "percentile_method", "timer",
    "peak_host_rss_bytes", "gpu_memory_bytes", "device", "versions", "details",
)


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Per-iteration latency in milliseconds, summarised."""

    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float
    count: int

    def as_dict(self, digits: int = STAT_DIGITS) -> dict[str, float]:
        return {k: round(float(getattr(self, k)), digits) for k in STAT_KEYS}


def summarize(times_ms: Iterable[float]) -> LatencyStats:
    """Statistics of per-iteration times (milliseconds); refuses an empty or non-finite list."""
    t = np.asarray(list(times_ms), dtype=np.float64)
    if t.size == 0:
        raise UserError("no timed iterations: --iterations must be at least 1")
    if not np.isfinite(t).all() or (t < 0).any():
        raise UserError(f"invalid iteration times (negative or not finite): {t[~np.isfinite(t) | (t < 0)][:5]}")
    p50, p90, p95, p99 = np.percentile(t, [50, 90, 95, 99], method=PERCENTILE_METHOD)
    return LatencyStats(mean=float(t.mean()), p50=float(p50), p90=float(p90), p95=float(p95), p99=float(p99),
                        min=float(t.min()), max=float(t.max()), count=int(t.size))


def throughput(batch: int, mean_ms: float) -> float:
    """Samples per second when each call handles ``batch`` samples in ``mean_ms`` milliseconds."""
    if batch < 1 or mean_ms <= 0:
        raise UserError(f"throughput needs a positive batch and mean latency, got batch {batch}, mean {mean_ms} ms")
    return batch * 1000.0 / mean_ms


def time_calls(fn: Callable[[], Any], warmup: int, iterations: int,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``iterations`` times timed; return those times in milliseconds.

    ``fn`` must be synchronous (return only when its result is on the host), or the times measure enqueueing.
    """
    if warmup < 0 or iterations < 1:
        raise UserError(f"need warmup >= 0 and iterations >= 1, got {warmup} and {iterations}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        start = clock()
        fn()
        times.append((clock() - start) * 1000.0)
    return times


def make_row(**fields: Any) -> dict[str, Any]:
    """A benchmark row with exactly ROW_KEYS, in order; a missing or unknown key is a bug in the caller."""
    missing, unknown = set(ROW_KEYS) - set(fields), set(fields) - set(ROW_KEYS)
    if missing or unknown:
        raise ValueError(f"benchmark row: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return {k: fields[k] for k in ROW_KEYS}


# A process's ru_maxrss keeps the largest resident set its address spaces ever had, including the one it was forked
# from before exec: a step started straight from a big parent (pytest after TensorFlow, a benchmark holding a batch)
# would report the parent's memory. A bare interpreter forks the step instead; its own ~10 MB is the floor.
_LAUNCHER = r"""
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stdout.flush()
print("", os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss, sep="\n", file=sys.stderr)
"""


@dataclasses.dataclass(frozen=True)
class ProcessCost:
    returncode: int
    seconds: float
    peak_rss_bytes: int  # the process's own peak, with its waited-for children (tf2onnx's CLI, say)
    output: str          # stdout and stderr together


def measure_process(cmd: list[str], **popen: Any) -> ProcessCost:
    """Run ``cmd`` and measure its wall time and peak resident memory (Linux), free of the caller's own memory."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *cmd], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **popen)
    output, rc, seconds, kib = proc.stdout.decode(errors="replace").rstrip("\n").rsplit("\n", 3)
    return ProcessCost(int(rc), float(seconds), int(kib) * 1024, output)
