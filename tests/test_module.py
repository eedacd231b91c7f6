"""trtverify inside another workflow, and run from another folder: the paths it opens are its own checkout's.

Snakemake users reuse a workflow as a module (`module trtverify: snakefile: ...`, `use rule * from trtverify as
tv_*`) with a `prefix:` for its outputs and the host's own config, or point `-s` at it and `--directory` at their
project. These tests plan both (dry runs) and run one cheap real job each way (marked slow).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow
from test_workflow import planned_jobs

TINY = REPO / "tests" / "data" / "config-tiny.yaml"
STAND_IN = REPO / "tests" / "containers"
# The tiny config's jobs, as a host workflow's default target reaches them through the module's summary.json.
TINY_JOBS = ["train", "convert_onnx", "predict_savedmodel", "predict_onnxruntime", "compare", "report"]

HOST_SNAKEFILE = """\
configfile: "host.yaml"


module trtverify:
    snakefile:
        {snakefile!r}
    config:
        config["trtverify"]
    prefix:
        "tv"


use rule * from trtverify as tv_*


rule host_all:
    default_target: True
    input:
        "host/verdict.json",


rule host_verdict:
    input:
        "tv/results/summary.json",
    output:
        "host/verdict.json",
    log:
        "host/verdict.log",
    shell:
        "cp {{input:q}} {{output:q}} 2> {{log:q}}"
"""


def snakemake(cwd: Path, *args: str, path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": os.pathsep.join([*map(str, path), str(Path(sys.executable).parent), os.environ["PATH"]]),
           "APPTAINER_STANDIN_LOG": str(cwd / "apptainer-calls.jsonl")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args, "--cores", "2"], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def host_workflow(host: Path, snakefile: Path) -> Path:
    """A workflow of the user's that uses trtverify as a module, with its own model (not the repository's)."""
    tiny = yaml.safe_load(TINY.read_text())
    tiny["models"] = {"hostnet": tiny["models"]["tiny"]}
    host.mkdir(parents=True, exist_ok=True)
    (host / "host.yaml").write_text(yaml.safe_dump({"trtverify": tiny}))
    (host / "Snakefile").write_text(HOST_SNAKEFILE.format(snakefile=str(snakefile)))
    return host


def job_inputs(out: str) -> dict[str, list[str]]:
    """rule -> the input paths of its job(s) in a dry run's job listing."""
    inputs: dict[str, list[str]] = {}
    for rule, files in re.findall(r"^rule (\w+):\n    input: (.*)$", out, re.M):
        inputs.setdefault(rule, []).extend(files.split(", "))
    return inputs


def checkout_inside(host: Path) -> Path:
    """A copy of the workflow in the host's folder (host/trtverify/), as a git submodule of the host is."""
    (host / "trtverify").mkdir(parents=True)
    return copy_workflow(host / "trtverify") / "Snakefile"


@pytest.fixture(params=["outside", "inside"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The module's checkout beside the host's folder (the repository itself), or inside it, as a git submodule
    is (a copy under host/trtverify/): there a relative path into the checkout is one a prefix would move."""
    if request.param == "outside":
        return host_workflow(tmp_path / "host", REPO / "Snakefile")
    return host_workflow(tmp_path / "host", checkout_inside(tmp_path / "host"))


def test_module_plans_its_jobs_under_the_prefix_with_the_hosts_config(host: Path) -> None:
    proc = snakemake(host, "--dry-run")
    out = proc.stdout + proc.stderr
    assert planned_jobs(proc) == {**{f"tv_{j}": 1 for j in TINY_JOBS}, "host_verdict": 1, "host_all": 1}
    assert "tv/results/hostnet/model.onnx" in out and "digits_vgg" not in out   # the host's model, not config.yaml's
    assert "localrules directive specifies rules that are not present" not in out
    inputs = job_inputs(out)
    for rule in (f"tv_{j}" for j in TINY_JOBS):
        for path in inputs[rule]:
            # Either an output of another job, under the prefix, or a file of the checkout that exists.
            assert path.startswith("tv/results/") or (host / path).is_file(), (rule, path)
    assert any(p.endswith("scripts/train.py") for p in inputs["tv_train"])


def test_module_takes_the_users_files_where_the_config_says(tmp_path: Path) -> None:
    """An imported model's files are the user's, relative to the working directory: the prefix moves outputs only."""
    host = host_workflow(tmp_path / "host", REPO / "Snakefile")
    (host / "mine" / "saved_model").mkdir(parents=True)
    for name in ("x.npy", "y.npy"):
        (host / "mine" / name).write_bytes(b"")   # a dry run opens none of them
    config = yaml.safe_load((host / "host.yaml").read_text())
    config["trtverify"]["models"]["own"] = {
        "dataset": "none",
        "import": {"saved_model": "mine/saved_model", "samples": "mine/x.npy", "labels": "mine/y.npy"}}
    (host / "host.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(host, "--dry-run")
    assert planned_jobs(proc)["tv_import_model"] == 1
    assert set(job_inputs(proc.stdout)["tv_import_model"]) >= {"mine/saved_model", "mine/x.npy", "mine/y.npy"}


def test_module_reads_its_report_costs_under_the_prefix(host: Path) -> None:
    out = snakemake(host, "--dry-run", "--printshellcmds").stdout
    costs = re.search(r"pipeline_costs\.py --root (\S+) (.*?) --output", out)
    assert costs and costs.group(1) == "tv/results/benchmarks"
    steps = re.findall(r"--per-model-step=(\w+)", costs.group(2))
    assert "train" in steps and "compare" in steps and not [s for s in steps if s.startswith("tv_")]


def test_module_images_follow_the_prefix(tmp_path: Path) -> None:
    """With containers on, the image a job runs in is the one the module builds under its prefix (stand-in
    apptainer: tests/containers/apptainer; a dry run builds nothing)."""
    host = host_workflow(tmp_path / "host", REPO / "Snakefile")
    proc = snakemake(host, "--dry-run", "--sdm", "apptainer", path=(STAND_IN,))
    out = proc.stdout + proc.stderr
    assert planned_jobs(proc)["tv_build_container"] == 2
    train = job_inputs(out)["tv_train"]
    assert "tv/results/containers/tensorflow.sif" in train
    assert "results/containers/tensorflow.sif" not in [p for p in train if not p.startswith("tv/")]


def test_directory_from_another_folder_plans_with_that_folders_config(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "config.yaml").write_text(TINY.read_text())   # the user's config, where Snakemake looks for it
    proc = snakemake(elsewhere, "-s", str(REPO / "Snakefile"), "--directory", str(project), "--dry-run")
    out = proc.stdout + proc.stderr
    assert planned_jobs(proc) == {**{j: 1 for j in TINY_JOBS}, "gate": 1, "all": 1}
    assert "results/tiny/model.onnx" in out and "digits_vgg" not in out
    for rule, paths in job_inputs(out).items():
        for path in paths:
            assert path.startswith("results/") or (project / path).is_file(), (rule, path)


def csv_rows(path: Path) -> int:
    """The samples in export_csv's file (its header line starts with '#')."""
    return sum(1 for line in path.read_text().splitlines() if not line.startswith("#"))


@pytest.mark.slow
def test_directory_from_another_folder_runs_a_job_there(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "config.yaml").write_text(TINY.read_text())
    snakemake(elsewhere, "-s", str(REPO / "Snakefile"), "--directory", str(project),
              "results/tiny/data/test_samples.csv")
    assert csv_rows(project / "results/tiny/data/test_samples.csv") == 120
    assert (project / "results/logs/train/tiny.log").is_file()
    assert sorted(p.name for p in elsewhere.iterdir()) == []   # nothing written where the command was typed


@pytest.mark.slow
def test_module_runs_a_job_under_the_prefix(tmp_path: Path) -> None:
    host = host_workflow(tmp_path / "host", checkout_inside(tmp_path / "host"))
    snakemake(host, "tv/results/hostnet/data/test_samples.csv")
    assert csv_rows(host / "tv/results/hostnet/data/test_samples.csv") == 120
    assert (host / "tv/results/logs/train/hostnet.log").is_file()
    assert not (host / "results").exists() and not (host / "trtverify" / "results").exists()
