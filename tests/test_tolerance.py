"""The tolerance policy: precisions from names, the looser of a pair, overrides and their sources, verdict order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trtverify.errors import UserError
from trtverify.tolerance import (DEFAULTS, FIELDS, PRECISIONS, ToleranceConfigError, TolerancePolicy, judge,
                                 pair_precision, parity_pairs, precision_of)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name,precision", [
    ("savedmodel", "fp32"), ("onnxruntime", "fp32"), ("tensorrt_fp16", "fp16"), ("tensorrt_cpp_tf32", "tf32"),
    ("tensorrt_cpp_csv_fp32", "fp32"), ("my_fp16_model", "fp32")])
def test_precision_is_the_name_suffix(name: str, precision: str) -> None:
    assert precision_of(name) == precision


def test_pair_precision_is_the_looser() -> None:
    assert pair_precision("savedmodel", "onnxruntime") == "fp32"
    assert pair_precision("tensorrt_tf32", "savedmodel") == "tf32"
    assert pair_precision("tensorrt_fp16", "tensorrt_tf32") == "fp16"
    assert pair_precision("tensorrt_fp32", "tensorrt_cpp_fp16") == "fp16"


def test_defaults_get_looser_with_precision() -> None:
    fp32, tf32, fp16 = (DEFAULTS[p] for p in PRECISIONS)
    for field in ("atol", "rtol", "max_outside_share", "max_accuracy_change"):
        assert fp32[field] < tf32[field] <= fp16[field]
    assert fp32["min_top1_agreement"] > tf32["min_top1_agreement"] > fp16["min_top1_agreement"]


def test_every_default_is_documented_with_its_value() -> None:
    doc = (REPO / "docs" / "tolerances.md").read_text()
    for precision, values in DEFAULTS.items():
        row = next(line for line in doc.splitlines() if re.match(rf"\|\s*{precision}\s*\|", line))
        for field in FIELDS:
            assert f"{values[field]:g}" in row, (precision, field)


def test_parity_pairs() -> None:
    names = ["savedmodel", "onnxruntime", "tensorrt_fp32", "tensorrt_cpp_fp32", "tensorrt_cpp_csv_fp32",
             "tensorrt_fp16", "tensorrt_cpp_csv_fp16"]
    assert parity_pairs(names) == [("tensorrt_fp32", "tensorrt_cpp_fp32"),
                                   ("tensorrt_cpp_fp32", "tensorrt_cpp_csv_fp32")]


def test_overrides_and_their_source() -> None:
    policy = TolerancePolicy({"fp16": {"atol": 0.05}, "tf32": {}}, model={"fp32": {"rtol": 1e-3}})
    fp16 = policy.for_precision("fp16")
    assert fp16.atol == 0.05 and fp16.rtol == DEFAULTS["fp16"]["rtol"]
    assert fp16.source == "config" and fp16.overridden == ("atol",)
    assert policy.for_precision("tf32").source == "default"
    assert policy.for_pair("savedmodel", "onnxruntime").source == "model"
    assert policy.for_pair("savedmodel", "onnxruntime").rtol == 1e-3
    both = TolerancePolicy({"fp16": {"atol": 0.05}}, model={"fp16": {"atol": 0.03}}).for_precision("fp16")
    assert both.atol == 0.03 and both.source == "model"
    assert TolerancePolicy().for_precision("fp32").to_dict() == {
        "precision": "fp32", **DEFAULTS["fp32"], "source": "default", "overridden": []}


def test_bad_overrides_list_every_problem() -> None:
    with pytest.raises(ToleranceConfigError) as info:
        TolerancePolicy({"int8": {"atol": 1}, "fp16": {"atl": 1, "rtol": -1, "min_top1_agreement": 2,
                                                        "atol": "big", "max_outside_share": True}})
    msg = str(info.value)
    for fragment in ("unknown precision 'int8'", "fp16.atl: unknown setting", "fp16.rtol: must be >= 0",
                     "fp16.min_top1_agreement: must be in [0, 1]", "fp16.atol: must be a finite number",
                     "fp16.max_outside_share: must be a finite number"):
        assert fragment in msg
    assert isinstance(info.value, UserError)
    with pytest.raises(ToleranceConfigError, match="must be a mapping"):
        TolerancePolicy([1, 2])  # type: ignore[arg-type]


def test_verdict_order() -> None:
    tol = TolerancePolicy().for_precision("fp16")
    base = dict(identical=False, outside_count=10, outside_share=0.01, top1_agreement=0.99, accuracy_change=0.0,
                tolerance=tol)
    assert judge(**{**base, "identical": True})[0] == "identical"
    assert judge(**{**base, "identical": True, "parity": True})[0] == "identical"
    assert judge(**{**base, "parity": True})[0] == "mismatch"
    assert judge(**{**base, "outside_count": 0, "outside_share": 0.0})[0] == "consistent"
    assert judge(**{**base, "outside_count": 0, "outside_share": 0.0, "parity": True})[0] == "mismatch"
    assert judge(**base)[0] == "drift"
    verdict, reason = judge(**{**base, "outside_share": 0.5, "top1_agreement": 0.5, "accuracy_change": -0.3})
    assert verdict == "mismatch"
    assert "outside tolerance" in reason and "top-1 agreement" in reason and "accuracy change -0.3" in reason
    assert judge(**{**base, "accuracy_change": tol.max_accuracy_change})[0] == "drift"          # bounds inclusive
    assert judge(**{**base, "top1_agreement": tol.min_top1_agreement})[0] == "drift"
