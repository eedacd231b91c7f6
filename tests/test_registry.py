"""The backend registry (scripts/trtverify/backends/registry.py) is the one place that says what a backend is.

A test registers a backend the way a developer adds one (docs/architecture.md, "Where each kind of change goes"):
in a copy of the workflow, one entry in the registry, its runner module, its name in the schema's enum. The toy
backend is ONNX Runtime under another name; it must then appear in the DAG, in the comparison and in the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, copy_workflow
from trtverify.backends import registry

TINY = REPO / "tests" / "data" / "config-tiny.yaml"
TOY_ENTRY = '    Backend("toy", "Toy (ONNX Runtime under another name)", "model.onnx", "tensorrt", runner="toy",\n' \
            '            generic_rule=True, resources={"mem_mb": 1000, "runtime": 10}),\n'
TOY_RUNNER = '"""A toy backend: ONNX Runtime under another name."""\n\n' \
             'from .onnxruntime import OnnxRuntimeRunner\n\n\n' \
             'class ToyRunner(OnnxRuntimeRunner):\n    name = "toy"\n\n\nRUNNER = ToyRunner\n'


def test_the_schema_enum_is_the_registry() -> None:
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert tuple(schema["$defs"]["backend"]["enum"]) == registry.CONFIG_NAMES
    # The speed-ups' baseline: a backend that needs no engine, so it can be timed on any machine.
    baseline = schema["properties"]["benchmark"]["properties"]["baseline"]["enum"]
    assert set(baseline) <= {b for b in registry.BENCH_RUNNERS if not registry.BY_NAME[b].needs_engine}


def test_every_runner_module_exists() -> None:
    for entry in registry.BACKENDS:
        assert entry.runner is None or (REPO / "scripts" / "trtverify" / "backends" / f"{entry.runner}.py").is_file()


def test_the_registry_loads_without_numpy() -> None:
    """rules/common.smk loads it by its path in Snakemake's process: no numpy, no framework, nothing of the package."""
    code = ("import sys, importlib.util; sys.modules['numpy'] = None; "
            f"spec = importlib.util.spec_from_file_location('r', {str(registry.__file__)!r}); "
            "m = importlib.util.module_from_spec(spec); sys.modules['r'] = m; spec.loader.exec_module(m); "
            "print(m.prediction_names(['tensorrt_cpp'], ['npy', 'csv'], ['fp16']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['tensorrt_cpp_fp16', 'tensorrt_cpp_csv_fp16']"


def test_names_follow_the_config_order_then_precision_then_format() -> None:
    names = registry.prediction_names(["onnxruntime", "tensorrt_cpp", "savedmodel", "tensorrt"], ["csv", "npy"],
                                      ["fp32", "fp16"])
    assert names == ["onnxruntime", "tensorrt_cpp_csv_fp32", "tensorrt_cpp_fp32", "tensorrt_cpp_csv_fp16",
                     "tensorrt_cpp_fp16", "savedmodel", "tensorrt_fp32", "tensorrt_fp16"]
    assert registry.prediction_names(["tensorrt_cpp"], ["npy"], ["tf32"]) == ["tensorrt_cpp_tf32"]


def test_parity_pairs_and_labels_come_from_the_entries() -> None:
    names = ["savedmodel", "tensorrt_fp16", "tensorrt_cpp_fp16", "tensorrt_cpp_csv_fp16", "tensorrt_cpp_csv_fp32"]
    assert registry.parity_pairs(names) == [("tensorrt_fp16", "tensorrt_cpp_fp16"),
                                            ("tensorrt_cpp_fp16", "tensorrt_cpp_csv_fp16")]
    assert registry.label("tensorrt_cpp_csv_fp16") == "TensorRT, C++ program (CSV input), fp16"
    assert registry.label("savedmodel") == "TensorFlow SavedModel (the reference)"
    assert registry.label("unregistered_fp16") == "unregistered_fp16"


def register_toy(root: Path) -> None:
    """What adding a backend takes: its entry, its runner module, its name in the schema's enum."""
    path = root / "scripts" / "trtverify" / "backends" / "registry.py"
    text = path.read_text()
    assert text.count("\n)\nBY_NAME") == 1
    path.write_text(text.replace("\n)\nBY_NAME", "\n" + TOY_ENTRY + ")\nBY_NAME"))
    (path.parent / "toy.py").write_text(TOY_RUNNER)
    schema = root / "config" / "schema.yaml"
    schema.write_text(schema.read_text().replace("enum: [savedmodel, onnxruntime, tensorrt, tensorrt_cpp]}",
                                                  "enum: [savedmodel, onnxruntime, tensorrt, tensorrt_cpp, toy]}"))


def tiny_onnx(path: Path) -> None:
    """An 8x8x1 -> 3 softmax classifier made with onnx.helper (no TensorFlow)."""
    from onnx import TensorProto, helper, numpy_helper, save
    weights = np.random.default_rng(0).normal(0, 1, (64, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [numpy_helper.from_array(weights, "w")])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def run(root: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A step program of the copy, so that it reads the copy's registry."""
    proc = subprocess.run([sys.executable, str(root / "scripts" / script), *args], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_a_registered_toy_backend_appears_in_the_dag_the_comparison_and_the_report(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    (tmp_path / "wf").mkdir()
    root = copy_workflow(tmp_path / "wf")
    register_toy(root)
    overlay = tmp_path / "toy.yaml"
    overlay.write_text("backends: [savedmodel, onnxruntime, toy]\n")
    dag = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "--configfile", str(TINY),
                          str(overlay)], cwd=root, capture_output=True, text=True)
    assert dag.returncode == 0, dag.stderr[-3000:]
    assert "rule predict_toy:" in dag.stdout and "--backend toy --artifact results/tiny/model.onnx" in dag.stdout
    assert "--prediction toy=results/tiny/predictions/toy.npy" in dag.stdout

    data = tmp_path / "data"
    data.mkdir()
    tiny_onnx(data / "model.onnx")
    rng = np.random.default_rng(1)
    np.save(data / "x.npy", rng.uniform(0, 1, (20, 8, 8, 1)).astype(np.float32))
    np.save(data / "y.npy", rng.integers(0, 3, 20))
    for name in ("onnxruntime", "toy"):
        run(root, "predict.py", "--backend", name, "--artifact", str(data / "model.onnx"), "--samples",
            str(data / "x.npy"), "--providers", "CPUExecutionProvider", "--output", str(data / f"{name}.npy"),
            "--info", str(data / f"{name}.json"))
    assert json.loads((data / "toy.json").read_text())["backend"] == "toy"
    np.save(data / "savedmodel.npy", np.load(data / "onnxruntime.npy"))  # the reference: the same outputs
    run(root, "compare.py", "--model", "tiny", "--labels", str(data / "y.npy"), "--samples", str(data / "x.npy"),
        *[a for n in ("savedmodel", "onnxruntime", "toy") for a in ("--prediction", f"{n}={data / n}.npy")],
        "--output", str(data / "comparison.json"), "--per-sample", str(data / "per_sample.csv"))
    cmp = json.loads((data / "comparison.json").read_text())
    assert list(cmp["backends"]) == ["savedmodel", "onnxruntime", "toy"]
    assert cmp["pairs"]["savedmodel vs toy"]["verdict"] == "identical"
    out = tmp_path / "report"
    run(root, "report.py", "--comparison", f"tiny={data / 'comparison.json'}", "--markdown", str(out / "report.md"),
        "--text", str(out / "report.txt"), "--summary", str(out / "summary.json"), "--plots", str(out / "plots"))
    report = (out / "report.md").read_text()
    assert "toy = Toy (ONNX Runtime under another name)" in report and "savedmodel vs toy" in report
