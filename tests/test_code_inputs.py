"""A rule's code inputs follow its program's imports: editing a module of scripts/ (or the C source a module
compiles) reruns exactly the steps whose programs use it, and no step program imports another (shared code lives in
the trtverify package).

The expected map is built here independently of rules/common.smk: by the standard library's modulefinder (which reads
bytecode, not the ast) from what each job really runs, the `python PROGRAM` of its shell command and the backend it
names (`--backend X`, or `open_runner("X")` in the program), read from a dry run.
"""

from __future__ import annotations

import modulefinder
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SCRIPTS, copy_workflow

TINY = Path(__file__).parent / "data" / "config-tiny.yaml"
PROGRAMS = sorted(p.name for p in SCRIPTS.glob("*.py"))
# Every rule in the DAG: both model kinds, all backends (C++ with both input formats), benchmarks, localize.
EVERYTHING = """
models:
  mine:
    dataset: digits
    import: {saved_model: mine/saved_model, samples: mine/x.npy, labels: mine/y.npy}
backends: [savedmodel, onnxruntime, tensorrt, tensorrt_cpp]
tensorrt: {build_engines: true, precisions: [fp32]}
benchmark: {enabled: true, backends: [savedmodel, onnxruntime, tensorrt, tensorrt_cpp], batch_sizes: [1]}
"""
TARGETS = ("all", "results/tiny/localization.json", "results/mine/localization.json")
BEFORE, BUILT, EDITED = 1_700_000_000, 1_700_000_100, 1_700_000_200  # mtimes: sources < outputs < an edit


def runs(script: Path, *loaded: str) -> set[Path]:
    """The files of scripts/ that running ``script`` (and loading the modules ``loaded`` by name) executes."""
    finder = modulefinder.ModuleFinder(path=[str(SCRIPTS)])  # scripts/ only: frameworks are never looked into
    finder.run_script(str(script))
    for name in loaded:
        finder.import_hook(name)
    files = {Path(m.__file__).resolve() for m in finder.modules.values() if m.__file__}
    files |= {f.with_suffix(".c") for f in files if f.with_suffix(".c").is_file()}  # compiled at run time (kernels)
    return {f for f in files if SCRIPTS in f.parents}


def backends_named(program: Path, command: str) -> list[str]:
    names = re.findall(r"--backend (\w+)", command) + re.findall(r"open_runner\(\"(\w+)\"", program.read_text())
    return [f"trtverify.backends.{n}" for n in names]


def snakemake(ws: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(TINY), "everything.yaml",
           "--replace-workflow-config", *args]
    proc = subprocess.run(cmd, cwd=ws, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def jobs(text: str) -> list[dict[str, str]]:
    """The jobs of a dry run with --printshellcmds: rule, input, output and shell command of each."""
    found: list[dict[str, str]] = []
    for line in text.splitlines():
        head = re.match(r"(?:local)?rule (\w+):$", line)
        if head:
            found.append({"rule": head.group(1), "input": "", "output": "", "shell": ""})
        elif found and re.match(r"    (input|output): ", line):
            key, value = line.strip().split(": ", 1)
            found[-1][key] = value
        elif found and line.startswith("Shell command: "):
            found[-1]["shell"] = line.split(": ", 1)[1]
    return found


def paths(listed: str) -> set[str]:
    return set(filter(None, listed.split(", ")))


def downstream(direct: list[dict[str, str]], dag: list[dict[str, str]]) -> set[str]:
    """The jobs (by their outputs) a rerun of ``direct`` reruns: those and every job consuming what they write."""
    todo, found = list(direct), set()
    while todo:
        job = todo.pop()
        if job["output"] not in found:
            found.add(job["output"])
            todo += [j for j in dag if paths(j["input"]) & paths(job["output"])]
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]], dict[str, set[Path]]]:
    """A copy of the workflow whose every output exists and is newer than every source (as after a run, without
    running anything), its jobs, and what each rule's jobs run, by this file's own reading of the import graph."""
    ws = copy_workflow(tmp_path_factory.mktemp("code"))
    (ws / "everything.yaml").write_text(EVERYTHING)
    (ws / "mine" / "saved_model").mkdir(parents=True)
    for name in ("x.npy", "y.npy"):
        (ws / "mine" / name).touch()
    for job in jobs(snakemake(ws, *TARGETS, "--dry-run")):
        for out in paths(job["output"]):
            (ws / out).parent.mkdir(parents=True, exist_ok=True)
            (ws / out).touch()
    # Read again now that all exists: report's inputs include the localizations that exist.
    dag = jobs(snakemake(ws, *TARGETS, "--dry-run", "--printshellcmds", "--forceall"))
    used: dict[str, set[Path]] = {}
    for job in dag:
        for program in re.findall(r"python scripts/(\S+\.py)", job["shell"]):
            used.setdefault(job["rule"], set()).update(runs(SCRIPTS / program,
                                                            *backends_named(SCRIPTS / program, job["shell"])))
    for path in ws.rglob("*"):
        os.utime(path, (BEFORE, BEFORE), follow_symlinks=False)
    for job in dag:
        for out in paths(job["output"]):
            os.utime(ws / out, (BUILT, BUILT))
    return ws, dag, used


def test_every_step_program_is_a_leaf() -> None:
    """A step program importing another makes the library's shape a lie and hides a dependency from the rules."""
    importers = {p: sorted(f.name for f in runs(SCRIPTS / p) if f.parent == SCRIPTS and f.name != p) for p in PROGRAMS}
    assert {p: others for p, others in importers.items() if others} == {}


def test_the_graph_reader_sees_lazy_and_relative_imports() -> None:
    """The reference graph itself must see what the rules need: an import inside a function (localize.py) and a
    package's relative imports (a backend's `from ..errors import`)."""
    names = {f.relative_to(SCRIPTS).as_posix() for f in runs(SCRIPTS / "localize.py")}
    assert {"trtverify/localize_trt.py", "trtverify/engine.py", "trtverify/tensorrt_compat.py"} <= names
    names = {f.relative_to(SCRIPTS).as_posix() for f in runs(SCRIPTS / "predict.py", "trtverify.backends.tensorrt")}
    assert {"trtverify/backends/__init__.py", "trtverify/errors.py", "trtverify/tensorrt_compat.py"} <= names


@pytest.mark.slow
def test_editing_a_module_reruns_exactly_the_steps_that_run_it(
        built: tuple[Path, list[dict[str, str]], dict[str, set[Path]]]) -> None:
    ws, dag, used = built
    assert "Nothing to be done" in snakemake(ws, *TARGETS, "--dry-run"), "the copy is not up to date"
    assert {"train", "import_model", "convert_onnx", "predict_tensorrt_cpp_csv", "benchmark_tensorrt_cpp",
            "localize", "report", "gate", "compile_cpp"} <= set(used)
    rule_of = {job["output"]: job["rule"] for job in dag}
    wrong = {}
    for module in sorted([*SCRIPTS.rglob("*.py"), *SCRIPTS.rglob("*.c")]):
        copy = ws / module.relative_to(SCRIPTS.parent)
        text = copy.read_text()
        copy.write_text(text + "\n# edited\n")  # Snakemake ignores a newer file whose content is unchanged
        os.utime(copy, (EDITED, EDITED))
        planned = {job["output"] for job in jobs(snakemake(ws, *TARGETS, "--dry-run"))}
        copy.write_text(text)
        os.utime(copy, (BEFORE, BEFORE))
        expected = downstream([job for job in dag if module in used.get(job["rule"], set())], dag)
        if planned != expected:
            wrong[copy.relative_to(ws).as_posix()] = {"missed": sorted({rule_of[o] for o in expected - planned}),
                                                      "extra": sorted({rule_of.get(o, o) for o in planned - expected})}
    assert wrong == {}
