"""mypy over the TensorRT code with the project's settings (pyproject.toml [tool.mypy]), and whether those settings
really check it against tensorrt-stubs (the TensorRT 10 API) rather than letting every TensorRT name be Any.

The second part is a probe: code that calls a method TensorRT 10 lacks, and passes a str where TensorRT wants an int,
must be rejected, while a correct call passes. Where the stubs are not in effect, the probes do not fail blindly: the
cause is diagnosed (stub files without a py.typed marker, stub files that do not parse) and they are reported as
expected failures naming it. An unexplained pass of the bad code is a plain failure.
"""

from __future__ import annotations

import functools
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
STUB_MODULES = ("tensorrt", "tensorrt.*", "tensorrt_bindings", "tensorrt_bindings.*")

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
    """One mypy cache for this module's runs, outside the work tree (others run mypy there too)."""
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


def ini_config(path: Path, **overrides: Any) -> Path:
    """The project's [tool.mypy] settings as a mypy.ini (mypy_path made absolute), changed by ``overrides``, with
    ``follow_untyped_imports`` for the stub packages when it is passed."""
    follow = overrides.pop("follow_untyped_imports", False)
    settings = {k: v for k, v in {**SETTINGS, **overrides}.items() if k != "files"}
    settings["mypy_path"] = str(REPO / settings["mypy_path"])
    lines = ["[mypy]"] + [f"{k} = {', '.join(v) if isinstance(v, list) else v}" for k, v in settings.items()]
    if follow:
        lines += [f"[mypy-{','.join(STUB_MODULES)}]", "follow_untyped_imports = True"]
    path.write_text("\n".join(lines) + "\n")
    return path


@functools.cache
def stubs_unused_reason(workdir: Path, cache: Path) -> str | None:
    """Why mypy, with the project's settings, does not see tensorrt-stubs; None if the cause is not the known one."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "import_tensorrt.py"
    source.write_text("import tensorrt\nreveal_type(tensorrt.IBuilderConfig)\n")
    reasons = []
    strict = mypy(source, cache=cache, config=ini_config(workdir / "strict.ini", ignore_missing_imports=False))
    if 'Skipping analyzing "tensorrt": module is installed, but missing library stubs or py.typed marker' \
            in strict.stdout:
        reasons.append("tensorrt-stubs installs tensorrt/ and tensorrt_bindings/ without a py.typed marker, so mypy "
                       "skips them and ignore_missing_imports = true makes every TensorRT name Any")
    followed = mypy(source, cache=cache, config=ini_config(workdir / "follow.ini", follow_untyped_imports=True))
    syntax = [line for line in followed.stdout.splitlines() if line.endswith("[syntax]") and ".pyi:" in line]
    if followed.returncode == 2 and syntax:
        reasons.append(f"followed anyway (follow_untyped_imports), the stubs do not parse: {syntax[0]}")
    return "; ".join(reasons) or None


def xfail_if_stubs_unused(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> None:
    reason = stubs_unused_reason(tmp_path_factory.getbasetemp() / "mypy_diagnosis", cache)
    if reason:
        pytest.xfail(f"mypy does not check against tensorrt-stubs: {reason}")


# ---------------------------------------------------------------- the project's check
def test_mypy_passes_on_the_tensorrt_code(cache: Path) -> None:
    files = SETTINGS["files"]
    assert {"scripts/trtverify/engine.py", "scripts/trtverify/tensorrt_compat.py",
            "scripts/trtverify/backends/tensorrt.py", "scripts/build_engine.py"} <= set(files)
    assert SETTINGS["mypy_path"] == "scripts"
    proc = mypy(cache=cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"Success: no issues found in {len(files)} source files"


# ---------------------------------------------------------------- are the stubs in effect?
def test_correct_tensorrt_use_passes(tmp_path: Path, cache: Path,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = probe(tmp_path, "good", GOOD, cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    revealed = re.findall(r'Revealed type is "([^"]+)"', proc.stdout)
    assert len(revealed) == 1, proc.stdout
    if revealed == ["Any"]:
        xfail_if_stubs_unused(tmp_path_factory, cache)
    assert revealed == ["tensorrt_bindings.tensorrt.IBuilderConfig"]


def test_a_method_tensorrt_10_lacks_is_an_error(tmp_path: Path, cache: Path,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = probe(tmp_path, "bad", BAD, cache)
    if proc.returncode == 0:
        xfail_if_stubs_unused(tmp_path_factory, cache)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"bad.py:8: error: {MISSING_ATTRIBUTE}" in proc.stdout
    assert f"bad.py:9: error: {WRONG_TYPE}" in proc.stdout


def test_a_bad_call_in_engine_py_is_caught(tmp_path: Path, cache: Path,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """The checked modules themselves, under the unchanged pyproject.toml: a wrong call in engine.py must fail."""
    for name in [*SETTINGS["files"], "scripts/trtverify"]:
        src, dst = REPO / name, tmp_path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    engine = tmp_path / "scripts/trtverify/engine.py"
    anchor = "    config: tensorrt.IBuilderConfig = builder.create_builder_config()\n"
    text = engine.read_text()
    assert anchor in text
    engine.write_text(text.replace(anchor, anchor + "    config.set_nonexistent_flag()\n"))
    line = text[:text.index(anchor)].count("\n") + 2
    proc = mypy(cache=cache, config=tmp_path / "pyproject.toml", cwd=tmp_path)
    if proc.returncode == 0:
        xfail_if_stubs_unused(tmp_path_factory, cache)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"scripts/trtverify/engine.py:{line}: error: {MISSING_ATTRIBUTE}" in proc.stdout

