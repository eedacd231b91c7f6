#!/usr/bin/env python3
"""Predict the test samples with one backend and write its predictions (.npy) and metadata (.json).

  python scripts/predict.py --backend savedmodel|onnxruntime|tensorrt --artifact PATH --samples X.npy \
      [--providers CUDAExecutionProvider,CPUExecutionProvider] [--batch-size 256] --output P.npy --info P.json

Fails, writing nothing, when the samples do not fit the model or any prediction is NaN or Inf.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import numpy as np

from trtverify.backends import BACKENDS, open_runner
from trtverify.errors import UserError, run_main
from trtverify.io import NpyReader, NpyWriter, write_json
from trtverify.predictions import check_engine, check_predictions
from trtverify.schema import parse_with_defaults


def predict(runner: Any, samples: NpyReader, batch_size: int, out: NpyWriter, backend: str) -> None:
    """Batch by batch, straight into the output file: memory holds the model and a batch or two, whatever the
    number of samples."""
    pinned = getattr(runner, "input_view", None)  # TensorRT: read each batch straight into its pinned input
    for start in range(0, len(samples), batch_size):
        n = min(batch_size, len(samples) - start)
        batch = samples.read(start, start + n, out=pinned(n) if pinned else None)
        probs = runner.infer(batch)
        check_predictions(probs, len(batch), backend, start)
        out.write(probs)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=BACKENDS, required=True)
    p.add_argument("--artifact", required=True, help="SavedModel directory, .onnx file or engine")
    p.add_argument("--samples", required=True)
    p.add_argument("--providers", default="", help="ONNX Runtime providers, in order of preference")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--engine-info", help="tensorrt: build_engine's .json, to check the engine against before use")
    p.add_argument("--output", required=True)
    p.add_argument("--info", required=True)
    args = parse_with_defaults(p, argv, {"batch_size": "predict.batch_size"})
    if args.batch_size < 1:
        raise UserError("--batch-size must be positive")
    if args.engine_info:
        check_engine(args.artifact, args.engine_info)
    x = NpyReader(args.samples, what="test samples", finite=True)
    if x.dtype != np.float32:
        raise UserError(f"test samples {args.samples} have dtype {x.dtype}; the models take float32")
    options = {"providers": [s for s in args.providers.split(",") if s]} if args.providers else {}
    with open_runner(args.backend, args.artifact, **options) as runner, NpyWriter(args.output, len(x)) as out:
        if args.backend == "tensorrt":
            args.batch_size = min(args.batch_size, runner.max_batch)  # type: ignore[attr-defined]
        start = time.perf_counter()
        predict(runner, x, args.batch_size, out, args.backend)
        seconds = time.perf_counter() - start
        meta = runner.metadata()
        # Written before the predictions are renamed into place: they never exist without their record.
        write_json(args.info, {**meta, "samples": len(x), "batch_size": args.batch_size,
                               "seconds": round(seconds, 4), "output_shape": [len(x), *(out.row_shape or (0,))]})
    print(f"{args.backend}: predicted {len(x)} samples in {seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
