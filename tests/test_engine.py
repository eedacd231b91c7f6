"""Engine builds with the TensorRT that is installed here (TensorRT-RTX on the CPU-only machines), through
scripts/build_engine.py as rules/engine.smk runs it, and the user errors of a build that cannot succeed.

TensorRT-RTX builds ahead of time without a GPU (kernels are compiled when the engine first runs), so a build of
these tiny models takes well under a second; only deserializing and running an engine needs a CUDA device.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import REPO, SCRIPTS, TEST_TACTIC_SOURCES, leftovers, run_script
from trtverify.errors import MissingBackendError, UserError
from trtverify.tensorrt_compat import import_tensorrt, parse_tactic_sources, profile_shape, version_of

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

INPUT, OUTPUT = "digits_in", "class_probs"  # distinctive names, so finding them in the plan means something
PROFILE = {"min": 1, "opt": 4, "max": 16}


def trt_or_skip() -> types.ModuleType:
    try:
        return import_tensorrt("auto")[0]
    except MissingBackendError as exc:
        pytest.skip(f"no TensorRT to build with: {exc}")


def cuda_devices() -> int:
    """CUDA devices the driver sees (0 without a driver), asked through libcuda itself, not through TensorRT."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


# ---------------------------------------------------------------- tiny ONNX models
def save_model(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any], weights: dict[str, Any]) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def conv_classifier(path: Path, batch: int | str = "N", height: int | str = 8) -> Path:
    """NHWC (batch, 8, 8, 1) float32 -> Transpose/Conv/Relu/Flatten/MatMul/Softmax -> (batch, 10)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Transpose", [INPUT], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "kernel"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Flatten", ["relu"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "dense"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
    ]
    return save_model(
        path, nodes, [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [batch, height, 8, 1])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [batch, 10])],
        {"kernel": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
         "dense": (0.1 * rng.standard_normal((4 * 8 * 8, 10))).astype(np.float32)})


def pairs_only(path: Path) -> Path:
    """A dynamic batch on paper, but Reshape to (2, -1) and a (128, 10) MatMul make batch 4 the only one that fits."""
    nodes = [helper.make_node("Reshape", [INPUT, "pairs"], ["paired"]),
             helper.make_node("MatMul", ["paired", "dense"], [OUTPUT])]
    return save_model(path, nodes, [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 8, 8, 1])],
                      [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [2, 10])],
                      {"pairs": np.array([2, -1], np.int64), "dense": np.full((128, 10), 0.01, np.float32)})


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("engine_models")
    paths = {"dynamic": conv_classifier(d / "dynamic.onnx"), "static": conv_classifier(d / "static.onnx", batch=4),
             "pairs": pairs_only(d / "pairs.onnx"), "dynamic_height": conv_classifier(d / "height.onnx", height="H")}
    paths["truncated"] = d / "truncated.onnx"
    paths["truncated"].write_bytes(paths["dynamic"].read_bytes()[:300])
    paths["text"] = d / "text.onnx"
    paths["text"].write_text("this is not an ONNX model\n")  # protobuf reads it as an empty model
    paths["empty"] = d / "empty.onnx"
    paths["empty"].write_bytes(b"")
    return paths


def build(onnx_path: Path, out: Path, precision: str = "fp32", profile: dict[str, int] = PROFILE, *extra: str,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    """scripts/build_engine.py with the arguments rules/engine.smk passes."""
    return run_script("build_engine.py", "--onnx", onnx_path, "--precision", precision,
                      "--min-batch", profile["min"], "--opt-batch", profile["opt"], "--max-batch", profile["max"],
                      "--workspace-mib", 64, *extra, "--flavour", "auto",
                      "--engine", out / f"{precision}.trt", "--info", out / f"{precision}.json", check=check)


@pytest.fixture(scope="module")
def built(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One fp32 build of the dynamic-batch model with profile 1/4/16, shared by the tests that inspect it."""
    trt_or_skip()
    out = tmp_path_factory.mktemp("engines")
    proc = build(models["dynamic"], out, "fp32", PROFILE, f"--tactic-sources={TEST_TACTIC_SOURCES}")
    return {"dir": out, "engine": out / "fp32.trt", "info": json.loads((out / "fp32.json").read_text()),
            "stderr": proc.stderr}


def shape(batch: int) -> list[int]:
    return [batch, 8, 8, 1]


def assert_nothing_written(out: Path) -> None:
    if out.exists():
        assert sorted(p.name for p in out.iterdir()) == [], "a failed build left files behind"
        assert leftovers(out) == []


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("build_engine.py: error: "), proc.stderr
    return errors[0]


# ---------------------------------------------------------------- a real build and what it records
def test_engine_file_and_info(built: dict[str, Any], models: dict[str, Path]) -> None:
    trt, flavour = import_tensorrt("auto")
    engine, info = built["engine"], built["info"]
    assert engine.is_file() and engine.stat().st_size > 0
    assert info["engine_bytes"] == engine.stat().st_size
    assert leftovers(built["dir"]) == []
    assert sorted(p.name for p in built["dir"].iterdir()) == ["fp32.json", "fp32.trt"]
    # the builder and its version, as the installed bindings report them
    assert info["builder"] == flavour and info["tensorrt_version"] == version_of(trt) != "unknown"
    if flavour == "tensorrt-rtx":
        assert info["tensorrt_version"] == importlib.metadata.version("tensorrt-rtx-cu13-bindings")
    assert f"built {flavour} {info['tensorrt_version']} fp32 engine ({engine.stat().st_size} bytes)" in built["stderr"]
    # precision, profile and tensors
    assert (info["precision"], info["tf32"], info["fp16"]) == ("fp32", False, False)
    assert info["profile"] == {"input": INPUT, "min": shape(1), "opt": shape(4), "max": shape(16)}
    assert info["output"] == {"name": OUTPUT, "shape": [-1, 10]}
    assert (info["workspace_mib"], info["tactic_sources"], info["tactic_source_notes"]) == (
        64, TEST_TACTIC_SOURCES, [])
    assert info["onnx"] == str(models["dynamic"]) and info["engine"] == str(engine)
    assert info["build_seconds"] >= 0 and isinstance(info["warnings"], list)
    # the plan carries the I/O tensor names (TensorRT looks tensors up by name when the engine runs)
    data = engine.read_bytes()
    assert INPUT.encode() in data and OUTPUT.encode() in data


def test_tf32_build_records_tactic_source_notes(models: dict[str, Path], tmp_path: Path) -> None:
    """Removing sources this TensorRT lacks (TensorRT-RTX has no cuBLAS/cuDNN tactics) builds, with a note each."""
    trt = trt_or_skip()
    build(models["dynamic"], tmp_path, "tf32", {"min": 2, "opt": 2, "max": 8}, "--tactic-sources=-CUBLAS,-CUBLAS_LT")
    info = json.loads((tmp_path / "tf32.json").read_text())
    assert (info["precision"], info["tf32"], info["fp16"]) == ("tf32", True, False)
    assert info["profile"] == {"input": INPUT, "min": shape(2), "opt": shape(2), "max": shape(8)}
    assert info["tactic_sources"] == "-CUBLAS,-CUBLAS_LT"
    missing = [n for n in ("CUBLAS", "CUBLAS_LT") if not hasattr(trt.TacticSource, n)]
    assert info["tactic_source_notes"] == [f"{n} is not a tactic source of this TensorRT; nothing to remove"
                                           for n in missing]
    assert (tmp_path / "tf32.trt").stat().st_size == info["engine_bytes"] > 0


@pytest.mark.skipif(cuda_devices() > 0, reason="a CUDA device is visible: test_engine_deserializes_on_a_gpu runs")
def test_deserializing_without_a_gpu_fails_for_the_documented_reason(built: dict[str, Any]) -> None:
    """TensorRT's runtime needs CUDA: here deserialize_cuda_engine returns None and logs a CUDA runtime error."""
    trt = trt_or_skip()
    errors: list[str] = []

    class Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.Logger.ERROR):
                errors.append(msg)

    logger = Logger()
    runtime = trt.Runtime(logger)
    assert runtime is not None  # creating the runtime works on the CPU; deserializing is what needs the device
    assert runtime.deserialize_cuda_engine(built["engine"].read_bytes()) is None
    assert errors and any("deserializeCudaEngine" in e for e in errors), errors
    assert any("cudaError" in e or "CUDA" in e for e in errors), errors


@pytest.mark.gpu
def test_engine_deserializes_on_a_gpu(built: dict[str, Any]) -> None:
    if cuda_devices() == 0:
        pytest.skip("no CUDA device is visible (libcuda missing or cuInit failed): engines cannot be deserialized")
    trt = trt_or_skip()
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(built["engine"].read_bytes())
    assert engine is not None, "deserialization failed on a GPU; see the TensorRT messages above"
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert names == [INPUT, OUTPUT]
    assert engine.get_tensor_mode(INPUT) == trt.TensorIOMode.INPUT
    assert engine.get_tensor_mode(OUTPUT) == trt.TensorIOMode.OUTPUT
    assert tuple(engine.get_tensor_shape(INPUT)) == (-1, 8, 8, 1)
    assert tuple(engine.get_tensor_shape(OUTPUT)) == (-1, 10)
    assert profile_shape(trt, engine, INPUT) == (tuple(shape(1)), tuple(shape(4)), tuple(shape(16)))


def test_static_batch_builds_without_a_profile(models: dict[str, Path], tmp_path: Path) -> None:
    """A static batch of 4 gets no optimization profile; the requested 1/32/256 is replaced by 4/4/4 and noted."""
    trt_or_skip()
    build(models["static"], tmp_path, "fp32", {"min": 1, "opt": 32, "max": 256})
    info = json.loads((tmp_path / "fp32.json").read_text())
    assert (tmp_path / "fp32.trt").stat().st_size == info["engine_bytes"] > 0
    assert info["profile"] == {"input": INPUT, "min": shape(4), "opt": shape(4), "max": shape(4)}
    assert info["output"] == {"name": OUTPUT, "shape": [4, 10]}
    assert f"input '{INPUT}' has a static batch of 4: no optimization profile" in info["tactic_source_notes"]


@pytest.mark.slow
def test_tiny_trained_model_builds(tiny_model: dict[str, Path], tmp_path: Path) -> None:
    """The ONNX model the pipeline's convert step writes (a trained TF CNN) builds with the rule's arguments."""
    trt_or_skip()
    graph = onnx.load(str(tiny_model["onnx"])).graph
    in_name, out_name = graph.input[0].name, graph.output[0].name
    build(tiny_model["onnx"], tmp_path, "fp32", {"min": 1, "opt": 8, "max": 32})
    info = json.loads((tmp_path / "fp32.json").read_text())
    assert (tmp_path / "fp32.trt").stat().st_size == info["engine_bytes"] > 0
    in_shape = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]]
    assert info["profile"] == {"input": in_name, "min": [1, *in_shape], "opt": [8, *in_shape],
                               "max": [32, *in_shape]}
    assert info["output"]["name"] == out_name and info["output"]["shape"][0] == -1
    assert info["output"]["shape"][1:] == [10]  # the ten digit classes


# ---------------------------------------------------------------- builds that must fail, writing nothing
@pytest.mark.parametrize(("model", "profile", "extra", "message"), [
    ("dynamic", {"min": 8, "opt": 4, "max": 16}, [], "the profile needs 1 <= min (8) <= opt (4) <= max (16) batch"),
    ("dynamic", {"min": 0, "opt": 4, "max": 16}, [], "the profile needs 1 <= min (0) <= opt (4) <= max (16) batch"),
    ("dynamic", {"min": 1, "opt": 32, "max": 16}, [], "<= opt (32) <= max (16) batch"),
    ("pairs", {"min": 2, "opt": 2, "max": 2}, [], "TensorRT could not build the engine: "),
    ("dynamic_height", PROFILE, [], f"input '{INPUT}' has dynamic non-batch dimensions (-1, -1, 8, 1); "
                                    "only the batch may vary"),
    ("dynamic", PROFILE, ["--tactic-sources=CUBLAS"], "tactic source 'CUBLAS' must start with + or -"),
    ("truncated", PROFILE, [], "TensorRT's ONNX parser rejected "),
    ("text", PROFILE, [], "TensorRT's ONNX parser found no graph in "),
    ("empty", PROFILE, [], "TensorRT's ONNX parser found no graph in "),
], ids=["min>opt", "min=0", "opt>max", "outside-the-model", "dynamic-height", "unsigned-tactic", "truncated-onnx",
        "text-onnx", "empty-onnx"])
def test_impossible_builds_are_one_line_errors(models: dict[str, Path], tmp_path: Path, model: str,
                                               profile: dict[str, int], extra: list[str], message: str) -> None:
    trt_or_skip()
    out = tmp_path / "engines"
    line = one_line_error(build(models[model], out, "fp32", profile, *extra, check=False))
    assert message in line
    if model == "pairs":  # TensorRT's own reason comes along
        assert "mismatching dimensions" in line
    if model in ("truncated", "text", "empty"):
        assert str(models[model]) in line and "is it a valid ONNX model? re-run the conversion" in line
    assert_nothing_written(out)


def test_missing_onnx_file(tmp_path: Path) -> None:
    out = tmp_path / "engines"
    line = one_line_error(build(tmp_path / "absent.onnx", out, check=False))
    assert "does not exist; run the convert_onnx step first" in line
    assert_nothing_written(out)


def test_corrupt_onnx_is_a_user_error_in_process(models: dict[str, Path]) -> None:
    trt_or_skip()
    from trtverify.engine import BuildOptions, build_engine

    with pytest.raises(UserError, match="ONNX parser rejected .*truncated.onnx"):
        build_engine(models["truncated"], BuildOptions(min_batch=1, opt_batch=4, max_batch=16, workspace_mib=64))


def test_fp16_on_tensorrt_rtx_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    """TensorRT-RTX has no FP16 builder flag (it takes precision from the model's types): engine.py refuses fp16."""
    trt = trt_or_skip()
    out = tmp_path / "engines"
    proc = build(models["dynamic"], out, "fp16", check=False)
    if hasattr(trt.BuilderFlag, "FP16"):  # full TensorRT builds fp16
        assert proc.returncode == 0, proc.stderr
        info = json.loads((out / "fp16.json").read_text())
        assert (info["precision"], info["tf32"], info["fp16"]) == ("fp16", True, True)
        return
    line = one_line_error(proc)
    assert f"{import_tensorrt('auto')[1]} {version_of(trt)} has no FP16 builder flag" in line
    assert "TensorRT-RTX takes precision from the model's types" in line
    assert "drop fp16 from tensorrt.precisions" in line
    assert_nothing_written(out)


# ---------------------------------------------------------------- tactic sources (no build)
class TRT10TacticSource(enum.IntEnum):
    """TensorRT 10's tactic sources and their bit positions."""

    CUBLAS = 0
    CUBLAS_LT = 1
    CUDNN = 2
    EDGE_MASK_CONVOLUTIONS = 3
    JIT_CONVOLUTIONS = 4


TRT10 = types.SimpleNamespace(TacticSource=TRT10TacticSource)
ALL = 0b11111


@pytest.mark.parametrize(("spec", "mask"), [
    ("default", ALL),
    ("", ALL),
    ("  DEFAULT ", ALL),
    ("-CUBLAS,-CUBLAS_LT,+CUDNN", 0b11100),
    ("-CUBLAS,-CUBLAS_LT,-CUDNN", 0b11000),
    (" -cublas , -cudnn ,", 0b11010),  # case and blanks as trtexec users type them
    ("-EDGE_MASK_CONVOLUTIONS,-JIT_CONVOLUTIONS,+JIT_CONVOLUTIONS", 0b10111),
])
def test_tactic_sources_trt10_names(spec: str, mask: int) -> None:
    assert parse_tactic_sources(TRT10, spec, ALL) == (mask, [])


def test_tactic_sources_start_from_the_builders_default() -> None:
    assert parse_tactic_sources(TRT10, "+CUBLAS", 0b11000) == (0b11001, [])
    assert parse_tactic_sources(TRT10, "-CUDNN", 0b11000) == (0b11000, [])  # removing an absent one changes nothing


def test_tactic_sources_unknown_names() -> None:
    valid = "CUBLAS, CUBLAS_LT, CUDNN, EDGE_MASK_CONVOLUTIONS, JIT_CONVOLUTIONS"
    with pytest.raises(UserError) as exc:
        parse_tactic_sources(TRT10, "-CUBLAS,+CUDNNN", ALL)
    assert str(exc.value) == f"tactic source CUDNNN is not known to this TensorRT; available: {valid}"
    with pytest.raises(UserError, match=r"tactic source 'CUDNN' must start with \+ or -"):
        parse_tactic_sources(TRT10, "CUDNN", ALL)
    # removing a source this TensorRT lacks is a no-op with a note (a config shared by TensorRT 8.5/10 and RTX)
    assert parse_tactic_sources(TRT10, "-CUBLASS", ALL) == (ALL, ["CUBLASS is not a tactic source of this "
                                                                  "TensorRT; nothing to remove"])


def test_tactic_sources_with_the_installed_tensorrt() -> None:
    """The real enum and the builder config's real default mask; TensorRT-RTX knows only its two sources."""
    trt = trt_or_skip()
    config = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_builder_config()
    default = int(config.get_tactic_sources())
    names = [n for n in dir(trt.TacticSource) if n.isupper()]
    assert "EDGE_MASK_CONVOLUTIONS" in names and "JIT_CONVOLUTIONS" in names
    edge = 1 << int(trt.TacticSource.EDGE_MASK_CONVOLUTIONS)
    mask, notes = parse_tactic_sources(trt, "-EDGE_MASK_CONVOLUTIONS", default)
    assert (mask, notes) == (default & ~edge, [])
    config.set_tactic_sources(mask)  # TensorRT accepts the mask
    assert int(config.get_tactic_sources()) == mask
    assert parse_tactic_sources(trt, "+EDGE_MASK_CONVOLUTIONS", mask) == (mask | edge, [])
    if not hasattr(trt.TacticSource, "CUDNN"):  # TensorRT-RTX
        assert names == ["EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS"]
        mask, notes = parse_tactic_sources(trt, "-CUBLAS,-CUBLAS_LT,+JIT_CONVOLUTIONS", default)
        assert mask == default | (1 << int(trt.TacticSource.JIT_CONVOLUTIONS))
        assert notes == ["CUBLAS is not a tactic source of this TensorRT; nothing to remove",
                         "CUBLAS_LT is not a tactic source of this TensorRT; nothing to remove"]
        with pytest.raises(UserError, match="tactic source CUDNN is not known to this TensorRT; "
                                            "available: EDGE_MASK_CONVOLUTIONS, JIT_CONVOLUTIONS$"):
            parse_tactic_sources(trt, "-CUBLAS,-CUBLAS_LT,+CUDNN", default)


def test_tactic_source_error_through_the_cli(models: dict[str, Path], tmp_path: Path) -> None:
    trt = trt_or_skip()
    if hasattr(trt.TacticSource, "CUDNN"):
        pytest.skip("this TensorRT has cuDNN tactics; the refusal is TensorRT-RTX's")
    out = tmp_path / "engines"
    line = one_line_error(build(models["dynamic"], out, "fp32", PROFILE, "--tactic-sources=-CUBLAS,+CUDNN",
                                check=False))
    assert "tactic source CUDNN is not known to this TensorRT; available: EDGE_MASK_CONVOLUTIONS" in line
    assert_nothing_written(out)


# ---------------------------------------------------------------- which TensorRT gets imported
def run_import(tmp_path: Path, prefer: str, *, block_rtx: bool, fake_tensorrt: bool = True) -> dict[str, Any]:
    """import_tensorrt(prefer) in a fresh interpreter, with a Builder-less 'tensorrt' package first on sys.path."""
    fake = tmp_path / "fake"
    if fake_tensorrt:
        (fake / "tensorrt").mkdir(parents=True, exist_ok=True)
        (fake / "tensorrt" / "__init__.py").write_text('"""Stand-in for tensorrt-stubs: types only, no Builder."""\n'
                                                      '__version__ = "10.13.0"\n')
    code = textwrap.dedent(f"""
        import json, sys
        if {block_rtx!r}:
            sys.modules["tensorrt_rtx_bindings"] = None  # importing it now raises ImportError
            sys.modules["tensorrt_rtx"] = None
        try:
            import tensorrt
        except ImportError:
            tensorrt = None
        from trtverify.errors import MissingBackendError
        from trtverify.tensorrt_compat import import_tensorrt
        seen = {{"tensorrt_file": getattr(tensorrt, "__file__", None), "has_builder": hasattr(tensorrt, "Builder")}}
        try:
            module, flavour = import_tensorrt({prefer!r})
            seen.update(module=module.__name__, flavour=flavour)
        except MissingBackendError as exc:
            seen.update(error=str(exc))
        print(json.dumps(seen))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(SCRIPTS)])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_type_stubs_alone_are_not_tensorrt(tmp_path: Path) -> None:
    seen = run_import(tmp_path, "auto", block_rtx=True)
    assert seen["tensorrt_file"] == str(tmp_path / "fake" / "tensorrt" / "__init__.py") and not seen["has_builder"]
    error = seen["error"]
    assert error.startswith("TensorRT is not installed here (tensorrt: only type stubs, no library; ")
    assert "tensorrt_rtx_bindings: import of tensorrt_rtx_bindings halted" in error
    assert "pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings" in error


def test_type_stubs_fall_back_to_tensorrt_rtx(tmp_path: Path) -> None:
    try:
        import tensorrt_rtx_bindings  # noqa: F401
    except ImportError:
        pytest.skip("TensorRT-RTX is not installed")
    seen = run_import(tmp_path, "auto", block_rtx=False)
    assert not seen["has_builder"] and (seen["module"], seen["flavour"]) == ("tensorrt_rtx_bindings", "tensorrt-rtx")
    # asking for full TensorRT by name does not silently take RTX
    seen = run_import(tmp_path, "tensorrt", block_rtx=False)
    assert seen["error"].startswith("TensorRT is not installed here (tensorrt: only type stubs, no library). ")


def test_installed_tensorrt_stubs_are_recognised(tmp_path: Path) -> None:
    """The venv's own 'tensorrt' (tensorrt-stubs: a namespace of .pyi files) is told apart from a real TensorRT."""
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("no 'tensorrt' module here at all")
    seen = run_import(tmp_path, "tensorrt", block_rtx=False, fake_tensorrt=False)
    if seen["has_builder"]:
        pytest.skip("a real TensorRT is installed here")
    assert seen["tensorrt_file"] is None  # a namespace package: no __init__.py, only __init__.pyi
    assert "tensorrt: only type stubs, no library" in seen["error"]


def test_unknown_flavour() -> None:
    with pytest.raises(UserError, match="tensorrt.flavour must be auto, tensorrt or tensorrt-rtx, not 'rtx'"):
        import_tensorrt("rtx")


def test_a_builder_that_tensorrt_cannot_make_is_one_line() -> None:
    """Full TensorRT 8.5.3 without a usable GPU: its binding raises TypeError ('factory function returned nullptr')
    after logging the CUDA error; the build says so in one line instead of a traceback."""
    from types import SimpleNamespace

    from trtverify.engine import _Logger, make_builder

    class Builder:
        def __init__(self, logger: Any) -> None:
            logger.log(2, "[checkMacros.cpp] cudaError 35: CUDA driver version is insufficient")
            raise TypeError("pybind11::init(): factory function returned nullptr")

    class BaseLogger:
        WARNING = 2

        def __init__(self) -> None:
            pass

    trt = SimpleNamespace(Builder=Builder, ILogger=BaseLogger, Logger=BaseLogger, __version__="8.5.3.1")
    with pytest.raises(UserError, match=r"TensorRT 8.5.3.1 could not create a builder \(.*cudaError 35.*\); full "
                                        r"TensorRT builds engines only on a machine with a supported NVIDIA GPU"):
        make_builder(trt, _Logger(trt, echo=False))
