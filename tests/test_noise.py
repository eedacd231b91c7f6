"""The noise floor's parts (trtverify.noise): the rounding check really adds one float32 rounding per computed tensor
and nothing else, and the floor is measured on the samples where two implementations differ most."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from trtverify.outputs import OutputProfile  # noqa: E402
from trtverify.noise import ROUNDING, floor_of, ort_outputs, rounding_check, sensitive_samples, with_rounding  # noqa: E402


def deep_model(path: Path, layers: int = 6, width: int = 16, seed: int = 0) -> Path:
    """A chain of MatMul + Tanh layers (weights drawn once), then a Softmax: every node computes a float tensor."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = rng.normal(0, 1.5 / np.sqrt(width), (width, width)).astype(np.float32)
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, w.shape, w.ravel()))
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Tanh", [f"m{i}"], [f"t{i}"])]
        prev = f"t{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["y"], axis=1))
    graph = helper.make_graph(nodes, "deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return deep_model(tmp_path / "deep.onnx")


def test_every_computed_float_tensor_gets_a_rounding(model: Path) -> None:
    m = onnx.load(model)
    computed = sum(len(n.output) for n in m.graph.node)
    assert with_rounding(m) == computed == 13
    onnx.checker.check_model(m)
    assert [n.op_type for n in m.graph.node].count("RandomNormalLike") == computed
    assert m.graph.output[0].name == "y"  # the graph's output keeps its name (the Mul after Softmax writes it)


def test_integer_tensors_and_constants_are_left_alone(tmp_path: Path) -> None:
    nodes = [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.0])),
             helper.make_node("Mul", ["x", "c"], ["y"]), helper.make_node("Shape", ["y"], ["s"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3]),
                               helper.make_tensor_value_info("s", TensorProto.INT64, [2])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert with_rounding(m) == 1  # only y: the Constant holds a weight, the Shape an int64


def test_one_rounding_moves_outputs_by_about_the_unit_roundoff(model: Path) -> None:
    x = np.random.default_rng(1).normal(size=(64, 16)).astype(np.float32)
    exact = ort_outputs(str(model), x, 32, optimize=True)
    check = rounding_check(str(model), x, exact, 32, "probabilities")
    # 13 roundings of relative size 2^-24 through tanh layers of gain ~1.5: more than one rounding's worth of the
    # largest output, far less than a defect (1e-3)
    assert ROUNDING * exact.max() < check["max_abs_diff"] < 1e-5
    assert check["tensors"] == 13
    again = rounding_check(str(model), x, exact, 32, "probabilities")
    assert again["max_abs_diff"] == check["max_abs_diff"]  # seeded: the same floor on a rerun


def test_the_most_sensitive_samples_are_chosen() -> None:
    a = np.zeros((10, 3), np.float32)
    b = a.copy()
    b[7, 1], b[2, 0], b[5, 2] = 3e-3, 1e-3, 2e-3
    assert sensitive_samples(a, b, 2).tolist() == [5, 7]
    assert sensitive_samples(a, a, 3).tolist() == [0, 1, 2]  # no difference anywhere: the first ones


def test_the_floor_is_the_largest_check_and_says_where_it_was_measured() -> None:
    checks = {"a": {"max_abs_diff": 1e-6, "mean_abs_diff": 1e-7}, "b": {"max_abs_diff": 3e-6, "mean_abs_diff": 1e-7}}
    profile = OutputProfile(kind="other", how="config: test", scale=2.0, spread=0.5, predicted_classes=None,
                            samples=100)
    floor = floor_of(checks, 64, profile, "the 64 of 100 samples where savedmodel and onnxruntime differ most")
    assert floor["floor"] == 3e-6 and floor["floor_normalised"] == 1.5e-6 and "differ most" in floor["selection"]
