#!/usr/bin/env python3
"""Gather benchmark rows (scripts/benchmark*.py, bench_cpp_row.py) into one table, a JSON file and plots; print it.

  python scripts/bench_table.py results/*/bench/*.json --tsv results/benchmarks.tsv \
      --json results/benchmarks.json --plots results/bench_plots [--baseline savedmodel]

``speedup`` is a row's throughput over the baseline backend's at the same model and batch size, ``speedup_p50`` the
baseline's p50 latency over the row's (robust to a busy machine); both empty where the baseline was not measured.
Plots, per model: p50 latency and throughput against batch size, one line per backend
(and precision, and CUDA graph), both axes logarithmic.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Sequence

from tabulate import tabulate

from trtverify.benchstats import ROW_KEYS
from trtverify.errors import UserError, require, run_main
from trtverify.io import atomic_path, read_json, write_json
from trtverify.tables import speed_view
from trtverify.schema import parse_with_defaults

COLUMNS = (
    "model", "backend", "precision", "batch", "cuda_graph", "copies_included",
    "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms", "throughput_samples_per_s", "speedup",
    "speedup_p50", "gpu_compute_mean_ms", "gpu_compute_p50_ms", "gpu_compute_p99_ms", "peak_host_rss_mib",
    "gpu_memory_mib",
    "device", "framework", "framework_version", "warmup", "iterations",
)
MIB = 2**20


def label(row: dict[str, Any]) -> str:
    """What tells one line of a plot from another: backend, then precision and CUDA graph for TensorRT."""
    name = row["backend"]
    if name.startswith("tensorrt"):
        name += f" {row['precision']}" + (" graph" if row["cuda_graph"] else "")
    return name


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    lat, gpu = row["latency_ms"], row["gpu_compute_ms"] or {}

    def mib(b: int | None) -> float | None:
        return None if b is None else round(b / MIB, 1)

    return {
        "model": row["model"], "backend": row["backend"], "precision": row["precision"], "batch": row["batch"],
        "cuda_graph": row["cuda_graph"], "copies_included": row["copies_included"],
        **{f"{k}_ms": lat[k] for k in ("mean", "p50", "p90", "p95", "p99", "min", "max")},
        "throughput_samples_per_s": row["throughput_samples_per_s"], "speedup": None, "speedup_p50": None,
        **{f"gpu_compute_{k}_ms": gpu.get(k) for k in ("mean", "p50", "p99")},
        "peak_host_rss_mib": mib(row["peak_host_rss_bytes"]), "gpu_memory_mib": mib(row["gpu_memory_bytes"]),
        "device": row["device"], "framework": row["versions"].get("framework"),
        "framework_version": row["versions"].get("framework_version"),
        "warmup": row["warmup"], "iterations": row["iterations"],
    }


def load_rows(paths: Sequence[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], str] = {}
    for path in paths:
        row = read_json(path, what="benchmark row")
        if not isinstance(row, dict) or set(ROW_KEYS) - set(row):
            missing = sorted(set(ROW_KEYS) - set(row)) if isinstance(row, dict) else "everything"
            raise UserError(f"{path} is not a benchmark row (missing {missing}); rerun its benchmark step")
        key = (row["model"], label(row), row["batch"])
        if key in seen:
            raise UserError(f"{path} and {seen[key]} both measure {key}; give each measurement its own row")
        seen[key] = path
        rows.append(row)
    if not rows:
        raise UserError("no benchmark rows given")
    return sorted(rows, key=lambda r: (r["model"], label(r), r["batch"]))


def add_speedups(table: list[dict[str, Any]], baseline: str) -> None:
    """speedup: throughput over the baseline's (mean-based); speedup_p50: the baseline's p50 over this p50, which a
    few descheduled iterations on a busy machine do not move."""
    base = {(t["model"], t["batch"]): t for t in table if t["backend"] == baseline}
    for t in table:
        ref = base.get((t["model"], t["batch"]))
        t["speedup"] = round(t["throughput_samples_per_s"] / ref["throughput_samples_per_s"], 3) if ref else None
        t["speedup_p50"] = round(ref["p50_ms"] / t["p50_ms"], 3) if ref and t["p50_ms"] > 0 else None


def write_tsv(path: str, table: list[dict[str, Any]]) -> None:
    def cell(v: Any) -> str:
        return "" if v is None else str(v).replace("\t", " ")

    lines = ["\t".join(COLUMNS)] + ["\t".join(cell(t[c]) for c in COLUMNS) for t in table]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict[str, Any]], directory: str) -> list[str]:
    """Two PNGs per model into ``directory`` (replaced as a whole); returns their names."""
    matplotlib = require("matplotlib", purpose="the benchmark plots (--plots)",
                         hint="pip install matplotlib, or leave out --plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    with atomic_path(directory, directory=True) as tmp:
        for model in sorted({r["model"] for r in rows}):
            mine = [r for r in rows if r["model"] == model]
            batches = sorted({r["batch"] for r in mine})
            several_devices = len({r["device"] for r in mine}) > 1  # then each line says where it ran
            for key, ylabel, fname in (("p50", "p50 latency per batch (ms)", "latency_p50"),
                                       ("throughput", "throughput (samples/s)", "throughput")):
                fig, ax = plt.subplots(figsize=(6.4, 4.2))
                for name in sorted({label(r) for r in mine}):
                    line = sorted((r for r in mine if label(r) == name), key=lambda r: r["batch"])
                    ys = [r["latency_ms"]["p50"] if key == "p50" else r["throughput_samples_per_s"] for r in line]
                    where = f" ({line[0]['device'][:32]})" if several_devices else ""
                    ax.plot([r["batch"] for r in line], ys, marker="o", label=name + where)
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_xticks(batches, [str(b) for b in batches])
                ax.set_xlabel("batch size")
                ax.set_ylabel(ylabel)
                ax.set_title(f"{model}: {ylabel.split(' (')[0]}" + ("" if several_devices else
                                                                      f"\n{mine[0]['device']}"), fontsize=10)
                ax.grid(True, which="both", alpha=0.3)
                ax.legend()
                fig.tight_layout()
                fig.savefig(tmp / f"{model}_{fname}.png", dpi=110)
                plt.close(fig)
                names.append(f"{model}_{fname}.png")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", nargs="*", help="benchmark row JSON files")
    p.add_argument("--tsv", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--plots", help="directory for the PNG plots (replaced)")
    p.add_argument("--baseline", help="backend the speedup is relative to")
    args = parse_with_defaults(p, argv, {"baseline": "benchmark.baseline"})
    rows = load_rows(args.rows)
    table = [flatten(r) for r in rows]
    add_speedups(table, args.baseline)
    plots = plot(rows, args.plots) if args.plots else []
    write_json(args.json, {"baseline": args.baseline, "columns": list(COLUMNS), "table": table,
                           "plots": plots, "rows": rows})
    write_tsv(args.tsv, table)
    header, rows = speed_view(COLUMNS, [[t[c] for c in COLUMNS] for t in table], "benchmark table")
    print(tabulate(rows, headers=header, disable_numparse=True))
    if any(math.isclose(0, t["p50_ms"]) for t in table):
        print("note: some latencies round to 0 ms; the model is too small to time meaningfully", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
