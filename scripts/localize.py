#!/usr/bin/env python3
"""Localize a divergence: per-layer errors of each conversion hop on a few samples, and the first divergent layer
under the user's Keras layer name (docs/localization.md).

  python scripts/localize.py --saved-model DIR --onnx model.onnx --samples X.npy --num-samples 8 \
      --precisions fp32 tf32 fp16 --tactic-sources=-CUBLAS,-CUBLAS_LT,-CUDNN --output localization.json

Without --saved-model (a machine with TensorRT but no TensorFlow) only the ONNX Runtime -> TensorRT hops run, with
layers named from the ONNX model. A hop that cannot run here is recorded as skipped with its reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from trtverify.engine import PRECISIONS, BuildOptions
from trtverify.errors import UserError, require, run_main
from trtverify.io import load_npy, write_json
from trtverify.schema import parse_with_defaults


def first_divergence(hops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The earliest hop with a divergent layer; the SavedModel hop comes first because later hops inherit it."""
    for hop in hops:
        if hop["first_divergent_layer"]:
            return {"hop": hop["hop"], "layer": hop["first_divergent_layer"], "fused": hop["first_divergent_fused"]}
    return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--saved-model", help="the SavedModel the ONNX model was converted from (the first hop)")
    p.add_argument("--onnx", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--num-samples", type=int, default=8, help="the first N samples (each tapped tensor is kept)")
    p.add_argument("--precisions", nargs="*", default=[], choices=PRECISIONS, help="TensorRT hops to localize")
    p.add_argument("--tactic-sources", help="like trtexec: -CUBLAS,-CUBLAS_LT,-CUDNN")
    p.add_argument("--flavour", help="auto, tensorrt or tensorrt-rtx")
    p.add_argument("--workspace-mib", type=int)
    p.add_argument("--output", required=True)
    args = parse_with_defaults(p, argv, {
        "tactic_sources": "tensorrt.tactic_sources", "flavour": "tensorrt.flavour",
        "workspace_mib": "tensorrt.workspace_mib"})
    onnx = require("onnx", purpose="localization", hint="pip install onnx")
    from trtverify import localize
    from trtverify.localize_trt import onnx_vs_tensorrt

    if not Path(args.onnx).is_file():
        raise UserError(f"ONNX model {args.onnx} does not exist; run the convert_onnx step first")
    if args.num_samples < 1:
        raise UserError(f"--num-samples must be at least 1, not {args.num_samples}")
    samples = load_npy(args.samples, what="test samples", dtype="float32", finite=True)[:args.num_samples]
    hops = []
    if args.saved_model:
        hop, taps, reference = localize.savedmodel_vs_onnx(args.saved_model, args.onnx, samples)
        hops.append(hop)
    else:
        taps = localize.onnx_taps(onnx.load(args.onnx))
        reference = localize.run_onnx(onnx.load(args.onnx), samples, [t.onnx_tensor for t in taps])
    for precision in args.precisions:
        options = BuildOptions(precision=precision, workspace_mib=args.workspace_mib,
                               tactic_sources=args.tactic_sources, flavour=args.flavour)
        hops.append(onnx_vs_tensorrt(Path(args.onnx), taps, reference, samples, options))
    first = first_divergence(hops)
    write_json(args.output, {"onnx": args.onnx, "saved_model": args.saved_model, "samples": len(samples),
                             "layers_matched": len(taps), "first_divergence": first, "hops": hops})
    for hop in hops:
        what = hop.get("first_divergent_layer") or "no divergent layer"
        print(f"{hop['hop']}: {hop['status']}, {what if hop['status'] == 'compared' else hop['reason']}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
