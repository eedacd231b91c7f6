# SavedModel -> ONNX with tf2onnx, checked by onnx.checker, the reference's noise floor measured, and the conversion
# judged against the SavedModel by the same tolerance policy as every compare pair.


rule convert_onnx:
    """SavedModel -> ONNX with tf2onnx, checked by onnx.checker, with the reference's noise floor and the
    conversion's own verdict against the SavedModel."""
    input:
        image=container_input("tensorflow"),
        script=script("convert_onnx.py"),
        code=code_of(
            "convert_onnx.py",
            "trtverify/backends/savedmodel.py",
            "trtverify/backends/onnxruntime.py",
        ),
        saved_model="results/{model}/saved_model",
        samples="results/{model}/data/test_samples.npy",
        labels="results/{model}/data/test_labels.npy",
    output:
        onnx="results/{model}/model.onnx",
        check="results/{model}/onnx_check.json",
    log:
        "results/logs/convert_onnx/{model}.log",
    benchmark:
        "results/benchmarks/convert_onnx/{model}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        opset=config["onnx"]["opset"],
        batch=config["predict"]["batch_size"],
        floor_samples=config["compare"]["noise_floor_samples"],
        tolerances=model_tolerances,
        kind=output_kind,
    shell:
        "python {input.script:q} --saved-model {input.saved_model:q} --samples {input.samples:q}"
        " --labels {input.labels:q} --opset {params.opset:q} --batch-size {params.batch:q}"
        " --noise-floor-samples {params.floor_samples:q} --tolerances {params.tolerances:q}"
        " --output-kind {params.kind:q} --output {output.onnx:q} --check {output.check:q} > {log:q} 2>&1"
