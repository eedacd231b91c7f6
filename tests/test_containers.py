"""The README's container commands from a fresh clone: `snakemake --use-singularity --cores 1` (the legacy spelling)
and `snakemake --sdm apptainer`, with the default config `containers`; and its conda command, `--sdm conda`.

Apptainer cannot be installed here, so these tests put a STAND-IN `apptainer` first on PATH
(tests/containers/apptainer): it records every call, writes a small placeholder file for `apptainer build`, and runs
the command of `apptainer exec IMAGE ...` on the host (after checking IMAGE is a placeholder it built). So they prove
the plan, the order and the commands (both images built from envs/containers/*.def before any job, each job run in
its stack's image, a definition edit rebuilding its image and rerunning what ran in it, a bare NVIDIA image
refused before any job), not that the real images work: their definitions' %test sections check that when the real
apptainer builds them. The conda command is planned (a dry run) with a STAND-IN `conda` (tests/containers/conda) that
only answers Snakemake's checks: conda-forge cannot be reached here, so no environment is created or used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_workflow
from test_workflow import planned_jobs

TINY = REPO / "tests" / "data" / "config-tiny.yaml"
STAND_IN = REPO / "tests" / "containers"
IMAGES = {"tensorflow": "results/containers/tensorflow.sif", "tensorrt": "results/containers/tensorrt.sif"}
# The tiny config's jobs, by the script each runs, and the image (stack) it must run in.
STACK_OF_STEP = {"train.py": "tensorflow", "convert_onnx.py": "tensorflow", "--backend savedmodel": "tensorflow",
                 "--backend onnxruntime": "tensorrt", "compare.py": "tensorflow", "report.py": "tensorflow"}


def run(workdir: Path, *args: str, configfiles: tuple[Path, ...] = (TINY,)) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": os.pathsep.join([str(STAND_IN), str(Path(sys.executable).parent),
                                                  os.environ["PATH"]]),
           "APPTAINER_STANDIN_LOG": str(workdir / "apptainer-calls.jsonl"),
           "CONDA_STANDIN_LOG": str(workdir / "conda-calls.jsonl"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "snakemake", *args, "--configfile", *map(str, configfiles),
           "--replace-workflow-config"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=600)


def calls(workdir: Path) -> list[list[str]]:
    log = workdir / "apptainer-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def job_stats(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return planned_jobs(proc)


@pytest.fixture(scope="module")
def container_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A fresh copy of the workflow run as the README says: snakemake --use-singularity --cores 1."""
    ws = copy_workflow(tmp_path_factory.mktemp("containers"))
    return ws, run(ws, "--use-singularity", "--cores", "1")


def test_both_spellings_plan_the_image_builds_and_every_step(tmp_path: Path) -> None:
    ws = copy_workflow(tmp_path)
    plans = [job_stats(run(ws, *flags, "--dry-run")) for flags in (["--sdm", "apptainer"], ["--use-singularity"])]
    assert plans[0] == plans[1]
    assert plans[0]["build_container"] == 2
    plain = job_stats(run(ws, "--dry-run"))  # without containers (make demo): no image is built
    assert "build_container" not in plain and {**plain, "build_container": 2} == plans[0]
    assert not any(c[0] in ("build", "exec") for c in calls(ws))  # a dry run builds and runs nothing


def test_the_conda_command_plans_each_stack_environment_and_no_image(tmp_path: Path) -> None:
    ws = copy_workflow(tmp_path)
    for flags in (["--sdm", "conda"], ["--use-conda"]):
        proc = run(ws, *flags, "--dry-run")
        plan = job_stats(proc)
        assert "build_container" not in plan and plan["train"] == 1
        created = re.findall(r"^Conda environment (\S+) will be created", proc.stdout + proc.stderr, re.M)
        assert sorted(created) == ["envs/tensorflow.yaml", "envs/tensorrt.yaml"]
    assert calls(ws) == []  # no apptainer


@pytest.mark.slow
def test_images_are_built_first_and_each_step_runs_in_its_stack_image(container_run: tuple) -> None:
    ws, proc = container_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    log = calls(ws)
    builds = [(i, c) for i, c in enumerate(log) if c[0] == "build"]   # with their place in the log
    execs = [(i, c) for i, c in enumerate(log) if c[0] == "exec"]
    assert sorted(c for _, c in builds) == sorted(["build", "--force", IMAGES[s], f"envs/containers/{s}.def"]
                                                 for s in IMAGES)
    built_at = {c[2]: i for i, c in builds}
    ran, early = {}, []
    for i, call in execs:
        image, command = next((a, call[call.index(a) + 1:]) for a in call if a.endswith(".sif"))
        # no job starts before its image exists; the other image may still be to build (the scheduler is free to run
        # a tensorflow step between the two builds, and did under load)
        if built_at.get(image, len(log)) > i:
            early.append((i, image))
        assert command[:2] == ["bash", "-c"], call
        step = next((s for s in STACK_OF_STEP if s in command[2]), None)
        if step:
            ran[step] = image
    assert early == []
    assert ran == {step: IMAGES[stack] for step, stack in STACK_OF_STEP.items()}
    assert len(execs) == len(list((ws / "results" / "logs").iterdir())) - 1  # every job but the builds, once
    assert (ws / "results" / "report.md").is_file() and (ws / "results" / "summary.json").is_file()


@pytest.mark.slow
def test_a_definition_edit_rebuilds_its_image_and_reruns_what_ran_in_it(container_run: tuple,
                                                                        tmp_path: Path) -> None:
    ws = shutil.copytree(container_run[0], tmp_path / "ws", symlinks=True)  # copy2 keeps the modification times
    assert job_stats(run(ws, "--sdm", "apptainer", "--dry-run")) == {}
    definition = ws / "envs" / "containers" / "tensorrt.def"
    definition.write_text(definition.read_text() + "# a changed definition\n")
    plan = job_stats(run(ws, "--sdm", "apptainer", "--dry-run"))
    # The TensorRT image, the one step that ran in it (ONNX Runtime predictions) and what reads its output.
    assert plan == {"build_container": 1, "predict_onnxruntime": 1, "compare": 1, "report": 1, "gate": 1, "all": 1}


@pytest.mark.parametrize("image", ["docker://nvcr.io/nvidia/tensorflow:24.12-tf2-py3",
                                   "docker://python:3.12.8-slim-bookworm"])
def test_a_bare_image_stops_the_run_before_any_job_saying_how_to_get_the_right_one(tmp_path: Path,
                                                                                   image: str) -> None:
    ws = copy_workflow(tmp_path)
    overlay = tmp_path / "bare.yaml"
    overlay.write_text(f"containers: {{tensorflow: '{image}', tensorrt: {IMAGES['tensorrt']}}}\n")
    proc = run(ws, "--sdm", "apptainer", "--cores", "1", configfiles=(TINY, overlay))
    assert proc.returncode != 0
    assert (f"containers.tensorflow is {image}, which lacks the steps' packages (envs/lock.yaml): set "
            f"containers.tensorflow to {IMAGES['tensorflow']} (the default: the workflow builds it from "
            "envs/containers/tensorflow.def)") in proc.stdout + proc.stderr
    assert not (ws / "results").exists() and calls(ws) == []
    assert job_stats(run(ws, "--dry-run", configfiles=(TINY, overlay)))  # without containers the image is unused


def test_a_missing_image_file_is_named(tmp_path: Path) -> None:
    ws = copy_workflow(tmp_path)
    overlay = tmp_path / "missing.yaml"
    overlay.write_text(f"containers: {{tensorflow: {IMAGES['tensorflow']}, tensorrt: /nowhere/trt.sif}}\n")
    proc = run(ws, "--sdm", "apptainer", "--dry-run", configfiles=(TINY, overlay))
    assert proc.returncode != 0
    assert "containers.tensorrt is /nowhere/trt.sif, which does not exist" in proc.stdout + proc.stderr
