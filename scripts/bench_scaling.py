#!/usr/bin/env python3
"""Scaling over the GPUs of a node: the throughput of N processes, one per GPU, each timing the same work at the same
time, against N times one GPU's throughput alone. Writes a JSON record with both and the scaling efficiency
(throughput on N / (N x throughput on one); 1.0 is perfect, the issue's goal is >= 0.9 at batch 128).

  python scripts/bench_scaling.py --backend tensorrt --artifact E.trt --samples X.npy --batch 128 --gpus 4 \
      --warmup 20 --iterations 200 --output scaling.json

Each worker is this program in its own process with its GPU pinned (trtverify.devices), started together: every
worker loads and warms up, says it is ready, and all start timing when the last one is. The copies between host and
device are included (Runner.infer). --backend onnxruntime times ONNX Runtime CPU sessions instead (the tests' simulated
devices; CPU cores are shared, so its efficiency says nothing about GPUs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any, Sequence

import numpy as np

from trtverify.backends import open_runner
from trtverify.benchrow import MEASUREMENT_DEFAULTS
from trtverify.devices import describe_device, pin_device
from trtverify.errors import UserError, run_main
from trtverify.io import NpyReader, write_json
from trtverify.schema import parse_with_defaults


def worker(args: argparse.Namespace) -> int:
    """One device: load, warm up, report ready on stdout, wait for 'go' on stdin, time, report the timing."""
    placement = pin_device(args.worker)
    x = NpyReader(args.samples, what="test samples", dtype="float32")
    batch = np.resize(x.read(0, args.batch), (args.batch, *x.shape[1:]))  # whole batches even from fewer samples
    options: dict[str, Any] = {} if args.backend == "tensorrt" else {"providers": ["CPUExecutionProvider"]}
    with open_runner(args.backend, args.artifact, **options) as runner:
        for _ in range(args.warmup):
            runner.infer(batch)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 1
        start = time.time()
        for _ in range(args.iterations):
            runner.infer(batch)
        end = time.time()
        gpu = describe_device() if args.backend == "tensorrt" else None
    print(json.dumps({"placement": placement, "gpu": gpu, "start": start, "end": end,
                      "samples": args.batch * args.iterations}), flush=True)
    return 0


def run_together(args: argparse.Namespace, slots: Sequence[int]) -> dict[str, Any]:
    """Start one worker per slot, let them all start timing at once, and combine their timings."""
    cmd = [sys.executable, __file__, "--backend", args.backend, "--artifact", args.artifact, "--samples", args.samples,
           "--batch", str(args.batch), "--gpus", str(args.gpus), "--warmup", str(args.warmup), "--iterations",
           str(args.iterations)]
    procs = [subprocess.Popen([*cmd, "--worker", str(s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for s in slots]
    try:
        for slot, proc in zip(slots, procs):
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise UserError(f"the worker on slot {slot} failed before timing (its message is above)")
        for proc in procs:  # all loaded and warm: start together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outs = [proc.communicate()[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    failed = [s for s, p in zip(slots, procs) if p.returncode != 0]
    if failed:
        raise UserError(f"the workers on slots {failed} failed while timing (their messages are above)")
    timings = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    seconds = max(t["end"] for t in timings) - min(t["start"] for t in timings)
    return {"devices": len(slots), "seconds": seconds, "samples": sum(t["samples"] for t in timings),
            "throughput": sum(t["samples"] for t in timings) / seconds, "workers": timings}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("tensorrt", "onnxruntime"), default="tensorrt")
    p.add_argument("--artifact", required=True, help="the engine (or, for onnxruntime, the .onnx model)")
    p.add_argument("--samples", required=True)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--gpus", type=int, required=True, help="N: how many devices run at once")
    p.add_argument("--warmup", type=int)
    p.add_argument("--iterations", type=int)
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: run as the worker of this slot
    p.add_argument("--output")
    args = parse_with_defaults(p, argv, MEASUREMENT_DEFAULTS)
    if min(args.batch, args.gpus, args.iterations) < 1 or args.warmup < 0:
        raise UserError("--batch, --gpus and --iterations must be at least 1, --warmup at least 0")
    if args.worker is not None:
        return worker(args)
    if not args.output:
        raise UserError("--output is required")
    one = run_together(args, [0])
    together = run_together(args, list(range(args.gpus)))
    efficiency = together["throughput"] / (args.gpus * one["throughput"])
    write_json(args.output, {"backend": args.backend, "artifact": args.artifact, "batch": args.batch,
                             "warmup": args.warmup, "iterations": args.iterations, "copies_included": True,
                             "gpus": args.gpus, "one_device": one, "all_devices": together,
                             "ideal_throughput": args.gpus * one["throughput"], "scaling_efficiency": efficiency})
    print(f"{args.gpus} device(s): {together['throughput']:.1f} samples/s against {args.gpus} x "
          f"{one['throughput']:.1f} alone: scaling efficiency {efficiency:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
