"""Build a TensorRT engine from ONNX with an optimization profile for dynamic batch.

Precision names the arithmetic, so a drift can be attributed:
  fp32  strict FP32: the TF32 flag cleared (TensorRT enables TF32 for FP32 engines by default on Ampere and newer)
  tf32  TensorRT's default for FP32 engines: TF32 tensor cores allowed
  fp16  FP16 kernels allowed (and TF32); not available on TensorRT-RTX, which takes precision from the model's types
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .tensorrt_compat import dims, import_tensorrt, network_flags, parse_tactic_sources, profile_shape, version_of

if TYPE_CHECKING:  # mypy checks the calls below against tensorrt-stubs (the TensorRT 10 API)
    import tensorrt

PRECISIONS = ("fp32", "tf32", "fp16")


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp32"
    min_batch: int = 1
    opt_batch: int = 32
    max_batch: int = 256
    workspace_mib: int = 1024
    tactic_sources: str = "default"
    flavour: str = "auto"
    builder_optimization_level: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise UserError(f"precision '{self.precision}' is not one of {', '.join(PRECISIONS)}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise UserError(f"the profile needs 1 <= min ({self.min_batch}) <= opt ({self.opt_batch}) "
                            f"<= max ({self.max_batch}) batch")


class _Logger:
    """Collects TensorRT's messages so a failed parse or build can say why in one line."""

    def __init__(self, trt: Any, echo: bool = True) -> None:
        self.messages: list[str] = []
        outer = self

        class Logger(trt.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: Any, msg: str) -> None:
                # Called from TensorRT's C++ side: nothing may escape from here, and Severity is compared as an int
                # (the enum's ordering operators differ between the 8.5, 10.x and RTX bindings).
                try:
                    if int(severity) <= int(trt.Logger.WARNING):
                        name = getattr(severity, "name", str(severity))
                        outer.messages.append(f"[{name}] {msg}")
                        if echo:
                            print(f"TensorRT {name}: {msg}", flush=True)
                except Exception as exc:  # noqa: BLE001 - never let anything escape into TensorRT
                    print(f"TensorRT message could not be logged ({exc}): {msg}", flush=True)

        self.logger = Logger()


def make_builder(trt: Any, log: _Logger) -> Any:
    """TensorRT's builder, or one line saying why there is none: without a usable GPU, TensorRT 8.5's Python
    binding raises TypeError ("factory function returned nullptr") after logging the CUDA error."""
    try:
        builder = trt.Builder(log.logger)
    except TypeError:
        builder = None
    if builder is None:
        why = log.messages[-1] if log.messages else "no message from TensorRT"
        raise UserError(f"TensorRT {version_of(trt)} could not create a builder ({why}); full TensorRT builds "
                        "engines only on a machine with a supported NVIDIA GPU and driver (TensorRT-RTX builds on a "
                        "CPU machine: tensorrt.flavour tensorrt-rtx)")
    return builder


def parse_onnx(trt: Any, log: _Logger, onnx_path: Path) -> tuple[Any, Any, Any]:
    """(builder, network, parser) for ``onnx_path``; the parser must stay alive as long as the network."""
    builder: tensorrt.Builder = make_builder(trt, log)
    network: tensorrt.INetworkDefinition = builder.create_network(network_flags(trt))
    parser: tensorrt.OnnxParser = trt.OnnxParser(network, log.logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UserError(f"TensorRT's ONNX parser rejected {onnx_path}: {'; '.join(errors) or 'no details'}; "
                        "is it a valid ONNX model? re-run the conversion")
    if network.num_inputs == 0 and network.num_outputs == 0 and network.num_layers == 0:
        # Protobuf decodes an empty file, and many a text file, as an empty ModelProto, which the parser accepts.
        raise UserError(f"TensorRT's ONNX parser found no graph in {onnx_path} (no inputs, outputs or layers); "
                        "is it a valid ONNX model? re-run the conversion")
    return builder, network, parser


def configure(trt: Any, flavour: str, builder: Any, network: Any,
              options: BuildOptions) -> tuple[Any, list[str], BuildOptions]:
    """The builder config for ``options`` (precision flags, tactics, profile, detailed profiling); returns it, notes,
    and the options as built (a static batch replaces the requested profile)."""
    inp: tensorrt.ITensor = network.get_input(0)
    in_dims = dims(inp.shape)
    if any(d < 0 for d in in_dims[1:]):
        raise UserError(f"input '{inp.name}' has dynamic non-batch dimensions {in_dims}; only the batch may vary")
    config: tensorrt.IBuilderConfig = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    notes: list[str] = []
    if options.precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    else:
        config.set_flag(trt.BuilderFlag.TF32)
    if options.precision == "fp16":
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise UserError(f"{flavour} {version_of(trt)} has no FP16 builder flag (TensorRT-RTX takes precision "
                            "from the model's types); drop fp16 from tensorrt.precisions for this builder")
        config.set_flag(trt.BuilderFlag.FP16)
    if hasattr(config, "get_tactic_sources"):
        mask, notes = parse_tactic_sources(trt, options.tactic_sources, int(config.get_tactic_sources()))
        config.set_tactic_sources(mask)
    if options.builder_optimization_level is not None and hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = options.builder_optimization_level
    if hasattr(trt, "ProfilingVerbosity"):  # TensorRT >= 8.2: the inspector then names each layer's tactic
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    shape = lambda b: (b, *in_dims[1:])  # noqa: E731
    if in_dims[0] < 0:  # a dynamic batch needs a profile; a static one must not get a different one
        profile: tensorrt.IOptimizationProfile = builder.create_optimization_profile()
        # Tuples convert to Dims in every binding; the stubs declare Dims only.
        low, opt, high = shape(options.min_batch), shape(options.opt_batch), shape(options.max_batch)
        profile.set_shape(inp.name, low, opt, high)  # type: ignore[arg-type]
        config.add_optimization_profile(profile)
    else:
        notes.append(f"input '{inp.name}' has a static batch of {in_dims[0]}: no optimization profile")
        options = BuildOptions(**{**options.__dict__, "min_batch": in_dims[0], "opt_batch": in_dims[0],
                                  "max_batch": in_dims[0]})
    return config, notes, options


def build_engine(onnx_path: Path, options: BuildOptions) -> tuple[bytes, dict[str, Any]]:
    """Return the serialized engine and a description of how it was built."""
    options.validate()
    trt, flavour = import_tensorrt(options.flavour)
    log = _Logger(trt)
    builder, network, _parser = parse_onnx(trt, log, onnx_path)
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise UserError(f"{onnx_path} has {network.num_inputs} inputs and {network.num_outputs} outputs; "
                        "trtverify builds engines for one of each")
    inp: tensorrt.ITensor = network.get_input(0)
    config, notes, options = configure(trt, flavour, builder, network, options)
    shape = lambda b: (b, *dims(inp.shape)[1:])  # noqa: E731

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise UserError("TensorRT could not build the engine: " + ("; ".join(log.messages[-3:]) or "no message"))
    out: tensorrt.ITensor = network.get_output(0)
    info = {
        "builder": flavour, "tensorrt_version": version_of(trt), "precision": options.precision,
        "tf32": options.precision != "fp32", "fp16": options.precision == "fp16",
        "profile": {"input": inp.name, "min": list(shape(options.min_batch)), "opt": list(shape(options.opt_batch)),
                    "max": list(shape(options.max_batch))},
        "output": {"name": out.name, "shape": list(dims(out.shape))},
        "workspace_mib": options.workspace_mib, "tactic_sources": options.tactic_sources,
        "tactic_source_notes": notes, "build_seconds": round(seconds, 3),
        "engine_bytes": len(bytes(serialized)), "warnings": log.messages,
        "portable": "an engine runs only with the TensorRT version and GPU family that built it",
        "attestation": attest(trt, config, bytes(serialized), options.precision, log.messages),
    }
    return bytes(serialized), info


# Builder messages that bear on accuracy: FP16 weights that are subnormal or beyond FP16's range, precision
# fallbacks or reformats, loops, and weights cast down (INT64 -> INT32).
ACCURACY_WARNING = re.compile(r"subnormal|out of range|overflow|underflow|fp16|half|precision|fall(ing)? ?back|"
                              r"loop|cast down|clamp|denormal|accuracy", re.IGNORECASE)


def attest(trt: Any, config: Any, serialized: bytes, precision: str, messages: list[str]) -> dict[str, Any]:
    """What the engine really computes in: the builder flags as TensorRT reports them back, each layer's output
    types and tactic from the engine inspector, and the builder's warnings that bear on accuracy. "strict FP32"
    is claimed only for an fp32 build whose TF32 flag TensorRT reports cleared."""
    tf32 = bool(config.get_flag(trt.BuilderFlag.TF32))
    fp16 = bool(hasattr(trt.BuilderFlag, "FP16") and config.get_flag(trt.BuilderFlag.FP16))
    layers, inspector = inspect_layers(trt, serialized)
    return {"tf32_allowed": tf32, "fp16_allowed": fp16, "strict_fp32": precision == "fp32" and not tf32 and not fp16,
            "profiling_verbosity": "DETAILED" if hasattr(trt, "ProfilingVerbosity") else
            f"unavailable: TensorRT {version_of(trt)} has no ProfilingVerbosity (added in 8.2)",
            "inspector": inspector, "layers": layers, "output_precisions": precision_counts(layers),
            "kernel_precisions": kernel_counts(layers),
            "accuracy_warnings": [m for m in messages if ACCURACY_WARNING.search(m)]}


def inspect_layers(trt: Any, serialized: bytes) -> tuple[list[dict[str, Any]], str]:
    """(layers, "ok") from the engine inspector, or ([], "unavailable: why"): the inspector needs a deserialized
    engine, which needs the GPU (and TensorRT) the engine was built for. Where it ran but some layers' data types
    are not known, the status says how many and TensorRT's own words for why."""
    if not hasattr(trt, "LayerInformationFormat"):
        return [], f"unavailable: TensorRT {version_of(trt)} has no engine inspector (added in 8.2)"
    log = _Logger(trt, echo=False)
    engine = trt.Runtime(log.logger).deserialize_cuda_engine(serialized)
    if engine is None:
        why = log.messages[-1] if log.messages else "no message"
        return [], f"unavailable: the engine cannot be deserialized here to inspect it ({why})"
    inspector = engine.create_engine_inspector()
    context = shaped_context(trt, engine)
    notes = []
    if context is None:
        notes.append("no execution context could be made for the inspector")
    elif hasattr(inspector, "execution_context"):  # the binding's name in 8.5.3 (python/src/infer/pyCore.cpp) and 10.x
        inspector.execution_context = context
    else:
        notes.append(f"TensorRT {version_of(trt)}'s inspector takes no execution context")
    try:
        text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        layers = parse_layer_information(text)
    except (RuntimeError, TypeError, ValueError) as exc:  # a binding error or JSON TensorRT should not write
        return [], f"unavailable: the inspector's engine information could not be read ({exc})"
    return layers, inspector_status(layers, notes)


def inspector_status(layers: list[dict[str, Any]], notes: list[str]) -> str:
    """"ok", or "ok; data types unknown for N of M layer outputs (TensorRT: '...')" with why the context is missing."""
    outputs = [o for layer in layers for o in layer["outputs"]]
    unknown = [o for o in outputs if o["type"] == "unknown"]
    if not unknown:
        return "ok"
    said = sorted({o["format"] for o in unknown})
    return (f"ok; data types unknown for {len(unknown)} of {len(outputs)} layer outputs (TensorRT wrote: "
            f"{'; '.join(repr(s) for s in said[:3])})" + "".join(f"; {n}" for n in notes))


def shaped_context(trt: Any, engine: Any) -> Any:
    """An execution context with every dynamic input at its profile's opt shape: without one, the inspector of an
    engine with dynamic shapes reports each layer's data type as "N/A due to dynamic shapes" (seen on TensorRT
    8.5.3, H200; TensorRT's documented remedy is the inspector's execution context). None where a context cannot
    be made (then the types stay unknown, which the record shows)."""
    context = engine.create_execution_context()
    if context is None:
        return None
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT and -1 in dims(engine.get_tensor_shape(name)):
            context.set_input_shape(name, profile_shape(trt, engine, name)[1])
    return context


# A tensor's data type as the inspector writes it, mapped as NVIDIA's TensorRT Engine Explorer does
# (tools/experimental/trt-engine-explorer/trex/activations.py): TensorRT 8.x writes a format description
# ("Row major linear FP32", "Channel major FP16 format where channel % 8 == 0", "... row major Int8 format."),
# 10.x writes the bare type for its generated kernels ("Float", "Half", "Int32").
_TYPE_WORDS = {"fp32": "FP32", "float": "FP32", "fp16": "FP16", "half": "FP16", "bf16": "BF16", "bfloat16": "BF16",
               "fp8": "FP8", "double": "FP64", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
               "uint8": "UINT8", "bool": "BOOL"}
_DATATYPE = re.compile(r"\b(" + "|".join(_TYPE_WORDS) + r")\b", re.IGNORECASE)
# TensorRT >= 8.6 names the ONNX nodes a layer came from in "Metadata": "[ONNX Layer: a]\x1e[ONNX Layer: b]".
_ONNX_NODE = re.compile(r"\[ONNX Layer: ([^\]\x1e\x1f]+)\]")


# The math a kernel does, as its name spells it: NVIDIA's xmma kernels name their types, "..._f32f32_tf32f32_f32_..."
# being TF32 math on FP32 data, "_f16f16_f16f16_f16_" FP16, "_f32f32_f32f32_f32_..._ffma" FP32 (all three seen on
# the H200 with TensorRT 8.5.3). Where the inspector gives no data types (8.5 with dynamic shapes), this is the
# evidence of what ran; kernels that spell nothing (shuffles, copies: tactic 0x0...) say nothing.
_KERNEL_MATH = re.compile(r"_(?:f32|f16|bf16|i8|s8){2}_(tf32|f32|f16|bf16|i8|s8)(?:f32|f16|bf16|i8|s8|i32)_")
_KERNEL_WORDS = (("tf32", "TF32"), ("hmma", "FP16"), ("h884", "FP16"), ("h1688", "FP16"), ("fp16", "FP16"),
                 ("imma", "INT8"), ("int8", "INT8"), ("ffma", "FP32"), ("fp32", "FP32"))
_MATH_NAMES = {"tf32": "TF32", "f32": "FP32", "f16": "FP16", "bf16": "BF16", "i8": "INT8", "s8": "INT8"}


def kernel_precision(tactic: Any) -> str | None:
    """TF32, FP32, FP16, BF16 or INT8 as a tactic's kernel name spells it; None where it spells none."""
    name = str(tactic or "").lower()
    if not name or name.startswith("0x"):
        return None
    m = _KERNEL_MATH.search(name)
    if m:
        return _MATH_NAMES[m.group(1)]
    return next((math for word, math in _KERNEL_WORDS if word in name), None)


def kernel_counts(layers: list[dict[str, Any]]) -> dict[str, int]:
    """How many layers ran a kernel whose name spells each math precision."""
    counts: dict[str, int] = {}
    for layer in layers:
        math = kernel_precision(layer.get("tactic"))
        if math:
            counts[math] = counts.get(math, 0) + 1
    return counts


def datatype_of(text: str) -> str:
    """FP32, FP16, INT8, ... or "unknown" (e.g. TensorRT 8.5's "N/A due to dynamic shapes")."""
    m = _DATATYPE.search(text)
    return _TYPE_WORDS[m.group(1).lower()] if m else "unknown"


def parse_layer_information(text: str) -> list[dict[str, Any]]:
    """Per layer: name, type, each output's data type (with the inspector's own words), the data types alone, the
    tactic (8.x: TacticName, else TacticValue; 10.x: TacticName) and the ONNX nodes it came from (10.x
    Metadata). With LAYER_NAMES_ONLY verbosity the layers are bare names. Raises ValueError on text that is not the
    inspector's JSON."""
    info = json.loads(text)
    if not isinstance(info, dict) or not isinstance(info.get("Layers", []), list):
        raise ValueError("no 'Layers' list in the inspector's JSON")
    rows: list[dict[str, Any]] = []
    for layer in info.get("Layers", []):
        if isinstance(layer, str):
            rows.append({"name": layer, "type": None, "outputs": [], "output_types": [], "tactic": None,
                         "onnx_nodes": []})
            continue
        outputs = [{"name": o.get("Name"), "format": str(o.get("Format/Datatype", "")),
                    "type": datatype_of(str(o.get("Format/Datatype", "")))} for o in layer.get("Outputs", [])]
        rows.append({"name": layer.get("Name"), "type": layer.get("LayerType"), "outputs": outputs,
                     "output_types": [o["type"] for o in outputs],
                     "tactic": layer.get("TacticName") or layer.get("TacticValue"),
                     "onnx_nodes": _ONNX_NODE.findall(str(layer.get("Metadata", "")))})
    return rows


def precision_counts(layers: list[dict[str, Any]]) -> dict[str, int]:
    """How many layer outputs TensorRT keeps in each data type (FP16 where the fp16 flag took effect)."""
    counts: dict[str, int] = {}
    for layer in layers:
        for t in layer["output_types"]:
            counts[t] = counts.get(t, 0) + 1
    return counts
