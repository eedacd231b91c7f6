"""The reference's own noise floor: how far correct FP32 runs of the same model on the same inputs lie apart.

Three self-checks (docs/tolerances.md, "The noise floor"), each on the same ``m`` samples:
- the SavedModel at batch 1 vs at the configured batch (other kernels, other summation orders);
- ONNX Runtime with graph optimizations on vs off (fusions, constant folding);
- ONNX Runtime with one float32 rounding added to every layer: each element of every intermediate float tensor is
  multiplied by ``1 + e``, ``e`` normal with standard deviation ``ROUNDING`` (the float32 unit roundoff). Two
  correct FP32 implementations differ by at least that much at every layer, and how far the model carries such
  differences to its outputs is a property of the model (its conditioning), not of the implementations at hand.

The samples are the ``m`` where the two FP32 implementations the conversion step already ran (SavedModel and ONNX
Runtime) differ most: a deep net's outputs are far more sensitive on some inputs (a mid-range probability moves
with p(1 - p) of its logit) than on most, and a floor measured on easy samples only says nothing about the hard
ones. A defect of the conversion cannot enter a self-check (each runs one model against itself); it can only choose
which samples are measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import require
from .outputs import OutputProfile, softmax

ROUNDING = 2.0 ** -24  # float32 unit roundoff: one rounding's relative error
ROUNDING_CHECK = "onnxruntime with one float32 rounding per layer"  # the third check's name in onnx_check.json


def self_check(a: np.ndarray, b: np.ndarray, kind: str) -> dict[str, float]:
    """How far two runs of the same model on the same inputs lie apart (and, for logits, after a softmax)."""
    diff = np.abs(a.astype(np.float64) - b)
    check = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
    if kind == "logits":
        check["softmax_max_abs_diff"] = float(np.abs(softmax(a.astype(np.float64)) - softmax(b)).max())
    return check


def sensitive_samples(a: np.ndarray, b: np.ndarray, m: int) -> np.ndarray:
    """Indices (ascending) of the ``m`` samples where outputs ``a`` and ``b`` differ most (largest |a - b| of the
    sample); the first ones among equals, so a model whose outputs agree exactly gets its first ``m``."""
    score = np.abs(a.astype(np.float64) - b).reshape(len(a), -1).max(axis=1)
    return np.sort(np.argsort(-score, kind="stable")[:m])


def floor_of(checks: dict[str, dict[str, Any]], samples: int, profile: OutputProfile,
             selection: str) -> dict[str, Any]:
    """The floor is the largest self-disagreement: a backend cannot be asked to agree better than the reference."""
    floor = max(c["max_abs_diff"] for c in checks.values())
    result = {"samples": samples, "selection": selection, "checks": checks, "floor": floor, "scale": profile.scale,
              "floor_normalised": floor / profile.scale, "output_kind": profile.kind}
    if profile.kind == "logits":
        result["softmax_floor"] = max(c["softmax_max_abs_diff"] for c in checks.values())
    return result


def with_rounding(model: Any) -> int:
    """Make ``model`` (an onnx ModelProto, changed in place) add one float32 rounding to every float tensor a
    top-level node computes; return how many tensors it touches. A tensor whose type shape inference cannot tell
    is left alone (it is counted out, not guessed). Each rounding draws from its own seed, its count."""
    onnx = require("onnx", purpose="the noise floor's rounding check", hint="pip install onnx")
    float_type = onnx.TensorProto.FLOAT
    graph = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output, *graph.input]}
    nodes, count = [], 0
    for node in model.graph.node:
        nodes.append(node)
        if node.op_type == "Constant":  # weights, not computed values: the same in every implementation
            continue
        for i, name in enumerate(list(node.output)):
            if types.get(name) != float_type:
                continue
            count += 1
            raw, factor = f"{name}__trtverify_exact", f"{name}__trtverify_rounding"
            node.output[i] = raw
            nodes.append(onnx.helper.make_node("RandomNormalLike", [raw], [factor], mean=1.0, scale=ROUNDING,
                                               seed=float(count), dtype=float_type))
            nodes.append(onnx.helper.make_node("Mul", [raw, factor], [name]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return count


def ort_outputs(model: Any, x: np.ndarray, batch_size: int, *, optimize: bool) -> np.ndarray:
    """ONNX Runtime on the CPU, ``model`` a path or serialized bytes, graph optimizations all on or all off."""
    ort = require("onnxruntime", purpose="the noise floor", hint="pip install onnxruntime")
    options = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([np.asarray(session.run(None, {name: x[i:i + batch_size]})[0])
                           for i in range(0, len(x), batch_size)])


def rounding_check(onnx_path: str, x: np.ndarray, optimized: np.ndarray, batch_size: int,
                   kind: str) -> dict[str, Any]:
    """The third self-check: ONNX Runtime with one rounding per layer vs ONNX Runtime as it is (``optimized``)."""
    onnx = require("onnx", purpose="the noise floor's rounding check", hint="pip install onnx")
    model = onnx.load(onnx_path)
    count = with_rounding(model)
    rounded = ort_outputs(model.SerializeToString(), x, batch_size, optimize=True)
    return {**self_check(optimized, rounded, kind), "tensors": count}
