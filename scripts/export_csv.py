#!/usr/bin/env python3
"""Write the test samples and labels in the pipeline's CSV exchange format (the original guide's C++ path).

  python scripts/export_csv.py --samples X.npy --labels Y.npy --samples-csv X.csv --labels-csv Y.csv
"""

from __future__ import annotations

import argparse
from typing import Sequence

from trtverify.errors import UserError, run_main
from trtverify.io import NpyReader, load_npy, write_csv_array, write_csv_batches

CHUNK = 4 << 20  # bytes of samples formatted at a time: memory holds one chunk as text, whatever the test set


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--samples", "--labels", "--samples-csv", "--labels-csv"):
        p.add_argument(name, required=True)
    args = p.parse_args(argv)
    x = NpyReader(args.samples, what="test samples", dtype="float32", finite=True)
    y = load_npy(args.labels, what="test labels", ndim=1)
    if len(x) != len(y):
        raise UserError(f"{args.samples} has {len(x)} samples but {args.labels} has {len(y)} labels")
    write_csv_batches(args.samples_csv, x.shape, x.dtype, (batch for _, batch in x.batches(x.rows_per(CHUNK))))
    write_csv_array(args.labels_csv, y)
    return 0


if __name__ == "__main__":
    run_main(main)
