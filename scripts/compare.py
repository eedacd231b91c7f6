#!/usr/bin/env python3
"""Compare every pair of backends' predictions for one model, streaming, and judge each pair against tolerances.

  python scripts/compare.py --model NAME --labels test_labels.npy --samples test_samples.npy \\
      --prediction savedmodel=PATH --prediction onnxruntime=PATH [--prediction NAME=PATH ...] \\
      [--reference savedmodel] [--tolerances JSON] [--model-tolerances JSON] [--batch-size 4096] \\
      [--noise-floor results/NAME/onnx_check.json] [--output-kind auto] \\
      [--max-flipped 100] [--per-sample-rows 10] [--relative-floor 1e-6] [--threads 1] \\
      --output results/NAME/comparison.json --per-sample results/NAME/per_sample.csv

Reads --batch-size samples at a time, so memory does not grow with the test set. Writes comparison.json (schema in
docs/report-schema.md; metrics and verdicts in docs/tolerances.md) and per_sample.csv (every sample: index, true
label, each backend's top-1 class and its probability), both atomically, and prints one line per pair.
The fp32 bounds follow the reference's noise floor, read from --noise-floor (convert_onnx.py measures it);
without it the floor is taken as 0 and the fp32 bound is its minimum. A mismatch or inconclusive verdict is
recorded, not an error here: the gate after the report fails on it. Bad inputs (missing files,
mismatched names, shapes or dtypes, NaN or Inf in a prediction) end in one error line listing every problem, and
nothing is written.
"""

# ruff: noqa: E402  (the collector's threshold and OpenBLAS's threads are set before numpy's import, which they affect)
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from typing import Any, BinaryIO, Sequence

# A collection every 100,000 new objects, not 700: this process is short and makes few reference cycles, and the
# collector's passes over what the imports create were 7-8 ms of a 0.2-s comparison (50 passes that freed nothing).
gc.set_threshold(100_000)

# No figure here calls BLAS, and OpenBLAS's thread pool, started when numpy is imported, spins on every core for a
# while (6 % of this process's CPU on 2 cores, 2026-12-05): one thread, unless the user asked for others.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from trtverify import __version__, kernels
from trtverify.errors import UserError, run_main
from trtverify.io import NpyFile, atomic_path, read_json
from trtverify.metrics import RELATIVE_FLOOR, compare
from trtverify.pairstats import Batch
from trtverify.tolerance import KINDS, TolerancePolicy, engine_precision, parse_json_option
from trtverify.schema import parse_with_defaults

_encode = json.JSONEncoder(allow_nan=False).encode   # one encoder: json.dumps with an option makes one a call


def compact_json(obj: Any, level: int = 0) -> str:
    """Indented JSON with lists of numbers on one line: a histogram or an index list reads as one row."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{_encode(str(k))}: {compact_json(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    # the element types, not the elements, are checked: a histogram has thousands of numbers and a few types
    if isinstance(obj, list) and any(issubclass(t, (dict, list)) for t in set(map(type, obj))):
        return "[\n" + ",\n".join(inner + compact_json(x, level + 1) for x in obj) + f"\n{pad}]"
    return _encode(obj)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's, at the width shutil.get_terminal_size gives, found without shutil: argparse imports shutil when it
    makes a formatter, which it does for every option added, and shutil's import (bz2, lzma) is 2.5-3.5 ms of a
    0.2-s comparison (2026-12-06)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = terminal_columns() - 2     # argparse's own margin
        super().__init__(prog, indent_increment, max_help_position, width)


def terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS where it is a positive number, else the terminal's, else 80."""
    with contextlib.suppress(ValueError):
        if int(os.environ.get("COLUMNS", "")) > 0:
            return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80   # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def parse_named_paths(specs: Sequence[str], flag: str) -> dict[str, str]:
    return dict(parse_predictions(specs, flag))


def parse_predictions(specs: Sequence[str], flag: str = "--prediction") -> list[tuple[str, str]]:
    pairs, bad = [], []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            bad.append(spec)
        else:
            pairs.append((name, path))
    if bad:
        raise UserError(f"{flag} takes NAME=PATH, got: {', '.join(repr(b) for b in bad)}")
    return pairs


def open_all(stack: contextlib.ExitStack, files: Sequence[tuple[str, str, str]]) -> list[NpyFile]:
    """Open every input, collecting every failure (missing, not .npy, pickled, truncated) into one error."""
    opened, problems = [], []
    for what, name, path in files:
        try:
            opened.append(stack.enter_context(NpyFile(path, what=f"{what} {name}".strip())))
        except UserError as exc:
            problems.append(str(exc))
    if problems:
        raise UserError(f"{len(problems)} input file problem(s): " + "; ".join(problems))
    return opened


class PerSampleCsv:
    """per_sample.csv, one batch at a time: index, label, then each backend's class and confidence."""

    def __init__(self, fh: BinaryIO, names: Sequence[str]) -> None:
        self.fh, self.names = fh, list(names)
        header = ["index", "label"] + [f"{n}_{c}" for n in names for c in ("class", "confidence")]
        fh.write((",".join(header) + "\n").encode())

    def __call__(self, batch: Batch) -> None:
        """The batch's rows, formatted by the compiled passes' csv_rows (Python's own % took 0.1 s of the main
        thread per 50,000 samples of four backends)."""
        classes = np.stack([batch.top1(name) for name in self.names])
        confidence = np.stack([batch.confidence(name) for name in self.names])   # float64 (gather)
        self.fh.write(kernels.csv_rows(batch.start, batch.labels, classes, confidence))


def read_conversion_check(path: str | None) -> tuple[dict[str, Any] | None, list[str] | None]:
    """The ``noise_floor`` section of convert_onnx.py's onnx_check.json and the conversion aids tf2onnx needed
    (trtverify.tf2onnx_aids; None where the check predates them), or (None, None) without --noise-floor."""
    if not path:
        return None, None
    data = read_json(path, what="the ONNX check (noise floor)")
    floor = data.get("noise_floor") if isinstance(data, dict) else None
    if not isinstance(floor, dict) or not isinstance(floor.get("floor"), (int, float)):
        raise UserError(f"{path} has no noise_floor.floor: it was written by an older convert_onnx.py; rerun the "
                        "convert_onnx step")
    aids = data.get("conversion_aids")
    return floor, None if aids is None else [str(a) for a in aids]


def summary_lines(result: Any) -> list[str]:
    out = result.output
    lines = [f"{result.model}: {result.num_samples} samples, {result.num_classes} outputs ({out['kind']}, "
             f"{out['how']}), reference {result.reference}"]
    if result.noise_floor:
        lines.append(f"  noise floor {result.noise_floor['floor']:.3g} (output units)")
    for name, b in result.backends.items():
        if b["accuracy"] is not None:
            lines.append(f"  {name:<28} accuracy {b['accuracy']:.4f} ({b['accuracy_change']:+.4f})")
    for name, pair in result.pairs.items():
        m = pair.metrics
        top1 = "" if m["top1_agreement"] is None else f"  top-1 {m['top1_agreement']:.4f}"
        lines.append(f"  {name:<50} {pair.verdict:<12} max|d| {m['max_abs_diff']:.3g}{top1}  ({pair.reason})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="model name, recorded in the output")
    p.add_argument("--labels", required=True, help="true labels, int (N,) .npy")
    p.add_argument("--samples", required=True, help="test samples .npy (only its shape is read: N must match)")
    p.add_argument("--prediction", action="append", default=[], metavar="NAME=PATH",
                   help="a backend's (N, classes) float32 probabilities; repeat for each backend")
    p.add_argument("--reference", default="savedmodel", help="the backend every other is compared against first")
    p.add_argument("--tolerances", default="", help="JSON overrides per precision, e.g. '{\"fp16\": {\"atol\": 0.05}}'")
    p.add_argument("--model-tolerances", default="", help="JSON overrides for this model only (win over --tolerances)")
    p.add_argument("--noise-floor", help="onnx_check.json of convert_onnx.py: the reference's measured noise floor")
    p.add_argument("--engine-info", action="append", default=[], metavar="NAME=PATH",
                   help="the build record (engines/PRECISION.json) of backend NAME's engine: a precision it allowed "
                        "beyond its name (TF32 in an fp32 engine) is the precision its pairs are judged at")
    p.add_argument("--output-kind", choices=("auto",) + KINDS,
                   help="what the model outputs (auto: detected from the reference, docs/tolerances.md)")
    p.add_argument("--batch-size", type=int, help="samples read and compared at a time")
    p.add_argument("--max-flipped", type=int, help="flipped samples stored in full (all are counted)")
    p.add_argument("--per-sample-rows", type=int, help="first samples whose predictions go in the JSON")
    p.add_argument("--relative-floor", type=float, default=RELATIVE_FLOOR,
                   help="denominator floor of the relative difference |a-b|/max(|a|, floor)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads working on a batch's backends and pairs at once (the figures do not depend on it)")
    p.add_argument("--output", required=True, help="comparison.json to write")
    p.add_argument("--per-sample", required=True, help="per_sample.csv to write")
    args = parse_with_defaults(p, argv, {
        "output_kind": "models.*.output_kind", "batch_size": "compare.batch_size",
        "max_flipped": "compare.max_flipped", "per_sample_rows": "compare.per_sample_rows"})

    predictions = parse_predictions(args.prediction)
    engines = parse_named_paths(args.engine_info, "--engine-info")
    unknown = sorted(set(engines) - {name for name, _ in predictions})
    if unknown:
        raise UserError(f"--engine-info for {', '.join(unknown)}, which has no --prediction")
    attested = {name: engine_precision(name, read_json(path, what=f"engine build record of {name}"))
                for name, path in engines.items()}
    policy = TolerancePolicy(parse_json_option(args.tolerances, "--tolerances"),
                             parse_json_option(args.model_tolerances, "--model-tolerances"), attested)
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if not args.relative_floor > 0:
        raise UserError(f"--relative-floor must be positive, got {args.relative_floor}")
    with contextlib.ExitStack() as stack:
        files = [("labels", "", args.labels), ("samples", "", args.samples)]
        files += [("predictions of", name, path) for name, path in predictions]
        labels, samples, *arrays = open_all(stack, files)
        floor, aids = read_conversion_check(args.noise_floor)
        order = [args.reference] + [n for n, _ in predictions if n != args.reference]
        with atomic_path(args.per_sample) as tmp, open(tmp, "wb") as fh:
            writer = PerSampleCsv(fh, [n for n in dict.fromkeys(order) if n in dict(predictions)])
            result = compare([(name, a) for (name, _), a in zip(predictions, arrays)], labels,
                             reference=args.reference, policy=policy, model=args.model, samples=samples,
                             batch_size=args.batch_size, max_flipped=args.max_flipped,
                             per_sample_limit=args.per_sample_rows, relative_floor=args.relative_floor,
                             on_batch=writer, noise_floor=floor,
                             output_kind=args.output_kind, threads=args.threads)
            data = result.to_dict()
            data["conversion_aids"] = aids  # what tf2onnx alone could not convert (null: not known here)
            data["inputs"] = {"labels": args.labels, "samples": args.samples, "predictions": dict(predictions),
                              "noise_floor": args.noise_floor, "engine_info": engines, "output_kind": args.output_kind,
                              "tolerances": parse_json_option(args.tolerances, "--tolerances"),
                              "model_tolerances": parse_json_option(args.model_tolerances, "--model-tolerances")}
            # the compiler of the passes that compute every figure is part of how they were made
            data["generator"] = {"program": "scripts/compare.py", "trtverify": __version__, "numpy": np.__version__,
                                 "kernels": kernels.built_by()}
            fh.flush()
            with atomic_path(args.output) as tmp_json:
                tmp_json.write_text(compact_json(data) + "\n")
    print("\n".join(summary_lines(result)))
    return 0


if __name__ == "__main__":
    run_main(main, quick_exit=True)     # every output is written and renamed, and the lanes joined, when main returns
