"""config/schema.yaml is the one place of the config's defaults: no program of scripts/ restates one.

The rule, precise enough to fail on a real restatement and to leave unrelated literals alone: a *config key name*
is the last part of a schema key that has a ``default`` (``max_flipped`` of ``compare.max_flipped``). In any module
under scripts/ (parsed with ast), a default appears twice when
  (a) an argparse option named after a config key (``--max-flipped``; dashes for underscores) has a literal
      ``default=`` equal to a schema default of that name: the option must take it from the schema
      (``trtverify.schema.parse_with_defaults``, which reads it only when the option is left out) or be required;
      the same for a key the schema gives no default, whose value a config must set (``--opset``), when the
      literal equals the shipped config.yaml's: that option is required;
  (b) ``.get("key", literal)`` or ``.get("key") or literal`` gives a config key a literal fallback, whatever its
      value (a fallback that differs is worse: the ONNX Runtime providers' once did), and whether or not the
      schema has a default for it (if not, the default belongs there: ``trtverify.schema.Entry`` reads it);
  (c) a module-level constant whose name ends with the key's name in capitals (``DEFAULT_WORKSPACE_MIB``) holds a
      literal equal to its schema default;
  (d) a function's parameter named after a config key, or after one by a known alias (ALIASES: ``per_sample_limit``
      for ``per_sample_rows``, ``override`` for ``output_kind``, ``prefer`` for ``flavour``), has a literal default
      equal to a schema default of that key (``tables.render(float_format=".3g")``,
      ``metrics.compare(batch_size=4096)``): such a parameter has no default, and every program passes the config's
      value. A parameter that is a library's own granularity rather than the config value takes another name, or a
      named constant that no schema default equals.
The rules' files are held to the same by tests/test_rules_style.py (no `.get(` at all).
"""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from conftest import REPO, run_script
from trtverify.schema import schema_default

# parameter name -> the config key name it stands for, where the two differ (rule d)
ALIASES = {"per_sample_limit": "per_sample_rows", "override": "output_kind", "prefer": "flavour"}


def schema_defaults() -> dict[str, list[Any]]:
    """Config key name -> the schema defaults of the keys of that name (batch_size: predict's and compare's); a
    value's key without a default maps to [] (rule b holds for it too)."""
    found: dict[str, list[Any]] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, dict):
            if name and ("default" in node or not ({"properties", "additionalProperties"} & set(node))):
                found.setdefault(name, []).extend([node["default"]] if "default" in node else [])
            for key, sub in (node.get("properties") or {}).items():
                walk(sub, key)
            walk(node.get("additionalProperties"), "")

    walk(yaml.safe_load((REPO / "config" / "schema.yaml").read_text()), "")
    return found


def shipped_values() -> dict[str, list[Any]]:
    """Config key name -> config.yaml's values of the keys of that name that the schema gives no default (a
    config must set them: onnx.opset, tensorrt.profile's batches). A program's literal default equal to one is the
    shipped value restated: the rules always pass the key, so the option is required (rule a)."""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    found: dict[str, list[Any]] = {}

    def walk(node: Any, value: Any, name: str) -> None:
        if not isinstance(node, dict) or "default" in node:
            return
        properties, entries = node.get("properties") or {}, node.get("additionalProperties")
        entries = entries if isinstance(entries, dict) else None
        if isinstance(value, dict) and (properties or entries):
            for key, sub in value.items():
                walk(properties.get(key, entries), sub, key)
        elif name:
            found.setdefault(name, []).append(value)

    walk(schema, yaml.safe_load((REPO / "config.yaml").read_text()), "")
    return found


def literal(node: ast.AST | None) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node) if node is not None else None
    except ValueError:
        return False, None


def parameter_defaults(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[tuple[ast.arg, ast.expr]]:
    """(parameter, default) of every parameter of ``node`` that has a default."""
    positional = node.args.posonlyargs + node.args.args
    yield from zip(positional[len(positional) - len(node.args.defaults):], node.args.defaults)
    yield from ((a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None)


def restated_parameters(node: ast.FunctionDef | ast.AsyncFunctionDef, defaults: dict[str, list[Any]]) -> Iterator[str]:
    for arg, default in parameter_defaults(node):
        ok, value = literal(default)
        if ok and value in defaults.get(ALIASES.get(arg.arg, arg.arg), []):
            yield f"{node.lineno}: parameter {arg.arg} of {node.name} defaults to {value!r}"


def restated(source: str, defaults: dict[str, list[Any]]) -> Iterator[str]:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from restated_parameters(node, defaults)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            names = [a.value[2:].replace("-", "_") for a in node.args
                     if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
            for kw in node.keywords:
                ok, value = literal(kw.value)
                if kw.arg == "default" and ok and any(value in defaults.get(n, []) for n in names):
                    yield f"{node.lineno}: option {names[0]} defaults to {value!r}"
        fallback = None
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get" and len(node.args) == 2:
            fallback = node
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and isinstance(node.values[0], ast.Call) \
                and getattr(node.values[0].func, "attr", None) == "get" and literal(node.values[1])[0]:
            fallback = node.values[0]
        if fallback is not None and isinstance(fallback.args[0], ast.Constant) and fallback.args[0].value in defaults \
                and (len(fallback.args) == 1 or literal(fallback.args[1])[0]):
            yield f"{node.lineno}: a literal fallback for {fallback.args[0].value}"
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
            ok, value = literal(stmt.value)
            for key, values in defaults.items():
                if ok and stmt.targets[0].id.endswith(key.upper()) and value in values:
                    yield f"{stmt.lineno}: constant {stmt.targets[0].id} = {value!r}"


def test_the_check_finds_what_it_forbids() -> None:
    defaults = {"max_flipped": [100], "providers": [["CPUExecutionProvider"]], "workspace_mib": [1024], "dropout": []}
    sample = ('p.add_argument("--max-flipped", type=int, default=100)\n'
              'p.add_argument("--max-flipped-other", type=int, default=100)\n'
              'p.add_argument("--max-flipped", type=int, default=7)\n'
              'x = options.get("providers") or ["CUDAExecutionProvider"]\n'
              'y = options.get("providers", [])\n'
              'z = options.get("providers") or schema_default("onnxruntime.providers")\n'
              'DEFAULT_WORKSPACE_MIB = 1024\n'
              'rate = float(arch.get("dropout", 0.3))\n')
    assert list(restated(sample, defaults)) == ["1: option max_flipped defaults to 100", "4: a literal fallback for "
                                                "providers", "5: a literal fallback for providers",
                                                "8: a literal fallback for dropout",
                                                "7: constant DEFAULT_WORKSPACE_MIB = 1024"]


def test_the_check_finds_a_function_parameter_restating_a_default() -> None:
    defaults = {"batch_size": [256, 4096], "per_sample_rows": [10], "output_kind": ["auto"], "float_format": [".3g"]}
    sample = ('def compare(x, batch_size=4096, *, per_sample_limit=10, override="auto", float_format=".9g"):\n'
              '    pass\n'
              'def stream(x, rows=4096, batch_size=1000, limit=10, *, kind="auto"):\n'
              '    pass\n'
              'class Table:\n'
              '    async def render(self, float_format=".3g", output_kind=None, per_sample_rows=10):\n'
              '        pass\n')
    assert sorted(restated(sample, defaults)) == [
        "1: parameter batch_size of compare defaults to 4096", "1: parameter override of compare defaults to 'auto'",
        "1: parameter per_sample_limit of compare defaults to 10",
        "6: parameter float_format of render defaults to '.3g'",
        "6: parameter per_sample_rows of render defaults to 10"]


def test_no_program_restates_a_schema_default() -> None:
    defaults = schema_defaults()
    assert "max_flipped" in defaults and "float_format" in defaults
    shipped = shipped_values()
    assert shipped["opset"] == [17] and "max_flipped" not in shipped     # keys a config must set, with its values
    for name, values in shipped.items():
        defaults.setdefault(name, []).extend(values)
    found = {str(p.relative_to(REPO)): list(restated(p.read_text(), defaults))
             for p in sorted((REPO / "scripts").rglob("*.py"))}
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_a_left_out_option_takes_the_schema_default_and_says_so() -> None:
    import benchmark  # scripts/ is on the test path (pyproject.toml)
    required = ["--backend", "savedmodel", "--artifact", "a", "--samples", "s", "--batch-size", "1", "--model", "m",
                "--output", "o"]
    args = benchmark.parse_args(required)
    assert args.warmup == schema_default("benchmark.warmup") and args.warmup is not None
    assert args.iterations == schema_default("benchmark.iterations")
    assert benchmark.parse_args([*required, "--warmup", "0"]).warmup == 0
    assert schema_default("models.*.output_kind") == "auto"
    proc = run_script("compare.py", "--help")
    assert "(default: compare.max_flipped in config/schema.yaml)" in " ".join(proc.stdout.split())


def test_an_entry_reads_what_it_leaves_out_from_the_schema() -> None:
    from trtverify.schema import Entry

    arch = Entry({"blocks": [8], "dropout": 0.5}, "models.*.architecture")
    assert arch["dropout"] == 0.5                                       # given: kept
    assert arch["block_dropout"] == schema_default("models.*.architecture.block_dropout") == 0.1
    assert arch.get("convs_per_block") == 2 and arch["batch_norm"] is True
    assert sorted(arch) == ["blocks", "dropout"] and len(arch) == 2     # only what was given
    with pytest.raises(KeyError):
        arch["dense_units"]                                             # required: the schema has no default
    assert Entry({}, "datasets.*")["download"] is False


def test_the_workflow_passes_the_schema_defaults_of_keys_a_config_leaves_out(tmp_path: Path) -> None:
    """Snakemake's validate fills in defaults inside models.<name> and datasets.<name> too, so the rules pass them
    (a step never falls back on a default of its own)."""
    config = yaml.safe_load((REPO / "tests" / "data" / "config-tiny.yaml").read_text())
    config["models"]["tiny"]["architecture"] = {"blocks": [4], "dense_units": 16}
    config["models"]["tiny"]["training"] = {"epochs": 2, "batch_size": 64}
    config["datasets"]["digits"] = {"source": "digits"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile",
                           str(tmp_path / "config.yaml"), "--replace-workflow-config", "--directory", str(tmp_path),
                           "--dry-run", "--printshellcmds", "--cores", "1", "results/tiny/saved_model"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    command = next(line for line in proc.stdout.splitlines()
                   if line.startswith("Shell command:") and "train.py" in line)
    args = shlex.split(command.removeprefix("Shell command:").split(" > ", 1)[0])
    passed = {flag: json.loads(args[args.index(flag) + 1]) for flag in ("--architecture", "--training", "--dataset")}
    assert passed["--architecture"] == {"blocks": [4], "dense_units": 16, "convs_per_block": 2, "batch_norm": True,
                                        "block_dropout": 0.1, "dropout": 0.3}
    assert passed["--training"] == {"epochs": 2, "batch_size": 64, "learning_rate": 0.001, "seed": 0}
    assert passed["--dataset"]["test_fraction"] == 0.25 and passed["--dataset"]["download"] is False
