# ONNX -> TensorRT engine per precision, with an optimization profile for dynamic batch.


rule build_engine:
    input:
        image=container_input("tensorrt"),
        script=script("build_engine.py"),
        code=lib("engine.py", "tensorrt_compat.py"),
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
        workspace=config["tensorrt"].get("workspace_mib", 1024),
        tactics=config["tensorrt"].get("tactic_sources", "default"),
        flavour=config["tensorrt"].get("flavour", "auto"),
    shell:
        "python {input.script} --onnx {input.onnx} --precision {wildcards.precision}"
        " --min-batch {params.profile[min_batch]} --opt-batch {params.profile[opt_batch]}"
        " --max-batch {params.profile[max_batch]} --workspace-mib {params.workspace}"
        " --tactic-sources={params.tactics:q} --flavour {params.flavour}"
        " --engine {output.engine} --info {output.info} > {log} 2>&1"
