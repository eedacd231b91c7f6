#!/usr/bin/env python3
"""The GPU benchmark's models: MobileNetV2 and ResNet50 at 224x224 (random weights, spread BN, as bench_scale.py
makes them), as ONNX plus a few samples, in the GPU kit's model folders (.gpu/models/NAME/, see .gpu/PLAN.md).

  python tools/gpu_models.py --dest ../main/.gpu/models [--samples 4] [--seed 0]

A device call carries at most 64 MiB, and ResNet50's ONNX is ~100 MB: it is written in two halves,
resnet50_224_part0/r50.onnx.part0 and resnet50_224/r50.onnx.part1 (with the whole file's sha256), for two calls;
resnet50_224/extra.sh assemble joins them there. Each model folder's extra.sh runs tools/gpu_bench.sh. Only a few
samples are written (timing does not depend on the values; the benchmark tiles them to the batch).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from bench_scale import SIZE, make_model

NETS = {"mobilenetv2_224": "MobileNetV2", "resnet50_224": "ResNet50"}
EXTRA = """#!/usr/bin/env bash
# Run by .gpu/proof.sh after this model's predictions: TensorRT Python vs C++ timing (tools/gpu_bench.sh).
set -uo pipefail
bash tools/gpu_bench.sh
"""
ASSEMBLE = """#!/usr/bin/env bash
# `bash .gpu/models/resnet50_224/extra.sh assemble`, before proof.sh: joins r50.onnx.part0 (carried in an earlier
# call from .gpu/models/resnet50_224_part0 and copied to /tmp/r50.onnx.part0) and r50.onnx.part1 into model.onnx,
# checking the sha256. Without arguments (as proof.sh runs it): TensorRT Python vs C++ timing (tools/gpu_bench.sh).
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = assemble ]; then
  part0=${PART0:-/tmp/r50.onnx.part0}
  [ -f "$part0" ] || { echo "no $part0: carry .gpu/models/resnet50_224_part0 first and copy its part there"; exit 1; }
  cat "$part0" "$dir/r50.onnx.part1" > "$dir/model.onnx"
  (cd "$dir" && sha256sum -c r50.onnx.sha256) || { rm -f "$dir/model.onnx"; exit 1; }
  exit 0
fi
bash tools/gpu_bench.sh
"""


def convert(saved_model: Path, onnx: Path) -> None:
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--output",
                    str(onnx), "--opset", "17"], check=True, capture_output=True)


def split(onnx: Path, dest: Path) -> None:
    """Two halves in two folders, and the sha256 of the whole (as sha256sum -c reads it: model.onnx)."""
    data = onnx.read_bytes()
    half = len(data) // 2
    (dest / "resnet50_224_part0").mkdir(parents=True, exist_ok=True)
    (dest / "resnet50_224_part0" / "r50.onnx.part0").write_bytes(data[:half])
    (dest / "resnet50_224" / "r50.onnx.part1").write_bytes(data[half:])
    (dest / "resnet50_224" / "r50.onnx.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  model.onnx\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", type=Path, required=True)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path(__file__).resolve().parents[1] / "build" / "gpu-models")
    args = p.parse_args(argv)
    for name, net in NETS.items():
        work, folder = args.work / name, args.dest / name
        folder.mkdir(parents=True, exist_ok=True)
        if not (work / "saved_model" / "saved_model.pb").is_file():
            make_model(work / "saved_model", args.seed, net)
        if not (work / "model.onnx").is_file():
            convert(work / "saved_model", work / "model.onnx")
        rng = np.random.default_rng(args.seed)
        np.save(folder / "test_samples.npy", rng.normal(0, 60, (args.samples, SIZE, SIZE, 3)).astype(np.float32))
        if name == "resnet50_224":
            split(work / "model.onnx", args.dest)
            (folder / "extra.sh").write_text(ASSEMBLE)
        else:
            (folder / "model.onnx").write_bytes((work / "model.onnx").read_bytes())
            (folder / "extra.sh").write_text(EXTRA)
        print(f"{folder}: {sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
