#!/usr/bin/env python3
"""Throughput of scripts/compare.py at real size: GB/s of prediction files read (issue 15's goal: over 1 GB/s).

  python tools/bench_compare.py [--samples 50000] [--classes 1000] [--kind probabilities|logits] [--threads T]
                                [--batch-size 4096] [--work build/bench-compare] [--profile OUT.prof]
                                [--fp16-noise 0.001] [--repeat 1]

Writes synthetic predictions of four backends once under --work (the reference, ONNX Runtime and TensorRT at fp32
close to it, TensorRT at fp16 further off, so every pair has differences and some top-1 flips), then runs
compare.py on them in a child process, as the compare rule does, and prints its wall time, its peak RSS
(ru_maxrss through os.wait4) and the total bytes of the prediction files divided by the wall time. The files were
just written or read, so they come from the page cache: this measures the comparison, not the disk. The same
is run on 1,000 samples first: that run is nearly all fixed cost (interpreter, imports, loading the compiled
passes, writing the outputs), and the marginal rate, the extra bytes over the extra seconds, is the streaming
pass's own. An untimed run of the small case comes first: after a clone or an edit of kernels.c, kernels.py
compiles the passes on first use (a second; several with zig), which would otherwise be charged to the small run
and make the marginal rate meaningless.
--repeat N runs each size N times, in turn, and prints the median run (the lower middle one) with the range, and
the median of the N marginal rates, each from a small and a large run made one after the other: on a shared machine
single runs of a second move by a tenth or more, and the same command then gives the figures of the docs.
--profile runs the child under cProfile and writes its statistics there (`python -m pstats OUT.prof`).
--fp16-noise: the standard deviation of the fp16 backend's difference from the reference, in logits (std 2)
before any softmax. Logits' softmax check needs no softmax for rows whose differences spread too little to put an
element outside (kernels.c, sure_inside_below): at the default every row of every pair is such a row; at 0.05 no
row of the three fp16 pairs is, and the check makes the softmaxes of all four backends for them.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))

NOISE = {"savedmodel": 0.0, "onnxruntime": 1e-6, "tensorrt_fp32": 1e-6, "tensorrt_fp16": 1e-3}
CHUNK = 5000
SMALL = 1000    # a run this small is nearly all fixed cost: the marginal rate leaves it out


def synthesize(work: Path, n: int, classes: int, kind: str, seed: int = 0,
               noise: dict[str, float] = NOISE) -> dict[str, Path]:
    """The labels, one sample per row (compare.py checks their count) and each backend's (n, classes) float32,
    ``noise[b]`` from the reference."""
    import numpy as np
    from trtverify.io import NpyWriter

    paths = {b: work / f"{b}.npy" for b in NOISE}
    if all(p.is_file() for p in paths.values()):
        return paths
    rng = np.random.default_rng(seed)
    np.save(work / "labels.npy", rng.integers(0, classes, n))
    np.save(work / "samples.npy", np.zeros((n, 1), np.float32))
    writers = {b: NpyWriter(p, n) for b, p in paths.items()}
    for start in range(0, n, CHUNK):
        logits = rng.normal(0, 2, (min(CHUNK, n - start), classes))
        for b, w in writers.items():
            x = logits + rng.normal(0, noise[b], logits.shape) if noise[b] else logits
            if kind == "probabilities":
                e = np.exp(x - x.max(axis=1, keepdims=True))
                x = e / e.sum(axis=1, keepdims=True)
            w.write(x.astype(np.float32))
    for w in writers.values():
        w.close()
    return paths


def default_tolerances() -> str:
    """The --tolerances a pipeline run passes when neither compare.tolerances nor the model's are set: the two
    merged (schema defaults), as rules/common.smk's model_tolerances writes them."""
    import json

    from trtverify.schema import schema_default

    merged = {k: dict(v) for k, v in schema_default("compare.tolerances").items()}
    for precision, values in schema_default("models.*.tolerances").items():
        merged.setdefault(precision, {}).update(values)
    return json.dumps(merged, sort_keys=True)


def rule_text(rule: str, rules: Path = REPO / "rules") -> str | None:
    """A rule's directives as written in rules/*.smk (its lines up to the next unindented one), or None."""
    text = "\n".join(path.read_text() for path in sorted(rules.glob("*.smk")))
    block = re.search(rf"^rule {re.escape(rule)}:\n(.*?)(?=^\S|\Z)", text, re.M | re.S)
    return block.group(1) if block else None


def rule_threads(rule: str, rules: Path = REPO / "rules") -> int:
    """The threads a rule of rules/ asks for (its `threads:` number; Snakemake gives at most --cores), read from the
    rule itself so that a benchmark runs the step on what the pipeline gives it, not on a copy of the number."""
    block = rule_text(rule, rules)
    found = re.search(r"^\s+threads: (\d+)\s*$", block, re.M) if block is not None else None
    if not found:
        sys.exit(f"bench: no rule {rule} in {rules} asks for a number of threads (`threads: N`)")
    return int(found.group(1))


def threads_given(rule: str) -> int:
    """The threads Snakemake gives a rule of rules/ here when --cores is every core of this machine."""
    return min(rule_threads(rule), os.cpu_count() or 1)


def rule_options(kind: str) -> list[str]:
    """What the compare rule always passes (rules/compare.smk) besides the files, batch size and threads, at
    config/schema.yaml's defaults: left out, compare.py would read the schema for them, which a pipeline run never
    makes it do. tests/test_bench_compare.py checks that the rule passes no option the benchmarks leave out."""
    from trtverify.schema import schema_default

    return ["--reference", "savedmodel", "--output-kind", kind, "--tolerances", default_tolerances(),
            "--max-flipped", str(schema_default("compare.max_flipped")),
            "--per-sample-rows", str(schema_default("compare.per_sample_rows"))]


def command(args: argparse.Namespace, work: Path, paths: dict[str, Path]) -> list[str]:
    """compare.py's arguments on the files under ``work``. Only --noise-floor, the conversion's record, is left
    out: synthetic outputs have no conversion."""
    return [str(SCRIPTS / "compare.py"), "--model", "synthetic", "--labels", str(work / "labels.npy"), "--samples",
            str(work / "samples.npy"), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
            *rule_options(args.kind), "--output", str(work / "comparison.json"), "--per-sample",
            str(work / "per_sample.csv"), *[a for b, path in paths.items() for a in ("--prediction", f"{b}={path}")]]


def run(args: argparse.Namespace, n: int) -> tuple[int, Any]:
    """compare.py on n samples (written once): the bytes of the prediction files and the process's cost."""
    from trtverify.benchstats import measure_process

    noise = {**NOISE, "tensorrt_fp16": args.fp16_noise}
    work = args.work / (f"{args.kind}-{n}x{args.classes}" + ("" if noise == NOISE else f"-fp16-{args.fp16_noise:g}"))
    work.mkdir(parents=True, exist_ok=True)
    paths = synthesize(work, n, args.classes, args.kind, noise=noise)
    profile = ["-m", "cProfile", "-o", str(args.profile)] if args.profile and n == args.samples else []
    cost = measure_process([sys.executable, *profile, *command(args, work, paths)], cwd=REPO)
    if cost.returncode != 0:
        sys.exit(f"bench_compare: compare.py failed:\n{cost.output[-3000:]}")
    return sum(path.stat().st_size for path in paths.values()), cost


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=50_000)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--kind", choices=("probabilities", "logits"), default="probabilities")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--work", type=Path, default=REPO / "build" / "bench-compare")
    p.add_argument("--threads", type=int, default=threads_given("compare"),
                   help="compare.py --threads (default: the compare rule's, at most this machine's cores, as "
                        "Snakemake gives them: %(default)s here)")
    p.add_argument("--profile", type=Path, help="run compare.py under cProfile, statistics to this file")
    p.add_argument("--fp16-noise", type=float, default=NOISE["tensorrt_fp16"],
                   help="the fp16 backend's difference from the reference (standard deviation, logit units)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each size, in turn: the median run is printed, with the range")
    args = p.parse_args(argv)
    if not args.fp16_noise >= 0:
        p.error(f"--fp16-noise is a standard deviation: give 0 or more, not {args.fp16_noise}")
    if args.repeat < 1:
        p.error(f"--repeat is a number of runs: give 1 or more, not {args.repeat}")
    run(args, SMALL)        # untimed: builds the compiled passes if they are not cached
    sizes = (SMALL, args.samples) if args.samples > SMALL else (args.samples,)
    size, seconds, peak = {}, {n: [] for n in sizes}, {n: 0 for n in sizes}
    for _ in range(args.repeat):
        for n in sizes:
            size[n], cost = run(args, n)
            seconds[n].append(cost.seconds)
            peak[n] = max(peak[n], cost.peak_rss_bytes)
    for n in sizes:
        median = statistics.median_low(seconds[n])
        runs = f"; median of {args.repeat} runs, {min(seconds[n]):.2f}-{max(seconds[n]):.2f} s" \
            if args.repeat > 1 else ""
        print(f"compare: {len(NOISE)} backends x {n} x {args.classes} {args.kind} (float32, {size[n] / 1e9:.3f} GB, "
              f"fp16 noise {args.fp16_noise:g}), "
              f"{args.threads} thread(s): {median:.2f} s, {size[n] / median / 1e9:.3f} GB/s, "
              f"peak RSS {peak[n] / 1e6:.0f} MB{runs}")
    if len(sizes) == 2:      # what the fixed costs (start-up, imports, loading compiled code, output) leave
        print(f"marginal, without what the {SMALL}-sample run costs: "
              f"{marginal_rate(size[args.samples] - size[SMALL], seconds[SMALL], seconds[args.samples])}")
    return 0


def marginal_rate(extra_bytes: int, small: Sequence[float], large: Sequence[float]) -> str:
    """The extra bytes over the extra seconds of each small and large run made in turn: their median (the lower
    middle one) and range when there are several; a turn whose large run was not slower has no rate."""
    rates = sorted(extra_bytes / (b - a) / 1e9 for a, b in zip(small, large) if b > a)
    if not rates:
        return "n/a (the larger run was not slower)"
    if len(small) == 1:
        return f"{rates[0]:.3f} GB/s"
    missing = len(small) - len(rates)
    return (f"{statistics.median_low(rates):.3f} GB/s (median of {len(rates)} turns, {rates[0]:.3f}-{rates[-1]:.3f}"
            + (f"; {missing} more where the larger run was not slower)" if missing else ")"))


if __name__ == "__main__":
    sys.exit(main())
