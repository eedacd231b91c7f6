# trtverify: does a TensorFlow model give the same answers after conversion to ONNX and TensorRT,
# from Python and from C++, and what does the conversion buy?  See README.md and docs/architecture.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/config.smk"


report: "docs/report.rst"


include: "rules/common.smk"
include: "rules/common_containers.smk"
include: "rules/containers.smk"
include: "rules/train.smk"
include: "rules/convert.smk"
include: "rules/engine.smk"
include: "rules/cpp.smk"
include: "rules/predict.smk"
include: "rules/shard.smk"
include: "rules/compare.smk"
include: "rules/report.smk"
include: "rules/bench.smk"
include: "rules/localize.smk"


rule all:
    """Everything a run verifies: the report, summary and gate, the engines (tensorrt.build_engines), the
    benchmark table (benchmark.enabled)."""
    default_target: True
    input:
        final_targets(),
