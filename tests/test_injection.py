"""No config value or path becomes a command (issue 12).

Config files and model folders are often written by someone else. Shell metacharacters (``;``, ``|``, ``$()``,
backticks, quotes, spaces, newlines) are fed through every configurable string and path: where the schema allows
them (paths, cmake_args) the step gets them as one intact argument and the paths still work; where it does not
(providers, tactic sources, float format, model names) the run stops before any job. Either way the canary file
that the injected ``touch`` would create never appears.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow
from test_workflow import TINY, snakemake, write_overlay

# Each variant runs `touch CANARY...` in the job's working directory if a shell ever interprets it.
HOSTILE = "my models; touch CANARY1 | touch CANARY2 && $(touch CANARY3) `touch CANARY4` 'q\" \\x"
HOSTILE_NEWLINE = "line one\ntouch CANARY5"


def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    return copy_workflow(tmp_path / "ws")


def canaries(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("CANARY*"))


# --- static: every placeholder in every shell string is quoted ------------------------------------------------------

PLACEHOLDER = re.compile(r"(?<!\{)\{([^{}]*)\}(?!\})")
# Rules quoted by their owners in the same issue (H1: compare, convert; H6: report); delete an entry once merged.


def shell_strings(path: Path) -> list[str]:
    """The string literals of every ``shell:`` directive in a rule file."""
    strings, inside = [], False
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("shell:"):
            inside = True
            continue
        if inside and text.startswith('"'):
            strings.append(text)
        elif inside and not text.startswith("#"):
            inside = False
    return strings


RULE_FILES = sorted(p.name for p in (REPO / "rules").glob("*.smk") if "shell:" in p.read_text())


@pytest.mark.parametrize("rule_file", RULE_FILES)
def test_every_shell_placeholder_is_quoted(rule_file: str) -> None:
    strings = shell_strings(REPO / "rules" / rule_file)
    assert strings, f"no shell: strings found in {rule_file}"
    unquoted = [f"{{{p}}}" for s in strings for p in PLACEHOLDER.findall(s) if not p.endswith(":q")]
    assert unquoted == [], f"{rule_file}: placeholders without :q: {unquoted}"
    assert not any("$(" in s or "`" in s for s in strings), f"{rule_file}: command substitution in a shell string"


# --- the schema refuses metacharacters where no legitimate value has them -----------------------------------------

@pytest.mark.parametrize("overlay,words", [
    ('onnxruntime: {providers: ["CPUExecutionProvider || touch CANARY1; #ExecutionProvider"]}', "providers"),
    ("onnxruntime: {providers: ['$(touch CANARY1)ExecutionProvider']}", "ExecutionProvider"),
    ('tensorrt: {precisions: [fp32], profile: {min_batch: 1, opt_batch: 1, max_batch: 1}, '
     'tactic_sources: "default; touch CANARY1"}', "tactic_sources"),
    ("report: {float_format: '.3g`touch CANARY1`'}", "float_format"),
    ("models: {'x; touch CANARY1': {dataset: digits, architecture: {blocks: [4], dense_units: 8}, "
     "training: {epochs: 1, batch_size: 8}}}", "x; touch CANARY1"),
    ("datasets: {'d $(touch CANARY1)': {source: digits}}", "d $(touch CANARY1)"),
    ('cpp: {cmake_args: "-DA=1\\ntouch CANARY1"}', "cmake_args"),
])
def test_metacharacters_the_schema_refuses_stop_the_run_before_any_job(tmp_path: Path, overlay: str,
                                                                       words: str) -> None:
    ws = workspace(tmp_path)
    proc = snakemake(ws, "--dry-run", configfiles=(TINY, write_overlay(tmp_path / "bad.yaml", overlay)),
                     check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert words in out, out
    assert not (ws / "results").exists()
    assert canaries(tmp_path) == []


# --- values the schema allows reach each step as one argument ----------------------------------------------------

def hostile_inputs(root: Path, name: str) -> dict[str, Path]:
    folder = root / name
    folder.mkdir(parents=True)
    paths = {"saved_model": folder / "saved model", "samples": folder / "x $(x).npy", "labels": folder / "y;y.npy",
             "archive": folder / "cifar `10`.tar.gz"}
    for path in paths.values():
        path.touch()
    return paths


def test_dry_run_passes_hostile_paths_and_cmake_args_as_single_arguments(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    paths = hostile_inputs(ws, HOSTILE)
    cmake_args = f"-DTRTVERIFY_NOTE={shlex.quote(HOSTILE)}"
    overlay = tmp_path / "hostile.yaml"
    config = yaml.safe_load(TINY.read_text())
    config["models"]["mine"] = {"dataset": "none", "import": {k: str(paths[k]) for k in ("saved_model", "samples",
                                                                                          "labels")}}
    config["models"]["tiny"]["dataset"] = "cifar"
    config["datasets"]["cifar"] = {"source": "cifar10", "archive": str(paths["archive"])}
    config["cpp"]["cmake_args"] = cmake_args
    overlay.write_text(yaml.safe_dump(config))
    proc = snakemake(ws, "--dry-run", "--printshellcmds", "--forceall", "all", "results/bin/trt_infer",
                     configfiles=(overlay,))
    commands = [shlex.split(c) for c in re.findall(r"^Shell command: (.*)$", proc.stdout, re.M)]
    assert commands, proc.stdout[-3000:]
    arguments = [a for c in commands for a in c]
    for flag, key in (("--saved-model-in", "saved_model"), ("--samples-in", "samples"), ("--labels-in", "labels")):
        assert f"{flag}={paths[key]}" in arguments, f"{flag} is not one intact argument"
    assert f"--cmake-args={cmake_args}" in arguments
    train = next(c for c in commands if "--dataset" in c)
    assert json.loads(train[train.index("--dataset") + 1])["archive"] == str(paths["archive"])
    assert canaries(tmp_path) == []


@pytest.mark.slow
def test_import_from_a_folder_named_with_metacharacters_runs_and_runs_nothing_else(
        tiny_model: dict[str, Path], tmp_path: Path) -> None:
    """A real run: the import and CSV export steps read and write through the hostile folder names."""
    ws = workspace(tmp_path)
    config = yaml.safe_load(TINY.read_text())
    for i, name in enumerate((HOSTILE, HOSTILE_NEWLINE)):
        folder = ws / name
        shutil.copytree(tiny_model["saved_model"], folder / "saved model")
        for key in ("samples", "labels"):
            shutil.copy(tiny_model[key], folder / f"{key} $(x).npy")
        config["models"][f"mine{i}"] = {"dataset": "none", "import": {
            "saved_model": f"{name}/saved model", "samples": f"{name}/samples $(x).npy",
            "labels": f"{name}/labels $(x).npy"}}
    overlay = tmp_path / "hostile.yaml"
    overlay.write_text(yaml.safe_dump(config))
    snakemake(ws, "results/mine0/data/test_samples.csv", "results/mine1/data/test_samples.csv",
              configfiles=(overlay,))
    for i in range(2):
        assert (ws / f"results/mine{i}/saved_model/saved_model.pb").is_file()
        assert (ws / f"results/mine{i}/data/test_samples.csv").is_file()
    assert canaries(tmp_path) == []


def test_cmake_args_with_metacharacters_reach_cmake_as_arguments(tmp_path: Path) -> None:
    """compile_cpp for real: the injected commands stay text inside one -D argument (CMake, not the shell, sees it);
    without TensorRT here the step then fails with its one-line message."""
    ws = workspace(tmp_path)
    config = yaml.safe_load(TINY.read_text())
    config["cpp"]["cmake_args"] = f"-DTensorRT_ROOT={shlex.quote(str(tmp_path / 'no tensorrt'))} " \
                                  f"-DTRTVERIFY_NOTE={shlex.quote(HOSTILE)}"
    overlay = tmp_path / "hostile.yaml"
    overlay.write_text(yaml.safe_dump(config))
    proc = snakemake(ws, "results/bin/trt_infer", configfiles=(overlay,), check=False)
    log = (ws / "results/logs/compile_cpp/trt_infer.log").read_text()
    assert proc.returncode != 0
    assert shlex.quote(f"-DTRTVERIFY_NOTE={HOSTILE}") in log  # compile_cpp echoes cmake's argv, quoted
    assert "compile_cpp.py: error: CMake did not find TensorRT" in log.splitlines()[-1]
    assert not (ws / "results/bin/trt_infer").exists()
    assert canaries(tmp_path) == []
