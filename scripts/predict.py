#!/usr/bin/env python3
"""Predict the test samples with one backend and write its predictions (.npy) and metadata (.json).

  python scripts/predict.py --backend savedmodel|onnxruntime|tensorrt --artifact PATH --samples X.npy \
      [--providers CUDAExecutionProvider,CPUExecutionProvider] [--batch-size 256] --output P.npy --info P.json
      [--shard I/N] [--device-slot S]

Fails, writing nothing, when the samples do not fit the model or any prediction is NaN or Inf. --shard predicts the
rows of shard I of N (whole batches, scripts/merge_shards.py joins them); --device-slot pins the step to one of the
visible GPUs (trtverify.devices).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import numpy as np

from trtverify.backends import BACKENDS, open_runner
from trtverify.devices import (add_placement_arguments, check_engine_device, describe_device, placement_record,
                               run_placed)
from trtverify.errors import UserError, run_main
from trtverify.io import NpyReader, NpyWriter, write_json
from trtverify.predictions import check_engine, check_predictions
from trtverify.schema import parse_with_defaults
from trtverify.shards import parse_shard, shard_bounds


def predict(runner: Any, samples: NpyReader, batch_size: int, out: NpyWriter, backend: str,
            rows: tuple[int, int]) -> None:
    """Batch by batch, straight into the output file: memory holds the model and a batch or two, whatever the
    number of samples."""
    pinned = getattr(runner, "input_view", None)  # TensorRT: read each batch straight into its pinned input
    for start in range(rows[0], rows[1], batch_size):
        n = min(batch_size, rows[1] - start)
        batch = samples.read(start, start + n, out=pinned(n) if pinned else None)
        probs = runner.infer(batch)
        check_predictions(probs, len(batch), backend, start)
        out.write(probs)


def rows_of(args: argparse.Namespace, total: int) -> tuple[int, int]:
    """The rows this run predicts: all, or one shard's (whole batches of the effective batch size)."""
    return shard_bounds(total, args.batch_size, *parse_shard(args.shard)) if args.shard else (0, total)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=BACKENDS, required=True)
    p.add_argument("--artifact", required=True, help="SavedModel directory, .onnx file or engine")
    p.add_argument("--samples", required=True)
    p.add_argument("--providers", default="", help="ONNX Runtime providers, in order of preference")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--engine-info", help="tensorrt: build_engine's .json, to check the engine against before use")
    add_placement_arguments(p, "I/N: predict shard I (from 0) of N only")
    p.add_argument("--output", required=True)
    p.add_argument("--info", required=True)
    args = parse_with_defaults(p, argv, {"batch_size": "predict.batch_size"})
    if args.batch_size < 1:
        raise UserError("--batch-size must be positive")
    return run_placed(run, args)


def run(args: argparse.Namespace, placement: str | None) -> int:
    record = check_engine(args.artifact, args.engine_info) if args.engine_info else None
    x = NpyReader(args.samples, what="test samples", finite=True)
    if x.dtype != np.float32:
        raise UserError(f"test samples {args.samples} have dtype {x.dtype}; the models take float32")
    options = {"providers": [s for s in args.providers.split(",") if s]} if args.providers else {}
    with open_runner(args.backend, args.artifact, **options) as runner:
        if args.backend == "tensorrt":
            args.batch_size = min(args.batch_size, runner.max_batch)  # type: ignore[attr-defined]
        gpu = describe_device() if args.backend == "tensorrt" else None
        if record is not None:
            check_engine_device(record, args.artifact, gpu)
        rows = rows_of(args, len(x))
        with NpyWriter(args.output, rows[1] - rows[0]) as out:
            start = time.perf_counter()
            predict(runner, x, args.batch_size, out, args.backend, rows)
            seconds = time.perf_counter() - start
            # Written before the predictions are renamed into place: they never exist without their record.
            write_json(args.info, {**runner.metadata(), **placement_record(args.shard, placement, gpu, rows),
                                   "samples": rows[1] - rows[0], "batch_size": args.batch_size,
                                   "seconds": round(seconds, 4),
                                   "output_shape": [rows[1] - rows[0], *(out.row_shape or (0,))]})
    print(f"{args.backend}: predicted samples {rows[0]}..{rows[1]} in {seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
