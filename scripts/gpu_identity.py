#!/usr/bin/env python3
"""The cross-GPU identity check: the same engine's predictions of the same samples on every GPU of the node, bit for
bit against the first GPU's. Writes results/{model}/gpu_identity.json: per precision and device, `identical` or the
first differing element (sample, class, both values); the report shows it, the gate fails on a differing device.

  python scripts/gpu_identity.py --precision fp32 --predictions P0.npy --record R0.json \
      [--precision fp32 --predictions P1.npy --record R1.json ...] --output gpu_identity.json
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from trtverify.errors import UserError, run_main
from trtverify.shards import identity


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", action="append", required=True, help="the engine's precision, per device run")
    p.add_argument("--predictions", action="append", required=True, help="a device's predictions (predict.py --first)")
    p.add_argument("--record", action="append", required=True, help="its record (where it ran)")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    if not len(args.precision) == len(args.predictions) == len(args.record):
        raise UserError("give --precision, --predictions and --record once per device run")
    result = identity(list(zip(args.precision, args.predictions, args.record)), args.output)
    for check in result["devices"]:
        diff = check["first_difference"]
        print(f"{check['precision']} {check['placement']}: "
              f"{'identical' if check['identical'] else f'differs first at {diff}'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
