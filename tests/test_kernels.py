"""compare's compiled passes (trtverify.kernels) against the definitions written in plain numpy, on the inputs
that take their other paths: NaN, Inf, -0, equal rows, float64 differences that overflow, float16 widened; and how
the library is built, cached and refused."""

from __future__ import annotations

import ctypes.util
import json
import math
import shutil
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from trtverify import kernels
from trtverify.metrics import compare
from trtverify.errors import UserError
from trtverify.kernels import native
from trtverify.outputs import softmax
from trtverify.pairstats import scan
from trtverify.sketch import QuantileSketch

RTOL, ATOL, FLOOR = 1e-3, 1e-5, 1e-6


def bits(x: np.ndarray) -> np.ndarray:
    """The values as integers of their width: equal integers are the same value with the same sign."""
    return x.view(np.int64 if x.itemsize == 8 else np.int32)


def awkward(dtype: type, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(0, 1, (40, 37)).astype(dtype)
    b = (a + rng.normal(0, 1e-4, a.shape)).astype(dtype)
    b[0] = a[0]                                   # an identical row
    a[1, :5], b[1, :5] = 0.0, -0.0                # equal values, other bits
    a[2, 3], b[2, 3] = np.nan, np.nan             # NaN on both sides: equal
    a[3, 4] = np.inf                              # Inf against a number: outside
    a[4, 0], b[4, 0] = -np.inf, -np.inf           # equal Inf: not outside
    b[5, 6] = np.nan
    a[6] = 0.0                                    # a zero reference row: the relative floor
    if np.dtype(dtype).itemsize == 8:
        a[7, 1], b[7, 1] = 1.7e308, -1.7e308      # finite inputs whose difference overflows
    return a, b


def numpy_figures(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """metrics.py's definitions, all at once."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    equal = (bits(a) == bits(b)) | (np.isnan(x) & np.isnan(y))
    with np.errstate(over="ignore", invalid="ignore"):
        d, m = np.abs(x - y), np.abs(x)
    finite = np.isfinite(d) & np.isfinite(m)
    d_ok, m_ok = d[finite], m[finite]
    rel = d_ok / np.maximum(m_ok, FLOOR)
    return {"differing": int((~equal).sum()), "first": int(np.argmin(equal.ravel())) if not equal.all() else -1,
            "outside": int((~finite & ~equal).sum() + (d_ok > RTOL * m_ok + ATOL).sum()),
            "finite": int(finite.sum()), "zeros": int((d_ok == 0).sum()), "sum_abs": float(d_ok.sum()),
            "max_abs": float(d_ok.max()), "min_abs": float(d_ok.min()), "sum_rel": float(rel.sum()),
            "max_rel": float(rel.max()), "d": d_ok}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pair_pass_is_the_numpy_definition(dtype: type) -> None:
    a, b = awkward(dtype, np.random.default_rng(1))
    want = numpy_figures(a, b)
    sketch = QuantileSketch()
    counts = kernels.counters(sketch.key_space)
    dot, na, nb = (np.empty(a.shape[0]) for _ in range(3))
    rows = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    f = kernels.pair_pass(a, b, rows, RTOL, ATOL, FLOOR, sketch.shift, counts, dot, na, nb)
    k = kernels
    assert (f[k.DIFFERING], f[k.FIRST_DIFFERENCE], f[k.OUTSIDE], f[k.FINITE], f[k.ZEROS]) == (
        want["differing"], want["first"], want["outside"], want["finite"], want["zeros"])
    assert (f[k.MAX_ABS], f[k.MIN_ABS]) == (want["max_abs"], want["min_abs"])
    assert f[k.MIN_POSITIVE] == want["d"][want["d"] > 0].min()
    assert f[k.MAX_REL] == pytest.approx(want["max_rel"], rel=1e-15)
    assert f[k.SUM_ABS] == pytest.approx(want["sum_abs"], rel=1e-12)
    assert f[k.SUM_REL] == pytest.approx(want["sum_rel"], rel=1e-12)
    reference = QuantileSketch()
    reference.add(want["d"])                     # the sketch's own (numpy) keys of the same differences
    made = QuantileSketch()
    made.add_counts(kernels.merged(counts), 0, zeros=int(f[k.ZEROS]), total=f[k.SUM_ABS], lo=f[k.MIN_ABS],
                    hi=f[k.MAX_ABS])
    assert made.to_dict()["counts"] == reference.to_dict()["counts"]
    assert made.zero_count == reference.zero_count
    x, y = a[rows].astype(np.float64), b[rows].astype(np.float64)
    with np.errstate(over="ignore"):             # the float64 row near 1e308: inf on both sides
        assert np.allclose(dot[rows], (x * y).sum(axis=1), rtol=1e-12)
        assert np.allclose(na[rows], (x * x).sum(axis=1), rtol=1e-12)
        assert np.allclose(nb[rows], (y * y).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_backend_pass_counts_nonfinite_and_finds_the_first(dtype: type) -> None:
    x = np.random.default_rng(2).normal(size=(30, 50)).astype(dtype)
    x[4, 7], x[4, 9], x[12, 0], x[29, 49] = np.nan, np.inf, -np.inf, np.nan
    top, finite, (nan, inf, first) = scan(native(x), 5)
    assert (nan, inf, first) == (2, 2, 4 * 50 + 7)
    assert np.array_equal(finite, np.isfinite(x).all(axis=1))
    assert np.array_equal(top, np.argsort(-x, axis=1, kind="stable")[:, :5])


@pytest.mark.parametrize("kind", ["probabilities", "logits"])
def test_threads_do_not_change_a_figure(kind: str) -> None:
    rng = np.random.default_rng(3)
    ref = rng.dirichlet(np.full(20, 0.3), size=300).astype(np.float32)
    if kind == "logits":
        ref = np.log(ref + np.float32(1e-6))
    predictions = {"savedmodel": ref, "onnxruntime": (ref + rng.normal(0, 1e-6, ref.shape)).astype(np.float32),
                   "tensorrt_fp16": np.abs(ref + rng.normal(0, 1e-2, ref.shape)).astype(np.float32),
                   "tensorrt_fp32": ref.copy()}
    labels = rng.integers(0, 20, 300)
    results = [compare(predictions, labels, batch_size=64, max_flipped=50, per_sample_limit=5, output_kind="auto",
                       threads=t).to_dict() for t in (1, 3)]
    assert json.dumps(results[0], sort_keys=True) == json.dumps(results[1], sort_keys=True)
    assert results[0]["output"]["kind"] == kind
    fp16 = results[0]["pairs"]["savedmodel vs tensorrt_fp16"]["metrics"]
    assert fp16["max_abs_diff"] > 0 and not math.isnan(fp16["max_abs_diff"])
    if kind == "logits":
        assert fp16["softmax_outside_tolerance_count"] > 0


def test_a_failing_pair_stops_the_pass_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pair's update raises on a lane: compare raises that error (no hang, no result), whatever runs beside it."""
    from trtverify.pairstats import PairStats

    original = PairStats.update

    def update(self: PairStats, batch: object) -> None:
        if getattr(batch, "start") == 128 and self.b == "tensorrt_fp16":
            raise RuntimeError("pair failed at 128")
        original(self, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(PairStats, "update", update)
    rng = np.random.default_rng(4)
    ref = rng.dirichlet(np.full(10, 0.5), size=1000).astype(np.float32)
    predictions = {"savedmodel": ref, "onnxruntime": ref.copy(), "tensorrt_fp16": ref.copy()}
    for threads in (1, 3):
        with pytest.raises(RuntimeError, match="pair failed at 128"):
            compare(predictions, rng.integers(0, 10, 1000), batch_size=64, max_flipped=5, per_sample_limit=0,
                    output_kind="auto", threads=threads)


def test_batches_in_flight_stay_a_few(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory is a few batches whatever the number of samples: no batch is read more than BATCHES_AHEAD + 1 ahead
    of the one the main thread has finished (on_batch sees them in order)."""
    from trtverify import metrics

    rng = np.random.default_rng(6)
    ref = rng.dirichlet(np.full(8, 0.5), size=2000).astype(np.float32)
    reads: list[int] = []
    done: list[int] = []
    ahead: list[int] = []

    class Recording:  # a backend other than the reference: the output profile reads the reference beforehand
        shape, dtype, ndim = ref.shape, ref.dtype, ref.ndim

        def __getitem__(self, rows: slice) -> np.ndarray:
            reads.append(rows.start)
            ahead.append(len({*reads}) - len(done))
            return ref[rows]

    compare({"savedmodel": ref, "onnxruntime": Recording()}, rng.integers(0, 8, 2000), batch_size=50,
            max_flipped=5, per_sample_limit=0, output_kind="auto", threads=3,
            on_batch=lambda batch: done.append(batch.start))
    assert done == list(range(0, 2000, 50))
    assert max(ahead) <= metrics.BATCHES_AHEAD + 1, max(ahead)


def numpy_outside(values: list[np.ndarray], ends: list[tuple[int, int]],
                  tolerances: list[tuple[float, float]]) -> list[int]:
    """Each pair's elements outside its softmax tolerance, by numpy on kernels.softmax's probabilities, over the rows
    finite in both: what kernels.softmax_outside must count."""
    finite = [np.isfinite(x).all(axis=1) for x in values]
    counts = []
    for (i, j), (rtol, atol) in zip(ends, tolerances):
        rows = finite[i] & finite[j]
        pa, pb = kernels.softmax(values[i][rows]), kernels.softmax(values[j][rows])
        counts.append(int((np.abs(pa - pb) > rtol * np.abs(pa) + atol).sum()))
    return counts


@pytest.mark.parametrize("classes", [1, 7, 1000, 40000])
def test_softmax_check_counts_each_pair_as_numpy_does(classes: int) -> None:
    """kernels.softmax_outside makes a few rows of every backend's softmax at a time (as many as its cache buffer
    holds: many rows of 7 classes, one of 40,000) and counts each pair's elements outside its tolerance, on the rows
    finite in both: the counts of numpy on kernels.softmax's probabilities (the same bits: one row function), for
    float32 and float64 backends together, and NaN and Inf rows left out."""
    rng = np.random.default_rng(10)
    n = 37
    ref = rng.normal(0, 3, (n, classes))
    values = [ref.astype(np.float32), ref + rng.normal(0, 1e-3, ref.shape),
              (ref + rng.normal(0, 0.1, ref.shape)).astype(np.float32)]
    values[1][4, 0], values[2][9, -1], values[0][20, classes // 2] = np.nan, np.inf, -np.inf
    ends, tolerances = [(0, 1), (0, 2), (1, 2)], [(1e-3, 1e-9), (1e-2, 1e-7), (0.0, 0.0)]
    got = kernels.softmax_outside(values, ends, tolerances)
    want = numpy_outside(values, ends, tolerances)
    assert got.tolist() == want
    for x in values:
        rows = np.isfinite(x).all(axis=1)
        np.testing.assert_allclose(kernels.softmax(x[rows]), softmax(x[rows].astype(np.float64)), rtol=1e-13,
                                   atol=1e-300)
    assert classes == 1 or 0 < want[0] < want[1]          # a count that tells the pairs and their bounds apart
    with pytest.raises(TypeError, match="one shape"):
        kernels.softmax_outside([values[0], values[1][:-1]], [(0, 1)], [(0.0, 0.0)])
    with pytest.raises(TypeError, match="not given"):
        kernels.softmax_outside(values[:2], [(0, 2)], [(0.0, 0.0)])


def test_softmax_check_proves_close_rows_without_their_softmax() -> None:
    """Rows whose logits differ by a spread w (largest minus least of b - a) of at most log1p(0.9 (rtol + atol))
    cannot have an element outside (kernels.c, sure_inside_below): they are counted as proven, without a softmax.
    The counts stay numpy's: at w = 0.9 times that limit nothing is outside; a row with one class at p = 0.25
    raised by w against the rest has it outside once p (1 - p) w > rtol p + atol (w = 1.87e-4, 1.9 times the
    limit), and such rows (at 1.15 times that) are not proven and are counted, so a limit 2.2 times too loose fails
    here. A shift of every logit by one constant is a spread of 0 (the same probabilities); NaN and Inf rows are
    never proven; atol 0 proves nothing. Every mix of float32 and float64 backends."""
    rtol, atol, c, n = 1e-4, 1e-5, 1000, 48
    limit = math.log1p(0.9 * (rtol + atol))
    p = 0.25
    outside_from = (rtol * p + atol) / (p * (1 - p))
    rng = np.random.default_rng(12)
    ref = rng.normal(0, 3, (n, c))
    ref[:8] = 0.0
    ref[:8, 0] = math.log(p / (1 - p) * (c - 1))          # p_0 = 0.25: near where a spread moves p most against
    moved = np.where(np.arange(c) == 0, 0.5, -0.5)        # the tolerance; class 0 up, the rest down: a spread of w
    close = ref + moved * 0.9 * limit
    close[:8] = ref[:8] + moved * np.array([0.9 * limit] * 4 + [1.15 * outside_from] * 4)[:, None]
    shifted = ref + 5.0                                   # every logit moved by 5: the same softmax
    broken = shifted.copy()
    broken[3, 7], broken[5, 9] = np.nan, np.inf
    values = [ref, close, shifted.astype(np.float32), broken.astype(np.float32), ref.astype(np.float32)]
    ends = [(0, 1), (1, 0), (0, 2), (2, 0), (2, 3), (4, 2), (0, 4)]
    tolerances = [(rtol, atol)] * len(ends)
    proven = np.zeros(len(ends), dtype=np.int64)
    got = kernels.softmax_outside(values, ends, tolerances, proven=proven)
    want = numpy_outside(values, ends, tolerances)
    assert got.tolist() == want
    assert want[:2] == [4, 4]         # class 0 of the four rows at 1.15 x outside_from, each way
    assert proven.tolist() == [n - 4, n - 4, n, n, n - 2, n, n]
    assert kernels.softmax_outside(values[:1] * 2, [(0, 1)], [(rtol, 0.0)], proven=proven[:1]).tolist() == [0]
    assert proven[0] == 0                                 # atol 0: an underflow could differ by 5e-324


def test_a_batchs_softmax_check_is_split_among_the_lanes() -> None:
    """A batch's softmax check runs as a part of its rows per lane (a part of at least SOFTMAX_ROWS): the parts'
    counts add up to the whole batch's, however many there are."""
    from trtverify import lanes

    rng = np.random.default_rng(11)
    ref = rng.normal(0, 3, (3 * lanes.SOFTMAX_ROWS + 5, 10)).astype(np.float32)
    raw = [ref, ref + rng.normal(0, 1e-2, ref.shape).astype(np.float32)]
    whole = kernels.softmax_outside(raw, [(0, 1)], [(1e-3, 1e-6)])
    assert whole[0] > 0
    for threads, parts in [(1, 1), (2, 2), (3, 3), (8, 3)]:
        with lanes.Lanes(threads) as lanes_:
            checks = lanes_.softmax_checks(raw, [(0, 1)], [(1e-3, 1e-6)])
            assert len(checks) == parts
            assert sum(int(task.result()[0]) for task in checks) == whole[0]


def test_closed_lanes_drop_what_has_not_started() -> None:
    """After a failure the lanes run what has started to its end, drop the rest (waiting on it raises Cancelled, not
    a hang) and end their threads; without one they run everything given, in order, first."""
    from trtverify import lanes

    started, ran = threading.Event(), []

    def first() -> str:     # still running when the lanes are closed
        started.set()
        for _ in range(5000):
            if pool.lanes[0]._cancel:
                break
            time.sleep(0.001)
        ran.append("first")
        return "done"

    with pytest.raises(RuntimeError, match="the main thread failed"):
        with lanes.Lanes(1) as pool:
            running = pool.submit_for("pair", first)
            queued = pool.submit_for("pair", ran.append, "queued")
            assert started.wait(5)
            raise RuntimeError("the main thread failed")
    assert running.result() == "done" and ran == ["first"]
    with pytest.raises(lanes.Cancelled):
        queued.result()
    assert all(not lane._thread.is_alive() for lane in pool.lanes)
    with lanes.Lanes(2) as pool:
        tasks = [pool.spread(ran.append, i) for i in range(6)]
    assert [t.result() for t in tasks] == [None] * 6 and sorted(ran[1:]) == list(range(6))


def test_scans_go_to_the_lane_with_the_least_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two lanes, two backends, one pair (the usual CPU run): the pair's lane took every reference's scan when scans
    went to the lanes in turn, three times the other's work. Given by cost, the other lane takes the scans after the
    first batch's, and the work each lane ran differs by at most a pair's batch; the figures are the same."""
    from trtverify import lanes, metrics

    ran: dict[str, list[str]] = {}
    scan_backend, update_pair = lanes.scan_backend, metrics.update_pair

    def recorded(what: str, fn: object) -> object:
        def run(*args: object) -> object:
            ran.setdefault(threading.current_thread().name, []).append(what)
            return fn(*args)  # type: ignore[operator]
        return run

    rng = np.random.default_rng(9)
    ref = rng.dirichlet(np.full(10, 0.5), size=640).astype(np.float32)
    predictions = {"savedmodel": ref, "onnxruntime": (ref + rng.normal(0, 1e-4, ref.shape)).astype(np.float32)}
    labels = rng.integers(0, 10, 640)

    def run() -> str:
        return json.dumps(compare(predictions, labels, batch_size=64, max_flipped=5, per_sample_limit=3,
                                  output_kind="probabilities", threads=2).to_dict(), sort_keys=True)

    one_lane = json.dumps(compare(predictions, labels, batch_size=64, max_flipped=5, per_sample_limit=3,
                                  output_kind="probabilities", threads=1).to_dict(), sort_keys=True)
    monkeypatch.setattr(lanes, "scan_backend", recorded("scan", scan_backend))
    monkeypatch.setattr(metrics, "update_pair", recorded("pair", update_pair))
    assert run() == one_lane
    work = {name: what.count("scan") * lanes.SCAN_COST + what.count("pair") * lanes.PAIR_COST
            for name, what in ran.items() if name.startswith("compare-lane-")}
    pair_lane = next(name for name, what in ran.items() if "pair" in what)
    assert sorted(work) == ["compare-lane-0", "compare-lane-1"] and ran[pair_lane].count("pair") == 10
    assert ran[pair_lane].count("scan") <= 1 and max(work.values()) - min(work.values()) <= lanes.PAIR_COST, ran


@pytest.mark.parametrize("path", [None, "", "{bin}", "{plain}:{bin}", "{folder}", "{plain}", ":{bin}"])
def test_on_path_finds_what_shutil_which_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               path: str | None) -> None:
    """The compiler is looked for on $PATH as shutil.which looks (an executable file, not a folder or a plain file),
    without shutil's import."""
    folders = {name: tmp_path / name for name in ("bin", "plain", "folder")}
    for folder in folders.values():
        folder.mkdir()
    (folders["bin"] / "cc").write_text("#!/bin/sh\n")
    (folders["bin"] / "cc").chmod(0o755)
    (folders["plain"] / "cc").write_text("not executable")
    (folders["folder"] / "cc").mkdir()
    monkeypatch.chdir(folders["folder"])    # an empty entry is the working folder, where cc is a folder
    if path is None:
        monkeypatch.delenv("PATH")
    else:
        monkeypatch.setenv("PATH", path.format(**folders))
    assert kernels.on_path("cc") == (shutil.which("cc") is not None)
    if path and "{bin}" in path:
        assert kernels.on_path("cc")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_profile_pass_is_the_numpy_definition(dtype: type) -> None:
    """Per-class sums, arg-max counts (the first maximum) and the extremes over finite rows, with negative values,
    -0 against +0, a tied maximum and a row with NaN (left out)."""
    x = np.random.default_rng(5).normal(0, 3, (50, 21)).astype(dtype)
    x[0] = -np.abs(x[0])                          # a row of negatives only: its maximum is negative
    x[1, :3], x[1, 3:] = [-0.0, 0.0, -0.0], -1.0  # maximum 0, first held by a -0
    x[2, 4] = x[2, 9] = x[2].max() + 1            # a tied maximum: the first class counts
    x[3, 5] = np.nan
    total, squares = np.zeros(21), np.zeros(21)
    classes, extremes = np.zeros(21, dtype=np.int64), np.array([math.inf, -math.inf, 0.0])
    kernels.profile_pass(x, total, squares, classes, extremes)
    ok = np.isfinite(x).all(axis=1)
    y = x[ok].astype(np.float64)
    assert np.allclose(total, y.sum(axis=0), rtol=1e-12) and np.allclose(squares, (y * y).sum(axis=0), rtol=1e-12)
    assert np.array_equal(classes, np.bincount(np.argmax(y, axis=1), minlength=21))
    assert (extremes[0], extremes[1]) == (y.min(), y.max())
    assert extremes[2] == pytest.approx(np.abs(y.sum(axis=1) - 1).max(), rel=1e-12)


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kernels with nothing loaded yet and one cache folder of its own."""
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "cache_dirs", lambda: [tmp_path / "cache"])
    return tmp_path / "cache"


def test_the_library_is_built_once_and_named_by_what_makes_it(fresh_cache: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    kernels.library()
    built = fresh_cache / kernels.library_name()
    assert built.is_file() and kernels.built_by() != "unknown"
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(kernels, "_loaded", {})
    kernels.library()                               # a new process: loads the cached one, builds nothing
    assert built.stat().st_mtime_ns == stamp and [p.name for p in fresh_cache.glob("*.so")] == [built.name]
    edited = fresh_cache.parent / "kernels.c"
    edited.write_text(kernels.SOURCE.read_text() + "\n/* an edit */\n")
    monkeypatch.setattr(kernels, "SOURCE", edited)
    assert kernels.library_name() != built.name     # an edit of the source, or another compiler, builds anew
    monkeypatch.setattr(kernels, "SOURCE", kernels.SOURCE)
    monkeypatch.setenv("CC", "cc -O2")
    assert kernels.library_name() != built.name


def test_a_broken_cached_library_is_built_again(fresh_cache: Path) -> None:
    fresh_cache.mkdir()
    broken = fresh_cache / kernels.library_name()
    broken.write_bytes(b"\x7fELF cut short")        # e.g. a copy interrupted on a shared file system
    x = np.ones((2, 3), np.float32)
    assert kernels.backend_pass(x, 2, np.zeros((2, 2), np.int64), np.empty(2, np.bool_)) == (0, 0, -1)
    assert broken.stat().st_size > 1000


def test_without_a_compiler_the_message_says_how_to_get_one(fresh_cache: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(UserError, match="no C compiler here .*apt install gcc.*set CC"):
        kernels.library()
    assert not list(fresh_cache.glob("*.so"))       # nothing half-written is left to load


def test_a_failed_compile_shows_the_compiler_error(fresh_cache: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "kernels.c"
    bad.write_text(kernels.SOURCE.read_text() + "\nthis is not C;\n")
    monkeypatch.setattr(kernels, "SOURCE", bad)
    with pytest.raises(UserError, match="compiling compare's passes failed .*error"):
        kernels.library()
    assert not [p for p in fresh_cache.iterdir() if p.suffix in (".so", ".tmp")]


def test_an_unwritable_folder_falls_back_to_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "cache_dirs", lambda: [blocked / "cache", tmp_path / "user-cache"])
    kernels.library()
    assert (tmp_path / "user-cache" / kernels.library_name()).is_file()


def test_the_compiler_is_cc_then_zig_where_there_is_no_cc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "gcc -m64")
    assert kernels.compiler() == ["gcc", "-m64"]
    monkeypatch.delenv("CC")
    monkeypatch.setattr(kernels, "on_path", lambda name: False)
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: object() if name == "ziglang" else None)
    assert kernels.compiler() == [sys.executable, "-m", "ziglang", "cc"]
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: None)
    assert kernels.compiler() == ["cc"]             # neither: cc, whose absence build() turns into the remedy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [1, 2, 5, 15, 16, 17, 31, 32, 33, 64, 65, 100])
def test_top_k_keeps_argsort_order_through_ties_and_short_rows(dtype: type, classes: int) -> None:
    """The top-k search skips blocks and values below a threshold: rows of few distinct values (ties at and around
    the threshold, -0 against +0), rows shorter than a block or than k, must still give a stable argsort's order."""
    rng = np.random.default_rng(classes)
    x = rng.integers(-3, 4, (200, classes)).astype(dtype)
    x[x == 0] = rng.choice(np.array([0.0, -0.0], dtype=dtype), size=int((x == 0).sum()))
    for k in sorted({1, min(5, classes), classes}):
        top, finite, counts = scan(native(x), k)
        assert counts == (0, 0, -1) and finite.all()
        assert np.array_equal(top, np.argsort(-x, axis=1, kind="stable")[:, :k]), (k, classes)


def exact_ties(rng: np.random.Generator, per_exponent: int) -> np.ndarray:
    """Doubles whose exact decimal value has ten significant digits, the last a 5: a tie at %.9g's ninth digit.
    t / 2**j is t * 5**j / 10**j, so an odd t with t * 5**j of ten digits gives one, from 0.0001 to 1e9."""
    ties = []
    for j in range(1, 14):
        t = rng.integers(-(-10**9 // 5**j), (10**10 - 1) // 5**j + 1, per_exponent) | 1
        ties.append(np.ldexp(t[(t * 5**j >= 10**9) & (t * 5**j < 10**10)].astype(np.float64), -j))
    return np.concatenate(ties)


def test_csv_rows_write_numbers_as_python_does() -> None:
    """per_sample.csv's rows are written by kernels.c's own formatting (printf outside [1e-23, 1e9)): each number
    must read exactly as Python's %d and %.9g write it, on the values where the two could part: exact ties at the
    ninth digit (rounded to even), the powers of ten and their neighbours (where the exponent is guessed, and %g
    changes style at 1e-4 and 1e9), every power of two float32 and float64 reach, subnormals, -0, Inf, NaN of either
    sign, any bit pattern, every magnitude, and the extreme integers."""
    rng = np.random.default_rng(5)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, np.copysign(np.nan, -1.0), 5e-324, -2.2250738585072014e-308,
               1.7976931348623157e308, 2.0**-14, 0.5, 1 / 3, 1e16, 123456789.5, 1234567895.0, 999999999.5,
               999999999.4999999, 9.9999999995e-5, 9.9999999949999e-5, 1e-23, 9.99999999e-24]
    tens = 10.0 ** np.arange(-30, 12)
    values = np.concatenate([np.array(special), 2.0 ** np.arange(-1074, 1024, dtype=np.float64),
                             -(2.0 ** np.arange(-149, 128)), rng.random(3000).astype(np.float32),
                             rng.normal(0, 30, 3000).astype(np.float32), rng.normal(0, 1, 2000),
                             exact_ties(rng, 400), -exact_ties(rng, 100), tens, np.nextafter(tens, 0),
                             np.nextafter(tens, np.inf), 10.0 ** rng.uniform(-30, 12, 20000),
                             rng.integers(0, 2**64, 20000, dtype=np.uint64).view(np.float64)])
    assert sum(str(Decimal(x)).endswith("5") and len(Decimal(x).normalize().as_tuple().digits) == 10
               for x in values.tolist()) > 4000    # the ties are there
    assert np.signbit(values[5]) and np.isnan(values[5])        # the sign bit set: C would write -nan
    n = values.size // 3
    confidence = values[:3 * n].reshape(3, n)
    classes = rng.integers(-2**63, 2**63 - 1, (3, n), dtype=np.int64)
    labels = rng.integers(-5, 2**62, n, dtype=np.int64)
    labels[:2] = -2**63, 2**63 - 1
    start = 2**40
    got = kernels.csv_rows(start, labels, classes, confidence).decode("ascii")
    row = ",".join(["%d", "%d"] + ["%d", "%.9g"] * 3) + "\n"
    want = "".join(row % (start + r, labels[r], *[v for b in range(3) for v in (classes[b, r], confidence[b, r])])
                   for r in range(n))
    assert got == want
    assert kernels.csv_rows(0, labels[:0], classes[:, :0], confidence[:, :0]) == b""
    with pytest.raises(TypeError, match="backends x n"):
        kernels.csv_rows(0, labels, classes, confidence[:2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_pass_is_the_numpy_definition(dtype: type) -> None:
    """Logits' probabilities come from the compiled pass: outputs.softmax's values, but for the order of the row
    sum (SIMD lanes, not numpy's pairwise), so to a few units in the last place; on wide logits (|x| ~ 100, so
    terms underflow to 0 and subnormals), tied maxima, one class, and a constant row."""
    rng = np.random.default_rng(6)
    x = rng.normal(0, 40, (64, 1000)).astype(dtype)
    x[0] = 0.0                                   # constant: 1/1000 each
    x[1, :2] = x[1].max() + 1                    # two equal maxima
    x[2, 500] = 745.0                            # one class far above the rest: the others underflow
    got, want = kernels.softmax(native(x)), softmax(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)
    assert got[0, 0] == pytest.approx(1e-3, rel=1e-15) and got[1, 0] == got[1, 1] and got[2, 500] == 1.0
    assert np.array_equal(kernels.softmax(native(x[:, :1])), np.ones((64, 1)))


def test_where_glibcs_vector_maths_do_not_link_the_softmax_uses_libms_exp(fresh_cache: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The softmax's exp comes from libmvec where the compiler links it (x86-64 Linux); where it does not, the
    library is built without it, and the probabilities are the same to a few units in the last place."""
    x = np.random.default_rng(7).normal(0, 40, (64, 1000)).astype(np.float32)
    with_vector = kernels.softmax(x)
    meta = json.loads((fresh_cache / kernels.library_name()).with_suffix(".json").read_text())
    if kernels.VECTOR_MATHS and "clang" not in kernels.built_by() and ctypes.util.find_library("mvec"):
        assert meta["command"][-2:] == list(kernels.VECTOR_MATHS)       # GCC and glibc: built with it
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "VECTOR_MATHS", ("-DTRTVERIFY_MVEC", "-ltrtverify-no-such-library"))
    without = kernels.softmax(x)
    meta = json.loads((fresh_cache / kernels.library_name()).with_suffix(".json").read_text())
    assert "-DTRTVERIFY_MVEC" not in meta["command"]
    want = softmax(x.astype(np.float64))
    np.testing.assert_allclose(without, want, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(with_vector, want, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("case", ["spread", "subnormal", "equal"])
def test_a_pairs_histogram_is_every_difference_in_the_sketch(case: str) -> None:
    """The histogram reads the counters only from the least positive difference's key to the largest's: it must
    still be the sketch of every difference, when the least is subnormal (key 0) and when every one is zero."""
    rng = np.random.default_rng(8)
    a = rng.dirichlet(np.full(30, 0.5), size=200).astype(np.float64)
    b = {"spread": a + rng.normal(0, 1e-4, a.shape) * (rng.random(a.shape) < 0.5),
         "subnormal": a + 5e-324 * rng.integers(0, 3, a.shape), "equal": a.copy()}[case]
    result = compare({"savedmodel": a, "onnxruntime": b}, rng.integers(0, 30, 200), batch_size=64, max_flipped=5,
                     per_sample_limit=0, output_kind="probabilities").to_dict()
    reference = QuantileSketch()
    reference.add(np.abs(a - b))
    made, want = result["pairs"]["savedmodel vs onnxruntime"]["abs_diff_histogram"], reference.to_dict()
    assert made.pop("sum") == pytest.approx(want.pop("sum"), rel=1e-12, abs=1e-300)   # summed in another order
    assert made == want


def test_softmax_check_skips_rows_with_nan_and_counts_the_rest() -> None:
    """Logits with a NaN row: the softmax check runs on the rows that are finite on both sides, and counts what
    outputs.softmax's probabilities put outside the softmax tolerance there."""
    rng = np.random.default_rng(9)
    a = rng.normal(0, 3, (50, 12))
    b = a + rng.normal(0, 2e-3, a.shape)
    b[7, 3] = np.nan
    result = compare({"savedmodel": a, "onnxruntime": b}, rng.integers(0, 12, 50), batch_size=16, max_flipped=5,
                     per_sample_limit=0, output_kind="logits", allow_nonfinite=True).to_dict()
    pair = result["pairs"]["savedmodel vs onnxruntime"]
    rows = np.arange(50) != 7
    sa, sb = softmax(a[rows]), softmax(b[rows])
    t = pair["softmax_tolerance"]
    want = int((np.abs(sa - sb) > t["rtol"] * np.abs(sa) + t["atol"]).sum())
    assert want > 0 and pair["metrics"]["softmax_outside_tolerance_count"] == want
