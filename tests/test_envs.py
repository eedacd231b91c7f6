"""The one lock of the software stacks (envs/lock.yaml): the local requirements, the conda environments and the
container definitions are what tools/envs.py writes from it, and, read back independently of the tool, they agree
with each other on every version, with every pip package and base image pinned."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

ENVS = REPO / "envs"
TOOL = REPO / "tools" / "envs.py"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[\w,-]+\])?==(\S+)$")
# Another name for the same release (the CPU-only wheel, the CUDA extra), compared under one name.
SAME_RELEASE = {"tensorflow-cpu": "tensorflow"}


def parse_pins(lines: list[str], where: str) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line.strip().strip("'"))
        assert match, f"{where}: '{line}' is not pinned to one version (name==version)"
        pins[SAME_RELEASE.get(match[1], match[1])] = match[2]
    return pins


def requirements_pins(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return parse_pins(lines, path.name)


def conda_pins(path: Path) -> dict[str, str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    return parse_pins(pip, path.name)


def definition(path: Path) -> tuple[str, dict[str, str]]:
    """(base image, pip pins) of an Apptainer definition."""
    text = path.read_text()
    base = re.search(r"^From: (\S+)$", text, re.M)
    install = re.search(r"pip install (.+)$", text, re.M)
    assert base and install, f"{path.name}: no From: line or no pip install"
    return base[1], parse_pins(install[1].split(), path.name)


def test_the_files_are_what_the_lock_writes() -> None:
    proc = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_an_edit_of_a_generated_file_is_caught_and_rewritten(tmp_path: Path) -> None:
    envs = shutil.copytree(ENVS, tmp_path / "envs")
    def_file = envs / "containers" / "tensorrt.def"
    def_file.write_text(def_file.read_text().replace("'onnx==1.23.2'", "'onnx==1.17.0'"))
    proc = subprocess.run([sys.executable, str(TOOL), "--check", "--envs", str(envs)], capture_output=True,
                          text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("envs: containers/tensorrt.def differ from envs/lock.yaml; "
                                   "run python tools/envs.py")
    subprocess.run([sys.executable, str(TOOL), "--envs", str(envs)], check=True, capture_output=True)
    assert def_file.read_text() == (ENVS / "containers" / "tensorrt.def").read_text()


def test_a_package_without_a_version_is_refused(tmp_path: Path) -> None:
    envs = shutil.copytree(ENVS, tmp_path / "envs")
    lock = envs / "lock.yaml"
    lock.write_text(lock.read_text().replace("  tabulate: 0.10.0\n", ""))
    proc = subprocess.run([sys.executable, str(TOOL), "--check", "--envs", str(envs)], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "'tabulate' is in a stack but has no entry under versions" in proc.stderr


@pytest.mark.parametrize("stack", ["tensorflow", "tensorrt"])
def test_conda_environment_and_image_of_a_stack_agree(stack: str) -> None:
    base, image = definition(ENVS / "containers" / f"{stack}.def")
    env = conda_pins(ENVS / f"{stack}.yaml")
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", base) and not base.endswith(":latest"), base
    # The TensorRT image takes TensorRT from its base (its %test checks the version); everything else is pip.
    assert set(env) - set(image) <= ({"tensorrt-cu12"} if stack == "tensorrt" else set())
    assert {name: env[name] for name in image} == image


def test_every_package_has_one_version_across_the_stacks() -> None:
    sources = {"requirements-local.txt": requirements_pins(ENVS / "requirements-local.txt")}
    for stack in ("tensorflow", "tensorrt"):
        sources[f"{stack}.yaml"] = conda_pins(ENVS / f"{stack}.yaml")
        sources[f"containers/{stack}.def"] = definition(ENVS / "containers" / f"{stack}.def")[1]
    seen: dict[str, dict[str, str]] = {}
    for where, pins in sources.items():
        for name, version in pins.items():
            seen.setdefault(name, {})[where] = version
    disagree = {name: where for name, where in seen.items() if len(set(where.values())) > 1}
    assert not disagree
    # The packages the issue found in disagreement are in all three kinds of file.
    assert {"requirements-local.txt", "tensorflow.yaml", "containers/tensorflow.def"} <= set(seen["onnxruntime"])
    assert len(seen["onnx"]) == 5


def test_the_tensorrt_image_checks_the_tensorrt_the_conda_environment_pins() -> None:
    text = (ENVS / "containers" / "tensorrt.def").read_text()
    version = conda_pins(ENVS / "tensorrt.yaml")["tensorrt-cu12"]
    assert f"modules = {{'tensorrt': '{version}'}}" in text
