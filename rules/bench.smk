# Benchmarks (config benchmark.enabled): one process per backend x batch size (x precision), then one table.
# docs/benchmarks.md says what is timed and how the numbers relate to trtexec's.

BENCH = config["benchmark"]
# Locally a benchmark job takes every core Snakemake was given, so no other job runs beside it and skews the
# timings. Cluster runs (no --cores) give each job its own allocation; --set-threads overrides either.
BENCH_THREADS = workflow.resource_settings.cores or 2


# The rows benchmark_table gathers: models x backends (x precisions for TensorRT) x batch sizes.
BENCH_ROWS = expand(
    "results/{model}/bench/{name}_b{batch}.json",
    model=MODELS,
    name=[n for b in BENCH["backends"] for n in BACKEND[b].names(PRECISIONS)],
    batch=BENCH["batch_sizes"],
)


rule benchmark_savedmodel:
    """Time the SavedModel at one batch size (warm-up, then timed iterations) in a process of its own."""
    input:
        image=container_input("tensorflow"),
        script=script("benchmark.py"),
        code=code_of("benchmark.py", "trtverify/backends/savedmodel.py"),
        artifact="results/{model}/saved_model",
        samples="results/{model}/data/test_samples.npy",
    output:
        row="results/{model}/bench/savedmodel_b{batch}.json",
    log:
        "results/logs/benchmark_savedmodel/{model}/b{batch}.log",
    benchmark:
        "results/benchmarks/benchmark_savedmodel/{model}/b{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: BENCH_THREADS
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        warmup=BENCH["warmup"],
        iterations=BENCH["iterations"],
    shell:
        "python {input.script:q} --backend savedmodel --artifact {input.artifact:q} --samples {input.samples:q}"
        " --batch-size {wildcards.batch:q} --warmup {params.warmup:q} --iterations {params.iterations:q}"
        " --model {wildcards.model:q} --output {output.row:q} > {log:q} 2>&1"


rule benchmark_onnxruntime:
    """Time ONNX Runtime at one batch size, with the configured providers."""
    input:
        image=container_input("tensorrt"),
        script=script("benchmark.py"),
        code=code_of("benchmark.py", "trtverify/backends/onnxruntime.py"),
        artifact="results/{model}/model.onnx",
        samples="results/{model}/data/test_samples.npy",
    output:
        row="results/{model}/bench/onnxruntime_b{batch}.json",
    log:
        "results/logs/benchmark_onnxruntime/{model}/b{batch}.log",
    benchmark:
        "results/benchmarks/benchmark_onnxruntime/{model}/b{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: BENCH_THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        warmup=BENCH["warmup"],
        iterations=BENCH["iterations"],
        providers=",".join(config["onnxruntime"]["providers"]),
    shell:
        "python {input.script:q} --backend onnxruntime --artifact {input.artifact:q} --samples {input.samples:q}"
        " --providers {params.providers:q} --batch-size {wildcards.batch:q} --warmup {params.warmup:q}"
        " --iterations {params.iterations:q} --model {wildcards.model:q} --output {output.row:q} > {log:q} 2>&1"


rule benchmark_tensorrt:
    """Time a TensorRT engine through the Python API at one batch size (optionally as a CUDA graph)."""
    input:
        image=container_input("tensorrt"),
        script=script("benchmark_tensorrt.py"),
        code=code_of("benchmark_tensorrt.py", "trtverify/backends/tensorrt.py"),
        artifact="results/{model}/engines/{precision}.trt",
        samples="results/{model}/data/test_samples.npy",
    output:
        row="results/{model}/bench/tensorrt_{precision}_b{batch}.json",
    log:
        "results/logs/benchmark_tensorrt/{model}/{precision}_b{batch}.log",
    benchmark:
        "results/benchmarks/benchmark_tensorrt/{model}/{precision}_b{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: BENCH_THREADS
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=1,
    params:
        warmup=BENCH["warmup"],
        iterations=BENCH["iterations"],
        cuda_graph="--cuda-graph" if BENCH["cuda_graph"] else "",
    shell:
        "python {input.script:q} --artifact {input.artifact:q} --samples {input.samples:q}"
        " --precision {wildcards.precision:q} --batch-size {wildcards.batch:q} --warmup {params.warmup:q}"
        " --iterations {params.iterations:q} {params.cuda_graph:q} --model {wildcards.model:q}"
        " --output {output.row:q} > {log:q} 2>&1"


rule benchmark_tensorrt_cpp:
    """Time a TensorRT engine through the C++ program at one batch size; its timing file becomes a row
    like the Python backends'."""
    input:
        image=container_input("tensorrt"),
        script=script("bench_cpp_row.py"),
        code=code_of("bench_cpp_row.py"),
        binary="results/bin/trt_infer",
        engine="results/{model}/engines/{precision}.trt",
        samples="results/{model}/data/test_samples.npy",
    output:
        row="results/{model}/bench/tensorrt_cpp_{precision}_b{batch}.json",
        timing="results/{model}/bench/trt_infer/{precision}_b{batch}.timing.json",
    log:
        "results/logs/benchmark_tensorrt_cpp/{model}/{precision}_b{batch}.log",
    benchmark:
        "results/benchmarks/benchmark_tensorrt_cpp/{model}/{precision}_b{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: BENCH_THREADS
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=1,
    params:
        warmup=BENCH["warmup"],
        iterations=BENCH["iterations"],
        cuda_graph="--cuda-graph" if BENCH["cuda_graph"] else "",
    shell:
        "({input.binary:q} --engine {input.engine:q} --precision {wildcards.precision:q}"
        " --input {input.samples:q} --batch {wildcards.batch:q}"
        " --warmup {params.warmup:q} --iterations {params.iterations:q} {params.cuda_graph:q}"
        " --timing {output.timing:q}"
        " && python {input.script:q} --timing {output.timing:q} --model {wildcards.model:q}"
        " --precision {wildcards.precision:q} --batch-size {wildcards.batch:q} --output {output.row:q})"
        " > {log:q} 2>&1"


rule benchmark_table:
    """One table of every benchmark row (TSV and JSON, speed-ups against benchmark.baseline) and its plots."""
    input:
        image=container_input("tensorflow"),
        script=script("bench_table.py"),
        code=code_of("bench_table.py"),
        rows=BENCH_ROWS,
    output:
        tsv="results/benchmarks.tsv",
        json="results/benchmarks.json",
        plots=report(
            directory("results/bench_plots"),
            patterns=["{name}.png"],
            category="Benchmarks",
            caption="../docs/report-caption-benchmarks.rst",
            labels={"figure": "{name}"},
        ),
    log:
        "results/logs/benchmark_table/benchmark_table.log",
    benchmark:
        "results/benchmarks/benchmark_table/benchmark_table.tsv"
    # Seconds of gathering results: on a cluster it runs on the submitting machine instead of queueing. Set on
    # the rule, not in a `localrules:` list, whose names a module's `use rule * as tv_*` would not rename.
    localrule: True
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        baseline=BENCH["baseline"],
    shell:
        "python {input.script:q} {input.rows:q} --tsv {output.tsv:q} --json {output.json:q}"
        " --baseline {params.baseline:q} --plots {output.plots:q} > {log:q} 2>&1"
