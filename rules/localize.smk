# On demand: where a conversion diverges, layer by layer (docs/localization.md). Not part of `rule all`:
#   snakemake results/{model}/localization.json


rule localize:
    """Per-layer errors of SavedModel -> ONNX Runtime, ONNX Runtime -> TensorRT (each configured precision) and,
    with the tensorrt_cpp backend, TensorRT Python -> C++ on the first test samples, judged by the tolerance policy
    with the model's noise floor (C++: bit for bit), and the first divergent layer under its Keras name; hops that
    cannot run here are recorded as skipped with the reason."""
    input:
        image=container_input("tensorflow"),
        script=script("localize.py"),
        code=code_of("localize.py"),
        saved_model="results/{model}/saved_model",
        onnx="results/{model}/model.onnx",
        samples="results/{model}/data/test_samples.npy",
        noise_floor="results/{model}/onnx_check.json",
        trt_infer=localize_trt_infer,
    output:
        localization="results/{model}/localization.json",
    log:
        "results/logs/localize/{model}.log",
    benchmark:
        "results/benchmarks/localize/{model}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        precisions=config["tensorrt"]["precisions"],
        tactics=config["tensorrt"]["tactic_sources"],
        flavour=config["tensorrt"]["flavour"],
        tolerances=model_tolerances,
        trt_infer_flag=localize_trt_infer_flag,
    shell:
        "python {input.script:q} --saved-model {input.saved_model:q} --onnx {input.onnx:q}"
        " --samples {input.samples:q} --precisions {params.precisions:q}"
        " --tactic-sources={params.tactics:q} --flavour {params.flavour:q}"
        " --noise-floor {input.noise_floor:q} --tolerances {params.tolerances:q}"
        " {params.trt_infer_flag:q} {input.trt_infer:q}"
        " --output {output.localization:q} > {log:q} 2>&1"
