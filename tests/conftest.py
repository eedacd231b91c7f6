"""Shared fixtures: paths, a tiny trained model (trained once per session), and a script runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
# The tactic sources of the GPU tests' engines: TensorRT's default, or what a GPU machine without cuBLAS/cuDNN needs
# (tools/gpukit/device.sh sets -CUBLAS,-CUBLAS_LT,-CUDNN: on the lent GPU machine they are stand-ins).
TEST_TACTIC_SOURCES = os.environ.get("TRTVERIFY_TEST_TACTIC_SOURCES", "default")
# What a workflow test copies into its temporary directory (never results/, .venv or build folders).
WORKFLOW = ["Snakefile", "rules", "scripts", "config", "config.yaml", "envs", "docs", "cpp", "profiles"]


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow into ``dest`` (a fresh working directory for Snakemake) and return it."""
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.pyc", ".mypy_cache")
    for name in WORKFLOW:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


TINY_ARCH = {"blocks": [4], "convs_per_block": 1, "batch_norm": True, "dense_units": 16, "dropout": 0.1}
TINY_TRAINING = {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "seed": 0}


def compare_config(**given: Any) -> dict[str, Any]:
    """metrics.compare's config settings as compare.py gets them from a config that leaves them out (the schema's
    defaults), ``given`` replacing some: a test restates no default (tests/test_schema_defaults.py)."""
    from trtverify.schema import schema_default
    keys = {"batch_size": "compare.batch_size", "max_flipped": "compare.max_flipped",
            "per_sample_limit": "compare.per_sample_rows", "output_kind": "models.*.output_kind"}
    return {arg: schema_default(key) for arg, key in keys.items()} | given


def run_script(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run scripts/<name> with this interpreter, as a rule would."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny CNN trained on the digits for two epochs, its SavedModel, ONNX model and test data."""
    d = tmp_path_factory.mktemp("tiny_model")
    paths = {"saved_model": d / "saved_model", "samples": d / "x.npy", "labels": d / "y.npy",
             "metrics": d / "metrics.json", "onnx": d / "model.onnx", "check": d / "onnx_check.json"}
    run_script("train.py", "--dataset", json.dumps({"source": "digits", "test_fraction": 0.25}),
               "--architecture", json.dumps(TINY_ARCH), "--training", json.dumps(TINY_TRAINING),
               "--num-test-samples", "60", "--saved-model", paths["saved_model"], "--samples", paths["samples"],
               "--labels", paths["labels"], "--metrics", paths["metrics"])
    run_script("convert_onnx.py", "--saved-model", paths["saved_model"], "--samples", paths["samples"],
               "--labels", paths["labels"], "--opset", "17",
               "--output", paths["onnx"], "--check", paths["check"])
    return paths


def leftovers(directory: Path) -> list[str]:
    """Temporary files a failed step might have left behind."""
    return sorted(p.name for p in directory.rglob("*.tmp*"))


@pytest.fixture(scope="session")
def realnet(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Any, Path | None]]:
    """Factory of real-architecture fixtures (tests/realnets.py), each built and converted once per session:
    ``realnet(net, head, variant)`` returns (RealNet paths, path of its tf2onnx conversion or None if not asked)."""
    import realnets

    root = tmp_path_factory.mktemp("realnets")
    built: dict[tuple[str, str, str], Any] = {}
    converted: dict[tuple[str, str, str], Path] = {}

    def get(net: str = "mobilenetv2", head: str = "softmax", variant: str = "spread",
            onnx: bool = True) -> tuple[Any, Path | None]:
        key = (net, head, variant)
        if key not in built:
            built[key] = realnets.write_model(root / "-".join(key), net, head, variant)
        if onnx and key not in converted:
            converted[key] = realnets.to_onnx(built[key].saved_model, root / "-".join(key) / "model.onnx")
        return built[key], converted.get(key)

    return get
