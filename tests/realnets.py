"""Real architectures with random weights whose outputs vary, and real defects to inject into their ONNX models.

The models trtverify trains are small CNNs; the verdicts must also be right on the deep, BN-heavy networks users
bring. These fixtures build keras.applications networks (MobileNetV2 alpha=0.35, EfficientNetB0) at 32x32 with 10
classes, a softmax or a logits head, and random weights made realistic:

- convolution and dense kernels keep Keras' own initialisers (Glorot/He scaled to fan-in);
- every BatchNormalization gets a random gamma (uniform 0.5..1.5) and beta (normal, std 0.25), and then moving
  statistics measured on a calibration batch of its own (data-dependent initialisation, as LSUV does): one forward
  pass in training mode with the BN momentum set to 0 and dropout off stores, in every BN, the mean and variance of
  its actual input given every BN before it. Each BN therefore normalises what it really sees, so activations
  neither vanish nor explode through 50 layers, and its statistics are spread (not Keras' 0 and 1) like a trained
  net's;
- the classifier's kernel is rescaled so the logits' standard deviation over the calibration samples is 2 (a
  variance-preserving head; 2 to 3.5 on new samples), so the softmax is neither one-hot nor uniform and top-1
  differs between samples.

The "constant" variant zeroes the classifier kernel (its bias stays random): every sample gets the same output, as
an untrained or collapsed network gives. Samples are smooth random colour images (low-resolution noise, upsampled,
with a different offset per channel so that a colour swap matters) in the range the network's preprocessing expects
(MobileNetV2 [-1, 1]; EfficientNetB0 [0, 255], which rescales and normalises inside the model); labels are random.

A limitation to keep in mind: random BN networks are far more sensitive to their input than trained ones (BN at
initialisation is known to be chaotic: Yang et al., "A mean field theory of batch normalization", 2019). Here an
input shift of 0.01 on MobileNetV2's [-1, 1] range flips half the top-1 answers, while TensorFlow batch 1 vs N and
SavedModel vs ONNX Runtime stay at 1e-6..1e-4. Gross defects are therefore easy to catch on these nets; the mild
defects of ``measure`` (MILD) are not subtle for them, and FP16/TF32 engines can flip more answers than on a
trained net.

``write_model`` writes what the config's ``import:`` entry takes (a SavedModel by ``model.export``, float32 NHWC
samples .npy, int64 labels .npy) and returns the paths; ``to_onnx`` converts as the pipeline does
(convert_onnx.convert); ``inject`` writes a copy of an .onnx file with one named defect (DEFECTS).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

SIZE = 32
CLASSES = 10
LOGIT_STD = 2.0
# At 32x32 EfficientNet's last blocks are 1x1: statistics from 64 samples were blown up by new samples (logit std ~30)
CALIBRATION = 512
NETS = ("mobilenetv2", "efficientnetb0", "mobilenetv3small", "densenet121", "regnetx002")
HEADS = ("softmax", "logits")
VARIANTS = ("spread", "constant")
# What each net's first layer expects (the nets that include their preprocessing take 0-255).
INPUT_RANGE = {"mobilenetv2": (-1.0, 1.0), "efficientnetb0": (0.0, 255.0), "mobilenetv3small": (0.0, 255.0),
               "densenet121": (-1.0, 1.0), "regnetx002": (0.0, 255.0)}


class RealNet(NamedTuple):
    saved_model: Path
    samples: Path
    labels: Path
    bn: Path          # bn.json: every BN's parameters and epsilon (for the epsilon defect on a folded BN)

    @classmethod
    def under(cls, dest: Path) -> "RealNet":
        return cls(dest / "saved_model", dest / "x.npy", dest / "y.npy", dest / "bn.json")

    def import_entry(self) -> dict[str, str]:
        """The model's `import:` entry of config.yaml."""
        return {"saved_model": str(self.saved_model), "samples": str(self.samples), "labels": str(self.labels)}


def images(n: int, net: str, seed: int) -> np.ndarray:
    """Smooth colour images: 4x4 noise upsampled to 32x32 plus fine noise, per-channel offsets, in the net's range."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (n, 4, 4, 3)) + np.array([0.6, 0.0, -0.6])
    smooth = tf.image.resize(coarse.astype(np.float32), (SIZE, SIZE), method="bilinear").numpy()
    x = smooth + rng.normal(0.0, 0.15, smooth.shape)
    x = 1.0 / (1.0 + np.exp(-x))                                          # (0, 1)
    lo, hi = INPUT_RANGE[net]
    return (lo + (hi - lo) * x).astype(np.float32)


def architecture(net: str, head: str) -> Any:
    import keras

    activation = "softmax" if head == "softmax" else None
    shape = (SIZE, SIZE, 3)
    if net == "mobilenetv2":
        return keras.applications.MobileNetV2(input_shape=shape, alpha=0.35, weights=None, classes=CLASSES,
                                              classifier_activation=activation)
    if net == "efficientnetb0":
        return keras.applications.EfficientNetB0(input_shape=shape, weights=None, classes=CLASSES,
                                                 classifier_activation=activation)
    # Nets the tolerance policy was not set on (docs/tolerances.md shows them on the H200):
    if net == "mobilenetv3small":
        return keras.applications.MobileNetV3Small(input_shape=shape, weights=None, classes=CLASSES,
                                                   classifier_activation=activation, include_preprocessing=True)
    if net == "densenet121":
        return keras.applications.DenseNet121(input_shape=shape, weights=None, classes=CLASSES,
                                              classifier_activation=activation)
    if net == "regnetx002":
        return keras.applications.RegNetX002(input_shape=shape, weights=None, classes=CLASSES,
                                             classifier_activation=activation)
    raise ValueError(f"unknown net {net!r}; known: {', '.join(NETS)}")


def calibrate_batch_norms(model: Any, x: np.ndarray, rng: np.random.Generator) -> None:
    """Random gamma/beta, then every BN's moving statistics from its real input on ``x`` (one training-mode pass
    with momentum 0 and dropout off; the layers' settings are restored after)."""
    import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    for bn in bns:
        channels = bn.gamma.shape[0]
        bn.gamma.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
        bn.beta.assign(rng.normal(0.0, 0.25, channels).astype(np.float32))
    saved = [(bn, bn.momentum) for bn in bns] + [(d, d.rate) for d in drops]
    for bn in bns:
        bn.momentum = 0.0
    for d in drops:
        d.rate = 0.0
    try:
        model(x, training=True)
    finally:
        for layer, value in saved:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = value
            else:
                layer.rate = value


def scale_head(model: Any, x: np.ndarray, constant: bool) -> None:
    """Classifier kernel rescaled so the logits' std over ``x`` is LOGIT_STD; zeroed for the constant variant. The
    classifier is the last layer with a kernel: a Dense, or MobileNetV3's 1x1 Conv2D on the pooled features."""
    import keras

    dense = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None][-1]
    features = keras.Model(model.input, dense.input)(x, training=False)
    kernel, bias = (np.asarray(w) for w in dense.get_weights())
    if constant:
        dense.set_weights([np.zeros_like(kernel), np.linspace(-1.0, 1.0, bias.size).astype(np.float32)])
        return
    logits = np.asarray(features).reshape(len(x), -1) @ kernel.reshape(-1, kernel.shape[-1])
    dense.set_weights([kernel * (LOGIT_STD / float(logits.std(axis=0).mean())), np.zeros_like(bias)])


def bn_record(model: Any) -> dict[str, Any]:
    """Every BN's parameters: tf2onnx folds a BN into constants (scale gamma/sqrt(var+eps), shift beta - mean *
    scale), so changing its epsilon in the ONNX model means recomputing those constants from these."""
    import keras

    return {layer.name: {"gamma": np.asarray(layer.gamma).tolist(), "beta": np.asarray(layer.beta).tolist(),
                         "moving_mean": np.asarray(layer.moving_mean).tolist(),
                         "moving_variance": np.asarray(layer.moving_variance).tolist(),
                         "epsilon": float(layer.epsilon)}
            for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}


def build(net: str, head: str = "softmax", variant: str = "spread", seed: int = 0) -> Any:
    """The Keras model with realistic random weights (module docstring)."""
    import keras

    if head not in HEADS or variant not in VARIANTS:
        raise ValueError(f"head must be one of {HEADS} and variant one of {VARIANTS}; got {head!r}, {variant!r}")
    keras.utils.set_random_seed(seed)
    model = architecture(net, head)
    calibration = images(CALIBRATION, net, seed + 1000)
    calibrate_batch_norms(model, calibration, np.random.default_rng(seed))
    scale_head(model, calibration, constant=variant == "constant")
    return model


def write_model(dest: Path, net: str = "mobilenetv2", head: str = "softmax", variant: str = "spread",
                num_samples: int = 128, seed: int = 0) -> RealNet:
    """Build the model and write its SavedModel, samples, labels and BN record under ``dest``; return the paths."""
    dest.mkdir(parents=True, exist_ok=True)
    model = build(net, head, variant, seed)
    paths = RealNet.under(dest)
    model.export(str(paths.saved_model), verbose=False)
    np.save(paths.samples, images(num_samples, net, seed + 1), allow_pickle=False)
    labels = np.random.default_rng(seed + 2).integers(0, CLASSES, num_samples).astype(np.int64)
    np.save(paths.labels, labels, allow_pickle=False)
    paths.bn.write_text(json.dumps(bn_record(model)))
    return paths


def to_onnx(saved_model: Path, output: Path, opset: int = 17) -> Path:
    """Converted as the pipeline converts: scripts/convert_onnx.py's own convert() (tf2onnx's command line, under
    its collector settings); a failure raises its UserError with tf2onnx's last line."""
    from convert_onnx import convert

    convert(str(saved_model), str(output), opset)
    return output


# --- defects ----------------------------------------------------------------------------------------------------------
# Each takes the loaded ONNX model (changed in place) and the net's bn.json; each is a mistake a conversion or a
# deployment really makes, and each must make the predictions wrong enough for a sane verdict to call broken.

def _initializers(model: Any) -> dict[str, Any]:
    return {init.name: init for init in model.graph.initializer}


def _replace(init: Any, array: np.ndarray) -> None:
    from onnx import numpy_helper

    init.CopyFrom(numpy_helper.from_array(array.astype(numpy_helper.to_array(init).dtype), init.name))


def _before_input(model: Any, make_nodes: Callable[[str, str], list[Any]], tag: str) -> None:
    """Put nodes between the graph input and every node that reads it (what a wrong preprocessing does)."""
    graph = model.graph
    name = graph.input[0].name
    new = f"{name}__{tag}"
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == name:
                node.input[i] = new
    for node in reversed(make_nodes(name, new)):
        graph.node.insert(0, node)


def scaled_conv_weight(model: Any, bn: dict[str, Any], factor: float = 1.5) -> str:
    """One convolution's weights times ``factor``, two thirds of the way into the network (a corrupted or
    mis-scaled weight): its output and everything after it change."""
    from onnx import numpy_helper

    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    conv = convs[2 * len(convs) // 3]
    weight = _initializers(model)[conv.input[1]]
    _replace(weight, numpy_helper.to_array(weight) * factor)
    return f"weights of Conv {conv.name} (#{2 * len(convs) // 3} of {len(convs)}) x {factor:g}"


def swapped_channels(model: Any, bn: dict[str, Any]) -> str:
    """The input's colour channels reversed (RGB fed as BGR), NHWC axis 3."""
    from onnx import helper, numpy_helper

    def nodes(src: str, dst: str) -> list[Any]:
        model.graph.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), "defect_bgr"))
        return [helper.make_node("Gather", [src, "defect_bgr"], [dst], axis=3, name="defect_swap_channels")]

    _before_input(model, nodes, "bgr")
    return "input channels reversed (RGB as BGR)"


def wrong_normalisation(model: Any, bn: dict[str, Any], scale: float = 0.5, shift: float = 0.5) -> str:
    """The input transformed by x * scale + shift before the network: by default samples normalised to [0, 1]
    where the model expects [-1, 1] (a preprocessing mismatch between training and deployment)."""
    from onnx import helper, numpy_helper

    def nodes(src: str, dst: str) -> list[Any]:
        model.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), "defect_scale"),
                                        numpy_helper.from_array(np.array(shift, np.float32), "defect_shift")])
        return [helper.make_node("Mul", [src, "defect_scale"], ["defect_scaled"], name="defect_norm_mul"),
                helper.make_node("Add", ["defect_scaled", "defect_shift"], [dst], name="defect_norm_add")]

    _before_input(model, nodes, "renormalised")
    return f"input x {scale:g} + {shift:g}"


def bn_epsilon(model: Any, bn: dict[str, Any], epsilon: float = 1e-5) -> str:
    """Every BatchNormalization's epsilon changed (by default Keras' 1e-3 read as ONNX's and PyTorch's 1e-5).

    tf2onnx folds each BN into constants: a scale m = gamma/sqrt(var+eps), either folded into the preceding
    Conv's weights or a Mul, and a shift c = beta - mean*m, the Conv's bias or an Add. Both are found by value and
    recomputed with the new epsilon; every BN must be found, or this raises (the folded form was not recognised).
    """
    from onnx import numpy_helper

    inits = _initializers(model)
    arrays = {name: numpy_helper.to_array(init) for name, init in inits.items()}
    consumers = {value: node for node in model.graph.node for value in node.input}
    done = 0
    for layer, p in bn.items():
        gamma, beta, mean, var = (np.asarray(p[k], np.float64) for k in ("gamma", "beta", "moving_mean",
                                                                           "moving_variance"))
        m, m_new = gamma / np.sqrt(var + p["epsilon"]), gamma / np.sqrt(var + epsilon)
        shift = _match(arrays, beta - mean * m)
        if shift is None:
            raise ValueError(f"BN {layer}: its folded shift is not among the ONNX model's constants")
        _replace(inits[shift], (beta + (arrays[shift].reshape(-1) - beta) * (m_new / m)).reshape(arrays[shift].shape))
        scale = _match(arrays, m)
        node = consumers.get(shift)
        if scale is not None:
            _replace(inits[scale], m_new.reshape(arrays[scale].shape))
        elif node is not None and node.op_type == "Conv" and node.input[2] == shift:
            w = arrays[node.input[1]]
            _replace(inits[node.input[1]], w * (m_new / m).reshape(-1, *[1] * (w.ndim - 1)))
        else:
            raise ValueError(f"BN {layer}: its folded scale is neither a constant nor in a Conv with its shift")
        done += 1
    return f"epsilon of {done} folded BatchNormalization(s) recomputed for {epsilon:g}"


def _match(arrays: dict[str, np.ndarray], values: np.ndarray) -> str | None:
    """The name of the constant holding ``values`` (any shape with that many elements), if exactly one does."""
    found = [name for name, a in arrays.items() if a.size == values.size and a.dtype.kind == "f"
             and np.allclose(a.reshape(-1), values, rtol=1e-4, atol=1e-6)]
    return found[0] if len(found) == 1 else None


DEFECTS: dict[str, Callable[..., str]] = {"scaled_conv_weight": scaled_conv_weight,
                                          "swapped_channels": swapped_channels,
                                          "wrong_normalisation": wrong_normalisation, "bn_epsilon": bn_epsilon}


def inject(onnx_in: Path, defect: str, onnx_out: Path, bn: Path, **options: float) -> str:
    """Write ``onnx_out``: ``onnx_in`` with the named defect (DEFECTS); returns what was changed, in words."""
    import onnx

    if defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
    model = onnx.load(str(onnx_in))
    what = DEFECTS[defect](model, json.loads(Path(bn).read_text()), **options)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_out))
    return what


# --- measurements -----------------------------------------------------------------------------------------------------
# Subtle versions of the defects, for the tolerance policy (not asserted on): where a verdict's bound has to sit
# between the noise floor and a real defect.
MILD: dict[str, dict[str, float]] = {"scaled_conv_weight": {"factor": 1.01}, "bn_epsilon": {"epsilon": 1.1e-3},
                                     "wrong_normalisation": {"scale": 1.0, "shift": 0.01}}


def predict_savedmodel(saved_model: Path, x: np.ndarray, batch: int) -> np.ndarray:
    import tensorflow as tf

    fn = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    return np.concatenate([next(iter(fn(tf.constant(x[i:i + batch])).values())).numpy()
                           for i in range(0, len(x), batch)])


def predict_onnx(onnx_path: Path, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def differences(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Largest absolute difference and the share of samples whose top-1 class agrees."""
    return {"max_abs_diff": float(np.abs(ref.astype(np.float64) - out).max()),
            "top1_agreement": float((ref.argmax(1) == out.argmax(1)).mean())}


def measure(net: RealNet, onnx_path: Path, work: Path, batch: int = 32) -> dict[str, Any]:
    """The self-disagreements and the SavedModel-vs-ONNX difference of a correct conversion, then every defect's."""
    x = np.load(net.samples, allow_pickle=False)
    ref = predict_savedmodel(net.saved_model, x, batch)
    ort_on = predict_onnx(onnx_path, x)
    row: dict[str, Any] = {
        "output_std_over_samples": float(ref.std(axis=0).mean()),
        "distinct_top1": int(len(np.unique(ref.argmax(1)))),
        "tf_batch1_vs_batchN": differences(ref, predict_savedmodel(net.saved_model, x, 1)),
        "ort_opt_on_vs_off": differences(ort_on, predict_onnx(onnx_path, x, optimize=False)),
        "savedmodel_vs_ort": differences(ref, ort_on), "defects": {}}
    for label, defect, options in [(d, d, {}) for d in DEFECTS] + [(f"mild {d}", d, o) for d, o in MILD.items()]:
        broken = work / f"{onnx_path.stem}-{label.replace(' ', '-')}.onnx"
        what = inject(onnx_path, defect, broken, net.bn, **options)
        row["defects"][label] = {"what": what, **differences(ref, predict_onnx(broken, x))}
    return row


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per net and head, max |diff| (top-1 agreement) per column."""
    def cell(d: dict[str, float]) -> str:
        return f"{d['max_abs_diff']:.2e} ({d['top1_agreement']:.3f})"

    defects = list(next(iter(rows.values()))["defects"])
    head = ["model", "out std", "top-1 classes", "TF b1 vs bN", "ORT opt on/off", "TF vs ORT", *defects]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        cells = [name, f"{r['output_std_over_samples']:.3g}", str(r["distinct_top1"]), cell(r["tf_batch1_vs_batchN"]),
                 cell(r["ort_opt_on_vs_off"]), cell(r["savedmodel_vs_ort"]),
                 *(cell(r["defects"][d]) for d in defects)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """python tests/realnets.py WORKDIR [NET:HEAD ...]: build, convert and measure (all nets and heads by default),
    print the Markdown table and write WORKDIR/measurements.json. Nets already in WORKDIR are reused."""
    work = Path(argv[0])
    cases = [tuple(c.split(":")) for c in argv[1:]] or [(n, h) for n in NETS for h in HEADS]
    rows = {}
    for net_name, head in cases:
        name = f"{net_name}-{head}"
        onnx_path = work / name / "model.onnx"
        if onnx_path.exists():      # built by an earlier run into this WORKDIR: measured again, not rebuilt
            net = RealNet.under(work / name)
        else:
            net = write_model(work / name, net_name, head)
            to_onnx(net.saved_model, onnx_path)
        rows[name] = measure(net, onnx_path, work / name)
        print(name, json.dumps(rows[name]), flush=True)
    (work / "measurements.json").write_text(json.dumps(rows, indent=2))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
