# The report: tables (Markdown, text and HTML), summary.json, and plots. The HTML tables and the plots are
# registered for `snakemake --report` (its viewer shows HTML and images; a Markdown entry could only be downloaded).
# Then the gate, which fails the run on the verdicts without taking the report with it.


rule report:
    """The report (Markdown, text, HTML), summary.json, plots and the pipeline's own costs, from every
    model's comparison (and benchmarks and localizations where they exist)."""
    input:
        image=container_input("tensorflow"),
        script=script("report.py"),
        code=code_of("report.py"),
        comparisons=expand("results/{model}/comparison.json", model=MODELS),
        samples=expand("results/{model}/data/test_samples.npy", model=MODELS),
        engines=engine_infos(),
        localizations=localizations_run,
        identities=identity_files(),
        scaling=scaling_files(),
        speed=["results/benchmarks.tsv"] if config["benchmark"]["enabled"] else [],
        costs_script=script("pipeline_costs.py"),
        costs_code=code_of("pipeline_costs.py"),
    output:
        markdown="results/report.md",
        html=report(
            "results/report.html",
            category="Comparison",
            caption="../docs/report-caption.rst",
            labels={"table": "comparison tables"},
        ),
        text="results/report.txt",
        summary="results/summary.json",
        costs="results/pipeline_costs.tsv",
        plots=report(
            directory("results/plots"),
            patterns=["{name}.png"],
            category="Plots",
            caption="../docs/report-caption-plots.rst",
            labels={"figure": "{name}"},
        ),
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
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
        runtime=30,
    params:
        # one list element per argument, so that :q quotes each path on its own
        comparisons=comparison_args,
        samples=sample_args,
        engines=engine_info_args,
        speed=speed_args,
        localizations=localization_args,
        identities=identity_report_args,
        scaling=scaling_report_args,
        benchmarks=benchmark_root,
        costs=costs_args,
        float_format=config["report"]["float_format"],
    shell:
        # The steps' own benchmark files exist once every upstream job has finished; they are read, not
        # declared, because Snakemake cannot take one rule's benchmark file as another's input.
        "python {input.costs_script:q} --root {params.benchmarks:q} {params.costs:q} --output {output.costs:q}"
        " > {log:q} 2>&1 && "
        "python {input.script:q} {params.comparisons:q} {params.samples:q} {params.engines:q} {params.speed:q}"
        " {params.localizations:q} {params.identities:q} {params.scaling:q}"
        " --float-format={params.float_format:q} --markdown {output.markdown:q} --html {output.html:q}"
        " --text {output.text:q} --summary {output.summary:q} --plots {output.plots:q}"
        " --pipeline-costs {output.costs:q} >> {log:q} 2>&1"


rule gate:
    """Fail the run on the verdicts in summary.json (mismatch, inconclusive: config report.fail_on_*), after the
    report exists. A rule of its own: Snakemake deletes a failed job's outputs, and this one's is only the marker.
    """
    input:
        image=container_input("tensorflow"),
        script=script("gate.py"),
        code=code_of("gate.py"),
        summary="results/summary.json",
        report="results/report.md",
    output:
        "results/gate.json",
    log:
        "results/logs/gate/gate.log",
    benchmark:
        "results/benchmarks/gate/gate.tsv"
    # Seconds of gathering results: on a cluster it runs on the submitting machine instead of queueing. Set on
    # the rule, not in a `localrules:` list, whose names a module's `use rule * as tv_*` would not rename.
    localrule: True
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        mismatch=(
            "--fail-on-mismatch"
            if config["report"]["fail_on_mismatch"]
            else "--no-fail-on-mismatch"
        ),
        inconclusive=(
            "--fail-on-inconclusive"
            if config["report"]["fail_on_inconclusive"]
            else "--no-fail-on-inconclusive"
        ),
    shell:
        "python {input.script:q} --summary {input.summary:q} --report {input.report:q}"
        " {params.mismatch:q} {params.inconclusive:q} --output {output:q} > {log:q} 2>&1"
