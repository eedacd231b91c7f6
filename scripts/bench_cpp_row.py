#!/usr/bin/env python3
"""Turn the timing JSON of ``trt_infer --timing`` into a benchmark row (the shape every backend's row has).

  python scripts/bench_cpp_row.py --timing T.json --model NAME [--precision fp16] [--batch-size N] --output ROW.json

The file is checked (all fields present, min <= p50 <= ... <= max, batch and precision as asked); its end-to-end
times become latency_ms. The row: scripts/trtverify/benchrow.py (row_from_cpp_timing).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from trtverify.benchrow import row_from_cpp_timing, write_row
from trtverify.errors import UserError, run_main
from trtverify.io import read_json


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timing", required=True, metavar="T.json", help="trt_infer's --timing output")
    p.add_argument("--model", required=True)
    p.add_argument("--precision", help="the engine's precision: fills in 'unknown', must match a named one")
    p.add_argument("--batch-size", type=int, help="the batch the file must be for")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    row = row_from_cpp_timing(read_json(args.timing, what="trt_infer timing"), args.model, args.timing,
                              args.precision)
    if args.batch_size is not None and args.batch_size != row["batch"]:
        raise UserError(f"{args.timing} is for batch {row['batch']}, not {args.batch_size}")
    write_row(args.output, row)
    return 0


if __name__ == "__main__":
    run_main(main)
