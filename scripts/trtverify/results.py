"""A comparison's results as plain data (comparison.json, docs/report-schema.md); truthy when they pass."""

from __future__ import annotations

import dataclasses
from typing import Any

from .tolerance import PASSING

SCHEMA_VERSION = 1


def fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields by name, the values themselves: they are plain data already. (dataclasses.asdict
    copied every list and dict of a comparison, the pairs twice: a tenth of a second for 1,000 classes.)"""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


@dataclasses.dataclass
class PairResult:
    """One pair's numbers, tolerance and verdict; truthy when the verdict passes."""

    a: str
    b: str
    precision: str
    tolerance: dict[str, Any]
    parity: bool
    verdict: str
    reason: str
    metrics: dict[str, Any]
    per_class_agreement: list[float | None]
    top1_flips: dict[str, Any]
    first_difference: dict[str, Any] | None
    abs_diff_histogram: dict[str, Any]
    softmax_tolerance: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.a} vs {self.b}"

    def __bool__(self) -> bool:
        return self.verdict in PASSING

    def to_dict(self) -> dict[str, Any]:
        return fields(self)


@dataclasses.dataclass
class ComparisonResult:
    """Everything one comparison found, as plain data; truthy when no pair is a mismatch."""

    model: str
    reference: str
    num_samples: int
    num_classes: int
    settings: dict[str, Any]
    backends: dict[str, dict[str, Any]]
    pairs: dict[str, PairResult]
    parity: dict[str, dict[str, Any]]
    per_sample: list[dict[str, Any]]
    flipped_samples: dict[str, Any]
    class_counts: list[int]
    output: dict[str, Any] = dataclasses.field(default_factory=dict)
    noise_floor: dict[str, Any] | None = None
    inconclusive: str | None = None

    def __bool__(self) -> bool:
        return all(self.pairs.values())

    @property
    def mismatches(self) -> list[str]:
        return [name for name, pair in self.pairs.items() if not pair]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **fields(self),
                "pairs": {name: pair.to_dict() for name, pair in self.pairs.items()}}
