"""tools/bench_compare.py: the throughput benchmark runs compare.py on what it wrote and reports its figures."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def tool(name: str) -> ModuleType:
    """A module of tools/ (the benchmarks), imported with that folder on the path only while it loads."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "tools"))


def test_bench_compare_reports_throughput_of_a_real_comparison(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO / "tools" / "bench_compare.py"), "--samples", "300", "--classes",
                          "20", "--kind", "logits", "--batch-size", "128", "--work", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"4 backends x 300 x 20 logits .*: ([0-9.]+) s, ([0-9.]+) GB/s, peak RSS (\d+) MB", out)
    assert m, out
    assert float(m.group(1)) > 0 and int(m.group(3)) > 0
    # without --threads, compare gets what the pipeline gives it here: the rule's threads, at most the cores
    assert f"{min(tool('bench_compare').rule_threads('compare'), os.cpu_count() or 1)} thread(s):" in out, out
    result = json.loads((tmp_path / "logits-300x20" / "comparison.json").read_text())
    assert result["num_samples"] == 300 and len(result["pairs"]) == 6     # four backends, every pair
    assert 0 < result["pairs"]["savedmodel vs tensorrt_fp16"]["metrics"]["max_abs_diff"] < 0.05


def test_bench_compare_takes_the_fp16_backends_distance(tmp_path: Path) -> None:
    """--fp16-noise sets how far the fp16 backend lies from the reference (its files apart from the default's)."""
    out = subprocess.run([sys.executable, str(REPO / "tools" / "bench_compare.py"), "--samples", "300", "--classes",
                          "20", "--kind", "logits", "--batch-size", "128", "--work", str(tmp_path), "--fp16-noise",
                          "0.5"], capture_output=True, text=True, check=True).stdout
    assert "fp16 noise 0.5)" in out, out
    result = json.loads((tmp_path / "logits-300x20-fp16-0.5" / "comparison.json").read_text())
    assert result["pairs"]["savedmodel vs tensorrt_fp16"]["metrics"]["max_abs_diff"] > 1.0
    bad = subprocess.run([sys.executable, str(REPO / "tools" / "bench_compare.py"), "--work", str(tmp_path / "bad"),
                          "--fp16-noise", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "give 0 or more" in bad.stderr and not (tmp_path / "bad").exists()


def test_bench_compare_repeats_and_prints_the_median_run(tmp_path: Path) -> None:
    """--repeat N: each size runs N times and the median run is printed with the range; 0 runs is refused."""
    args = [sys.executable, str(REPO / "tools" / "bench_compare.py"), "--samples", "300", "--classes", "20",
            "--batch-size", "128", "--work", str(tmp_path)]
    out = subprocess.run(args + ["--repeat", "3"], capture_output=True, text=True, check=True).stdout
    m = re.search(r": ([0-9.]+) s, [0-9.]+ GB/s, peak RSS \d+ MB; median of 3 runs, ([0-9.]+)-([0-9.]+) s", out)
    assert m, out
    assert float(m.group(2)) <= float(m.group(1)) <= float(m.group(3))
    bad = subprocess.run(args + ["--repeat", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "give 1 or more" in bad.stderr


def test_the_marginal_rate_is_the_median_of_the_turns() -> None:
    """Each turn's extra bytes over its extra seconds; the lower middle one, its range, and the turns without a rate
    (the large run no slower than the small one)."""
    rate = tool("bench_compare").marginal_rate
    assert rate(10**9, [0.2], [0.7]) == "2.000 GB/s"
    assert rate(10**9, [0.2, 0.2, 0.3], [1.2, 2.2, 0.25]) == \
        "0.500 GB/s (median of 2 turns, 0.500-1.000; 1 more where the larger run was not slower)"
    assert rate(10**9, [0.2, 0.2, 0.2], [1.2, 2.2, 0.45]) == "1.000 GB/s (median of 3 turns, 0.500-4.000)"
    assert rate(10**9, [0.5], [0.5]) == "n/a (the larger run was not slower)"


# The benchmarks run the steps' scripts as the rules do; these are the rules that run each one.
BENCH_SCALE_RULES = {"import": "import_model", "convert": "convert_onnx", "predict_savedmodel": "predict_savedmodel",
                     "predict_onnxruntime": "predict_onnxruntime", "compare": "compare"}
# Options a rule passes through a list of params (rules/common.smk builds them from the backends), not in its text.
LISTED = {"--prediction", "--engine-info"}


def rule_options(rule: str) -> set[str]:
    """The options a rule's shell command passes, from its text in rules/ (the rule up to the next one)."""
    block = tool("bench_compare").rule_text(rule)
    assert block is not None, f"no rule {rule} in rules/"
    shell = block.split("shell:", 1)[1]
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", shell))


def options(command: list[str]) -> set[str]:
    """The options of a command, less those a rule passes as a list of params (LISTED)."""
    return {arg.split("=", 1)[0] for arg in command if arg.startswith("--")} - LISTED


def test_option_parsing_sees_what_a_rule_passes() -> None:
    assert rule_options("compare") >= {"--reference", "--tolerances", "--noise-floor", "--per-sample-rows"}
    assert options(["x.py", "--samples-in=a", "--opset", "17", "-v", "--prediction", "a=b"]) == {"--samples-in",
                                                                                                 "--opset"}
    common = (REPO / "rules" / "common.smk").read_text()
    assert all(re.search(rf'"{option}[="]', common) for option in LISTED)


def test_the_benchmarks_pass_every_option_their_rules_pass(tmp_path: Path) -> None:
    """A rule that gains an option fails this until the benchmarks pass it too: a left-out option makes the step
    read the schema, or run something the pipeline does not."""
    bench_compare, bench_scale = tool("bench_compare"), tool("bench_scale")
    steps = bench_scale.steps(tmp_path, 10, 32)
    assert set(steps) == set(BENCH_SCALE_RULES)
    differ = {step: sorted(options(cmd) ^ rule_options(BENCH_SCALE_RULES[step])) for step, cmd in steps.items()}
    assert {step: d for step, d in differ.items() if d} == {}
    args = argparse.Namespace(batch_size=64, threads=2, kind="logits")
    synthetic = bench_compare.command(args, tmp_path, {"savedmodel": tmp_path / "a.npy"})
    assert rule_options("compare") - options(synthetic) == {"--noise-floor"}     # no conversion, no record of one
    assert options(synthetic) <= rule_options("compare")
    # compare runs on the rule's threads, as Snakemake gives them on this machine, read from the rule
    given = steps["compare"][steps["compare"].index("--threads") + 1]
    assert int(given) == min(bench_compare.rule_threads("compare"), os.cpu_count() or 1)


def test_the_benchmarks_read_a_rules_threads_from_the_rule(tmp_path: Path) -> None:
    bench_compare = tool("bench_compare")
    (tmp_path / "a.smk").write_text('rule one:\n    output: "x"\n    # comment\n    threads: 7\n    shell: "true"\n\n\n'
                                    'rule two:\n    output: "y"\n    threads: BACKEND["x"].threads\n'
                                    '    shell: "threads: 3"\n')
    assert bench_compare.rule_threads("one", tmp_path) == 7
    for rule in ("two", "three", "on"):     # not a number; no such rule; a prefix of one is not the rule
        with pytest.raises(SystemExit, match=f"no rule {rule} in"):
            bench_compare.rule_threads(rule, tmp_path)


def test_bench_scale_pairs_each_run_with_its_bare_loop() -> None:
    """--repeat: besides the ratio of the two medians, the median of each turn's ratio (a step and its bare loop run
    back to back), the lower middle one of an even number. Here the machine's load moves from turn to turn: three
    of the four turns say 1.1, while the medians set the step's 0.2 against the bare loop's 0.1."""
    bench_scale = tool("bench_scale")
    runs = [({"seconds": a}, {"seconds": b}) for a, b in [(0.2, 0.1), (0.33, 0.3), (0.44, 0.4), (0.11, 0.1)]]
    medians = [bench_scale.median_run([{**run[i], "peak_rss_mb": 0.0} for run in runs])["seconds"] for i in (0, 1)]
    assert medians[0] / medians[1] == pytest.approx(2.0)
    assert bench_scale.turn_ratio(runs) == pytest.approx(1.1)
    assert bench_scale.turn_ratio(runs[:3]) == pytest.approx(1.1)
    assert bench_scale.turn_ratio(runs[:1]) == pytest.approx(2.0)


def test_bench_scale_takes_the_median_run_and_the_highest_peak() -> None:
    """--repeat: a step's seconds are the median of its runs (the lower middle one of an even number, a run that
    happened), its peak RSS the highest any run reached."""
    bench_scale = tool("bench_scale")
    runs = [{"seconds": s, "peak_rss_mb": m} for s, m in [(0.3, 90.0), (0.1, 120.0), (0.2, 80.0), (0.9, 85.0)]]
    assert bench_scale.median_run(runs) == {"seconds": 0.2, "peak_rss_mb": 120.0}
    assert bench_scale.median_run(runs[:3]) == {"seconds": 0.2, "peak_rss_mb": 120.0}
    assert bench_scale.median_run(runs[3:]) == {"seconds": 0.9, "peak_rss_mb": 85.0}


def test_bench_scale_reads_through_the_files_a_step_names(tmp_path: Path) -> None:
    """Before each run, the files under --work that the step's command names and that exist, a folder's files
    included and a link as its target, once each; nothing outside --work (the scripts), nothing missing."""
    bench_scale = tool("bench_scale")
    src, run = tmp_path / "src", tmp_path / "run"
    (src / "saved_model" / "variables").mkdir(parents=True)
    (run / "saved_model").mkdir(parents=True)
    files = {src / "saved_model" / "saved_model.pb": b"pb", src / "saved_model" / "variables" / "v.data": b"vv",
             src / "x10.npy": b"x" * 100, src / "y10.npy": b"y"}
    for file, data in files.items():
        file.write_bytes(data)
    (run / "x.npy").symlink_to(src / "x10.npy")
    steps = bench_scale.steps(tmp_path, 10, 32)
    assert bench_scale.named_files(steps["import"], tmp_path) == [f.resolve() for f in sorted(files)]
    assert bench_scale.named_files(steps["predict_savedmodel"], tmp_path) == [(src / "x10.npy").resolve()]
    assert bench_scale.read_through(bench_scale.named_files(steps["import"], tmp_path)) == 105
    (run / "savedmodel.npy").write_bytes(b"s")
    assert bench_scale.named_files(steps["compare"], tmp_path) == [(src / "x10.npy").resolve(),
                                                                  (run / "savedmodel.npy").resolve()]


@pytest.mark.parametrize(("seconds", "repeat", "expected"), [(0.5, 1, 15), (25.0, 1, 3), (30.0, 1, 2),
                                                               (100.0, 1, 1), (100.0, 3, 3), (0.5, 20, 20)])
def test_bench_scale_turns_until_the_step_has_run_long_enough(monkeypatch: pytest.MonkeyPatch, seconds: float,
                                                               repeat: int, expected: int) -> None:
    """A step and its bare loop run in turn, each after a read through of the step's files: at least --repeat
    turns, more while the step's runs add up to less than --min-seconds (60 here), at most MAX_TURNS (15)."""
    bench_scale = tool("bench_scale")
    log: list[str] = []
    monkeypatch.setattr(bench_scale, "named_files", lambda cmd, work: [cmd[0]])
    monkeypatch.setattr(bench_scale, "read_through", lambda files: log.append(f"read {files[0]}"))
    monkeypatch.setattr(bench_scale, "measure", lambda cmd: log.append(cmd[0]) or {"seconds": seconds})
    runs = bench_scale.turns(["step"], ["bare"], Path("w"), repeat, 60.0)
    assert len(runs) == expected
    assert log == ["read step", "step", "read step", "bare"] * expected
