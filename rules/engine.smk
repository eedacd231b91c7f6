# ONNX -> TensorRT engine per precision, with an optimization profile for dynamic batch.


rule build_engine:
    """ONNX -> TensorRT engine at one precision, with an optimization profile for a dynamic batch, and a
    record of how it was built (TensorRT version, precision really allowed, per-layer precisions).
    """
    input:
        image=container_input("tensorrt"),
        script=script("build_engine.py"),
        code=code_of("build_engine.py"),
        onnx="results/{model}/model.onnx",
    output:
        engine="results/{model}/engines/{precision}.trt",
        info="results/{model}/engines/{precision}.json",
    log:
        "results/logs/build_engine/{model}_{precision}.log",
    benchmark:
        "results/benchmarks/build_engine/{model}_{precision}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        profile=config["tensorrt"]["profile"],
        workspace=config["tensorrt"]["workspace_mib"],
        tactics=config["tensorrt"]["tactic_sources"],
        flavour=config["tensorrt"]["flavour"],
    shell:
        "python {input.script:q} --onnx {input.onnx:q} --precision {wildcards.precision:q}"
        " --min-batch {params.profile[min_batch]:q} --opt-batch {params.profile[opt_batch]:q}"
        " --max-batch {params.profile[max_batch]:q} --workspace-mib {params.workspace:q}"
        " --tactic-sources={params.tactics:q} --flavour {params.flavour:q}"
        " --engine {output.engine:q} --info {output.info:q} > {log:q} 2>&1"
