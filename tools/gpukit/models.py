#!/usr/bin/env python3
"""The GPU proof's models: made and judged on the CPU machine (TensorFlow), predicted on the GPU machine.

  python tools/gpukit/models.py make [--samples 32] [--dest .gpu/models] [--work build/gpukit]
  python tools/gpukit/models.py judge PREDICTIONS_DIR [--work build/gpukit]
  python tools/gpukit/models.py localized LOCALIZE_DIR

make: MobileNetV2 and ResNet50 at 224x224 (random weights, spread batch-norm statistics: tools/bench_scale.py's
model), N samples, through the pipeline's own import, conversion, SavedModel and ONNX Runtime steps, run as the
rules run them (bench_scale.steps). DEST/NAME gets what the GPU machine needs: the converted model.onnx and the
samples (test_samples.npy; tools/gpu_bench.sh times on them too).

judge: scripts/compare.py as the compare rule runs it, on the reference (SavedModel), ONNX Runtime and the TensorRT
predictions the GPU machine wrote (PREDICTIONS_DIR/NAME/{tensorrt,tensorrt_cpp}_{P}.npy, engines/P.json:
tools/gpukit/device.sh proof; each model and precision found there), with each engine's build record; prints
every pair's verdict and writes PREDICTIONS_DIR/NAME/comparison.json. Exits 1 when a verdict would fail the gate at
its defaults (mismatch or inconclusive).

localized: what `device.sh localize` found (LOCALIZE_DIR/NAME.json, scripts/localize.py on tools/localize_models.py's
models), as the report shows it: the first divergent layer and each hop's table. Exits 1 when a hop was skipped or
a TensorRT Python -> C++ hop has a divergent layer (the two harnesses run one engine: they must agree bit for bit).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))

from bench_scale import measure, prepare, steps  # noqa: E402  (tools/, after the path above; it adds scripts/)
from trtverify.tolerance import PASSING, PRECISIONS  # noqa: E402

NETS = {"mobilenetv2_224": "MobileNetV2", "resnet50_224": "ResNet50"}
LOCAL_STEPS = ("import", "convert", "predict_savedmodel", "predict_onnxruntime")


def make(dest: Path, work: Path, samples: int, seed: int) -> None:
    for name, net in NETS.items():
        w = work / name
        prepare(w, samples, seed, net)
        todo = steps(w, samples, batch=32)
        for step in LOCAL_STEPS:
            cost = measure(todo[step])
            print(f"{name} {step}: {cost['seconds']} s, peak RSS {cost['peak_rss_mb']} MB", flush=True)
        out = dest / name
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(w / "run" / "model.onnx", out / "model.onnx")
        shutil.copyfile(w / "run" / "x.npy", out / "test_samples.npy")
        print(f"{out}: {sum(f.stat().st_size for f in out.iterdir()) / 1e6:.1f} MB", flush=True)


def judge(predictions: Path, work: Path, samples: int) -> int:
    bad = 0
    for name in (n for n in NETS if (predictions / n).is_dir()):  # the models device.sh proof ran
        got = predictions / name
        built = {r.stem for r in (got / "engines").glob("*.json")}  # the engines it built, tight to loose
        precisions = [p for p in PRECISIONS if p in built]
        if not precisions:
            sys.exit(f"judge: no engine build record in {got / 'engines'}: the proof built no engine for {name}")
        cmd = steps(work / name, samples, batch=32)["compare"]
        cmd[cmd.index("--model") + 1] = name
        for api in ("tensorrt", "tensorrt_cpp"):
            for p in precisions:
                cmd += ["--prediction", f"{api}_{p}={got / f'{api}_{p}.npy'}",
                        f"--engine-info={api}_{p}={got / 'engines' / f'{p}.json'}"]
        for flag, path in (("--output", got / "comparison.json"), ("--per-sample", got / "per_sample.csv")):
            cmd[cmd.index(flag) + 1] = str(path)
        measure(cmd)
        for pair in json.loads((got / "comparison.json").read_text())["pairs"].values():
            m = pair["metrics"]
            bad += pair["verdict"] not in PASSING
            print(f"{name}: {pair['a']} vs {pair['b']} ({pair['precision']}): {pair['verdict']}, max |a-b| "
                  f"{m['max_abs_diff']:.3g}, top-1 agreement {m['top1_agreement']:.4f}; {pair['reason']}")
    return 1 if bad else 0


def localized(found: Path) -> int:
    from trtverify.report_localize import first_divergence_line, hop_table
    from trtverify.tables import render

    records = sorted(found.glob("*.json"))
    if not records:
        sys.exit(f"localized: no localization (NAME.json) in {found}: run device.sh localize and unpack localize.tgz")
    bad = 0
    for record in records:
        loc = json.loads(record.read_text())
        print(f"{record.stem}: {first_divergence_line(loc)}")
        print(render(hop_table(loc), "text", ".3g"), end="\n\n")
        for hop in loc["hops"]:
            broken = hop["status"] != "compared" or ("tensorrt_cpp" in hop["hop"] and hop["first_divergent_layer"])
            bad += bool(broken)
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("make", "judge", "localized"))
    p.add_argument("predictions", nargs="?", type=Path,
                   help="judge: the folder device.sh proof wrote; localized: the one device.sh localize wrote")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dest", type=Path, default=TOOLS.parent / ".gpu" / "models")
    p.add_argument("--work", type=Path, default=TOOLS.parent / "build" / "gpukit")
    args = p.parse_args(argv)
    if args.action == "make":
        make(args.dest, args.work, args.samples, args.seed)
        return 0
    if args.predictions is None:
        p.error(f"{args.action} needs the folder device.sh wrote")
    if args.action == "localized":
        return localized(args.predictions)
    return judge(args.predictions, args.work, args.samples)


if __name__ == "__main__":
    sys.exit(main())
