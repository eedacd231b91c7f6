#!/usr/bin/env python3
"""Merge the shards of a data-parallel prediction (predict.py / predict_cpp.py --shard I/N) into the backend's
prediction file, streamed and atomic, with one record listing where each shard ran.

  python scripts/merge_shards.py --samples X.npy --shard S0.npy --shard-info S0.json [--shard S1.npy ...] \
      --output P.npy --info P.json
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from trtverify.errors import UserError, run_main
from trtverify.shards import merge


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", required=True, help="the test samples, for the row count")
    p.add_argument("--shard", action="append", required=True, help="a shard's predictions, in shard order")
    p.add_argument("--shard-info", action="append", required=True, help="its record, in the same order")
    p.add_argument("--output", required=True)
    p.add_argument("--info", required=True)
    args = p.parse_args(argv)
    if len(args.shard) != len(args.shard_info):
        raise UserError(f"{len(args.shard)} --shard but {len(args.shard_info)} --shard-info: give one record per shard")
    merged = merge(args.shard, args.shard_info, args.samples, args.output, args.info)
    print(f"merged {len(args.shard)} shards, {merged['samples']} samples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
