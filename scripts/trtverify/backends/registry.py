"""The backends, one entry each: the one place that says what a backend is.

The rules expand their prediction targets from it (rules/common.smk), the generic prediction rule is made for the
entries that ask for it (rules/predict.smk), the benchmark picks its runners from it, compare takes its parity pairs
from it, the report its labels; config/schema.yaml keeps its `backend` enum, which tests/test_registry.py holds equal
to ``CONFIG_NAMES``. Adding a backend whose runner is a module of this package: one entry here (``generic_rule``),
its runner module, and its name in the schema's enum (docs/architecture.md, "Where each kind of change goes").

Plain standard library and nothing of this package, so that rules/common.smk can load this file by its path without
numpy or any framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True)
class Backend:
    name: str  # its predictions: predictions/{name}.npy, or {name}_{precision}.npy when per_precision
    label: str  # what the report calls it
    artifact: str  # what it runs, under results/{model}/ ({precision}: the engine of that precision)
    stack: str  # the software stack its rule runs in: a container image and a conda environment (envs/)
    config_name: str = ""  # the `backends:` entry that turns it on (default: its name)
    rule: str = ""  # the rule that writes its predictions (default: predict_{name})
    runner: str | None = None  # its module in trtverify/backends/ (None: an external program runs it)
    per_precision: bool = False  # one prediction per tensorrt.precisions entry
    input_format: str | None = None  # the cpp.input_formats entry it needs (a variant of the C++ program)
    benchmarkable: bool = False  # scripts/benchmark.py can time its runner
    parity_with: str | None = None  # the backend on the same engine that it must equal bit for bit
    generic_rule: bool = False  # its rule is made by rules/predict.smk from this entry (predict.py, its runner)
    threads: int = 1
    resources: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config_name", self.config_name or self.name)
        object.__setattr__(self, "rule", self.rule or f"predict_{self.name}")

    @property
    def needs_engine(self) -> bool:
        return "{precision}" in self.artifact

    def names(self, precisions: Iterable[str]) -> list[str]:
        """Its prediction names for the configured precisions."""
        return [f"{self.name}_{p}" for p in precisions] if self.per_precision else [self.name]


CPU = {"mem_mb": 4000, "runtime": 60}
GPU = {**CPU, "gpu": 1}
BACKENDS = (
    Backend("savedmodel", "TensorFlow SavedModel (the reference)", "saved_model", "tensorflow",
            runner="savedmodel", benchmarkable=True, threads=2, resources={"mem_mb": 8000, "runtime": 60}),
    Backend("onnxruntime", "ONNX Runtime", "model.onnx", "tensorrt", runner="onnxruntime", benchmarkable=True,
            threads=2, resources=CPU),
    Backend("tensorrt", "TensorRT, Python API", "engines/{precision}.trt", "tensorrt", runner="tensorrt",
            per_precision=True, benchmarkable=True, resources=GPU),
    Backend("tensorrt_cpp", "TensorRT, C++ program (.npy input)", "engines/{precision}.trt", "tensorrt",
            per_precision=True, input_format="npy", parity_with="tensorrt", resources=GPU),
    Backend("tensorrt_cpp_csv", "TensorRT, C++ program (CSV input)", "engines/{precision}.trt", "tensorrt",
            config_name="tensorrt_cpp", per_precision=True, input_format="csv", parity_with="tensorrt_cpp",
            resources=GPU),
)
BY_NAME = {b.name: b for b in BACKENDS}
# What config.yaml's `backends:` and `benchmark.backends` may list (config/schema.yaml's enum).
CONFIG_NAMES = tuple(dict.fromkeys(b.config_name for b in BACKENDS))
# What scripts/benchmark.py and scripts/predict.py run by name (trtverify.backends.open_runner).
RUNNERS = tuple(b.name for b in BACKENDS if b.runner)
BENCH_RUNNERS = tuple(b.name for b in BACKENDS if b.runner and b.benchmarkable)


def prediction_names(config_backends: Iterable[str], input_formats: Iterable[str],
                     precisions: Iterable[str]) -> list[str]:
    """Backend names as they appear in predictions/, comparison.json and the report, in the config's order: each
    `backends` entry, then its precisions, then its input formats (cpp.input_formats)."""
    formats, precisions = list(input_formats), list(precisions)
    names = []
    for wanted in config_backends:
        group = sorted((b for b in BACKENDS if b.config_name == wanted
                        and (b.input_format is None or b.input_format in formats)),
                       key=lambda b: formats.index(b.input_format) if b.input_format else -1)
        names += [b.name for b in group if not b.per_precision]
        names += [f"{b.name}_{p}" for p in precisions for b in group if b.per_precision]
    return names


def backend_of(name: str) -> Backend | None:
    """The entry of a prediction name (``tensorrt_cpp_fp16`` -> tensorrt_cpp), None for a name not registered."""
    if name in BY_NAME:
        return BY_NAME[name]
    stem, _, _ = name.rpartition("_")
    entry = BY_NAME.get(stem)
    return entry if entry and entry.per_precision else None


def label(name: str) -> str:
    """The report's words for a prediction name; the name itself when it is not registered."""
    entry = backend_of(name)
    if entry is None:
        return name
    return f"{entry.label}, {name.rpartition('_')[2]}" if entry.per_precision else entry.label


def parity_pairs(names: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of prediction names that run the same engine and must agree bit for bit, in the order given."""
    present = list(names)
    pairs = []
    for name in present:
        entry = backend_of(name)
        if entry and entry.parity_with:
            partner = f"{entry.parity_with}_{name.rpartition('_')[2]}" if entry.per_precision else entry.parity_with
            if partner in present:
                pairs.append((partner, name))
    return pairs
