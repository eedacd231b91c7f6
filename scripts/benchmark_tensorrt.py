#!/usr/bin/env python3
"""Time a TensorRT engine from Python at one batch size and write one benchmark row (JSON).

  python scripts/benchmark_tensorrt.py --artifact ENGINE.trt --samples X.npy --batch-size N --warmup W \
      --iterations I [--precision fp16] [--cuda-graph | --overlap] --model NAME --output tensorrt_P_bN.json

The same work per iteration as ``trt_infer --timing`` (the batch in pinned memory before timing; H2D + execute +
D2H on one stream; CUDA events end to end and around execute), or with ``--overlap`` the same throughput mode as
``trt_infer --timing --overlap`` (two batches in flight, copies overlapped with compute): scripts/trtverify/benchgpu.py
and docs/benchmarks.md. ``--cuda-graph`` launches execute as a captured CUDA graph (needs NVIDIA's cuda-python).
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from trtverify.benchgpu import GpuMemory, measure_overlapped, measure_tensorrt, pycuda_version
from trtverify.benchrow import (MEASUREMENT_DEFAULTS, check_counts, load_average, load_samples, measured_row,
                                measurement_args, measuring_main, tile_batch)
from trtverify.errors import run_main
from trtverify.schema import parse_with_defaults


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from trtverify.backends import open_runner

    x = load_samples(args.samples)
    batch = tile_batch(x, args.batch_size)
    load_before = load_average()
    with GpuMemory() as gpu_mem, open_runner("tensorrt", args.artifact) as runner:
        if args.overlap:
            m = measure_overlapped(runner, batch, args.warmup, args.iterations)
        else:
            m = measure_tensorrt(runner, batch, args.warmup, args.iterations, args.cuda_graph)
        meta = runner.metadata()
        memory = gpu_mem.sample()
    meta["pycuda_version"] = pycuda_version()
    return measured_row(args, "tensorrt", m, meta, len(x), str(meta.get("device")), memory, load_before,
                        precision=args.precision, cuda_graph=args.cuda_graph)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    measurement_args(p)
    p.add_argument("--precision", default="fp32", help="recorded in the row: the engine's build precision")
    mode = p.add_mutually_exclusive_group()  # overlap alternates two slots' buffers; one captured graph keeps one
    mode.add_argument("--cuda-graph", action="store_true", help="launch execute() as a captured CUDA graph")
    mode.add_argument("--overlap", action="store_true",
                      help="throughput mode: two batches in flight, copies overlapped with compute")
    args = parse_with_defaults(p, argv, MEASUREMENT_DEFAULTS)
    check_counts(args)
    return args


main = measuring_main(parse_args, run_benchmark)


if __name__ == "__main__":
    run_main(main)
