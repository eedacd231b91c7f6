"""scripts/compare.py: the files it writes, their shape, and one-line errors that leave nothing behind."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import compare  # scripts/ is on the test path (pyproject.toml)
from conftest import SCRIPTS, leftovers, run_script
from trtverify.errors import UserError

TOP_KEYS = ["schema_version", "model", "reference", "num_samples", "num_classes", "settings", "backends", "pairs",
            "parity", "per_sample", "flipped_samples", "class_counts", "output", "noise_floor", "inconclusive",
            "conversion_aids", "inputs", "generator"]
PAIR_KEYS = ["a", "b", "precision", "tolerance", "parity", "verdict", "reason", "metrics", "per_class_agreement",
             "top1_flips", "first_difference", "abs_diff_histogram", "softmax_tolerance"]
METRIC_KEYS = ["elements", "finite_elements", "max_abs_diff", "mean_abs_diff", "median_abs_diff", "p99_abs_diff",
               "max_rel_diff", "mean_rel_diff", "cosine_similarity_mean", "cosine_similarity_min",
               "cosine_similarity_global", "outside_tolerance_count", "outside_tolerance_share",
               "differing_elements", "softmax_outside_tolerance_count", "top1_agreement", "top1_agreement_ci95",
               "top5_agreement", "top1_flips", "ties", "top1_agreement_with_ties", "mean_top_class_prob_change",
               "accuracy_a", "accuracy_b", "accuracy_change", "accuracy_change_ci95"]


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 57
    ref = rng.dirichlet(np.ones(10), n).astype(np.float32)
    fp16 = np.clip(ref + rng.normal(0, 3e-3, ref.shape), 0, 1).astype(np.float32)
    files = {"labels": rng.integers(0, 10, n), "samples": rng.uniform(0, 1, (n, 8, 8, 1)).astype(np.float32),
             "savedmodel": ref, "onnxruntime": ref + np.float32(1e-7), "tensorrt_fp16": fp16,
             "tensorrt_cpp_fp16": fp16.copy()}
    paths = {}
    for name, array in files.items():
        paths[name] = tmp_path / "in" / f"{name}.npy"
        paths[name].parent.mkdir(exist_ok=True)
        np.save(paths[name], array)
    return paths


def argv(paths: dict[str, Path], out: Path, *extra: str, backends: tuple[str, ...] = ()) -> list[str]:
    names = backends or ("savedmodel", "onnxruntime", "tensorrt_fp16", "tensorrt_cpp_fp16")
    args = ["--model", "m", "--labels", str(paths["labels"]), "--samples", str(paths["samples"])]
    for name in names:
        args += ["--prediction", f"{name}={paths[name]}"]
    return args + ["--output", str(out / "comparison.json"), "--per-sample", str(out / "per_sample.csv"), *extra]


def test_writes_comparison_and_per_sample_csv(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_script("compare.py", *argv(inputs, out, "--batch-size", "8", "--per-sample-rows", "3",
                                          "--tolerances", '{"fp16": {"atol": 0.05}}'))
    assert "savedmodel vs onnxruntime" in proc.stdout and "consistent" in proc.stdout
    data = json.loads((out / "comparison.json").read_text())
    assert list(data) == TOP_KEYS and data["schema_version"] == 1
    assert list(data["pairs"]) == ["savedmodel vs onnxruntime", "savedmodel vs tensorrt_fp16",
                                   "savedmodel vs tensorrt_cpp_fp16", "onnxruntime vs tensorrt_fp16",
                                   "onnxruntime vs tensorrt_cpp_fp16", "tensorrt_fp16 vs tensorrt_cpp_fp16"]
    for pair in data["pairs"].values():
        assert list(pair) == PAIR_KEYS and list(pair["metrics"]) == METRIC_KEYS
    assert data["pairs"]["savedmodel vs tensorrt_fp16"]["tolerance"]["source"] == "config"
    assert data["pairs"]["savedmodel vs tensorrt_fp16"]["tolerance"]["atol"] == 0.05
    assert data["parity"]["tensorrt_fp16 vs tensorrt_cpp_fp16"]["result"] == "identical"
    assert [r["index"] for r in data["per_sample"]] == [0, 1, 2]
    assert set(data["backends"]) == {"savedmodel", "onnxruntime", "tensorrt_fp16", "tensorrt_cpp_fp16"}

    with open(out / "per_sample.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 57
    assert list(rows[0]) == ["index", "label"] + [f"{b}_{c}" for b in data["backends"]
                                                  for c in ("class", "confidence")]
    labels, fp16 = np.load(inputs["labels"]), np.load(inputs["tensorrt_fp16"])
    assert [int(r["label"]) for r in rows] == labels.tolist()
    assert [int(r["tensorrt_fp16_class"]) for r in rows] == fp16.argmax(1).tolist()
    assert [np.float32(r["tensorrt_fp16_confidence"]) for r in rows] == fp16.max(1).tolist()   # round-trips
    assert leftovers(out) == []


def test_reference_goes_first_whatever_the_order(inputs: dict[str, Path], tmp_path: Path) -> None:
    compare.main(argv(inputs, tmp_path, "--reference", "onnxruntime", backends=("savedmodel", "onnxruntime")))
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["reference"] == "onnxruntime" and list(data["pairs"]) == ["onnxruntime vs savedmodel"]
    header = (tmp_path / "per_sample.csv").read_text().splitlines()[0]
    assert header.startswith("index,label,onnxruntime_class")


def test_bad_inputs_are_one_line_and_write_nothing(inputs: dict[str, Path], tmp_path: Path) -> None:
    np.save(inputs["onnxruntime"], np.zeros((56, 10), dtype=np.float32))
    np.save(inputs["tensorrt_fp16"], np.zeros((57, 10), dtype=np.int32))
    out = tmp_path / "out"
    proc = run_script("compare.py", *argv(inputs, out, backends=("savedmodel", "onnxruntime", "tensorrt_fp16")),
                      check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "onnxruntime: 56 samples" in proc.stderr and "tensorrt_fp16: dtype int32" in proc.stderr
    assert not out.exists() or (not list(out.iterdir()))


def test_missing_files_are_all_listed(inputs: dict[str, Path], tmp_path: Path) -> None:
    args = argv(inputs, tmp_path) + ["--prediction", f"tensorrt_fp32={tmp_path / 'nope.npy'}"]
    args[args.index("--labels") + 1] = str(tmp_path / "no-labels.npy")
    with pytest.raises(UserError, match="2 input file problem.*no-labels.npy.*nope.npy"):
        compare.main(args)


def test_nan_fails_with_every_count_and_writes_nothing(inputs: dict[str, Path], tmp_path: Path) -> None:
    bad = np.load(inputs["onnxruntime"])
    bad[40, 3] = np.nan
    bad[50, 1] = np.inf
    np.save(inputs["onnxruntime"], bad)
    out = tmp_path / "out"
    proc = run_script("compare.py", *argv(inputs, out, "--batch-size", "16"), check=False)
    assert proc.returncode == 1
    for fragment in ("savedmodel: 0 NaN, 0 Inf", "onnxruntime: 1 NaN, 1 Inf, first at sample 40 class 3",
                     "tensorrt_fp16: 0 NaN, 0 Inf", "tensorrt_cpp_fp16: 0 NaN, 0 Inf"):
        assert fragment in proc.stderr
    assert not (out / "comparison.json").exists() and not (out / "per_sample.csv").exists()
    assert leftovers(out) == [] if out.exists() else True


@pytest.mark.parametrize("extra,message", [
    (["--tolerances", "{oops"], "--tolerances is not valid JSON"),
    (["--tolerances", "[1]"], "must be a JSON object"),
    (["--tolerances", '{"fp8": {}}'], "unknown precision 'fp8'"),
    (["--prediction", "junk"], "--prediction takes NAME=PATH"),
    (["--reference", "tensorflow"], "reference backend 'tensorflow' is not among"),
    (["--relative-floor", "0"], "--relative-floor must be positive"),
    (["--batch-size", "0"], "batch size must be >= 1"),
])
def test_option_errors(inputs: dict[str, Path], tmp_path: Path, extra: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        compare.main(argv(inputs, tmp_path, *extra))
    assert not (tmp_path / "comparison.json").exists()


def test_help_runs() -> None:
    proc = run_script("compare.py", "--help")
    assert "--prediction" in proc.stdout and "--per-sample" in proc.stdout


def test_peak_memory_does_not_grow_with_samples() -> None:
    # Same batch size for both sizes, so only the number of samples differs; a non-streaming pass over 50,000
    # samples of eight backends would hold at least 8 x 50,000 x 10 x 8 bytes = 30 MiB more.
    proc = run_script("bench_compare_memory.py", "--samples", "1000", "50000", "--batch-size", "1000")
    peaks = {}
    for line in proc.stdout.splitlines():
        label, sep, rest = line.partition(":")
        if sep and "samples" in label:
            peaks[int(label.split()[0])] = float(rest.split()[0])
    assert set(peaks) == {1000, 50000}, proc.stdout
    assert peaks[50000] - peaks[1000] < 8.0, proc.stdout


def test_compact_json_is_json() -> None:
    data = {"a": [1, 2.5, None], "b": {"c": [], "d": [{"e": [0, 1]}], "f": {}}, "g": "x [1,  2]"}
    text = compare.compact_json(data)
    assert json.loads(text) == data
    assert '"a": [1, 2.5, null]' in text and '"e": [0, 1]' in text
    with pytest.raises(ValueError):
        compare.compact_json({"x": float("nan")})


def test_noise_floor_and_output_kind_are_read_and_recorded(inputs: dict[str, Path], tmp_path: Path) -> None:
    check = tmp_path / "onnx_check.json"
    check.write_text(json.dumps({"noise_floor": {"floor": 2e-6, "checks": {}, "samples": 8, "scale": 1.0,
                                                 "floor_normalised": 2e-6, "output_kind": "probabilities"}}))
    out = tmp_path / "out"
    run_script("compare.py", *argv(inputs, out, "--noise-floor", str(check), "--output-kind", "probabilities",
                                   backends=("savedmodel", "onnxruntime")))
    data = json.loads((out / "comparison.json").read_text())
    assert data["noise_floor"]["floor"] == 2e-6 and data["inputs"]["noise_floor"] == str(check)
    assert data["output"]["kind"] == "probabilities" and data["output"]["how"].startswith("config")
    tol = data["pairs"]["savedmodel vs onnxruntime"]["tolerance"]
    assert tol["atol"] == pytest.approx(2e-5) and tol["source"] == "measured floor" and tol["floor"] == 2e-6


def test_a_check_without_a_noise_floor_is_refused(inputs: dict[str, Path], tmp_path: Path) -> None:
    old = tmp_path / "old_check.json"
    old.write_text(json.dumps({"max_abs_diff": 1e-6}))
    proc = run_script("compare.py", *argv(inputs, tmp_path / "out", "--noise-floor", str(old)), check=False)
    assert proc.returncode == 1 and "has no noise_floor.floor" in proc.stderr and "rerun the convert_onnx step" in \
        proc.stderr
    assert not (tmp_path / "out" / "comparison.json").exists()


@pytest.mark.parametrize("tf32_allowed,precision,passes", [(False, "fp32", False), (True, "tf32", True)])
def test_an_fp32_engine_that_allowed_tf32_is_not_judged_as_strict_fp32(
        inputs: dict[str, Path], tmp_path: Path, tf32_allowed: bool, precision: str, passes: bool) -> None:
    """The fp32 policy never calls an engine strict FP32 when its build record says TF32 was allowed: its pairs are
    judged (and named) at tf32. The same TF32-sized drift is a mismatch for a strict-FP32 engine."""
    ref = np.load(inputs["savedmodel"])
    noisy = tmp_path / "in" / "tensorrt_fp32.npy"
    np.save(noisy, np.clip(ref + np.random.default_rng(1).normal(0, 2e-3, ref.shape), 0, 1).astype(np.float32))
    record = tmp_path / "fp32.json"
    record.write_text(json.dumps({"precision": "fp32", "attestation": {"tf32_allowed": tf32_allowed,
                                                                       "fp16_allowed": False}}))
    out = tmp_path / "out"
    run_script("compare.py", *argv({**inputs, "tensorrt_fp32": noisy}, out, "--engine-info",
                                   f"tensorrt_fp32={record}", backends=("savedmodel", "tensorrt_fp32")))
    pair = json.loads((out / "comparison.json").read_text())["pairs"]["savedmodel vs tensorrt_fp32"]
    assert pair["precision"] == precision and (pair["verdict"] in ("consistent", "drift")) == passes
    assert ("not strict fp32" in pair["tolerance"]["reason"]) == tf32_allowed


def test_an_engine_record_for_no_prediction_is_refused(inputs: dict[str, Path], tmp_path: Path) -> None:
    extra = ("--engine-info", f"tensorrt_tf32={inputs['labels']}")
    proc = run_script("compare.py", *argv(inputs, tmp_path / "out", *extra), check=False)
    assert proc.returncode == 1 and "--engine-info for tensorrt_tf32, which has no --prediction" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_comparison_imports_nothing_it_does_not_use(inputs: dict[str, Path], tmp_path: Path) -> None:
    """compare's start is most of a 10,000-sample run: the modules it once imported for a few lines each (logging
    and queue through concurrent.futures; tempfile; shutil, with bz2 and lzma, which argparse imports for the
    terminal's width) stay out of a whole comparison."""
    code = ("import sys, compare\ncompare.main(sys.argv[1:])\n"
            "print(sorted(set(sys.modules) & {'logging', 'concurrent.futures', 'queue', 'tempfile', 'shutil', 'bz2', "
            "'lzma', 'zipfile', 'hashlib'}))")
    out = subprocess.run([sys.executable, "-c", code, *argv(inputs, tmp_path / "out")], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(SCRIPTS)})
    assert (tmp_path / "out" / "comparison.json").exists() and out.stdout.splitlines()[-1] == "[]", out.stdout


@pytest.mark.parametrize("columns", [None, "", "40", "250", "abc", "-3", "0"])
def test_help_is_as_wide_as_shutil_says(monkeypatch: pytest.MonkeyPatch, columns: str | None) -> None:
    import shutil

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert compare.terminal_columns() == shutil.get_terminal_size().columns
