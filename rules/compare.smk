# Compare every pair of backends over the whole test set, streaming, with verdicts against tolerances.


rule compare:
    input:
        unpack(prediction_files),
        image=container_input("tensorflow"),
        script=script("compare.py"),
        code=lib("metrics.py", "sketch.py", "tolerance.py"),
        labels="results/{model}/data/test_labels.npy",
        samples="results/{model}/data/test_samples.npy",
    output:
        comparison="results/{model}/comparison.json",
        per_sample="results/{model}/per_sample.csv",
    log:
        "results/logs/compare/{model}.log",
    benchmark:
        "results/benchmarks/compare/{model}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        predictions=prediction_args,
        tolerances=model_tolerances,
        batch=config["compare"].get("batch_size", 4096),
        max_flipped=config["compare"].get("max_flipped", 100),
        rows=config["compare"].get("per_sample_rows", 10),
    shell:
        "python {input.script} --model {wildcards.model} --labels {input.labels} --samples {input.samples}"
        " {params.predictions} --reference savedmodel --tolerances {params.tolerances:q}"
        " --batch-size {params.batch} --max-flipped {params.max_flipped} --per-sample-rows {params.rows}"
        " --output {output.comparison} --per-sample {output.per_sample} > {log} 2>&1"
