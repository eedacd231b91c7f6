"""The real-architecture fixtures themselves (tests/realnets.py): their outputs vary, TensorFlow agrees with itself
and with a correct ONNX conversion, the constant variant is constant, and every injected defect really breaks the
ONNX Runtime outputs. The numbers are printed (pytest -s) for the tolerance work that uses these fixtures.

Three cases keep the session's cost down (building and converting a net costs 20-60 s on 2 cores); the measurement
table over every net and head is `python tests/realnets.py WORKDIR`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import realnets
from conftest import compare_config, run_script

pytestmark = pytest.mark.slow

CASES = [("mobilenetv2", "softmax"), ("mobilenetv2", "logits"), ("efficientnetb0", "logits")]
IDS = [f"{n}-{h}" for n, h in CASES]
_MEASURED: dict[tuple[str, str], dict[str, Any]] = {}


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest, realnet: Callable[..., Any]) -> dict[str, Any]:
    """A net, its ONNX model, and its SavedModel (batch 32) and ONNX Runtime outputs, computed once per case."""
    key = request.param
    if key not in _MEASURED:
        net, onnx = realnet(*key)
        x = np.load(net.samples, allow_pickle=False)
        _MEASURED[key] = {"net": net, "onnx": onnx, "x": x, "head": key[1],
                          "ref": realnets.predict_savedmodel(net.saved_model, x, 32),
                          "ort": realnets.predict_onnx(onnx, x)}
    return _MEASURED[key]


def test_outputs_vary_across_samples(case: dict[str, Any]) -> None:
    ref = case["ref"]
    std = float(ref.std(axis=0).mean())
    counts = np.bincount(ref.argmax(1), minlength=realnets.CLASSES)
    print(f"\n{case['net'].saved_model.parent.name}: output std over samples {std:.3g}, top-1 counts {counts.tolist()}")
    assert ref.shape == (len(case["x"]), realnets.CLASSES)
    assert std > (0.05 if case["head"] == "softmax" else 0.5)        # probabilities vs logits (std 2 by design)
    assert (counts > 0).sum() >= 4 and counts.max() < 0.6 * len(ref)  # not one class for (almost) every sample
    sums = ref.sum(axis=1)
    if case["head"] == "softmax":
        assert np.allclose(sums, 1.0, atol=1e-5) and (ref >= 0).all()
    else:
        assert (ref < 0).any() and not np.allclose(sums, 1.0, atol=1e-2)


def test_constant_variant_gives_one_output_for_every_sample(realnet: Callable[..., Any]) -> None:
    net, _ = realnet("mobilenetv2", "softmax", "constant", onnx=False)
    ref = realnets.predict_savedmodel(net.saved_model, np.load(net.samples, allow_pickle=False), 32)
    spread = float(np.abs(ref - ref[0]).max())
    print(f"\nconstant variant: largest difference from sample 0's output {spread:.2e}")
    assert spread < 1e-5 and len(np.unique(ref.argmax(1))) == 1
    assert ref[0].max() - ref[0].min() > 0.05                  # constant, but not uniform: the bias is random


def test_tensorflow_batch_1_agrees_with_batch_n(case: dict[str, Any]) -> None:
    one = realnets.predict_savedmodel(case["net"].saved_model, case["x"], 1)
    d = realnets.differences(case["ref"], one)
    print(f"\n{case['net'].saved_model.parent.name}: TF batch 1 vs 32 max |diff| {d['max_abs_diff']:.2e}, "
          f"top-1 agreement {d['top1_agreement']}")
    assert d["top1_agreement"] == 1.0 and d["max_abs_diff"] < 1e-3 * max(1.0, float(np.abs(case["ref"]).max()))


def test_a_correct_conversion_is_close(case: dict[str, Any]) -> None:
    d = realnets.differences(case["ref"], case["ort"])
    off = realnets.differences(case["ort"], realnets.predict_onnx(case["onnx"], case["x"], optimize=False))
    print(f"\n{case['net'].saved_model.parent.name}: SavedModel vs ORT max |diff| {d['max_abs_diff']:.2e}; "
          f"ORT optimizations on vs off {off['max_abs_diff']:.2e}")
    scale = max(1.0, float(np.abs(case["ref"]).max()))
    assert d["top1_agreement"] == 1.0 and d["max_abs_diff"] < 1e-3 * scale
    assert off["max_abs_diff"] < 1e-3 * scale


@pytest.mark.parametrize("defect", list(realnets.DEFECTS))
def test_each_defect_breaks_the_onnx_outputs(case: dict[str, Any], defect: str, tmp_path: Path) -> None:
    broken = tmp_path / f"{defect}.onnx"
    what = realnets.inject(case["onnx"], defect, broken, case["net"].bn)
    out = realnets.predict_onnx(broken, case["x"])
    d = realnets.differences(case["ort"], out)
    correct = realnets.differences(case["ref"], case["ort"])["max_abs_diff"]
    print(f"\n{case['net'].saved_model.parent.name} {defect} ({what}): max |diff| {d['max_abs_diff']:.3g} "
          f"({d['max_abs_diff'] / max(correct, 1e-12):.3g} x the correct conversion's), "
          f"top-1 agreement {d['top1_agreement']:.3f}")
    assert np.isfinite(out).all()
    assert d["top1_agreement"] < 0.9 or d["max_abs_diff"] > 100 * correct


@pytest.mark.parametrize("defect, neutral", [("bn_epsilon", {"epsilon": 1e-3}),
                                             ("wrong_normalisation", {"scale": 1.0, "shift": 0.0}),
                                             ("scaled_conv_weight", {"factor": 1.0})])
def test_a_neutral_defect_changes_nothing(case: dict[str, Any], defect: str, neutral: dict[str, float],
                                          tmp_path: Path) -> None:
    """The injectors change what they say: with the original value (Keras' epsilon 1e-3, an identity
    normalisation, a factor 1) the outputs stay those of the correct conversion, so the folded-BN rewrite found
    the right constants."""
    broken = tmp_path / f"{defect}.onnx"
    realnets.inject(case["onnx"], defect, broken, case["net"].bn, **neutral)
    d = realnets.differences(case["ort"], realnets.predict_onnx(broken, case["x"]))
    assert d["top1_agreement"] == 1.0 and d["max_abs_diff"] < 1e-4 * max(1.0, float(np.abs(case["ort"]).max()))


def test_unknown_defect_is_refused(case: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown defect 'typo'; known: scaled_conv_weight"):
        realnets.inject(case["onnx"], "typo", tmp_path / "x.onnx", case["net"].bn)
    assert not (tmp_path / "x.onnx").exists()


def test_written_model_is_what_import_takes(realnet: Callable[..., Any], tmp_path: Path) -> None:
    """The files of write_model go through scripts/import_model.py (the config's `import:` entry) unchanged."""
    net, _ = realnet("mobilenetv2", "softmax")
    x, y = (np.load(p, allow_pickle=False) for p in (net.samples, net.labels))
    assert x.dtype == np.float32 and x.shape[1:] == (realnets.SIZE, realnets.SIZE, 3)
    assert y.dtype == np.int64 and y.shape == (len(x),) and 0 <= y.min() and y.max() < realnets.CLASSES
    out = tmp_path / "imported"
    entry = net.import_entry()
    run_script("import_model.py", "--saved-model-in", entry["saved_model"], "--samples-in", entry["samples"],
               "--labels-in", entry["labels"], "--saved-model", out / "saved_model", "--samples", out / "x.npy",
               "--labels", out / "y.npy", "--metrics", out / "metrics.json")
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["test_samples"], metrics["classes"]) == (len(x), realnets.CLASSES)
    assert np.array_equal(np.load(out / "x.npy"), x)
    shutil.rmtree(out)


# --- verdicts: the one policy (tolerance.py) on nets it was not set on ---------------------------------------------
def judged(case: dict[str, Any], out: np.ndarray, floor: dict[str, Any]) -> Any:
    """The verdict of SavedModel vs ``out`` as compare.py gives it, with the floor convert_onnx measured."""
    from trtverify.metrics import compare

    labels = np.load(case["net"].labels, allow_pickle=False)
    return compare({"savedmodel": case["ref"], "onnxruntime": out}, labels,
                   noise_floor=floor, **compare_config()).pairs["savedmodel vs onnxruntime"]


@pytest.fixture()
def floor(case: dict[str, Any]) -> dict[str, Any]:
    """The noise floor as convert_onnx.py measures it (its own function, default settings), once per case."""
    if "floor" not in case:
        import convert_onnx
        from trtverify.io import NpyReader

        _, case["floor"], _, _ = convert_onnx.measure(str(case["net"].saved_model), str(case["onnx"]),
                                                      NpyReader(case["net"].samples), 256, 64, "auto")
    return case["floor"]


def test_a_correct_conversion_passes_at_the_measured_floor(case: dict[str, Any], floor: dict[str, Any]) -> None:
    pair = judged(case, case["ort"], floor)
    print(f"\n{case['net'].saved_model.parent.name}: floor {floor['floor']:.3g}, {pair.verdict} ({pair.reason})")
    assert pair.verdict in ("identical", "consistent", "drift"), pair.reason


@pytest.mark.parametrize("defect", list(realnets.DEFECTS))
def test_each_defect_is_a_mismatch(case: dict[str, Any], floor: dict[str, Any], defect: str, tmp_path: Path) -> None:
    broken = tmp_path / f"{defect}.onnx"
    realnets.inject(case["onnx"], defect, broken, case["net"].bn)
    pair = judged(case, realnets.predict_onnx(broken, case["x"]), floor)
    assert pair.verdict == "mismatch", pair.reason


def test_an_untrained_constant_net_is_inconclusive(realnet: Callable[..., Any]) -> None:
    from trtverify.metrics import compare

    net, onnx = realnet("mobilenetv2", "softmax", "constant")
    x = np.load(net.samples, allow_pickle=False)
    pair = compare({"savedmodel": realnets.predict_savedmodel(net.saved_model, x, 32),
                    "onnxruntime": realnets.predict_onnx(onnx, x)},
                   np.load(net.labels, allow_pickle=False), **compare_config()).pairs["savedmodel vs onnxruntime"]
    assert pair.verdict == "inconclusive" and "constant" in pair.reason
