# Compare every pair of backends over the whole test set, streaming, with verdicts against tolerances.


rule compare:
    """Every backend against the SavedModel over the whole test set, streaming: errors, top-1 agreement,
    accuracy, and a verdict per pair against the model's tolerances."""
    input:
        unpack(prediction_files),
        unpack(engine_records),
        image=container_input("tensorflow"),
        script=script("compare.py"),
        code=code_of("compare.py"),
        labels="results/{model}/data/test_labels.npy",
        samples="results/{model}/data/test_samples.npy",
        noise_floor="results/{model}/onnx_check.json",
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
    # lanes for a batch's scans, pairs and softmax checks; Snakemake lowers it to --cores. On 16 cores 8 took
    # 0.62-0.75 of 4's time and 16 about as long as 8 (docs/benchmarks.md, "Compare throughput")
    threads: 8
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        predictions=prediction_args,
        engines=engine_record_args,
        tolerances=model_tolerances,
        kind=output_kind,
        batch=config["compare"]["batch_size"],
        max_flipped=config["compare"]["max_flipped"],
        rows=config["compare"]["per_sample_rows"],
    shell:
        "python {input.script:q} --model {wildcards.model:q} --labels {input.labels:q}"
        " --samples {input.samples:q} {params.predictions:q} {params.engines:q}"
        " --reference savedmodel"
        " --tolerances {params.tolerances:q} --noise-floor {input.noise_floor:q}"
        " --output-kind {params.kind:q} --batch-size {params.batch:q}"
        " --max-flipped {params.max_flipped:q} --per-sample-rows {params.rows:q} --threads {threads:q}"
        " --output {output.comparison:q} --per-sample {output.per_sample:q} > {log:q} 2>&1"
