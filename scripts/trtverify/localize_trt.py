"""The ONNX Runtime -> TensorRT hop of localization: a debug engine whose matched intermediate tensors are network
outputs, run on the same samples and compared with ONNX Runtime layer by layer.

TensorRT's ONNX parser names each network tensor after the ONNX tensor it computes, so the tensors to mark are found
by name; a layer TensorRT fused keeps the name of the last tensor the fusion produces. Marking a tensor as an output
stops TensorRT fusing across it, so the debug engine's kernels can differ from the deployed engine's: its per-layer
curve says where precision is lost, the deployed engine's own verdict stays in comparison.json.
Marked outputs are FP32 by default, and TensorRT then keeps the layers that write them in FP32 or TF32 (measured on
the H200 with 8.5.3: an fp16 debug engine ran no FP16 kernel at all). An fp16 hop therefore asks for FP16 outright
(``ask_for_fp16``), and a hop whose debug engine ran no kernel of its precision says so beside its curve.
Only the tensor-name API is used (TensorRT 8.5, 10.x, TensorRT-RTX).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .engine import BuildOptions, _Logger, attest, configure, parse_onnx
from .errors import MissingBackendError, UserError, require
from .localize import LayerThresholds, Tap, hop_result, layer_errors, node_display_names, skipped_hop
from .localize_cpp import python_vs_cpp
from .tensorrt_compat import dims, import_tensorrt, version_of


def mark_tensors(network: Any, names: Sequence[str]) -> list[str]:
    """Mark every layer output named in ``names`` as a network output; returns the names found (in order)."""
    by_name = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for k in range(layer.num_outputs):
            tensor = layer.get_output(k)
            by_name[tensor.name] = tensor
    found = []
    for name in names:
        tensor = by_name.get(name)
        if tensor is None:
            continue
        if not tensor.is_network_output:
            network.mark_output(tensor)
        found.append(name)
    return found


def build_debug_engine(onnx_path: Path, names: Sequence[str], options: BuildOptions) -> tuple[Any, bytes, list[str],
                                                                                             dict[str, Any]]:
    """(trt module, serialized debug engine, the marked names, its attestation)."""
    trt, flavour = import_tensorrt(options.flavour)
    log = _Logger(trt, echo=False)
    builder, network, _parser = parse_onnx(trt, log, onnx_path)
    marked = mark_tensors(network, names)
    config, _notes, options = configure(trt, flavour, builder, network, options)
    asked = ask_for_fp16(trt, network, config, marked) if options.precision == "fp16" else None
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"{flavour} could not build the debug engine with {len(marked)} marked tensors: "
                        + ("; ".join(log.messages[-3:]) or "no message"))
    info = {"builder": flavour, "tensorrt_version": version_of(trt), "marked_tensors": len(marked),
            **({"precision_request": asked} if asked else {}),
            "attestation": attest(trt, config, bytes(serialized), options.precision, log.messages)}
    return trt, bytes(serialized), marked, info


def ask_for_fp16(trt: Any, network: Any, config: Any, marked: Sequence[str]) -> dict[str, Any]:
    """Make an fp16 debug engine compute in FP16 where TensorRT can: the marked FP32 outputs become FP16 (an FP32
    output would keep the layer writing it in FP32, and a value beyond FP16's range shows as inf where it arises)
    and every layer with only FP32 outputs is asked for FP16, preferred rather than obeyed, so a layer without an
    FP16 kernel falls back with a builder warning instead of failing the build. What ran is in the attestation."""
    wanted = set(marked)
    outputs = layers = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        tensors = [layer.get_output(k) for k in range(layer.num_outputs)]
        if not tensors or any(t.dtype != trt.float32 for t in tensors):
            continue  # shape arithmetic, indices, booleans: not the math FP16 is about
        layer.precision = trt.float16
        layers += 1
        for tensor in tensors:
            if tensor.name in wanted and tensor.is_network_output:
                tensor.dtype = trt.float16
                outputs += 1
    config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    return {"rule": "every layer with FP32 outputs asked for FP16 (preferred, not obeyed), marked outputs FP16",
            "layers_asked": layers, "outputs_fp16": outputs}


def precision_note(precision: str, attestation: dict[str, Any]) -> str | None:
    """A note when a reduced-precision debug engine ran no kernel of its precision: its curve then does not show
    what that precision does, whatever it says."""
    wanted = {"tf32": "TF32", "fp16": "FP16"}.get(precision)
    kernels = attestation.get("kernel_precisions") or {}
    if wanted is None or not kernels or kernels.get(wanted):
        return None
    ran = ", ".join(f"{k} {v}" for k, v in sorted(kernels.items()))
    return (f"the debug engine ran no {wanted} kernel (kernels by the math their names spell: {ran}), so this curve "
            f"does not show what {wanted} does to these layers")


def run_debug_engine(trt: Any, serialized: bytes, samples: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the debug engine for ``samples`` (one batch). Raises UserError saying why it cannot run here."""
    cuda = require("pycuda.driver", purpose="running the TensorRT debug engine",
                   hint="pip install pycuda where the GPU and TensorRT are")
    cuda.init()
    if cuda.Device.count() == 0:
        raise UserError("no CUDA device is visible")
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    device: list[Any] = []
    try:
        log = _Logger(trt, echo=False)
        engine = trt.Runtime(log.logger).deserialize_cuda_engine(serialized)
        if engine is None:
            raise UserError("the engine cannot be deserialized here (" + "; ".join(log.messages[-2:]) + ")")
        context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if not context.set_input_shape(inputs[0], samples.shape):
            raise UserError(f"the debug engine refused input shape {list(samples.shape)} (a static batch of "
                            "another size?); pass --num-samples equal to the model's batch")
        host = {}
        for name in names:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            host[name] = (np.ascontiguousarray(samples, dtype) if name in inputs
                          else np.empty(dims(context.get_tensor_shape(name)), dtype))
            device.append(cuda.mem_alloc(max(host[name].nbytes, 1)))
            context.set_tensor_address(name, int(device[-1]))
        stream = cuda.Stream()
        cuda.memcpy_htod_async(device[names.index(inputs[0])], host[inputs[0]], stream)
        if not context.execute_async_v3(stream_handle=stream.handle):
            raise UserError("execute_async_v3 failed on the debug engine")
        for name, buffer in zip(names, device):
            if name not in inputs:
                cuda.memcpy_dtoh_async(host[name], buffer, stream)
        stream.synchronize()
        return {n: host[n] for n in names if n not in inputs}
    finally:
        for buffer in device:
            buffer.free()
        ctx.pop()


def layer_precisions(engine_layers: Sequence[dict[str, Any]], owners: dict[str, str]) -> list[dict[str, Any]]:
    """The inspector's layers in the user's layer names. TensorRT 10.x lists the ONNX nodes a layer came from in its
    metadata; 8.5 names a layer after its ONNX node(s), a fused one after all of them ("Conv__339 +
    .../Conv1_relu_1/Relu6", "PWN(a, b)"), so the name is split into node names. Either way the nodes are mapped
    through ``owners`` (ONNX node -> Keras layer); reformat layers and others with no node are left out."""
    rows = []
    for layer in engine_layers:
        tokens = list(layer.get("onnx_nodes") or [])
        tokens += [t.strip() for t in re.split(r" \+ |[(),]", str(layer["name"])) if t.strip()]
        keras = list(dict.fromkeys(owners[t] for t in tokens if t in owners))
        if keras:
            rows.append({"layers": keras, "tensorrt_layer": layer["name"], "output_types": layer["output_types"],
                         "tactic": layer["tactic"]})
    return rows


DebugRun = tuple[bytes, dict[str, np.ndarray]]  # a debug engine and its outputs, for the C++ hop


def tensorrt_hops(onnx_path: Path, taps: Sequence[Tap], reference: dict[str, np.ndarray], samples: np.ndarray,
                  options: BuildOptions, trt_infer: Path | None = None,
                  thresholds: LayerThresholds | None = None) -> list[dict[str, Any]]:
    """The ONNX Runtime -> TensorRT hop at ``options.precision`` and, with the C++ program ``trt_infer``, the
    TensorRT Python -> C++ hop on the same debug engine (skipped with the reason when the Python side did not run)."""
    hop, run = _onnx_vs_tensorrt(onnx_path, taps, reference, samples, options, thresholds)
    if trt_infer is None:
        return [hop]
    if run is None:
        cpp = skipped_hop(f"tensorrt_{options.precision}->tensorrt_cpp_{options.precision}", options.precision,
                          f"the Python side of the engine did not run: {hop.get('reason')}")
    else:
        cpp = python_vs_cpp(trt_infer, run[0], samples, taps, run[1], options.precision)
    return [hop, cpp]


def onnx_vs_tensorrt(onnx_path: Path, taps: Sequence[Tap], reference: dict[str, np.ndarray], samples: np.ndarray,
                     options: BuildOptions, thresholds: LayerThresholds | None = None) -> dict[str, Any]:
    """The hop at ``options.precision``: compared, or skipped with the reason (nothing is filled in)."""
    return _onnx_vs_tensorrt(onnx_path, taps, reference, samples, options, thresholds)[0]


def _onnx_vs_tensorrt(onnx_path: Path, taps: Sequence[Tap], reference: dict[str, np.ndarray], samples: np.ndarray,
                      options: BuildOptions,
                      thresholds: LayerThresholds | None) -> tuple[dict[str, Any], DebugRun | None]:
    """(the hop, (the debug engine, its outputs) where it ran)."""
    hop = f"onnxruntime->tensorrt_{options.precision}"
    batch = len(samples)
    options = BuildOptions(**{**options.__dict__, "min_batch": 1, "opt_batch": batch, "max_batch": batch})
    try:
        trt, serialized, marked, info = build_debug_engine(onnx_path, [t.onnx_tensor for t in taps], options)
    except UserError as exc:  # TensorRT missing, or a precision this builder lacks (fp16 on TensorRT-RTX)
        return skipped_hop(hop, options.precision, f"no debug engine: {exc}"), None
    onnx = require("onnx", purpose="localization (ONNX side)", hint="pip install onnx")
    info["layer_precisions"] = layer_precisions(info["attestation"]["layers"],
                                                node_display_names(onnx.load(str(onnx_path))))
    try:
        values = run_debug_engine(trt, serialized, samples)
    except (UserError, MissingBackendError) as exc:
        reason = (f"{info['builder']} {info['tensorrt_version']} built the debug engine with {len(marked)} of "
                  f"{len(taps)} layer tensors marked, but it cannot run here: {exc}")
        return {**skipped_hop(hop, options.precision, reason), "debug_engine": info}, None
    found = [t for t in taps if t.onnx_tensor in values]
    thresholds = thresholds or LayerThresholds()
    threshold = thresholds.value(options.precision)
    rows, notes = layer_errors(found, reference, values, threshold, other_side="tensorrt")
    note = precision_note(options.precision, info["attestation"])
    if note:
        notes.append(note)
    missing = [t.layer for t in taps if t.onnx_tensor not in values]
    if missing:
        notes.append(f"not in TensorRT's network (renamed or folded by the parser): {', '.join(missing)}")
    result = hop_result(hop, rows, notes, threshold, options.precision, thresholds.record(options.precision))
    return {**result, "debug_engine": info}, (serialized, values)
