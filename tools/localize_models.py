#!/usr/bin/env python3
"""Models to prove localization on: `python tools/localize_models.py OUT` writes, for each model below,
OUT/<name>/saved_model, OUT/<name>/model.onnx (scripts/convert_onnx.py, checked against the SavedModel) and
OUT/<name>/samples.npy (16 samples), for the TensorRT hops on a GPU machine that has no TensorFlow.

  mobilenet               MobileNetV2 (alpha 0.35, 32x32, 10 classes), random weights, batch-norm statistics
                          spread so every layer's output varies across samples (tests/test_localize.py uses it)
  mobilenet_fp16_overflow the same with the BatchNorm of FP16_LAYER scaled so its outputs exceed FP16's range
                          (65504); the ReLU6 after it clips them again, so only that layer overflows in FP16
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
CLASSES = 10
FP16_LAYER = "block_5_expand_BN"
FP16_SCALE = 1e6  # gamma and beta times this: activations near 1e5-1e6, beyond FP16's 65504


def make_samples() -> np.ndarray:
    """The 64 samples the models' batch-norm statistics come from (tests/test_localize.py's too); the first 16 are
    written."""
    return np.random.default_rng(0).normal(size=(64, 32, 32, 3)).astype(np.float32)


def random_mobilenet(samples: np.ndarray, overflow_layer: str | None = None) -> Any:
    """The Keras model; batch-norm moving statistics are taken from ``samples`` (momentum 0), gamma and beta spread,
    so activations are neither constant nor saturated."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=samples.shape[1:], alpha=0.35, weights=None, classes=CLASSES)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape).astype(np.float32),
                               rng.normal(0, 0.5, beta.shape).astype(np.float32), mean, var])
            layer.momentum = 0.0
    model(samples, training=True)
    if overflow_layer:
        layer = model.get_layer(overflow_layer)
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([gamma * FP16_SCALE, beta * FP16_SCALE, mean, var])
    return model


def write(out: Path, name: str, samples: np.ndarray, overflow_layer: str | None = None) -> Path:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    random_mobilenet(samples, overflow_layer).export(str(d / "saved_model"), verbose=False)
    np.save(d / "samples.npy", samples[:16])
    np.save(d / "labels.npy", np.random.default_rng(1).integers(0, CLASSES, 16).astype(np.int64))
    subprocess.run([sys.executable, str(REPO / "scripts" / "convert_onnx.py"), "--saved-model", str(d / "saved_model"),
                    "--samples", str(d / "samples.npy"), "--labels", str(d / "labels.npy"), "--opset",
                    str(yaml.safe_load((REPO / "config.yaml").read_text())["onnx"]["opset"]), "--output",
                    str(d / "model.onnx"),
                    "--check", str(d / "onnx_check.json")], check=True)
    return d


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/localize-models")
    x = make_samples()
    write(out, "mobilenet", x)
    write(out, "mobilenet_fp16_overflow", x, FP16_LAYER)
    print(f"wrote {out}/mobilenet and {out}/mobilenet_fp16_overflow (FP16 overflow at {FP16_LAYER})")


if __name__ == "__main__":
    main()
