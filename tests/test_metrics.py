"""Streaming metrics against an independent all-at-once float64 computation; validation order; edge cases."""

from __future__ import annotations

import functools
import math
import mmap
import os
from pathlib import Path

import numpy as np
import pytest

from trtverify.errors import UserError
from trtverify import intervals, metrics, outputs
from trtverify.io import MAP_BYTES, NpyFile
from trtverify.validation import (BackendNameError, ComparisonInputError, DTypeError, LabelError, NonFiniteError,
                                  ShapeError)
from trtverify.tolerance import TolerancePolicy

from conftest import compare_config

ALPHA = 0.01
# The hand-made arrays below stand for probabilities but do not all sum to 1 (zeros put in on purpose): say so,
# rather than let detection read them as logits. Detection itself is tested in test_output_kinds.py's section here.
config_compare = functools.partial(metrics.compare, **compare_config())   # compare.py's settings by default
compare = functools.partial(config_compare, output_kind="probabilities")


def make_case(seed: int, n: int, c: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Probabilities with the awkward parts: exact zeros in the reference, exact ties, equal elements, flips."""
    rng = np.random.default_rng(seed)
    ref = rng.dirichlet(np.full(c, 0.3), size=n).astype(np.float32)
    ref[rng.uniform(size=ref.shape) < 0.05] = 0.0
    if n > 3:
        ref[1] = np.float32(1.0 / c)                      # an exact tie across all classes
    close = ref + rng.normal(0, 1e-6, ref.shape).astype(np.float32)
    same = rng.uniform(size=ref.shape) < 0.3
    close[same] = ref[same]                               # exact zeros among the differences
    loose = np.abs(ref + rng.normal(0, 3e-2, ref.shape)).astype(np.float32)
    labels = rng.integers(0, c, n)
    return {"savedmodel": ref, "onnxruntime": close, "tensorrt_fp16": loose}, labels


def expected(a: np.ndarray, b: np.ndarray, labels: np.ndarray, atol: float, rtol: float,
             floor: float = 1e-6) -> dict[str, float]:
    """The same definitions, written independently and computed all at once in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = np.abs(a - b)
    rel = d / np.maximum(np.abs(a), floor)
    cos = []
    for ra, rb in zip(a, b):
        na, nb = np.linalg.norm(ra), np.linalg.norm(rb)
        cos.append(1.0 if na == nb == 0 else 0.0 if na == 0 or nb == 0 else float(ra @ rb / (na * nb)))
    def ranked(row: np.ndarray) -> list[int]:
        return sorted(range(row.size), key=lambda j: (-row[j], j))   # ties: the lowest class index first

    ranked_a, ranked_b = [ranked(row) for row in a], [ranked(row) for row in b]
    k = min(5, a.shape[1])
    top1_a, top1_b = np.array([r[0] for r in ranked_a]), np.array([r[0] for r in ranked_b])
    agree = top1_a == top1_b
    per_class = []
    for cls in range(a.shape[1]):
        mask = labels == cls
        per_class.append(float(agree[mask].mean()) if mask.any() else None)
    return {
        "max_abs_diff": d.max(), "mean_abs_diff": d.mean(),
        "median_abs_diff": float(np.quantile(d, 0.5, method="lower")),
        "p99_abs_diff": float(np.quantile(d, 0.99, method="lower")),
        "max_rel_diff": rel.max(), "mean_rel_diff": rel.mean(),
        "cosine_similarity_mean": float(np.mean(cos)), "cosine_similarity_min": float(np.min(cos)),
        "cosine_similarity_global": float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum())),
        "outside_tolerance_count": int((d > atol + rtol * np.abs(a)).sum()),
        "top1_agreement": float(agree.mean()),
        "top5_agreement": float(np.mean([set(x[:k]) == set(y[:k]) for x, y in zip(ranked_a, ranked_b)])),
        "mean_top_class_prob_change": float(np.mean(b[np.arange(len(a)), top1_a] - a[np.arange(len(a)), top1_a])),
        "accuracy_change": float((top1_b == labels).mean() - (top1_a == labels).mean()),
        "top1_flips": int((~agree).sum()), "flip_indices": np.flatnonzero(~agree).tolist(), "per_class": per_class,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,c", [(1, 3), (17, 10), (64, 4), (53, 7)])
@pytest.mark.parametrize("batch", [1, 5, 16, 1000])
def test_streaming_matches_all_at_once(seed: int, n: int, c: int, batch: int) -> None:
    predictions, labels = make_case(seed, n, c)
    result = compare(predictions, labels, batch_size=batch, max_flipped=1000)
    for pair in result.pairs.values():
        tol = pair.tolerance
        want = expected(predictions[pair.a], predictions[pair.b], labels, tol["atol"], tol["rtol"])
        got = pair.metrics
        for key in ("max_abs_diff", "mean_abs_diff", "max_rel_diff", "mean_rel_diff", "cosine_similarity_mean",
                    "cosine_similarity_min", "cosine_similarity_global", "top1_agreement", "top5_agreement",
                    "mean_top_class_prob_change", "accuracy_change"):
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), (pair.name, key)
        for key in ("median_abs_diff", "p99_abs_diff"):
            assert abs(got[key] - want[key]) <= ALPHA * want[key] * (1 + 1e-9), (pair.name, key)
        assert got["outside_tolerance_count"] == want["outside_tolerance_count"]
        assert got["top1_flips"] == pair.top1_flips["count"] == want["top1_flips"]
        assert pair.top1_flips["indices"] == want["flip_indices"]
        assert pair.per_class_agreement == pytest.approx(want["per_class"])
        assert got["elements"] == n * c


def test_batch_size_does_not_change_the_result() -> None:
    predictions, labels = make_case(3, 97, 10)
    results = [compare(predictions, labels, batch_size=b).to_dict() for b in (1, 13, 97, 4096)]
    for r in results:
        r.pop("settings")
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for name, pair in other["pairs"].items():
            first = results[0]["pairs"][name]
            hist, first_hist = dict(pair["abs_diff_histogram"]), dict(first["abs_diff_histogram"])
            assert hist.pop("sum") == pytest.approx(first_hist.pop("sum"), rel=1e-12)   # summation order differs
            assert hist == first_hist
            assert pair["verdict"] == first["verdict"] and pair["top1_flips"] == first["top1_flips"]
            for key, value in pair["metrics"].items():
                assert value == pytest.approx(first["metrics"][key], rel=1e-12), key
        assert other["flipped_samples"] == results[0]["flipped_samples"]
        assert other["per_sample"] == results[0]["per_sample"]
        for name, backend in other["backends"].items():
            assert backend == pytest.approx(results[0]["backends"][name], rel=1e-12)


def test_accuracy_and_per_backend_numbers() -> None:
    ref = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]
    other = np.eye(4, dtype=np.float32)[[0, 1, 2, 0, 1]]
    labels = np.array([0, 1, 2, 3, 1])
    result = compare({"savedmodel": ref, "onnxruntime": other}, labels)
    assert result.backends["savedmodel"]["accuracy"] == pytest.approx(0.8)
    assert result.backends["onnxruntime"]["accuracy"] == pytest.approx(0.8)
    assert result.backends["onnxruntime"]["accuracy_change"] == pytest.approx(0.0)
    pair = result.pairs["savedmodel vs onnxruntime"]
    assert pair.metrics["top1_agreement"] == pytest.approx(0.6)
    assert pair.per_class_agreement == [1.0, 0.5, 1.0, 0.0]
    assert pair.metrics["mean_top_class_prob_change"] == pytest.approx(-0.4)
    assert result.flipped_samples["count"] == 2
    first = result.flipped_samples["samples"][0]
    assert first["index"] == 3 and first["label"] == 3
    assert first["predictions"]["savedmodel"]["classes"][0] == 3
    assert first["predictions"]["onnxruntime"] == {"classes": [0, 1, 2], "probabilities": [1.0, 0.0, 0.0]}
    assert result.class_counts == [1, 2, 1, 1]
    assert result.per_sample[0] == {"index": 0, "label": 0, "predictions": {
        "savedmodel": {"class": 0, "confidence": 1.0}, "onnxruntime": {"class": 0, "confidence": 1.0}}}


def test_flipped_list_is_capped_but_all_are_counted() -> None:
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(10), 200).astype(np.float32)
    b = a[:, ::-1].copy()
    labels = rng.integers(0, 10, 200)
    result = compare({"savedmodel": a, "onnxruntime": b}, labels, max_flipped=5, batch_size=7)
    pair = result.pairs["savedmodel vs onnxruntime"]
    assert pair.top1_flips["count"] == pair.metrics["top1_flips"] > 100
    assert len(pair.top1_flips["indices"]) == 5
    assert result.flipped_samples["count"] == pair.top1_flips["count"]
    assert result.flipped_samples["stored"] == 5 and len(result.flipped_samples["samples"]) == 5


def test_per_sample_rows_span_batches() -> None:
    predictions, labels = make_case(0, 30, 5)
    rows = compare(predictions, labels, batch_size=4, per_sample_limit=10).per_sample
    assert [r["index"] for r in rows] == list(range(10))
    assert [r["label"] for r in rows] == labels[:10].tolist()
    assert compare(predictions, labels, per_sample_limit=0).per_sample == []


# --- verdicts ---------------------------------------------------------------------------------------------------------
def verdicts(predictions: dict[str, np.ndarray], labels: np.ndarray, **kw: object) -> dict[str, str]:
    return {k: v.verdict for k, v in compare(predictions, labels, **kw).pairs.items()}


def test_identical_consistent_drift_mismatch() -> None:
    rng = np.random.default_rng(1)
    a = rng.dirichlet(np.full(10, 0.2), 500).astype(np.float32)
    labels = a.argmax(1)
    drift = a.copy()
    drift[:3, :] += np.float32(0.05)                       # 30 of 5000 elements move: 0.6% < 2%, no top-1 change
    result = compare({"savedmodel": a, "onnxruntime": a.copy(), "tensorrt_fp32": a + np.float32(1e-7),
                      "tensorrt_fp16": drift, "tensorrt_tf32": a[:, ::-1].copy()}, labels)
    got = {k: v.verdict for k, v in result.pairs.items()}
    assert got["savedmodel vs onnxruntime"] == "identical"
    assert got["savedmodel vs tensorrt_fp32"] == "consistent"
    assert got["savedmodel vs tensorrt_fp16"] == "drift"
    assert got["savedmodel vs tensorrt_tf32"] == "mismatch"
    assert bool(result.pairs["savedmodel vs tensorrt_fp16"]) and not result.pairs["savedmodel vs tensorrt_tf32"]
    assert not result and result.mismatches == [k for k, v in got.items() if v == "mismatch"]
    assert result.pairs["savedmodel vs tensorrt_fp16"].precision == "fp16"
    assert result.pairs["tensorrt_fp16 vs tensorrt_tf32"].precision == "fp16"     # the looser of the two
    assert result.pairs["tensorrt_fp32 vs tensorrt_tf32"].precision == "tf32"


def test_a_config_override_turns_a_mismatch_into_drift() -> None:
    rng = np.random.default_rng(2)
    a = rng.dirichlet(np.full(10, 0.2), 100).astype(np.float32)
    b = a + rng.normal(0, 1e-4, a.shape).astype(np.float32)
    labels = a.argmax(1)
    assert verdicts({"savedmodel": a, "onnxruntime": b}, labels)["savedmodel vs onnxruntime"] == "mismatch"
    policy = TolerancePolicy({"fp32": {"max_outside_share": 1.0}})
    result = compare({"savedmodel": a, "onnxruntime": b}, labels, policy=policy)
    pair = result.pairs["savedmodel vs onnxruntime"]
    assert pair.verdict == "drift" and pair.tolerance["source"] == "config"
    assert pair.tolerance["overridden"] == ["max_outside_share"]
    assert bool(result)


def test_parity_pairs_must_be_bit_identical() -> None:
    rng = np.random.default_rng(3)
    a = rng.dirichlet(np.ones(10), 20).astype(np.float32)
    b = a.copy()
    b[7, 4] = np.nextafter(b[7, 4], np.float32(1))            # one ulp, far inside any tolerance
    preds = {"savedmodel": a, "tensorrt_fp16": a, "tensorrt_cpp_fp16": b, "tensorrt_cpp_csv_fp16": b.copy()}
    result = compare(preds, a.argmax(1), batch_size=3)
    assert result.pairs["tensorrt_fp16 vs tensorrt_cpp_fp16"].verdict == "mismatch"
    assert result.pairs["savedmodel vs tensorrt_cpp_fp16"].verdict == "consistent"    # not a parity pair
    assert result.pairs["tensorrt_cpp_fp16 vs tensorrt_cpp_csv_fp16"].verdict == "identical"
    assert set(result.parity) == {"tensorrt_fp16 vs tensorrt_cpp_fp16", "tensorrt_cpp_fp16 vs tensorrt_cpp_csv_fp16"}
    entry = result.parity["tensorrt_fp16 vs tensorrt_cpp_fp16"]
    assert entry["result"] == "differs" and entry["differing_elements"] == 1
    assert entry["first_difference"] == {"sample": 7, "class": 4, "tensorrt_fp16": float(a[7, 4]),
                                         "tensorrt_cpp_fp16": float(b[7, 4])}
    assert result.parity["tensorrt_cpp_fp16 vs tensorrt_cpp_csv_fp16"]["result"] == "identical"


def test_signed_zero_is_not_bit_identical() -> None:
    a = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)      # two rows: one constant row is inconclusive
    b = np.array([[-0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    pair = compare({"savedmodel": a, "onnxruntime": b}, np.array([1, 0])).pairs["savedmodel vs onnxruntime"]
    assert pair.verdict == "consistent" and pair.metrics["max_abs_diff"] == 0.0


def test_all_zeros() -> None:
    z = np.zeros((6, 3), dtype=np.float32)
    result = compare({"savedmodel": z, "onnxruntime": z.copy()}, np.zeros(6, dtype=np.int64))
    pair = result.pairs["savedmodel vs onnxruntime"]
    assert pair.verdict == "inconclusive" and "constant" in pair.reason     # identical, but it proves nothing
    assert pair.metrics["median_abs_diff"] == pair.metrics["p99_abs_diff"] == pair.metrics["max_rel_diff"] == 0.0
    assert pair.metrics["cosine_similarity_mean"] == pair.metrics["cosine_similarity_global"] == 1.0
    one_zero = compare({"savedmodel": z, "onnxruntime": z + np.float32(0.5)}, np.zeros(6, dtype=np.int64))
    assert one_zero.pairs["savedmodel vs onnxruntime"].metrics["cosine_similarity_mean"] == 0.0
    assert one_zero.pairs["savedmodel vs onnxruntime"].metrics["max_rel_diff"] == pytest.approx(0.5 / 1e-6)


# --- NaN and Inf ------------------------------------------------------------------------------------------------------
def test_nan_and_inf_fail_with_every_backends_counts() -> None:
    a = np.full((10, 4), 0.25, dtype=np.float32)
    b, c = a.copy(), a.copy()
    b[3, 2] = np.nan
    b[5, :] = np.nan
    c[9, 0] = np.inf
    with pytest.raises(NonFiniteError) as info:
        compare({"savedmodel": a, "onnxruntime": b, "tensorrt_fp32": c}, np.zeros(10, dtype=np.int64), batch_size=3)
    msg = str(info.value)
    assert "savedmodel: 0 NaN, 0 Inf" in msg
    assert "onnxruntime: 5 NaN, 0 Inf, first at sample 3 class 2" in msg
    assert "tensorrt_fp32: 0 NaN, 1 Inf, first at sample 9 class 0" in msg
    assert isinstance(info.value, UserError) and "\n" not in msg


def test_nan_counted_when_allowed_and_statistics_use_finite_elements() -> None:
    a = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]], dtype=np.float32)
    b = a.copy()
    b[0, 0] = np.nan
    b[1, 1] = a[1, 1] + np.float32(1e-4)
    result = compare({"savedmodel": a, "onnxruntime": b, "tensorrt_fp32": b.copy()}, np.zeros(4, dtype=np.int64),
                     allow_nonfinite=True)
    assert result.backends["onnxruntime"]["nan_count"] == 1
    pair = result.pairs["savedmodel vs onnxruntime"]
    assert pair.metrics["finite_elements"] == 7 and pair.metrics["outside_tolerance_count"] == 2  # NaN + 1e-4
    assert pair.metrics["max_abs_diff"] == pytest.approx(1e-4, rel=1e-2)
    assert result.pairs["onnxruntime vs tensorrt_fp32"].verdict == "identical"                  # NaN matches NaN


# --- validation -------------------------------------------------------------------------------------------------------
def test_every_problem_is_listed_typed_by_the_first_kind() -> None:
    good = np.full((5, 3), 1 / 3, dtype=np.float32)
    with pytest.raises(BackendNameError) as info:
        compare([("onnxruntime", good), ("onnxruntime", good), ("tensorrt_int8", good[:4]),
                 ("trt", good.astype(np.int32))], np.zeros(5, dtype=np.int64), reference="savedmodel")
    problems = info.value.problems
    assert any("given 2 times" in p for p in problems)
    assert any("unknown precision 'int8'" in p for p in problems)
    assert any("reference backend 'savedmodel' is not among" in p and "onnxruntime, tensorrt_int8, trt" in p
               for p in problems)
    assert any("tensorrt_int8: 4 samples" in p for p in problems)          # shapes listed too
    assert any("trt: dtype int32" in p for p in problems)                  # and dtypes
    assert isinstance(info.value, ComparisonInputError)


def test_shape_errors() -> None:
    good = np.full((5, 3), 1 / 3, dtype=np.float32)
    with pytest.raises(ShapeError) as info:
        compare({"savedmodel": good, "onnxruntime": good[:, :2], "tensorrt_fp32": good[None]},
                np.zeros((5, 1), dtype=np.int64), samples=np.zeros((4, 8, 8, 1)))
    text = str(info.value)
    assert "labels have shape (5, 1)" in text and "tensorrt_fp32: shape (1, 5, 3)" in text
    with pytest.raises(ShapeError, match="disagree on the number of classes: savedmodel 3, onnxruntime 2"):
        compare({"savedmodel": good, "onnxruntime": good[:, :2]}, np.zeros(5, dtype=np.int64))
    with pytest.raises(ShapeError, match="test samples have shape"):
        compare({"savedmodel": good, "onnxruntime": good}, np.zeros(5, dtype=np.int64), samples=np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="labels are empty"):
        compare({"savedmodel": good[:0], "onnxruntime": good[:0]}, np.zeros(0, dtype=np.int64))


def test_integer_outputs_and_float_labels_are_dtype_errors() -> None:
    good = np.full((5, 3), 1 / 3, dtype=np.float32)
    with pytest.raises(DTypeError) as info:
        compare({"savedmodel": good, "onnxruntime": (good * 3).astype(np.int64)}, np.zeros(5))
    assert "onnxruntime: dtype int64" in str(info.value) and "labels: dtype float64" in str(info.value)


def test_labels_out_of_range() -> None:
    good = np.full((5, 3), 1 / 3, dtype=np.float32)
    with pytest.raises(LabelError, match="from -1 to 3, outside the 3 classes"):
        compare({"savedmodel": good, "onnxruntime": good}, np.array([0, 1, 2, 3, -1]), batch_size=2)


def test_only_one_backend() -> None:
    good = np.full((5, 3), 1 / 3, dtype=np.float32)
    with pytest.raises(BackendNameError, match="at least two backends"):
        compare({"savedmodel": good}, np.zeros(5, dtype=np.int64))


# --- reading files ----------------------------------------------------------------------------------------------------
def test_npy_file_reads_row_ranges(tmp_path) -> None:
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.save(tmp_path / "x.npy", x)
    with NpyFile(tmp_path / "x.npy") as f:
        assert f.shape == (20, 3) and f.dtype == np.float32 and len(f) == 20
        assert np.array_equal(f[0:7], x[0:7]) and np.array_equal(f[15:99], x[15:])
        assert f[5:5].shape == (0, 3)
        assert np.array_equal(f.take([19, 0, 4]), x[[19, 0, 4]])
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    assert np.array_equal(NpyFile(tmp_path / "f.npy")[2:9], x[2:9])
    big = np.arange(12, dtype=">f8").reshape(4, 3)        # big-endian is read as written
    np.save(tmp_path / "b.npy", big)
    assert np.array_equal(NpyFile(tmp_path / "b.npy")[1:3], big[1:3])


MMAP = mmap.mmap     # the type, kept: a test below replaces the module's


def mapped(a: np.ndarray) -> bool:
    """Whether the array views a memory map (NpyFile's large ranges) rather than memory of its own."""
    while isinstance(a, np.ndarray):
        a = a.base
    return isinstance(a.obj if isinstance(a, memoryview) else a, MMAP)


def maps_of(path: Path) -> int:
    """How many of this process's mappings are of ``path`` (Linux's /proc/self/maps)."""
    return sum(line.rstrip().endswith(str(path)) for line in Path("/proc/self/maps").read_text().splitlines())


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<f2"])
def test_npy_file_maps_large_ranges_and_reads_small_ones(tmp_path: Path, dtype: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A range of MAP_BYTES or more is a read-only view of a mapping of just it, gone with the array; a smaller one
    is read into memory of its own. Both are the file's rows from any offset (row 1 starts mid-page), and a file
    system that cannot map falls back to reading."""
    row_items = 37
    rows = MAP_BYTES // (row_items * np.dtype(dtype).itemsize) + 5
    x = np.random.default_rng(7).normal(size=(3 * rows, row_items)).astype(dtype)
    path = tmp_path / "x.npy"
    np.save(path, x)
    with NpyFile(path) as f:
        big, small = f[1:1 + rows], f[rows:rows + 3]
        assert mapped(big) and not big.flags.writeable and big.dtype == x.dtype
        assert not mapped(small) and small.flags.writeable
        assert np.array_equal(big, x[1:1 + rows]) and np.array_equal(small, x[rows:rows + 3])
        assert np.array_equal(f[2 * rows:], x[2 * rows:])
        assert maps_of(path) >= 1
        del big
        assert maps_of(path) == 0     # unmapped with its last view: memory stays at the batches in use
        monkeypatch.setattr(mmap, "mmap", lambda *a, **k: (_ for _ in ()).throw(OSError("no mmap here")))
        read = f[1:1 + rows]
        assert not mapped(read) and np.array_equal(read, x[1:1 + rows])


def test_npy_file_truncated_after_opening_fails_with_the_remedy(tmp_path: Path) -> None:
    """Mapping past the end of a file would end the process with SIGBUS on the first touch: mmap refuses it, the
    range is read instead, and the step fails with the remedy."""
    rows = 2 * MAP_BYTES // 400
    np.save(tmp_path / "t.npy", np.zeros((rows, 100), dtype=np.float32))
    with NpyFile(tmp_path / "t.npy") as f:
        os.truncate(tmp_path / "t.npy", 4096)
        with pytest.raises(UserError, match="truncated: regenerate it"):
            f[0:rows]


def test_npy_file_refuses_bad_files(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        NpyFile(tmp_path / "missing.npy", what="predictions")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="pickled Python objects"):
        NpyFile(tmp_path / "obj.npy")
    np.savez(tmp_path / "z.npz", x=np.zeros(3))
    with pytest.raises(UserError, match="npz archive"):
        NpyFile(tmp_path / "z.npz")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(UserError, match="junk.npy is not a .npy file"):
        NpyFile(tmp_path / "junk.npy")
    np.save(tmp_path / "t.npy", np.zeros((100, 10), dtype=np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-40])
    with pytest.raises(UserError, match="truncated"):
        NpyFile(tmp_path / "t.npy")


# --- output kinds, scale, ties, intervals, inconclusive (docs/tolerances.md) -----------------------------------------
def varied_logits(n: int = 200, c: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, c))
    return z.astype(np.float32), z.argmax(1)


def probs(z: np.ndarray) -> np.ndarray:
    return outputs.softmax(z.astype(np.float64)).astype(np.float32)


def test_kinds_are_detected_from_the_reference() -> None:
    z, y = varied_logits()
    config = compare_config()
    profile = functools.partial(outputs.profile_reference, override=config["output_kind"],
                                batch_size=config["batch_size"])
    assert profile(probs(z)).kind == "probabilities"
    assert profile(z).kind == "logits"
    assert profile(z[:, :1]).kind == "other"
    off = probs(z) * np.float32(1.01)                            # rows sum to 1.01: beyond the epsilon
    assert profile(off).kind == "logits"
    forced = profile(z, override="other")
    assert forced.kind == "other" and "config" in forced.how and "detected logits" in forced.how
    with pytest.raises(UserError, match="output kind 'scores' is unknown"):
        profile(z, override="scores")


def profile_first(source: object, output_kind: str, batch_size: int, threads: int) -> outputs.OutputProfile:
    """metrics.profile_before as it was before the pass could make the profile: always a pass of its own first."""
    return outputs.profile_reference(source, override=output_kind, batch_size=batch_size, threads=threads)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("output_kind", ["auto", "probabilities"])
def test_a_profile_made_during_the_pass_is_the_one_made_before(monkeypatch: pytest.MonkeyPatch, output_kind: str,
                                                                threads: int) -> None:
    """Probabilities' tolerances do not depend on the profile, so compare makes it during its pass (profile_before
    returns None): every figure must be what a profile made first gives, the profile's own included."""
    z, y = varied_logits(n=700, c=10)
    ref = probs(z)
    preds = {"savedmodel": ref, "onnxruntime": ref + np.float32(2e-6), "tensorrt_fp16": probs(z + np.float32(0.3))}
    run = functools.partial(config_compare, preds, y, output_kind=output_kind, batch_size=128, threads=threads)
    assert metrics.profile_before(ref, output_kind, 128, threads) is None
    during = run().to_dict()
    monkeypatch.setattr(metrics, "profile_before", profile_first)
    before = run().to_dict()
    assert during == before
    assert during["output"]["kind"] == "probabilities" and during["output"]["predicted_classes"] == 10


def test_first_rows_of_probabilities_then_logits_are_judged_as_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto takes a reference whose first PROBE_ROWS rows are probabilities for probabilities; when later rows are
    not, the pairs are passed again at the tolerances of logits: the result is that of a profile made first, and
    on_batch (per_sample.csv) still sees each batch once."""
    z, y = varied_logits(n=600, c=10)
    ref = z.copy()
    ref[:metrics.PROBE_ROWS + 44] = probs(z[:metrics.PROBE_ROWS + 44])
    other = ref + np.float32(0.02) * np.arange(10, dtype=np.float32)   # moves the logits' softmax, not the rest's
    assert metrics.profile_before(ref, "auto", 128, 1) is None                     # taken for probabilities
    assert metrics.profile_before(z, "auto", 128, 1) is not None                   # logits from the first rows
    seen: list[list[int]] = []
    results = []
    for before in (False, True):
        if before:
            monkeypatch.setattr(metrics, "profile_before", profile_first)
        starts: list[int] = []
        results.append(config_compare({"savedmodel": ref, "onnxruntime": other}, y, batch_size=128, threads=2,
                                      on_batch=lambda batch: starts.append(batch.start)).to_dict())
        seen.append(starts)
    assert results[0] == results[1]
    assert results[0]["output"]["kind"] == "logits"
    assert results[0]["pairs"]["savedmodel vs onnxruntime"]["metrics"]["softmax_outside_tolerance_count"] > 0
    assert seen[0] == seen[1] == list(range(0, 600, 128))


def test_logit_bounds_follow_the_spread() -> None:
    z, y = varied_logits()
    small, big = (config_compare({"savedmodel": z * s, "onnxruntime": z * s}, y).pairs["savedmodel vs onnxruntime"]
                  for s in (np.float32(1), np.float32(100)))
    assert big.tolerance["atol"] == pytest.approx(100 * small.tolerance["atol"], rel=1e-6)
    assert small.tolerance["scale"] == pytest.approx(3, rel=0.1)       # the std of N(0, 3) logits


def test_logits_are_also_judged_after_softmax() -> None:
    z, y = varied_logits()
    shifted = z + np.float32(0.01) * np.arange(z.shape[1], dtype=np.float32)   # small in logits, not after softmax
    pair = config_compare({"savedmodel": z, "onnxruntime": shifted}, y,
                           policy=TolerancePolicy({"fp32": {"atol": 1.0}})).pairs["savedmodel vs onnxruntime"]
    assert pair.metrics["outside_tolerance_count"] == 0
    assert pair.metrics["softmax_outside_tolerance_count"] > 0
    assert pair.verdict == "mismatch" and "after softmax" in pair.reason


def test_other_outputs_have_no_classification_metrics() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(5, 2, (50, 1)).astype(np.float32)
    result = config_compare({"savedmodel": x, "onnxruntime": x + np.float32(1e-6)}, np.zeros(50, dtype=np.int64))
    pair = result.pairs["savedmodel vs onnxruntime"]
    assert result.output["kind"] == "other" and pair.verdict == "consistent"
    for key in ("top1_agreement", "top5_agreement", "top1_flips", "accuracy_change", "mean_top_class_prob_change"):
        assert pair.metrics[key] is None, key
    assert result.backends["savedmodel"]["accuracy"] is None
    assert result.flipped_samples["count"] == 0
    labels = np.full(50, 7, dtype=np.int64)        # labels of a regression are not classes: not checked against C
    assert config_compare({"savedmodel": x, "onnxruntime": x}, labels).output["kind"] == "other"


def test_wilson_and_newcombe_against_hand_computed_values() -> None:
    # Wilson 8/10: centre (0.8 + z^2/20) / (1 + z^2/10), half-width z sqrt(0.016 + z^2/400) / (1 + z^2/10)
    assert intervals.wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert intervals.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert intervals.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    # Newcombe (1998), table II example: 56/70 vs 48/80, difference 0.2, method 10 gives 0.0524 to 0.3339
    assert intervals.newcombe(48, 80, 56, 70) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert intervals.wilson(1, 0) is None


def test_accuracy_and_agreement_carry_their_intervals() -> None:
    z, y = varied_logits(n=100)
    p = probs(z)
    y = y.copy()
    y[:20] = (y[:20] + 1) % 10                                   # 80 % accuracy for the reference
    result = config_compare({"savedmodel": p, "onnxruntime": p}, y)
    assert result.backends["savedmodel"]["accuracy_ci95"] == pytest.approx(intervals.wilson(80, 100))
    pair = result.pairs["savedmodel vs onnxruntime"]
    assert pair.metrics["top1_agreement_ci95"] == pytest.approx(intervals.wilson(100, 100))
    assert pair.metrics["accuracy_change_ci95"] == pytest.approx(intervals.newcombe(80, 100, 80, 100))


def test_a_flip_within_the_floor_is_a_tie_and_not_a_disagreement() -> None:
    z, y = varied_logits(n=2000)
    p = probs(z).astype(np.float64)
    p[0, :2] = [0.45, 0.45 + 2e-5]                              # the reference's top-2 margin is 2e-5
    p[0, 2:] = 0.1 / 8
    q = p.copy()
    q[0, :2] = [0.45 + 2e-5, 0.45]                              # the other backend flips it
    pred = {"savedmodel": p.astype(np.float32), "onnxruntime": q.astype(np.float32)}
    tied = config_compare(pred, y, noise_floor={"floor": 3e-5}).pairs["savedmodel vs onnxruntime"]
    assert tied.metrics["top1_flips"] == 1 and tied.metrics["ties"] == 1
    assert tied.metrics["top1_agreement_with_ties"] == 1.0 and tied.verdict in ("consistent", "drift")
    strict = config_compare(pred, y, noise_floor={"floor": 1e-7}).pairs["savedmodel vs onnxruntime"]
    assert strict.metrics["ties"] == 0 and strict.metrics["top1_agreement_with_ties"] < 1.0


def test_the_noise_floor_sets_the_fp32_bound() -> None:
    z, y = varied_logits()
    p = probs(z)
    noisy = p + np.float32(2e-5) * np.sign(np.random.default_rng(3).normal(size=p.shape)).astype(np.float32)
    pred = {"savedmodel": p, "onnxruntime": noisy}
    assert config_compare(pred, y).pairs["savedmodel vs onnxruntime"].verdict == "mismatch"   # minimum 1e-5
    pair = config_compare(pred, y, noise_floor={"floor": 1e-5}).pairs["savedmodel vs onnxruntime"]
    assert pair.verdict == "consistent" and pair.tolerance["source"] == "measured floor"
    assert pair.tolerance["atol"] == pytest.approx(1e-4)


@pytest.mark.parametrize("make,fragment", [
    (lambda p: np.repeat(p[:1], len(p), axis=0), "constant"),
    (lambda p: np.where(np.arange(p.shape[1]) == 3, 0.5, 0.5 / (p.shape[1] - 1)).astype(np.float32)
     + np.float32(0.01) * (p - p.mean(axis=1, keepdims=True)), "one class"),
])
def test_references_that_prove_nothing_are_inconclusive(make, fragment: str) -> None:
    z, y = varied_logits()
    ref = make(probs(z)).astype(np.float32)
    result = config_compare({"savedmodel": ref, "onnxruntime": ref.copy()}, y, output_kind="probabilities")
    pair = result.pairs["savedmodel vs onnxruntime"]
    assert pair.verdict == "inconclusive" and fragment in pair.reason and not pair
    assert result.inconclusive == pair.reason


def test_a_floor_too_large_is_inconclusive() -> None:
    z, y = varied_logits()
    p = probs(z)
    result = config_compare({"savedmodel": p, "onnxruntime": p}, y, noise_floor={"floor": 0.01})
    assert result.pairs["savedmodel vs onnxruntime"].verdict == "inconclusive"
    assert "noise floor" in result.inconclusive


@pytest.mark.parametrize("classes", [12, 48, 1000])                # within one block, whole blocks, a short last one
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_top_classes_are_the_stable_sort_with_ties_zeros_and_nonfinite(dtype: type, classes: int) -> None:
    """The partial selection gives the first k of a stable argsort of -x, row by row, whatever the ties."""
    from trtverify.kernels import native
    from trtverify.pairstats import scan
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (400, classes)).astype(dtype)         # few distinct values: ties everywhere
    x[:100] = rng.normal(size=(100, classes))                      # no ties
    x[100:110] = 0.0
    x[110:120, ::2] = -0.0                                         # -0 and +0 tie
    x[120, 3], x[121, 5], x[122, 0], x[123, :6] = np.nan, np.inf, -np.inf, np.nan
    finite = np.isfinite(x).all(axis=1)
    for k in (1, 2, 5, 12):
        expected = np.argsort(-x, axis=1, kind="stable")[:, :k]
        top, rows, _ = scan(native(x), k)
        assert np.array_equal(top, expected) and np.array_equal(rows, finite), k
