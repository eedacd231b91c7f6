#!/usr/bin/env python3
"""Run the compiled C++ program (cpp/, results/bin/trt_infer) on an engine and check what it wrote.

  python scripts/predict_cpp.py --binary results/bin/trt_infer --engine E.trt --input X.npy|X.csv \
      --samples X.npy --output P.npy --info P.json [--shard I/N --engine-info E.json] [--device-slot S]

The binary writes to a temporary name; its predictions are accepted only if it exited 0 and they have one finite
row per test sample. --shard predicts the rows of shard I of N (whole batches of the batch size the binary runs:
--batch-size, else the engine profile's max), from a temporary .npy of those rows; --device-slot pins the binary to
one of the visible GPUs (trtverify.devices).
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

from trtverify.devices import (add_placement_arguments, check_engine_device, describe_device, placement_record,
                               run_placed)
from trtverify.errors import UserError, run_main
from trtverify.io import COPY_BYTES, NpyReader, NpyWriter, atomic_path, load_npy, write_json
from trtverify.predictions import check_engine, check_predictions
from trtverify.shards import parse_shard, shard_bounds


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--engine", required=True)
    p.add_argument("--input", required=True, help=".npy or .csv test samples")
    p.add_argument("--samples", required=True, help="the .npy test samples, to check the row count")
    p.add_argument("--batch-size", type=int, default=0, help="0: the engine profile's max batch")
    p.add_argument("--engine-info", help="build_engine's .json, to check the engine against before use")
    add_placement_arguments(p, "I/N: predict shard I (from 0) of N only (.npy input; needs --engine-info)")
    p.add_argument("--output", required=True)
    p.add_argument("--info", required=True)
    args = p.parse_args(argv)
    return run_placed(run, args)


def run(args: argparse.Namespace, placement: str | None) -> int:
    binary = Path(args.binary)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise UserError(f"{binary} is not an executable; run the compile_cpp step (it needs TensorRT)")
    gpu = describe_device()
    record = check_engine(args.engine, args.engine_info) if args.engine_info else None
    if record is not None:
        check_engine_device(record, args.engine, gpu)
    n = len(NpyReader(args.samples, what="test samples"))  # the count alone: the header, not the data
    fmt = "csv" if args.input.endswith(".csv") else "npy"
    rows = (0, n)
    if args.shard:
        if fmt != "npy" or record is None:
            raise UserError("--shard needs .npy --input and --engine-info (the batch size the shards are cut by)")
        args.batch_size = args.batch_size or record["profile"]["max"][0]
        rows = shard_bounds(n, args.batch_size, *parse_shard(args.shard))
    with atomic_path(args.output) as tmp:
        # The binary reads a whole file: a shard's rows go to a temporary that a killed run's successor removes
        # (atomic_path's stale temporaries of the output: .{name}.*.tmp).
        shard_input = tmp.with_suffix(".input.tmp")
        try:
            if args.shard:
                copy_rows(args.input, rows, shard_input)
            cmd, seconds = run_binary(binary, args, str(shard_input) if args.shard else args.input, fmt, tmp)
        finally:
            shard_input.unlink(missing_ok=True)
        probs = load_npy(tmp, what=f"{binary.name} output")
        check_predictions(probs, rows[1] - rows[0], f"{binary.name} ({fmt} input)", rows[0])
        if probs.dtype != np.float32:
            raise UserError(f"{binary.name} wrote dtype {probs.dtype}, expected float32")
        write_json(args.info, {"backend": "tensorrt_cpp", "binary": str(binary), "engine": args.engine,
                               "input": args.input, "input_format": fmt, "samples": rows[1] - rows[0],
                               "seconds": round(seconds, 4), "command": " ".join(cmd[:-1] + [args.output]),
                               **placement_record(args.shard, placement, gpu, rows)})
    print(f"{binary.name}: predicted samples {rows[0]}..{rows[1]} from {fmt} in {seconds:.2f} s", file=sys.stderr)
    return 0


def copy_rows(path: str, rows: tuple[int, int], dest: Path) -> None:
    x = NpyReader(path, what="test samples")
    with NpyWriter(dest, rows[1] - rows[0], x.dtype) as out:
        for _, batch in x.batches(x.rows_per(COPY_BYTES), stop=rows[1], start=rows[0]):
            out.write(batch)


def run_binary(binary: Path, args: argparse.Namespace, source: str, fmt: str, tmp: Path) -> tuple[list[str], float]:
    cmd = [str(binary), "--engine", args.engine, "--input", source, "--input-format", fmt, "--output", str(tmp)]
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
    return cmd, seconds


if __name__ == "__main__":
    run_main(main)
