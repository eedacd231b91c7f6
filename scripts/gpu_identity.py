#!/usr/bin/env python3
"""The cross-GPU identity check: each engine's predictions of the same first samples on every GPU of the node (the
GPUs this job sees), bit for bit against the first GPU's. Writes results/{model}/gpu_identity.json: per precision
and device (name, UUID), `identical` or the first differing element (sample, class, both values); the report shows
it and the gate fails on a differing device. One job holds every GPU, so that each is surely a different one.

  python scripts/gpu_identity.py --backend tensorrt --engine fp32=E.trt --engine-info fp32=E.json \
      --samples X.npy --first 256 --devices 4 --output gpu_identity.json

--backend onnxruntime --engine fp32=model.onnx runs the same check with each "device" an ONNX Runtime CPU session
(the tests' simulated devices).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import numpy as np

from trtverify.backends import open_runner
from trtverify.devices import check_engine_device, describe_device, visible_devices
from trtverify.errors import UserError, run_main
from trtverify.io import NpyReader, write_json
from trtverify.predictions import check_engine, check_predictions
from trtverify.shards import identity


def pairs(values: list[str], flag: str) -> dict[str, str]:
    if any("=" not in v for v in values):
        raise UserError(f"{flag} takes PRECISION=PATH, e.g. fp32=engines/fp32.trt")
    return dict(v.split("=", 1) for v in values)


def predict_on(backend: str, artifact: str, device: int, x: np.ndarray) -> np.ndarray:
    options: dict[str, Any] = {"device": device} if backend == "tensorrt" else {"providers": ["CPUExecutionProvider"]}
    with open_runner(backend, artifact, **options) as runner:
        batch = min(len(x), getattr(runner, "max_batch", len(x)))
        probs = np.concatenate([runner.infer(x[i:i + batch]) for i in range(0, len(x), batch)])
    check_predictions(probs, len(x), f"{backend} on device {device}")
    return probs


def where(backend: str, index: int) -> dict[str, Any]:
    """What a device is, for the report: the GPU (name, UUID, ...) or, on CPU, which simulated device."""
    gpu = describe_device(index) if backend == "tensorrt" else None
    return {"index": index, **(gpu or {"name": f"simulated device {index} (ONNX Runtime CPU session)"})}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("tensorrt", "onnxruntime"), default="tensorrt")
    p.add_argument("--engine", action="append", required=True, help="PRECISION=ENGINE (repeat per precision)")
    p.add_argument("--engine-info", action="append", default=[], help="PRECISION=build record of that engine")
    p.add_argument("--samples", required=True)
    p.add_argument("--first", type=int, required=True, help="check the first K samples")
    p.add_argument("--devices", type=int, default=0, help="how many devices (0: every visible GPU)")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    engines, records = pairs(args.engine, "--engine"), pairs(args.engine_info, "--engine-info")
    count = args.devices or len(visible_devices())
    if count < 1 or args.first < 1:
        raise UserError(f"{count} devices and --first {args.first}: both must be at least 1 (is a GPU visible?)")
    x = NpyReader(args.samples, what="test samples", finite=True, dtype="float32")
    head = x.read(0, args.first)
    runs = []
    for precision, engine in engines.items():
        record = check_engine(engine, records[precision]) if precision in records else None
        for index in range(count):
            device = where(args.backend, index)
            if record is not None:
                check_engine_device(record, engine, device)
            runs.append((precision, device, predict_on(args.backend, engine, index, head)))
    result = {"samples": len(head), **identity(runs)}
    write_json(args.output, result)
    for check in result["devices"]:
        verdict = "identical" if check["identical"] else f"differs first at {check['first_difference']}"
        print(f"{check['precision']} on {check['device']['name']} ({check['device']['index']}): {verdict}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
