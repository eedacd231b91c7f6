"""Data-parallel predictions and the cross-GPU identity check, with simulated devices: each "device" is its own ONNX
Runtime CPU session, given its slot through CUDA_VISIBLE_DEVICES as a GPU shard is (trtverify.devices). The same
predict.py, merge_shards.py and gpu_identity.py as the TensorRT shards run (rules/shard.smk)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SCRIPTS, leftovers, run_script

sys.path.insert(0, str(SCRIPTS))
import gate  # noqa: E402
import gpu_identity  # noqa: E402
import merge_shards  # noqa: E402
import predict  # noqa: E402
import report  # noqa: E402
from trtverify.devices import check_engine_device, pin_device  # noqa: E402
from trtverify.errors import UserError  # noqa: E402
from trtverify.shards import shard_bounds  # noqa: E402

sys.path.insert(0, str(SCRIPTS.parent / "tools"))
import tiny_onnx  # noqa: E402
from tiny_onnx import CLASSES, SAMPLES  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Conv -> Relu -> MatMul -> Softmax on NHWC 8x8x1 samples with a dynamic batch (tools/tiny_onnx.py)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    return tiny_onnx.write(tmp_path_factory.mktemp("shards"))


def predict_rows(model: dict[str, Path], out: Path, *extra: str, batch: int = 8, samples: Path | None = None) -> Path:
    """One run of predict.py in this process (fast), seeing the two simulated devices as a new process would (a
    slot pins the process to one of them by narrowing CUDA_VISIBLE_DEVICES)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"
    predict.main(["--backend", "onnxruntime", "--artifact", str(model["onnx"]), "--samples",
                  str(samples or model["samples"]), "--providers", "CPUExecutionProvider", "--batch-size", str(batch),
                  "--output", str(out), "--info", str(out.with_suffix(".json")), *extra])
    return out


def sharded(model: dict[str, Path], out: Path, shards: int, batch: int) -> Path:
    """Every shard in its own session, on slot shard % 2 of two simulated devices, then merged."""
    parts = [predict_rows(model, out.parent / f"{out.stem}.{i}.npy", "--shard", f"{i}/{shards}", "--device-slot",
                          str(i % 2), batch=batch) for i in range(shards)]
    args = ["--samples", str(model["samples"]), "--output", str(out), "--info", str(out.with_suffix(".json"))]
    for part in parts:
        args += ["--shard", str(part), "--shard-info", str(part.with_suffix(".json"))]
    merge_shards.main(args)
    return out


@pytest.fixture(autouse=True)
def two_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)


@pytest.mark.parametrize("rows,batch,count", [(53, 8, 2), (53, 8, 4), (53, 8, 7), (53, 8, 9), (64, 8, 4), (5, 8, 3)])
def test_shards_are_whole_batches_that_cover_every_row_once(rows: int, batch: int, count: int) -> None:
    bounds = [shard_bounds(rows, batch, i, count) for i in range(count)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in order
    assert all(start % batch == 0 for start, _ in bounds)  # the unsharded run's batches, unchanged
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= batch  # spread evenly, to a batch


@pytest.mark.parametrize("shards,batch", [(1, 8), (2, 8), (3, 8), (4, 16), (9, 8)])
def test_merged_shards_are_bit_identical_to_one_unsharded_run(model: dict, tmp_path: Path, shards: int,
                                                              batch: int) -> None:
    whole = np.load(predict_rows(model, tmp_path / "whole.npy", batch=batch))
    merged_path = sharded(model, tmp_path / "merged.npy", shards, batch)
    merged = np.load(merged_path)
    assert merged.shape == whole.shape == (SAMPLES, CLASSES)
    assert merged.tobytes() == whole.tobytes()
    record = json.loads(merged_path.with_suffix(".json").read_text())
    assert [s["shard"] for s in record["shards"]] == [f"{i}/{shards}" for i in range(shards)]
    assert [s["placement"] for s in record["shards"]][:2] == ["slot 0 (CUDA device 0)", "slot 1 (CUDA device 1)"][
        :shards]
    assert record["samples"] == SAMPLES and record["backend"] == "onnxruntime"
    assert record["output_shape"] == [SAMPLES, CLASSES] and "start" not in record


def test_rows_do_not_depend_on_their_batch_on_onnxruntime_cpu(model: dict, tmp_path: Path) -> None:
    """What the aligned shards do not rely on, measured: a row's bits whatever rows share its batch and whatever the
    batch's size (8 full batches of 8 and a short one of 5, against one of 53, against 53 of 1)."""
    runs = [np.load(predict_rows(model, tmp_path / f"b{b}.npy", batch=b)) for b in (1, 8, 53)]
    assert runs[0].tobytes() == runs[1].tobytes() == runs[2].tobytes()


def test_a_failing_shard_names_itself_and_its_device_and_nothing_is_merged(model: dict, tmp_path: Path) -> None:
    x = np.load(model["samples"])
    x[40, 3, 3, 0] = np.nan  # in shard 1 of 2 (rows 24..53 at batch 8): that shard fails, shard 0 does not
    bad = tmp_path / "bad.npy"
    np.save(bad, x)
    common = ["--backend", "onnxruntime", "--artifact", model["onnx"], "--samples", bad, "--providers",
              "CPUExecutionProvider", "--batch-size", "8", "--device-slot", "1"]
    ok = run_script("predict.py", *common[:-1], "0", "--shard", "0/2", "--output", tmp_path / "s0.npy",
                    "--info", tmp_path / "s0.json")
    assert ok.returncode == 0
    proc = run_script("predict.py", *common, "--shard", "1/2", "--output", tmp_path / "s1.npy",
                      "--info", tmp_path / "s1.json", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "shard 1/2 on slot 1 (CUDA device 1): test samples" in lines[0], lines
    assert "index (40, 3, 3, 0)" in lines[0]
    assert not (tmp_path / "s1.npy").exists() and leftovers(tmp_path) == []
    # The merge of what exists refuses: one shard's rows are not every sample's.
    with pytest.raises(UserError, match="the shards hold 24 rows, but there are 53"):
        merge_shards.main(["--samples", str(bad), "--shard", str(tmp_path / "s0.npy"), "--shard-info",
                           str(tmp_path / "s0.json"), "--output", str(tmp_path / "m.npy"), "--info",
                           str(tmp_path / "m.json")])
    assert not (tmp_path / "m.npy").exists() and not (tmp_path / "m.json").exists() and leftovers(tmp_path) == []


def test_shards_of_different_runs_are_not_merged(model: dict, tmp_path: Path) -> None:
    a = predict_rows(model, tmp_path / "a.npy", "--shard", "0/2", batch=8)
    b = predict_rows(model, tmp_path / "b.npy", "--shard", "1/2", batch=16)  # another batch size: other bounds
    with pytest.raises(UserError, match="holds rows from 32, but the shards before it end at 24"):
        merge_shards.main(["--samples", str(model["samples"]), "--shard", str(a), "--shard-info",
                           str(a.with_suffix(".json")), "--shard", str(b), "--shard-info", str(b.with_suffix(".json")),
                           "--output", str(tmp_path / "m.npy"), "--info", str(tmp_path / "m.json")])
    assert not (tmp_path / "m.npy").exists()


def check_identity(model: dict, tmp_path: Path, devices: int, *extra: str) -> dict:
    gpu_identity.main(["--backend", "onnxruntime", "--engine", f"fp32={model['onnx']}", "--samples",
                       str(model["samples"]), "--first", "20", "--devices", str(devices), *extra,
                       "--output", str(tmp_path / "gpu_identity.json")])
    result: dict = json.loads((tmp_path / "gpu_identity.json").read_text())
    return result


def test_identity_check_says_identical_on_every_device(model: dict, tmp_path: Path) -> None:
    result = check_identity(model, tmp_path, 3)
    assert result["identical"] is True and result["samples"] == 20
    assert [(d["device"]["index"], d["identical"], d["samples"]) for d in result["devices"]] == [
        (0, True, 20), (1, True, 20), (2, True, 20)]


def test_identity_check_names_the_device_and_first_differing_element(model: dict, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A faulty device 1: one ulp off at (sample 7, class 3), as a bad card or a driver mismatch would be."""
    real = gpu_identity.predict_on

    def faulty(backend: str, artifact: str, device: int, x: np.ndarray) -> np.ndarray:
        probs = real(backend, artifact, device, x)
        if device == 1:
            probs[7, 3] = np.nextafter(probs[7, 3], np.float32(1))
            probs[9, 0] += 1
        return probs

    monkeypatch.setattr(gpu_identity, "predict_on", faulty)
    result = check_identity(model, tmp_path, 3)
    assert result["identical"] is False
    assert [d["identical"] for d in result["devices"]] == [True, False, True]
    bad = result["devices"][1]
    assert bad["device"]["name"] == "simulated device 1 (ONNX Runtime CPU session)"
    diff = bad["first_difference"]
    assert (diff["sample"], diff["class"]) == (7, 3) and diff["value"] != diff["reference"]


def test_report_shows_each_device_and_gate_fails_on_the_differing_one(model: dict, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from test_report import crafted

    real = gpu_identity.predict_on
    monkeypatch.setattr(gpu_identity, "predict_on", lambda b, a, d, x: real(b, a, d, x) + (d == 1) * np.float32(1e-3))
    check_identity(model, tmp_path, 2)
    comparison = tmp_path / "comparison.json"
    comparison.write_text(json.dumps(crafted(False)))
    scaling = tmp_path / "scaling.json"
    run_script("bench_scaling.py", "--backend", "onnxruntime", "--artifact", model["onnx"], "--samples",
               model["samples"], "--batch", "8", "--gpus", "2", "--warmup", "0", "--iterations", "2",
               "--output", scaling)
    out = tmp_path / "out"
    report.main(["--comparison", f"tiny={comparison}", "--gpu-identity", f"tiny={tmp_path / 'gpu_identity.json'}",
                 "--scaling", f"tiny/fp32={scaling}",
                 "--markdown", str(out / "report.md"), "--text", str(out / "report.txt"), "--summary",
                 str(out / "summary.json"), "--plots", str(out / "plots")])
    md = (out / "report.md").read_text()
    section = md.split("## Cross-GPU identity\n")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.strip().splitlines()[2:4]]
    assert rows[0] == ["tiny", "fp32", "0: simulated device 0 (ONNX Runtime CPU session)", "20", "identical"]
    assert rows[1][2] == "1: simulated device 1 (ONNX Runtime CPU session)"
    assert rows[1][4].startswith("differs first at sample 0, class 0: 0.001000000047")
    record = json.loads(scaling.read_text())
    row = [c.strip() for c in md.split("## Scaling over GPUs\n")[1].strip().splitlines()[2].strip("|").split("|")]
    assert row == ["tiny/fp32", "2", "8", f"{record['one_device']['throughput']:.1f}",
                   f"{record['all_devices']['throughput']:.1f}", f"{record['ideal_throughput']:.1f}",
                   f"{record['scaling_efficiency']:.3f}"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["gpu_identity"]["tiny"]["identical"] is False
    with pytest.raises(UserError, match=r"^1 GPU run\(s\) differ from the node's first GPU: tiny: fp32 on device 1: "):
        gate.main(["--summary", str(out / "summary.json"), "--report", "report.md", "--output", str(out / "g.json")])
    assert not (out / "g.json").exists()


def test_an_engine_is_refused_on_another_gpu_model() -> None:
    record = {"device": {"name": "NVIDIA H200", "compute_capability": "9.0"}}
    check_engine_device(record, "e.trt", {"name": "NVIDIA H200", "compute_capability": "9.0", "uuid": "GPU-1"})
    with pytest.raises(UserError, match="built on a NVIDIA H200 .*runs on a NVIDIA A100"):
        check_engine_device(record, "e.trt", {"name": "NVIDIA A100", "compute_capability": "8.0"})


def test_a_slot_picks_among_the_visible_devices_and_slurm_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert pin_device(3) == "slot 3 (CUDA device 6)"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    assert pin_device(0) == "SLURM job 77 GPU 2" and os.environ["CUDA_VISIBLE_DEVICES"] == "2"


def test_cpp_shards_through_the_stand_in_binary_merge_to_the_unsharded_run(model: dict, tmp_path: Path) -> None:
    """predict_cpp.py's shards: each shard's rows handed to the binary (here the ONNX Runtime stand-in for trt_infer,
    tests/data/stand_in_trt_infer.py, which reads the model.onnx beside engines/), merged like the Python shards."""
    import shutil

    from conftest import REPO

    shutil.copy(model["onnx"], tmp_path / "model.onnx")
    engine, record = tmp_path / "engines" / "fp32.trt", tmp_path / "engines" / "fp32.json"
    engine.parent.mkdir()
    engine.write_bytes(b"stand-in engine")
    record.write_text(json.dumps({"engine_bytes": engine.stat().st_size, "profile": {"max": [16, 8, 8, 1]}}))
    binary = tmp_path / "trt_infer"
    stand_in = REPO / "tests" / "data" / "stand_in_trt_infer.py"
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{stand_in}" "$@"\n')
    binary.chmod(0o755)
    common = ["--binary", binary, "--engine", engine, "--engine-info", record, "--input", model["samples"],
              "--samples", model["samples"]]
    run_script("predict_cpp.py", *common, "--output", tmp_path / "whole.npy", "--info", tmp_path / "whole.json")
    merge = ["--samples", model["samples"], "--output", tmp_path / "merged.npy", "--info", tmp_path / "merged.json"]
    for i in range(3):
        part = tmp_path / f"part{i}.npy"
        run_script("predict_cpp.py", *common, "--shard", f"{i}/3", "--device-slot", str(i), "--output", part,
                   "--info", part.with_suffix(".json"))
        merge += ["--shard", part, "--shard-info", part.with_suffix(".json")]
    run_script("merge_shards.py", *merge)
    assert np.load(tmp_path / "merged.npy").tobytes() == np.load(tmp_path / "whole.npy").tobytes()
    shards = json.loads((tmp_path / "merged.json").read_text())["shards"]
    assert [(s["start"], s["stop"]) for s in shards] == [(0, 16), (16, 32), (32, 53)]  # whole batches of the max 16
    assert leftovers(tmp_path) == []


def test_scaling_benchmark_times_every_device_at_once_against_one_alone(model: dict, tmp_path: Path) -> None:
    """Two simulated devices (ONNX Runtime CPU sessions in two processes): the arithmetic and the record, not the
    speed (the CPU cores are shared, so the efficiency here says nothing about GPUs)."""
    out = tmp_path / "scaling.json"
    run_script("bench_scaling.py", "--backend", "onnxruntime", "--artifact", model["onnx"], "--samples",
               model["samples"], "--batch", "64", "--gpus", "2", "--warmup", "1", "--iterations", "5", "--output", out)
    record = json.loads(out.read_text())
    one, both = record["one_device"], record["all_devices"]
    assert (one["devices"], both["devices"]) == (1, 2)
    assert (one["samples"], both["samples"]) == (64 * 5, 2 * 64 * 5)  # whole batches of 64 from 53 samples
    assert [w["placement"] for w in both["workers"]] == ["slot 0 (CUDA device 0)", "slot 1 (CUDA device 1)"]
    span = max(w["end"] for w in both["workers"]) - min(w["start"] for w in both["workers"])
    assert both["seconds"] == pytest.approx(span, abs=1e-5)  # from the first start to the last end
    assert both["throughput"] == pytest.approx(both["samples"] / both["seconds"])
    assert record["scaling_efficiency"] == pytest.approx(both["throughput"] / (2 * one["throughput"]))
    assert record["scaling_efficiency"] > 0


def test_scaling_benchmark_with_a_failing_worker_ends_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not onnx")
    np.save(tmp_path / "x.npy", np.zeros((4, 8, 8, 1), np.float32))
    proc = run_script("bench_scaling.py", "--backend", "onnxruntime", "--artifact", bad, "--samples",
                      tmp_path / "x.npy", "--gpus", "2", "--output", tmp_path / "s.json", check=False)
    assert proc.returncode == 1 and not (tmp_path / "s.json").exists()
    assert proc.stderr.strip().splitlines()[-1] == (
        "bench_scaling.py: error: the worker on slot 0 failed before timing (its message is above)")


# --- The plan: dry runs with 1, 2 and 4 GPUs, on one machine and with the SLURM profile ------------------------------


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Dry runs of the tiny config with both TensorRT backends and `gpus: N` in an overlay (as a user would write
    it): on this machine with N = 1, 2 and 4 and `--resources gpu=N` (profiles/local's gpu: 1 raised, as
    docs/cluster.md says), and with profiles/slurm and N = 2."""
    from test_slurm import TINY, dry_run, job_env, require_slurm_plugin, snakemake

    require_slurm_plugin()
    apptainer = tmp_path_factory.mktemp("fake-apptainer")  # Snakemake asks `apptainer --version` before planning
    (apptainer / "apptainer").write_text("#!/bin/sh\necho 'apptainer version 1.3.6'\n")
    (apptainer / "apptainer").chmod(0o755)
    workdir = tmp_path_factory.mktemp("plans")
    runs = {}
    for where, gpus in (("local", 1), ("local", 2), ("local", 4), ("slurm", 2)):
        overlay = workdir / f"gpus{gpus}.yaml"
        overlay.write_text(json.dumps({"gpus": gpus, "backends": ["savedmodel", *TRT_BACKENDS], "benchmark": {
            "enabled": True, "backends": TRT_BACKENDS, "baseline": "onnxruntime", "batch_sizes": [1, 8]}}))
        if where == "slurm":
            runs[f"slurm{gpus}"] = dry_run("slurm", (TINY, overlay), workdir, apptainer)
            continue
        proc = snakemake(workdir, "--dry-run", "--resources", f"gpu={gpus}", "--configfile", str(TINY), str(overlay),
                         "--replace-workflow-config", env=job_env(), timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[f"local{gpus}"] = proc.stdout + proc.stderr
    return runs


TRT_BACKENDS = ["onnxruntime", "tensorrt", "tensorrt_cpp"]


def job_blocks(out: str, rule: str) -> list[str]:
    return [b for b in re.split(r"\n(?=\s*(?:local)?rule \w+:)", out) if re.match(rf"\s*(?:local)?rule {rule}:", b)]


@pytest.mark.parametrize("gpus", [1, 2, 4])
def test_one_shard_job_per_gpu_each_asking_one_gpu(plans: dict[str, str], gpus: int) -> None:
    out = plans[f"local{gpus}"]
    stats = out.split("Job stats:", 1)[1].split("\ntotal", 1)[0]  # the table: rule, count
    jobs = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}
    sharded = {"predict_tensorrt_shard": gpus, "predict_tensorrt_cpp_shard": gpus, "merge_tensorrt_shards": 1,
               "merge_tensorrt_cpp_shards": 1, "gpu_identity": 1, "benchmark_scaling": 1}
    if gpus == 1:  # the unsharded plan, unchanged
        assert jobs["predict_tensorrt"] == jobs["predict_tensorrt_cpp"] == 1
        assert not set(sharded) & set(jobs)
        return
    assert {r: jobs.get(r) for r in sharded} == sharded
    assert "predict_tensorrt" not in jobs and "predict_tensorrt_cpp" not in jobs
    shards = job_blocks(out, "predict_tensorrt_shard")
    assert sorted(re.search(r"--shard (\d+)/(\d+) --device-slot (\d+)", b).groups() for b in shards) == [
        (str(i), str(gpus), str(i)) for i in range(gpus)]
    for block in shards + job_blocks(out, "predict_tensorrt_cpp_shard"):
        assert re.search(r"resources: .*\bgpu=1\b", block), block
    for rule in ("gpu_identity", "benchmark_scaling"):  # every GPU at once
        assert re.search(rf"resources: .*\bgpu={gpus}\b", job_blocks(out, rule)[0]), rule
    assert f"--gpus {gpus} " in job_blocks(out, "benchmark_scaling")[0]


def test_slurm_gives_each_shard_one_gpu_and_the_identity_check_every_gpu(plans: dict[str, str]) -> None:
    from test_slurm import planned_jobs

    jobs = planned_jobs(plans["slurm2"])
    for rule in ("predict_tensorrt_shard", "predict_tensorrt_cpp_shard"):
        assert (jobs[rule]["resources"]["gres"], jobs[rule]["resources"]["gpu"]) == ("gpu:1", "0"), jobs[rule]
    for rule in ("gpu_identity", "benchmark_scaling"):
        assert (jobs[rule]["resources"]["gres"], jobs[rule]["resources"]["gpu"]) == ("gpu:2", "0"), jobs[rule]
    for rule in ("merge_tensorrt_shards", "merge_tensorrt_cpp_shards"):
        assert "gres" not in jobs[rule]["resources"] and jobs[rule]["resources"].get("gpu", "0") == "0"
