#!/usr/bin/env python3
"""A tiny classifier in ONNX, made with onnx.helper (no TensorFlow), and test samples for it: the model the sharding
tests run on ONNX Runtime CPU (tests/test_shards.py) and tools/gpu_shards.sh runs on a GPU that has no `onnx` package.

  python tools/tiny_onnx.py OUT    # writes OUT/model.onnx and OUT/test_samples.npy (53 samples of 8x8x1)

Transpose -> Conv 3x3 (4 filters) -> Relu -> Reshape -> MatMul -> Softmax on NHWC samples, dynamic batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

CLASSES = 10
SAMPLES = 53  # not a multiple of the batch sizes used with it: every shard layout has a short batch somewhere


def write(out: Path) -> dict[str, Path]:
    from onnx import TensorProto, helper, numpy_helper, save

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "K"),
             numpy_helper.from_array(rng.normal(size=(256, CLASSES)).astype(np.float32), "W"),
             numpy_helper.from_array(np.array([-1, 256], np.int64), "flat_shape")]
    nodes = [helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "K"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["act"]),
             helper.make_node("Reshape", ["act", "flat_shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "W"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 1])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", CLASSES])], inits)
    paths = {"onnx": out / "model.onnx", "samples": out / "test_samples.npy"}
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(paths["onnx"]))
    np.save(paths["samples"], rng.normal(size=(SAMPLES, 8, 8, 1)).astype(np.float32))
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(write(Path(sys.argv[1])))
