#!/usr/bin/env python3
"""Build a TensorRT engine from ONNX (TensorRT 8.5, 10.x or TensorRT-RTX), with a dynamic-batch profile.

  python scripts/build_engine.py --onnx model.onnx --precision fp32 --min-batch 1 --opt-batch 32 --max-batch 256 \
      --workspace-mib 1024 --tactic-sources default --engine engines/fp32.trt --info engines/fp32.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from trtverify.devices import describe_device
from trtverify.engine import PRECISIONS, BuildOptions, build_engine
from trtverify.errors import UserError, run_main
from trtverify.io import atomic_path, write_json
from trtverify.schema import parse_with_defaults


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", required=True)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    # tensorrt.profile, which every config sets (the schema has no default for it)
    p.add_argument("--min-batch", type=int, required=True)
    p.add_argument("--opt-batch", type=int, required=True)
    p.add_argument("--max-batch", type=int, required=True)
    p.add_argument("--workspace-mib", type=int)
    p.add_argument("--tactic-sources", help="like trtexec: -CUBLAS,-CUBLAS_LT,-CUDNN")
    p.add_argument("--flavour", help="auto, tensorrt or tensorrt-rtx")
    p.add_argument("--engine", required=True)
    p.add_argument("--info", required=True, help="JSON describing the build")
    args = parse_with_defaults(p, argv, {
        "workspace_mib": "tensorrt.workspace_mib", "tactic_sources": "tensorrt.tactic_sources",
        "flavour": "tensorrt.flavour"})
    if not Path(args.onnx).is_file():
        raise UserError(f"ONNX model {args.onnx} does not exist; run the convert_onnx step first")
    options = BuildOptions(args.precision, args.min_batch, args.opt_batch, args.max_batch, args.workspace_mib,
                           args.tactic_sources, args.flavour)
    engine, info = build_engine(Path(args.onnx), options)
    with atomic_path(args.engine) as tmp:
        tmp.write_bytes(engine)
        # The GPU it was built on: predict refuses to run the engine on another GPU model (trtverify.devices).
        write_json(args.info, {**info, "onnx": args.onnx, "engine": args.engine, "device": describe_device()})
    att = info["attestation"]
    print(f"built {info['builder']} {info['tensorrt_version']} {args.precision} engine "
          f"({info['engine_bytes']} bytes) in {info['build_seconds']} s; strict FP32: "
          f"{'yes' if att['strict_fp32'] else 'no'} (TF32 {'allowed' if att['tf32_allowed'] else 'cleared'}); "
          f"inspector: {att['inspector']}; {len(att['accuracy_warnings'])} accuracy warning(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
