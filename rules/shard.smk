# Several GPUs (config `gpus` > 1): the TensorRT predictions (Python and C++) split into one shard of whole batches
# per GPU, each a job with `gpu=1`, merged into the backend's prediction file, bit-identical to an unsharded run;
# and the cross-GPU identity check. With one GPU none of this is planned: predict_tensorrt* run as before.
# A shard's GPU: under SLURM the one its job was given (--gres=gpu:1 sets CUDA_VISIBLE_DEVICES); on one machine
# its slot, the shard index modulo `gpus`, picks one of the visible GPUs (docs/cluster.md, "Several GPUs").


wildcard_constraints:
    shard="[0-9]+",


# Which rule makes predictions/tensorrt*_{precision}.npy: the merge of the shards with several GPUs, else the
# unsharded step (with one GPU a shard would be the whole set, plus a copy).
if GPUS > 1:

    ruleorder: merge_tensorrt_shards > predict_tensorrt
    ruleorder: merge_tensorrt_cpp_shards > predict_tensorrt_cpp

else:

    ruleorder: predict_tensorrt > merge_tensorrt_shards
    ruleorder: predict_tensorrt_cpp > merge_tensorrt_cpp_shards


rule predict_tensorrt_shard:
    """One GPU's share of TensorRT's Python predictions: shard {shard} of `gpus`, whole batches."""
    input:
        image=container_input("tensorrt"),
        script=script("predict.py"),
        code=code_of("predict.py", "trtverify/backends/tensorrt.py"),
        artifact="results/{model}/engines/{precision}.trt",
        engine_info="results/{model}/engines/{precision}.json",
        samples="results/{model}/data/test_samples.npy",
    output:
        predictions=temp(
            "results/{model}/predictions/shards/tensorrt_{precision}/{shard}.npy"
        ),
        info=temp(
            "results/{model}/predictions/shards/tensorrt_{precision}/{shard}.json"
        ),
    log:
        "results/logs/predict_tensorrt_shard/{model}_{precision}_{shard}.log",
    benchmark:
        "results/benchmarks/predict_tensorrt_shard/{model}_{precision}_{shard}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: BACKEND["tensorrt"].threads
    resources:
        **BACKEND["tensorrt"].resources,
    params:
        batch=config["predict"]["batch_size"],
        shard=shard_of_gpus,
        slot=gpu_slot,
    shell:
        "python {input.script:q} --backend tensorrt --artifact {input.artifact:q} --samples {input.samples:q}"
        " --engine-info {input.engine_info:q} --batch-size {params.batch:q} --shard {params.shard:q}"
        " --device-slot {params.slot:q} --output {output.predictions:q} --info {output.info:q} > {log:q} 2>&1"


rule predict_tensorrt_cpp_shard:
    """One GPU's share of the C++ program's predictions (from .npy): shard {shard} of `gpus`."""
    input:
        image=container_input("tensorrt"),
        script=script("predict_cpp.py"),
        code=code_of("predict_cpp.py"),
        binary="results/bin/trt_infer",
        engine="results/{model}/engines/{precision}.trt",
        engine_info="results/{model}/engines/{precision}.json",
        samples="results/{model}/data/test_samples.npy",
    output:
        predictions=temp(
            "results/{model}/predictions/shards/tensorrt_cpp_{precision}/{shard}.npy"
        ),
        info=temp(
            "results/{model}/predictions/shards/tensorrt_cpp_{precision}/{shard}.json"
        ),
    log:
        "results/logs/predict_tensorrt_cpp_shard/{model}_{precision}_{shard}.log",
    benchmark:
        "results/benchmarks/predict_tensorrt_cpp_shard/{model}_{precision}_{shard}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: BACKEND["tensorrt_cpp"].threads
    resources:
        **BACKEND["tensorrt_cpp"].resources,
    params:
        shard=shard_of_gpus,
        slot=gpu_slot,
    shell:
        "python {input.script:q} --binary {input.binary:q} --engine {input.engine:q} --input {input.samples:q}"
        " --engine-info {input.engine_info:q} --samples {input.samples:q} --shard {params.shard:q}"
        " --device-slot {params.slot:q} --output {output.predictions:q} --info {output.info:q} > {log:q} 2>&1"


rule merge_tensorrt_shards:
    """The shards of TensorRT's Python predictions, in order, streamed into its prediction file."""
    input:
        image=container_input("tensorrt"),
        script=script("merge_shards.py"),
        code=code_of("merge_shards.py"),
        samples="results/{model}/data/test_samples.npy",
        shards=shard_files("tensorrt", ".npy"),
        infos=shard_files("tensorrt", ".json"),
    output:
        predictions="results/{model}/predictions/tensorrt_{precision}.npy",
        info="results/{model}/predictions/tensorrt_{precision}.json",
    log:
        "results/logs/merge_tensorrt_shards/{model}_{precision}.log",
    benchmark:
        "results/benchmarks/merge_tensorrt_shards/{model}_{precision}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        shards=shard_args,
    shell:
        "python {input.script:q} --samples {input.samples:q} {params.shards:q}"
        " --output {output.predictions:q} --info {output.info:q} > {log:q} 2>&1"


use rule merge_tensorrt_shards as merge_tensorrt_cpp_shards with:
    input:
        image=container_input("tensorrt"),
        script=script("merge_shards.py"),
        code=code_of("merge_shards.py"),
        samples="results/{model}/data/test_samples.npy",
        shards=shard_files("tensorrt_cpp", ".npy"),
        infos=shard_files("tensorrt_cpp", ".json"),
    output:
        predictions="results/{model}/predictions/tensorrt_cpp_{precision}.npy",
        info="results/{model}/predictions/tensorrt_cpp_{precision}.json",
    log:
        "results/logs/merge_tensorrt_cpp_shards/{model}_{precision}.log",
    benchmark:
        "results/benchmarks/merge_tensorrt_cpp_shards/{model}_{precision}.tsv"


rule gpu_identity:
    """Every engine of a model on every GPU, the first K samples, bit for bit against the first GPU. One job
    holding all `gpus` GPUs, so that each run surely is on another GPU (on SLURM: --gres=gpu:N).
    """
    input:
        unpack(identity_engines),
        image=container_input("tensorrt"),
        script=script("gpu_identity.py"),
        code=code_of("gpu_identity.py", "trtverify/backends/tensorrt.py"),
        samples="results/{model}/data/test_samples.npy",
    output:
        "results/{model}/gpu_identity.json",
    log:
        "results/logs/gpu_identity/{model}.log",
    benchmark:
        "results/benchmarks/gpu_identity/{model}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPUS,
        gres=f"gpu:{GPUS}",
    params:
        engines=identity_args,
        first=config["gpu_identity_samples"],
        devices=GPUS,
    shell:
        "python {input.script:q} --backend tensorrt {params.engines:q} --samples {input.samples:q}"
        " --first {params.first:q} --devices {params.devices:q} --output {output:q} > {log:q} 2>&1"


rule benchmark_scaling:
    """Throughput of TensorRT on all `gpus` GPUs at once against `gpus` x one GPU alone (scaling efficiency), at
    the largest benchmark batch. One job holding every GPU, as the identity check."""
    input:
        image=container_input("tensorrt"),
        script=script("bench_scaling.py"),
        code=code_of("bench_scaling.py", "trtverify/backends/tensorrt.py"),
        artifact="results/{model}/engines/{precision}.trt",
        samples="results/{model}/data/test_samples.npy",
    output:
        "results/{model}/scaling_{precision}.json",
    log:
        "results/logs/benchmark_scaling/{model}_{precision}.log",
    benchmark:
        "results/benchmarks/benchmark_scaling/{model}_{precision}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPUS,
        gres=f"gpu:{GPUS}",
    params:
        batch=max(config["benchmark"]["batch_sizes"]),
        gpus=GPUS,
        warmup=config["benchmark"]["warmup"],
        iterations=config["benchmark"]["iterations"],
    shell:
        "python {input.script:q} --backend tensorrt --artifact {input.artifact:q} --samples {input.samples:q}"
        " --batch {params.batch:q} --gpus {params.gpus:q} --warmup {params.warmup:q}"
        " --iterations {params.iterations:q} --output {output:q} > {log:q} 2>&1"
