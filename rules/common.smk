# Helpers shared by the rules: config lookups, the backend names each model is predicted with, and paths.
import ast
import importlib.util
import json
import math
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# REPO, the checkout, comes from rules/config.smk (included first).
MODELS = list(config["models"])
TRAINED = [m for m in MODELS if "import" not in config["models"][m]]
IMPORTED = [m for m in MODELS if "import" in config["models"][m]]
PRECISIONS = config["tensorrt"]["precisions"]


def load_registry():
    """scripts/trtverify/backends/registry.py, loaded by its path: the package's __init__ would import numpy."""
    path = REPO / "scripts" / "trtverify" / "backends" / "registry.py"
    spec = importlib.util.spec_from_file_location("trtverify_backend_registry", path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = (
        loaded  # dataclasses look their module up while the class is made
    )
    spec.loader.exec_module(loaded)
    return loaded


REGISTRY = load_registry()
BACKEND = REGISTRY.BY_NAME


GENERIC_BACKENDS = [b for b in REGISTRY.BACKENDS if b.generic_rule]


def generic_suffix(entry):
    """What a generic rule's paths add after the model: the precision of a backend that has one per precision."""
    return "_{precision}" if entry.per_precision else ""


def generic_stem(entry):
    return entry.name + generic_suffix(entry)


def engine_backends(names):
    """The backends among config names (`backends`, `benchmark.backends`) that run an engine."""
    return [n for n in names if n in BACKEND and BACKEND[n].needs_engine]


# What a module's `prefix:` puts before the workflow's outputs (nothing when trtverify is the main workflow).
# Snakemake moves the paths rules declare; code that opens a path itself must add it. Read while this file is
# parsed: later, in a job's input function, the module's modifier is no longer the current one.
PREFIX = os.path.dirname(workflow.modifier.path_modifier.replace_prefix("results"))


def container_image(stack):
    """The image of `stack` for the container directive, which a module's prefix does not move: a relative image
    path is taken as the module takes the rules' inputs, so it is the very file the jobs list as their input.
    """
    image = config["containers"][stack]
    return (
        image if "://" in image or os.path.isabs(image) else os.path.join(PREFIX, image)
    )


TF_IMAGE = container_image("tensorflow")
TRT_IMAGE = container_image("tensorrt")
NEVER = "(?!x)x"  # a wildcard constraint no name matches, for a rule with no models


def non_finite(value, key=""):
    """Keys holding NaN or infinity (YAML .nan, .inf): jsonschema's minimum/maximum let NaN through, and a NaN
    tolerance would make its check vacuous."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{key} is {value}, but it must be a finite number"]
    if isinstance(value, dict):
        return [
            p
            for k, v in value.items()
            for p in non_finite(v, f"{key}.{k}" if key else k)
        ]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{key}[{i}]")]
    return []


def check_cmake_args(args):
    try:
        shlex.split(args)
    except (
        ValueError
    ) as exc:  # shlex's only complaint: an unbalanced quote or a trailing backslash
        return [
            f"cpp.cmake_args is {args!r}, which a shell cannot split ({exc}): balance its quotes"
        ]
    return []


def check_config():
    """What the schema cannot say: finite numbers, cross-references between entries."""
    problems = non_finite(config)[:5] + check_cmake_args(config["cpp"]["cmake_args"])
    for name, model in config["models"].items():
        if "import" not in model and model["dataset"] not in config["datasets"]:
            problems.append(
                f"models.{name}.dataset is '{model['dataset']}', which is not an entry of datasets "
                f"({', '.join(config['datasets'])})"
            )
    prof = config["tensorrt"]["profile"]
    if not prof["min_batch"] <= prof["opt_batch"] <= prof["max_batch"]:
        problems.append("tensorrt.profile needs min_batch <= opt_batch <= max_batch")
    bench = config["benchmark"]
    if bench["enabled"] and engine_backends(bench["backends"]):
        outside = [
            b
            for b in bench["batch_sizes"]
            if not prof["min_batch"] <= b <= prof["max_batch"]
        ]
        if outside:
            problems.append(
                f"benchmark.batch_sizes {outside} lie outside tensorrt.profile "
                f"[{prof['min_batch']}, {prof['max_batch']}]: the engines cannot run them"
            )
    baseline = bench["baseline"]
    if bench["enabled"] and baseline not in bench["backends"]:
        problems.append(
            f"benchmark.baseline is '{baseline}', which is not among benchmark.backends "
            f"({', '.join(bench['backends'])}): the speed-ups would be empty"
        )
    if problems:
        raise WorkflowError("invalid config: " + "; ".join(problems))


check_config()


def repo_path(*parts):
    """A path in the repository, relative to the working directory: Snakemake records input paths, so a moved
    or copied checkout must not look like a new set of inputs. Marked local, so that neither a module's `prefix:`
    (which prefixes relative paths, as it should the results) nor a default storage provider moves it: the
    repository's own files are where they are."""
    return local(os.path.relpath(REPO.joinpath(*parts)))


def script(name):
    """A step program: rules list it as an input, so editing it reruns the step."""
    return repo_path("scripts", name)


def imported_modules(path):
    """The modules of scripts/ that the file at ``path`` imports (at any depth of its code: lazy imports count),
    read with ast, since importing would need the step's frameworks. A package's __init__.py counts, as Python
    runs it before any of its modules; names from elsewhere (numpy, tensorrt) are not ours and are left out.
    """
    root = REPO / "scripts"
    found = set()
    package = path.parent.relative_to(root).parts
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1] if node.level else [])
            base += node.module.split(".") if node.module else []
            names = [base] + [base + [alias.name] for alias in node.names]
        else:
            continue
        for parts in names:
            for depth in range(1, len(parts) + 1):
                stem = root.joinpath(*parts[:depth])
                for candidate in (stem / "__init__.py", stem.with_suffix(".py")):
                    if candidate.is_file():
                        found.add(candidate)
    return found


def code_of(program, *loaded):
    """The modules of scripts/ a step program runs (the program itself is the rule's `script` input): all it
    imports, transitively, sorted. Computed rather than listed, so that editing a module reruns exactly the steps
    that use it. ``loaded``: modules the program loads by name at run time (a backend), which no parser can see.
    A module's C source beside it (kernels.c, which kernels.py compiles) is code of the step too.
    """
    scripts = REPO / "scripts"
    todo = [scripts / program] + [scripts / m for m in loaded]
    seen = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += imported_modules(path)
    seen |= {p.with_suffix(".c") for p in seen if p.with_suffix(".c").is_file()}
    return sorted(repo_path(p.relative_to(REPO)) for p in seen - {scripts / program})


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def model_cfg(w):
    return config["models"][w.model]


def dataset_cfg(w):
    return config["datasets"][model_cfg(w)["dataset"]]


def model_tolerances(w):
    merged = {k: dict(v) for k, v in config["compare"]["tolerances"].items()}
    for precision, values in model_cfg(w)["tolerances"].items():
        merged.setdefault(precision, {}).update(values)
    return as_json(merged)


# Input and params functions of the rules (one per value, so a rule reads as its inputs' names).


def dataset_archive(w):
    """A local dataset archive (CIFAR-10's tarball) is an input of training: a replaced archive retrains. The
    user's file, where the config says (marked local: a module's prefix moves outputs, not the user's files).
    """
    archive = dataset_cfg(w)["archive"]
    return local(archive) if archive else []


def dataset_json(w):
    return as_json(dataset_cfg(w))


def architecture_json(w):
    return as_json(model_cfg(w)["architecture"])


def training_json(w):
    return as_json(model_cfg(w)["training"])


def num_test_samples(w):
    return model_cfg(w)["num_test_samples"]


def output_kind(w):
    return model_cfg(w)["output_kind"]


def imported(key):
    """The input function of one file of a model the user imports (models.{model}.import.{key}), where the config
    says (marked local, as dataset_archive's)."""

    def path(w):
        return local(model_cfg(w)["import"][key])

    return path


def cmake_source(w, input):
    """The folder CMake configures: the one holding the listed CMakeLists.txt."""
    return os.path.dirname(input.cmakelists)


def comparison_args(w, input):
    """A list, so that {params.x:q} quotes each argument on its own (as for the other *_args)."""
    return [f"--comparison={m}={c}" for m, c in zip(MODELS, input.comparisons)]


def sample_args(w, input):
    return [f"--samples={m}={s}" for m, s in zip(MODELS, input.samples)]


def engine_info_args(w, input):
    return [f"--engine-info={e}" for e in input.engines]


def speed_args(w, input):
    return [f"--speed={s}" for s in input.speed]


def localization_args(w, input):
    return [f"--localization={Path(p).parent.name}={p}" for p in input.localizations]


def benchmark_root(w, output):
    """Where the steps' benchmark files lie: beside the report's own outputs, so a module's `prefix:` (which
    moves both) keeps them together."""
    return os.path.join(os.path.dirname(output.costs), "benchmarks")


def prediction_names():
    """Backend names as they appear in predictions/, comparison.json and the report."""
    return REGISTRY.prediction_names(
        config["backends"], config["cpp"]["input_formats"], PRECISIONS
    )


def prediction_files(w):
    return {n: f"results/{w.model}/predictions/{n}.npy" for n in prediction_names()}


def prediction_args(w, input):
    """A list, so that a rule's {params.predictions:q} quotes each argument on its own."""
    return [a for n in prediction_names() for a in ("--prediction", f"{n}={input[n]}")]


def engine_records(w):
    """The build record of each TensorRT backend's engine: compare judges a backend at the precision its engine was
    really allowed (an fp32 engine with TF32 allowed is judged as tf32)."""
    return {
        f"engine_{n}": f"results/{w.model}/engines/{n.rsplit('_', 1)[1]}.json"
        for n in prediction_names()
        if REGISTRY.backend_of(n).needs_engine
    }


def engine_record_args(w, input):
    return [
        f"--engine-info={n}={input[f'engine_{n}']}"
        for n in prediction_names()
        if REGISTRY.backend_of(n).needs_engine
    ]


def costs_args(w, output):
    """pipeline_costs' arguments: the configured models and the steps run per model (read from the rules, so a new
    rule needs no entry here), so benchmark files of models since removed from the config are left out. A step is
    named by its benchmark folder, which a module's renaming of the rules (`use rule * as tv_*`) leaves alone; the
    rules of a workflow using this one as a module keep their benchmarks elsewhere and are left out.
    """
    root = Path(benchmark_root(w, output))
    per_model = sorted(
        Path(str(r.benchmark)).relative_to(root).parts[0]
        for r in workflow.rules
        if "model" in r.wildcard_names
        and r.benchmark
        and Path(str(r.benchmark)).is_relative_to(root)
    )
    return [f"--model={m}" for m in MODELS] + [
        f"--per-model-step={s}" for s in per_model
    ]


def localize_trt_infer(w):
    """The C++ program, when the tensorrt_cpp backend is configured: localization then adds the TensorRT Python ->
    C++ hop (each debug engine run by both, compared bit for bit)."""
    return ["results/bin/trt_infer"] if "tensorrt_cpp" in config["backends"] else []


def localize_trt_infer_flag(w):
    return ["--trt-infer"] if localize_trt_infer(w) else []


def localizations_run(w):
    """The localization.json files the user asked for, since localize runs on demand only. The report includes
    those that exist, and is redone when one is added or changes."""
    paths = expand("results/{model}/localization.json", model=MODELS)
    return [p for p in paths if os.path.exists(os.path.join(PREFIX, p))]


def engines_wanted():
    return config["tensorrt"]["build_engines"] or bool(
        engine_backends(config["backends"])
    )


def engine_infos():
    if not engines_wanted():
        return []
    return expand(
        "results/{model}/engines/{precision}.json", model=MODELS, precision=PRECISIONS
    )


def final_targets():
    targets = ["results/report.md", "results/summary.json", "results/gate.json"]
    if config["tensorrt"]["build_engines"]:
        targets += expand(
            "results/{model}/engines/{precision}.trt",
            model=MODELS,
            precision=PRECISIONS,
        )
    if config["benchmark"]["enabled"]:
        targets += ["results/benchmarks.tsv"]
    return targets


wildcard_constraints:
    model="|".join(MODELS),
    precision="fp32|tf32|fp16",


# Several GPUs (rules/shard.smk): how many, and the inputs of the merge and identity rules.


def gpu_count():
    """config `gpus`, with auto resolved while the workflow is planned: the GPUs visible here (CUDA_VISIBLE_DEVICES,
    else nvidia-smi -L; trtverify.devices), 1 when none. On a cluster, plan with the count of a GPU node instead.
    """
    if config["gpus"] != "auto":
        return config["gpus"]
    sys.path.insert(0, str(REPO / "scripts"))
    from trtverify.devices import visible_devices

    return max(1, len(visible_devices()))


GPUS = gpu_count()


def shard_of_gpus(w):
    """predict's --shard: shard {shard} of as many as there are GPUs."""
    return f"{w.shard}/{GPUS}"


def gpu_slot(w):
    """The GPU a shard runs on when Snakemake runs it on this machine: its index modulo the GPUs, so the shards of one
    prediction are on different GPUs. Snakemake gives a job a count of `gpu`, not a device: shards of two predictions
    may share a GPU at once while another waits (slower, same bits). Under SLURM the job's own GPU is used instead.
    """
    return int(w.shard) % GPUS


def shard_files(program, suffix):
    """The input function of a merge: every shard's predictions (suffix .npy) or records (.json), in order."""

    def files(w):
        return expand(
            "results/{model}/predictions/shards/{program}_{precision}/{shard}{suffix}",
            model=w.model,
            program=program,
            precision=w.precision,
            shard=range(GPUS),
            suffix=suffix,
        )

    return files


def shard_args(w, input):
    """A list, so that {params.x:q} quotes each path on its own."""
    return [
        a
        for npy, info in zip(input.shards, input.infos)
        for a in ("--shard", npy, "--shard-info", info)
    ]


def identity_wanted():
    return GPUS > 1 and "tensorrt" in config["backends"]


def identity_engines(w):
    return {
        f"{kind}_{p}": f"results/{w.model}/engines/{p}.{ext}"
        for p in PRECISIONS
        for kind, ext in (("engine", "trt"), ("record", "json"))
    }


def identity_args(w, input):
    return [
        f"--engine{flag}={p}={input[f'{kind}_{p}']}"
        for p in PRECISIONS
        for flag, kind in (("", "engine"), ("-info", "record"))
    ]


def identity_files():
    """Every model's gpu_identity.json, where the check runs (several GPUs, a TensorRT backend)."""
    return (
        expand("results/{model}/gpu_identity.json", model=MODELS)
        if identity_wanted()
        else []
    )


def identity_report_args(w, input):
    return [f"--gpu-identity={m}={p}" for m, p in zip(MODELS, input.identities)]


def scaling_files():
    """The scaling benchmark's records, where TensorRT is benchmarked on several GPUs (with one, all is the one:
    the benchmark proper times it; scripts/bench_scaling.py --gpus 1 runs it by hand).
    """
    bench = config["benchmark"]
    if not (GPUS > 1 and bench["enabled"] and "tensorrt" in bench["backends"]):
        return []
    return expand(
        "results/{model}/scaling_{precision}.json", model=MODELS, precision=PRECISIONS
    )


def scaling_report_args(w, input):
    """report's --scaling NAME=PATH, NAME being model/precision (scaling_files' order)."""
    names = [f"{m}/{p}" for m in MODELS for p in PRECISIONS]
    return [f"--scaling={n}={p}" for n, p in zip(names, input.scaling)]
