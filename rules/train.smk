# Train the reference CNN (or import the user's own SavedModel) and write the fixed test data, also as CSV.


rule train:
    """Train the reference CNN of models.{model} on its dataset and write the fixed test samples and labels
    every backend then predicts."""
    input:
        image=container_input("tensorflow"),
        script=script("train.py"),
        code=code_of("train.py"),
        archive=dataset_archive,
    output:
        saved_model=directory("results/{model}/saved_model"),
        samples="results/{model}/data/test_samples.npy",
        labels="results/{model}/data/test_labels.npy",
        metrics="results/{model}/train_metrics.json",
    log:
        "results/logs/train/{model}.log",
    benchmark:
        "results/benchmarks/train/{model}.tsv"
    wildcard_constraints:
        model="|".join(TRAINED) or NEVER,
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        dataset=dataset_json,
        architecture=architecture_json,
        training=training_json,
        num_test_samples=num_test_samples,
    shell:
        "python {input.script:q} --dataset {params.dataset:q} --architecture {params.architecture:q}"
        " --training {params.training:q} --num-test-samples {params.num_test_samples:q} --threads {threads:q}"
        " --saved-model {output.saved_model:q} --samples {output.samples:q} --labels {output.labels:q}"
        " --metrics {output.metrics:q} > {log:q} 2>&1"


rule import_model:
    """Take the user's own SavedModel and test data (models.{model}.import) into results/, checked, in place
    of training."""
    input:
        image=container_input("tensorflow"),
        script=script("import_model.py"),
        code=code_of("import_model.py", "trtverify/backends/savedmodel.py"),
        saved_model=imported("saved_model"),
        samples=imported("samples"),
        labels=imported("labels"),
    output:
        saved_model=directory("results/{model}/saved_model"),
        samples="results/{model}/data/test_samples.npy",
        labels="results/{model}/data/test_labels.npy",
        metrics="results/{model}/train_metrics.json",
    log:
        "results/logs/import_model/{model}.log",
    benchmark:
        "results/benchmarks/import_model/{model}.tsv"
    wildcard_constraints:
        model="|".join(IMPORTED) or NEVER,
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        num_test_samples=num_test_samples,
    shell:
        "python {input.script:q} --saved-model-in={input.saved_model:q} --samples-in={input.samples:q}"
        " --labels-in={input.labels:q} --saved-model {output.saved_model:q} --samples {output.samples:q}"
        " --labels {output.labels:q} --metrics {output.metrics:q}"
        " --num-test-samples {params.num_test_samples:q} > {log:q} 2>&1"


rule export_csv:
    """The test samples and labels as CSV, the input the C++ program also reads (as the original guide's)."""
    input:
        image=container_input("tensorflow"),
        script=script("export_csv.py"),
        code=code_of("export_csv.py"),
        samples="results/{model}/data/test_samples.npy",
        labels="results/{model}/data/test_labels.npy",
    output:
        samples="results/{model}/data/test_samples.csv",
        labels="results/{model}/data/test_labels.csv",
    log:
        "results/logs/export_csv/{model}.log",
    benchmark:
        "results/benchmarks/export_csv/{model}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    container:
        TF_IMAGE
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python {input.script:q} --samples {input.samples:q} --labels {input.labels:q}"
        " --samples-csv {output.samples:q} --labels-csv {output.labels:q} > {log:q} 2>&1"
