# SavedModel -> ONNX with tf2onnx, checked by onnx.checker and against the SavedModel on the test samples.


rule convert_onnx:
    input:
        image=container_input("tensorflow"),
        script=script("convert_onnx.py"),
        saved_model="results/{model}/saved_model",
        samples="results/{model}/data/test_samples.npy",
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
        max_abs_diff=config["onnx"].get("max_abs_diff", 1e-4),
    shell:
        "python {input.script} --saved-model {input.saved_model} --samples {input.samples}"
        " --opset {params.opset} --max-abs-diff {params.max_abs_diff}"
        " --output {output.onnx} --check {output.check} > {log} 2>&1"
