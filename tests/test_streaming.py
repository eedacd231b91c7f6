"""Steps stream: their peak memory does not grow with the number of samples, imported samples are used in place,
and an edit of them reruns what depends on them.

Peak memory is the child's own ru_maxrss (os.wait4), so it counts the step alone, not pytest or other tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SCRIPTS, copy_workflow
from trtverify.benchstats import measure_process
from test_workflow import TINY, planned_jobs, snakemake, write_overlay

SHAPE = (32, 32, 3)     # 12 KiB a sample: 10,000 samples are 123 MB, which a step that loads them all would show
FEW, MANY = 100, 10_000
# What 9,900 more samples may add to a step's peak: a few batches (256 samples = 3 MiB) and allocator noise, far
# below the 116 MiB of the samples themselves (and the predictions' concatenation on top).
SLACK_MIB = 40

SAVED_MODEL = """
import sys, keras
inp = keras.Input((32, 32, 3))
out = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))
keras.Model(inp, out).export(sys.argv[1], verbose=False)
"""


def peak_mib(script: str, *args: object) -> float:
    """Run scripts/<script> and return its peak resident memory in MiB; fails the test if the step fails."""
    cost = measure_process([sys.executable, str(SCRIPTS / script), *map(str, args)], cwd=REPO,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert cost.returncode == 0, f"{script} failed:\n{cost.output[-3000:]}"
    return cost.peak_rss_bytes / 2**20


def samples(path: Path, n: int, dtype: str = "float32") -> Path:
    rng = np.random.default_rng(n)
    np.save(path, rng.random((n, *SHAPE), dtype=np.float32).astype(dtype))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A SavedModel and its ONNX model taking 32x32x3 (pooling and one dense layer: the model is not the point)."""
    d = tmp_path_factory.mktemp("streaming")
    subprocess.run([sys.executable, "-c", SAVED_MODEL, str(d / "saved_model")], check=True, cwd=d,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(d / "saved_model"), "--output",
                    str(d / "model.onnx"), "--opset", "17"], check=True, capture_output=True)
    for n in (FEW, MANY):
        samples(d / f"x{n}.npy", n)
        np.save(d / f"y{n}.npy", np.arange(n) % 10)
    return {"dir": d, "saved_model": d / "saved_model", "onnx": d / "model.onnx"}


def test_the_measure_sees_a_step_that_loads_everything(model: dict[str, Path]) -> None:
    """Guards the tests below against a blind measure (a child's ru_maxrss that shows its parent's memory)."""
    load = "import sys, numpy; numpy.load(sys.argv[1]) + 1"
    few, many = (measure_process([sys.executable, "-c", load, str(model["dir"] / f"x{n}.npy")]).peak_rss_bytes
                 for n in (FEW, MANY))
    assert many - few > 2 * 100 * 2**20   # the samples and their sum: 2 x 117 MiB


def predict_peak(model: dict[str, Path], n: int) -> float:
    d = model["dir"]
    peak = peak_mib("predict.py", "--backend", "onnxruntime", "--artifact", model["onnx"], "--samples",
                    d / f"x{n}.npy", "--batch-size", 256, "--output", d / f"p{n}.npy", "--info", d / f"p{n}.json")
    assert np.load(d / f"p{n}.npy").shape == (n, 10)
    return peak


def test_predict_memory_does_not_grow_with_samples(model: dict[str, Path]) -> None:
    few, many = predict_peak(model, FEW), predict_peak(model, MANY)
    assert many - few < SLACK_MIB, f"predict peaked at {few:.0f} MiB for {FEW} samples, {many:.0f} MiB for {MANY}"
    # Streamed, yet the same numbers as one call on all samples.
    import onnxruntime as ort
    x = np.load(model["dir"] / f"x{FEW}.npy")
    session = ort.InferenceSession(str(model["onnx"]), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(np.load(model["dir"] / f"p{FEW}.npy"), expected, rtol=1e-6, atol=1e-7)


def compare_peak(d: Path, n: int, classes: int = 1000) -> float:
    """compare.py's peak on two backends' (n, classes) predictions, in batches of 512 samples: 2 MB a backend, so
    every batch is a memory map of its own (io.MAP_BYTES) that must be gone once the batch is."""
    rng = np.random.default_rng(n)
    ref = rng.dirichlet(np.full(classes, 0.3), size=n).astype(np.float32)
    np.save(d / f"ref{n}.npy", ref)
    np.save(d / f"other{n}.npy", (ref + rng.normal(0, 1e-6, ref.shape)).astype(np.float32))
    np.save(d / f"labels{n}.npy", rng.integers(0, classes, n))
    np.save(d / f"samples{n}.npy", np.zeros((n, 1), np.float32))
    peak = peak_mib("compare.py", "--model", "m", "--labels", d / f"labels{n}.npy", "--samples", d / f"samples{n}.npy",
                    "--prediction", f"savedmodel={d / f'ref{n}.npy'}", "--prediction",
                    f"onnxruntime={d / f'other{n}.npy'}", "--batch-size", 512, "--threads", 2,
                    "--output", d / f"c{n}.json", "--per-sample", d / f"c{n}.csv")
    assert len((d / f"c{n}.csv").read_text().splitlines()) == n + 1
    return peak


def test_compare_memory_does_not_grow_with_samples(tmp_path: Path) -> None:
    """10,000 samples of 1,000 classes are 40 MB a backend: held, the 80 MB would show far above the slack."""
    few, many = compare_peak(tmp_path, FEW), compare_peak(tmp_path, MANY)
    assert many - few < SLACK_MIB, f"compare peaked at {few:.0f} MiB for {FEW} samples, {many:.0f} MiB for {MANY}"


def import_peak(model: dict[str, Path], n: int, src: Path, tag: str) -> tuple[float, Path]:
    out = model["dir"] / f"imported-{tag}"
    peak = peak_mib("import_model.py", f"--saved-model-in={model['saved_model']}", f"--samples-in={src}",
                    f"--labels-in={model['dir'] / f'y{n}.npy'}", "--saved-model", out / "saved_model", "--samples",
                    out / "x.npy", "--labels", out / "y.npy", "--metrics", out / "m.json")
    return peak, out


def test_import_uses_samples_in_place_in_bounded_memory(model: dict[str, Path]) -> None:
    d = model["dir"]
    few, _ = import_peak(model, FEW, d / f"x{FEW}.npy", "few")
    many, out = import_peak(model, MANY, d / f"x{MANY}.npy", "many")
    assert many - few < SLACK_MIB, f"import peaked at {few:.0f} MiB for {FEW} samples, {many:.0f} MiB for {MANY}"
    link = out / "x.npy"
    assert link.is_symlink() and link.resolve() == (d / f"x{MANY}.npy").resolve()   # no copy
    manifest = json.loads((out / "m.json").read_text())["samples"]
    assert manifest["mode"] == "in place" and manifest["source_bytes"] == (d / f"x{MANY}.npy").stat().st_size
    data = np.load(d / f"x{MANY}.npy")
    assert manifest["blake2b_float32"] == hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest()


def test_import_converts_other_dtypes_in_bounded_memory(model: dict[str, Path]) -> None:
    d = model["dir"]
    few, _ = import_peak(model, FEW, samples(d / "f64-few.npy", FEW, "float64"), "f64-few")
    many, out = import_peak(model, MANY, samples(d / "f64-many.npy", MANY, "float64"), "f64-many")
    assert many - few < SLACK_MIB, f"import peaked at {few:.0f} MiB for {FEW} samples, {many:.0f} MiB for {MANY}"
    copy = out / "x.npy"
    assert not copy.is_symlink()
    np.testing.assert_array_equal(np.load(copy), np.load(d / "f64-many.npy").astype(np.float32))
    manifest = json.loads((out / "m.json").read_text())["samples"]
    assert (manifest["mode"], manifest["reason"]) == ("converted copy", "dtype <f8, converted to float32")
    converted = np.load(d / "f64-many.npy").astype(np.float32)
    assert manifest["blake2b_float32"] == hashlib.blake2b(converted.tobytes(), digest_size=16).hexdigest()


def test_the_import_digest_is_of_the_chunks_in_order_while_the_next_is_read() -> None:
    """import_model hashes the samples on a thread of its own while it reads the next chunk: the digest of many
    chunks of different sizes is hashlib's of their bytes one after another, and a chunk is hashed by the time the
    next update returns (the caller may then reuse it: here it is overwritten, and the digest does not change)."""
    from import_model import OrderedDigest

    rng = np.random.default_rng(5)
    chunks = [rng.random(int(k), dtype=np.float32) for k in rng.integers(1, 300_000, 60)]
    with OrderedDigest() as digest:
        for chunk in chunks:
            digest.update(chunk)
        got = digest.hexdigest()
    assert got == hashlib.blake2b(b"".join(c.tobytes() for c in chunks), digest_size=16).hexdigest()
    first, second = rng.random(1 << 20, dtype=np.float32), rng.random(10, dtype=np.float32)
    want = hashlib.blake2b(first.tobytes() + second.tobytes(), digest_size=16).hexdigest()
    with OrderedDigest() as digest:
        digest.update(first)
        digest.update(second)
        first[:] = 0
        assert digest.hexdigest() == want


@pytest.mark.slow
def test_edit_of_imported_samples_reruns_import_and_downstream(model: dict[str, Path], tmp_path: Path) -> None:
    """The samples are a link to the user's file: Snakemake must still see an edit of that file."""
    mine = tmp_path / "mine"
    mine.mkdir()
    x, y = samples(mine / "x.npy", FEW), mine / "y.npy"
    np.save(y, np.arange(FEW) % 10)
    (tmp_path / "ws").mkdir()
    ws = copy_workflow(tmp_path / "ws")
    config = TINY.read_text().split("datasets:", 1)[1]
    own = write_overlay(tmp_path / "own.yaml", f"""models:
  mine:
    dataset: none
    import: {{saved_model: {model['saved_model']}, samples: {x}, labels: {y}}}
datasets:{config}""")
    target = "results/mine/predictions/savedmodel.npy"
    snakemake(ws, target, configfiles=(own,))
    assert (ws / "results/mine/data/test_samples.npy").is_symlink()
    assert planned_jobs(snakemake(ws, target, "--dry-run", configfiles=(own,))) == {}
    time.sleep(1.1)   # a later mtime than the outputs on any file system
    np.save(x, np.random.default_rng(7).random((FEW, *SHAPE), dtype=np.float32))   # same path, new content
    jobs = planned_jobs(snakemake(ws, target, "--dry-run", configfiles=(own,)))
    assert jobs == {"import_model": 1, "predict_savedmodel": 1}, jobs
