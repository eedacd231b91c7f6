"""scripts/benchmark.py for real on small models (ONNX Runtime always, SavedModel when slow tests run), the C++
timing normalisation without CUDA, and the TensorRT path where a GPU, TensorRT and pycuda are present."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import REPO, TEST_TACTIC_SOURCES, leftovers, run_script
from trtverify.benchstats import ROW_KEYS, STAT_DIGITS, STAT_KEYS
from trtverify.errors import UserError

CLASSES = 10


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reshape -> MatMul -> Softmax on NHWC 8x8x1 input with a dynamic batch, and 5 test samples."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    d = tmp_path_factory.mktemp("bench_onnx")
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(size=(64, CLASSES)).astype(np.float32), "W")
    shape = numpy_helper.from_array(np.array([-1, 64], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", CLASSES])], [weights, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # readable by every onnxruntime the project supports
    onnx.checker.check_model(model)
    onnx.save(model, d / "model.onnx")
    np.save(d / "x.npy", rng.random((5, 8, 8, 1), dtype=np.float32))
    return {"onnx": d / "model.onnx", "samples": d / "x.npy", "dir": d}


def bench(*args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_script("benchmark.py", *args, check=check)


def cpp_row(*args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_script("bench_cpp_row.py", *args, check=check)


def check_row(row: dict[str, Any], *, backend: str, batch: int, iterations: int) -> None:
    assert tuple(row) == ROW_KEYS
    assert (row["backend"], row["batch"], row["iterations"]) == (backend, batch, iterations)
    lat = row["latency_ms"]
    assert set(lat) == set(STAT_KEYS)
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert row["throughput_samples_per_s"] == pytest.approx(batch * 1000 / lat["mean"], rel=1e-3)
    assert row["copies_included"] is True and row["percentile_method"] == "linear"
    assert row["peak_host_rss_bytes"] > 10 * 2**20
    assert row["device"] and row["versions"]["framework_version"]
    assert row["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))


@pytest.mark.parametrize("batch", [1, 8])  # 8 > the 5 samples: the batch is tiled
def test_onnxruntime_row(tiny_onnx: dict[str, Path], tmp_path: Path, batch: int) -> None:
    out = tmp_path / "bench" / f"onnxruntime_b{batch}.json"
    proc = bench("--backend", "onnxruntime", "--artifact", tiny_onnx["onnx"], "--samples", tiny_onnx["samples"],
                 "--batch-size", batch, "--warmup", 3, "--iterations", 25, "--providers", "CPUExecutionProvider",
                 "--model", "tiny", "--output", out)
    row = json.loads(out.read_text())
    check_row(row, backend="onnxruntime", batch=batch, iterations=25)
    assert (row["model"], row["precision"], row["warmup"], row["cuda_graph"]) == ("tiny", "fp32", 3, False)
    assert row["gpu_compute_ms"] is None and row["gpu_memory_bytes"] is None
    assert row["details"]["providers_used"] == ["CPUExecutionProvider"]
    assert row["details"]["distinct_samples_in_batch"] == min(batch, 5)
    assert row["versions"]["framework"] == "onnxruntime"
    assert f"onnxruntime b{batch}: p50" in proc.stderr
    assert leftovers(out.parent) == []


def test_tile_batch_repeats_the_samples_in_order() -> None:
    from trtverify.benchrow import tile_batch

    x = np.arange(3, dtype=np.float32).reshape(3, 1)
    assert tile_batch(x, 2)[:, 0].tolist() == [0, 1]
    assert tile_batch(x, 7)[:, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert tile_batch(x, 7).flags.c_contiguous


@pytest.mark.parametrize("args,message", [
    (["--warmup", "-1"], "--warmup >= 0"),
    (["--providers", "NoSuchExecutionProvider"], "available here: "),
    (["--iterations", "0"], "--iterations >= 1"),
])
def test_user_errors_are_one_line_and_write_nothing(tiny_onnx: dict[str, Path], tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    out = tmp_path / "row.json"
    proc = bench("--backend", "onnxruntime", "--artifact", tiny_onnx["onnx"], "--samples", tiny_onnx["samples"],
                 "--batch-size", 2, "--model", "tiny", "--output", out, *args, check=False)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_samples_that_do_not_fit_the_model(tiny_onnx: dict[str, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 9, 9, 1), np.float32))
    proc = bench("--backend", "onnxruntime", "--artifact", tiny_onnx["onnx"], "--samples", tmp_path / "x.npy",
                 "--batch-size", 2, "--model", "tiny", "--output", tmp_path / "row.json", check=False)
    assert proc.returncode == 1 and "does not fit this model" in proc.stderr and "Traceback" not in proc.stderr


def test_tensorrt_without_its_stack_is_a_user_error(tiny_onnx: dict[str, Path], tmp_path: Path) -> None:
    engine = tmp_path / "fp32.trt"
    engine.write_bytes(b"not an engine")
    proc = run_script("benchmark_tensorrt.py", "--artifact", engine, "--samples", tiny_onnx["samples"],
                      "--batch-size", 2, "--model", "tiny", "--output", tmp_path / "row.json", check=False)
    if proc.returncode == 0:
        pytest.skip("a full TensorRT stack is installed here")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error:" in proc.stderr and not (tmp_path / "row.json").exists()


@pytest.mark.parametrize("program,option", [("benchmark.py", "--providers"), ("benchmark_tensorrt.py", "--overlap"),
                                            ("bench_cpp_row.py", "--timing")])
def test_help_and_import_need_no_framework(program: str, option: str) -> None:
    assert option in run_script(program, "--help").stdout
    code = (f"import sys, {program[:-3]}, trtverify.benchstats; "
            "print(sorted({'tensorflow', 'onnxruntime', 'tensorrt', 'pycuda'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "scripts")
    assert proc.stdout.strip() == "[]", proc.stderr


# ---------------------------------------------------------------- trt_infer --timing, no CUDA needed
def cpp_timing(**overrides: Any) -> dict[str, Any]:
    timing = {
        "tool": "trt_infer", "tensorrt_version": "8.5.3", "device": "NVIDIA H100 80GB HBM3", "precision": "fp16",
        "batch": 32, "warmup": 20, "iterations": 200, "cuda_graph": True,
        "gpu_compute_ms": {"mean": 0.05, "p50": 0.049, "p90": 0.052, "p95": 0.053, "p99": 0.06, "min": 0.047,
                           "max": 0.08},
        "end_to_end_ms": {"mean": 0.2, "p50": 0.19, "p90": 0.22, "p95": 0.23, "p99": 0.3, "min": 0.18, "max": 0.5},
        "throughput_samples_per_s": 160000.0, "peak_gpu_memory_bytes": 12345678, "peak_host_rss_bytes": 98765432,
        "percentile_method": "linear", "copies_included": True, "timer": "cuda_events",
        "engine": "results/tiny/engines/fp16.trt", "input_shape": [32, 8, 8, 1],
    }
    return {**timing, **overrides}


def test_cpp_timing_becomes_a_row(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps(cpp_timing()))
    out = tmp_path / "tensorrt_cpp_fp16_b32.json"
    cpp_row("--timing", tmp_path / "t.json", "--model", "tiny", "--batch-size", 32, "--output", out)
    row = json.loads(out.read_text())
    assert tuple(row) == ROW_KEYS
    assert (row["backend"], row["precision"], row["batch"], row["cuda_graph"]) == ("tensorrt_cpp", "fp16", 32, True)
    assert row["latency_ms"] == cpp_timing()["end_to_end_ms"]
    assert row["gpu_compute_ms"] == cpp_timing()["gpu_compute_ms"]
    assert row["throughput_samples_per_s"] == pytest.approx(32 * 1000 / 0.2)
    assert (row["gpu_memory_bytes"], row["peak_host_rss_bytes"]) == (12345678, 98765432)
    assert row["versions"] == {"framework": "tensorrt", "framework_version": "8.5.3", "tool": "trt_infer"}
    assert row["device"] == "NVIDIA H100 80GB HBM3" and row["copies_included"] is True
    assert row["details"]["input_shape"] == [32, 8, 8, 1] and "timer" not in row["details"]


def test_cpp_timing_is_rounded_like_the_python_rows(tmp_path: Path) -> None:
    """trt_infer prints float32 sums at full precision (0.0712595196813345); rows keep STAT_DIGITS decimals."""
    raw = {"mean": 0.0712595196813345, "p50": 0.06977600231766701, "p90": 0.083347200602293, "p95": 0.0905311964452266,
           "p99": 0.09408448107540607, "min": 0.0613120011985302, "max": 0.09638399630784988}
    (tmp_path / "t.json").write_text(json.dumps(cpp_timing(end_to_end_ms=raw, gpu_compute_ms=raw)))
    cpp_row("--timing", tmp_path / "t.json", "--model", "tiny", "--output", tmp_path / "row.json")
    row = json.loads((tmp_path / "row.json").read_text())
    for key in ("latency_ms", "gpu_compute_ms"):
        assert row[key] == {k: round(v, STAT_DIGITS) for k, v in raw.items()}
        assert row[key]["mean"] == 0.07126


def test_cpp_timing_without_copies_or_precision(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps(cpp_timing(copies_included=False, precision="unknown")))
    cpp_row("--timing", tmp_path / "t.json", "--model", "tiny", "--precision", "tf32",
          "--output", tmp_path / "row.json")
    row = json.loads((tmp_path / "row.json").read_text())
    assert (row["copies_included"], row["precision"]) == (False, "tf32")
    assert "enqueueV3 (end to end)" in row["timer"]


def test_overlapped_cpp_timing_says_so(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps(cpp_timing(overlap=True, cuda_graph=False)))
    cpp_row("--timing", tmp_path / "t.json", "--model", "tiny", "--output", tmp_path / "row.json")
    row = json.loads((tmp_path / "row.json").read_text())
    assert row["details"]["overlap"] is True and "interval between completions" in row["timer"]
    assert row["details"]["of_compute_limit"] == pytest.approx(0.05 / 0.2)


@pytest.mark.parametrize("timing,extra,message", [
    (cpp_timing(batch=8), ["--batch-size", "32"], "is for batch 8, not 32"),
    (cpp_timing(), ["--precision", "fp32"], "is for precision fp16, not fp32"),
    ({k: v for k, v in cpp_timing().items() if k != "end_to_end_ms"}, [], "lacks end_to_end_ms"),
    (cpp_timing(end_to_end_ms={"mean": 1.0, "p50": 2.0}), [], "must hold mean, p50"),
    (cpp_timing(gpu_compute_ms={"mean": 1, "p50": 3, "p90": 2, "p95": 4, "p99": 5, "min": 0.5, "max": 6}), [],
     "inconsistent"),
])
def test_bad_cpp_timing_is_refused(tmp_path: Path, timing: dict[str, Any], extra: list[str], message: str) -> None:
    (tmp_path / "t.json").write_text(json.dumps(timing))
    proc = cpp_row("--timing", tmp_path / "t.json", "--model", "tiny", "--output", tmp_path / "row.json",
                 *extra, check=False)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "row.json").exists()


# ---------------------------------------------------------------- SavedModel (TensorFlow)
@pytest.mark.slow
def test_savedmodel_row(tiny_onnx: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="the SavedModel backend needs TensorFlow")
    export = textwrap.dedent(f"""
        import keras
        m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense({CLASSES},
                              activation="softmax")])
        m.export({str(tmp_path / "saved_model")!r}, verbose=False)
    """)
    subprocess.run([sys.executable, "-c", export], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    out = tmp_path / "savedmodel_b4.json"
    bench("--backend", "savedmodel", "--artifact", tmp_path / "saved_model", "--samples", tiny_onnx["samples"],
          "--batch-size", 4, "--warmup", 3, "--iterations", 20, "--model", "tiny", "--output", out)
    row = json.loads(out.read_text())
    check_row(row, backend="savedmodel", batch=4, iterations=20)
    assert row["versions"]["framework"] == "tensorflow" and row["gpu_compute_ms"] is None


# ---------------------------------------------------------------- TensorRT timing logic, with CUDA faked
class FakeCuda:
    """pycuda.driver's Event, on a GPU clock that only the fake runner advances."""

    def __init__(self) -> None:
        self.gpu_now = 0.0
        outer = self

        class Event:
            def record(self, stream: object) -> None:
                self.at = outer.gpu_now

            def time_since(self, start: "Event") -> float:
                return self.at - start.at

            def synchronize(self) -> None:
                pass

        self.Event = Event


class FakeTensorRTRunner:
    """stage/execute/fetch on a fake stream: the first ``slow`` executes take 100 ms of GPU time, later ones 1 ms."""

    name = "tensorrt"

    def __init__(self, slow: int) -> None:
        self.cuda, self.stream, self.slow, self.calls = FakeCuda(), type("S", (), {"handle": 7})(), slow, []

    def input_view(self, n: int) -> np.ndarray:
        self.pinned = np.empty((n, 8, 8, 1), np.float32)
        return self.pinned

    def stage(self, batch: np.ndarray) -> None:
        assert batch is self.pinned  # staged from the pinned buffer, no host copy per iteration
        self.calls.append("stage")
        self.n = len(batch)

    def execute(self) -> None:
        self.calls.append("execute")
        self.cuda.gpu_now += 100.0 if self.calls.count("execute") <= self.slow else 1.0

    def download(self) -> None:
        self.calls.append("download")

    def fetch(self) -> np.ndarray:
        self.calls.append("fetch")
        return np.full((self.n, CLASSES), 0.1, np.float32)


def test_tensorrt_gpu_times_skip_the_warmup() -> None:
    from trtverify.benchgpu import measure_tensorrt

    runner = FakeTensorRTRunner(slow=1 + 4)  # the check call and four warm-up calls are slow
    m = measure_tensorrt(runner, np.zeros((4, 8, 8, 1), np.float32), warmup=4, iterations=10, cuda_graph=False)
    assert m["gpu"].count == 10 and m["gpu"].max == pytest.approx(1.0) and m["gpu"].min == pytest.approx(1.0)
    assert m["latency"].count == 10 and m["latency"].max == pytest.approx(1.0)  # events: the same GPU clock
    assert set(m["details"]["host_latency_ms"]) == set(STAT_KEYS) and m["details"]["overlap"] is False
    assert runner.calls[:3] == ["stage", "execute", "fetch"] and runner.calls[3:] == ["stage", "execute",
                                                                                      "download"] * 14


def test_cuda_graph_captures_execute_once_and_launches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from trtverify.benchgpu import measure_tensorrt

    log = []
    driver = types.SimpleNamespace(
        CUstream=lambda handle: ("stream", handle),
        CUstreamCaptureMode=types.SimpleNamespace(CU_STREAM_CAPTURE_MODE_THREAD_LOCAL=2),
        cuStreamBeginCapture=lambda s, mode: log.append(("begin", s, mode)) or (0,),
        cuStreamEndCapture=lambda s: log.append(("end", s)) or (0, "graph"),
        cuGraphInstantiate=lambda g, flags: log.append(("instantiate", g)) or (0, "exec"),
        cuGraphLaunch=lambda e, s: log.append(("launch", e, s)) or (0,),
    )
    bindings = types.ModuleType("cuda.bindings")
    bindings.driver = driver  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.driver", driver)
    runner = FakeTensorRTRunner(slow=0)
    m = measure_tensorrt(runner, np.zeros((2, 8, 8, 1), np.float32), warmup=3, iterations=5, cuda_graph=True)
    assert runner.calls.count("execute") == 2  # the check call, then the one captured
    assert log[:3] == [("begin", ("stream", 7), 2), ("end", ("stream", 7)), ("instantiate", "graph")]
    assert log[3:] == [("launch", "exec", ("stream", 7))] * 8
    assert "CUDA graph" in m["timer"]
    driver.cuStreamEndCapture = lambda s: (901, None)  # e.g. an operation the capture could not record
    with pytest.raises(UserError, match="cannot be captured"):
        measure_tensorrt(FakeTensorRTRunner(slow=0), np.zeros((2, 8, 8, 1), np.float32), 0, 1, cuda_graph=True)


class SimGpu:
    """pycuda.driver's streams, events, buffers and async copies on a simulated GPU timeline, for the overlapped
    timing.

    Each stream runs its operations in order, each starting once the stream is free, the events it was told to
    wait for have happened and the host has issued it (the host clock moves only when it waits on an event);
    copies and executes take fixed times. Device buffers check the data hazards a wrong pipeline would create.
    """

    def __init__(self, upload_ms: float, compute_ms: float, download_ms: float) -> None:
        self.host, self.upload_ms, self.compute_ms, self.download_ms = 0.0, upload_ms, compute_ms, download_ms
        self.streams: dict[int, Any] = {}
        self.buffers: dict[int, SimBuffer] = {}
        sim = self

        class Stream:
            def __init__(self) -> None:
                self.free = 0.0
                self.handle = 100 + len(sim.streams)
                sim.streams[self.handle] = self

            def wait_for_event(self, event: "Event") -> None:
                self.free = max(self.free, event.at)

            def synchronize(self) -> None:
                sim.host = max(sim.host, self.free)

        class Event:
            def record(self, stream: Stream) -> None:
                self.at = max(stream.free, sim.host)

            def synchronize(self) -> None:
                sim.host = max(sim.host, self.at)

            def time_since(self, start: "Event") -> float:
                return self.at - start.at

        self.Stream, self.Event = Stream, Event

    def run(self, stream: Any, ms: float) -> tuple[float, float]:
        start = max(stream.free, self.host)
        stream.free = start + ms
        return start, stream.free

    def mem_alloc(self, nbytes: int) -> "SimBuffer":
        buffer = SimBuffer(address=1000 * (len(self.buffers) + 1))
        self.buffers[int(buffer)] = buffer
        return buffer

    def pagelocked_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.empty(shape, dtype)

    def memcpy_htod_async(self, dst: "SimBuffer", src: np.ndarray, stream: Any) -> None:
        start, dst.ready = self.run(stream, self.upload_ms)
        assert start >= dst.read_until, "an upload overwrote an input its execute had not finished reading"

    def memcpy_dtoh_async(self, dst: np.ndarray, src: "SimBuffer", stream: Any) -> None:
        start, src.read_until = self.run(stream, self.download_ms)
        assert start >= src.ready, "a download started before the execute that writes its output had finished"
        dst.fill(1.0 / CLASSES)


class SimBuffer:
    def __init__(self, address: int) -> None:
        self.address, self.ready, self.read_until, self.executes, self.freed = address, 0.0, 0.0, 0, False

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        self.freed = True


class SimContext:
    """TensorRT's execution context on a SimGpu: an enqueue runs on its stream with the tensor addresses set when it
    is called (as enqueueV3 reads them then), checking the hazards on those buffers."""

    def __init__(self, sim: SimGpu) -> None:
        self.sim, self.addresses, self.shape, self.streams = sim, {}, (0,), []

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (self.shape[0], CLASSES) if name == "probs" else self.shape

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        d_in, d_out = self.sim.buffers[self.addresses["x"]], self.sim.buffers[self.addresses["probs"]]
        start, end = self.sim.run(self.sim.streams[stream_handle], self.sim.compute_ms)
        assert start >= d_in.ready, "an execute started before its upload had finished"
        assert start >= d_out.read_until, "an execute overwrote an output still being downloaded"
        d_in.read_until, d_out.ready = end, end
        d_in.executes += 1
        self.streams.append(stream_handle)
        return True


class OneContextEngine:
    def create_execution_context(self) -> None:
        raise AssertionError("a further execution context: TensorRT 8.5 gives it no profile and refuses it profile 0")


def sim_tensorrt_runner(sim: SimGpu) -> Any:
    """The real TensorRTRunner (add_slot, use, execute) on a fake engine and context and the simulated GPU:
    activate's results set by hand, as no engine file or GPU is here."""
    from trtverify.backends.tensorrt import TensorRTRunner

    runner = TensorRTRunner.__new__(TensorRTRunner)
    runner.cuda, runner.engine, runner.context = sim, OneContextEngine(), SimContext(sim)
    runner.input_name, runner.output_name, runner.min_shape, runner.max_shape = "x", "probs", (1, 8, 8, 1), (8, 8, 8, 1)
    runner.max_batch, runner.in_dtype, runner.out_dtype = 8, np.dtype(np.float32), np.dtype(np.float32)
    runner.stream, runner.d_in, runner.d_out, runner.batch, runner.slots = sim.Stream(), sim.mem_alloc(1), \
        sim.mem_alloc(1), 0, []
    runner.use(None)
    return runner


@pytest.mark.parametrize("upload,compute,download,period", [
    (1.0, 2.0, 0.5, 2.0),  # compute-bound: the copies hide behind compute entirely
    (3.0, 1.0, 0.5, 3.0),  # upload-bound: the period is the upload's time, compute waits
])
def test_overlapped_timing_reaches_the_slowest_stage(upload: float, compute: float, download: float,
                                                     period: float) -> None:
    """One batch at a time takes upload + compute + download; two in flight, the slowest of the three. The hazard
    checks fail if the host does not wait for batch i-2 before reusing its slot or an execute does not wait for its
    upload."""
    from trtverify.benchgpu import measure_overlapped

    runner = sim_tensorrt_runner(SimGpu(upload, compute, download))
    batch = np.ones((4, 8, 8, 1), np.float32)
    m = measure_overlapped(runner, batch, warmup=3, iterations=20)
    assert m["latency"].count == 20 and m["latency"].mean == pytest.approx(period)
    assert m["latency"].max == pytest.approx(period)  # steady state from the first timed batch on
    assert m["gpu"].mean == pytest.approx(compute) and m["details"]["overlap"] is True
    # one untimed setup execute each, then alternating, all on the runner's one context and its stream
    assert [s.d_in.executes for s in runner.slots] == [1 + 12, 1 + 11]
    assert runner.context.streams == [runner.stream.handle] * 25
    assert runner.context.addresses == {"x": int(runner.d_in), "probs": int(runner.d_out)}  # its own ones again
    assert all((s.h_in == batch).all() for s in runner.slots)  # pinned inputs filled once, before timing


def test_overlapped_timing_without_warmup_counts_the_pipeline_fill() -> None:
    from trtverify.benchgpu import measure_overlapped

    m = measure_overlapped(sim_tensorrt_runner(SimGpu(1.0, 2.0, 0.5)), np.ones((2, 8, 8, 1), np.float32), 0, 4)
    # the first batch completes 3.5 ms after the first upload was issued, each later one 2 ms after the previous
    assert m["latency"].max == pytest.approx(3.5) and m["latency"].mean == pytest.approx((3.5 + 3 * 2.0) / 4)


def test_a_slot_that_ran_out_of_device_memory_is_freed_with_the_runner() -> None:
    """add_slot lists the slot before allocating, so deactivate frees what a failed allocation left."""
    sim = SimGpu(1.0, 1.0, 1.0)
    runner = sim_tensorrt_runner(sim)
    got = [sim.mem_alloc(1)]

    def second_fails(nbytes: int) -> SimBuffer:
        if not got:
            raise MemoryError("cuMemAlloc failed: out of memory")
        return got.pop()

    first = got[0]
    sim.mem_alloc = second_fails  # type: ignore[method-assign]
    with pytest.raises(MemoryError):
        runner.add_slot(4)
    runner.deactivate()
    assert first.freed and runner.slots == []


# ---------------------------------------------------------------- TensorRT on a GPU
def gpu_stack_missing() -> str | None:
    """Why the TensorRT benchmark cannot run here, or None."""
    from trtverify.tensorrt_compat import import_tensorrt

    if importlib.util.find_spec("pycuda") is None:
        return "pycuda is not installed"
    import pycuda.driver as cuda

    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device is visible"
    except cuda.Error as exc:
        return f"CUDA is unusable here ({exc})"
    try:
        import_tensorrt("auto")
    except UserError:
        return "TensorRT is not installed"
    return None


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph,overlap", [(False, False), (True, False), (False, True)])
def test_tensorrt_row(tiny_onnx: dict[str, Path], tmp_path: Path, cuda_graph: bool, overlap: bool) -> None:
    reason = gpu_stack_missing()
    if reason:
        pytest.skip(reason)
    if cuda_graph and importlib.util.find_spec("cuda") is None:
        pytest.skip("--cuda-graph needs cuda-python, which is not installed")
    engine = tmp_path / "fp32.trt"
    run_script("build_engine.py", "--onnx", tiny_onnx["onnx"], "--precision", "fp32", "--min-batch", 1,
               "--opt-batch", 8, "--max-batch", 16, "--workspace-mib", 256,
               f"--tactic-sources={TEST_TACTIC_SOURCES}", "--engine", engine, "--info", tmp_path / "build.json")
    out = tmp_path / "tensorrt_fp32_b8.json"
    args = ["--cuda-graph"] if cuda_graph else ["--overlap"] if overlap else []
    run_script("benchmark_tensorrt.py", "--artifact", engine, "--samples", tiny_onnx["samples"], "--batch-size", 8,
               "--warmup", 5, "--iterations", 50, "--model", "tiny", "--output", out, *args)
    row = json.loads(out.read_text())
    check_row(row, backend="tensorrt", batch=8, iterations=50)
    gpu = row["gpu_compute_ms"]
    assert set(gpu) == set(STAT_KEYS) and 0 < gpu["p50"] <= gpu["p99"]
    # execute alone is part of stage + execute + fetch; overlapped, the executes are serial on one stream, so the
    # mean interval between completions cannot be shorter than the mean execute (up to the events' resolution)
    if overlap:
        assert gpu["mean"] <= row["latency_ms"]["mean"] + 0.001
    else:
        assert gpu["mean"] < row["latency_ms"]["mean"]
    assert row["gpu_memory_bytes"] > 0 and row["cuda_graph"] is cuda_graph and row["details"]["overlap"] is overlap


# ---------------------------------------------------------------- bench_table.py
def fake_row(backend: str, batch: int, p50: float, **overrides: Any) -> dict[str, Any]:
    from trtverify.benchstats import make_row

    lat = {"mean": p50, "p50": p50, "p90": p50, "p95": p50, "p99": p50 * 2, "min": p50 / 2, "max": p50 * 3}
    fields = dict(
        model="tiny", backend=backend, precision="fp32", batch=batch, warmup=2, iterations=10, cuda_graph=False,
        copies_included=True, latency_ms=lat, throughput_samples_per_s=batch * 1000 / p50, gpu_compute_ms=None,
        percentile_method="linear", timer="t", peak_host_rss_bytes=100 * 2**20, gpu_memory_bytes=None,
        device="CPU", versions={"framework": backend, "framework_version": "1"}, details={})
    return make_row(**{**fields, **overrides})


def write_rows(d: Path, rows: list[dict[str, Any]]) -> list[Path]:
    paths = []
    for i, row in enumerate(rows):
        paths.append(d / f"row{i}.json")
        paths[-1].write_text(json.dumps(row))
    return paths


def test_bench_table_outputs_and_speedup(tmp_path: Path) -> None:
    rows = [fake_row("savedmodel", 1, 2.0), fake_row("savedmodel", 8, 4.0), fake_row("onnxruntime", 1, 0.5),
            fake_row("onnxruntime", 8, 1.0), fake_row("onnxruntime", 32, 2.0),
            fake_row("tensorrt", 8, 0.2, precision="fp16", cuda_graph=True, device="GPU", gpu_memory_bytes=2**21,
                     gpu_compute_ms={"mean": 0.1, "p50": 0.1, "p90": 0.1, "p95": 0.1, "p99": 0.1, "min": 0.1,
                                     "max": 0.1})]
    out = tmp_path / "out"
    proc = run_script("bench_table.py", *write_rows(tmp_path, rows), "--tsv", out / "benchmarks.tsv",
                      "--json", out / "benchmarks.json", "--plots", out / "plots")
    lines = (out / "benchmarks.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    table = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert len(table) == 6 and header[:4] == ["model", "backend", "precision", "batch"]
    speedup = {(t["backend"], t["batch"]): t["speedup"] for t in table}
    assert speedup[("onnxruntime", "1")] == "4.0" and speedup[("savedmodel", "8")] == "1.0"
    assert speedup[("onnxruntime", "32")] == ""  # no baseline measured at batch 32
    assert speedup[("tensorrt", "8")] == "20.0"
    assert {(t["backend"], t["batch"]): t["speedup_p50"] for t in table}[("onnxruntime", "8")] == "4.0"
    trt = next(t for t in table if t["backend"] == "tensorrt")
    assert (trt["gpu_compute_p50_ms"], trt["gpu_memory_mib"], trt["cuda_graph"]) == ("0.1", "2.0", "True")
    summary = json.loads((out / "benchmarks.json").read_text())
    assert len(summary["rows"]) == 6 and summary["baseline"] == "savedmodel"
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["tiny_latency_p50.png", "tiny_throughput.png"]
    assert (out / "plots" / "tiny_throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert "onnxruntime" in proc.stdout and "tensorrt" in proc.stdout


def test_bench_table_refuses_duplicates_and_foreign_json(tmp_path: Path) -> None:
    paths = write_rows(tmp_path, [fake_row("onnxruntime", 1, 0.5), fake_row("onnxruntime", 1, 0.6)])
    args = ["--tsv", tmp_path / "t.tsv", "--json", tmp_path / "t.json"]
    proc = run_script("bench_table.py", *paths, *args, check=False)
    assert proc.returncode == 1 and "both measure" in proc.stderr
    (tmp_path / "other.json").write_text('{"model": "x"}')
    proc = run_script("bench_table.py", tmp_path / "other.json", *args, check=False)
    assert proc.returncode == 1 and "is not a benchmark row" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "t.tsv").exists()


def test_measured_rows_feed_the_table(tiny_onnx: dict[str, Path], tmp_path: Path) -> None:
    rows = []
    for batch in (1, 4):
        rows.append(tmp_path / f"onnxruntime_b{batch}.json")
        bench("--backend", "onnxruntime", "--artifact", tiny_onnx["onnx"], "--samples", tiny_onnx["samples"],
              "--batch-size", batch, "--warmup", 1, "--iterations", 5, "--model", "tiny", "--output", rows[-1])
    run_script("bench_table.py", *rows, "--tsv", tmp_path / "t.tsv", "--json", tmp_path / "t.json")
    assert len((tmp_path / "t.tsv").read_text().splitlines()) == 3


# ---------------------------------------------------------------- tools/gpu_bench.sh and its table
FAKE_TRT_INFER = """#!/usr/bin/env python3
import json, sys
a = sys.argv[1:]
overlap, batch = "--overlap" in a, int(a[a.index("--batch") + 1])
e2e, gpu = (1.1, 1.0) if overlap else (2.0, 1.0)
stats = lambda m: dict(mean=m, p50=m, p90=m, p95=m, p99=m, min=m, max=m)
json.dump(dict(tool="trt_infer", tensorrt_version="8.5.3", device="fake GPU", precision=a[a.index("--precision") + 1],
               batch=batch, warmup=1, iterations=2, cuda_graph=False, overlap=overlap, gpu_compute_ms=stats(gpu),
               end_to_end_ms=stats(e2e), throughput_samples_per_s=batch * 1000 / e2e, peak_gpu_memory_bytes=1,
               peak_host_rss_bytes=1), open(a[a.index("--timing") + 1], "w"))
"""


def test_gpu_bench_records_each_failure_and_goes_on(tmp_path: Path) -> None:
    """Python's TensorRT path fails here (no pycuda); the fake C++ rows still reach the table."""
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "work" / "m" / "engines").mkdir(parents=True)
    (tmp_path / "work" / "m" / "engines" / "fp16.trt").write_bytes(b"engine")
    np.save(tmp_path / "models" / "m" / "test_samples.npy", np.zeros((2, 4, 4, 3), np.float32))
    fake = tmp_path / "trt_infer"
    fake.write_text(FAKE_TRT_INFER)
    fake.chmod(0o755)
    env = {**os.environ, "BENCH_OUT": str(tmp_path / "out"), "MODELS_DIR": str(tmp_path / "models"),
           "WORK": str(tmp_path / "work"), "CPP_BIN": str(fake), "PY": sys.executable, "BENCH_PRECISIONS": "fp16",
           "BENCH_BATCHES": "128", "PYTHONPATH": str(REPO / "scripts")}
    proc = subprocess.run(["bash", str(REPO / "tools" / "gpu_bench.sh"), "m"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failures = (tmp_path / "out" / "failures.txt").read_text().splitlines()
    assert [f.split("\t")[0] for f in failures] == ["python_m_fp16_b128", "python_m_fp16_b128_overlap"]
    tsv = [r.split("\t") for r in (tmp_path / "out" / "bench.tsv").read_text().splitlines()]
    assert [r[:4] + r[5:7] + [r[9]] + [r[11]] for r in tsv[1:]] == [
        ["m", "fp16", "128", "overlap", "116364", "128000", "1.1", "missing"],
        ["m", "fp16", "128", "serial", "64000", "128000", "2.0", "missing"]]


def test_gpu_bench_table_goals(tmp_path: Path) -> None:
    def row(backend: str, batch: int, e2e: float, gpu: float, overlap: bool) -> dict[str, Any]:
        lat = {k: e2e for k in STAT_KEYS}
        return fake_row(backend, batch, e2e, latency_ms=lat, gpu_compute_ms={k: gpu for k in STAT_KEYS},
                        details={"overlap": overlap})

    rows = [row("tensorrt", 128, 1.15, 1.0, True), row("tensorrt_cpp", 128, 1.1, 1.0, True),
            row("tensorrt", 32, 2.0, 1.0, False), row("tensorrt_cpp", 32, 1.0, 0.9, False),
            row("tensorrt", 1, 9.0, 1.0, False), row("tensorrt_cpp", 1, 1.0, 1.0, False)]
    write_rows(tmp_path, rows)
    subprocess.run([sys.executable, REPO / "tools" / "gpu_bench_table.py", tmp_path, "--tsv", tmp_path / "t.tsv"],
                   check=True, capture_output=True)
    tsv = [r.split("\t") for r in (tmp_path / "t.tsv").read_text().splitlines()]
    got = {(r[2], r[3]): (r[7], r[10], r[11]) for r in tsv[1:]}
    assert got == {("128", "overlap"): ("1.045", "ok", "ok"),  # Python 4.5 % slower; e2e 1.15x, 1.1x compute
                   ("32", "serial"): ("2.0", "MISS", ""),       # the e2e goal is for batch 128 only
                   ("1", "serial"): ("9.0", "", "")}            # and the Python goal for batch >= 32


# ---------------------------------------------------------------- pipeline_costs.py
def test_pipeline_costs_gathers_every_rule(tmp_path: Path) -> None:
    root = tmp_path / "results" / "benchmarks"
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {"train/tiny.tsv": "3.50\t0:00:03\t812.25\t900\t700\t750\t1\t2\t90\t3.1\n",
             "predict_tensorrt/tiny_fp32.tsv": "1.00\t0:00:01\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n",
             "benchmark_onnxruntime/tiny/onnxruntime_b8.tsv": "2.0\t0:00:02\t100\t1\t1\t1\t0\t0\t50\t1\n"
                                                              "4.0\t0:00:04\t120\t1\t1\t1\t0\t0\t50\t3\n"}
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(header + body)
    (root / "broken.tsv").write_text("")
    out = tmp_path / "costs.tsv"
    proc = run_script("pipeline_costs.py", "--root", root, "--output", out)
    table = [line.split("\t") for line in out.read_text().splitlines()]
    assert table[0] == ["step", "wildcards", "seconds", "cpu_seconds", "max_rss_mib", "repeats"]
    assert table[1:] == [["benchmark_onnxruntime", "tiny/onnxruntime_b8", "3.0", "2.0", "120.0", "2"],
                         ["predict_tensorrt", "tiny_fp32", "1.0", "", "", "1"],
                         ["train", "tiny", "3.5", "3.1", "812.2", "1"]]
    assert "slowest: train tiny" in proc.stdout and "skipped" in proc.stderr


@pytest.mark.parametrize("make", [False, True])
def test_pipeline_costs_without_benchmarks(tmp_path: Path, make: bool) -> None:
    root = tmp_path / "benchmarks"
    if make:
        root.mkdir()
    proc = run_script("pipeline_costs.py", "--root", root, "--output", tmp_path / "costs.tsv")
    assert "no step benchmarks yet" in proc.stdout
    assert (tmp_path / "costs.tsv").read_text().startswith("step\twildcards")


def test_pipeline_costs_leaves_out_models_no_longer_configured(tmp_path: Path) -> None:
    """Benchmark files of a model removed from the config stay under results/benchmarks; its rows must not be
    counted. Steps that are not per model (compile_cpp, report) are kept; 'tiny_b' is not 'tiny' with a suffix."""
    root = tmp_path / "benchmarks"
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for name in ("train/tiny.tsv", "train/old.tsv", "train/tiny_b.tsv", "predict_tensorrt/tiny_fp16.tsv",
                 "predict_tensorrt/old_fp16.tsv", "benchmark_savedmodel/old/b8.tsv", "compile_cpp/trt_infer.tsv",
                 "report/report.tsv"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(header + "1.0\t0:00:01\t1\t1\t1\t1\t0\t0\t1\t1\n")
    out = tmp_path / "costs.tsv"
    run_script("pipeline_costs.py", "--root", root, "--output", out, "--model=tiny", "--per-model-step=train",
               "--per-model-step=predict_tensorrt", "--per-model-step=benchmark_savedmodel")
    rows = [line.split("\t")[:2] for line in out.read_text().splitlines()[1:]]
    assert rows == [["compile_cpp", "trt_infer"], ["predict_tensorrt", "tiny_fp16"], ["report", "report"],
                    ["train", "tiny"]]


# ---------------------------------------------------------------- rules/bench.smk
BENCH_OVERLAY = ("benchmark: {enabled: true, backends: [%s], batch_sizes: [1, 8], warmup: 2, iterations: 10, "
                 "cuda_graph: false}\n")


def bench_workflow(dest: Path, backends: str) -> tuple[Path, list[str]]:
    """A copy of the workflow and the snakemake arguments for the tiny config with benchmarks on."""
    import shutil

    for name in ("Snakefile", "rules", "scripts", "config", "config.yaml", "envs", "docs", "cpp"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "build"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / "bench.yaml").write_text(BENCH_OVERLAY % backends)
    return dest, ["--configfile", str(REPO / "tests" / "data" / "config-tiny.yaml"), str(dest / "bench.yaml"),
                  "--replace-workflow-config", "--cores", "2"]


def snakemake_jobs(workdir: Path, *args: str) -> dict[str, int]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True,
                          env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    if "Job stats:" not in out:
        return {}
    jobs = {}
    for line in out.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def test_bench_rules_plan_one_job_per_backend_batch_and_precision(tmp_path: Path) -> None:
    ws, args = bench_workflow(tmp_path, "savedmodel, onnxruntime, tensorrt, tensorrt_cpp")
    jobs = snakemake_jobs(ws, "--dry-run", *args, "results/benchmarks.tsv")
    assert {k: v for k, v in jobs.items() if k.startswith("benchmark")} == {
        "benchmark_savedmodel": 2, "benchmark_onnxruntime": 2, "benchmark_tensorrt": 2,
        "benchmark_tensorrt_cpp": 2, "benchmark_table": 1}


@pytest.mark.parametrize("baseline", [None, "onnxruntime"])
def test_the_configured_baseline_reaches_the_table(tmp_path: Path, baseline: str | None) -> None:
    ws, args = bench_workflow(tmp_path, "savedmodel, onnxruntime")
    if baseline:
        overlay = BENCH_OVERLAY.replace("}", f", baseline: {baseline}}}")
        (ws / "bench.yaml").write_text(overlay % "savedmodel, onnxruntime")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args, "--dry-run", "--printshellcmds",
                           "results/benchmarks.tsv"], cwd=ws, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    table_cmd = next(line for line in proc.stdout.splitlines() if "python scripts/bench_table.py" in line)
    assert f"--baseline {baseline or 'savedmodel'} " in table_cmd


@pytest.mark.slow
def test_bench_rules_run_and_rerun_on_a_script_edit(tmp_path: Path) -> None:
    ws, args = bench_workflow(tmp_path, "savedmodel, onnxruntime")
    snakemake_jobs(ws, *args, "results/benchmarks.tsv")
    table = (ws / "results" / "benchmarks.tsv").read_text().splitlines()
    assert len(table) == 5 and {line.split("\t")[1] for line in table[1:]} == {"savedmodel", "onnxruntime"}
    assert sorted(p.name for p in (ws / "results" / "bench_plots").glob("*.png")) == [
        "tiny_latency_p50.png", "tiny_throughput.png"]
    assert (ws / "results" / "benchmarks" / "benchmark_onnxruntime" / "tiny" / "b8.tsv").is_file()
    with open(ws / "scripts" / "bench_table.py", "a") as fh:
        fh.write("# an edit\n")
    assert snakemake_jobs(ws, "--dry-run", *args, "results/benchmarks.tsv") == {"benchmark_table": 1}
    with open(ws / "scripts" / "benchmark.py", "a") as fh:
        fh.write("# an edit\n")
    assert snakemake_jobs(ws, "--dry-run", *args, "results/benchmarks.tsv") == {
        "benchmark_savedmodel": 2, "benchmark_onnxruntime": 2, "benchmark_table": 1}
