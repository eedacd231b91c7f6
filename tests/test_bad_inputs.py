"""docs/bad-inputs.md, run: every row of its table is a case here, and every case a row.

A `fails` row runs the step as a rule would (a subprocess; config rows through `snakemake --dry-run`) and checks
the promises: a non-zero exit, one last error line holding the row's message with no traceback, and nothing written
(no output, no temporary file). An `accepted` row checks that the input is taken as the row says.
"""

from __future__ import annotations

import json
import pickle
import re
import resource
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import REPO, copy_workflow, leftovers, run_script
from test_steps import fake_binary, nan_onnx
from test_workflow import TINY, snakemake, write_overlay

DOC = REPO / "docs" / "bad-inputs.md"
N = 12  # samples in the synthetic data


def table() -> list[dict[str, str]]:
    """The rows of the doc's table: case, bad input, step, outcome, message (backticks removed)."""
    rows = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        case, _, step, outcome, message = cells
        rows.append({"case": case.strip("`"), "step": step, "outcome": outcome,
                     "message": message[1:-1] if message.startswith("`") else message})
    return rows


ROWS = table()


# --- what every failing case must show ------------------------------------------------------------------------------

def check_fails(proc: subprocess.CompletedProcess[str], message: str, out: Path) -> None:
    log = proc.stderr[-4000:]
    assert proc.returncode != 0, f"succeeded on bad input:\n{log}"
    assert "Traceback" not in proc.stderr, f"printed a traceback:\n{log}"
    last = proc.stderr.rstrip("\n").splitlines()[-1]
    assert re.match(r"^[\w.]+: error: ", last), f"the last line is not the step's error:\n{log}"
    assert message in last, f"{message!r} is not in:\n{last}"
    assert leftovers(out) == [] and sorted(p.name for p in out.iterdir()) == [], f"{out} holds {list(out.iterdir())}"


# --- inputs ---------------------------------------------------------------------------------------------------------

def good_data(d: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {"samples": d / "x.npy", "labels": d / "y.npy"}
    np.save(paths["samples"], rng.random((N, 8, 8, 1), dtype=np.float32))
    np.save(paths["labels"], rng.integers(0, 10, N).astype(np.int64))
    return paths


def export_csv(samples: Path, labels: Path, out: Path,  # type: ignore[no-untyped-def]
               **kwargs) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(REPO / "scripts" / "export_csv.py"), "--samples", str(samples), "--labels",
           str(labels), "--samples-csv", str(out / "x.csv"), "--labels-csv", str(out / "y.csv")]
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def samples_case(make: Callable[[Path, dict[str, Path]], Path]) -> Callable[[Path], subprocess.CompletedProcess[str]]:
    """A case that hands export_csv bad samples (``make`` writes them from the good data and returns the path)."""
    def run(tmp: Path) -> subprocess.CompletedProcess[str]:
        data = good_data(tmp / "in")
        return export_csv(make(tmp / "in", data), data["labels"], tmp / "out")
    return run


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def huge_header(d: Path, data: dict[str, Path]) -> Path:
    good = data["samples"].read_bytes()
    return write(d / "h.npy", good[:6] + b"\x02\x00" + struct.pack("<I", 2_000_000) + good[10:])


def labels_case(labels: np.ndarray) -> Callable[[Path], subprocess.CompletedProcess[str]]:
    def run(tmp: Path) -> subprocess.CompletedProcess[str]:
        data = good_data(tmp / "in")
        return export_csv(data["samples"], save(tmp / "in" / "bad_y.npy", labels), tmp / "out")
    return run


def disk_full(tmp: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "in").mkdir(exist_ok=True)
    big = save(tmp / "in" / "big.npy", np.random.default_rng(1).random((400, 8, 8, 1), dtype=np.float32))
    labels = save(tmp / "in" / "big_y.npy", np.zeros(400, np.int64))
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # noqa: E731
    return export_csv(big, labels, tmp / "out", preexec_fn=limit)


def import_model(tmp: Path, saved_model: Path, samples: Path, labels: Path,
                 *extra: str) -> subprocess.CompletedProcess[str]:
    out = tmp / "out"
    return run_script("import_model.py", f"--saved-model-in={saved_model}", f"--samples-in={samples}",
                      f"--labels-in={labels}", "--saved-model", out / "saved_model", "--samples", out / "x.npy",
                      "--labels", out / "y.npy", "--metrics", out / "m.json", *extra, check=False)


def import_case(samples: np.ndarray | None = None, *extra: str,  # type: ignore[no-untyped-def]
                model: str | None = None):
    """import_model on the data (or ``samples``); a stand-in folder with saved_model.pb unless ``model`` names one
    of the ``tf_models`` (for the cases that reach TensorFlow)."""
    def run(tmp: Path, tf_models: dict[str, Path] | None = None) -> subprocess.CompletedProcess[str]:
        data = good_data(tmp / "in")
        x = data["samples"] if samples is None else save(tmp / "in" / "bad_x.npy", samples)
        y = data["labels"] if samples is None or len(samples) == N else save(
            tmp / "in" / "bad_y.npy", np.zeros(len(samples), np.int64))
        if model is None:
            folder = tmp / "in" / "sm"
            folder.mkdir()
            (folder / "saved_model.pb").write_bytes(b"never read: the data is refused first")
        else:
            assert tf_models is not None
            folder = tf_models[model]
        return import_model(tmp, folder, x, y, *extra)
    run.needs_tf = model is not None  # type: ignore[attr-defined]
    return run


def predict_cpp(body: str, *, engine_bytes: int | None = None, executable: bool = True):  # type: ignore[no-untyped-def]
    """predict_cpp with a stand-in trt_infer; ``engine_bytes``: build_engine's record (None: no record at all)."""
    def run(tmp: Path) -> subprocess.CompletedProcess[str]:
        data = good_data(tmp / "in")
        binary = fake_binary(tmp / "in", "trt_infer", body)
        if not executable:
            binary.chmod(0o644)
        engine = write(tmp / "in" / "fp32.trt", b"\0" * 1000)
        record = tmp / "in" / "fp32.json"
        if engine_bytes is not None:
            record.write_text(json.dumps({"engine_bytes": engine_bytes}))
        return run_script("predict_cpp.py", "--binary", binary, "--engine", engine, "--engine-info", record,
                          "--input", data["samples"], "--samples", data["samples"], "--output",
                          tmp / "out" / "p.npy", "--info", tmp / "out" / "p.json", check=False)
    return run


def predict_onnx(make: Callable[[Path], Path], *extra: str):  # type: ignore[no-untyped-def]
    def run(tmp: Path) -> subprocess.CompletedProcess[str]:
        data = good_data(tmp / "in")
        return run_script("predict.py", "--backend", "onnxruntime", "--artifact", make(tmp / "in"), "--samples",
                          data["samples"], *extra, "--output", tmp / "out" / "p.npy", "--info",
                          tmp / "out" / "p.json", check=False)
    return run


def train(dataset: dict, num_test_samples: str):  # type: ignore[no-untyped-def,type-arg]
    def run(tmp: Path) -> subprocess.CompletedProcess[str]:
        out = tmp / "out"
        return run_script("train.py", "--dataset", json.dumps(dataset), "--architecture",
                          json.dumps({"blocks": [4], "dense_units": 8}), "--training",
                          json.dumps({"epochs": 1, "batch_size": 64}), "--num-test-samples", num_test_samples,
                          "--saved-model", out / "sm", "--samples", out / "x.npy", "--labels", out / "y.npy",
                          "--metrics", out / "m.json", check=False)
    return run


def convert_model(tmp: Path, saved_model: Path) -> subprocess.CompletedProcess[str]:
    data = good_data(tmp / "in")
    return run_script("convert_onnx.py", "--saved-model", saved_model, "--samples", data["samples"],
                      "--labels", data["labels"], "--opset", "17", "--output", tmp / "out" / "m.onnx",
                      "--check", tmp / "out" / "c.json", check=False)


def convert_erfinv(tmp: Path, tf_models: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return convert_model(tmp, tf_models["erfinv"])


convert_erfinv.needs_tf = True  # type: ignore[attr-defined]

FAKE_OK = "save(np.full((len(x), 10), 0.1, np.float32))"

STEP_CASES: dict[str, Callable] = {  # type: ignore[type-arg]
    "samples-missing": samples_case(lambda d, data: d / "absent.npy"),
    "samples-empty": samples_case(lambda d, data: write(d / "e.npy", b"")),
    "samples-truncated": samples_case(lambda d, data: write(d / "t.npy", data["samples"].read_bytes()[:-100])),
    "samples-trailing-bytes": samples_case(
        lambda d, data: write(d / "g.npy", data["samples"].read_bytes() + b"junk")),
    "samples-huge-header": samples_case(huge_header),
    "samples-pickle": samples_case(lambda d, data: write(d / "p.npy", pickle.dumps({"a": 1}))),
    "samples-text": samples_case(lambda d, data: write(d / "t.npy", b"1,2,3\n4,5,6\n")),
    "samples-npz": samples_case(lambda d, data: (np.savez(d / "z.npz", x=np.load(data["samples"])), d / "z.npz")[1]),
    "samples-nan": samples_case(lambda d, data: save(d / "n.npy", np.where(
        np.arange(N * 64).reshape(N, 8, 8, 1) == 0, np.nan, np.load(data["samples"])).astype(np.float32))),
    "samples-float64": samples_case(lambda d, data: save(d / "f.npy", np.load(data["samples"]).astype(np.float64))),
    "labels-2d": labels_case(np.zeros((N, 1), np.int64)),
    "labels-count": labels_case(np.zeros(N - 1, np.int64)),
    "disk-full": disk_full,
    "import-no-saved-model": lambda tmp: (good_data(tmp / "in"), (tmp / "in" / "empty").mkdir(), import_model(
        tmp, tmp / "in" / "empty", tmp / "in" / "x.npy", tmp / "in" / "y.npy"))[2],
    "import-zero-samples": import_case(np.zeros((0, 8, 8, 1), np.float32)),
    "import-num-test-samples": import_case(None, "--num-test-samples", "50"),
    "import-integer-samples": import_case(np.zeros((N, 8, 8, 1), np.int64)),
    "import-integer-input": import_case(None, model="int_input"),
    "import-two-inputs": import_case(None, model="two_inputs"),
    "convert-unsupported-op": convert_erfinv,
    "train-too-many-samples": train({"source": "digits", "test_fraction": 0.25}, "5000"),
    "train-cifar-archive-missing": train({"source": "cifar10", "archive": "/nonexistent/cifar-10-python.tar.gz"},
                                         "all"),
    "onnx-corrupt": predict_onnx(lambda d: write(d / "m.onnx", np.random.default_rng(0).bytes(2000)),
                                 "--providers", "CPUExecutionProvider"),
    "onnx-nan-predictions": predict_onnx(lambda d: nan_onnx(d / "nan.onnx"), "--providers", "CPUExecutionProvider"),
    "provider-unknown": predict_onnx(lambda d: nan_onnx(d / "m.onnx"), "--providers", "FooExecutionProvider"),
    "binary-fails": predict_cpp("print('engine exploded', file=sys.stderr); sys.exit(3)", engine_bytes=1000),
    "binary-not-executable": predict_cpp(FAKE_OK, engine_bytes=1000, executable=False),
    "binary-writes-nothing": predict_cpp("sys.exit(0)", engine_bytes=1000),
    "binary-nan": predict_cpp("save(np.full((len(x), 10), np.nan, np.float32))", engine_bytes=1000),
    "binary-wrong-shape": predict_cpp("save(np.full((len(x) - 1, 10), 0.1, np.float32))", engine_bytes=1000),
    "engine-truncated": predict_cpp(FAKE_OK, engine_bytes=4096),
    "engine-record-missing": predict_cpp(FAKE_OK, engine_bytes=None),
    "engine-truncated-python": lambda tmp: (good_data(tmp / "in"), run_script(
        "predict.py", "--backend", "tensorrt", "--artifact", write(tmp / "in" / "fp32.trt", b"\0" * 1000),
        "--engine-info", write(tmp / "in" / "fp32.json", b'{"engine_bytes": 4096}'), "--samples", tmp / "in" / "x.npy",
        "--output", tmp / "out" / "p.npy", "--info", tmp / "out" / "p.json", check=False))[1],
    "cmake-args-unbalanced": lambda tmp: run_script(
        "compile_cpp.py", "--source", REPO / "cpp", "--cmake-args=-DX='a", "--output", tmp / "out" / "trt_infer",
        check=False),
}

CONFIG_CASES = {
    "config-nan": "datasets: {digits: {source: digits, test_fraction: .nan}}",
    "config-inf": "compare: {tolerances: {fp16: {atol: .inf}}}",
    "config-provider-injection": "onnxruntime: {providers: ['CPUExecutionProvider || touch M; #ExecutionProvider']}",
    "config-reserved-model-name": "models: {plots: {dataset: digits, architecture: {blocks: [4], dense_units: 8}, "
                                  "training: {epochs: 1, batch_size: 8}}}",
    "config-cmake-args-quote": "cpp: {cmake_args: \"-DX='unbalanced\"}",
    "config-num-test-samples-zero": "models: {tiny: {num_test_samples: 0}}",
    "config-unknown-key": "typo_key: 1",
    "config-batch-size-zero": "predict: {batch_size: 0}",
}


def interrupted_run(tmp: Path) -> None:
    """A killed writer's temporaries (a file and a folder) are gone after the next run; only the outputs remain."""
    data = good_data(tmp / "in")
    out = tmp / "out"
    (out / ".x.csv.k1ll3d.tmp").write_text("half a csv")
    (out / ".y.csv.k1ll3d.tmp").mkdir()
    proc = export_csv(data["samples"], data["labels"], out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["x.csv", "y.csv"]


def import_fortran(tmp: Path, tf_models: dict[str, Path]) -> None:
    """Fortran-order samples are taken, written in C order (what trt_infer reads) and the layout is recorded."""
    data = good_data(tmp / "in")
    x = save(tmp / "in" / "xf.npy", np.asfortranarray(np.load(data["samples"])))
    proc = import_model(tmp, tf_models["good"], x, data["labels"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp / "out" / "x.npy", "rb") as fh:
        np.lib.format.read_magic(fh)
        assert np.lib.format.read_array_header_1_0(fh)[1] is False
    np.testing.assert_array_equal(np.load(tmp / "out" / "x.npy"), np.load(x))
    assert json.loads((tmp / "out" / "m.json").read_text())["samples_layout"] == "Fortran order, converted to C order"


import_fortran.needs_tf = True  # type: ignore[attr-defined]


def convert_grouped_gelu(tmp: Path, tf_models: dict[str, Path]) -> None:
    """Keras 3's grouped convolution (an XLA-compiled function call) and exact GELU (Erfc): tf2onnx's own command
    line leaves both unconverted; with trtverify.tf2onnx_aids the model converts, passes its check, and says so."""
    plain = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(tf_models["grouped_gelu"]),
                            "--output", str(tmp / "plain.onnx"), "--opset", "17"], capture_output=True, text=True)
    assert "Unsupported ops: Counter({" in plain.stderr and "StatefulPartitionedCall" in plain.stderr, plain.stderr
    assert "Erfc" in plain.stderr, plain.stderr[-3000:]
    proc = convert_model(tmp, tf_models["grouped_gelu"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = json.loads((tmp / "out" / "c.json").read_text())
    assert check["conversion_aids"] == ["inlined 1 XLA-compiled function(s) (Keras 3 grouped convolutions)",
                                        "Erfc as 1 - Erf (exact GELU)"], check["conversion_aids"]
    assert check["verdict"] in ("identical", "consistent"), check["reason"]


convert_grouped_gelu.needs_tf = True  # type: ignore[attr-defined]
ACCEPTED_CASES = {"interrupted-run": interrupted_run, "import-fortran-samples": import_fortran,
                  "convert-grouped-conv-and-exact-gelu": convert_grouped_gelu}

TF_MODELS = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras
    keras.utils.set_random_seed(0)    # the same models on every run
    d = sys.argv[1]
    def export(inputs, output, name):
        keras.Model(inputs, output).export(os.path.join(d, name), verbose=False)
    x = keras.Input((8, 8, 1))
    export(x, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x)), "good")
    ids = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(50, 2)(ids))
    export(ids, keras.layers.Dense(10, activation="softmax")(embedded), "int_input")
    a, b = keras.Input((8, 8, 1), name="a"), keras.Input((8, 8, 1), name="b")
    export([a, b], keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(a + b)), "two_inputs")
    h = keras.layers.Dense(16)(keras.layers.Flatten()(x))
    h = keras.layers.Activation(lambda t: keras.ops.erfinv(keras.ops.tanh(t)))(h)
    export(x, keras.layers.Dense(10, activation="softmax")(h), "erfinv")
    # centred inputs: on good_data's uniform [0, 1) samples the shared mean otherwise decided the class, and one
    # initialisation in eight predicted one class for every sample, which compare rightly calls inconclusive
    centred = keras.layers.Normalization(mean=0.5, variance=1 / 12)(x)
    h = keras.layers.Conv2D(4, 3, groups=2)(keras.layers.Conv2D(4, 3)(centred))
    h = keras.layers.Activation(lambda t: keras.ops.gelu(t, approximate=False))(h)
    export(x, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(h)), "grouped_gelu")
""")


@pytest.fixture(scope="module")
def tf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny SavedModels, untrained: one that fits, one with token-id input, one with two inputs, one with an op
    tf2onnx lacks (Erfinv), one with a grouped convolution and exact GELU."""
    d = tmp_path_factory.mktemp("tf_models")
    subprocess.run([sys.executable, "-c", TF_MODELS, str(d)], check=True, capture_output=True)
    return {name: d / name for name in ("good", "int_input", "two_inputs", "erfinv", "grouped_gelu")}


def test_every_row_has_a_case_and_every_case_a_row() -> None:
    cases = set(STEP_CASES) | set(CONFIG_CASES) | set(ACCEPTED_CASES)
    rows = [r["case"] for r in ROWS]
    assert len(rows) == len(set(rows)), "a case appears twice in docs/bad-inputs.md"
    assert sorted(set(rows) - cases) == [], "rows of docs/bad-inputs.md without a test"
    assert sorted(cases - set(rows)) == [], "cases without a row in docs/bad-inputs.md"
    assert len(rows) >= 30
    for r in ROWS:
        assert r["outcome"] == ("accepted" if r["case"] in ACCEPTED_CASES else "fails"), r


def needs_tf(case: str) -> bool:
    fn = STEP_CASES.get(case) or ACCEPTED_CASES.get(case)
    return bool(getattr(fn, "needs_tf", False))


@pytest.mark.parametrize("row", [r for r in ROWS if r["case"] in STEP_CASES], ids=lambda r: r["case"])
def test_step_rows(row: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    for sub in ("in", "out"):
        (tmp_path / sub).mkdir()
    case = STEP_CASES[row["case"]]
    proc = case(tmp_path, request.getfixturevalue("tf_models")) if needs_tf(row["case"]) else case(tmp_path)
    check_fails(proc, row["message"], tmp_path / "out")


@pytest.mark.parametrize("row", [r for r in ROWS if r["case"] in ACCEPTED_CASES], ids=lambda r: r["case"])
def test_accepted_rows(row: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    for sub in ("in", "out"):
        (tmp_path / sub).mkdir()
    case = ACCEPTED_CASES[row["case"]]
    case(tmp_path, request.getfixturevalue("tf_models")) if needs_tf(row["case"]) else case(tmp_path)


@pytest.mark.parametrize("row", [r for r in ROWS if r["case"] in CONFIG_CASES], ids=lambda r: r["case"])
def test_config_rows(row: dict[str, str], tmp_path: Path) -> None:
    """Refused before any job runs: Snakemake's dry run stops with the message and results/ is never made."""
    (tmp_path / "ws").mkdir()
    ws = copy_workflow(tmp_path / "ws")
    proc = snakemake(ws, "--dry-run", configfiles=(TINY, write_overlay(tmp_path / "bad.yaml",
                                                                       CONFIG_CASES[row["case"]])), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert row["message"] in out, out[-3000:]
    assert not (ws / "results").exists()
