"""The step CLIs' handling of bad input, as the project standard demands.

"Bad input (a missing or corrupt model, a truncated .npy, a wrong shape, NaN outputs, a bad config value) ends in a
message that says what is wrong and what to do, a failed step, and no half-written artifact."

Every case runs the script as a rule does (a subprocess) and checks all three promises: a non-zero exit status; a
last stderr line ``<script>: error: ...`` that names the problem (and the remedy, where the script gives one) with no
traceback anywhere in stderr; and no output file, nor any temporary file, in the output directory.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import leftovers, run_script

N = 60  # samples in the synthetic data, as many as tiny_model keeps


# --- helpers ----------------------------------------------------------------------------------------------------------


def fails(proc, script: str, *words: str) -> str:  # type: ignore[no-untyped-def]
    """Assert the step failed with one error line naming ``words``; return that line."""
    log = proc.stderr[-4000:]
    assert proc.returncode != 0, f"{script} succeeded on bad input:\n{log}"
    assert "Traceback" not in proc.stderr, f"{script} printed a traceback:\n{log}"
    lines = proc.stderr.rstrip("\n").splitlines()
    last = lines[-1] if lines else ""
    assert last.startswith(f"{script}: error: "), f"the last stderr line is not {script}'s error:\n{log}"
    for word in words:
        assert word in last, f"{word!r} is not in the error line:\n{last}"
    return last


def nothing_written(out: Path, *outputs: Path) -> None:
    """No output file, no temporary file: the output directory holds nothing at all."""
    for path in outputs:
        assert not path.exists(), f"{path} was written by a failed step"
    assert leftovers(out) == []
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == [], f"{out} is not empty"


def cut(src: Path, dst: Path, keep: int) -> Path:
    """Copy the first ``keep`` bytes of ``src`` (a negative ``keep`` drops that many from the end)."""
    data = src.read_bytes()
    dst.write_bytes(data[:keep])
    return dst


# Ways a .npy gets cut off, and the words load_npy uses for each.
TRUNCATIONS = {
    "empty": (0, "is empty (0 bytes)"),
    "in the magic string": (4, "not even a .npy header"),
    "in the header": (40, "truncated inside its header"),
    "in the data": (-100, "its header promises"),
}


def fake_binary(directory: Path, name: str, body: str) -> Path:
    """An executable Python script answering trt_infer's interface (--engine E --input X --input-format F
    --output O [--batch B]); ``body`` runs with ``args`` (the options), ``x`` (the input) and ``save(array)``."""
    path = directory / name
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys\nimport numpy as np\n"
        "args = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
        "x = np.load(args['--input'], allow_pickle=False)\n"
        "def save(array):\n"
        "    with open(args['--output'], 'wb') as fh:  # trt_infer writes exactly the path it is given\n"
        "        np.save(fh, array)\n"
        + body + "\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def nan_onnx(path: Path) -> Path:
    """A valid ONNX model, images (N, 8, 8, 1) -> (N, 10), whose every row holds one NaN (log -1) and one -Inf
    (log 0): Log(MatMul(flatten(x), zeros) + [-1, 0, 1, ..., 1])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers = [
        numpy_helper.from_array(np.array([-1, 64], np.int64), "flat_shape"),
        numpy_helper.from_array(np.zeros((64, 10), np.float32), "weights"),
        numpy_helper.from_array(np.array([-1, 0] + [1] * 8, np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("Reshape", ["images", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weights"], ["zeros"]),
        helper.make_node("Add", ["zeros", "bias"], ["logits"]),
        helper.make_node("Log", ["logits"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes, "nan_model",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 8, 8, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


# --- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The output directory of the step under test, empty."""
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    """Where the bad inputs go (never the output directory)."""
    d = tmp_path / "bad"
    d.mkdir()
    return d


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """Synthetic test data for the steps that do not run a model: samples (N, 8, 8, 1) float32, labels (N,) int64,
    and two backends' softmax predictions (N, 10) float32."""
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    paths = {name: d / f"{name}.npy" for name in ("samples", "labels", "savedmodel", "onnxruntime")}
    np.save(paths["samples"], rng.random((N, 8, 8, 1), dtype=np.float32))
    np.save(paths["labels"], rng.integers(0, 10, N).astype(np.int64))
    for name in ("savedmodel", "onnxruntime"):
        logits = rng.normal(size=(N, 10))
        np.save(paths[name], (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32))
    return paths


@pytest.fixture
def bad_samples(tiny_model: dict[str, Path], bad: Path) -> dict[str, Path]:
    """tiny_model's samples gone wrong: a wrong image shape, float64, cut off in the data."""
    x = np.load(tiny_model["samples"])
    paths = {"wrong_shape": bad / "x_7x7.npy", "float64": bad / "x_f64.npy", "truncated": bad / "x_cut.npy"}
    np.save(paths["wrong_shape"], np.zeros((5, 7, 7, 1), np.float32))
    np.save(paths["float64"], x.astype(np.float64))
    cut(tiny_model["samples"], paths["truncated"], -100)
    return paths


# --- convert_onnx.py --------------------------------------------------------------------------------------------------


def convert(saved_model: Path, samples: Path, out: Path, labels: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_script("convert_onnx.py", "--saved-model", saved_model, "--samples", samples, "--labels", labels,
                      "--opset", "17", *extra, "--output", out / "model.onnx", "--check", out / "onnx_check.json",
                      check=False)


def test_convert_missing_saved_model(tiny_model: dict[str, Path], out: Path, bad: Path) -> None:
    fails(convert(bad / "no_such_model", tiny_model["samples"], out, tiny_model["labels"]), "convert_onnx.py",
          f"SavedModel directory {bad / 'no_such_model'} does not exist", "run the train (or import_model) step")
    nothing_written(out)


def test_convert_directory_without_saved_model_pb(tiny_model: dict[str, Path], out: Path, bad: Path) -> None:
    fails(convert(bad, tiny_model["samples"], out, tiny_model["labels"]), "convert_onnx.py",
          f"{bad} is not a SavedModel directory (no saved_model.pb)", "model.export(dir)")
    nothing_written(out)


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_convert_corrupt_saved_model(tiny_model: dict[str, Path], out: Path, bad: Path, damage: str) -> None:
    model = bad / "saved_model"
    shutil.copytree(tiny_model["saved_model"], model)
    pb = model / "saved_model.pb"
    if damage == "truncated":
        cut(pb, pb, 1000)
    else:  # same size, the middle overwritten
        data = bytearray(pb.read_bytes())
        data[100:-100] = b"\xff" * (len(data) - 200)
        pb.write_bytes(bytes(data))
    fails(convert(model, tiny_model["samples"], out, tiny_model["labels"]), "convert_onnx.py",
          f"tf2onnx failed on {model}", "saved_model.pb", "Re-export the SavedModel", "TRTVERIFY_VERBOSE=1")
    nothing_written(out)


def test_convert_samples_of_the_wrong_shape(tiny_model: dict[str, Path], bad_samples: dict[str, Path],
                                            out: Path) -> None:
    fails(convert(tiny_model["saved_model"], bad_samples["wrong_shape"], out, tiny_model["labels"]), "convert_onnx.py",
          "expects samples of shape (8, 8, 1)", "got (5, 7, 7, 1)", "the test data does not fit this model")
    nothing_written(out)


def test_convert_refuses_float64_samples_as_documented(tiny_model: dict[str, Path], bad_samples: dict[str, Path],
                                                       out: Path) -> None:
    assert "other dtypes are refused, not cast" in run_script("convert_onnx.py", "--help").stdout
    fails(convert(tiny_model["saved_model"], bad_samples["float64"], out, tiny_model["labels"]), "convert_onnx.py",
          f"test samples file {bad_samples['float64']} has dtype float64, expected float32")
    nothing_written(out)


def test_convert_truncated_samples(tiny_model: dict[str, Path], bad_samples: dict[str, Path], out: Path) -> None:
    size = bad_samples["truncated"].stat().st_size
    fails(convert(tiny_model["saved_model"], bad_samples["truncated"], out, tiny_model["labels"]), "convert_onnx.py",
          f"test samples file {bad_samples['truncated']} is truncated: {size} bytes, its header promises "
          f"{size + 100}", "regenerate it")
    nothing_written(out)


def test_convert_writes_the_model_of_tf2onnx_command_line(tiny_model: dict[str, Path], tmp_path: Path) -> None:
    """convert_onnx starts tf2onnx's main() with its own garbage-collector settings (for memory): the model must be
    the one ``python -m tf2onnx.convert`` writes. Not byte for byte (tf2onnx names the constants it folds in a
    per-process order): the same ops, opset, inputs, outputs, weights and outputs on the test samples."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    cli = tmp_path / "cli.onnx"
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(tiny_model["saved_model"]),
                    "--output", str(cli), "--opset", "17", "--signature_def", "serving_default"], check=True,
                   capture_output=True)
    ours, theirs = onnx.load(tiny_model["onnx"]), onnx.load(cli)

    def signature(m: onnx.ModelProto) -> tuple[object, ...]:
        weights = sorted(numpy_helper.to_array(t).tobytes() for t in m.graph.initializer)
        return (sorted(n.op_type for n in m.graph.node), [(o.domain, o.version) for o in m.opset_import],
                [str(v.type) for v in (*m.graph.input, *m.graph.output)], weights)

    assert signature(ours) == signature(theirs)
    x = np.load(tiny_model["samples"])
    results = []
    for path in (tiny_model["onnx"], cli):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        results.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    np.testing.assert_array_equal(results[0], results[1])


def test_convert_records_the_noise_floor_and_its_verdict(tiny_model: dict[str, Path]) -> None:
    check = json.loads(tiny_model["check"].read_text())
    floor = check["noise_floor"]
    assert floor["samples"] == min(64, check["samples"])
    assert set(floor["checks"]) == {"savedmodel batch 1 vs batch 256", "onnxruntime optimized vs unoptimized",
                                    "onnxruntime with one float32 rounding per layer"}
    assert floor["checks"]["onnxruntime with one float32 rounding per layer"]["tensors"] > 0
    assert "differ most" in floor["selection"]
    assert floor["floor"] == max(c["max_abs_diff"] for c in floor["checks"].values())
    assert floor["output_kind"] == check["output"]["kind"] == "probabilities" and floor["scale"] == 1.0
    assert check["verdict"] in ("identical", "consistent", "drift", "inconclusive")
    assert check["tolerance"]["floor"] == floor["floor"] and check["tolerance"]["precision"] == "fp32"
    assert check["conversion_aids"] == []  # tf2onnx alone converts it (test_bad_inputs has one that needs aids)


def predict_both(saved_model: Path, onnx_model: Path, x: np.ndarray, out: Path, batch: int = 256) -> list[str]:
    """The SavedModel's and ONNX Runtime's (CPU) predictions as .npy, and compare.py's --prediction options."""
    from trtverify.backends import open_runner

    options: list[str] = []
    for name, artifact, kwargs in (("savedmodel", saved_model, {}),
                                   ("onnxruntime", onnx_model, {"providers": ["CPUExecutionProvider"]})):
        with open_runner(name, str(artifact), **kwargs) as runner:
            np.save(out / f"{name}.npy", np.concatenate([runner.infer(x[i:i + batch])
                                                         for i in range(0, len(x), batch)]))
        options += ["--prediction", f"{name}={out / f'{name}.npy'}"]
    return options


def test_convert_and_compare_judge_with_one_policy(tiny_model: dict[str, Path], out: Path) -> None:
    """The conversion gate and compare.py, given the same two outputs, reach the same tolerance and verdict."""
    predictions = predict_both(tiny_model["saved_model"], tiny_model["onnx"], np.load(tiny_model["samples"]), out)
    run_script("compare.py", "--model", "tiny", "--labels", tiny_model["labels"], "--samples", tiny_model["samples"],
               *predictions, "--noise-floor", tiny_model["check"],
               "--output", out / "comparison.json", "--per-sample", out / "per_sample.csv")
    check = json.loads(tiny_model["check"].read_text())
    pair = json.loads((out / "comparison.json").read_text())["pairs"]["savedmodel vs onnxruntime"]
    assert pair["tolerance"] == check["tolerance"]
    assert pair["verdict"] == check["verdict"] and pair["reason"] == check["reason"]


MOBILENET = """
import sys, keras, numpy as np
head, out = sys.argv[1], sys.argv[2]
keras.utils.set_random_seed(0)
m = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10,
                                   classifier_activation="softmax" if head == "softmax" else None)
rng = np.random.default_rng(0)
coarse = rng.uniform(0, 1, (128, 4, 4, 3))   # low-frequency images with their own colours: pooled features differ
x = (np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2) * rng.uniform(0.2, 3, (128, 1, 1, 3))
     + rng.normal(0, 1, (128, 1, 1, 3))).astype(np.float32)
for layer in m.layers:   # random gammas and betas, moving statistics those of these images (else ReLU6 saturates)
    if isinstance(layer, keras.layers.BatchNormalization):
        g, b, mu, var = layer.get_weights()
        layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.2, b.shape), mu, var])
        layer.momentum = 0.0
m(x, training=True)
m.export(out + "/saved_model", verbose=False)
np.save(out + "/x.npy", x)
np.save(out + "/y.npy", np.asarray(m(x)).argmax(1).astype(np.int64))
"""


@pytest.mark.slow
@pytest.mark.parametrize("head,kind", [("softmax", "probabilities"), ("logits", "logits")])
def test_a_correct_mobilenet_conversion_passes_both_gates(tmp_path: Path, head: str, kind: str) -> None:
    """Issue 11: a correct FP32 conversion of a deep BN-heavy net passes (it failed one gate or the other before),
    and a drift of TF32's size (1e-2 of the spread) on the same outputs is caught as fp32."""
    import subprocess

    subprocess.run([sys.executable, "-c", MOBILENET, head, str(tmp_path)], check=True, capture_output=True)
    files = {k: tmp_path / v for k, v in (("sm", "saved_model"), ("x", "x.npy"), ("y", "y.npy"),
                                          ("onnx", "model.onnx"), ("check", "onnx_check.json"))}
    run_script("convert_onnx.py", "--saved-model", files["sm"], "--samples", files["x"], "--labels", files["y"],
               "--opset", "17", "--batch-size", "32", "--output", files["onnx"], "--check", files["check"])
    check = json.loads(files["check"].read_text())
    assert check["output"]["kind"] == kind and check["verdict"] in ("identical", "consistent", "drift")
    assert check["noise_floor"]["floor"] > 0
    predictions = predict_both(files["sm"], files["onnx"], np.load(files["x"]), tmp_path, batch=32)
    compare = ["compare.py", "--model", "mobilenet", "--labels", files["y"], "--samples", files["x"],
               "--noise-floor", files["check"], "--per-sample", tmp_path / "per_sample.csv"]
    run_script(*compare, *predictions, "--output", tmp_path / "comparison.json")
    pair = json.loads((tmp_path / "comparison.json").read_text())["pairs"]["savedmodel vs onnxruntime"]
    assert pair["verdict"] in ("identical", "consistent", "drift"), pair["reason"]
    ort = np.load(tmp_path / "onnxruntime.npy")
    scale = json.loads((tmp_path / "comparison.json").read_text())["output"]["scale"]
    drifted = ort + np.float32(1e-2 * scale) * np.random.default_rng(1).standard_normal(ort.shape).astype(np.float32)
    if kind == "probabilities":
        drifted = np.abs(drifted) / np.abs(drifted).sum(axis=1, keepdims=True)
    np.save(tmp_path / "drifted.npy", drifted.astype(np.float32))
    run_script(*compare, "--prediction", f"savedmodel={tmp_path / 'savedmodel.npy'}",
               "--prediction", f"onnxruntime={tmp_path / 'drifted.npy'}", "--output", tmp_path / "drifted.json")
    assert json.loads((tmp_path / "drifted.json").read_text())["pairs"]["savedmodel vs onnxruntime"]["verdict"] \
        == "mismatch"
    print(f"{head}: floor {check['noise_floor']['floor']:.3g} ({check['noise_floor']['checks']}), conversion max "
          f"|d| {check['max_abs_diff']:.3g}, compare max |d| {pair['metrics']['max_abs_diff']:.3g}, "
          f"atol {pair['tolerance']['atol']:.3g}, verdict {pair['verdict']}")


def test_convert_mismatch_names_pair_figure_bound_and_remedy(tiny_model: dict[str, Path], out: Path) -> None:
    strict = json.dumps({"fp32": {"atol": 0, "rtol": 0, "max_outside_share": 0}})
    proc = convert(tiny_model["saved_model"], tiny_model["samples"], out, tiny_model["labels"],
                   "--tolerances", strict)
    check = json.loads(tiny_model["check"].read_text())
    if check["verdict"] == "identical":
        pytest.skip("the two runtimes agree bit for bit here: nothing can exceed a zero bound")
    fails(proc, "convert_onnx.py", "conversion check, savedmodel vs onnxruntime (CPU), fp32: mismatch",
          "of elements outside atol 0", "at most 0 may be", "compare.tolerances.fp32.atol:")
    nothing_written(out)


# --- predict.py -------------------------------------------------------------------------------------------------------


def predict(backend: str, artifact: Path, samples: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_script("predict.py", "--backend", backend, "--artifact", artifact, "--samples", samples, *extra,
                      "--output", out / "p.npy", "--info", out / "p.json", check=False)


ARTIFACT = {"savedmodel": "saved_model", "onnxruntime": "onnx"}


@pytest.mark.parametrize("backend", ["savedmodel", "onnxruntime"])
def test_predict_missing_model(tiny_model: dict[str, Path], out: Path, bad: Path, backend: str) -> None:
    missing = bad / ("saved_model" if backend == "savedmodel" else "model.onnx")
    fails(predict(backend, missing, tiny_model["samples"], out), "predict.py",
          f"{backend}: {missing} does not exist", "run the step that writes it")
    nothing_written(out)


def test_predict_corrupt_saved_model(tiny_model: dict[str, Path], out: Path, bad: Path) -> None:
    model = bad / "saved_model"
    shutil.copytree(tiny_model["saved_model"], model)
    cut(model / "saved_model.pb", model / "saved_model.pb", 1000)
    fails(predict("savedmodel", model, tiny_model["samples"], out), "predict.py",
          f"savedmodel: cannot load {model} as a SavedModel", "saved_model.pb", "re-export it")
    nothing_written(out)


@pytest.mark.parametrize("damage", ["random bytes", "text", "cut in half"])
def test_predict_corrupt_onnx_model(tiny_model: dict[str, Path], out: Path, bad: Path, damage: str) -> None:
    model = bad / "model.onnx"
    if damage == "random bytes":
        model.write_bytes(np.random.default_rng(1).bytes(3000))
    elif damage == "text":
        model.write_text("this is not an ONNX model\n")
    else:
        cut(tiny_model["onnx"], model, tiny_model["onnx"].stat().st_size // 2)
    fails(predict("onnxruntime", model, tiny_model["samples"], out), "predict.py",
          f"onnxruntime: cannot load {model}", "the file is not a valid ONNX model: re-run the conversion")
    nothing_written(out)


@pytest.mark.parametrize("backend", ["savedmodel", "onnxruntime"])
def test_predict_samples_of_the_wrong_shape(tiny_model: dict[str, Path], bad_samples: dict[str, Path], out: Path,
                                            backend: str) -> None:
    fails(predict(backend, tiny_model[ARTIFACT[backend]], bad_samples["wrong_shape"], out), "predict.py",
          f"{backend}: input 'images' expects samples of shape (8, 8, 1)", "got (5, 7, 7, 1)",
          "the test data does not fit this model")
    nothing_written(out)


@pytest.mark.parametrize("backend", ["savedmodel", "onnxruntime"])
def test_predict_float64_samples(tiny_model: dict[str, Path], bad_samples: dict[str, Path], out: Path,
                                 backend: str) -> None:
    fails(predict(backend, tiny_model[ARTIFACT[backend]], bad_samples["float64"], out), "predict.py",
          f"test samples {bad_samples['float64']} have dtype float64; the models take float32")
    nothing_written(out)


@pytest.mark.parametrize("backend", ["savedmodel", "onnxruntime"])
@pytest.mark.parametrize("where", list(TRUNCATIONS))
def test_predict_truncated_samples(tiny_model: dict[str, Path], out: Path, bad: Path, backend: str,
                                   where: str) -> None:
    keep, words = TRUNCATIONS[where]
    samples = cut(tiny_model["samples"], bad / "x.npy", keep)
    fails(predict(backend, tiny_model[ARTIFACT[backend]], samples, out), "predict.py",
          f"test samples file {samples}", words, "regenerate it")
    nothing_written(out)


def test_predict_refuses_nan_predictions_and_counts_them(tiny_model: dict[str, Path], out: Path, bad: Path) -> None:
    model = nan_onnx(bad / "nan.onnx")
    n = len(np.load(tiny_model["samples"]))
    fails(predict("onnxruntime", model, tiny_model["samples"], out, "--providers", "CPUExecutionProvider"),
          "predict.py", f"onnxruntime produced {n} NaN and {n} Inf values in {n} samples (first: sample 0)",
          "nothing was written", "Check the model/engine")
    nothing_written(out)


@pytest.mark.parametrize("providers", ["FooExecutionProvider", "FooExecutionProvider,CPUExecutionProvider",
                                       "CPUExecutionProvider,CUDAExecutionprovider"])
def test_predict_unknown_provider_is_an_error(tiny_model: dict[str, Path], out: Path, providers: str) -> None:
    """A misspelt provider is a config error, even when another provider in the list would run."""
    unknown = [p for p in providers.split(",") if p != "CPUExecutionProvider"][0]
    fails(predict("onnxruntime", tiny_model["onnx"], tiny_model["samples"], out, "--providers", providers),
          "predict.py", f"onnxruntime: {unknown} is not an ONNX Runtime execution provider",
          "available here: ", "CPUExecutionProvider", "Change onnxruntime.providers in config.yaml")
    nothing_written(out)


def test_predict_provider_not_available_here(tiny_model: dict[str, Path], out: Path) -> None:
    """A real provider this machine lacks (Core ML exists only on Apple systems), and nothing to fall back to."""
    fails(predict("onnxruntime", tiny_model["onnx"], tiny_model["samples"], out, "--providers",
                  "CoreMLExecutionProvider"), "predict.py",
          "onnxruntime: providers CoreMLExecutionProvider requested; available here: ", "CPUExecutionProvider",
          "Change onnxruntime.providers in config.yaml")
    nothing_written(out)


def test_predict_bad_batch_size(tiny_model: dict[str, Path], out: Path) -> None:
    fails(predict("onnxruntime", tiny_model["onnx"], tiny_model["samples"], out, "--batch-size", "0"),
          "predict.py", "--batch-size must be positive")
    nothing_written(out)


# --- export_csv.py ----------------------------------------------------------------------------------------------------


def export_csv(samples: Path, labels: Path, out: Path):  # type: ignore[no-untyped-def]
    return run_script("export_csv.py", "--samples", samples, "--labels", labels, "--samples-csv", out / "x.csv",
                      "--labels-csv", out / "y.csv", check=False)


@pytest.mark.parametrize("where", list(TRUNCATIONS))
def test_export_csv_truncated_samples(data: dict[str, Path], out: Path, bad: Path, where: str) -> None:
    keep, words = TRUNCATIONS[where]
    samples = cut(data["samples"], bad / "x.npy", keep)
    fails(export_csv(samples, data["labels"], out), "export_csv.py", f"test samples file {samples}", words,
          "regenerate it")
    nothing_written(out, out / "x.csv", out / "y.csv")


def test_export_csv_truncated_labels(data: dict[str, Path], out: Path, bad: Path) -> None:
    labels = cut(data["labels"], bad / "y.npy", -8)
    fails(export_csv(data["samples"], labels, out), "export_csv.py", f"test labels file {labels} is truncated",
          "regenerate it")
    nothing_written(out, out / "x.csv", out / "y.csv")


def test_export_csv_labels_do_not_match_samples(data: dict[str, Path], out: Path, bad: Path) -> None:
    np.save(bad / "y.npy", np.zeros(N - 1, np.int64))
    fails(export_csv(data["samples"], bad / "y.npy", out), "export_csv.py",
          f"has {N} samples but {bad / 'y.npy'} has {N - 1} labels")
    nothing_written(out, out / "x.csv", out / "y.csv")


# --- predict_cpp.py, with fake trt_infer binaries ---------------------------------------------------------------------


def predict_cpp(binary: Path, data: dict[str, Path], out: Path, bad: Path):  # type: ignore[no-untyped-def]
    engine = bad / "fp32.trt"
    engine.write_bytes(b"not read by the fakes")
    return run_script("predict_cpp.py", "--binary", binary, "--engine", engine, "--input", data["samples"],
                      "--samples", data["samples"], "--output", out / "p.npy", "--info", out / "p.json", check=False)


def test_predict_cpp_relays_the_binary_error(data: dict[str, Path], out: Path, bad: Path) -> None:
    binary = bad / "trt_infer"
    binary.write_text("#!/bin/sh\n"
                      "echo 'trt_infer: cannot deserialize the engine (built by another TensorRT version?)' >&2\n"
                      "exit 1\n")
    binary.chmod(0o755)
    proc = predict_cpp(binary, data, out, bad)
    fails(proc, "predict_cpp.py", "trt_infer failed with exit status 1: trt_infer: cannot deserialize the engine "
          "(built by another TensorRT version?)")
    nothing_written(out, out / "p.npy", out / "p.json")


def test_predict_cpp_refuses_nan_predictions(data: dict[str, Path], out: Path, bad: Path) -> None:
    binary = fake_binary(bad, "trt_infer", "p = np.full((len(x), 10), 0.1, np.float32)\n"
                                           "p[3, 2] = np.nan\np[7, :] = np.inf\nsave(p)")
    fails(predict_cpp(binary, data, out, bad), "predict_cpp.py",
          "trt_infer (npy input) produced 1 NaN and 10 Inf values in 2 samples (first: sample 3)",
          "nothing was written")
    nothing_written(out, out / "p.npy", out / "p.json")


@pytest.mark.parametrize("shape,expected", [("(len(x) - 1, 10)", f"({N - 1}, 10)"), ("(len(x),)", f"({N},)"),
                                            ("(len(x), 10, 1)", f"({N}, 10, 1)")])
def test_predict_cpp_refuses_predictions_of_the_wrong_shape(data: dict[str, Path], out: Path, bad: Path, shape: str,
                                                            expected: str) -> None:
    binary = fake_binary(bad, "trt_infer", f"save(np.full({shape}, 0.1, np.float32))")
    fails(predict_cpp(binary, data, out, bad), "predict_cpp.py",
          f"trt_infer (npy input) returned predictions of shape {expected} for {N} samples",
          "expected (samples, classes)")
    nothing_written(out, out / "p.npy", out / "p.json")


def test_predict_cpp_binary_that_writes_nothing(data: dict[str, Path], out: Path, bad: Path) -> None:
    binary = fake_binary(bad, "trt_infer", "print('done')")
    fails(predict_cpp(binary, data, out, bad), "predict_cpp.py",
          "trt_infer exited 0 but wrote nothing to its --output file", "rebuild it with the compile_cpp step")
    nothing_written(out, out / "p.npy", out / "p.json")


def test_predict_cpp_refuses_float64_predictions(data: dict[str, Path], out: Path, bad: Path) -> None:
    binary = fake_binary(bad, "trt_infer", "save(np.full((len(x), 10), 0.1))")
    fails(predict_cpp(binary, data, out, bad), "predict_cpp.py", "trt_infer wrote dtype float64, expected float32")
    nothing_written(out, out / "p.npy", out / "p.json")


def test_predict_cpp_binary_not_executable(data: dict[str, Path], out: Path, bad: Path) -> None:
    binary = bad / "trt_infer"
    binary.write_text("#!/bin/sh\nexit 0\n")  # not chmod +x: what a failed copy leaves
    fails(predict_cpp(binary, data, out, bad), "predict_cpp.py",
          f"{binary} is not an executable; run the compile_cpp step")
    nothing_written(out, out / "p.npy", out / "p.json")


# --- compile_cpp.py ---------------------------------------------------------------------------------------------------

CPP = Path(__file__).resolve().parents[1] / "cpp"
TENSORRT_HERE = any(Path(root, sub, "NvInfer.h").is_file()
                    for root in ("/usr", "/usr/local/tensorrt", "/opt/tensorrt", "/usr/local/cuda")
                    for sub in ("include", "include/x86_64-linux-gnu", "include/aarch64-linux-gnu"))


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """compile_cpp's build directory goes here (TMPDIR), to check that it is removed."""
    d = tmp_path / "scratch"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    monkeypatch.delenv("TensorRT_ROOT", raising=False)
    return d


def compile_cpp(out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_script("compile_cpp.py", "--source", CPP, *extra, "--output", out / "bin" / "trt_infer", check=False)


def test_compile_cpp_tensorrt_root_without_tensorrt(out: Path, bad: Path, scratch: Path) -> None:
    """TensorRT_ROOT is searched alone, so an empty one means no TensorRT on any machine: CMake configures the
    library only, and the step stops there (no build) with the CMake variable to set."""
    proc = compile_cpp(out, f"--cmake-args=-DTensorRT_ROOT={bad}")
    assert "TensorRT not found (set TensorRT_ROOT)" in proc.stderr  # CMake's own status line, relayed
    fails(proc, "compile_cpp.py", "CMake did not find TensorRT, so trt_infer cannot be built",
          "-DTensorRT_ROOT=<TensorRT install prefix>", "cpp.cmake_args", "config.yaml")
    assert "cmake --build" not in proc.stderr
    nothing_written(out)
    assert list(scratch.iterdir()) == [], "the build directory was left behind"


@pytest.mark.skipif(TENSORRT_HERE, reason="TensorRT's headers are installed here, so CMake would find them")
def test_compile_cpp_without_tensorrt_on_this_machine(out: Path, scratch: Path) -> None:
    fails(compile_cpp(out), "compile_cpp.py", "CMake did not find TensorRT", "-DTensorRT_ROOT=")
    nothing_written(out)
    assert list(scratch.iterdir()) == []


def test_compile_cpp_without_cmake(out: Path, bad: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(bad))  # an empty directory: no cmake (the interpreter is run by its full path)
    fails(compile_cpp(out), "compile_cpp.py", "cmake is not installed here", "install cmake")
    nothing_written(out)


def test_compile_cpp_missing_source(out: Path, bad: Path, scratch: Path) -> None:
    proc = run_script("compile_cpp.py", "--source", bad / "cpp", "--output", out / "bin" / "trt_infer", check=False)
    fails(proc, "compile_cpp.py", "cmake -S failed", str(bad / "cpp"), "does not exist")
    nothing_written(out)
    assert list(scratch.iterdir()) == []


# --- compare.py -------------------------------------------------------------------------------------------------------


def compare(data: dict[str, Path], out: Path, **predictions: Path):  # type: ignore[no-untyped-def]
    specs = [a for name, path in predictions.items() for a in ("--prediction", f"{name}={path}")]
    return run_script("compare.py", "--model", "tiny", "--labels", data["labels"], "--samples", data["samples"],
                      *specs, "--output", out / "comparison.json", "--per-sample", out / "per_sample.csv",
                      check=False)


def test_compare_missing_prediction_files(data: dict[str, Path], out: Path, bad: Path) -> None:
    proc = compare(data, out, savedmodel=data["savedmodel"], onnxruntime=bad / "onnxruntime.npy",
                   tensorrt_fp32=bad / "tensorrt_fp32.npy")
    fails(proc, "compare.py", "2 input file problem(s)",
          f"predictions of onnxruntime file {bad / 'onnxruntime.npy'} does not exist",
          f"predictions of tensorrt_fp32 file {bad / 'tensorrt_fp32.npy'} does not exist",
          "run the step that writes it")
    assert proc.stdout == "", "numbers were printed before the error"
    nothing_written(out, out / "comparison.json", out / "per_sample.csv")


@pytest.mark.parametrize("shape,words", [((N, 9), "backends disagree on the number of classes: savedmodel 10, "
                                                  "onnxruntime 9"),
                                         ((N - 1, 10), f"onnxruntime: {N - 1} samples, the labels have {N}")])
def test_compare_predictions_whose_shapes_differ(data: dict[str, Path], out: Path, bad: Path,
                                                 shape: tuple[int, int], words: str) -> None:
    np.save(bad / "onnxruntime.npy", np.full(shape, 0.1, np.float32))
    proc = compare(data, out, savedmodel=data["savedmodel"], onnxruntime=bad / "onnxruntime.npy")
    fails(proc, "compare.py", words)
    assert proc.stdout == "", "numbers were printed before the error"
    nothing_written(out, out / "comparison.json", out / "per_sample.csv")


def test_compare_truncated_prediction(data: dict[str, Path], out: Path, bad: Path) -> None:
    cut(data["onnxruntime"], bad / "onnxruntime.npy", -100)
    proc = compare(data, out, savedmodel=data["savedmodel"], onnxruntime=bad / "onnxruntime.npy")
    fails(proc, "compare.py", f"predictions of onnxruntime file {bad / 'onnxruntime.npy'} is truncated",
          "regenerate it")
    assert proc.stdout == ""
    nothing_written(out, out / "comparison.json", out / "per_sample.csv")


# --- train.py: bad config values, refused before training -------------------------------------------------------------

ARCH = '{"blocks": [4], "convs_per_block": 1, "dense_units": 16}'
TRAINING = '{"epochs": 1, "batch_size": 64}'
DATASET = '{"source": "digits"}'


@pytest.mark.parametrize("dataset,arch,training,extra,words", [
    (DATASET, "{blocks: [4]}", TRAINING, [], ["--dataset/--architecture/--training must be JSON"]),
    ("[1]", ARCH, TRAINING, [], ["--dataset must be a JSON object, got [1]"]),
    ("{}", ARCH, TRAINING, [], ["the dataset entry has no 'source'", "add one under datasets in config.yaml"]),
    (DATASET, '{"dense_units": 16}', TRAINING, [], ["architecture.blocks is missing", "in config.yaml"]),
    (DATASET, '{"blocks": [4], "dense_units": 16, "dropout": 1}', TRAINING, [],
     ["architecture.dropout must be a number in [0, 1), got 1", "fix it in config.yaml"]),
    (DATASET, ARCH, '{"batch_size": 64}', [], ["training.epochs is missing; set it to a positive integer"]),
    (DATASET, ARCH, '{"epochs": 1, "batch_size": 0}', [], ["training.batch_size must be a positive integer, got 0"]),
    (DATASET, ARCH, '{"epochs": 1, "batch_size": 64, "learning_rate": "fast"}', [],
     ['training.learning_rate must be a number in (0, 1], got "fast"']),
    (DATASET, ARCH, TRAINING, ["--num-test-samples", "many"],
     ["num_test_samples must be 'all' or a positive number, got 'many'"]),
], ids=["not-json", "not-an-object", "no-source", "no-blocks", "dropout-1", "no-epochs",
        "batch-size-0", "learning-rate-string", "num-test-samples-word"])
def test_train_bad_config_values(out: Path, dataset: str, arch: str, training: str, extra: list[str],
                                 words: list[str]) -> None:
    proc = run_script("train.py", "--dataset", dataset, "--architecture", arch, "--training", training, *extra,
                      "--saved-model", out / "saved_model", "--samples", out / "x.npy", "--labels", out / "y.npy",
                      "--metrics", out / "metrics.json", check=False)
    fails(proc, "train.py", *words)
    nothing_written(out)


def test_train_unknown_dataset_source(out: Path) -> None:
    proc = run_script("train.py", "--dataset", '{"source": "mnist"}', "--architecture", ARCH, "--training", TRAINING,
                      "--saved-model", out / "saved_model", "--samples", out / "x.npy", "--labels", out / "y.npy",
                      "--metrics", out / "metrics.json", check=False)
    fails(proc, "train.py", "unknown dataset source 'mnist'; available: digits, cifar10")
    nothing_written(out)


# --- import_model.py --------------------------------------------------------------------------------------------------


def import_model(saved_model: Path, samples: Path, labels: Path, out: Path):  # type: ignore[no-untyped-def]
    return run_script("import_model.py", "--saved-model-in", saved_model, "--samples-in", samples,
                      "--labels-in", labels, "--saved-model", out / "saved_model", "--samples", out / "x.npy",
                      "--labels", out / "y.npy", "--metrics", out / "metrics.json", check=False)


def test_import_missing_saved_model(tiny_model: dict[str, Path], out: Path, bad: Path) -> None:
    fails(import_model(bad / "nope", tiny_model["samples"], tiny_model["labels"], out), "import_model.py",
          f"{bad / 'nope'} is not a SavedModel directory (no saved_model.pb)", "model.export(dir)")
    nothing_written(out)


def test_import_truncated_samples(tiny_model: dict[str, Path], bad_samples: dict[str, Path], out: Path) -> None:
    fails(import_model(tiny_model["saved_model"], bad_samples["truncated"], tiny_model["labels"], out),
          "import_model.py", f"test samples file {bad_samples['truncated']} is truncated", "regenerate it")
    nothing_written(out)


@pytest.mark.parametrize("labels,words", [(np.zeros(N - 1, np.int64), f"{N} test samples but {N - 1} labels"),
                                          (np.zeros(N, np.float32), "must be integers, got float32")])
def test_import_bad_labels(tiny_model: dict[str, Path], out: Path, bad: Path, labels: np.ndarray, words: str) -> None:
    np.save(bad / "y.npy", labels)
    fails(import_model(tiny_model["saved_model"], tiny_model["samples"], bad / "y.npy", out), "import_model.py",
          words)
    nothing_written(out)


def test_import_copies_and_checks_a_good_model(tiny_model: dict[str, Path], out: Path) -> None:
    proc = import_model(tiny_model["saved_model"], tiny_model["samples"], tiny_model["labels"], out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "saved_model" / "saved_model.pb").read_bytes() == (tiny_model["saved_model"] /
                                                                     "saved_model.pb").read_bytes()
    assert np.array_equal(np.load(out / "x.npy"), np.load(tiny_model["samples"]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["test_samples"], metrics["input_shape"], metrics["classes"]) == (N, [8, 8, 1], 10)


def test_import_corrupt_saved_model(tiny_model: dict[str, Path], out: Path, bad: Path) -> None:
    """Found at import, not two steps later when tf2onnx trips over it."""
    model = bad / "saved_model"
    shutil.copytree(tiny_model["saved_model"], model)
    cut(model / "saved_model.pb", model / "saved_model.pb", 1000)
    fails(import_model(model, tiny_model["samples"], tiny_model["labels"], out), "import_model.py",
          f"savedmodel: cannot load {model} as a SavedModel", "re-export it")
    nothing_written(out)


def test_import_samples_that_do_not_fit_the_model(tiny_model: dict[str, Path], out: Path, bad: Path) -> None:
    np.save(bad / "x.npy", np.zeros((N, 7, 7, 1), np.float32))
    fails(import_model(tiny_model["saved_model"], bad / "x.npy", tiny_model["labels"], out), "import_model.py",
          "expects samples of shape (8, 8, 1)", "got (8, 7, 7, 1)", "the test data does not fit this model")
    nothing_written(out)


def test_import_labels_beyond_the_models_classes(tiny_model: dict[str, Path], out: Path, bad: Path) -> None:
    labels = np.load(tiny_model["labels"])
    labels[3] = 10
    np.save(bad / "y.npy", labels)
    fails(import_model(tiny_model["saved_model"], tiny_model["samples"], bad / "y.npy", out), "import_model.py",
          "range over 0..10, but the model outputs 10 classes (labels must be 0..9)")
    nothing_written(out)


# --- build_engine.py --------------------------------------------------------------------------------------------------

PROFILE = ("--min-batch", "1", "--opt-batch", "8", "--max-batch", "64")   # tensorrt.profile, as a config sets it


def build_engine(onnx: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_script("build_engine.py", "--onnx", onnx, *PROFILE, *extra, "--engine", out / "fp32.trt",
                      "--info", out / "fp32.json", check=False)


def test_build_engine_missing_onnx(out: Path, bad: Path) -> None:
    fails(build_engine(bad / "model.onnx", out), "build_engine.py",
          f"ONNX model {bad / 'model.onnx'} does not exist; run the convert_onnx step first")
    nothing_written(out)


@pytest.mark.parametrize("extra,words", [
    (["--min-batch", "8", "--max-batch", "4"], "the profile needs 1 <= min (8) <= opt (8) <= max (4) batch"),
    (["--flavour", "tensorrt-llm"], "tensorrt.flavour must be auto, tensorrt or tensorrt-rtx, not 'tensorrt-llm'"),
])
def test_build_engine_bad_options(tiny_model: dict[str, Path], out: Path, extra: list[str], words: str) -> None:
    fails(build_engine(tiny_model["onnx"], out, *extra), "build_engine.py", words)
    nothing_written(out)


def test_build_engine_corrupt_onnx(out: Path, bad: Path) -> None:
    model = bad / "model.onnx"
    model.write_bytes(np.random.default_rng(2).bytes(3000))
    last = fails(build_engine(model, out), "build_engine.py")
    if "TensorRT is not installed here" in last:  # no TensorRT of either flavour: that, said clearly, is the error
        assert "TensorRT container" in last
    else:
        assert f"TensorRT's ONNX parser rejected {model}" in last and "re-run the conversion" in last, last
    nothing_written(out)

