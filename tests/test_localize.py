"""Layer localization (SavedModel -> ONNX Runtime on the CPU, ONNX Runtime -> TensorRT where it runs) and the
precision attestation of engine builds.

The slow tests use a real architecture: MobileNetV2 (alpha 0.35, 32x32, 10 classes) with random weights and
batch-norm statistics spread so that every layer's output varies across samples.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from conftest import REPO, run_script
from trtverify import localize
from trtverify.engine import (ACCURACY_WARNING, BuildOptions, build_engine, datatype_of, inspector_status,
                              parse_layer_information, precision_counts)
from trtverify.errors import MissingBackendError, UserError
from trtverify.localize import Tap, layer_errors, layer_threshold, to_reference_layout
from trtverify.tensorrt_compat import import_tensorrt

sys.path.insert(0, str(REPO / "tools"))  # localize_models: the models the GPU run uses too

DEFECT_LAYER = "block_12_expand"  # a 1x1 Conv2D 40 layers deep, folded into its BatchNorm by tf2onnx


def trt_or_skip() -> Any:
    try:
        return import_tensorrt("auto")[0]
    except MissingBackendError as exc:
        pytest.skip(f"no TensorRT to build with: {exc}")


# ---------------------------------------------------------------- a real architecture, converted by tf2onnx
@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("keras")
    onnx = pytest.importorskip("onnx")
    from localize_models import make_samples, random_mobilenet

    d = tmp_path_factory.mktemp("mobilenet")
    x = make_samples()
    model = random_mobilenet(x)
    assert float(model(x[:16]).numpy().std(axis=0).mean()) > 1e-3, "outputs must vary across samples"
    model.export(str(d / "saved_model"), verbose=False)
    np.save(d / "x.npy", x[:8])
    tf2onnx_cli("--saved-model", d / "saved_model", "--output", d / "model.onnx", "--opset", "17",
                "--signature_def", "serving_default")
    return {"dir": d, "saved_model": d / "saved_model", "onnx": d / "model.onnx", "samples": d / "x.npy",
            "layers": [layer.name for layer in model.layers], "onnx_model": onnx.load(str(d / "model.onnx"))}


@pytest.fixture(scope="module")
def gpu_mobilenet(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The MobileNetV2 above for the GPU hop. A GPU machine without TensorFlow gets it from
    ``TRTVERIFY_TEST_LOCALIZE_MODELS``: a folder tools/localize_models.py wrote (the GPU kit carries one), whose
    ``mobilenet`` is this model from the same samples, converted by the pipeline's convert step."""
    made = os.environ.get("TRTVERIFY_TEST_LOCALIZE_MODELS")
    if not made:
        return request.getfixturevalue("mobilenet")
    d = Path(made) / "mobilenet"
    if not (d / "model.onnx").is_file():
        pytest.fail(f"TRTVERIFY_TEST_LOCALIZE_MODELS={made} has no mobilenet/model.onnx: run tools/localize_models.py")
    return {"onnx": d / "model.onnx", "samples": d / "samples.npy"}


def tf2onnx_cli(*args: Any) -> None:
    """tf2onnx's command line, as convert_onnx.py runs it, but in this process: TensorFlow is already imported here,
    which saves a third of the fixture's time."""
    from tf2onnx import convert

    saved = sys.argv
    sys.argv = ["tf2onnx.convert", *map(str, args)]
    try:
        convert.main()
    finally:
        sys.argv = saved


def scaled_conv(mobilenet: dict[str, Any], path: Path, factor: float = 1.5) -> Path:
    """The ONNX model with the kernel of Keras layer DEFECT_LAYER scaled: a converter bug in one layer."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(mobilenet["onnx_model"])
    prefix = localize.scope_prefix(n.name for n in model.graph.node)
    scope = {i.name: localize.layer_of(i.name, prefix) for i in model.graph.initializer}
    names = localize.display_names({s for s in scope.values() if s})
    hits = [i for i in model.graph.initializer
            if scope[i.name] and names[scope[i.name]] == DEFECT_LAYER and numpy_helper.to_array(i).ndim == 4]
    assert len(hits) == 1, [h.name for h in hits]
    hits[0].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(hits[0]) * np.float32(factor), hits[0].name))
    onnx.save(model, str(path))
    return path


@pytest.mark.slow
def test_correct_conversion_has_no_divergent_layer(mobilenet: dict[str, Any]) -> None:
    hop, _, _ = localize.savedmodel_vs_onnx(mobilenet["saved_model"], mobilenet["onnx"], np.load(mobilenet["samples"]))
    assert hop["first_divergent_layer"] is None and hop["status"] == "compared"
    names = [row["layer"] for row in hop["layers"]]
    assert len(names) >= 100 and set(names) <= set(mobilenet["layers"])  # the user's own Keras names
    assert names[-1] == "predictions" and names.index("block_1_expand_BN") < names.index("block_16_project_BN")
    assert all(row["relative_error"] < hop["threshold"] for row in hop["layers"])
    assert {tuple(r["shape"][1:]) for r in hop["layers"] if r["layer"] == "bn_Conv1"} == {(16, 16, 16)}  # NHWC


@pytest.mark.slow
def test_scaled_conv_weight_is_localized_to_its_keras_layer(mobilenet: dict[str, Any], tmp_path: Path) -> None:
    bad = scaled_conv(mobilenet, tmp_path / "bad.onnx")
    samples = np.load(mobilenet["samples"])
    hop, _, _ = localize.savedmodel_vs_onnx(mobilenet["saved_model"], bad, samples)
    assert hop["first_divergent_layer"] == f"{DEFECT_LAYER}_BN" and hop["first_divergent_fused"] == [DEFECT_LAYER]
    rows = hop["layers"]
    at = [r["layer"] for r in rows].index(f"{DEFECT_LAYER}_BN")
    assert not any(r["divergent"] for r in rows[:at]) and rows[at]["relative_error"] > 10 * hop["threshold"]
    assert rows[-1]["divergent"]  # the defect reaches the output


@pytest.mark.slow
def test_tensorrt_hop_builds_a_debug_engine_and_records_why_it_cannot_run(mobilenet: dict[str, Any]) -> None:
    """On a CPU machine TensorRT-RTX builds the debug engine with every layer tensor marked; running it is skipped
    with the reason, and no number is filled in."""
    trt_or_skip()
    from trtverify.localize_trt import onnx_vs_tensorrt

    samples = np.load(mobilenet["samples"])[:2]
    taps = localize.onnx_taps(mobilenet["onnx_model"])
    reference = localize.run_onnx(mobilenet["onnx_model"], samples, [t.onnx_tensor for t in taps])
    hop = onnx_vs_tensorrt(mobilenet["onnx"], taps, reference, samples, BuildOptions(workspace_mib=256))
    assert hop["debug_engine"]["marked_tensors"] == len(taps) >= 100
    if hop["debug_engine"]["attestation"]["layers"]:  # the inspector ran: its layers read in Keras names
        assert {n for r in hop["debug_engine"]["layer_precisions"] for n in r["layers"]} <= set(mobilenet["layers"])
    assert hop["debug_engine"]["attestation"]["strict_fp32"] is True
    if hop["status"] == "compared":  # a GPU that runs the engine: a strict FP32 engine must not diverge
        assert hop["first_divergent_layer"] is None, hop["layers"]
        return
    assert hop["status"] == "skipped" and hop["layers"] == [] and "cannot run here" in hop["reason"]


@pytest.mark.slow
def test_cli_without_tensorflow_names_layers_from_onnx(mobilenet: dict[str, Any], tmp_path: Path) -> None:
    """The GPU machine's mode: no SavedModel, layers named from the ONNX model, each requested hop recorded."""
    trt = trt_or_skip()
    out = tmp_path / "localization.json"
    proc = run_script("localize.py", "--onnx", mobilenet["onnx"], "--samples", mobilenet["samples"],
                      "--num-samples", "2", "--precisions", "fp32", "fp16", "--output", out)
    result = json.loads(out.read_text())
    assert result["samples"] == 2 and result["layers_matched"] >= 100 and result["saved_model"] is None
    hops = {h["precision"]: h for h in result["hops"]}
    assert list(hops) == ["fp32", "fp16"] and "onnxruntime->tensorrt_fp32: " in proc.stderr
    if not hasattr(trt.BuilderFlag, "FP16"):  # TensorRT-RTX: no fp16 flag, said so
        assert hops["fp16"]["status"] == "skipped" and "no FP16 builder flag" in hops["fp16"]["reason"]


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "localization.json"
    proc = run_script("localize.py", "--onnx", tmp_path / "absent.onnx", "--samples", tmp_path / "x.npy",
                      "--output", out, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "does not exist; run the convert_onnx step first" in lines[0]
    assert not out.exists()


@pytest.fixture(scope="module")
def full_tensorrt_and_pycuda() -> None:
    """Checked before the model is built (module scope, listed first), so the GPU test skips at once here."""
    pytest.importorskip("pycuda.driver", reason="pycuda is needed to run a TensorRT engine")
    if not hasattr(trt_or_skip().BuilderFlag, "FP16"):
        pytest.skip("TensorRT-RTX engines do not run on the lent GPUs; this needs full TensorRT")


@pytest.mark.gpu
def test_tensorrt_hop_on_a_gpu(full_tensorrt_and_pycuda: None, gpu_mobilenet: dict[str, Any],
                               tmp_path: Path) -> None:
    out = tmp_path / "loc.json"
    run_script("localize.py", "--onnx", gpu_mobilenet["onnx"], "--samples", gpu_mobilenet["samples"], "--precisions",
               "fp32", "tf32", "fp16", "--tactic-sources=-CUBLAS,-CUBLAS_LT,-CUDNN", "--output", out)
    hops = {h["precision"]: h for h in json.loads(out.read_text())["hops"]}
    assert all(h["status"] == "compared" for h in hops.values()), hops
    assert hops["fp32"]["first_divergent_layer"] is None
    # each debug engine computed in its precision (an fp16 one with FP32 outputs ran no FP16 kernel on the H200)
    kernels = {p: h["debug_engine"]["attestation"]["kernel_precisions"] for p, h in hops.items()}
    assert kernels["fp16"].get("FP16") and kernels["tf32"].get("TF32") and set(kernels["fp32"]) == {"FP32"}, kernels


# ---------------------------------------------------------------- units
def test_channels_first_is_moved_to_the_reference_layout() -> None:
    ref = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    assert np.array_equal(to_reference_layout(ref, np.moveaxis(ref, -1, 1)), ref)
    assert np.array_equal(to_reference_layout(ref, ref.copy()), ref)
    assert to_reference_layout(ref, ref.reshape(2, 60)) is None  # same size, not the same tensor


def test_overflow_diverges_and_stays_valid_json() -> None:
    tap = Tap("dense", "t:0", "o:0")
    ref = {"t:0": np.linspace(-1, 1, 20, dtype=np.float32).reshape(2, 10)}
    rows, notes = layer_errors([tap], ref, {"o:0": np.full((2, 10), np.inf, np.float32)}, layer_threshold("fp16"))
    assert rows[0].divergent and notes == []
    result = localize.hop_result("h", rows, notes, 0.05, "fp16")
    json.dumps(result, allow_nan=False)
    assert result["first_divergent_layer"] == "dense" and result["layers"][0]["relative_error"] is None


def test_threshold_is_relative_to_the_layers_spread() -> None:
    tap = Tap("conv", "t:0", "o:0")
    ref = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32) * 10000
    noise = ref + ref.std() * layer_threshold("fp32") / 2  # below the threshold relative to the spread, large in
    # absolute terms
    rows, _ = layer_errors([tap], {"t:0": ref}, {"o:0": noise}, layer_threshold("fp32"))
    assert not rows[0].divergent and rows[0].max_abs_error > 0.05
    rows, _ = layer_errors([tap], {"t:0": ref}, {"o:0": ref * 1.1}, layer_threshold("fp32"))
    assert rows[0].divergent
    with pytest.raises(UserError, match="not 'int8'"):
        layer_threshold("int8")


def test_tracing_suffix_is_stripped_only_when_every_scope_has_one() -> None:
    assert localize.display_names(["dense_1_1", "conv_1"]) == {"dense_1_1": "dense_1", "conv_1": "conv"}
    assert localize.display_names(["dense_1", "conv"]) == {"dense_1": "dense_1", "conv": "conv"}


def test_layer_of_uses_the_common_scope() -> None:
    names = ["StatefulPartitionedCall/net_1/conv_1/Conv2D", "StatefulPartitionedCall/net_1/bn_1/batchnorm/add_1",
             "Identity"]
    prefix = localize.scope_prefix(names)
    assert prefix == ["StatefulPartitionedCall", "net_1"]
    assert localize.layer_of(names[1] + ":0", prefix) == "bn_1" and localize.layer_of("Identity", prefix) is None


# ---------------------------------------------------------------- attestation
INSPECTOR = REPO / "tests" / "data" / "inspector"  # TensorRT's own JSON, 8.5 and 10.x style (README.md there)


def inspector_layers(name: str) -> list[dict[str, Any]]:
    return parse_layer_information((INSPECTOR / name).read_text())


def test_inspector_json_of_tensorrt_8_5_gives_each_layers_output_type_and_tactic() -> None:
    layers = inspector_layers("trt85_detailed.json")
    assert [r["output_types"] for r in layers] == [["FP16"], ["FP16"], ["FP32"], ["FP32"]]
    assert layers[1]["tactic"].startswith("sm80_xmma_fprop") and layers[2]["tactic"] == "0x00000000000003ea"
    assert [o["type"] for o in layers[3]["outputs"]] == ["FP32"] and datatype_of(
        "Thirty-two wide channel vectorized row major Int8 format.") == "INT8"
    assert precision_counts(layers) == {"FP16": 2, "FP32": 2} and inspector_status(layers, []) == "ok"
    assert all(r["onnx_nodes"] == [] for r in layers)  # 8.5 has no Metadata: names are split instead
    names_only = parse_layer_information(json.dumps({"Layers": ["a", "b"]}))
    assert [r["name"] for r in names_only] == ["a", "b"] and precision_counts(names_only) == {}


def test_inspector_json_of_tensorrt_10_reads_bare_types_and_the_onnx_nodes_in_metadata() -> None:
    layers = inspector_layers("trt10_detailed.json")
    assert [r["output_types"] for r in layers] == [["FP16"], ["FP16"], ["FP32"]]
    assert layers[0]["onnx_nodes"] == ["Conv__339", "StatefulPartitionedCall/model/Conv1_relu/Relu6"]
    assert layers[2]["tactic"] == "__myl_Softmax_0x9c2f11"  # 10.x: TacticName only


def test_types_tensorrt_could_not_give_are_unknown_with_its_reason() -> None:
    """8.5 without an execution context: every format is "N/A due to dynamic shapes"; that is said, not counted
    as a type, and the record still holds the layers and tactics."""
    layers = inspector_layers("trt85_dynamic_no_context.json")
    assert {t for r in layers for t in r["output_types"]} == {"unknown"} and len(layers) == 3
    status = inspector_status(layers, ["no execution context could be made for the inspector"])
    assert status.startswith("ok; data types unknown for 3 of 3 layer outputs")
    assert "N/A due to dynamic shapes" in status and status.endswith("no execution context could be made for the "
                                                                     "inspector")
    with pytest.raises(ValueError):
        parse_layer_information("[1, 2]")


def test_inspector_that_fails_is_recorded_as_unavailable_not_raised() -> None:
    from types import SimpleNamespace

    from trtverify.engine import inspect_layers

    class Inspector:
        execution_context = None

        def get_engine_information(self, fmt: Any) -> str:
            return "not json"

    class Engine:
        num_io_tensors = 0

        def create_engine_inspector(self) -> Inspector:
            return Inspector()

        def create_execution_context(self) -> Any:
            return object()

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine:
            return Engine()

    trt = SimpleNamespace(LayerInformationFormat=SimpleNamespace(JSON=1), Runtime=Runtime, ILogger=object,
                          Logger=SimpleNamespace(WARNING=2), __version__="10.0.0")
    layers, status = inspect_layers(trt, b"engine")
    assert layers == [] and status.startswith("unavailable: the inspector's engine information could not be read")


def test_tensorrt_10_layers_map_to_keras_layers_through_their_metadata() -> None:
    from trtverify.localize_trt import layer_precisions

    owners = {"Conv__339": "bn_Conv1", "StatefulPartitionedCall/model/Conv1_relu/Relu6": "Conv1_relu",
              "StatefulPartitionedCall/model/block_1_add/add": "block_1_add"}
    rows = layer_precisions(inspector_layers("trt10_detailed.json"), owners)
    assert [(r["layers"], r["output_types"]) for r in rows] == [
        (["bn_Conv1", "Conv1_relu"], ["FP16"]), (["block_1_add"], ["FP16"])]


@pytest.mark.slow
def test_tensorrt_layer_names_map_back_to_keras_layers(mobilenet: dict[str, Any]) -> None:
    """TensorRT names layers after ONNX nodes, fused ones after several; each maps back to the user's layers."""
    from trtverify.localize_trt import layer_precisions

    owners = localize.node_display_names(mobilenet["onnx_model"])
    nodes = {layer: node for node, layer in owners.items()}  # one ONNX node per Keras layer, the last one
    conv, relu = nodes["bn_Conv1"], nodes["Conv1_relu"]
    engine_layers = [{"name": f"{conv} + {relu}", "output_types": ["FP16"], "tactic": "0x1"},
                     {"name": f"PWN({nodes['block_2_add']})", "output_types": ["FP32"], "tactic": None},
                     {"name": "Reformatting CopyNode for Input Tensor 0 to x", "output_types": ["FP32"],
                      "tactic": None}]
    rows = layer_precisions(engine_layers, owners)
    assert conv.startswith("Conv__")  # tf2onnx's fused conv+BN node: named only through its initializers
    assert [r["layers"] for r in rows] == [["bn_Conv1", "Conv1_relu"], ["block_2_add"]]
    assert rows[0]["output_types"] == ["FP16"] and rows[0]["tensorrt_layer"] == f"{conv} + {relu}"


def test_accuracy_warnings_are_picked_from_the_builders_messages() -> None:
    messages = ["[WARNING] Weights [name=conv.weight] has some fp16 values that are subnormal",
                "[WARNING] Your ONNX model has been generated with INT64 weights; attempting to cast down to INT32.",
                "[WARNING] Detected layernorm nodes in FP16: precision may be lost",
                "[WARNING] TensorRT was linked against cuDNN 8.6 but loaded cuDNN 8.4"]
    assert [m for m in messages if ACCURACY_WARNING.search(m)] == messages[:3]


def tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_build_attests_tf32_and_inspector(tmp_path: Path, precision: str) -> None:
    """The builder's own flags are read back: an fp32 build is strict FP32 only with TF32 cleared; the inspector
    either lists the layers or says why it could not (no GPU to deserialize the engine on)."""
    trt_or_skip()
    _, info = build_engine(tiny_onnx(tmp_path / "tiny.onnx"),
                           BuildOptions(precision=precision, min_batch=1, opt_batch=2, max_batch=4, workspace_mib=64))
    att = info["attestation"]
    assert att["tf32_allowed"] is (precision == "tf32") and att["strict_fp32"] is (precision == "fp32")
    assert att["profiling_verbosity"] == "DETAILED"
    if att["inspector"].startswith("ok"):  # on a GPU: the context at the opt shape gives every layer its types
        assert att["layers"] and att["inspector"] == "ok", att["inspector"]
        assert all(r["output_types"] and "unknown" not in r["output_types"] for r in att["layers"])
    else:
        assert att["inspector"].startswith("unavailable: the engine cannot be deserialized here") and not att["layers"]


# ---------------------------------------------------------------- the report's sections
def synthetic_localization() -> dict[str, Any]:
    """Two hops judged by the library itself: a clean one, and one where 'dense' jumps past the threshold."""
    ref = {"t:0": np.linspace(-1, 1, 40).reshape(4, 10), "u:0": np.linspace(0, 3, 40).reshape(4, 10)}
    taps = [Tap("conv", "t:0", "t:0", ("conv_pre",)), Tap("dense", "u:0", "u:0")]
    clean, _ = layer_errors(taps, ref, ref, layer_threshold("fp32"))
    broken, _ = layer_errors(taps, ref, {"t:0": ref["t:0"], "u:0": ref["u:0"] * 1.2}, layer_threshold("fp32"))
    hops = [localize.hop_result("savedmodel->onnxruntime", clean, [], layer_threshold("fp32"), "fp32"),
            localize.hop_result("onnxruntime->tensorrt_fp16", broken, ["the debug engine ran no FP16 kernel"],
                                layer_threshold("fp32"), "fp16"),
            localize.skipped_hop("onnxruntime->tensorrt_tf32", "tf32", "cannot run here: no CUDA device")]
    return {"layers_matched": 2, "hops": hops, "first_divergence": {"hop": hops[1]["hop"], "layer": "dense",
                                                                    "fused": []}}


def test_report_sections_name_the_layer_and_the_skipped_hop(tmp_path: Path) -> None:
    from trtverify.report_localize import divergent_layers_table, first_divergence_line, hop_table, plot_layer_errors

    loc = synthetic_localization()
    assert first_divergence_line(loc) == "First divergent layer: dense, in hop onnxruntime->tensorrt_fp16."
    _, rows = hop_table(loc)
    assert [r[1] for r in rows] == ["compared", "compared", "skipped"] and rows[2][-1].endswith("no CUDA device")
    assert rows[1][-1] == "the debug engine ran no FP16 kernel" and rows[0][-1] == ""  # a hop's notes are shown
    assert [r[3] for r in rows] == ["-", "dense", "-"]
    u = np.linspace(0, 3, 40)  # 'dense' scaled by 1.2: RMS error 0.2 * rms(u), over the spread std(u)
    relative = 0.2 * np.sqrt(np.mean(u ** 2)) / u.std()
    assert divergent_layers_table(loc)[1] == [["onnxruntime->tensorrt_fp16", "dense", "-", "4x10",
                                               pytest.approx(0.6), pytest.approx(relative)]]
    plt = pytest.importorskip("matplotlib.pyplot")
    assert plot_layer_errors(plt, "m", loc, tmp_path / "p.png") and (tmp_path / "p.png").stat().st_size > 0
    assert not plot_layer_errors(plt, "m", {"hops": [loc["hops"][2]]}, tmp_path / "none.png")


def test_localization_is_offered_only_for_drift_or_mismatch() -> None:
    from trtverify.report_localize import localization_offer

    assert localization_offer("net", {"savedmodel vs onnxruntime": "identical", "a vs b": "consistent"}) is None
    line = localization_offer("net", {"savedmodel vs tensorrt_tf32": "drift", "savedmodel vs onnxruntime": "identical"})
    assert line is not None and line.startswith("savedmodel vs tensorrt_tf32 is not identical: ")
    assert "`snakemake results/net/localization.json`" in line


def test_attestation_table_refuses_strict_fp32_with_tf32() -> None:
    from trtverify.report_localize import attestation_table

    att = {"strict_fp32": False, "tf32_allowed": True, "fp16_allowed": False, "output_precisions": {"FP32": 3},
           "inspector": "ok", "accuracy_warnings": []}
    _, rows = attestation_table({"tf32": {"attestation": att}, "old": {}})
    assert rows[0][:6] == ["tf32", "no", "yes", "no", "FP32 3", "-"] and rows[1][1] == "unknown"


# Kernel names as TensorRT 8.5.3 chose them on the H200 (engine inspector, DenseNet121 and MobileNetV2 engines).
H200_KERNELS = {
    "sm80_xmma_fprop_implicit_gemm_indexed_f32f32_f32f32_f32_nchwkcrs_nchw_tilesize64x64x8_stage3_warpsize1x4x1_g1"
    "_ffma_aligna4_alignc4": "FP32",
    "sm80_xmma_fprop_implicit_gemm_indexed_wo_smem_f32f32_tf32f32_f32_nhwckrsc_nhwc_tilesize128x16x32_stage1"
    "_warpsize4x1x1_g1_tensor16x8x8_aligna4_alignc8": "TF32",
    "sm80_xmma_fprop_implicit_gemm_f16f16_f16f16_f16_nhwckrsc_nhwc_tilesize256x32x32_stage4_warpsize4x1x1_g1"
    "_tensor16x8x16": "FP16",
    "sm50_xmma_pooling_max_nhwc_FP32FP32_WINDOWSIZE_0_PROPAGATE_NAN_2D": "FP32",
    "0x0000000000000000": None, "": None, None: None,
}


@pytest.mark.parametrize("tactic, math", list(H200_KERNELS.items()))
def test_a_kernel_name_says_its_math(tactic: str | None, math: str | None) -> None:
    from trtverify.engine import kernel_precision

    assert kernel_precision(tactic) == math


def test_kernel_counts_tell_a_tf32_engine_from_a_strict_one() -> None:
    from trtverify.engine import kernel_counts

    fp32, tf32, fp16 = (k for k, m in H200_KERNELS.items() if m in ("FP32", "TF32", "FP16") and "pooling" not in k)
    assert kernel_counts([{"tactic": fp32}, {"tactic": fp32}, {"tactic": "0x0"}]) == {"FP32": 2}
    assert kernel_counts([{"tactic": tf32}, {"tactic": fp32}, {"tactic": fp16}]) == {"TF32": 1, "FP32": 1, "FP16": 1}


# ---------------------------------------------------------------- the debug engine's run loop, without a GPU
class FakeCuda:
    """pycuda.driver's calls that run_debug_engine makes, with host arrays standing in for device memory."""

    class Device:
        @staticmethod
        def count() -> int:
            return 1

        def __init__(self, index: int) -> None:
            pass

        def retain_primary_context(self) -> Any:
            return self

        def push(self) -> None:
            FakeCuda.pushed += 1

        def pop(self) -> None:
            FakeCuda.pushed -= 1

    class Stream:
        handle = 7

        def synchronize(self) -> None:
            pass

    class Buffer:
        def __init__(self, nbytes: int) -> None:
            self.data, self.freed = bytearray(nbytes), False
            FakeCuda.memory[id(self)] = self

        def __int__(self) -> int:
            return id(self)

        def free(self) -> None:
            self.freed = True

    pushed = 0
    memory: ClassVar[dict[int, Any]] = {}

    @staticmethod
    def init() -> None:
        pass

    @classmethod
    def mem_alloc(cls, nbytes: int) -> Any:
        return cls.Buffer(nbytes)

    @staticmethod
    def memcpy_htod_async(buffer: Any, array: np.ndarray, stream: Any) -> None:
        buffer.data[:array.nbytes] = array.tobytes()

    @staticmethod
    def memcpy_dtoh_async(array: np.ndarray, buffer: Any, stream: Any) -> None:
        array[...] = np.frombuffer(bytes(buffer.data[:array.nbytes]), array.dtype).reshape(array.shape)


def fake_trt() -> Any:
    """An engine with input 'x' (N, 3) and outputs 'double' = 2x and 'total' = row sums, tensor-name API only."""
    import types

    class Context:
        def __init__(self) -> None:
            self.shape: tuple[int, ...] = ()
            self.address: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return {"x": self.shape, "double": self.shape, "total": (self.shape[0],)}[name]

        def set_tensor_address(self, name: str, address: int) -> None:
            self.address[name] = address

        def execute_async_v3(self, stream_handle: int) -> bool:
            x = np.frombuffer(bytes(FakeCuda.memory[self.address["x"]].data), np.float32).reshape(self.shape)
            FakeCuda.memory[self.address["double"]].data[:] = (2 * x).tobytes()
            FakeCuda.memory[self.address["total"]].data[:] = x.sum(axis=1).astype(np.float32).tobytes()
            return stream_handle == 7

    class Engine:
        num_io_tensors = 3

        def get_tensor_name(self, i: int) -> str:
            return ["x", "double", "total"][i]

        def get_tensor_mode(self, name: str) -> str:
            return "in" if name == "x" else "out"

        def get_tensor_dtype(self, name: str) -> Any:
            return np.float32

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            return Engine() if data == b"engine" else None

    class ILogger:
        def __init__(self) -> None:
            pass

    return types.SimpleNamespace(Runtime=Runtime, TensorIOMode=types.SimpleNamespace(INPUT="in"), nptype=lambda t: t,
                                 ILogger=ILogger, Logger=types.SimpleNamespace(WARNING=2))


def test_debug_engine_outputs_come_back_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from trtverify import localize_trt

    monkeypatch.setitem(sys.modules, "pycuda.driver", FakeCuda)
    monkeypatch.setitem(sys.modules, "pycuda", type(sys)("pycuda"))
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = localize_trt.run_debug_engine(fake_trt(), b"engine", x)
    assert sorted(out) == ["double", "total"] and FakeCuda.pushed == 0
    assert np.array_equal(out["double"], 2 * x) and np.array_equal(out["total"], x.sum(axis=1))
    assert all(b.freed for b in FakeCuda.memory.values())
    with pytest.raises(UserError, match="cannot be deserialized here"):
        localize_trt.run_debug_engine(fake_trt(), b"other", x)
    assert FakeCuda.pushed == 0  # the context is popped on failure too


def test_tensorrt_hop_without_that_tensorrt_is_skipped_with_the_reason(tmp_path: Path) -> None:
    """Asking for full TensorRT where only TensorRT-RTX (or nothing) is installed: skipped, the reason recorded."""
    from trtverify.localize_trt import onnx_vs_tensorrt

    try:
        import_tensorrt("tensorrt")
        pytest.skip("full TensorRT is installed here")
    except MissingBackendError:
        pass
    x = np.ones((2, 16), np.float32)
    hop = onnx_vs_tensorrt(tiny_onnx(tmp_path / "tiny.onnx"), [Tap("mm", "", "y")], {"y": x[:, :4]}, x,
                           BuildOptions(precision="tf32", flavour="tensorrt"))
    assert (hop["hop"], hop["status"], hop["layers"]) == ("onnxruntime->tensorrt_tf32", "skipped", [])
    assert hop["reason"].startswith("no debug engine: TensorRT is not installed here")


def test_fp16_debug_engine_asks_for_fp16_where_the_math_is() -> None:
    """On the H200 (8.5.3) an fp16 debug engine whose marked outputs stayed FP32 ran no FP16 kernel, so its curve
    hid an FP16 overflow: float layers are asked for FP16 (preferred), marked float outputs become FP16, and layers
    with integer outputs (shape arithmetic) are left alone."""
    from types import SimpleNamespace

    from trtverify.localize_trt import ask_for_fp16

    f32, f16, i32 = "float32", "float16", "int32"

    def tensor(name: str, dtype: str, output: bool) -> Any:
        return SimpleNamespace(name=name, dtype=dtype, is_network_output=output)

    layers = [SimpleNamespace(outputs=[tensor("conv:0", f32, True)], precision=None),
              SimpleNamespace(outputs=[tensor("shape:0", i32, True)], precision=None),
              SimpleNamespace(outputs=[tensor("add:0", f32, False), tensor("idx:0", i32, False)], precision=None),
              SimpleNamespace(outputs=[tensor("relu:0", f32, False)], precision=None)]
    for layer in layers:
        layer.num_outputs = len(layer.outputs)
        layer.get_output = layer.outputs.__getitem__
    network = SimpleNamespace(num_layers=len(layers), get_layer=layers.__getitem__)
    flags: list[str] = []
    trt = SimpleNamespace(float32=f32, float16=f16, BuilderFlag=SimpleNamespace(PREFER_PRECISION_CONSTRAINTS="prefer"))
    asked = ask_for_fp16(trt, network, SimpleNamespace(set_flag=flags.append), ["conv:0", "shape:0"])
    assert [layer.precision for layer in layers] == [f16, None, None, f16] and flags == ["prefer"]
    assert [layer.outputs[0].dtype for layer in layers] == [f16, i32, f32, f32]  # only marked outputs change
    assert (asked["layers_asked"], asked["outputs_fp16"]) == (2, 1)


def test_a_debug_engine_without_kernels_of_its_precision_says_so() -> None:
    from trtverify.localize_trt import precision_note

    note = precision_note("fp16", {"kernel_precisions": {"FP32": 25, "TF32": 11}})
    assert note and "ran no FP16 kernel" in note and "FP32 25, TF32 11" in note
    assert precision_note("fp16", {"kernel_precisions": {"FP16": 3, "FP32": 1}}) is None
    assert precision_note("tf32", {"kernel_precisions": {"FP32": 4}}) is not None
    assert precision_note("fp32", {"kernel_precisions": {"FP32": 4}}) is None
    assert precision_note("fp16", {"kernel_precisions": {}}) is None  # no kernel names: nothing to say


def test_inspector_gets_a_context_at_the_opt_shape_of_dynamic_inputs() -> None:
    """TensorRT 8.5.3 on the H200 reported every layer's type as "N/A due to dynamic shapes" until the inspector has
    an execution context whose dynamic inputs have shapes: the attestation attaches one at the profile's opt shape."""
    from types import SimpleNamespace

    from trtverify.engine import shaped_context

    class Context:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[int, ...]] = {}

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.shapes[name] = tuple(shape)
            return True

    class Engine:
        num_io_tensors = 2
        names = {0: "x", 1: "y"}

        def create_execution_context(self) -> Context:
            return Context()

        def get_tensor_name(self, i: int) -> str:
            return self.names[i]

        def get_tensor_mode(self, name: str) -> str:
            return "in" if name == "x" else "out"

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (-1, 32, 32, 3) if name == "x" else (-1, 10)

        def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
            return [(1, 32, 32, 3), (8, 32, 32, 3), (16, 32, 32, 3)]

    trt = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="in"))
    context = shaped_context(trt, Engine())
    assert context.shapes == {"x": (8, 32, 32, 3)}


# ---------------------------------------------------------------- TensorRT Python -> C++ (trt_infer --dump-outputs)
STAND_IN_DUMP = '''import json, re, sys
from pathlib import Path
import numpy as np
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
mode = Path(args["--engine"]).read_bytes()
if mode == b"refuse":
    sys.exit("trt_infer: error: the engine refused a batch of 4 samples for 'x'")
x = np.load(args["--input"], allow_pickle=False)
out = {"double": 2 * x, "total": x.sum(axis=1)}
if mode == b"one-bit-off":
    out["total"] = np.nextafter(out["total"], np.float32(np.inf))
folder = Path(args["--dump-outputs"])
folder.mkdir(parents=True)
files = {}
for i, (name, value) in enumerate(out.items()):  # named as trt_infer's dump_file_name names them
    files[name] = f"{i:04d}_" + re.sub(r"[^A-Za-z0-9._-]", "_", name[:96]) + ".npy"
    np.save(folder / files[name], value)
(folder / "index.json").write_text(json.dumps({"tool": "stand-in", "tensors": files}))
'''
PARITY_TAPS = [Tap("conv", "", "double"), Tap("dense", "", "total")]


def stand_in_trt_infer(tmp_path: Path) -> Path:
    """A CPU stand-in for trt_infer --dump-outputs (proves the comparison and the plumbing, not TensorRT)."""
    program = tmp_path / "trt_infer"
    program.write_text(f"#!{sys.executable}\n{STAND_IN_DUMP}")
    program.chmod(0o755)
    return program


def python_side(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"double": 2 * x, "total": x.sum(axis=1)}


@pytest.mark.parametrize("engine, first", [(b"same", None), (b"one-bit-off", "dense")])
def test_cpp_hop_is_judged_bit_for_bit_and_names_the_first_layer_that_differs(tmp_path: Path, engine: bytes,
                                                                              first: str | None) -> None:
    from trtverify.localize_cpp import python_vs_cpp

    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    hop = python_vs_cpp(stand_in_trt_infer(tmp_path), engine, x, PARITY_TAPS, python_side(x), "fp16")
    assert (hop["hop"], hop["status"], hop["threshold"]) == ("tensorrt_fp16->tensorrt_cpp_fp16", "compared", 0.0)
    assert hop["first_divergent_layer"] == first and [r["layer"] for r in hop["layers"]] == ["conv", "dense"]
    assert [r["divergent"] for r in hop["layers"]] == [False, first is not None]
    if first:  # one ulp: far inside any tolerance, still a parity failure
        assert 0 < hop["layers"][1]["max_abs_error"] < 1e-6


def test_cpp_hop_records_why_trt_infer_could_not_run(tmp_path: Path) -> None:
    from trtverify.localize_cpp import python_vs_cpp

    x = np.ones((4, 3), np.float32)
    hop = python_vs_cpp(stand_in_trt_infer(tmp_path), b"refuse", x, PARITY_TAPS, python_side(x), "fp32")
    assert hop["status"] == "skipped" and hop["layers"] == []
    assert hop["reason"].endswith("trt_infer: error: the engine refused a batch of 4 samples for 'x'")


def test_parity_keeps_nan_at_the_same_place_identical_and_a_dtype_change_not() -> None:
    from trtverify.localize_cpp import bit_identical, parity_hop

    a = np.array([[1.0, np.nan], [np.inf, 2.0]], np.float32)
    assert bit_identical(a, a.copy()) and not bit_identical(a, a.astype(np.float16))
    hop = parity_hop("h", "fp16", [Tap("overflow", "", "t")], {"t": a}, {"t": a.copy()})
    assert hop["first_divergent_layer"] is None  # an FP16 overflow seen by both harnesses is no parity failure


def test_dump_index_may_not_point_outside_its_folder(tmp_path: Path) -> None:
    from trtverify.localize_cpp import read_dump

    np.save(tmp_path / "x.npy", np.zeros(2))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "index.json").write_text(json.dumps({"tensors": {"t": "../x.npy"}}))
    with pytest.raises(UserError, match="points outside the folder"):
        read_dump(tmp_path / "d")
    with pytest.raises(UserError, match="no index.json"):
        read_dump(tmp_path)


def scoped_onnx(path: Path) -> Path:
    """A conv net named like a Keras export (StatefulPartitionedCall/net/<layer>/<op>), built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    s = "StatefulPartitionedCall/net/"
    nodes = [helper.make_node("Conv", ["x", s + "conv/kernel"], [s + "conv/Conv:0"], s + "conv/Conv", pads=[1] * 4),
             helper.make_node("Relu", [s + "conv/Conv:0"], [s + "relu/Relu:0"], s + "relu/Relu"),
             helper.make_node("Flatten", [s + "relu/Relu:0"], [s + "flatten/Reshape:0"], s + "flatten/Reshape"),
             helper.make_node("MatMul", [s + "flatten/Reshape:0", s + "dense/kernel"], ["y"], s + "dense/MatMul")]
    weights = [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), s + "conv/kernel"),
               numpy_helper.from_array(rng.normal(size=(256, 5)).astype(np.float32) / 16, s + "dense/kernel")]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_cli_adds_the_cpp_hop_after_each_tensorrt_hop(tmp_path: Path) -> None:
    """Where TensorRT cannot run (here), each C++ hop is skipped with the Python side's reason; no numbers."""
    pytest.importorskip("onnxruntime")
    np.save(tmp_path / "x.npy", np.random.default_rng(2).normal(size=(4, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "loc.json"
    run_script("localize.py", "--onnx", scoped_onnx(tmp_path / "m.onnx"), "--samples", tmp_path / "x.npy",
               "--precisions", "fp32", "--flavour", "tensorrt", "--trt-infer", stand_in_trt_infer(tmp_path),
               "--output", out)
    loc = json.loads(out.read_text())
    assert [h["hop"] for h in loc["hops"]] == ["onnxruntime->tensorrt_fp32", "tensorrt_fp32->tensorrt_cpp_fp32"]
    if loc["hops"][0]["status"] == "skipped":
        assert loc["hops"][1]["status"] == "skipped" and loc["hops"][1]["reason"].startswith(
            "the Python side of the engine did not run")
    assert loc["layers_matched"] == 4


@pytest.mark.gpu
def test_cpp_hop_on_a_gpu(full_tensorrt_and_pycuda: None, tmp_path: Path) -> None:
    """The real trt_infer (TRTVERIFY_TRT_INFER) on the same debug engine as Python: bit-identical at every layer."""
    binary = os.environ.get("TRTVERIFY_TRT_INFER")
    if not binary:
        pytest.skip("set TRTVERIFY_TRT_INFER to a trt_infer built against this TensorRT")
    np.save(tmp_path / "x.npy", np.random.default_rng(2).normal(size=(4, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "loc.json"
    run_script("localize.py", "--onnx", scoped_onnx(tmp_path / "m.onnx"), "--samples", tmp_path / "x.npy",
               "--precisions", "fp32", "fp16", "--tactic-sources=-CUBLAS,-CUBLAS_LT,-CUDNN", "--trt-infer", binary,
               "--output", out)
    cpp = [h for h in json.loads(out.read_text())["hops"] if "tensorrt_cpp" in h["hop"]]
    assert len(cpp) == 2 and all(h["status"] == "compared" and h["layers"] for h in cpp), cpp
    assert all(h["first_divergent_layer"] is None for h in cpp)


# ---------------------------------------------------------------- thresholds from the tolerance policy
def test_thresholds_follow_the_tolerance_policy_and_the_measured_floor() -> None:
    from trtverify.localize import LayerThresholds
    from trtverify.tolerance import DEFAULTS, FLOOR_MULTIPLE, FP32_MINIMUM, TolerancePolicy

    base = LayerThresholds()
    assert base.value("fp32") == pytest.approx(FP32_MINIMUM + DEFAULTS["fp32"]["rtol"])
    assert base.value("fp32") < base.value("tf32") <= base.value("fp16")
    floored = LayerThresholds(floor_normalised=1e-4, floor_from="results/m/onnx_check.json")
    assert floored.value("fp32") == pytest.approx(FLOOR_MULTIPLE * 1e-4 + DEFAULTS["fp32"]["rtol"])
    record = floored.record("fp32")
    assert record["atol_source"] == "measured floor" and record["noise_floor_from"] == "results/m/onnx_check.json"
    override = LayerThresholds(TolerancePolicy({"fp16": {"atol": 0.1, "reason": "measured on our GPUs"}}))
    assert override.value("fp16") == pytest.approx(0.1 + DEFAULTS["fp16"]["rtol"])
    assert override.record("fp16")["atol_source"] == "config" and "measured on our GPUs" in override.record(
        "fp16")["reason"]


def test_cli_noise_floor_without_the_floor_is_one_line(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 8, 8), np.float32))
    (tmp_path / "onnx_check.json").write_text(json.dumps({"noise_floor": {"floor": 1e-6}}))
    out = tmp_path / "loc.json"
    proc = run_script("localize.py", "--onnx", scoped_onnx(tmp_path / "m.onnx"), "--samples", tmp_path / "x.npy",
                      "--noise-floor", tmp_path / "onnx_check.json", "--output", out, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "no noise_floor.floor_normalised" in lines[0]
    assert not out.exists()
