#!/usr/bin/env python3
"""What each pipeline step cost: the Snakemake ``benchmark:`` files of every rule gathered into one table.

  python scripts/pipeline_costs.py [--root results/benchmarks] [--output results/pipeline_costs.tsv]

Each rule writes ``results/benchmarks/{rule}/{wildcards...}.tsv`` (columns s, h:m:s, max_rss, max_vms, max_uss,
max_pss, io_in, io_out, mean_load, cpu_time; max_rss in MiB). The step is the first folder, the wildcards the rest
of the path. A file with several rows (``repeat()``) gives the mean time and the largest RSS. Run it after the
workflow; with no benchmark files yet it says so and writes a table with only its header.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from tabulate import tabulate

from trtverify.errors import run_main
from trtverify.io import atomic_path

COLUMNS = ("step", "wildcards", "seconds", "cpu_seconds", "max_rss_mib", "repeats")


def number(value: str | None) -> float | None:
    """Snakemake writes NA (or '-') where psutil could not measure a process that ended too fast."""
    if value is None or value in ("", "NA", "-"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def read_benchmark(path: Path, root: Path) -> dict[str, Any] | None:
    """One table row for one benchmark file, or None (with a warning) for a file that is not one."""
    try:
        with open(path, newline="") as fh:
            records = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"skipped {path}: {exc}", file=sys.stderr)
        return None
    if not records or "s" not in records[0]:
        print(f"skipped {path}: not a Snakemake benchmark file (no 's' column or no rows)", file=sys.stderr)
        return None
    parts = path.relative_to(root).with_suffix("").parts
    seconds = [s for s in (number(r.get("s")) for r in records) if s is not None]
    cpu = [c for c in (number(r.get("cpu_time")) for r in records) if c is not None]
    rss = [m for m in (number(r.get("max_rss")) for r in records) if m is not None]
    return {
        "step": parts[0] if len(parts) > 1 else "", "wildcards": "/".join(parts[1:]) if len(parts) > 1 else parts[0],
        "seconds": round(statistics.fmean(seconds), 3) if seconds else None,
        "cpu_seconds": round(statistics.fmean(cpu), 3) if cpu else None,
        "max_rss_mib": round(max(rss), 1) if rss else None, "repeats": len(records),
    }


def of_model(row: dict[str, Any]) -> str:
    """The model a per-model step's row is about: the first wildcard folder or file name, less a precision."""
    return re.sub(r"_(fp32|tf32|fp16)$", "", row["wildcards"].split("/")[0])


def configured(rows: list[dict[str, Any]], models: list[str], per_model_steps: list[str]) -> list[dict[str, Any]]:
    """Drop the rows of models no longer in the config: their old benchmark files stay under results/benchmarks."""
    return [r for r in rows if r["step"] not in per_model_steps or of_model(r) in models]


def gather(root: Path) -> list[dict[str, Any]]:
    if not root.is_dir():
        return []
    rows = [read_benchmark(p, root) for p in sorted(root.rglob("*.tsv")) if p.is_file()]
    return sorted((r for r in rows if r), key=lambda r: (r["step"], r["wildcards"]))


def write_tsv(path: str, rows: list[dict[str, Any]]) -> None:
    lines = ["\t".join(COLUMNS)] + ["\t".join("" if r[c] is None else str(r[c]) for c in COLUMNS) for r in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="results/benchmarks", help="where the rules' benchmark files are")
    p.add_argument("--output", default="results/pipeline_costs.tsv", help="the gathered table ('' to skip)")
    p.add_argument("--model", action="append", default=None,
                   help="a configured model (repeat it); with it, other models' rows are left out")
    p.add_argument("--per-model-step", action="append", default=[],
                   help="a step run per model (repeat it): the steps whose rows --model filters")
    args = p.parse_args(argv)
    rows = gather(Path(args.root))
    if args.model is not None:
        rows = configured(rows, args.model, args.per_model_step)
    if args.output:
        write_tsv(args.output, rows)
    if not rows:
        print(f"no step benchmarks yet (nothing under {args.root}): run the workflow first")
        return 0
    print(tabulate([[r[c] for c in COLUMNS] for r in rows], headers=COLUMNS,
                   floatfmt=["", "", ".2f", ".2f", ".0f", ""], missingval="-"))
    total = sum(r["seconds"] or 0 for r in rows)
    slowest = max(rows, key=lambda r: r["seconds"] or 0)
    print(f"\n{len(rows)} jobs, {total:.1f} s summed over them; slowest: "
          f"{slowest['step']} {slowest['wildcards']} ({slowest['seconds']} s)")
    return 0


if __name__ == "__main__":
    run_main(main)
