"""The workflow as users run it: lint, schema, a real run of the tiny config, and which steps a change reruns.

Each test works in a copy of the workflow in a temporary directory, so the repository's results/ is untouched and
files can be edited the way a user edits them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, copy_workflow

TINY = REPO / "tests" / "data" / "config-tiny.yaml"


def snakemake(workdir: Path, *args: str, configfiles: tuple[Path, ...] = (TINY,), check: bool = True,
              replace: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "2"]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
        if replace:
            cmd.append("--replace-workflow-config")
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints for a (dry) run: rule -> number of jobs."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def summary_plan(workdir: Path, *extra: Path) -> dict[str, str]:
    """`snakemake --summary`: output file -> plan ('no update' or 'update pending')."""
    proc = snakemake(workdir, "--summary", configfiles=(TINY, *extra))
    plans = {}
    for line in proc.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) >= 6 and cols[0] != "output_file":
            plans[cols[0]] = cols[-1]
    return plans


def write_overlay(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------------------


def test_lint_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out


def test_snakefmt_is_clean() -> None:
    snakefmt = Path(sys.executable).parent / "snakefmt"
    files = ["Snakefile", *sorted(str(p.relative_to(REPO)) for p in (REPO / "rules").glob("*.smk"))]
    proc = subprocess.run([str(snakefmt), "--check", *files], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_has_log_benchmark_and_environment() -> None:
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    blocks = re.split(r"\n(?=rule |use rule )", text)
    rules = [b for b in blocks if b.startswith("rule ")]
    assert len(rules) >= 10
    for block in rules:
        name = block.split()[1].rstrip(":")
        for directive in ("log:", "benchmark:", "threads:", "resources:", "container:", "conda:"):
            assert directive in block, f"rule {name} lacks {directive}"


@pytest.mark.parametrize(
    "overlay, message",
    [
        ("onnx: {opset: 5}", "opset"),
        ("tensorrt: {precisions: [fp8], profile: {min_batch: 1, opt_batch: 1, max_batch: 1}}", "fp8"),
        ("models: {tiny: {num_test_samples: 0}}", "num_test_samples"),
        ("backends: [savedmodel, tflite]", "tflite"),
        ("report: {float_format: 'pretty'}", "float_format"),
        ("typo_key: 1", "typo_key"),
        ("models: {tiny: {dataset: mnist}}", "mnist"),
        ("tensorrt: {precisions: [fp32], profile: {min_batch: 8, opt_batch: 4, max_batch: 64}}", "min_batch"),
        ("benchmark: {enabled: true, backends: [onnxruntime], baseline: savedmodel}", "benchmark.baseline"),
        ("benchmark: {baseline: tensorrt}", "tensorrt"),
    ],
)
def test_invalid_config_is_rejected_before_anything_runs(tmp_path: Path, overlay: str, message: str) -> None:
    ws = copy_workflow(tmp_path)
    bad = write_overlay(tmp_path / "bad.yaml", overlay)
    proc = snakemake(ws, "--dry-run", configfiles=(TINY, bad), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert message in out, out
    assert not (ws / "results").exists()


def test_a_config_with_only_models_is_told_what_to_start_from(tmp_path: Path) -> None:
    """README's 'Your own model' snippet alone, as a new user writes a project's config.yaml: one short message
    naming the missing section and the file to copy, instead of Snakemake's dump of the schema and the config."""
    (tmp_path / "ws").mkdir()
    ws = copy_workflow(tmp_path / "ws")
    partial = write_overlay(tmp_path / "mine.yaml", "models: {mine: {dataset: none, import: {saved_model: sm, "
                            "samples: x.npy, labels: y.npy}}}")
    proc = snakemake(ws, "--dry-run", configfiles=(partial,), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "is not valid at the top level: 'datasets' is a required property" in out, out
    assert f"{ws}/config.yaml) sets every section: start from a copy of it" in out, out
    assert "$schema" not in out and len(out.splitlines()) < 15, out
    nested = write_overlay(tmp_path / "bad.yaml", "models: {tiny: {num_test_samples: 0}}")
    proc = snakemake(ws, "--dry-run", configfiles=(TINY, nested), check=False)
    out = proc.stdout + proc.stderr
    assert "is not valid at models.tiny.num_test_samples: 0 is not valid" in out and "$schema" not in out, out
    assert not (ws / "results").exists()


# A real run of the tiny config, shared by the tests below (the order of the rerun tests does not matter: each
# one works in its own copy of this run).

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = copy_workflow(tmp_path_factory.mktemp("run"))
    snakemake(ws)
    return ws


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished run, timestamps and Snakemake's metadata included."""
    dest = tmp_path / "ws"
    shutil.copytree(finished_run, dest, symlinks=True)
    return dest


@pytest.mark.slow
def test_tiny_pipeline_produces_report(finished_run: Path) -> None:
    results = finished_run / "results"
    for rel in ["tiny/saved_model/saved_model.pb", "tiny/model.onnx", "tiny/onnx_check.json",
                "tiny/predictions/savedmodel.npy", "tiny/predictions/onnxruntime.npy", "tiny/comparison.json",
                "report.md", "report.txt", "summary.json"]:
        assert (results / rel).exists(), rel
    sm = np.load(results / "tiny/predictions/savedmodel.npy", allow_pickle=False)
    ort = np.load(results / "tiny/predictions/onnxruntime.npy", allow_pickle=False)
    assert sm.shape == ort.shape == (120, 10)
    assert float(np.abs(sm - ort).max()) < 1e-4
    assert (sm.argmax(1) == ort.argmax(1)).all()
    summary = json.loads((results / "summary.json").read_text())
    assert "savedmodel" in json.dumps(summary) and "onnxruntime" in json.dumps(summary)
    report = (results / "report.md").read_text()
    assert "savedmodel" in report and "onnxruntime" in report
    assert json.loads((results / "gate.json").read_text())["gate"] == "pass"
    for rule in ["train", "convert_onnx", "predict_savedmodel", "predict_onnxruntime", "compare", "report", "gate"]:
        assert list((results / "logs" / rule).glob("*.log")), f"no log for {rule}"
        assert list((results / "benchmarks" / rule).glob("*.tsv")), f"no benchmark for {rule}"
    assert not list(results.rglob(".*.tmp")), "a temporary file was left behind"


@pytest.mark.slow
def test_own_model_is_imported_converted_and_compared(finished_run: Path, tmp_path: Path) -> None:
    """README's "Your own model": a SavedModel and .npy test data of the user's, outside the workflow, as an
    import entry; imported (and checked), converted, predicted and compared like a trained one."""
    mine = tmp_path / "mine"
    shutil.copytree(finished_run / "results" / "tiny" / "saved_model", mine / "saved_model")
    for name in ("test_samples", "test_labels"):
        shutil.copy(finished_run / "results" / "tiny" / "data" / f"{name}.npy", mine / f"{name}.npy")
    ws = copy_workflow(tmp_path)
    config = TINY.read_text().split("datasets:", 1)[1]
    own = write_overlay(tmp_path / "own.yaml", f"""models:
  mine:
    dataset: none
    import:
      saved_model: {mine / 'saved_model'}
      samples: {mine / 'test_samples.npy'}
      labels: {mine / 'test_labels.npy'}
datasets:{config}""")
    snakemake(ws, configfiles=(own,))
    results = ws / "results"
    metrics = json.loads((results / "mine" / "train_metrics.json").read_text())
    assert (metrics["test_samples"], metrics["classes"]) == (120, 10)
    assert not (results / "logs" / "train").exists()               # imported, not trained
    summary = json.loads((results / "summary.json").read_text())
    assert summary["verdict"] == "pass", summary
    sm = np.load(results / "mine" / "predictions" / "savedmodel.npy", allow_pickle=False)
    assert np.array_equal(sm, np.load(finished_run / "results" / "tiny" / "predictions" / "savedmodel.npy"))
    assert "mine" in (results / "report.md").read_text()


@pytest.mark.slow
def test_nothing_reruns_after_a_complete_run(run_copy: Path) -> None:
    assert planned_jobs(snakemake(run_copy, "--dry-run")) == {}


@pytest.mark.slow
def test_hyperparameter_edit_reruns_training_and_everything_downstream(run_copy: Path) -> None:
    overlay = write_overlay(run_copy / "edit.yaml",
                            "models: {tiny: {training: {epochs: 3, batch_size: 64, learning_rate: 0.01, seed: 0}}}")
    jobs = planned_jobs(snakemake(run_copy, "--dry-run", configfiles=(TINY, overlay)))
    assert jobs == {"train": 1, "convert_onnx": 1, "predict_savedmodel": 1, "predict_onnxruntime": 1,
                    "compare": 1, "report": 1, "gate": 1, "all": 1}


@pytest.mark.slow
def test_conversion_script_edit_reruns_conversion_and_downstream_only(run_copy: Path) -> None:
    time.sleep(1.1)  # mtime resolution
    script = run_copy / "scripts" / "convert_onnx.py"
    script.write_text(script.read_text() + "\n# edited\n")
    jobs = planned_jobs(snakemake(run_copy, "--dry-run"))
    assert jobs == {"convert_onnx": 1, "predict_onnxruntime": 1, "compare": 1, "report": 1, "gate": 1, "all": 1}
    plans = summary_plan(run_copy)
    assert plans["results/tiny/model.onnx"] == "update pending"
    assert plans["results/tiny/saved_model"] == "no update"
    assert plans["results/tiny/predictions/savedmodel.npy"] == "no update"


@pytest.mark.slow
def test_report_format_edit_reruns_only_the_report(run_copy: Path) -> None:
    overlay = write_overlay(run_copy / "edit.yaml", "report: {fail_on_mismatch: true, float_format: '.5g'}")
    jobs = planned_jobs(snakemake(run_copy, "--dry-run", configfiles=(TINY, overlay)))
    assert jobs == {"report": 1, "gate": 1, "all": 1}


@pytest.mark.slow
def test_gate_setting_edit_reruns_only_the_gate(run_copy: Path) -> None:
    overlay = write_overlay(run_copy / "edit.yaml", "report: {fail_on_mismatch: false, float_format: '.3g'}")
    assert planned_jobs(snakemake(run_copy, "--dry-run", configfiles=(TINY, overlay))) == {"gate": 1, "all": 1}


@pytest.mark.slow
def test_a_mismatch_fails_the_run_at_the_gate_and_keeps_the_report(run_copy: Path) -> None:
    """A stand-in ONNX Runtime prediction whose top-1 differs on a quarter of the samples, run through `make demo`
    (on the tiny config): the run fails with the gate's one line, after the report it points to was printed, and
    the report and summary.json stay, naming the mismatch."""
    path = run_copy / "results" / "tiny" / "predictions" / "onnxruntime.npy"
    probs = np.load(path, allow_pickle=False)
    for i in range(0, len(probs), 4):                     # swap the two most likely classes
        first, second = np.argsort(probs[i])[::-1][:2]
        probs[i, [first, second]] = probs[i, [second, first]]
    time.sleep(1.1)                                       # mtime resolution
    np.save(path, probs)
    shutil.copy(TINY, run_copy / "config.yaml")           # make demo runs the default config file
    shutil.copy(REPO / "Makefile", run_copy / "Makefile")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(["make", "-o", ".venv/.installed", "demo"], cwd=run_copy, capture_output=True, text=True,
                          env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert planned_jobs(proc) == {"compare": 1, "report": 1, "gate": 1, "all": 1}, out
    last = proc.stderr.strip().splitlines()[-3:]                  # the gate's line, then make's two
    assert last[0].startswith("gate.py: error: 1 pair(s) fail the gate: tiny: savedmodel vs onnxruntime is "
                              "mismatch (") and "results/report.md" in last[0], proc.stderr
    assert last[1] == "make demo: the pipeline failed (exit status 1)", proc.stderr
    results = run_copy / "results"
    assert "Overall: FAIL" in proc.stdout and (results / "report.txt").read_text() in proc.stdout
    summary = json.loads((results / "summary.json").read_text())
    assert summary["verdict"] == "fail" and summary["mismatches"] == ["tiny: savedmodel vs onnxruntime"]
    assert summary["models"]["tiny"]["pairs"]["savedmodel vs onnxruntime"]["verdict"] == "mismatch"
    assert re.search(r"savedmodel vs onnxruntime *\| *mismatch", (results / "report.md").read_text())
    assert not (results / "gate.json").exists()
    assert not list(results.rglob(".*.tmp")), "a temporary file was left behind"


@pytest.mark.slow
def test_real_rerun_after_model_edit_runs_exactly_the_outdated_steps(run_copy: Path) -> None:
    before = (run_copy / "results/tiny/saved_model/saved_model.pb").stat().st_mtime_ns
    onnx_check = json.loads((run_copy / "results/tiny/onnx_check.json").read_text())
    overlay = write_overlay(run_copy / "edit.yaml", "models: {tiny: {architecture: {blocks: [6], convs_per_block: 1,"
                            " batch_norm: true, block_dropout: 0.0, dense_units: 16, dropout: 0.1}}}")
    proc = snakemake(run_copy, configfiles=(TINY, overlay))
    assert planned_jobs(proc) == {"train": 1, "convert_onnx": 1, "predict_savedmodel": 1, "predict_onnxruntime": 1,
                                  "compare": 1, "report": 1, "gate": 1, "all": 1}
    assert (run_copy / "results/tiny/saved_model/saved_model.pb").stat().st_mtime_ns > before
    assert json.loads((run_copy / "results/tiny/onnx_check.json").read_text()) != onnx_check
    assert planned_jobs(snakemake(run_copy, "--dry-run", configfiles=(TINY, overlay))) == {}


CPP_OVERLAY = """
backends: [savedmodel, onnxruntime, tensorrt_cpp]
tensorrt: {build_engines: true, flavour: auto, precisions: [fp32], tactic_sources: default, workspace_mib: 256,
           profile: {min_batch: 1, opt_batch: 8, max_batch: 64}}
"""


@pytest.mark.slow
def test_cpp_edit_rebuilds_the_binary_and_its_predictions_only(run_copy: Path) -> None:
    """Real engine (TensorRT-RTX), real CSV export; the binary is a stand-in (no TensorRT to link here) put in
    place with --touch, as a user would after building it by hand."""
    overlay = write_overlay(run_copy / "cpp.yaml", CPP_OVERLAY)
    configs = (TINY, overlay)
    snakemake(run_copy, "results/tiny/data/test_samples.csv", "results/tiny/engines/fp32.trt", configfiles=configs)
    binary = run_copy / "results" / "bin" / "trt_infer"
    binary.parent.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "data" / "stand_in_trt_infer.py", binary)
    binary.chmod(0o755)
    snakemake(run_copy, "--touch", "results/bin/trt_infer", configfiles=configs)
    ran = planned_jobs(snakemake(run_copy, configfiles=configs))
    assert ran == {"predict_tensorrt_cpp": 1, "predict_tensorrt_cpp_csv": 1, "compare": 1, "report": 1, "gate": 1,
                   "all": 1}
    report = (run_copy / "results" / "report.md").read_text()
    assert re.search(r"tensorrt_cpp_fp32 vs tensorrt_cpp_csv_fp32 *\| *identical", report), report
    assert planned_jobs(snakemake(run_copy, "--dry-run", configfiles=configs)) == {}

    time.sleep(1.1)
    source = sorted((run_copy / "cpp" / "src").glob("*.cpp"))[0]
    source.write_text(source.read_text() + "\n// edited\n")
    jobs = planned_jobs(snakemake(run_copy, "--dry-run", configfiles=configs))
    assert jobs == {"compile_cpp": 1, "predict_tensorrt_cpp": 1, "predict_tensorrt_cpp_csv": 1, "compare": 1,
                    "report": 1, "gate": 1, "all": 1}
    plans = summary_plan(run_copy, overlay)
    assert plans["results/tiny/model.onnx"] == "no update"
    assert plans["results/tiny/engines/fp32.trt"] == "no update"
    assert plans["results/tiny/predictions/onnxruntime.npy"] == "no update"
