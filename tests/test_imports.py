"""Heavy frameworks are imported lazily: every module of trtverify imports, and every script prints --help, in a
Python where TensorFlow, tf2onnx, ONNX Runtime, ONNX, TensorRT, pycuda, scikit-learn and matplotlib cannot be
imported. A step that needs a missing framework says so in one line and writes nothing.

The blocker is a ``sitecustomize`` module put first on PYTHONPATH, so the scripts run exactly as a rule runs them
(``python scripts/x.py ...``). It also logs every import it refused, so a guarded ``try: import tensorflow`` at
module level (which would survive the block but still cost seconds on every --help) is caught too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SCRIPTS, leftovers

BLOCKED = ("tensorflow", "tf2onnx", "onnxruntime", "onnx", "tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings",
           "tensorrt_bindings", "pycuda", "sklearn", "matplotlib", "keras", "tf_keras")

SITECUSTOMIZE = f'''
import os, sys
from importlib.abc import MetaPathFinder

BLOCKED = {set(BLOCKED)!r}


class _Blocker(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            log = os.environ.get("TRTVERIFY_BLOCK_LOG")
            if log:
                with open(log, "a") as fh:
                    fh.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
'''

SCRIPT_NAMES = sorted(p.name for p in SCRIPTS.glob("*.py"))


@pytest.fixture(scope="module")
def blocker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("blocker")
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return d


def run_blocked(blocker: Path, log: Path | None, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRTVERIFY_VERBOSE", "PYTHONPATH")}
    env.update(PYTHONPATH=f"{blocker}{os.pathsep}{SCRIPTS}", TF_CPP_MIN_LOG_LEVEL="3")
    if log is not None:
        env["TRTVERIFY_BLOCK_LOG"] = str(log)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def refused(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_blocker_is_active(blocker, tmp_path) -> None:
    """Control: the frameworks this venv has import normally, and the blocker refuses every one of them."""
    probe = "import importlib.util as u, sys; print(' '.join(n for n in sys.argv[1:] if u.find_spec(n)))"
    installed = subprocess.run([sys.executable, "-c", probe, *BLOCKED], capture_output=True, text=True,
                               timeout=60).stdout.split()
    assert {"onnxruntime", "onnx", "sklearn", "matplotlib"} <= set(installed)   # else the test would prove little
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError as exc:\n"
            "        print(name, 'refused', exc)\n"
            "    else:\n"
            "        print(name, 'IMPORTED')\n")
    log = tmp_path / "log"
    proc = run_blocked(blocker, log, "-c", code, *BLOCKED, "pycuda.driver", "tensorflow.keras")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(BLOCKED) + 2
    assert all(" refused No module named " in line for line in lines), proc.stdout
    assert refused(log) == [*BLOCKED, "pycuda", "tensorflow"]   # a submodule is refused at its package


def package_modules() -> list[str]:
    """trtverify's modules by their files, so a subpackage the import walk might miss is still listed."""
    root = SCRIPTS / "trtverify"
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(SCRIPTS).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_package_module_imports_without_frameworks(blocker, tmp_path) -> None:
    expected = package_modules()
    assert {"trtverify", "trtverify.io", "trtverify.datasets", "trtverify.engine", "trtverify.backends",
            "trtverify.backends.tensorrt", "trtverify.backends.onnxruntime", "trtverify.backends.savedmodel",
            "trtverify.tensorrt_compat", "trtverify.model"} <= set(expected)
    code = ("import importlib, json, pkgutil, sys\n"
            "import trtverify\n"
            "walked = ['trtverify'] + [m.name for m in pkgutil.walk_packages(trtverify.__path__, 'trtverify.')]\n"
            "for name in walked:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps({'walked': walked, 'loaded': sorted(sys.modules)}))\n")
    log = tmp_path / "log"
    proc = run_blocked(blocker, log, "-c", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert sorted(result["walked"]) == sorted(expected)
    assert set(expected) <= set(result["loaded"])
    assert refused(log) == []                      # not even attempted (a guarded import would show up here)
    heavy = [m for m in result["loaded"] if m.partition(".")[0] in BLOCKED]
    assert heavy == []


def test_package_import_pulls_no_framework_even_when_installed() -> None:
    """Without the blocker, importing all of trtverify loads none of the frameworks (they are installed here)."""
    code = ("import importlib, json, sys\n"
            f"for name in {package_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    heavy = [m for m in json.loads(proc.stdout) if m.partition(".")[0] in BLOCKED]
    assert heavy == []


def test_there_are_scripts() -> None:
    assert len(SCRIPT_NAMES) >= 10 and {"predict.py", "train.py", "build_engine.py"} <= set(SCRIPT_NAMES)


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_script_help_without_frameworks(blocker, tmp_path, script) -> None:
    log = tmp_path / "log"
    proc = run_blocked(blocker, log, str(SCRIPTS / script), "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"usage: {script} "), proc.stdout[:300]
    assert "-h, --help" in proc.stdout
    assert proc.stderr == ""
    assert refused(log) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []      # --help writes nothing


def samples(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    np.save(d / "x.npy", x)
    return d / "x.npy"


def assert_missing_framework(proc: subprocess.CompletedProcess[str], script: str, package: str, install: str,
                             out: Path) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{script}: error: ")
    assert f"'{package}'" in lines[0] or f"{package}:" in lines[0], lines[0]   # names the missing module
    assert install in lines[0], lines[0]                                        # and how to get it
    assert list(out.iterdir()) == [] and leftovers(out.parent) == []


@pytest.mark.parametrize("backend, artifact, package, install", [
    ("onnxruntime", "model.onnx", "onnxruntime", "pip install onnxruntime-gpu (or onnxruntime for CPU only)"),
    ("savedmodel", "saved_model", "tensorflow", "pip install tensorflow"),
    ("tensorrt", "model.engine", "tensorrt", "Run this step in NVIDIA's TensorRT container"),
])
def test_predict_without_its_backend(blocker, tmp_path, backend, artifact, package, install) -> None:
    x = samples(tmp_path / "in")
    art = tmp_path / "in" / artifact
    if artifact == "saved_model":
        art.mkdir()
        (art / "saved_model.pb").write_bytes(b"\x08\x01")
    else:
        art.write_bytes(b"not a real model: activation must fail before it is read")
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "log"
    proc = run_blocked(blocker, log, str(SCRIPTS / "predict.py"), "--backend", backend, "--artifact", str(art),
                       "--samples", str(x), "--output", str(out / "p.npy"), "--info", str(out / "p.json"))
    assert_missing_framework(proc, "predict.py", package, install, out)
    assert refused(log)[0] == package                  # it got as far as importing the framework, and no further
    if backend == "onnxruntime":
        assert proc.stderr == ("predict.py: error: the ONNX Runtime backend needs the Python module 'onnxruntime', "
                               "which is not importable here (No module named 'onnxruntime'). pip install "
                               "onnxruntime-gpu (or onnxruntime for CPU only)\n")


def test_predict_checks_its_inputs_before_the_framework(blocker, tmp_path) -> None:
    """Bad samples are reported as such even where the backend is missing: the input is read first."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.npy").write_text("not numpy")
    (tmp_path / "in" / "model.onnx").write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    proc = run_blocked(blocker, None, str(SCRIPTS / "predict.py"), "--backend", "onnxruntime",
                       "--artifact", str(tmp_path / "in" / "model.onnx"), "--samples", str(tmp_path / "in" / "x.npy"),
                       "--output", str(out / "p.npy"), "--info", str(out / "p.json"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert "test samples file" in proc.stderr and "onnxruntime" not in proc.stderr
    assert list(out.iterdir()) == []


def test_train_without_tensorflow(blocker, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = run_blocked(blocker, tmp_path / "log", str(SCRIPTS / "train.py"),
                       "--dataset", json.dumps({"source": "digits"}), "--architecture", json.dumps({"blocks": [4]}),
                       "--training", json.dumps({"epochs": 1, "batch_size": 8}), "--saved-model", str(out / "sm"),
                       "--samples", str(out / "x.npy"), "--labels", str(out / "y.npy"),
                       "--metrics", str(out / "m.json"))
    assert_missing_framework(proc, "train.py", "tensorflow", "pip install tensorflow", out)
    assert "training needs the Python module 'tensorflow'" in proc.stderr


def test_convert_onnx_without_onnx(blocker, tmp_path) -> None:
    x = samples(tmp_path / "in")
    (tmp_path / "in" / "saved_model").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    proc = run_blocked(blocker, tmp_path / "log", str(SCRIPTS / "convert_onnx.py"),
                       "--saved-model", str(tmp_path / "in" / "saved_model"), "--samples", str(x),
                       "--labels", str(tmp_path / "in" / "y.npy"), "--opset", "17",
                       "--output", str(out / "model.onnx"), "--check", str(out / "check.json"))
    assert_missing_framework(proc, "convert_onnx.py", "onnx", "pip install onnx", out)


def test_build_engine_without_tensorrt(blocker, tmp_path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "model.onnx").write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    proc = run_blocked(blocker, tmp_path / "log", str(SCRIPTS / "build_engine.py"),
                       "--onnx", str(tmp_path / "in" / "model.onnx"), "--min-batch", "1", "--opt-batch", "8",
                       "--max-batch", "64", "--engine", str(out / "m.engine"),
                       "--info", str(out / "build.json"))
    assert_missing_framework(proc, "build_engine.py", "tensorrt", "install TensorRT", out)
    assert "TensorRT is not installed here" in proc.stderr
    # every flavour it looked for is named, with why it was not usable
    for module in ("tensorrt:", "tensorrt_rtx_bindings:", "tensorrt_rtx:"):
        assert module in proc.stderr


def test_bench_table_plots_without_matplotlib(blocker, tmp_path) -> None:
    """The table itself needs no matplotlib; --plots does, and says so instead of a traceback, writing nothing."""
    from trtverify.benchstats import make_row

    lat = {k: 1.5 for k in ("mean", "p50", "p90", "p95", "p99", "min", "max")}
    row = make_row(model="m", backend="onnxruntime", precision="fp32", batch=4, warmup=1, iterations=3,
                   cuda_graph=False, copies_included=True, latency_ms=lat, throughput_samples_per_s=2666.7,
                   gpu_compute_ms=None, percentile_method="linear", timer="perf_counter",
                   peak_host_rss_bytes=2**27, gpu_memory_bytes=None, device="CPU",
                   versions={"framework": "onnxruntime", "framework_version": "0"}, details={})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "row.json").write_text(json.dumps(row))
    out = tmp_path / "out"
    out.mkdir()
    args = [str(SCRIPTS / "bench_table.py"), str(tmp_path / "in" / "row.json"), "--tsv", str(out / "t.tsv"),
            "--json", str(out / "t.json")]
    proc = run_blocked(blocker, tmp_path / "log", *args, "--plots", str(out / "plots"))
    assert_missing_framework(proc, "bench_table.py", "matplotlib", "pip install matplotlib, or leave out --plots",
                             out)
    proc = run_blocked(blocker, None, *args)                            # without --plots it works
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["t.json", "t.tsv"]
    assert json.loads((out / "t.json").read_text())["plots"] == []
