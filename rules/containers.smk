# The Apptainer images as artifacts of the workflow, built from their pinned definitions (rules/common_containers.smk
# has the helpers: which jobs depend on which image, and the check that stops a run with an unusable image).


rule build_container:
    """An Apptainer image built from its pinned definition (envs/containers/{stack}.def, written from
    envs/lock.yaml), for the jobs that run in it."""
    input:
        definition=repo_path("envs", "containers", "{stack}.def"),
    output:
        image=BUILT_IMAGE,
    log:
        "results/logs/build_container/{stack}.log",
    benchmark:
        "results/benchmarks/build_container/{stack}.tsv"
    wildcard_constraints:
        stack="|".join(STACKS),
    conda:
        "../envs/apptainer.yaml"
    container:
        None
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        # Runs on the host (no container of its own); Apptainer builds unprivileged with --fakeroot where root is
        # not available. --force: a stale image from an interrupted build is replaced.
        "apptainer build --force {output.image:q} {input.definition:q} > {log:q} 2>&1"
