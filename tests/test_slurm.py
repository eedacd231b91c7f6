"""The execution profiles (profiles/): their settings checked against the rules with dry runs, and the CPU part of the
pipeline run through a real one-node SLURM cluster that the tests start and stop (tests/cluster/slurm_up.sh), with
the same results as a local run. docs/cluster.md describes the profiles and the executor choice.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from conftest import REPO

TINY = REPO / "tests" / "data" / "config-tiny.yaml"
GPU_CONFIG = (REPO / "config.yaml", REPO / "config" / "gpu.yaml")
CLUSTER_SCRIPTS = REPO / "tests" / "cluster"
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
# Keys in which profiles/slurm-cpu may differ from profiles/slurm (each marked DIFFERS there, with the reason).
CPU_PROFILE_DIFFERENCES = {"software-deployment-method", "apptainer-args", "slurm-status-command",
                           "slurm-init-seconds-before-status-checks", "slurm-keep-successful-logs", "set-threads",
                           "set-resources"}


PROFILE_FILE = "config.v8+.yaml"  # Snakemake 8+ reads this name first; older Snakemakes ignore it


def load_profile(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "profiles" / name / PROFILE_FILE).read_text())


def rule_names() -> set[str]:
    text = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    return set(re.findall(r"^rule (\w+):", text, re.M)) | set(re.findall(r"^use rule \w+ as (\w+)", text, re.M))


def job_env(**extra: str) -> dict[str, str]:
    """This environment, the venv's python first on PATH (sbatch's --export=ALL hands PATH on to the jobs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return {**env, **extra}


def require_slurm_plugin() -> None:
    """A missing plugin is a broken environment, not a reason to skip: the slurm profiles cannot even be parsed."""
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.fail("snakemake-executor-plugin-slurm is not installed; envs/requirements-dev.txt pins it")


def snakemake(workdir: Path, *args: str, env: dict[str, str], timeout: int,
              snakefile: Path = REPO / "Snakefile") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=workdir)


# --- The profiles, by dry runs (no cluster, no GPU, no Apptainer needed) ---------------------------------------------


@pytest.fixture(scope="module")
def fake_apptainer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in that answers `apptainer --version`: Snakemake asks before planning a run with containers, and
    Apptainer cannot be installed here. Dry runs never start a container."""
    bin_dir = tmp_path_factory.mktemp("fake-apptainer")
    stub = bin_dir / "apptainer"
    stub.write_text("#!/bin/sh\necho 'apptainer version 1.3.6'\n")
    stub.chmod(0o755)
    return bin_dir


def dry_run(profile: str, configfiles: tuple[Path, ...], workdir: Path, fake_apptainer: Path) -> str:
    env = job_env()
    env["PATH"] = f"{fake_apptainer}{os.pathsep}{env['PATH']}"
    proc = snakemake(workdir, "--dry-run", "--profile", str(REPO / "profiles" / profile), "--configfile",
                     *map(str, configfiles), "--replace-workflow-config", env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def planned_jobs(out: str) -> dict[str, dict]:
    """A dry run's jobs: rule -> {'threads': int, 'resources': {name: value}} as Snakemake would submit it (the
    members of a group job are indented under it)."""
    jobs: dict[str, dict] = {}
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", out):
        head = re.match(r"\s*(?:local)?rule (\w+):", block)
        if not head or head.group(1) == "all":
            continue
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        pairs = (item.split("=", 1) for item in resources.group(1).split(", ")) if resources else ()
        jobs[head.group(1)] = {"threads": int(threads.group(1)) if threads else 1, "resources": dict(pairs)}
    return jobs


def local_rules() -> set[str]:
    """The rules marked `localrule: True` (a dry run does not mark them)."""
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    rules = re.findall(r"^rule (\w+):\n(?:(?!rule )[^\n]*\n)*?    localrule: True$", text, re.M)
    return set(rules) | {"all"}


def submitted_jobs(out: str) -> list[str]:
    """What a dry run with a cluster profile would submit, one entry per sbatch job: 'group NAME' for a group job
    (its members follow, indented), else the rule; local rules (run on the submitting machine) are left out."""
    jobs = []
    for group, rule in re.findall(r"^\[[^\]]+\](?: Group job (\w+).*)?\n(?:rule (\w+):)?", out, re.M):
        if group:
            jobs.append(f"group {group}")
        elif rule and rule not in local_rules():
            jobs.append(rule)
    return jobs


@pytest.fixture(scope="module")
def gpu_plans(tmp_path_factory: pytest.TempPathFactory, fake_apptainer: Path) -> dict[str, dict[str, dict]]:
    """Every rule of the GPU configuration (config/gpu.yaml), planned with each profile."""
    require_slurm_plugin()
    workdir = tmp_path_factory.mktemp("dry-run")
    return {p: planned_jobs(dry_run(p, GPU_CONFIG, workdir, fake_apptainer)) for p in ("local", "slurm", "slurm-cpu")}


def test_profiles_name_only_rules_that_exist() -> None:
    rules = rule_names()
    for name in ("local", "slurm", "slurm-cpu"):
        profile = load_profile(name)
        for key in ("set-resources", "set-threads", "groups"):
            unknown = set(profile.get(key) or {}) - rules
            assert not unknown, f"profiles/{name} {key} names rules that do not exist: {sorted(unknown)}"


def test_local_profile_serialises_gpu_jobs_in_containers_with_the_gpu(gpu_plans: dict) -> None:
    profile = load_profile("local")
    assert profile["resources"] == {"gpu": 1}
    assert profile["software-deployment-method"] == "apptainer"
    assert "--nv" in profile["apptainer-args"].split()
    assert profile["keep-going"] is False
    gpu_rules = {r for r, job in gpu_plans["local"].items() if job["resources"].get("gpu") == "1"}
    assert {"build_engine", "predict_tensorrt", "predict_tensorrt_cpp", "benchmark_tensorrt"} <= gpu_rules


def test_slurm_profile_asks_one_gpu_for_exactly_the_gpu_rules(gpu_plans: dict) -> None:
    gpu_rules = {r for r, job in gpu_plans["local"].items() if job["resources"].get("gpu") == "1"}
    onnxruntime_rules = {r for r in gpu_plans["slurm"] if r.endswith("_onnxruntime")}  # CUDA provider preferred
    for rule, job in gpu_plans["slurm"].items():
        res = job["resources"]
        if rule in gpu_rules | onnxruntime_rules:
            # --gres=gpu:1 only: gpu=0 stops the plugin from adding --gpus=1 as well
            assert res.get("gres") == "gpu:1" and res.get("gpu") == "0", (rule, res)
        else:
            assert "gres" not in res and res.get("gpu", "0") == "0", (rule, res)
    assert "gres" not in gpu_plans["slurm"]["compile_cpp"]["resources"]  # a CMake build needs TensorRT, not a GPU
    # (Threads cannot be checked by a dry run, which caps them at its local cores.)
    assert load_profile("slurm")["set-threads"]["train"] == 8
    for job in gpu_plans["slurm"].values():
        assert "mem_mb" in job["resources"] and "runtime" in job["resources"]


def test_cpu_profile_is_the_slurm_profile_without_gpus_or_containers(gpu_plans: dict) -> None:
    gpu, cpu = load_profile("slurm"), load_profile("slurm-cpu")
    differing = {k for k in gpu.keys() | cpu.keys() if gpu.get(k) != cpu.get(k)}
    assert differing <= CPU_PROFILE_DIFFERENCES, f"unmarked differences: {sorted(differing - CPU_PROFILE_DIFFERENCES)}"
    assert cpu["slurm-status-command"] == "squeue"
    for rule, job in gpu_plans["slurm-cpu"].items():
        assert "gres" not in job["resources"] and job["resources"].get("gpu", "0") == "0", (rule, job)
    assert "set-threads" not in cpu  # the rules' own 1-2 threads: they fit the 2-core test node, as a local run


def test_profiles_use_the_snakemake_8_file_name() -> None:
    for profile in sorted(p for p in (REPO / "profiles").iterdir() if p.is_dir()):
        assert sorted(f.name for f in profile.iterdir()) == [PROFILE_FILE], profile.name
    assert {p.name for p in (REPO / "profiles").iterdir()} == {"default", "local", "slurm", "slurm-cpu"}


def test_a_bare_run_from_anywhere_reads_the_default_profile(tmp_path: Path) -> None:
    """profiles/default is found next to the Snakefile, also with --directory elsewhere, and gives the cores."""
    default = load_profile("default")
    assert default["cores"] == "all" and default["printshellcmds"] is True
    assert set(default["rerun-triggers"]) == {"mtime", "params", "input", "code", "software-env"}
    proc = snakemake(tmp_path, "--configfile", str(TINY), "--replace-workflow-config", "--dry-run",
                     env=job_env(), timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"workflow specific profile {REPO / 'profiles' / 'default'} for setting default" in out
    # printshellcmds from the profile: the dry run shows the commands
    assert re.search(r"^Shell command: python \S*scripts/train\.py ", out, re.M)


def test_cluster_jobs_first_ask_what_the_rules_say_then_more_per_attempt(gpu_plans: dict) -> None:
    for name in ("slurm", "slurm-cpu"):
        profile = load_profile(name)
        assert profile["retries"] >= 1
        for rule, job in gpu_plans[name].items():
            own = gpu_plans["local"][rule]["resources"]
            assert (job["resources"]["mem_mb"], job["resources"]["runtime"]) == (own["mem_mb"], own["runtime"]), rule
            if rule in profile["set-resources"]:
                assert profile["set-resources"][rule]["mem_mb"] == f"{own['mem_mb']} * attempt", rule
                assert profile["set-resources"][rule]["runtime"] == f"{own['runtime']} * attempt", rule
        unscaled = set(gpu_plans[name]) - set(profile["set-resources"]) - local_rules()
        assert not unscaled, f"profiles/{name}: no attempt-scaled resources for {sorted(unscaled)}"


# Measured by the test below with profiles/slurm and config.yaml + config/gpu.yaml (docs/cluster.md quotes it).
JOBS_PER_MODEL = 38
JOBS_PER_MODEL_WITHOUT_BENCHMARKS = 6


def test_one_model_is_a_few_cluster_jobs(tmp_path: Path, fake_apptainer: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Jobs per model = jobs for two models - jobs for one (the images and the C++ program are built once)."""
    require_slurm_plugin()
    second = tmp_path / "two-models.yaml"
    gpu = yaml.safe_load(GPU_CONFIG[0].read_text())
    second.write_text(yaml.safe_dump({"models": {**gpu["models"], "second": gpu["models"]["digits_vgg"]}}))
    no_bench = tmp_path / "no-bench.yaml"
    no_bench.write_text("benchmark: {enabled: false}\n")
    counts = {}
    for label, extra in (("one", ()), ("two", (second,)), ("one, no benchmarks", (no_bench,)),
                         ("two, no benchmarks", (second, no_bench))):
        counts[label] = submitted_jobs(dry_run("slurm", (*GPU_CONFIG, *extra), tmp_path, fake_apptainer))
    per_model = len(counts["two"]) - len(counts["one"])
    with capsys.disabled():
        print(f"\nSLURM jobs per model (config/gpu.yaml, profiles/slurm): {per_model}; without benchmarks: "
              f"{len(counts['two, no benchmarks']) - len(counts['one, no benchmarks'])}")
        print("  one model:", ", ".join(f"{j} x{counts['one'].count(j)}" for j in sorted(set(counts["one"]))))
    assert per_model == JOBS_PER_MODEL
    assert len(counts["two, no benchmarks"]) - len(counts["one, no benchmarks"]) == JOBS_PER_MODEL_WITHOUT_BENCHMARKS
    one = counts["one"]
    assert one.count("group model_cpu") == 1 and one.count("group engine") == 3  # one per model, one per precision
    assert not {"train", "convert_onnx", "export_csv", "predict_savedmodel", "build_engine"} & set(one)
    assert {"report", "benchmark_table"} <= local_rules()  # seconds of gathering: no queue wait for them


# --- A real cluster -------------------------------------------------------------------------------------------------


def read_pids(directory: Path) -> dict[str, int]:
    pids = {}
    for name, rel in (("munged", "munge/munged.pid"), ("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")):
        if (directory / rel).is_file():
            pids[name] = int((directory / rel).read_text().split()[0])
    return pids


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """A one-node SLURM cluster for this module's tests; stopped afterwards, with a check that nothing is left."""
    if os.geteuid() != 0:
        pytest.skip("the test cluster needs root (its daemons run as root and run jobs as root)")
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    require_slurm_plugin()
    # A short path: munged's socket path must fit in 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="trtverify-slurm-"))
    up = subprocess.run(["bash", str(CLUSTER_SCRIPTS / "slurm_up.sh"), str(directory)], capture_output=True,
                        text=True, timeout=120)
    assert up.returncode == 0, f"slurm_up.sh failed:\n{up.stdout}\n{up.stderr}"
    pids = read_pids(directory)
    try:
        yield {"SLURM_CONF": str(directory / "slurm.conf")}
    finally:
        down = subprocess.run(["bash", str(CLUSTER_SCRIPTS / "slurm_down.sh"), str(directory)], capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, f"slurm_down.sh failed:\n{down.stderr}"
        left = {name: pid for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}
        assert not left, f"daemons still running after slurm_down.sh: {left}"
        assert not directory.exists() and not os.path.lexists("/run/slurm/conf")


def slurm_jobs(log: str, env: dict[str, str]) -> list[dict[str, str]]:
    """The jobs the executor says it submitted, with SLURM's own record of each (squeue keeps finished jobs for
    MinJobAge; scontrol gives the exit code)."""
    # (A group job's Snakemake id is a UUID, a single job's a number.)
    submitted = sorted(re.findall(r"Job [\w-]+ has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.", log),
                       key=lambda job: int(job[0]))
    rows = []
    for slurm_id, slurm_log in submitted:
        info = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True, env=env).stdout
        field = dict(re.findall(r"(\w+)=(\S*)", info))
        rows.append({"id": slurm_id, "job": field.get("Comment", "?"), "state": field.get("JobState", "?"),
                     "exit": field.get("ExitCode", "?"), "elapsed": field.get("RunTime", "?"),
                     "cpus": field.get("NumCPUs", "?"), "mem": field.get("MinMemoryNode", "?"),
                     "node": field.get("NodeList", "?"), "log": slurm_log})
    return rows


def job_table(rows: list[dict[str, str]]) -> str:
    cols = ("id", "job", "state", "exit", "elapsed", "cpus", "mem", "node")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


# What two runs of the same config do not reproduce byte for byte, whatever runs them, and why.
NOT_BYTE_IDENTICAL = {
    "results/*/saved_model/*": "Keras lists the SavedModel's variables in a per-process order (same values)",
    "results/*/model.onnx": "tf2onnx numbers the nodes it adds in that order (same graph and weights)",
}
TIMING_KEYS = {"seconds", "train_seconds", "convert_seconds", "tf2onnx_command"}  # the last names a temporary file
COSTS = "results/pipeline_costs.tsv"  # every step's run time, a table the report repeats


def without_timings(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def only_cost_rows_differ(a: bytes, b: bytes, cost_rows: set[tuple[str, ...]]) -> bool:
    """True if every line that differs is a row of the pipeline-costs table (its rule and model cells first), in
    the TSV itself or in the report's Markdown or text rendering of it."""
    changed = [line[2:] for line in difflib.ndiff(a.decode().splitlines(), b.decode().splitlines())
               if line[:2] in ("- ", "+ ")]
    return all(tuple(re.split(r"[|\s]+", line.strip(" |"))[:2]) in cost_rows for line in changed)


def compare_results(local: Path, cluster: Path) -> dict[str, str]:
    """relative path -> how the cluster's copy compares with the local one; fails on any unexplained difference."""
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in (root / "results").rglob("*") if p.is_file()}

    local_files, cluster_files = files(local), files(cluster)
    assert local_files == cluster_files, {"local only": local_files - cluster_files,
                                          "cluster only": cluster_files - local_files}
    cost_rows = {tuple(line.split("\t")[:2]) for root in (local, cluster) if (root / COSTS).is_file()
                 for line in (root / COSTS).read_text().splitlines()[1:]}
    verdicts = {}
    for rel in sorted(local_files):
        if rel.startswith(("results/logs/", "results/benchmarks/")):
            continue  # run logs and Snakemake's per-rule timings: different by nature
        a, b = (local / rel).read_bytes(), (cluster / rel).read_bytes()
        reason = next((why for pattern, why in NOT_BYTE_IDENTICAL.items() if fnmatch.fnmatch(rel, pattern)), None)
        if a == b:
            verdicts[rel] = "identical"
        elif reason:
            verdicts[rel] = f"differs: {reason}"
        elif rel.endswith(".json") and without_timings(json.loads(a)) == without_timings(json.loads(b)):
            verdicts[rel] = "differs only in timings"
        elif rel.endswith((".md", ".txt", ".tsv")) and only_cost_rows_differ(a, b, cost_rows):
            verdicts[rel] = "differs only in the run times of the pipeline-costs table"
        else:
            raise AssertionError(f"{rel} differs between the local and the cluster run")
    return verdicts


@pytest.mark.cluster
def test_tiny_pipeline_on_slurm_gives_the_local_results(slurm_cluster: dict[str, str], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    env = job_env(**slurm_cluster)
    config = ("--configfile", str(TINY), "--replace-workflow-config")
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    local.mkdir()
    cluster.mkdir()

    proc = snakemake(local, *config, "--cores", "2", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    start = time.monotonic()
    proc = snakemake(cluster, *config, "--profile", str(REPO / "profiles" / "slurm-cpu"), env=env, timeout=400)
    took = time.monotonic() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]

    jobs = slurm_jobs(log, env)
    verdicts = compare_results(local, cluster)
    with capsys.disabled():
        print(f"\n\nSLURM jobs of the tiny pipeline ({took:.0f} s through the cluster):\n{job_table(jobs)}")
        print("results/ of the cluster run against the local run:")
        for rel, verdict in verdicts.items():
            print(f"  {rel}: {verdict}")

    # The model's short CPU steps ran as one group job, ONNX Runtime's prediction and the comparison as jobs of
    # their own, the report on the submitting machine: 3 SLURM jobs (one per rule, 6, before groups). Every rule
    # that ran locally (each writes results/logs/<rule>/) ran here too, and every job succeeded.
    kinds = sorted(re.search(r"slurm_logs/((?:group|rule)_\w+?)/", j["log"]).group(1) for j in jobs)
    group = "group_model_cpu_convert_onnx_predict_savedmodel_train"  # the plugin names a group job after its rules
    assert kinds == [group, "rule_compare", "rule_predict_onnxruntime"], kinds
    assert {p.name for p in (cluster / "results" / "logs").iterdir()} == {
        p.name for p in (local / "results" / "logs").iterdir()}
    assert re.search(r"^localrule report:", log, re.M)
    for job in jobs:
        assert (job["state"], job["exit"]) == ("COMPLETED", "0:0"), job
        assert re.search(r"(\d+) of \1 steps \(100%\) done", Path(job["log"]).read_text()), job["log"]
    # The numbers that matter are bit for bit the local run's.
    for rel in ("results/tiny/predictions/savedmodel.npy", "results/tiny/predictions/onnxruntime.npy",
                "results/tiny/comparison.json", "results/tiny/per_sample.csv", "results/summary.json"):
        assert verdicts[rel] == "identical", rel


TOY_SNAKEFILE = """
rule all:
    input: "ok.txt", "bad.txt"

rule ok:
    output: "ok.txt"
    resources: mem_mb=100, runtime=5
    shell: "echo ok > {output}"

rule bad:
    output: "bad.txt"
    resources: mem_mb=100, runtime=5
    shell: "echo failing on purpose >&2; exit 3"
"""


@pytest.mark.cluster
def test_a_failing_job_is_reported_as_failed(slurm_cluster: dict[str, str], tmp_path: Path) -> None:
    """Without accounting, job states come from squeue: a failed job must end the run, not leave it waiting."""
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)
    proc = snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm-cpu"), env=job_env(**slurm_cluster),
                     snakefile=tmp_path / "Snakefile", timeout=180)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-4000:]
    assert "SLURM status is: 'FAILED'" in log, log[-4000:]
    assert (tmp_path / "ok.txt").read_text() == "ok\n"  # keep-going: the independent job still finished
    assert not (tmp_path / "bad.txt").exists()


HUNGRY_SNAKEFILE = """
rule hungry:
    output: "fed.txt"
    resources: runtime=5
    # No cgroups on the test node, so SLURM cannot kill a job for memory: the job enforces its allocation itself,
    # as a cgroup would, and fails like a job killed for memory (exit 137) below 500 MB.
    shell: "if [ {resources.mem_mb} -lt 500 ]; then echo 'out of memory: {resources.mem_mb} MB' >&2; exit 137; fi;"
           " echo {resources.mem_mb} > {output}"
"""


@pytest.mark.cluster
def test_a_job_out_of_memory_is_retried_with_more(slurm_cluster: dict[str, str], tmp_path: Path) -> None:
    """profiles/slurm-cpu's retries, with memory given as the profiles give it (an expression of `attempt`)."""
    (tmp_path / "Snakefile").write_text(HUNGRY_SNAKEFILE)
    env = job_env(**slurm_cluster)
    proc = snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm-cpu"), "--set-resources",
                     "hungry:mem_mb=300 * attempt", env=env, snakefile=tmp_path / "Snakefile", timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    jobs = slurm_jobs(log, env)
    assert [(j["state"], j["mem"]) for j in jobs] == [("FAILED", "300M"), ("COMPLETED", "600M")], jobs
    assert (tmp_path / "fed.txt").read_text() == "600\n"
