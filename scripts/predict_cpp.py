#!/usr/bin/env python3
"""Run the compiled C++ program (cpp/, results/bin/trt_infer) on an engine and check what it wrote.

  python scripts/predict_cpp.py --binary results/bin/trt_infer --engine E.trt --input X.npy|X.csv \
      --samples X.npy --output P.npy --info P.json

The binary writes to a temporary name; its predictions are accepted only if it exited 0 and they have one finite
row per test sample.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from trtverify.errors import UserError, run_main
from trtverify.io import NpyReader, atomic_path, load_npy, write_json
from trtverify.predictions import check_engine, check_predictions


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--engine", required=True)
    p.add_argument("--input", required=True, help=".npy or .csv test samples")
    p.add_argument("--samples", required=True, help="the .npy test samples, to check the row count")
    p.add_argument("--batch-size", type=int, default=0, help="0: the engine profile's max batch")
    p.add_argument("--engine-info", help="build_engine's .json, to check the engine against before use")
    p.add_argument("--output", required=True)
    p.add_argument("--info", required=True)
    args = p.parse_args(argv)
    binary = Path(args.binary)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise UserError(f"{binary} is not an executable; run the compile_cpp step (it needs TensorRT)")
    if args.engine_info:
        check_engine(args.engine, args.engine_info)
    n = len(NpyReader(args.samples, what="test samples"))  # the count alone: the header, not the data
    fmt = "csv" if args.input.endswith(".csv") else "npy"
    with atomic_path(args.output) as tmp:
        cmd = [str(binary), "--engine", args.engine, "--input", args.input, "--input-format", fmt,
               "--output", str(tmp)]
        if args.batch_size:
            cmd += ["--batch", str(args.batch_size)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-20000:])
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()] or ["no message"]
            raise UserError(f"{binary.name} failed with exit status {proc.returncode}: {lines[-1]}")
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise UserError(f"{binary.name} exited 0 but wrote nothing to its --output file; it does not behave like "
                            "trt_infer: rebuild it with the compile_cpp step")
        probs = load_npy(tmp, what=f"{binary.name} output")
        check_predictions(probs, n, f"{binary.name} ({fmt} input)")
        if probs.dtype != np.float32:
            raise UserError(f"{binary.name} wrote dtype {probs.dtype}, expected float32")
    write_json(args.info, {"backend": "tensorrt_cpp", "binary": str(binary), "engine": args.engine,
                           "input": args.input, "input_format": fmt, "samples": n, "seconds": round(seconds, 4),
                           "command": " ".join(cmd[:-1] + [args.output])})
    print(f"{binary.name}: predicted {n} samples from {fmt} in {seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
