# The final rule: tables (Markdown, text and HTML), summary.json, and plots. The HTML tables and the plots are
# registered for `snakemake --report` (its viewer shows HTML and images; a Markdown entry could only be downloaded).


rule report:
    input:
        image=container_input("tensorflow"),
        script=script("report.py"),
        code=lib("tables.py", "metrics.py", "sketch.py", "tolerance.py"),
        comparisons=expand("results/{model}/comparison.json", model=MODELS),
        samples=expand("results/{model}/data/test_samples.npy", model=MODELS),
        engines=engine_infos(),
        speed=["results/benchmarks.tsv"] if config["benchmark"].get("enabled") else [],
        costs_script=script("pipeline_costs.py"),
    output:
        markdown="results/report.md",
        html=report(
            "results/report.html",
            category="Comparison",
            caption="../docs/report-caption.rst",
        ),
        text="results/report.txt",
        summary="results/summary.json",
        costs="results/pipeline_costs.tsv",
        plots=report(
            directory("results/plots"),
            patterns=["{name}.png"],
            category="Plots",
            caption="../docs/report-caption.rst",
        ),
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        comparisons=lambda w, input: " ".join(
            f"--comparison {m}={c}" for m, c in zip(MODELS, input.comparisons)
        ),
        samples=lambda w, input: " ".join(
            f"--samples {m}={s}" for m, s in zip(MODELS, input.samples)
        ),
        engines=lambda w, input: " ".join(f"--engine-info {e}" for e in input.engines),
        speed=lambda w, input: " ".join(f"--speed {s}" for s in input.speed),
        fail=(
            "--fail-on-mismatch"
            if config["report"].get("fail_on_mismatch", True)
            else "--no-fail-on-mismatch"
        ),
        float_format=config["report"].get("float_format", ".3g"),
    shell:
        # The steps' own benchmark files exist once every upstream job has finished; they are read, not
        # declared, because Snakemake cannot take one rule's benchmark file as another's input.
        "python {input.costs_script} --root results/benchmarks --output {output.costs} > {log} 2>&1 && "
        "python {input.script} {params.comparisons} {params.samples} {params.engines} {params.speed} {params.fail}"
        " --float-format={params.float_format:q} --markdown {output.markdown} --html {output.html}"
        " --text {output.text} --summary {output.summary} --plots {output.plots} --pipeline-costs {output.costs} >> {log} 2>&1"
