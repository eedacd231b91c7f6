#!/usr/bin/env python3
"""Measure a host backend (SavedModel or ONNX Runtime) at one batch size and write one benchmark row (JSON).

  python scripts/benchmark.py --backend savedmodel|onnxruntime --artifact PATH --samples X.npy --batch-size N \
      --warmup W --iterations I [--providers CPUExecutionProvider,...] --model NAME --output BACKEND_bN.json

The batch is the first N test samples, tiled when N exceeds them; the same batch is fed every iteration.
``warmup`` untimed calls come first, then ``iterations`` timed ones (garbage collection paused while timing), each
timed around ``infer`` (host array in, host array out). One measurement per process. TensorRT has programs of its
own: scripts/benchmark_tensorrt.py (Python) and scripts/bench_cpp_row.py (trt_infer's timing as a row).
Statistics: scripts/trtverify/benchstats.py; the row: scripts/trtverify/benchrow.py.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

import numpy as np

from trtverify.backends.registry import BENCH_RUNNERS, BY_NAME
from trtverify.benchrow import (MEASUREMENT_DEFAULTS, check_counts, check_output, cpu_model, gpu_name, load_average,
                                load_samples, measured_row, measurement_args, measuring_main, tile_batch, timed)
from trtverify.benchstats import summarize
from trtverify.errors import UserError, run_main
from trtverify.schema import parse_with_defaults

# The registry's benchmarkable runners that need no engine (the host backends; TensorRT: benchmark_tensorrt.py).
BACKENDS = tuple(name for name in BENCH_RUNNERS if not BY_NAME[name].needs_engine)


def device_of(backend: str, runner: Any, meta: dict[str, Any]) -> str:
    if backend == "onnxruntime" and meta.get("providers_used", ["CPUExecutionProvider"])[0] != "CPUExecutionProvider":
        return gpu_name() or meta["providers_used"][0]
    if backend == "savedmodel" and any("GPU" in d for d in meta.get("devices", [])):
        tf = runner.tf
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return str(details.get("device_name") or gpu_name() or "GPU")
    return cpu_model()


def measure_host(runner: Any, batch: np.ndarray, warmup: int, iterations: int) -> dict[str, Any]:
    """infer() is synchronous and host-to-host."""
    check_output(runner.infer(batch), len(batch), runner.name)
    times = timed(lambda: runner.infer(batch), warmup, iterations)
    return {"latency": summarize(times), "gpu": None, "timer": "time.perf_counter around infer()"}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from trtverify.backends import open_runner

    x = load_samples(args.samples)
    batch = tile_batch(x, args.batch_size)
    options: dict[str, Any] = {}
    if args.providers:
        options["providers"] = [p for p in args.providers.split(",") if p]  # preference order; the row says which ran
    load_before = load_average()
    with open_runner(args.backend, args.artifact, **options) as runner:
        m = measure_host(runner, batch, args.warmup, args.iterations)
        meta = runner.metadata()
        device = device_of(args.backend, runner, meta)
    return measured_row(args, args.backend, m, meta, len(x), device, None, load_before, cuda_graph=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=BACKENDS, required=True)
    measurement_args(p)
    p.add_argument("--providers", default="", help="ONNX Runtime providers in order of preference (the available "
                   "ones are used and recorded in details.providers_used)")
    args = parse_with_defaults(p, argv, MEASUREMENT_DEFAULTS)
    check_counts(args)
    if args.providers and args.backend != "onnxruntime":
        raise UserError(f"--providers applies to the onnxruntime backend only, not {args.backend}")
    return args


main = measuring_main(parse_args, run_benchmark)


if __name__ == "__main__":
    run_main(main)
