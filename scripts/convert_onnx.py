#!/usr/bin/env python3
"""Convert a SavedModel to ONNX with tf2onnx, run onnx.checker, measure the reference's noise floor, and judge
SavedModel vs ONNX Runtime with the same tolerance policy as every compare pair.

  python scripts/convert_onnx.py --saved-model DIR --samples X.npy --labels Y.npy --opset 17 --batch-size 256 \
      [--noise-floor-samples 64] [--tolerances JSON] [--output-kind auto] --output model.onnx --check onnx_check.json

Both models run on every test sample; then the noise floor is measured on the --noise-floor-samples samples where
they differ most: the SavedModel at batch 1 vs at --batch-size, ONNX Runtime (CPU) with graph optimizations on vs
off, and ONNX Runtime with one float32 rounding added to every layer; the largest difference is the floor
(trtverify.noise, docs/tolerances.md). The pair is judged by trtverify.metrics.compare, as compare.py does: a
mismatch fails the step, naming the figure, the bound and the remedy; inconclusive is recorded and left to the gate.
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
from typing import Any, Sequence

import numpy as np

from trtverify.backends import open_runner
from trtverify.errors import UserError, require, run_main
from trtverify.io import NpyReader, atomic_path, load_npy, write_json
from trtverify.metrics import compare
from trtverify.noise import ROUNDING_CHECK, floor_of, ort_outputs, rounding_check, self_check, sensitive_samples
from trtverify.outputs import OutputProfile, profile_reference
from trtverify.schema import parse_with_defaults
from trtverify.tf2onnx_aids import aids_used
from trtverify.tolerance import KINDS, TolerancePolicy, parse_json_option


# tf2onnx logs "Tensorflow op [<node>: <Op>] is not supported" per node and still writes a model with the op left
# in, which onnx.checker then rejects with a message that names no layer and no remedy.
UNSUPPORTED = re.compile(r"Tensorflow op \[(?P<node>[^:\]]+): (?P<op>[^\]]+)\] is not supported")


def unsupported_ops(log: str, opset: int) -> str | None:
    """The message for ops tf2onnx cannot convert at this opset, or None when it reported none."""
    found = {m["op"]: m["node"] for m in UNSUPPORTED.finditer(log)}
    if not found:
        return None
    ops = "; ".join(f"{op} (node {node})" for op, node in found.items())
    return (f"tf2onnx cannot convert the TensorFlow op(s) {ops} to ONNX opset {opset}: trtverify takes models "
            "whose every op tf2onnx supports (its docs/support_status.md). Replace the layer in the model and "
            "re-export it, or try another onnx.opset in config.yaml")


# tf2onnx's command line, started through its own main() after two settings of Python's garbage collector. Its ONNX
# optimizers (optimizer.optimize_graph) deep-copy the whole graph before each pass and rewrite constants, leaving the
# old graph in reference cycles (nodes point at their graph) that only the cyclic collector frees. That collector
# counts objects, not bytes, and runs a full pass only once the long-lived objects (400,000 after importing
# TensorFlow) grew by a quarter: a ResNet50's dropped copies (~300 MB each, a few thousand objects) piled up to a
# 7.3 GB peak. gc.freeze() takes the imports' objects out of that count and thresholds (700, 1, 1) bring a full pass
# every few young ones: 3.0 GB, in less time, and the same ONNX file byte for byte (tools/bench_scale.py measures it).
# Before main(), trtverify.tf2onnx_aids installs two conversions tf2onnx lacks (XLA-compiled functions, Erfc); they
# act only where a model has them, so every other model converts as the plain CLI converts it.
TF2ONNX_MAIN = ("import gc, sys; sys.path.insert(0, sys.argv.pop(1)); from trtverify.tf2onnx_aids import install; "
                "install(); from tf2onnx.convert import main; gc.freeze(); gc.set_threshold(700, 1, 1); "
                "sys.argv[0] = 'tf2onnx.convert'; main()")


def convert(saved_model: str, output: str, opset: int) -> tuple[str, list[str]]:
    """Run tf2onnx's command line (its Python API changed between releases; the CLI did not); return it as a user
    would type it (``-m tf2onnx.convert ...``: the same main() and arguments) and the conversion aids it needed
    (trtverify.tf2onnx_aids; none: the CLI alone makes the same model)."""
    require("tf2onnx", purpose="ONNX conversion", hint="pip install tf2onnx (it is in envs/tensorflow.yaml)")
    args = ["--saved-model", saved_model, "--output", output, "--opset", str(opset), "--signature_def",
            "serving_default"]
    scripts = str(Path(__file__).resolve().parent)
    proc = subprocess.run([sys.executable, "-c", TF2ONNX_MAIN, scripts, *args], capture_output=True, text=True)
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
    return " ".join(["-m", "tf2onnx.convert", *args]), aids_used(proc.stderr)


def run_batched(runner: Any, x: NpyReader, batch_size: int, stop: int | None = None) -> np.ndarray:
    """Outputs of the first ``stop`` samples (all by default), read a batch at a time: only the outputs, which are
    small, are held whole, never the samples (a 50,000-image test set is GBs)."""
    return np.concatenate([runner.infer(batch) for _, batch in x.batches(batch_size, stop)])


def measure(saved_model: str, onnx_path: str, x: NpyReader, batch_size: int, floor_samples: int,
            output_kind: str) -> tuple[dict[str, np.ndarray], dict[str, Any], OutputProfile, dict[str, Any]]:
    """Both models on every sample, then the three self-checks (trtverify.noise) on the ``floor_samples`` where the
    two differ most."""
    m = min(floor_samples, len(x))
    with open_runner("savedmodel", saved_model) as runner:
        ref = run_batched(runner, x, batch_size)
        with open_runner("onnxruntime", onnx_path, providers=["CPUExecutionProvider"]) as ort_runner:
            ort = run_batched(ort_runner, x, batch_size)
            onnx_input = {"name": ort_runner.input_name,
                          "shape": [d if d else "batch" for d in ort_runner.input_shape]}
        if not np.isfinite(ort).all():
            raise UserError("the ONNX model produces NaN/Inf on the test samples; the conversion is broken")
        chosen = sensitive_samples(ref, ort, m)
        xs = np.stack([x.read(int(i), int(i) + 1)[0] for i in chosen])
        ref_b1 = np.concatenate([runner.infer(xs[i:i + 1]) for i in range(m)])
    profile = profile_reference(ref, override=output_kind, batch_size=batch_size)
    kind = profile.kind
    checks = {f"savedmodel batch 1 vs batch {batch_size}": self_check(ref[chosen], ref_b1, kind),
              "onnxruntime optimized vs unoptimized": self_check(
                  ort[chosen], ort_outputs(onnx_path, xs, batch_size, optimize=False), kind),
              ROUNDING_CHECK: rounding_check(onnx_path, xs, ort[chosen], batch_size, kind)}
    selection = f"the {m} of {len(x)} samples where savedmodel and onnxruntime differ most"
    return {"savedmodel": ref, "onnxruntime": ort}, floor_of(checks, m, profile, selection), profile, onnx_input


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--saved-model", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--labels", required=True, help="true labels (int .npy): the check judges accuracy as compare does")
    p.add_argument("--opset", type=int, required=True, help="onnx.opset, which every config sets")
    p.add_argument("--batch-size", type=int, help="the batch the pipeline predicts in")
    p.add_argument("--noise-floor-samples", type=int, help="samples the noise floor is measured on")
    p.add_argument("--tolerances", default="", help="JSON overrides per precision (config and model merged)")
    p.add_argument("--output-kind", choices=("auto",) + KINDS)
    p.add_argument("--output", required=True)
    p.add_argument("--check", required=True)
    args = parse_with_defaults(p, argv, {
        "batch_size": "predict.batch_size", "noise_floor_samples": "compare.noise_floor_samples",
        "output_kind": "models.*.output_kind"})

    onnx = require("onnx", purpose="the ONNX check", hint="pip install onnx")
    if args.batch_size < 1 or args.noise_floor_samples < 1:
        raise UserError(f"--batch-size and --noise-floor-samples must be >= 1, got {args.batch_size} and "
                        f"{args.noise_floor_samples}")
    policy = TolerancePolicy(parse_json_option(args.tolerances, "--tolerances"))
    saved_model = Path(args.saved_model)
    if not saved_model.is_dir():
        raise UserError(f"SavedModel directory {saved_model} does not exist; run the train (or import_model) step, "
                        "or fix the path")
    if not any((saved_model / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise UserError(f"{saved_model} is not a SavedModel directory (no saved_model.pb); export one with "
                        "model.export(dir) (Keras 3) or tf.saved_model.save")
    x = NpyReader(args.samples, what="test samples", dtype="float32", finite=True)
    labels = load_npy(args.labels, what="test labels")
    start = time.perf_counter()
    with atomic_path(args.output) as tmp_onnx:
        command, aids = convert(args.saved_model, str(tmp_onnx), args.opset)
        seconds = time.perf_counter() - start
        try:
            onnx.checker.check_model(str(tmp_onnx), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise UserError(f"onnx.checker rejected the converted model: {str(exc).splitlines()[0]}") from None
        outputs, floor, profile, onnx_input = measure(args.saved_model, str(tmp_onnx), x, args.batch_size,
                                                      args.noise_floor_samples, args.output_kind)
        # the check records the pair's verdict and differences only: no flipped sample and no per-sample row kept
        result = compare(outputs, labels, policy=policy, noise_floor=floor, output_kind=args.output_kind,
                         model=saved_model.parent.name, batch_size=args.batch_size, max_flipped=0, per_sample_limit=0)
        pair = result.pairs["savedmodel vs onnxruntime"]
        m = pair.metrics
        report = {
            "opset": args.opset, "tf2onnx_command": command, "conversion_aids": aids,
            "convert_seconds": round(seconds, 3),
            "onnx_checker": "passed", "input": onnx_input, "samples": int(len(x)),
            "max_abs_diff": m["max_abs_diff"], "mean_abs_diff": m["mean_abs_diff"],
            "top1_agreement": m["top1_agreement"], "output": profile.to_dict(), "noise_floor": floor,
            "verdict": pair.verdict, "reason": pair.reason, "tolerance": pair.tolerance,
            "versions": {"onnx": onnx.__version__,
                         "tf2onnx": require("tf2onnx", purpose="", hint="").__version__},  # type: ignore[attr-defined]
        }
        if pair.verdict == "mismatch":
            raise UserError(f"conversion check, savedmodel vs onnxruntime (CPU), fp32: mismatch: {pair.reason}. "
                            "Check the tf2onnx log above: a correct conversion stays within this bound")
        write_json(args.check, report)
    print(f"ONNX check: {pair.verdict} ({pair.reason}); noise floor {floor['floor']:.3g}, max abs diff "
          f"{m['max_abs_diff']:.3g}, output {profile.kind}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
