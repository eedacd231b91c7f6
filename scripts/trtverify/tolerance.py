"""How close two backends must be: one tolerance policy for every gate, derived from the reference's own noise floor.

The rule and the reason for each number are in docs/tolerances.md; keep the two in step (tests/test_tolerance.py).

A backend's precision is the suffix of its name (``tensorrt_fp16`` -> fp16); names without one (``savedmodel``,
``onnxruntime``) are fp32. A pair is judged at the looser of its two precisions, in the fixed order
fp32 < tf32 < fp16, whatever the configured numbers are.

Bounds are set in *normalised* units (the output divided by its scale: 1 for probabilities, the reference's spread
for logits and other outputs) and applied in output units. The fp32 atol is ``max(FLOOR_MULTIPLE * floor,
FP32_MINIMUM)``, the floor being the largest difference of the reference with itself (trtverify.noise; noise_floor in
onnx_check.json); tf32 and fp16 keep their own bounds, never tighter than fp32's. Config overrides win.

Verdicts, first match wins:
  mismatch      a parity pair (same engine, Python vs C++) that is not identical
  inconclusive  the reference cannot tell a good conversion from a bad one (constant outputs, one class for every
                sample, a noise floor that makes the fp32 bound loose): the reason and the remedy are named
  identical     every element bit-equal (NaN matches NaN at the same position)
  consistent    every element within ``atol + rtol * |a|`` (``a``: the pair's reference); for logits also after a
                softmax. Top-1 flips are then near-ties the bound admits: named in the reason, not judged
  drift         some elements outside, but no more than ``max_outside_share`` of them, top-1 agreement (ties
                excused) at least ``min_top1_agreement`` and the accuracy change at most ``max_accuracy_change``
  mismatch      anything else
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any, Mapping

from .backends.registry import parity_pairs as parity_pairs  # the registry says which backends share an engine
from .errors import UserError

PRECISIONS = ("fp32", "tf32", "fp16")          # tight to loose
FIELDS = ("atol", "rtol", "max_outside_share", "min_top1_agreement", "max_accuracy_change")
SHARE_FIELDS = ("max_outside_share", "min_top1_agreement", "max_accuracy_change")
VERDICTS = ("identical", "consistent", "drift", "mismatch", "inconclusive")
PASSING = ("identical", "consistent", "drift")
KINDS = ("probabilities", "logits", "other")
CLASSIFICATION = ("probabilities", "logits")

# The reasons are in docs/tolerances.md ("Why these numbers").
FLOOR_MULTIPLE = 10.0        # fp32 atol = 10 x the measured floor: TF-vs-ORT sits at 0.5-1.4x it, strict FP32 TensorRT
                             # at up to 5x (H200), TF32 at 790x or more
FP32_MINIMUM = 1e-5          # normalised: the fp32 atol when the floor is tiny (small nets: floor ~1e-7)
INCONCLUSIVE_FLOOR = 1e-3    # normalised floor above which 10 x floor reaches the tf32 bound (1e-2)
PROBABILITY_EPSILON = 1e-3   # a row of probabilities sums to 1 within this, its values in [-eps, 1 + eps]
CONSTANT_SPREAD = 1e-3       # outputs vary across samples by less than 0.1 % of their size: nearly constant

DEFAULTS: dict[str, dict[str, float]] = {
    # atol of fp32 is FP32_MINIMUM, raised by the measured floor; tf32 and fp16 as measured on GPUs.
    "fp32": {"atol": FP32_MINIMUM, "rtol": 1e-4, "max_outside_share": 1e-3, "min_top1_agreement": 0.999,
             "max_accuracy_change": 0.001},
    "tf32": {"atol": 1e-2, "rtol": 1e-2, "max_outside_share": 0.01, "min_top1_agreement": 0.99,
             "max_accuracy_change": 0.005},
    "fp16": {"atol": 2e-2, "rtol": 2e-2, "max_outside_share": 0.02, "min_top1_agreement": 0.98,
             "max_accuracy_change": 0.01},
}

_SUFFIX = re.compile(r"_(fp32|tf32|fp16)$")


class ToleranceConfigError(UserError):
    """A tolerance override names an unknown precision or field, or has an impossible value."""


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """The bounds one pair is judged by (atol in output units), and where each number came from."""

    precision: str
    atol: float
    rtol: float
    max_outside_share: float
    min_top1_agreement: float
    max_accuracy_change: float
    source: str = "default"                     # default | measured floor | config | model: what set atol last
    overridden: tuple[str, ...] = ()            # the fields a config layer set
    scale: float = 1.0                          # output units per normalised unit
    floor: float = 0.0                          # the measured noise floor, output units
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overridden"] = list(self.overridden)
        return d


def precision_of(name: str) -> str:
    """A backend's precision: the suffix of its name, fp32 when it has none."""
    m = _SUFFIX.search(name)
    return m.group(1) if m else "fp32"


def pair_precision(a: str, b: str) -> str:
    """The looser of two backends' precisions."""
    return max(precision_of(a), precision_of(b), key=PRECISIONS.index)


def _check_layer(layer: Any, label: str) -> list[str]:
    """Every problem of one override layer ({precision: {field: value}}); a 'reason' text is allowed."""
    if layer is None:
        return []
    if not isinstance(layer, Mapping):
        return [f"{label} must be a mapping of precision to settings, got {type(layer).__name__}"]
    problems = []
    for precision, fields in layer.items():
        if precision not in PRECISIONS:
            problems.append(f"{label}: unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
            continue
        if not isinstance(fields, Mapping):
            problems.append(f"{label}.{precision} must be a mapping of settings, got {type(fields).__name__}")
            continue
        for field, value in fields.items():
            where = f"{label}.{precision}.{field}"
            if field == "reason":
                continue
            if field not in FIELDS:
                problems.append(f"{where}: unknown setting (known: {', '.join(FIELDS)})")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{where}: must be a finite number, got {value!r}")
            elif value < 0 or (field in SHARE_FIELDS and value > 1):
                problems.append(f"{where}: must be {'in [0, 1]' if field in SHARE_FIELDS else '>= 0'}, got {value}")
    return problems


def parse_json_option(text: str | None, flag: str) -> dict[str, Any]:
    """Overrides given on a command line as JSON (compare.py and convert_onnx.py read the same option)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{flag} is not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise UserError(f"{flag} must be a JSON object like '{{\"fp16\": {{\"atol\": 0.05}}}}', got {text!r}")
    return value


def derived_atol(precision: str, floor_normalised: float) -> tuple[float, str, str]:
    """(atol in normalised units, source, reason) before any override: the rule of docs/tolerances.md."""
    fp32 = FLOOR_MULTIPLE * floor_normalised
    if precision == "fp32":
        if fp32 > FP32_MINIMUM:
            return fp32, "measured floor", (f"{FLOOR_MULTIPLE:g} x the measured noise floor {floor_normalised:.3g} "
                                            f"(above the minimum {FP32_MINIMUM:g})")
        return FP32_MINIMUM, "default", (f"the fp32 minimum {FP32_MINIMUM:g} ({FLOOR_MULTIPLE:g} x the noise floor "
                                         f"{floor_normalised:.3g} is below it)")
    own = DEFAULTS[precision]["atol"]
    if fp32 > own:
        return fp32, "measured floor", f"the fp32 bound {fp32:.3g} (10 x floor), above the {precision} default {own:g}"
    return own, "default", f"the {precision} default {own:g} (what {precision} rounding produces on deep CNNs)"


class TolerancePolicy:
    """Derived bounds per precision, then the config's overrides, then the model's own (most specific wins)."""

    def __init__(self, config: Mapping[str, Any] | None = None, model: Mapping[str, Any] | None = None,
                 attested: Mapping[str, str] | None = None) -> None:
        """``attested``: backend -> the precision its engine really allowed (engine_precision), where that is
        looser than its name says: an "fp32" engine built with TF32 allowed is judged, and named, as tf32."""
        problems = _check_layer(config, "tolerances") + _check_layer(model, "model tolerances")
        if problems:
            raise ToleranceConfigError("invalid tolerance overrides: " + "; ".join(problems))
        self.layers = (("config", dict(config or {})), ("model", dict(model or {})))
        self.attested = dict(attested or {})

    def for_precision(self, precision: str, *, scale: float = 1.0, floor: float = 0.0,
                      overrides: tuple[str, ...] = FIELDS) -> Tolerance:
        """Bounds for ``precision`` on outputs of ``scale`` with a noise floor ``floor`` (both in output units).

        ``overrides``: the fields config layers may set (the softmax view of logits takes shares only: an atol
        written for logits is in logit units)."""
        if precision not in PRECISIONS:
            raise ToleranceConfigError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
        scale = scale if scale > 0 and math.isfinite(scale) else 1.0
        atol, source, reason = derived_atol(precision, floor / scale)
        values = {**DEFAULTS[precision], "atol": atol * scale}
        overridden: list[str] = []
        for name, layer in self.layers:
            fields = {k: float(v) for k, v in (layer.get(precision) or {}).items() if k in overrides}
            if fields:
                values.update(fields)
                overridden += [f for f in fields if f not in overridden]
                source = name
                why = (layer.get(precision) or {}).get("reason")
                reason = f"{name} override of {', '.join(fields)}" + (f" ({why})" if why else "")
        return Tolerance(precision=precision, source=source, overridden=tuple(f for f in FIELDS if f in overridden),
                         scale=scale, floor=floor, reason=reason, **values)

    def precision(self, name: str) -> str:
        return self.attested.get(name, precision_of(name))

    def for_pair(self, a: str, b: str, **kwargs: Any) -> Tolerance:
        tolerance = self.for_precision(max(self.precision(a), self.precision(b), key=PRECISIONS.index), **kwargs)
        loose = [n for n in (a, b) if self.precision(n) != precision_of(n)]
        if not loose:
            return tolerance
        note = "; ".join(f"{n}'s engine allowed {self.precision(n)}, so it is not strict {precision_of(n)}"
                         for n in loose)
        return dataclasses.replace(tolerance, reason=f"{tolerance.reason}; {note}")


def engine_precision(name: str, info: Mapping[str, Any]) -> str:
    """The precision an engine was allowed to compute in, from its build record's attestation (engine.attest):
    the name's precision unless the builder reported FP16 or TF32 allowed beyond it. A record without attestation
    (an older build) keeps the name's."""
    attestation = info.get("attestation") or {}
    named = precision_of(name)
    allowed = ["fp16"] if attestation.get("fp16_allowed") else []
    allowed += ["tf32"] if attestation.get("tf32_allowed") else []
    return max([named, *allowed], key=PRECISIONS.index)


def inconclusive_reason(*, kind: str, spread: float, predicted_classes: int | None, samples: int,
                        floor_normalised: float) -> str | None:
    """Why a comparison against this reference proves nothing, with what to do; None when it can prove something."""
    if spread < CONSTANT_SPREAD:
        return (f"the reference's outputs are (nearly) constant across the {samples} samples (spread {spread:.3g} "
                f"of their size, below {CONSTANT_SPREAD:g}), so any backend that returns them passes: use a trained "
                "model and varied samples")
    if kind in CLASSIFICATION and predicted_classes == 1 and samples > 1:
        return (f"the reference predicts one class for all {samples} samples, so top-1 agreement and accuracy "
                "cannot fail: use a trained model and samples of several classes")
    if floor_normalised > INCONCLUSIVE_FLOOR:
        return (f"the reference disagrees with itself by {floor_normalised:.3g} of its output scale (noise floor, "
                f"above {INCONCLUSIVE_FLOOR:g}), so the fp32 bound ({FLOOR_MULTIPLE:g} x floor) would pass broken "
                "conversions: check the model for nondeterministic or unstable layers, or use a trained model")
    return None


def _remedy(precision: str, field: str, value: float) -> str:
    return (f"to accept it set compare.tolerances.{precision}.{field}: {value:.2g} in config.yaml (or "
            f"models.<name>.tolerances), only if {precision} rounding explains it")


def judge(*, identical: bool, outside_count: int, outside_share: float, top1_agreement: float | None,
          accuracy_change: float | None, tolerance: Tolerance, parity: bool = False, inconclusive: str | None = None,
          max_abs_diff: float | None = None, softmax: tuple[int, float, Tolerance] | None = None,
          ties: int = 0) -> tuple[str, str]:
    """(verdict, reason): the first verdict the numbers allow (module docstring); ``top1_agreement`` counts ties
    as agreeing, None for outputs that are not a classification; ``softmax``: (outside count, share, tolerance)
    of the softmax view of logits."""
    if parity and not identical:
        return "mismatch", ("same engine from Python and C++ must be bit-identical, and is not: the harnesses "
                            "differ (input layout, parsing, batch split or a stale engine); no tolerance applies")
    if inconclusive:
        return "inconclusive", inconclusive
    if identical:
        return "identical", "every element bit-equal"
    p = tolerance.precision
    views = [("", outside_count, outside_share, tolerance)] + ([("after softmax ", *softmax)] if softmax else [])
    if all(count == 0 for _, count, _, _ in views):
        reason = (f"every element within atol {tolerance.atol:.3g} + rtol {tolerance.rtol:g} * |ref| "
                  f"({tolerance.source})" + (" and after softmax" if softmax else ""))
        if top1_agreement is not None and not top1_agreement >= tolerance.min_top1_agreement:
            # with every element inside, a flip needs the reference's two classes within the sum of their
            # tolerances: the bound itself admits it, so it is reported, not judged (docs/tolerances.md)
            # the figure judged counts ties as agreeing; naming them keeps it apart from the plain top1_agreement
            # printed beside it (an fp16 ResNet50 pair on the H100, 2026-12-06: 0.9062 with one tie, 0.875 plain)
            excused = f" with {ties} tie(s) excused" if ties else ""
            reason += (f"; top-1 agreement {top1_agreement:.4g}{excused} is below {tolerance.min_top1_agreement:g}, "
                       "but each flip is between two classes whose reference values lie within their tolerances of "
                       f"each other, which this bound allows: a smaller compare.tolerances.{p}.atol would judge them")
        return "consistent", reason
    broken = []
    for label, count, share, tol in views:
        if not share <= tol.max_outside_share:
            fix = _remedy(p, "atol", max_abs_diff * 1.05) if max_abs_diff is not None and not label else \
                _remedy(p, "max_outside_share", share)
            broken.append(f"{share:.3g} of elements {label}outside atol {tol.atol:.3g} + rtol {tol.rtol:g} * |ref| "
                          f"(at most {tol.max_outside_share:g} may be; {fix})")
    if top1_agreement is not None and not top1_agreement >= tolerance.min_top1_agreement:
        broken.append(f"top-1 agreement {top1_agreement:.4g} with {ties} tie(s) excused (at least "
                      f"{tolerance.min_top1_agreement:g}; {_remedy(p, 'min_top1_agreement', top1_agreement)})")
    if accuracy_change is not None and not abs(accuracy_change) <= tolerance.max_accuracy_change:
        broken.append(f"accuracy change {accuracy_change:+.3g} (at most {tolerance.max_accuracy_change:g}; "
                      f"{_remedy(p, 'max_accuracy_change', abs(accuracy_change))})")
    if broken:
        hint = "; if a TF32 or FP16 engine did it, build strict fp32 to attribute it" if p != "fp32" else ""
        return "mismatch", "; ".join(broken) + hint
    outside = sum(count for _, count, _, _ in views)
    return "drift", (f"{outside} elements ({outside_share:.3g}) outside tolerance, within the {p} bounds on share, "
                     "top-1 agreement and accuracy")
