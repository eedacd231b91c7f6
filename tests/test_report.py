"""scripts/report.py and tables.py: summary.json's shape, the tables on a crafted comparison, a mismatch reported
without failing (failing is scripts/gate.py's, tests/test_gate.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import report  # scripts/ is on the test path (pyproject.toml)
from conftest import compare_config, leftovers, run_script
from trtverify import metrics, tables
from trtverify.errors import UserError
from trtverify.schema import schema_default

compare = functools.partial(metrics.compare, **compare_config())   # compare.py's settings by default
FMT = schema_default("report.float_format")                         # the report's float format by default

SUMMARY_KEYS = ["schema_version", "verdict", "verdict_counts", "mismatches", "inconclusive",
                "models", "plots", "generator"]
MODEL_KEYS = ["verdict", "inconclusive", "output_kind", "noise_floor", "reference", "num_samples", "accuracy", "pairs",
              "parity", "flipped_samples"]
PAIR_KEYS = ["a", "b", "precision", "parity", "verdict", "reason", "max_abs_diff", "top1_agreement",
             "accuracy_change"]

REF = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]], dtype=np.float32)
LABELS = np.array([0, 1, 2, 1])


def crafted(mismatch: bool = True) -> dict[str, Any]:
    """Four samples, three classes: ONNX Runtime bit-equal, FP16 flips sample 2, C++ one ulp off Python TensorRT."""
    fp16 = REF.copy()
    if mismatch:
        fp16[2] = [0.3, 0.45, 0.25]
    cpp = fp16.copy()
    cpp[3, 1] = np.nextafter(cpp[3, 1], np.float32(1))
    if not mismatch:
        cpp = fp16.copy()
    preds = {"savedmodel": REF, "onnxruntime": REF.copy(), "tensorrt_fp16": fp16, "tensorrt_cpp_fp16": cpp}
    return compare(preds, LABELS, model="tiny", per_sample_limit=2).to_dict()


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"bad": tmp_path / "bad.json", "good": tmp_path / "good.json", "samples": tmp_path / "x.npy"}
    paths["bad"].write_text(json.dumps(crafted(True)))
    paths["good"].write_text(json.dumps(crafted(False)))
    np.save(paths["samples"], np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 1)).astype(np.float32))
    return paths


def outputs(out: Path) -> list[str]:
    return ["--markdown", str(out / "report.md"), "--text", str(out / "report.txt"), "--summary",
            str(out / "summary.json"), "--plots", str(out / "plots")]


def test_tables_of_a_crafted_comparison() -> None:
    cmp = crafted(True)
    accuracy = tables.render(tables.accuracy_table(cmp, FMT), "text", FMT).splitlines()
    assert accuracy[0].split() == ["backend", "precision", "accuracy", "95%", "CI", "vs", "reference", "correct",
                                   "mean", "top-1", "prob", "NaN", "Inf"]
    # Wilson 3/4: centre (0.75 + z^2/8) / (1 + z^2/4) = 0.6275, half-width z sqrt(3/64 + z^2/64) / (1 + z^2/4) = 0.327
    assert accuracy[2].split() == ["savedmodel", "fp32", "0.75", "[0.301,", "0.954]", "-", "3/4", "0.6", "0", "0"]
    assert accuracy[4].split() == ["tensorrt_fp16", "fp16", "0.5", "[0.15,", "0.85]", "-0.25", "2/4", "0.612", "0",
                                   "0"]

    verdicts = {row[0]: row for row in tables.verdict_table(cmp, FMT)[1]}
    assert verdicts["savedmodel vs onnxruntime"][2] == "identical"
    assert verdicts["savedmodel vs tensorrt_fp16"][2] == "mismatch"
    assert verdicts["savedmodel vs tensorrt_fp16"][4] == pytest.approx(0.75)          # top-1 agreement
    assert verdicts["savedmodel vs tensorrt_fp16"][5] == "[0.301, 0.954]"             # its Wilson interval
    assert verdicts["savedmodel vs tensorrt_fp16"][7] == "1 (0)"                      # one flip, no tie
    assert verdicts["tensorrt_fp16 vs tensorrt_cpp_fp16"][2] == "mismatch (parity)"
    assert verdicts["savedmodel vs tensorrt_fp16"][11] == "0.02 + 0.02|ref| (default)"

    parity = tables.render(tables.parity_table(cmp), "text", FMT)
    assert "tensorrt_fp16 vs tensorrt_cpp_fp16  differs" in parity
    assert "sample 3 class 1: tensorrt_fp16 0.25 vs tensorrt_cpp_fp16 0.25000003" in parity

    headers, rows = tables.per_sample_table(cmp, FMT)
    assert headers == ["sample", "label", "savedmodel", "onnxruntime", "tensorrt_fp16", "tensorrt_cpp_fp16"]
    assert rows == [[0, 0, "0 (0.7)", "0 (0.7)", "0 (0.7)", "0 (0.7)"], [1, 1, "1 (0.8)", "1 (0.8)", "1 (0.8)",
                                                                        "1 (0.8)"]]
    headers, rows = tables.flipped_table(cmp, FMT)
    assert rows == [[2, 2, "2:0.4 0:0.3 1:0.3", "2:0.4 0:0.3 1:0.3", "1:0.45 0:0.3 2:0.25", "1:0.45 0:0.3 2:0.25"]]
    per_class = tables.per_class_table(cmp)
    assert per_class[0] == ["class", "samples", "savedmodel vs onnxruntime", "savedmodel vs tensorrt_fp16",
                            "savedmodel vs tensorrt_cpp_fp16"]
    assert per_class[1][2] == [2, 1, 1.0, 0.0, 0.0]                     # class 2: its one sample flipped
    reasons = dict((r[0], r[2]) for r in tables.reason_table(cmp)[1])
    assert "top-1 agreement 0.75 with 0 tie(s) excused (at least 0.98" in reasons["savedmodel vs tensorrt_fp16"]
    assert "compare.tolerances.fp16.min_top1_agreement: 0.75" in reasons["savedmodel vs tensorrt_fp16"]


def test_markdown_escapes_pipes_and_text_does_not() -> None:
    cmp = crafted(True)
    md = tables.render(tables.verdict_table(cmp, FMT), "markdown", FMT)
    lines = md.splitlines()
    assert all(line.count("|") - line.count("\\|") == lines[0].count("|") - lines[0].count("\\|") for line in lines)
    assert "0.02 + 0.02\\|ref\\|" in md
    assert "0.02 + 0.02|ref|" in tables.render(tables.verdict_table(cmp, FMT), "text", FMT)


def test_summary_shape_is_pinned(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    report.main(["--comparison", f"tiny={files['good']}", "--comparison", f"other={files['bad']}",
                 *outputs(out)])
    s = json.loads((out / "summary.json").read_text())
    assert list(s) == SUMMARY_KEYS
    assert (s["schema_version"], s["verdict"]) == (2, "fail")
    assert list(s["verdict_counts"]) == ["identical", "consistent", "drift", "mismatch", "inconclusive"]
    assert list(s["models"]) == ["tiny", "other"]
    for model in s["models"].values():
        assert list(model) == MODEL_KEYS
        for pair in model["pairs"].values():
            assert list(pair) == PAIR_KEYS
    assert s["models"]["tiny"]["verdict"] == "pass" and s["models"]["other"]["verdict"] == "fail"
    assert s["models"]["tiny"]["parity"] == {"tensorrt_fp16 vs tensorrt_cpp_fp16": "identical"}
    assert s["mismatches"] == ["other: savedmodel vs tensorrt_fp16", "other: savedmodel vs tensorrt_cpp_fp16",
                               "other: onnxruntime vs tensorrt_fp16", "other: onnxruntime vs tensorrt_cpp_fp16",
                               "other: tensorrt_fp16 vs tensorrt_cpp_fp16"]
    assert s["models"]["tiny"]["accuracy"] == {"savedmodel": 0.75, "onnxruntime": 0.75, "tensorrt_fp16": 0.75,
                                               "tensorrt_cpp_fp16": 0.75}
    assert set(s["plots"]) == {p.name for p in (out / "plots").iterdir()}


def test_a_mismatch_writes_everything_and_exits_zero(files: dict[str, Path], tmp_path: Path) -> None:
    """The report never fails on a verdict: the gate step does, so Snakemake cannot delete these files."""
    out = tmp_path / "out"
    proc = run_script("report.py", "--comparison", f"tiny={files['bad']}", "--samples", f"tiny={files['samples']}",
                      *outputs(out), check=False)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    assert "Overall: FAIL" in proc.stdout and "Accuracy per format" in proc.stdout       # the log has the report
    assert (out / "report.txt").read_text() in proc.stdout
    assert json.loads((out / "summary.json").read_text())["verdict"] == "fail"
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"tiny-per-class-agreement.png", "tiny-flipped.png",
            "tiny-abs-diff-savedmodel-vs-tensorrt_fp16.png"} <= plots
    assert all((out / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    md = (out / "report.md").read_text()
    assert "![tiny-flipped](plots/tiny-flipped.png)" in md and "## Model tiny" in md
    assert leftovers(out) == []


def test_passing_report_exits_zero(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert report.main(["--comparison", f"tiny={files['good']}", "--samples", f"tiny={files['samples']}",
                        "--float-format", ".5f", *outputs(out)]) == 0
    text = (out / "report.txt").read_text()
    assert text.startswith("trtverify report\n") and "Overall: PASS" in text and "0.75000" in text
    assert not (out / "plots" / "tiny-flipped.png").exists()              # nothing flipped, nothing drawn


def bench_tsv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A benchmark table in bench_table.py's column order."""
    import bench_table

    lines = ["\t".join(bench_table.COLUMNS)]
    lines += ["\t".join(str(row.get(c, "")) for c in bench_table.COLUMNS) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_extra_tables_are_rendered(files: dict[str, Path], tmp_path: Path) -> None:
    costs = tmp_path / "costs.tsv"
    costs.write_text("step\twildcards\tseconds\ntrain\ttiny\t12.50\ncompare\ttiny\t0.300\n")
    speed = bench_tsv(tmp_path / "benchmarks.tsv", [
        {"model": "tiny", "backend": "onnxruntime", "precision": "fp32", "batch": 8, "cuda_graph": False,
         "mean_ms": 0.247197, "p50_ms": 0.124266, "p99_ms": 4.17257, "throughput_samples_per_s": 32362.878,
         "peak_host_rss_mib": 141.0, "device": "CPU", "warmup": 20},
        {"model": "tiny", "backend": "tensorrt_cpp", "precision": "fp16", "batch": 8, "cuda_graph": False,
         "mean_ms": 0.0724518, "p50_ms": 0.07104, "p99_ms": 0.098499, "throughput_samples_per_s": 110418.176,
         "speedup_p50": 1.749, "gpu_compute_p50_ms": 0.0616, "peak_host_rss_mib": 283.5, "gpu_memory_mib": 10.0,
         "device": "NVIDIA H200", "warmup": 20}])
    out = tmp_path / "out"
    report.main(["--comparison", f"tiny={files['good']}", "--pipeline-costs", str(costs), "--speed", str(speed),
                 *outputs(out)])
    md = (out / "report.md").read_text()
    assert "## Pipeline costs" in md and "| train   | tiny        | 12.50     |" in md   # as it is
    section = md.split("## Speed\n")[1]
    header = [c.strip() for c in section.strip().splitlines()[0].strip("|").split("|")]
    assert header == list(tables.SPEED_COLUMNS)      # the main columns; benchmarks.tsv keeps the rest
    assert "mean_ms" not in section and "warmup" not in section
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in section.strip().splitlines()[2:4]]
    assert cells[0][5:9] == ["0.1243", "4.173", "32363", ""]            # p50, p99, samples/s, no speed-up
    assert cells[1][5:13] == ["0.07104", "0.0985", "110418", "1.75", "0.0616", "284", "10", "NVIDIA H200"]


def test_a_speed_table_that_is_not_a_benchmark_table_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    costs = tmp_path / "costs.tsv"
    costs.write_text("step\twildcards\tseconds\ntrain\ttiny\t12.50\n")
    with pytest.raises(UserError, match="lacks the column.*not a benchmark table"):
        report.main(["--comparison", f"tiny={files['good']}", "--speed", str(costs), *outputs(tmp_path / "out")])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("problem,message", [
    ("missing", "does not exist"), ("version", "schema_version 99, this report reads 1"),
    ("keys", "lacks model"), ("format", "float format 'pretty'"), ("samples", "--samples for ghost"),
    ("costs", "Pipeline costs table"), ("twice", "names model 'tiny' twice"),
])
def test_bad_inputs_write_nothing(files: dict[str, Path], tmp_path: Path, problem: str, message: str) -> None:
    args = ["--comparison", f"tiny={files['good']}"]
    if problem == "missing":
        args += ["--comparison", f"x={tmp_path / 'nope.json'}"]
    elif problem == "version":
        (tmp_path / "v.json").write_text(json.dumps({**crafted(False), "schema_version": 99}))
        args += ["--comparison", f"v={tmp_path / 'v.json'}"]
    elif problem == "keys":
        (tmp_path / "k.json").write_text(json.dumps({"schema_version": 1}))
        args += ["--comparison", f"k={tmp_path / 'k.json'}"]
    elif problem == "format":
        args += ["--float-format", "pretty"]
    elif problem == "samples":
        args += ["--samples", f"ghost={files['samples']}"]
    elif problem == "costs":
        args += ["--pipeline-costs", str(tmp_path / "none.tsv")]
    else:
        args += ["--comparison", f"tiny={files['bad']}"]
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        report.main(args + outputs(out))
    assert not out.exists()


def test_help_runs_and_offers_no_failing_flag() -> None:
    proc = run_script("report.py", "--help")
    assert "--summary" in proc.stdout and "fail-on" not in proc.stdout


def constant_comparison() -> dict[str, Any]:
    const = np.tile(np.array([[0.2, 0.5, 0.3]], dtype=np.float32), (4, 1))
    return compare({"savedmodel": const, "onnxruntime": const.copy()}, LABELS, model="flat").to_dict()


def test_inconclusive_is_a_verdict_of_its_own_in_tables_and_summary(files: dict[str, Path], tmp_path: Path) -> None:
    cmp = constant_comparison()
    counts = tables.verdict_counts({"flat": cmp})
    assert counts["inconclusive"] == 1 and counts["identical"] == 0
    assert tables.headline({"flat": cmp}).startswith("Overall: INCONCLUSIVE.")
    assert "INCONCLUSIVE: the reference's outputs are (nearly) constant" in tables.model_intro(cmp)
    assert [r[1] for r in tables.reason_table(cmp)[1]] == ["inconclusive"]
    path = tmp_path / "flat.json"
    path.write_text(json.dumps(cmp))
    out = tmp_path / "out"
    report.main(["--comparison", f"flat={path}", "--comparison", f"tiny={files['good']}", *outputs(out)])
    s = json.loads((out / "summary.json").read_text())
    assert s["verdict"] == "inconclusive" and s["models"]["flat"]["verdict"] == "inconclusive"
    assert s["models"]["tiny"]["verdict"] == "pass"
    assert s["inconclusive"][0].startswith("flat: savedmodel vs onnxruntime (the reference's outputs")
    assert s["models"]["flat"]["pairs"]["savedmodel vs onnxruntime"]["verdict"] == "inconclusive"


def test_regression_outputs_are_worded_as_such(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(3, 1, (4, 1)).astype(np.float32)
    cmp = compare({"savedmodel": y, "onnxruntime": y + np.float32(1e-7)}, np.zeros(4, dtype=np.int64),
                  model="reg").to_dict()
    sections = [title for title, _, _ in tables.model_sections(cmp, ".3g")]
    assert sections == ["Differences per pair (output units)", "Verdicts per pair"]
    assert "top-1 agree" not in tables.verdict_table(cmp, FMT)[0]
    assert "1 output value(s) (other: detected: one column)" in tables.model_intro(cmp)
    assert "conversion aids" not in tables.model_intro(cmp)
    aided = tables.model_intro({**cmp, "conversion_aids": ["Erfc as 1 - Erf (exact GELU) x 3"]})
    assert "needed trtverify's conversion aids, which tf2onnx's own command line lacks (Erfc as 1 - Erf" in aided
    text = tables.model_report("reg", cmp, "text", ".3g")
    assert "top-1" not in text and "probabilit" not in text and "classes" not in text
    path = tmp_path / "reg.json"
    path.write_text(json.dumps(cmp))
    report.main(["--comparison", f"reg={path}", *outputs(tmp_path / "out")])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["models"]["reg"]["output_kind"] == "other" and summary["verdict"] == "pass"
    assert summary["plots"] == ["reg-abs-diff-savedmodel-vs-onnxruntime.png"]        # no per-class plot


def test_engine_notes_attestation_and_localization_reach_the_report(files: dict[str, Path], tmp_path: Path) -> None:
    """Beside a model's verdicts: the builder's accuracy warnings, an fp32 engine that was not strict FP32, the
    command that localizes a pair that is not identical; the attestation table; and, once localize has run, its
    sections and per-layer plot."""
    from test_localize import synthetic_localization

    engines = tmp_path / "results" / "bad" / "engines"
    engines.mkdir(parents=True)
    attestation = {"tf32_allowed": True, "fp16_allowed": False, "strict_fp32": False, "inspector": "ok",
                   "output_precisions": {"FLOAT": 3}, "accuracy_warnings": ["Weights [name=conv] had subnormal FP16"]}
    (engines / "fp32.json").write_text(json.dumps({"precision": "fp32", "attestation": attestation}))
    loc = tmp_path / "localization.json"
    loc.write_text(json.dumps(synthetic_localization()))
    out = tmp_path / "out"
    report.main(["--comparison", f"bad={files['bad']}", "--engine-info", str(engines / "fp32.json"),
                 "--localization", f"bad={loc}", *outputs(out)])
    text = (out / "report.md").read_text()
    assert "Engine fp32 is not strict FP32 (TF32 allowed: True" in text
    assert "Engine fp32: the builder warned: Weights [name=conv] had subnormal FP16" in text
    assert "`snakemake results/bad/localization.json`" in text
    assert "## Precision attestation" in text and "First divergent layer: dense, in hop onnxruntime->tensorrt_fp16" \
        in text
    assert (out / "plots" / "bad-layer-errors.png").stat().st_size > 0
    proc = run_script("report.py", "--comparison", f"bad={files['bad']}", "--localization", f"other={loc}",
                      *outputs(tmp_path / "out2"), check=False)
    assert proc.returncode == 1 and "--localization for other, which has no --comparison" in proc.stderr
