# Every backend predicts the same test samples; each writes predictions/{name}.npy and a .json of how it ran.


rule predict_savedmodel:
    """The reference: the SavedModel's predictions on the test samples, batch by batch."""
    input:
        image=container_input("tensorflow"),
        script=script("predict.py"),
        code=code_of("predict.py", "trtverify/backends/savedmodel.py"),
        artifact="results/{model}/saved_model",
        samples="results/{model}/data/test_samples.npy",
    output:
        predictions="results/{model}/predictions/savedmodel.npy",
        info="results/{model}/predictions/savedmodel.json",
    log:
        "results/logs/predict_savedmodel/{model}.log",
    benchmark:
        "results/benchmarks/predict_savedmodel/{model}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: BACKEND["savedmodel"].threads
    resources:
        **BACKEND["savedmodel"].resources,
    params:
        batch=config["predict"]["batch_size"],
    shell:
        "python {input.script:q} --backend savedmodel --artifact {input.artifact:q} --samples {input.samples:q}"
        " --batch-size {params.batch:q} --output {output.predictions:q} --info {output.info:q} > {log:q} 2>&1"


rule predict_onnxruntime:
    """ONNX Runtime's predictions, with the execution providers it really used recorded."""
    input:
        image=container_input("tensorrt"),
        script=script("predict.py"),
        code=code_of("predict.py", "trtverify/backends/onnxruntime.py"),
        artifact="results/{model}/model.onnx",
        samples="results/{model}/data/test_samples.npy",
    output:
        predictions="results/{model}/predictions/onnxruntime.npy",
        info="results/{model}/predictions/onnxruntime.json",
    log:
        "results/logs/predict_onnxruntime/{model}.log",
    benchmark:
        "results/benchmarks/predict_onnxruntime/{model}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: BACKEND["onnxruntime"].threads
    resources:
        **BACKEND["onnxruntime"].resources,
    params:
        batch=config["predict"]["batch_size"],
        providers=",".join(config["onnxruntime"]["providers"]),
    shell:
        "python {input.script:q} --backend onnxruntime --artifact {input.artifact:q} --samples {input.samples:q}"
        " --providers {params.providers:q} --batch-size {params.batch:q}"
        " --output {output.predictions:q} --info {output.info:q} > {log:q} 2>&1"


rule predict_tensorrt:
    """TensorRT's predictions through its Python API, from the engine of one precision."""
    input:
        image=container_input("tensorrt"),
        script=script("predict.py"),
        code=code_of("predict.py", "trtverify/backends/tensorrt.py"),
        artifact="results/{model}/engines/{precision}.trt",
        engine_info="results/{model}/engines/{precision}.json",
        samples="results/{model}/data/test_samples.npy",
    output:
        predictions="results/{model}/predictions/tensorrt_{precision}.npy",
        info="results/{model}/predictions/tensorrt_{precision}.json",
    log:
        "results/logs/predict_tensorrt/{model}_{precision}.log",
    benchmark:
        "results/benchmarks/predict_tensorrt/{model}_{precision}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: BACKEND["tensorrt"].threads
    resources:
        **BACKEND["tensorrt"].resources,
    params:
        batch=config["predict"]["batch_size"],
    shell:
        "python {input.script:q} --backend tensorrt --artifact {input.artifact:q} --samples {input.samples:q}"
        " --engine-info {input.engine_info:q} --batch-size {params.batch:q} --output {output.predictions:q} --info {output.info:q} > {log:q} 2>&1"


rule predict_tensorrt_cpp:
    """TensorRT's predictions through the compiled C++ program (from .npy; the _csv variant reads the
    CSV), so Python and C++ are judged by the same comparator."""
    input:
        image=container_input("tensorrt"),
        script=script("predict_cpp.py"),
        code=code_of("predict_cpp.py"),
        binary="results/bin/trt_infer",
        engine="results/{model}/engines/{precision}.trt",
        engine_info="results/{model}/engines/{precision}.json",
        data="results/{model}/data/test_samples.npy",
        samples="results/{model}/data/test_samples.npy",
    output:
        predictions="results/{model}/predictions/tensorrt_cpp_{precision}.npy",
        info="results/{model}/predictions/tensorrt_cpp_{precision}.json",
    log:
        "results/logs/predict_tensorrt_cpp/{model}_{precision}.log",
    benchmark:
        "results/benchmarks/predict_tensorrt_cpp/{model}_{precision}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: BACKEND["tensorrt_cpp"].threads
    resources:
        **BACKEND["tensorrt_cpp"].resources,
    shell:
        "python {input.script:q} --binary {input.binary:q} --engine {input.engine:q} --input {input.data:q}"
        " --engine-info {input.engine_info:q}"
        " --samples {input.samples:q} --output {output.predictions:q} --info {output.info:q} > {log:q} 2>&1"


use rule predict_tensorrt_cpp as predict_tensorrt_cpp_csv with:
    input:
        script=script("predict_cpp.py"),
        code=code_of("predict_cpp.py"),
        binary="results/bin/trt_infer",
        engine="results/{model}/engines/{precision}.trt",
        engine_info="results/{model}/engines/{precision}.json",
        data="results/{model}/data/test_samples.csv",
        samples="results/{model}/data/test_samples.npy",
    output:
        predictions="results/{model}/predictions/tensorrt_cpp_csv_{precision}.npy",
        info="results/{model}/predictions/tensorrt_cpp_csv_{precision}.json",
    log:
        "results/logs/predict_tensorrt_cpp_csv/{model}_{precision}.log",
    benchmark:
        "results/benchmarks/predict_tensorrt_cpp_csv/{model}_{precision}.tsv"


# The backends whose registry entry asks for this generic rule (scripts/trtverify/backends/registry.py): predict.py
# with the entry's runner on the entry's artifact, in the entry's stack. None by default; a new backend is an entry.
for entry in GENERIC_BACKENDS:

    rule:
        """A registered backend's predictions, through predict.py and its runner module."""
        name:
            entry.rule
        input:
            image=container_input(entry.stack),
            script=script("predict.py"),
            code=code_of("predict.py", f"trtverify/backends/{entry.runner}.py"),
            artifact=f"results/{{model}}/{entry.artifact}",
            samples="results/{model}/data/test_samples.npy",
        output:
            predictions=f"results/{{model}}/predictions/{generic_stem(entry)}.npy",
            info=f"results/{{model}}/predictions/{generic_stem(entry)}.json",
        log:
            f"results/logs/{entry.rule}/{{model}}{generic_suffix(entry)}.log",
        benchmark:
            f"results/benchmarks/{entry.rule}/{{model}}{generic_suffix(entry)}.tsv"
        conda:
            f"../envs/{entry.stack}.yaml"
        container:
            container_image(entry.stack)
        threads: entry.threads
        resources:
            **entry.resources,
        params:
            backend=entry.name,
            batch=config["predict"]["batch_size"],
        shell:
            "python {input.script:q} --backend {params.backend:q} --artifact {input.artifact:q}"
            " --samples {input.samples:q} --batch-size {params.batch:q}"
            " --output {output.predictions:q} --info {output.info:q} > {log:q} 2>&1"
