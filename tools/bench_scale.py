#!/usr/bin/env python3
"""The CPU steps at real size: ResNet50 at 224x224 (random weights, spread batch-norm statistics), N samples,
through import, conversion, predictions and compare, each step against the bare library loop doing its work.

  python tools/bench_scale.py [--samples 10000] [--batch-size 32] [--work build/bench-scale] [--json OUT.json]
      [--steps compare] [--repeat 15] [--min-seconds 60]
  make bench-scale [BENCH_SAMPLES=500]

Every step and every bare loop runs in its own process; its wall time and peak RSS (the process's own ru_maxrss,
through os.wait4) are measured from outside. The bare loops (BARE below) are what the step would be without the
pipeline: the same library calls on the same batches, no checks, no streaming writer, no records. Goals (issue 15):
peak RSS of every step under 4 GB, every step within 1.1x of its bare loop, compare over 1 GB/s of predictions.
The model and samples are made once under --work and reused (remove the folder to make them again).

Before each run, of a step or of its bare loop, the files the step's command names (its inputs, and the outputs
of its last run) are read once, untimed: both start from the same page cache, the warm one of a step that runs after
the step which wrote its inputs. Otherwise the first of the two pays for reading from disk what the second finds in
memory (compare, run right after predict_onnxruntime's 6 GB: 0.421 s against its bare loop's 0.263 s).

A short step (compare, a fraction of a second; import, about 20 s) moves from one run to the next on a shared machine
by as much as the 1.1x it is judged by. Each step and its bare loop run in turn, at least --repeat times and until
the step's runs add up to --min-seconds (at most MAX_TURNS turns); with more than one turn the medians are printed,
with the spread of each turn's ratio and their median (turn_ratio: each turn's two runs see one state of the machine).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))

SIZE, CLASSES, CALIBRATION, LOGIT_STD = 224, 1000, 32, 2.0
MAX_TURNS = 15

# Made in a child process (TensorFlow stays out of this one). Spread BN, the idea of tests/realnets.py on issue-11b:
# random gamma/beta, then every BN's moving statistics measured on a calibration batch (one training-mode pass with
# momentum 0), so each BN normalises what it really sees and activations neither vanish nor explode through the
# net; the classifier is rescaled to a logit spread of LOGIT_STD so top-1 differs between samples.
MAKE_MODEL = """
import sys, numpy as np, keras, tensorflow as tf
out, seed, net = sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "ResNet50"
keras.utils.set_random_seed(seed)
rng = np.random.default_rng(seed)
make = getattr(keras.applications, net)
model = make(weights=None, input_shape=({s}, {s}, 3), classes={c}, classifier_activation=None)
for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.25, beta.shape), mean, var])
        layer.momentum = 0.0
x = rng.normal(0, 60, ({n}, {s}, {s}, 3)).astype("float32")
model(x, training=True)                                   # momentum 0: the moving statistics become the batch's
head = model.layers[-1]
kernel, bias = head.get_weights()
logits = model(x, training=False).numpy()
head.set_weights([kernel * ({std} / logits.std()), bias * 0])
probs = keras.layers.Softmax()(model.output)
keras.Model(model.input, probs).export(out, verbose=False)
""".format(s=SIZE, c=CLASSES, n=CALIBRATION, std=LOGIT_STD)

# The bare loops: argv = work dir, batch size. Samples are memory-mapped, as a user's own loop would read them.
BARE = {
    "import": """
import sys, hashlib, numpy as np, tensorflow as tf
w = sys.argv[1]
fn = tf.saved_model.load(w + "/saved_model").signatures["serving_default"]
x = np.load(w + "/x.npy", mmap_mode="r")
fn(tf.constant(x[:8]))
h = hashlib.blake2b(digest_size=16)
with open(w + "/x.npy", "rb") as f:
    while chunk := f.read(1 << 24):
        h.update(chunk)
""",
    # convert_onnx.py converts, then checks the ONNX model against the SavedModel on every sample: both loops.
    "convert": """
import sys, subprocess, numpy as np, onnxruntime as ort, tensorflow as tf
w, b = sys.argv[1], int(sys.argv[2])
subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", w + "/saved_model", "--output",
                w + "/bare.onnx", "--opset", "17"], check=True, capture_output=True)
fn = tf.saved_model.load(w + "/saved_model").signatures["serving_default"]
s = ort.InferenceSession(w + "/bare.onnx", providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
x = np.load(w + "/x.npy", mmap_mode="r")
for i in range(0, len(x), b):
    batch = np.ascontiguousarray(x[i:i + b])
    next(iter(fn(tf.constant(batch)).values())).numpy(), s.run(None, {name: batch})
""",
    "predict_savedmodel": """
import sys, numpy as np, tensorflow as tf
w, b = sys.argv[1], int(sys.argv[2])
fn = tf.saved_model.load(w + "/saved_model").signatures["serving_default"]
x = np.load(w + "/x.npy", mmap_mode="r")
for i in range(0, len(x), b):
    next(iter(fn(tf.constant(x[i:i + b])).values())).numpy()
""",
    "predict_onnxruntime": """
import sys, numpy as np, onnxruntime as ort
w, b = sys.argv[1], int(sys.argv[2])
s = ort.InferenceSession(w + "/model.onnx", providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
x = np.load(w + "/x.npy", mmap_mode="r")
for i in range(0, len(x), b):
    s.run(None, {name: np.ascontiguousarray(x[i:i + b])})
""",
    "compare": """
import sys, numpy as np
w = sys.argv[1]
a, b = np.load(w + "/savedmodel.npy", mmap_mode="r"), np.load(w + "/onnxruntime.npy", mmap_mode="r")
for i in range(0, len(a), 4096):
    p, q = a[i:i + 4096], b[i:i + 4096]
    np.abs(p - q).max(), (p.argmax(1) == q.argmax(1)).mean()
""",
}


def measure(cmd: Sequence[str]) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of one process; a failure ends the benchmark with its output."""
    from trtverify.benchstats import measure_process

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(SCRIPTS)}
    cost = measure_process(list(cmd), env=env, cwd=REPO)
    if cost.returncode != 0:
        sys.exit(f"bench_scale: {' '.join(cmd)[:200]} failed:\n{cost.output[-3000:]}")
    return {"seconds": round(cost.seconds, 3), "peak_rss_mb": round(cost.peak_rss_bytes / 1e6, 1)}


def named_files(cmd: Sequence[str], work: Path) -> list[Path]:
    """The files under WORK that a command's arguments name (``PATH``, ``--option=PATH``, ``name=PATH``) and that
    exist now, a folder's files included, each once (a link as the file it points to)."""
    seen: dict[Path, None] = {}
    for arg in cmd:
        path = Path(arg.split("=", 1)[-1])
        if not path.is_relative_to(work):
            continue
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                seen.setdefault(file.resolve())
    return list(seen)


def read_through(files: Sequence[Path]) -> int:
    """Read FILES once and drop what was read (into the page cache, out of this process); the bytes read."""
    size = 0
    for file in files:
        with open(file, "rb", buffering=0) as f:
            while chunk := f.read(1 << 24):
                size += len(chunk)
    return size


def turns(cmd: Sequence[str], bare_cmd: Sequence[str], work: Path, repeat: int,
          min_seconds: float) -> list[tuple[dict[str, float], dict[str, float]]]:
    """A step and its bare loop in turn, each after its files are read through: at least REPEAT turns, more while
    the step's runs add up to less than MIN_SECONDS, at most MAX_TURNS unless REPEAT asks for more."""
    runs: list[tuple[dict[str, float], dict[str, float]]] = []
    while len(runs) < repeat or (len(runs) < MAX_TURNS and sum(s["seconds"] for s, _ in runs) < min_seconds):
        read_through(named_files(cmd, work))
        step = measure(cmd)
        read_through(named_files(cmd, work))   # what the step wrote is there now, as it is for the next turn
        runs.append((step, measure(bare_cmd)))
    return runs


def median_run(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """The median wall time of ``runs`` (the lower middle one of an even number), and the highest peak RSS."""
    ordered = sorted(run["seconds"] for run in runs)
    return {"seconds": ordered[(len(ordered) - 1) // 2], "peak_rss_mb": max(run["peak_rss_mb"] for run in runs)}


def turn_ratios(runs: Sequence[tuple[dict[str, float], dict[str, float]]]) -> list[float]:
    """Each turn's step seconds over its bare loop's, lowest first: a turn runs the two back to back, so its ratio
    sees one state of a shared machine, where the ratio of the two medians may set a run made busy against one made
    quiet."""
    return sorted(step["seconds"] / bare["seconds"] for step, bare in runs)


def turn_ratio(runs: Sequence[tuple[dict[str, float], dict[str, float]]]) -> float:
    """The median of the turns' ratios (the lower middle one of an even number, a turn that happened)."""
    return statistics.median_low(turn_ratios(runs))


def make_model(dest: Path, seed: int, net: str = "ResNet50") -> None:
    """A keras.applications net (ResNet50, MobileNetV2) at 224x224 with spread BN, exported as a SavedModel."""
    measure([sys.executable, "-c", MAKE_MODEL, str(dest), str(seed), net])


def prepare(work: Path, n: int, seed: int, net: str = "ResNet50") -> None:
    """The SavedModel of NET and N samples (written a batch at a time: 10,000 are 6 GB)."""
    import numpy as np
    from trtverify.io import NpyWriter

    if not (work / "src" / "saved_model" / "saved_model.pb").is_file():
        make_model(work / "src" / "saved_model", seed, net)
    samples = work / "src" / f"x{n}.npy"
    if not samples.is_file():
        rng = np.random.default_rng(seed)
        with NpyWriter(samples, n) as out:
            for start in range(0, n, 256):
                out.write(rng.normal(0, 60, (min(256, n - start), SIZE, SIZE, 3)).astype(np.float32))
        np.save(work / "src" / f"y{n}.npy", rng.integers(0, CLASSES, n))


def steps(work: Path, n: int, batch: int) -> dict[str, list[str]]:
    """The pipeline's commands, as the rules run them: every option each rule passes, at the shipped config's
    values and the schema's defaults (tests/test_bench_compare.py checks the options against rules/), but the batch
    size, the option of this benchmark."""
    import yaml
    from bench_compare import default_tolerances, rule_options, threads_given  # this folder: what both pass
    from trtverify.schema import schema_default

    py, src, run = sys.executable, work / "src", work / "run"
    threads = threads_given("compare")
    kind, tolerances = schema_default("models.*.output_kind"), default_tolerances()
    opset = yaml.safe_load((REPO / "config.yaml").read_text())["onnx"]["opset"]
    predict = [py, str(SCRIPTS / "predict.py"), "--samples", str(run / "x.npy"), "--batch-size", str(batch)]
    return {
        "import": [py, str(SCRIPTS / "import_model.py"), f"--saved-model-in={src / 'saved_model'}",
                   f"--samples-in={src / f'x{n}.npy'}", f"--labels-in={src / f'y{n}.npy'}", "--saved-model",
                   str(run / "saved_model"), "--samples", str(run / "x.npy"), "--labels", str(run / "y.npy"),
                   "--metrics", str(run / "metrics.json"),
                   "--num-test-samples", str(schema_default("models.*.num_test_samples"))],
        "convert": [py, str(SCRIPTS / "convert_onnx.py"), "--saved-model", str(run / "saved_model"), "--samples",
                    str(run / "x.npy"), "--labels", str(run / "y.npy"), "--opset", str(opset), "--batch-size",
                    str(batch), "--noise-floor-samples", str(schema_default("compare.noise_floor_samples")),
                    "--tolerances", tolerances, "--output-kind", kind, "--output", str(run / "model.onnx"),
                    "--check", str(run / "onnx_check.json")],
        "predict_savedmodel": [*predict, "--backend", "savedmodel", "--artifact", str(run / "saved_model"),
                               "--output", str(run / "savedmodel.npy"), "--info", str(run / "savedmodel.json")],
        "predict_onnxruntime": [*predict, "--backend", "onnxruntime", "--artifact", str(run / "model.onnx"),
                                "--providers", ",".join(schema_default("onnxruntime.providers")),
                                "--output", str(run / "onnxruntime.npy"), "--info", str(run / "onnxruntime.json")],
        "compare": [py, str(SCRIPTS / "compare.py"), "--model", "resnet50", "--labels", str(run / "y.npy"),
                    "--samples", str(run / "x.npy"), "--prediction", f"savedmodel={run / 'savedmodel.npy'}",
                    "--prediction", f"onnxruntime={run / 'onnxruntime.npy'}", "--noise-floor",
                    str(run / "onnx_check.json"), *rule_options(kind),
                    "--batch-size", str(schema_default("compare.batch_size")), "--threads", str(threads),
                    "--output", str(run / "comparison.json"), "--per-sample", str(run / "per_sample.csv")],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=REPO / "build" / "bench-scale")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--repeat", type=int, default=1, help="at least this many runs of each step and of its bare "
                   "loop, in turn; the medians are printed")
    p.add_argument("--min-seconds", type=float, default=60.0, help="more turns while a step's runs add up to less "
                   f"than this (at most {MAX_TURNS} turns in all)")
    p.add_argument("--steps", default="", help="comma-separated steps to run (default: all; each needs the "
                   "outputs of those before it from an earlier run)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")
    prepare(args.work, args.samples, args.seed)
    # The steps' modules compiled first, as a user's second run finds them: with PYTHONDONTWRITEBYTECODE set (as on
    # the machine this was measured on) every run would compile them again (a clean clone's compare: 0.224 s
    # median, 0.191 s compiled)
    compileall.compile_dir(SCRIPTS, quiet=1)
    rows: list[dict[str, Any]] = []
    print(f"ResNet50 {SIZE}x{SIZE}, {args.samples} samples, batch {args.batch_size}")
    print(f"{'step':<20} {'seconds':>8} {'peak RSS MB':>12} {'bare s':>8} {'bare MB':>8} {'ratio':>6}  note")
    for name, cmd in steps(args.work, args.samples, args.batch_size).items():
        if args.steps and name not in args.steps.split(","):
            continue
        bare_cmd = [sys.executable, "-c", BARE[name], str(args.work / "run"), str(args.batch_size)]
        runs = turns(cmd, bare_cmd, args.work, args.repeat, args.min_seconds)
        step, bare = (median_run([run[i] for run in runs]) for i in (0, 1))
        row = {"step": name, **step, "bare_seconds": bare["seconds"], "bare_peak_rss_mb": bare["peak_rss_mb"],
               "ratio": round(step["seconds"] / bare["seconds"], 3)}
        notes = []
        if len(runs) > 1:
            ratios = turn_ratios(runs)
            row["turn_ratio"] = round(turn_ratio(runs), 3)
            notes.append(f"ratios of the {len(runs)} turns {ratios[0]:.3f}-{ratios[-1]:.3f}, median turn "
                         f"{row['turn_ratio']}")
            row["runs"] = [{"seconds": s["seconds"], "bare_seconds": b["seconds"]} for s, b in runs]
        if name == "compare":  # both prediction files, read once
            size = sum((args.work / "run" / f).stat().st_size for f in ("savedmodel.npy", "onnxruntime.npy"))
            row["gb_per_s"] = round(size / step["seconds"] / 1e9, 3)
            notes.append(f"{row['gb_per_s']} GB/s of predictions")
            if size < 1e9:   # the goal's 1 GB/s is a rate at size: here start-up (~0.15 s) is most of the step
                notes[-1] += f" ({size / 1e6:.0f} MB, mostly start-up: tools/bench_compare.py times 0.8 GB)"
        rows.append(row)
        print(f"{name:<20} {step['seconds']:>8} {step['peak_rss_mb']:>12} {bare['seconds']:>8} "
              f"{bare['peak_rss_mb']:>8} {row['ratio']:>6}  {'; '.join(notes)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"samples": args.samples, "batch_size": args.batch_size,
                                         "repeat": args.repeat, "min_seconds": args.min_seconds,
                                         "rows": rows},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
