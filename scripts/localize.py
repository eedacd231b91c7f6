#!/usr/bin/env python3
"""Localize a divergence: per-layer errors of each conversion hop on a few samples, and the first divergent layer
under the user's Keras layer name (docs/localization.md).

  python scripts/localize.py --saved-model DIR --onnx model.onnx --samples X.npy --num-samples 8 \
      --noise-floor onnx_check.json --tolerances '{"fp16": {"atol": 0.05}}' \
      --precisions fp32 tf32 fp16 --tactic-sources=-CUBLAS,-CUBLAS_LT,-CUDNN [--trt-infer build/trt_infer] \
      --output localization.json

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
from trtverify.io import load_npy, read_json, write_json
from trtverify.localize import LayerThresholds
from trtverify.schema import parse_with_defaults
from trtverify.tolerance import TolerancePolicy, parse_json_option


def first_divergence(hops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The earliest hop with a divergent layer; the SavedModel hop comes first because later hops inherit it."""
    for hop in hops:
        if hop["first_divergent_layer"]:
            return {"hop": hop["hop"], "layer": hop["first_divergent_layer"], "fused": hop["first_divergent_fused"]}
    return None


def layer_thresholds(noise_floor: str | None, tolerances: str | None) -> LayerThresholds:
    """The tolerance policy with the config's overrides and the model's measured floor (onnx_check.json)."""
    policy = TolerancePolicy(parse_json_option(tolerances, "--tolerances"))
    if not noise_floor:
        return LayerThresholds(policy)
    check = read_json(noise_floor, what="the ONNX check (noise floor)")
    floor = (check.get("noise_floor") or {}).get("floor_normalised") if isinstance(check, dict) else None
    if isinstance(floor, bool) or not isinstance(floor, (int, float)):
        raise UserError(f"{noise_floor} has no noise_floor.floor_normalised: it was written by an older "
                        "convert_onnx.py; rerun the convert_onnx step")
    return LayerThresholds(policy, float(floor), noise_floor)


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
    p.add_argument("--trt-infer", help="the C++ program (cpp/trt_infer): adds the TensorRT Python -> C++ hop, each "
                   "debug engine run by both and compared bit for bit")
    p.add_argument("--noise-floor", help="onnx_check.json of convert_onnx.py: the model's measured noise floor, "
                   "which the fp32 threshold follows (without it: the policy's minimum)")
    p.add_argument("--tolerances", help="the tolerance overrides compare.py gets, as JSON")
    p.add_argument("--output", required=True)
    args = parse_with_defaults(p, argv, {
        "tactic_sources": "tensorrt.tactic_sources", "flavour": "tensorrt.flavour",
        "workspace_mib": "tensorrt.workspace_mib"})
    onnx = require("onnx", purpose="localization", hint="pip install onnx")
    from trtverify import localize
    from trtverify.localize_trt import tensorrt_hops

    if not Path(args.onnx).is_file():
        raise UserError(f"ONNX model {args.onnx} does not exist; run the convert_onnx step first")
    if args.num_samples < 1:
        raise UserError(f"--num-samples must be at least 1, not {args.num_samples}")
    if args.trt_infer and not Path(args.trt_infer).is_file():
        raise UserError(f"--trt-infer {args.trt_infer} does not exist; build it with the compile_cpp step")
    thresholds = layer_thresholds(args.noise_floor, args.tolerances)
    samples = load_npy(args.samples, what="test samples", dtype="float32", finite=True)[:args.num_samples]
    hops = []
    if args.saved_model:
        hop, taps, reference = localize.savedmodel_vs_onnx(args.saved_model, args.onnx, samples, thresholds)
        hops.append(hop)
    else:
        taps = localize.onnx_taps(onnx.load(args.onnx))
        reference = localize.run_onnx(onnx.load(args.onnx), samples, [t.onnx_tensor for t in taps])
    for precision in args.precisions:
        options = BuildOptions(precision=precision, workspace_mib=args.workspace_mib,
                               tactic_sources=args.tactic_sources, flavour=args.flavour)
        hops += tensorrt_hops(Path(args.onnx), taps, reference, samples, options,
                              Path(args.trt_infer) if args.trt_infer else None, thresholds)
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
