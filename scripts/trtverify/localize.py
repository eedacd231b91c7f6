"""Where did it diverge: intermediate tensors of the SavedModel and the ONNX model, matched layer by layer.

The SavedModel's serving signature is frozen (as tf2onnx does) so every intermediate tensor can be fetched by name;
the ONNX model gets the matched tensors as extra graph outputs and runs with graph optimizations off, so they exist.
Both sides are named after the user's Keras layers: Keras puts each layer's ops in a name scope
(``StatefulPartitionedCall/<model>/<layer>/<op>``) and tf2onnx keeps TF op names for its nodes, or, where it fused
ops into a new node (``Conv__339`` = a Conv2D and its BatchNorm), for the node's initializers. A layer's tensor is
the LAST one it produces (fused layers: the last layer of the fusion); layers with no tensor on one side are left out.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Sequence

import numpy as np

from .errors import UserError, require
from .tolerance import PRECISIONS, Tolerance, TolerancePolicy

# Op types whose outputs are weights or bookkeeping, never a layer's activation.
_NOT_ACTIVATIONS = {"Const", "Identity", "ReadVariableOp", "Placeholder", "NoOp", "Shape", "Cast"}


@dataclass(frozen=True)
class LayerThresholds:
    """What localization judges a layer by: the project's tolerance policy (tolerance.py, docs/tolerances.md) at
    the hop's precision, with the model's measured noise floor (onnx_check.json) and the config's overrides.

    Rule: a layer's relative error is its RMS error in units of the reference layer's spread (std over the
    samples), so it is held to the policy's bound for one element one spread in size, in the policy's normalised
    units: atol + rtol. An fp32 hop thus follows the floor (atol = max(10 x floor, 1e-5)) and TF32/FP16 hops their
    own bounds, never tighter than fp32's; a config override of atol or rtol moves the layer threshold with the
    verdicts. The first layer past it, or not finite (an FP16 overflow), is where the error jumps.
    """

    policy: TolerancePolicy = field(default_factory=TolerancePolicy)
    floor_normalised: float = 0.0      # the reference's noise floor over its output scale (onnx_check.json)
    floor_from: str | None = None      # the file it was read from; None: no floor measured, the policy's minimum

    def tolerance(self, precision: str) -> Tolerance:
        if precision not in PRECISIONS:
            raise UserError(f"localization knows precisions {', '.join(PRECISIONS)}, not '{precision}'")
        return self.policy.for_precision(precision, scale=1.0, floor=self.floor_normalised)

    def value(self, precision: str) -> float:
        tolerance = self.tolerance(precision)
        return tolerance.atol + tolerance.rtol

    def record(self, precision: str) -> dict[str, Any]:
        """Where the threshold came from, for localization.json."""
        t = self.tolerance(precision)
        return {"rule": "atol + rtol of the tolerance policy at this precision, in units of the reference layer's "
                        "spread (trtverify.localize.LayerThresholds)",
                "atol": t.atol, "rtol": t.rtol, "atol_source": t.source, "reason": t.reason,
                "noise_floor_normalised": self.floor_normalised,
                "noise_floor_from": self.floor_from or "none given: the policy's minimum"}


def layer_threshold(precision: str, thresholds: LayerThresholds | None = None) -> float:
    """Largest relative error of one layer that still counts as agreement in ``precision`` (LayerThresholds)."""
    return (thresholds or LayerThresholds()).value(precision)


@dataclass(frozen=True)
class Tap:
    """One Keras layer and the tensors that hold its output on each side."""

    layer: str
    tf_tensor: str
    onnx_tensor: str
    fused: tuple[str, ...] = ()  # earlier layers with no tensor of their own in ONNX (a Conv2D folded into its BN)


# ---------------------------------------------------------------- names
def _components(name: str) -> list[str]:
    return name.split(":")[0].lstrip("^").split("/")


def scope_prefix(op_names: Iterable[str]) -> list[str]:
    """The name scopes every layer sits in (``StatefulPartitionedCall/<model>``): the longest common prefix of the
    scoped op names, so the next component is the layer."""
    scoped = [_components(n)[:-1] for n in op_names if len(_components(n)) >= 3]
    if not scoped:
        raise UserError("the SavedModel's ops carry no layer name scopes; localization needs a Keras model")
    prefix = scoped[0]
    for parts in scoped[1:]:
        k = 0
        while k < min(len(prefix), len(parts)) and prefix[k] == parts[k]:
            k += 1
        prefix = prefix[:k]
    return prefix


def layer_of(name: str, prefix: Sequence[str]) -> str | None:
    parts = _components(name)
    if len(parts) > len(prefix) + 1 and parts[:len(prefix)] == list(prefix):
        return parts[len(prefix)]
    return None


def display_names(scopes: Iterable[str]) -> dict[str, str]:
    """Scope -> the user's layer name. Tracing a Keras 3 model for export enters every layer's scope a second time,
    so TensorFlow suffixes each one with ``_1``; only when every scope has such a suffix is it the tracer's."""
    scopes = list(scopes)
    if scopes and all(re.search(r"_\d+$", s) for s in scopes):
        return {s: re.sub(r"_\d+$", "", s) for s in scopes}
    return {s: s for s in scopes}


# ---------------------------------------------------------------- TensorFlow side
def freeze_signature(saved_model: str | Path) -> Any:
    """The serving signature with its variables folded in (a ConcreteFunction whose graph has every op by name)."""
    tf = require("tensorflow", purpose="localization (SavedModel side)", hint="pip install tensorflow-cpu")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(str(saved_model))
    if "serving_default" not in loaded.signatures:
        raise UserError(f"{saved_model} has no serving_default signature; export it with model.export(dir)")
    frozen = convert_variables_to_constants_v2(loaded.signatures["serving_default"])
    if len(frozen.inputs) != 1:
        raise UserError(f"{saved_model}'s signature has {len(frozen.inputs)} inputs; localization handles one")
    return frozen


def _topological(nodes: dict[str, list[str]]) -> list[str]:
    """Node names in an order where every node follows its inputs (GraphDefs need not be sorted)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in nodes:
        stack = [(root, False)]
        while stack:
            name, done = stack.pop()
            if done:
                order.append(name)
                continue
            if name in seen or name not in nodes:
                continue
            seen.add(name)
            stack.append((name, True))
            stack.extend((i, False) for i in nodes[name] if i not in seen)
    return order


def tf_layer_outputs(graph_def: Any) -> tuple[list[str], dict[str, str]]:
    """(prefix, {layer scope: its last tensor}) in topological order. A layer's output is the last of its ops whose
    result is used outside the layer (by the next layer or the signature's output)."""
    inputs = {n.name: [i.split(":")[0].lstrip("^") for i in n.input] for n in graph_def.node}
    ops = {n.name: n.op for n in graph_def.node}
    prefix = scope_prefix(n for n, op in ops.items() if op not in _NOT_ACTIVATIONS)
    users: dict[str, set[str | None]] = {}
    for name, ins in inputs.items():
        for i in ins:
            users.setdefault(i, set()).add(layer_of(name, prefix))
    outputs: dict[str, str] = {}
    for name in _topological(inputs):
        layer = layer_of(name, prefix)
        if layer is None or ops[name] in _NOT_ACTIVATIONS:
            continue
        if users.get(name, set()) - {layer}:
            outputs.pop(layer, None)  # re-inserted last: dict order is the order of the layers' outputs
            outputs[layer] = f"{name}:0"
    return prefix, outputs


def run_tf(frozen: Any, samples: np.ndarray, tensors: Sequence[str]) -> dict[str, np.ndarray]:
    """Fetch ``tensors`` (names in the frozen graph) for ``samples``: the graph is imported into a wrap_function and
    pruned to exactly those fetches."""
    tf = require("tensorflow", purpose="localization (SavedModel side)", hint="pip install tensorflow-cpu")
    graph_def = frozen.graph.as_graph_def()
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    feed = wrapped.graph.get_tensor_by_name(frozen.inputs[0].name)
    pruned = wrapped.prune(feeds=[feed], fetches=[wrapped.graph.get_tensor_by_name(t) for t in tensors])
    values = pruned(tf.constant(samples))
    return {t: np.asarray(v) for t, v in zip(tensors, values)}


# ---------------------------------------------------------------- ONNX side
def _fused_from(node: Any, prefix: Sequence[str], weights: set[str]) -> list[tuple[int, str]]:
    """(input position, layer) of the initializers of a node tf2onnx created, whose own name carries no layer."""
    if layer_of(node.name, prefix) is not None:
        return []
    return [(j, o) for j, i in enumerate(node.input) if i in weights and (o := layer_of(i, prefix)) is not None]


def node_layers(model: Any, prefix: Sequence[str], known: Collection[str]) -> dict[str, str]:
    """{ONNX node name: its layer scope}, for layers in ``known``. A node named after a TF op belongs to that op's
    layer; a node tf2onnx created (``Conv__339``) to the layer of its last initializer: tf2onnx folds a BatchNorm
    into the conv's bias, the last input, so the node computes the BatchNorm's output."""
    weights = {i.name for i in model.graph.initializer}
    owners: dict[str, str] = {}
    for node in model.graph.node:
        fused = [o for _, o in _fused_from(node, prefix, weights) if o in known]
        layer = layer_of(node.name, prefix) or (fused[-1] if fused else None)
        if layer is not None and layer in known:
            owners[node.name] = layer
    return owners


def onnx_layer_outputs(model: Any, prefix: Sequence[str], known: Collection[str]) -> dict[str, str]:
    """{layer scope: the last ONNX tensor produced for it} (nodes assigned by :func:`node_layers`)."""
    owners = node_layers(model, prefix, known)
    return {owners[n.name]: n.output[0] for n in model.graph.node if n.name in owners and n.output}


def onnx_layer_order(model: Any) -> tuple[list[str], list[str]]:
    """(prefix, layer scopes in the order of their output node; a layer fused into a created node goes there, in
    input order). Not by first appearance: tf2onnx names the Transposes it inserts after the op that consumes them."""
    weights = {i.name for i in model.graph.initializer}
    prefix = scope_prefix(n.name for n in model.graph.node)
    position: dict[str, tuple[int, int]] = {}
    for k, node in enumerate(model.graph.node):
        mentions = _fused_from(node, prefix, weights)
        named = layer_of(node.name, prefix)
        if named is not None:
            mentions.append((len(node.input), named))
        for j, layer in mentions:
            position[layer] = max(position.get(layer, (-1, -1)), (k, j))
    return prefix, sorted(position, key=position.__getitem__)


def onnx_taps(model: Any) -> list[Tap]:
    """Taps from the ONNX model alone (where no TensorFlow is installed, as on a TensorRT machine), named as in
    :func:`match`."""
    prefix, order = onnx_layer_order(model)
    return _taps(order, onnx_layer_outputs(model, prefix, order), {})


def node_display_names(model: Any) -> dict[str, str]:
    """{ONNX node name: the user's layer name}: what TensorRT's layer names (taken from ONNX nodes) map back to."""
    prefix, order = onnx_layer_order(model)
    names = display_names(order)
    return {node: names[layer] for node, layer in node_layers(model, prefix, order).items()}


def with_outputs(model: Any, tensors: Sequence[str]) -> Any:
    """A copy of ``model`` that also outputs ``tensors`` (element types from shape inference, float by default)."""
    onnx = require("onnx", purpose="localization (ONNX side)", hint="pip install onnx")
    model = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    present = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(
                name, types.get(name) or onnx.TensorProto.FLOAT, None))
    return model


def run_onnx(model: Any, samples: np.ndarray, tensors: Sequence[str]) -> dict[str, np.ndarray]:
    """ONNX Runtime on the CPU with every graph optimization off, so no fusion removes a tapped tensor."""
    ort = require("onnxruntime", purpose="localization (ONNX side)", hint="pip install onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(with_outputs(model, tensors).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    values = session.run(list(tensors), {session.get_inputs()[0].name: samples})
    return {t: np.asarray(v) for t, v in zip(tensors, values)}


# ---------------------------------------------------------------- matching and judging
def match(frozen: Any, model: Any) -> list[Tap]:
    """Layers with a tensor on both sides, in the order the SavedModel computes them."""
    prefix, tf_out = tf_layer_outputs(frozen.graph.as_graph_def())
    return _taps(list(tf_out), onnx_layer_outputs(model, prefix, list(tf_out)), tf_out)


def _taps(order: Sequence[str], onnx_out: dict[str, str], tf_out: dict[str, str]) -> list[Tap]:
    """A tap per layer with an ONNX tensor; layers without one are folded into the next tap's ``fused``."""
    names = display_names(order)
    taps, pending = [], []
    for layer in order:
        if layer not in onnx_out:
            pending.append(names[layer])
            continue
        taps.append(Tap(names[layer], tf_out.get(layer, ""), onnx_out[layer], tuple(pending)))
        pending = []
    return taps


def to_reference_layout(reference: np.ndarray, other: np.ndarray) -> np.ndarray | None:
    """``other`` in the reference's layout: as is, or channels-first moved to channels-last (tf2onnx runs convs in
    NCHW and TF in NHWC). When both layouts fit (a square tensor with as many channels as rows), the closer one is
    taken. None when neither fits: the tensors do not hold the same thing."""
    candidates = []
    if other.shape == reference.shape:
        candidates.append(other)
    if other.ndim >= 3:
        moved = np.moveaxis(other, 1, -1)
        if moved.shape == reference.shape:
            candidates.append(moved)
    if not candidates:
        return None
    return min(candidates, key=lambda c: float(np.max(np.abs(c.astype(np.float64) - reference))))


@dataclass(frozen=True)
class LayerError:
    layer: str
    fused: list[str]
    reference_tensor: str
    other_tensor: str
    shape: list[int]
    max_abs_error: float
    rms_error: float
    reference_spread: float
    relative_error: float
    divergent: bool


def layer_errors(taps: Sequence[Tap], reference: dict[str, np.ndarray], other: dict[str, np.ndarray],
                 threshold: float, *, other_side: str = "onnx") -> tuple[list[LayerError], list[str]]:
    """Per-layer errors of ``other`` against ``reference`` and notes on the layers that could not be compared."""
    rows, notes = [], []
    for tap in taps:
        ref_name = tap.tf_tensor if other_side == "onnx" else tap.onnx_tensor
        ref = reference[ref_name].astype(np.float64)
        got = to_reference_layout(ref, other[tap.onnx_tensor])
        if got is None:
            notes.append(f"{tap.layer}: shapes {list(ref.shape)} and {list(other[tap.onnx_tensor].shape)} differ "
                         "in more than the channel order; left out")
            continue
        diff = np.abs(got.astype(np.float64) - ref)
        rms, spread = float(np.sqrt(np.mean(diff ** 2))), float(ref.std())
        # A constant layer (spread 0) is judged against its magnitude, so a changed constant still shows.
        rel = rms / (spread or float(np.abs(ref).max()) or 1.0)
        divergent = not np.isfinite(rel) or rel > threshold  # inf/NaN (an FP16 overflow) always diverges
        rows.append(LayerError(tap.layer, list(tap.fused), ref_name, tap.onnx_tensor, list(ref.shape),
                               float(diff.max()), rms, spread, rel, bool(divergent)))
    return rows, notes


def first_divergent(rows: Sequence[LayerError]) -> LayerError | None:
    return next((r for r in rows if r.divergent), None)


def _finite(row: LayerError) -> dict[str, Any]:
    """A row as JSON allows it: inf and NaN (an overflow) become null, the divergent flag already says so."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(row).items()}


def hop_result(name: str, rows: Sequence[LayerError], notes: Sequence[str], threshold: float,
               precision: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    first = first_divergent(rows)
    return {"hop": name, "status": "compared", "precision": precision, "threshold": threshold,
            "threshold_rule": "RMS error / the reference layer's std over the samples > threshold, or not finite "
                              "(trtverify.localize.layer_threshold)", "threshold_source": source,
            "first_divergent_layer": first.layer if first else None,
            "first_divergent_fused": first.fused if first else [],
            "layers": [_finite(r) for r in rows], "notes": list(notes)}


def skipped_hop(name: str, precision: str, reason: str) -> dict[str, Any]:
    """A hop that could not run here: recorded with its reason, never filled with numbers."""
    return {"hop": name, "status": "skipped", "precision": precision, "reason": reason,
            "first_divergent_layer": None, "first_divergent_fused": [], "layers": [], "notes": []}


def savedmodel_vs_onnx(saved_model: str | Path, onnx_path: str | Path, samples: np.ndarray,
                       thresholds: LayerThresholds | None = None) -> tuple[dict[str, Any], list[Tap],
                                                                          dict[str, np.ndarray]]:
    """The SavedModel -> ONNX Runtime hop. Returns its result, the taps, and ONNX Runtime's tapped tensors (the
    reference of the next hop)."""
    onnx = require("onnx", purpose="localization (ONNX side)", hint="pip install onnx")
    frozen = freeze_signature(saved_model)
    model = onnx.load(str(onnx_path))
    taps = match(frozen, model)
    if not taps:
        raise UserError(f"no layer of {saved_model} could be found in {onnx_path} by name; was it converted "
                        "from this SavedModel with tf2onnx?")
    tf_values = run_tf(frozen, samples, [t.tf_tensor for t in taps])
    onnx_values = run_onnx(model, samples, [t.onnx_tensor for t in taps])
    thresholds = thresholds or LayerThresholds()
    threshold = thresholds.value("fp32")
    rows, notes = layer_errors(taps, tf_values, onnx_values, threshold)
    return (hop_result("savedmodel->onnxruntime", rows, notes, threshold, "fp32", thresholds.record("fp32")), taps,
            onnx_values)
