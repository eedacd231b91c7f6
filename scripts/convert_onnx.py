#!/usr/bin/env python3
"""Convert a SavedModel to ONNX with tf2onnx, run onnx.checker, and check it against the SavedModel.

  python scripts/convert_onnx.py --saved-model DIR --samples X.npy --opset 17 --max-abs-diff 1e-4 \
      --output model.onnx --check onnx_check.json

The check runs both models on the test samples (ONNX Runtime on the CPU) and fails when the largest absolute
difference exceeds --max-abs-diff or any top-1 prediction differs: a conversion bug, not rounding.
The samples must be float32 (what train.py and import_model.py write); other dtypes are refused, not cast.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from trtverify.backends import open_runner
from trtverify.errors import UserError, require, run_main
from trtverify.io import atomic_path, load_npy, write_json


# tf2onnx logs "Tensorflow op [<node>: <Op>] is not supported" per node and still writes a model with the op left
# in, which onnx.checker then rejects with a message that names no layer and no remedy.
UNSUPPORTED = re.compile(r"Tensorflow op \[(?P<node>[^:\]]+): (?P<op>[^\]]+)\] is not supported")
# What to do for the ops users meet most; the generic advice follows for every op.
OP_HINTS = {"Erf": "exact GELU: use GELU(approximate=True) (tanh form)", "Erfc": "exact GELU: use "
            "GELU(approximate=True) (tanh form)"}


def unsupported_ops(log: str, opset: int) -> str | None:
    """The message for ops tf2onnx cannot convert at this opset, or None when it reported none."""
    found = {m["op"]: m["node"] for m in UNSUPPORTED.finditer(log)}
    if not found:
        return None
    ops = "; ".join(f"{op} (node {node}{', ' + OP_HINTS[op] if op in OP_HINTS else ''})" for op, node in found.items())
    return (f"tf2onnx cannot convert the TensorFlow op(s) {ops} to ONNX opset {opset}: trtverify takes models "
            "whose every op tf2onnx supports (its docs/support_status.md). Replace the layer in the model and "
            "re-export it, or try another onnx.opset in config.yaml")


def convert(saved_model: str, output: str, opset: int) -> str:
    """Run tf2onnx's command line (its Python API changed between releases; the CLI did not)."""
    require("tf2onnx", purpose="ONNX conversion", hint="pip install tf2onnx (it is in envs/tensorflow.yaml)")
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved_model, "--output", output,
           "--opset", str(opset), "--signature_def", "serving_default"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stderr[-20000:]
    if proc.returncode != 0 and not os.environ.get("TRTVERIFY_VERBOSE"):
        log = log.split("Traceback (most recent call last):", 1)[0]  # its last line ends the error message below
    sys.stderr.write(log)
    if proc.returncode != 0:
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["no message"]
        raise UserError(f"tf2onnx failed on {saved_model} (exit {proc.returncode}): {last[0].rstrip('.')}. "
                        "Re-export the SavedModel if it is damaged, or try another onnx.opset in config.yaml; "
                        "TRTVERIFY_VERBOSE=1 shows tf2onnx's traceback")
    message = unsupported_ops(proc.stderr, opset)
    if message:
        raise UserError(message)
    return " ".join(cmd[1:])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--saved-model", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--max-abs-diff", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--output", required=True)
    p.add_argument("--check", required=True)
    args = p.parse_args(argv)

    onnx = require("onnx", purpose="the ONNX check", hint="pip install onnx")
    saved_model = Path(args.saved_model)
    if not saved_model.is_dir():
        raise UserError(f"SavedModel directory {saved_model} does not exist; run the train (or import_model) step, "
                        "or fix the path")
    if not any((saved_model / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise UserError(f"{saved_model} is not a SavedModel directory (no saved_model.pb); export one with "
                        "model.export(dir) (Keras 3) or tf.saved_model.save")
    x = load_npy(args.samples, what="test samples", dtype="float32", finite=True)
    start = time.perf_counter()
    with atomic_path(args.output) as tmp_onnx:
        command = convert(args.saved_model, str(tmp_onnx), args.opset)
        seconds = time.perf_counter() - start
        try:
            onnx.checker.check_model(str(tmp_onnx), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise UserError(f"onnx.checker rejected the converted model: {str(exc).splitlines()[0]}") from None
        outputs = {}
        for backend, artifact in (("savedmodel", args.saved_model), ("onnxruntime", str(tmp_onnx))):
            options = {"providers": ["CPUExecutionProvider"]} if backend == "onnxruntime" else {}
            with open_runner(backend, artifact, **options) as runner:
                outputs[backend] = np.concatenate(
                    [runner.infer(x[i:i + args.batch_size]) for i in range(0, len(x), args.batch_size)])
                if backend == "onnxruntime":
                    onnx_input = {"name": runner.input_name, "shape": [d if d else "batch" for d in runner.input_shape]}
        diff = np.abs(outputs["savedmodel"].astype(np.float64) - outputs["onnxruntime"])
        top1 = float(np.mean(outputs["savedmodel"].argmax(1) == outputs["onnxruntime"].argmax(1)))
        report = {
            "opset": args.opset, "tf2onnx_command": command, "convert_seconds": round(seconds, 3),
            "onnx_checker": "passed", "input": onnx_input, "samples": int(len(x)),
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "top1_agreement": top1, "max_abs_diff_limit": args.max_abs_diff,
            "versions": {"onnx": onnx.__version__,
                         "tf2onnx": require("tf2onnx", purpose="", hint="").__version__},  # type: ignore[attr-defined]
        }
        if not np.isfinite(outputs["onnxruntime"]).all():
            raise UserError("the ONNX model produces NaN/Inf on the test samples; the conversion is broken")
        if report["max_abs_diff"] > args.max_abs_diff or top1 < 1.0:
            raise UserError(f"the ONNX model differs from the SavedModel: max abs diff {report['max_abs_diff']:.3g} "
                            f"(limit {args.max_abs_diff:g}), top-1 agreement {top1:.4f}; check the tf2onnx log "
                            "above, or raise onnx.max_abs_diff in config.yaml if this drift is expected")
        write_json(args.check, report)
    print(f"ONNX check passed: max abs diff {report['max_abs_diff']:.3g}, top-1 agreement {top1:.4f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
