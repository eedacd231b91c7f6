"""How close two backends must be: tolerances per precision, config overrides, and the verdict of a pair.

The numbers and the reason for each are in docs/tolerances.md; keep the two in step.

A backend's precision is the suffix of its name (``tensorrt_fp16`` -> fp16); names without one (``savedmodel``,
``onnxruntime``) are fp32. A pair is judged at the looser of its two precisions, in the fixed order
fp32 < tf32 < fp16, whatever the configured numbers are.

Verdicts, first match wins:
  identical   every element bit-equal (NaN matches NaN at the same position)
  consistent  every element within ``atol + rtol * |a|`` (``a``: the pair's first backend, its reference)
  drift       some elements outside, but no more than ``max_outside_share`` of them, top-1 agreement at least
              ``min_top1_agreement`` and the accuracy change at most ``max_accuracy_change`` (absolute)
  mismatch    anything else; and any parity pair (same engine, Python vs C++) that is not identical
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Iterable, Mapping

from .errors import UserError

PRECISIONS = ("fp32", "tf32", "fp16")          # tight to loose
FIELDS = ("atol", "rtol", "max_outside_share", "min_top1_agreement", "max_accuracy_change")
SHARE_FIELDS = ("max_outside_share", "min_top1_agreement", "max_accuracy_change")
VERDICTS = ("identical", "consistent", "drift", "mismatch")
PASSING = ("identical", "consistent", "drift")

# The reasons are in docs/tolerances.md. In short: softmax outputs lie in [0, 1], so atol is in probability units.
DEFAULTS: dict[str, dict[str, float]] = {
    # Different FP32 kernels (TF/Eigen, ORT/MLAS, cuDNN) sum in different orders: ~1e-7..1e-6 on probabilities.
    "fp32": {"atol": 1e-5, "rtol": 1e-4, "max_outside_share": 1e-3, "min_top1_agreement": 0.999,
             "max_accuracy_change": 0.001},
    # TF32 rounds conv/matmul inputs to a 10-bit mantissa (FP32 accumulation): ~1e-2 seen on a deep CNN, H100.
    "tf32": {"atol": 1e-2, "rtol": 1e-2, "max_outside_share": 0.01, "min_top1_agreement": 0.99,
             "max_accuracy_change": 0.005},
    # FP16 also stores activations in 10 bits and may accumulate in FP16: about twice TF32's drift.
    "fp16": {"atol": 2e-2, "rtol": 2e-2, "max_outside_share": 0.02, "min_top1_agreement": 0.98,
             "max_accuracy_change": 0.01},
}

_SUFFIX = re.compile(r"_(fp32|tf32|fp16)$")


class ToleranceConfigError(UserError):
    """A tolerance override names an unknown precision or field, or has an impossible value."""


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """The bounds one pair is judged by, and where each number came from."""

    precision: str
    atol: float
    rtol: float
    max_outside_share: float
    min_top1_agreement: float
    max_accuracy_change: float
    source: str = "default"                     # default | config | model: the most specific layer used
    overridden: tuple[str, ...] = ()            # the fields that do not hold the default

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overridden"] = list(self.overridden)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Tolerance":
        return cls(**{**data, "overridden": tuple(data.get("overridden", ()))})


def precision_of(name: str) -> str:
    """A backend's precision: the suffix of its name, fp32 when it has none."""
    m = _SUFFIX.search(name)
    return m.group(1) if m else "fp32"


def pair_precision(a: str, b: str) -> str:
    """The looser of two backends' precisions."""
    return max(precision_of(a), precision_of(b), key=PRECISIONS.index)


def parity_pairs(names: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs that run the same engine and must agree bit for bit: Python vs C++, and C++ from .npy vs from CSV."""
    present = set(names)
    pairs = []
    for p in PRECISIONS:
        for a, b in ((f"tensorrt_{p}", f"tensorrt_cpp_{p}"), (f"tensorrt_cpp_{p}", f"tensorrt_cpp_csv_{p}")):
            if a in present and b in present:
                pairs.append((a, b))
    return pairs


def _check_layer(layer: Any, label: str) -> list[str]:
    """Every problem of one override layer ({precision: {field: value}})."""
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
            if field not in FIELDS:
                problems.append(f"{where}: unknown setting (known: {', '.join(FIELDS)})")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{where}: must be a finite number, got {value!r}")
            elif value < 0 or (field in SHARE_FIELDS and value > 1):
                problems.append(f"{where}: must be {'in [0, 1]' if field in SHARE_FIELDS else '>= 0'}, got {value}")
    return problems


class TolerancePolicy:
    """Defaults per precision, then the config's overrides, then the model's own (most specific wins)."""

    def __init__(self, config: Mapping[str, Any] | None = None, model: Mapping[str, Any] | None = None) -> None:
        problems = _check_layer(config, "tolerances") + _check_layer(model, "model tolerances")
        if problems:
            raise ToleranceConfigError("invalid tolerance overrides: " + "; ".join(problems))
        self.layers = (("config", dict(config or {})), ("model", dict(model or {})))

    def for_precision(self, precision: str) -> Tolerance:
        if precision not in PRECISIONS:
            raise ToleranceConfigError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
        values, source = dict(DEFAULTS[precision]), "default"
        for name, layer in self.layers:
            if layer.get(precision):
                values.update({k: float(v) for k, v in layer[precision].items()})
                source = name
        overridden = tuple(f for f in FIELDS if values[f] != DEFAULTS[precision][f])
        return Tolerance(precision=precision, source=source, overridden=overridden, **values)

    def for_pair(self, a: str, b: str) -> Tolerance:
        return self.for_precision(pair_precision(a, b))


def judge(*, identical: bool, outside_count: int, outside_share: float, top1_agreement: float,
          accuracy_change: float, tolerance: Tolerance, parity: bool = False) -> tuple[str, str]:
    """(verdict, reason): the first of identical / consistent / drift / mismatch that the numbers allow."""
    if identical:
        return "identical", "every element bit-equal"
    if parity:
        return "mismatch", "same engine from Python and C++ must be bit-identical, and is not"
    if outside_count == 0:
        return "consistent", f"every element within atol {tolerance.atol:g} + rtol {tolerance.rtol:g} * |ref|"
    broken = []
    if not outside_share <= tolerance.max_outside_share:
        broken.append(f"{outside_share:.3g} of elements outside tolerance (at most {tolerance.max_outside_share:g})")
    if not top1_agreement >= tolerance.min_top1_agreement:
        broken.append(f"top-1 agreement {top1_agreement:.4g} (at least {tolerance.min_top1_agreement:g})")
    if not abs(accuracy_change) <= tolerance.max_accuracy_change:
        broken.append(f"accuracy change {accuracy_change:+.3g} (at most {tolerance.max_accuracy_change:g})")
    if broken:
        return "mismatch", "; ".join(broken)
    return "drift", (f"{outside_count} elements ({outside_share:.3g}) outside tolerance, within the "
                     f"{tolerance.precision} bounds on share, top-1 agreement and accuracy")
