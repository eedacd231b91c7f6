#!/usr/bin/env python3
"""The table of tools/gpu_bench.sh: TensorRT from Python against C++, per model, precision, batch and mode.

  python tools/gpu_bench_table.py ROWS_DIR [--tsv bench.tsv]

Reads the benchmark rows in ROWS_DIR (tensorrt_*.json from scripts/benchmark_tensorrt.py, tensorrt_cpp_*.json from
scripts/bench_cpp_row.py) and pairs them by model, precision, batch and mode (one batch at a time, or overlapped).
Columns: end-to-end throughput of each (samples/s: batch / mean latency, which in overlapped mode is the
steady-state period), the compute limit (batch / mean GPU compute, C++), py/cpp (Python's mean time over C++'s:
1.05 means Python is 5 % slower), e2e/compute for each (mean end-to-end time over mean compute time), and the issue-15
goals: py/cpp <= 1.05 at batch >= 32 (goal_py), e2e/compute <= 1.2 at batch 128 for both (goal_e2e).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

PY_GOAL, E2E_GOAL = 1.05, 1.2
COLUMNS = ("model", "precision", "batch", "mode", "py_samples_s", "cpp_samples_s", "compute_limit_samples_s",
           "py_over_cpp", "py_e2e_over_compute", "cpp_e2e_over_compute", "goal_py", "goal_e2e")


def key(row: dict[str, Any]) -> tuple[str, str, int, str]:
    overlap = bool(row["details"].get("overlap"))
    return row["model"], row["precision"], int(row["batch"]), "overlap" if overlap else "serial"


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def goal(value: float | None, limit: float, applies: bool) -> str:
    if not applies:
        return ""
    return "missing" if value is None else ("ok" if value <= limit else "MISS")


def line(k: tuple[str, str, int, str], py: dict[str, Any] | None, cpp: dict[str, Any] | None) -> dict[str, Any]:
    def mean(row: dict[str, Any] | None, field: str) -> float | None:
        return row[field]["mean"] if row and row.get(field) else None

    py_over_cpp = ratio(mean(py, "latency_ms"), mean(cpp, "latency_ms"))
    py_e2e = ratio(mean(py, "latency_ms"), mean(py, "gpu_compute_ms"))
    cpp_e2e = ratio(mean(cpp, "latency_ms"), mean(cpp, "gpu_compute_ms"))
    compute = mean(cpp, "gpu_compute_ms") or mean(py, "gpu_compute_ms")
    worst_e2e = None if py_e2e is None or cpp_e2e is None else max(py_e2e, cpp_e2e)
    return dict(zip(COLUMNS, (
        *k, py and round(py["throughput_samples_per_s"]), cpp and round(cpp["throughput_samples_per_s"]),
        compute and round(k[2] * 1000 / compute), py_over_cpp, py_e2e, cpp_e2e,
        goal(py_over_cpp, PY_GOAL, k[2] >= 32), goal(worst_e2e, E2E_GOAL, k[2] == 128))))


def table(rows_dir: Path) -> list[dict[str, Any]]:
    pairs: dict[tuple[str, str, int, str], dict[str, dict[str, Any]]] = {}
    for path in sorted(rows_dir.glob("*.json")):
        row = json.loads(path.read_text())
        if row.get("backend") in ("tensorrt", "tensorrt_cpp"):  # not trt_infer's raw timing files beside them
            pairs.setdefault(key(row), {})[row["backend"]] = row
    return [line(k, v.get("tensorrt"), v.get("tensorrt_cpp")) for k, v in sorted(pairs.items())]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", type=Path)
    p.add_argument("--tsv", type=Path)
    args = p.parse_args(argv)
    lines = table(args.rows)
    text = ["\t".join(COLUMNS)] + ["\t".join("" if v is None else str(v) for v in t.values()) for t in lines]
    if args.tsv:
        args.tsv.write_text("\n".join(text) + "\n")
    widths = [max(len(r.split("\t")[i]) for r in text) for i in range(len(COLUMNS))]
    for r in text:
        print("  ".join(c.rjust(w) for c, w in zip(r.split("\t"), widths)))
    return 0 if lines else 1


if __name__ == "__main__":
    sys.exit(main())
