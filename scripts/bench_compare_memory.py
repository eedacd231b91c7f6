#!/usr/bin/env python3
"""Peak memory of scripts/compare.py against the number of samples: it must not grow with the test set.

  python scripts/bench_compare_memory.py --samples 1000 100000 [--classes 10] [--batch-size 4096] [--keep DIR]

For each size, writes synthetic labels, samples and predictions of eight backends (the reference, ONNX Runtime,
and Python/C++/C++-CSV TensorRT at fp32 and fp16, so 28 pairs and two parity checks) into a temporary directory,
runs compare.py on them in a child process, and prints the child's peak resident memory (``ru_maxrss`` from
``os.wait4``, so each size is measured on its own). The first row is the interpreter with the comparison modules
imported and nothing compared: the fixed cost every run pays.

Linux keeps a process's peak RSS across fork and exec, so a child reports at least its parent's size at the time
it was started: the data are therefore generated in a child too, and this process never imports numpy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from trtverify.errors import UserError, run_main
from trtverify.schema import parse_with_defaults

HERE = Path(__file__).resolve().parent
BACKENDS = ("savedmodel", "onnxruntime", "tensorrt_fp32", "tensorrt_cpp_fp32", "tensorrt_cpp_csv_fp32",
            "tensorrt_fp16", "tensorrt_cpp_fp16", "tensorrt_cpp_csv_fp16")
NOISE = {"savedmodel": 0.0, "onnxruntime": 1e-7, "tensorrt_fp32": 1e-7, "tensorrt_fp16": 5e-3}
CHUNK = 10_000


def synthesize(directory: Path, n: int, classes: int) -> dict[str, Path]:
    """Write the files in chunks, so the generator's own memory does not depend on n either."""
    import numpy as np
    from numpy.lib.format import open_memmap

    rng = np.random.default_rng(0)
    paths = paths_for(directory)
    labels = open_memmap(paths["labels"], mode="w+", dtype=np.int64, shape=(n,))
    samples = open_memmap(paths["samples"], mode="w+", dtype=np.float32, shape=(n, 8, 8, 1))
    preds = {b: open_memmap(paths[b], mode="w+", dtype=np.float32, shape=(n, classes)) for b in BACKENDS}
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        ref = rng.dirichlet(np.full(classes, 0.3), stop - start).astype(np.float32)
        labels[start:stop] = rng.integers(0, classes, stop - start)
        samples[start:stop] = rng.uniform(0, 1, (stop - start, 8, 8, 1))
        for b in BACKENDS:
            # The C++ outputs copy the Python TensorRT ones: parity pairs are identical, as they should be.
            source = b.replace("_cpp_csv", "").replace("_cpp", "")
            if source == b:
                noise = rng.normal(0, NOISE[b], ref.shape) if NOISE[b] else 0.0
                preds[b][start:stop] = np.clip(ref + noise, 0, 1)
            else:
                preds[b][start:stop] = preds[source][start:stop]
    for array in (labels, samples, *preds.values()):
        array.flush()
    del labels, samples, preds
    return paths


def paths_for(directory: Path) -> dict[str, Path]:
    return {"labels": directory / "labels.npy", "samples": directory / "samples.npy",
            **{b: directory / f"{b}.npy" for b in BACKENDS}}


def measure(command: Sequence[str]) -> tuple[int, float, int]:
    """(peak RSS in KiB, wall seconds, exit status) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=HERE.parent)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise UserError(f"{' '.join(command[:2])} failed ({proc.returncode}): {err.strip()[-500:]}")
    return usage.ru_maxrss, time.perf_counter() - start, proc.returncode


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, nargs="+", default=[1000, 100000], help="test-set sizes to measure")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--keep", default="", help="write the synthetic files and outputs here instead of a temp dir")
    p.add_argument("--generate", metavar="DIR", help=argparse.SUPPRESS)   # internal: the data-writing child
    args = parse_with_defaults(p, argv, {"batch_size": "compare.batch_size"})
    if args.generate:
        synthesize(Path(args.generate), args.samples[0], args.classes)
        return 0
    if any(n < 1 for n in args.samples) or args.classes < 2:
        raise UserError("--samples must be positive and --classes at least 2")
    baseline_cmd = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(HERE)!r}); "
                    "import compare, trtverify.metrics, trtverify.io"]
    rss, _, _ = measure(baseline_cmd)
    rows: list[tuple[str, int, float | None]] = [("imports only", rss, None)]
    with tempfile.TemporaryDirectory(prefix="trtverify-mem-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for n in args.samples:
            d = root / f"n{n}"
            d.mkdir(parents=True, exist_ok=True)
            measure([sys.executable, str(Path(__file__).resolve()), "--generate", str(d), "--samples", str(n),
                     "--classes", str(args.classes)])
            paths = paths_for(d)
            cmd = [sys.executable, str(HERE / "compare.py"), "--model", f"synthetic{n}", "--labels",
                   str(paths["labels"]), "--samples", str(paths["samples"]), "--batch-size", str(args.batch_size),
                   "--output", str(d / "comparison.json"), "--per-sample", str(d / "per_sample.csv")]
            for b in BACKENDS:
                cmd += ["--prediction", f"{b}={paths[b]}"]
            peak, wall, _ = measure(cmd)
            rows.append((f"{n} samples", peak, wall))
    print(f"compare.py peak resident memory ({len(BACKENDS)} backends, {args.classes} classes, "
          f"batch {args.batch_size}; ru_maxrss of the child)")
    first = rows[1][1] if len(rows) > 1 else rows[0][1]
    for label, peak_kib, seconds in rows:
        timing = f"{seconds:7.2f} s" if seconds is not None else "        "
        delta = f"  ({(peak_kib - first) / 1024:+.1f} MiB vs {rows[1][0]})" if seconds is not None else ""
        print(f"  {label:>16}: {peak_kib / 1024:8.1f} MiB  {timing}{delta}")
    return 0


if __name__ == "__main__":
    run_main(main)
