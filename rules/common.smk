# Helpers shared by the rules: config lookups, the backend names each model is predicted with, and paths.
import ast
import json
import math
import os
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

REPO = Path(workflow.basedir)
MODELS = list(config["models"])
TRAINED = [m for m in MODELS if "import" not in config["models"][m]]
IMPORTED = [m for m in MODELS if "import" in config["models"][m]]
PRECISIONS = config["tensorrt"]["precisions"]
TF_IMAGE = config["containers"]["tensorflow"]
TRT_IMAGE = config["containers"]["tensorrt"]
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
    if bench.get("enabled") and {"tensorrt", "tensorrt_cpp"} & set(
        bench.get("backends", [])
    ):
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
    baseline = bench["baseline"]  # the schema's default fills it in
    if bench.get("enabled") and baseline not in bench.get("backends", []):
        problems.append(
            f"benchmark.baseline is '{baseline}', which is not among benchmark.backends "
            f"({', '.join(bench.get('backends', []))}): the speed-ups would be empty"
        )
    if problems:
        raise WorkflowError("invalid config: " + "; ".join(problems))


check_config()


def repo_path(*parts):
    """A path in the repository, relative to the working directory: Snakemake records input paths, so a moved
    or copied checkout must not look like a new set of inputs."""
    return os.path.relpath(REPO.joinpath(*parts))


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
    """
    scripts = REPO / "scripts"
    todo = [scripts / program] + [scripts / m for m in loaded]
    seen = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += imported_modules(path)
    return sorted(os.path.relpath(p) for p in seen - {scripts / program})


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def model_cfg(w):
    return config["models"][w.model]


def dataset_cfg(w):
    return config["datasets"][model_cfg(w)["dataset"]]


def model_tolerances(w):
    merged = {k: dict(v) for k, v in config["compare"].get("tolerances", {}).items()}
    for precision, values in model_cfg(w).get("tolerances", {}).items():
        merged.setdefault(precision, {}).update(values)
    return as_json(merged)


def prediction_names():
    """Backend names as they appear in predictions/, comparison.json and the report."""
    names = []
    for backend in config["backends"]:
        if backend == "tensorrt":
            names += [f"tensorrt_{p}" for p in PRECISIONS]
        elif backend == "tensorrt_cpp":
            formats = config["cpp"].get("input_formats", ["npy"])
            for p in PRECISIONS:
                names += [
                    f"tensorrt_cpp_{p}" if f == "npy" else f"tensorrt_cpp_{f}_{p}"
                    for f in formats
                ]
        else:
            names.append(backend)
    return names


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
        if n.startswith("tensorrt_")
    }


def engine_record_args(w, input):
    return [
        f"--engine-info={n}={input[f'engine_{n}']}"
        for n in prediction_names()
        if n.startswith("tensorrt_")
    ]


def costs_args(w):
    """pipeline_costs' arguments: the configured models and the steps run per model (read from the rules, so a new
    rule needs no entry here), so benchmark files of models since removed from the config are left out.
    """
    per_model = sorted(r.name for r in workflow.rules if "model" in r.wildcard_names)
    return [f"--model={m}" for m in MODELS] + [
        f"--per-model-step={s}" for s in per_model
    ]


def localizations_run(w):
    """The localization.json files the user asked for, since localize runs on demand only. The report includes
    those that exist, and is redone when one is added or changes."""
    paths = expand("results/{model}/localization.json", model=MODELS)
    return [p for p in paths if os.path.exists(p)]


def engines_wanted():
    return config["tensorrt"].get("build_engines", True) or bool(
        {"tensorrt", "tensorrt_cpp"} & set(config["backends"])
    )


def engine_infos():
    if not engines_wanted():
        return []
    return expand(
        "results/{model}/engines/{precision}.json", model=MODELS, precision=PRECISIONS
    )


def final_targets():
    targets = ["results/report.md", "results/summary.json", "results/gate.json"]
    if config["tensorrt"].get("build_engines", True):
        targets += expand(
            "results/{model}/engines/{precision}.trt",
            model=MODELS,
            precision=PRECISIONS,
        )
    if config["benchmark"].get("enabled"):
        targets += ["results/benchmarks.tsv"]
    return targets


wildcard_constraints:
    model="|".join(MODELS),
    precision="fp32|tf32|fp16",
