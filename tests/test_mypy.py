"""mypy over the TensorRT code with the project's settings (pyproject.toml [tool.mypy]), and whether those settings
really check it against tensorrt-stubs (the TensorRT 10 API) rather than letting every TensorRT name be Any.

The second part is a probe: code that calls a method TensorRT 10 lacks, and passes a str where TensorRT wants an int,
must be rejected, while a correct call passes and is typed by the stubs. tensorrt-stubs as installed is skipped by
mypy (no py.typed) and does not parse; tools/trt_stubs.py makes a usable copy in build/mypy-stubs, which
pyproject.toml's mypy_path names; this module regenerates it first, so it checks that tool as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO

pytest.importorskip("mypy")

SETTINGS: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
STUBS = REPO / "build" / "mypy-stubs"

BAD = '''\
from __future__ import annotations

import tensorrt as trt


def configure(builder: trt.Builder) -> None:
    config: trt.IBuilderConfig = builder.create_builder_config()
    config.set_nonexistent_flag()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, "one gigabyte")
'''

GOOD = '''\
from __future__ import annotations

import tensorrt as trt


def configure(builder: trt.Builder) -> int:
    config: trt.IBuilderConfig = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 20)
    reveal_type(config)
    return int(config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE))
'''

MISSING_ATTRIBUTE = '"IBuilderConfig" has no attribute "set_nonexistent_flag"'
WRONG_TYPE = ('Argument 2 to "set_memory_pool_limit" of "IBuilderConfig" has incompatible type "str"; '
              'expected "int"')


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for this module's runs, outside the work tree (others run mypy there too); the stubs are
    regenerated first (make venv does it too), as a new checkout has none."""
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "trt_stubs.py"), str(STUBS)], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (STUBS / "tensorrt_bindings" / "py.typed").is_file() and (STUBS / "tensorrt" / "py.typed").is_file()
    return tmp_path_factory.mktemp("mypy_cache")


def mypy(*args: str | Path, cache: Path, config: Path = REPO / "pyproject.toml",
         cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(cache), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)


def probe(tmp_path: Path, name: str, source: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """mypy with the project's settings (mypy_path scripts, run from the repo) on one file."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return mypy(path, cache=cache)


# ---------------------------------------------------------------- the project's check
def test_mypy_passes_on_the_tensorrt_code(cache: Path) -> None:
    files = SETTINGS["files"]
    assert {"scripts/trtverify/engine.py", "scripts/trtverify/tensorrt_compat.py",
            "scripts/trtverify/backends/tensorrt.py", "scripts/build_engine.py"} <= set(files)
    assert SETTINGS["mypy_path"] == "scripts:build/mypy-stubs"
    proc = mypy(cache=cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"Success: no issues found in {len(files)} source files"


# ---------------------------------------------------------------- are the stubs in effect?
def test_correct_tensorrt_use_passes(tmp_path: Path, cache: Path) -> None:
    proc = probe(tmp_path, "good", GOOD, cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    revealed = re.findall(r'Revealed type is "([^"]+)"', proc.stdout)
    assert len(revealed) == 1, proc.stdout
    assert revealed == ["tensorrt_bindings.tensorrt.IBuilderConfig"]


def test_a_method_tensorrt_10_lacks_is_an_error(tmp_path: Path, cache: Path) -> None:
    proc = probe(tmp_path, "bad", BAD, cache)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"bad.py:8: error: {MISSING_ATTRIBUTE}" in proc.stdout
    assert f"bad.py:9: error: {WRONG_TYPE}" in proc.stdout


def test_a_bad_call_in_engine_py_is_caught(tmp_path: Path, cache: Path) -> None:
    """The checked modules themselves, under the unchanged pyproject.toml: a wrong call in engine.py must fail."""
    for name in [*SETTINGS["files"], "scripts/trtverify"]:
        src, dst = REPO / name, tmp_path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(STUBS, tmp_path / "build" / "mypy-stubs")
    engine = tmp_path / "scripts/trtverify/engine.py"
    anchor = "    config: tensorrt.IBuilderConfig = builder.create_builder_config()\n"
    text = engine.read_text()
    assert anchor in text
    engine.write_text(text.replace(anchor, anchor + "    config.set_nonexistent_flag()\n"))
    line = text[:text.index(anchor)].count("\n") + 2
    proc = mypy(cache=cache, config=tmp_path / "pyproject.toml", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"scripts/trtverify/engine.py:{line}: error: {MISSING_ATTRIBUTE}" in proc.stdout

