"""trtverify.io and trtverify.errors: .npy and CSV round trips, refusals that never unpickle, atomic writes,
and the one-line error a script prints for a UserError."""

from __future__ import annotations

import json
import os
import pickle
import pstats
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SCRIPTS, leftovers
from trtverify.errors import MissingBackendError, UserError, require, run_main
from trtverify.io import (CSV_MAGIC, NpyReader, NpyWriter, atomic_path, load_npy, read_csv_array, read_json,
                          save_npy, write_csv_array, write_csv_batches, write_json)


class _MakeDir:
    """Unpickling this calls os.mkdir(marker): a stand-in for arbitrary code in a tampered file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


def _one_line(message: str) -> None:
    assert "\n" not in message.strip(), f"not one line: {message!r}"


def _names(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


# --- .npy ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
    np.array([1e-45, -0.0, np.finfo(np.float32).max, np.inf, -np.inf], dtype=np.float32),
    np.linspace(-1, 1, 11, dtype=np.float64),
    np.array([[-(2**62), 2**62 - 1]], dtype=np.int64),
    np.arange(10, dtype=np.uint8),
    np.array([True, False, True]),
    np.zeros((0, 8, 8, 1), dtype=np.float32),
    np.float16(3.5) * np.ones((2, 2), dtype=np.float16),
    np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    np.arange(6, dtype=">f4"),
    np.array(7.25, dtype=np.float32),
], ids=["f32-3d", "f32-special", "f64", "i64", "u8", "bool", "empty-rows", "f16", "fortran", "big-endian", "0-d"])
def test_npy_round_trip(tmp_path, array) -> None:
    path = tmp_path / "sub" / "a.npy"           # the parent directory is created
    save_npy(path, array)
    back = load_npy(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == np.ascontiguousarray(array).tobytes()  # bit-exact, -0.0 and NaN payloads included
    assert leftovers(tmp_path) == []


def test_load_npy_checks_dtype_ndim_and_finiteness(tmp_path) -> None:
    x = np.ones((4, 3), dtype=np.float32)
    x[2, 1] = np.nan
    x[3, 0] = np.inf
    save_npy(tmp_path / "x.npy", x)
    assert load_npy(tmp_path / "x.npy", dtype="float32", ndim=2).shape == (4, 3)   # finite not asked: fine
    with pytest.raises(UserError, match=r"has dtype float32, expected float64"):
        load_npy(tmp_path / "x.npy", dtype="float64")
    with pytest.raises(UserError, match=r"has shape \(4, 3\) \(2 dimensions\), expected 1"):
        load_npy(tmp_path / "x.npy", ndim=1)
    with pytest.raises(UserError, match=r"1 NaN and 1 Inf values \(first at index \(2, 1\)\)") as err:
        load_npy(tmp_path / "x.npy", what="test samples", finite=True)
    assert str(err.value).startswith(f"test samples file {tmp_path / 'x.npy'} ")


def test_save_npy_refuses_object_arrays(tmp_path) -> None:
    with pytest.raises(UserError, match="object arrays would need pickling"):
        save_npy(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    assert _names(tmp_path) == []


def test_object_npy_is_refused_and_never_unpickled(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([_MakeDir(marker), 1], dtype=object), allow_pickle=True)
    # The payload is live: numpy with pickling allowed runs it (on a second marker, so the real one stays clean).
    live = tmp_path / "live.npy"
    np.save(live, np.array([_MakeDir(tmp_path / "control")], dtype=object), allow_pickle=True)
    np.load(live, allow_pickle=True)
    assert (tmp_path / "control").is_dir()

    with pytest.raises(UserError) as err:
        load_npy(path, what="test samples")
    message = str(err.value)
    _one_line(message)
    assert str(path) in message
    assert "pickled Python objects" in message and "never unpickles" in message
    assert "numpy.save" in message                       # what to do instead
    assert not marker.exists()


def test_raw_pickle_named_npy_is_refused_and_never_unpickled(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "x.npy"
    path.write_bytes(pickle.dumps(_MakeDir(marker)))
    with pytest.raises(UserError) as err:
        load_npy(path)
    message = str(err.value)
    _one_line(message)
    assert str(path) in message and "pickle" in message and "never unpickles" in message
    assert not marker.exists()


def _npy_bytes(tmp_path: Path) -> bytes:
    save_npy(tmp_path / "good.npy", np.arange(200, dtype=np.float32).reshape(20, 10))
    return (tmp_path / "good.npy").read_bytes()


@pytest.mark.parametrize("cut, expected", [
    (lambda b: b[:-7], r"is truncated: 921 bytes, its header promises 928; regenerate it"),
    (lambda b: b[:128], r"is truncated: 128 bytes, its header promises 928; regenerate it"),
    (lambda b: b[:40], r"is truncated inside its header .*; regenerate it"),
    (lambda b: b[:3], r"is truncated: 3 bytes, not even a .npy header; regenerate it"),
    (lambda b: b"", r"is empty \(0 bytes\); it is truncated: regenerate it"),
], ids=["data-short", "header-only", "header-cut", "magic-cut", "empty"])
def test_truncated_npy(tmp_path, cut, expected) -> None:
    good = _npy_bytes(tmp_path)
    assert len(good) == 928                                 # 128-byte header + 200 float32
    path = tmp_path / "cut.npy"
    path.write_bytes(cut(good))
    with pytest.raises(UserError, match=expected) as err:
        load_npy(path, what="predictions")
    _one_line(str(err.value))
    assert str(err.value).startswith(f"predictions file {path} ")


@pytest.mark.parametrize("content", [b"1.0,2.0\n3.0,4.0\n", b"\x00" * 64, b"NUMPY not really"],
                         ids=["csv-text", "zeros", "almost-magic"])
def test_non_npy_file(tmp_path, content) -> None:
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_npy(path)
    message = str(err.value)
    _one_line(message)
    assert str(path) in message and "is not a .npy file" in message and "numpy.save" in message
    assert "pickled" not in message                     # numpy's fallback would call a text file pickled data


def test_npy_with_damaged_header(tmp_path) -> None:
    good = _npy_bytes(tmp_path)
    bad = good.replace(b"'descr': '<f4'", b"'descr': '<q9'")
    assert bad != good
    (tmp_path / "h.npy").write_bytes(bad)
    with pytest.raises(UserError, match=r"h\.npy is not a valid \.npy file \(.*\); regenerate it") as err:
        load_npy(tmp_path / "h.npy")
    _one_line(str(err.value))


def test_missing_npy_and_npz(tmp_path) -> None:
    with pytest.raises(UserError) as err:
        load_npy(tmp_path / "nope.npy", what="test labels")
    assert str(err.value) == (f"test labels file {tmp_path / 'nope.npy'} does not exist; run the step that writes "
                              "it, or fix the path in config.yaml")
    (tmp_path / "dir.npy").mkdir()                       # a directory is not a file either
    with pytest.raises(UserError, match="does not exist"):
        load_npy(tmp_path / "dir.npy")
    np.savez(tmp_path / "z.npz", a=np.zeros(3))
    with pytest.raises(UserError, match=r"z\.npz is an \.npz archive, expected a single \.npy array"):
        load_npy(tmp_path / "z.npz")
    (tmp_path / "pk.npy").write_bytes(b"PK\x03\x04" + bytes(100))     # a zip's magic, then no archive
    with pytest.raises(UserError, match=r"pk\.npy is not a \.npy file \(it starts like an \.npz archive but is not"):
        load_npy(tmp_path / "pk.npy")


# --- atomic writes ---------------------------------------------------------------------------------------------------
def test_atomic_path_success_leaves_only_the_target(tmp_path) -> None:
    target = tmp_path / "out.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target      # beside the target, so the rename is atomic
        tmp.write_bytes(b"complete")
        assert not target.exists()                           # nothing visible until the block ends
    assert target.read_bytes() == b"complete"
    assert _names(tmp_path) == ["out.bin"]
    save_npy(tmp_path / "a.npy", np.ones(3))
    write_json(tmp_path / "m.json", {"a": [1, 2.5], "b": None})
    assert read_json(tmp_path / "m.json") == {"a": [1, 2.5], "b": None}
    assert _names(tmp_path) == ["a.npy", "m.json", "out.bin"]


def test_atomic_path_failure_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "out.npy"
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target) as tmp:
            seen.append(tmp)
            with open(tmp, "wb") as fh:
                np.save(fh, np.arange(1000))
                fh.flush()
            assert tmp.stat().st_size > 0
            raise RuntimeError("disk on fire")
    assert seen and not seen[0].exists()
    assert _names(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):                   # an interrupt cleans up too
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_failed_write_keeps_existing_target(tmp_path, monkeypatch) -> None:
    target = tmp_path / "p.npy"
    save_npy(target, np.arange(5, dtype=np.int32))
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"garbage")
            raise RuntimeError("midway")
    assert target.read_bytes() == before

    real_save = np.save

    def half_save(fh, array, allow_pickle=False):  # type: ignore[no-untyped-def]
        real_save(fh, array[: len(array) // 2], allow_pickle=allow_pickle)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", half_save)
    with pytest.raises(UserError, match="No space left on device; nothing was written"):  # one line, no traceback
        save_npy(target, np.arange(100, dtype=np.int32))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert _names(tmp_path) == ["p.npy"]

    write_json(tmp_path / "m.json", {"ok": 1})
    with pytest.raises(ValueError):                          # NaN is not JSON: refused midway, nothing replaced
        write_json(tmp_path / "m.json", {"ok": float("nan")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"ok": 1}
    assert _names(tmp_path) == ["m.json", "p.npy"]


def test_atomic_directory(tmp_path) -> None:
    target = tmp_path / "model"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with atomic_path(target, directory=True) as tmp:         # an existing directory is replaced whole
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    with pytest.raises(RuntimeError):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "c.txt").write_text("3")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert _names(tmp_path) == ["model"]


def test_read_json_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="metrics file .*x.json does not exist"):
        read_json(tmp_path / "x.json", what="metrics")
    (tmp_path / "x.json").write_text('{"a": 1,')
    with pytest.raises(UserError, match=r"x\.json is not valid JSON \(.*\); regenerate it"):
        read_json(tmp_path / "x.json")


# --- CSV -------------------------------------------------------------------------------------------------------------
def test_csv_float32_bit_exact(tmp_path) -> None:
    f32 = np.float32
    special = np.array([1e-38, -0.0, 0.0, 3.4e38, np.finfo(f32).max, np.finfo(f32).tiny, 1e-45,
                        0.1, 1 / 3, np.nextafter(f32(1), f32(2)), 16777215, -123456.789, 2.7182817],
                       dtype=np.float32)
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=4000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = np.concatenate([special, bits[np.isfinite(bits)][:3987]])
    array = values[: len(values) // 10 * 10].reshape(-1, 2, 5)
    write_csv_array(tmp_path / "a.csv", array)
    header = (tmp_path / "a.csv").read_text().splitlines()[0]
    assert header == f"{CSV_MAGIC} shape={','.join(map(str, array.shape))} dtype=float32"
    back = read_csv_array(tmp_path / "a.csv")
    assert back.dtype == np.float32 and back.shape == array.shape
    assert np.array_equal(back.view(np.uint32), array.view(np.uint32))    # -0.0 and subnormals included
    # 9 significant digits are needed: 8 would not bring these back
    shorter = np.array([float(f"{v:.8g}") for v in array.reshape(-1)], dtype=np.float32)
    assert not np.array_equal(shorter.view(np.uint32), array.reshape(-1).view(np.uint32))
    assert leftovers(tmp_path) == []


def test_csv_other_dtypes_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(3)
    f64 = rng.integers(0, 2**64, size=500, dtype=np.uint64).view(np.float64)
    cases = {
        "f64": f64[np.isfinite(f64)][:400].reshape(100, 4),
        "i64": np.array([[-(2**63), 2**63 - 1, 0]], dtype=np.int64),
        "u8": np.arange(256, dtype=np.uint8).reshape(16, 16),
        "bool": np.array([[True, False], [False, True]]),
        "1d": np.arange(7, dtype=np.int32),
        "4d": np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) / 3,
    }
    for name, array in cases.items():
        write_csv_array(tmp_path / f"{name}.csv", array)
        back = read_csv_array(tmp_path / f"{name}.csv")
        assert back.dtype == array.dtype and back.shape == array.shape, name
        assert back.tobytes() == array.tobytes(), name


def test_csv_zero_rows(tmp_path) -> None:
    array = np.zeros((0, 8, 8, 1), dtype=np.float32)
    write_csv_array(tmp_path / "z.csv", array)
    assert (tmp_path / "z.csv").read_text() == f"{CSV_MAGIC} shape=0,8,8,1 dtype=float32\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # a valid empty file reads without a warning
        back = read_csv_array(tmp_path / "z.csv")
    assert back.shape == (0, 8, 8, 1) and back.dtype == np.float32


def test_csv_write_refusals(tmp_path) -> None:
    with pytest.raises(UserError, match="0-dimensional"):
        write_csv_array(tmp_path / "a.csv", np.array(1.0))
    with pytest.raises(UserError, match="cannot write dtype complex128 as CSV"):
        write_csv_array(tmp_path / "a.csv", np.ones((2, 2), dtype=complex))
    assert _names(tmp_path) == []


@pytest.mark.parametrize("text, expected", [
    (f"{CSV_MAGIC} shape=3,2 dtype=float32\n1,2\n3,4\n",
     r"has 2 rows of 2 values; its header promises 3 rows of 2: the file is truncated or was edited"),
    (f"{CSV_MAGIC} shape=2,3 dtype=float32\n1,2\n3,4\n",
     r"has 2 rows of 2 values; its header promises 2 rows of 3"),
    (f"{CSV_MAGIC} shape=1,2,2 dtype=float32\n1,2,3,4\n5,6,7,8\n",
     r"has 2 rows of 4 values; its header promises 1 rows of 4"),
    (f"{CSV_MAGIC} shape=2,2 dtype=float32\n1,2\n3,abc\n", r"has a malformed row \(.*'abc'.*\)"),
    (f"{CSV_MAGIC} shape=2,2 dtype=float32\n1,2\n3,4,5\n", r"has a malformed row \(.*columns.*\)"),
    (f"{CSV_MAGIC} shape=2,2 dtype=int64\n1,2\n3,4.5\n", r"has a malformed row"),
    ("1,2\n3,4\n", r"lacks the '# trtverify-csv 1 shape=\.\.\. dtype=\.\.\.' header line"),
    ("", r"lacks the '# trtverify-csv 1 shape=\.\.\. dtype=\.\.\.' header line"),
    (f"{CSV_MAGIC} shape=2,x dtype=float32\n1,2\n3,4\n", r"has a malformed header '.*shape=2,x.*'"),
    (f"{CSV_MAGIC} shape=2,2\n1,2\n3,4\n", r"has a malformed header"),
    (f"{CSV_MAGIC} shape=2,2 dtype=float99\n1,2\n3,4\n", r"has a malformed header"),
], ids=["shape-lies-rows", "shape-lies-width", "shape-lies-3d", "non-numeric", "ragged", "float-in-int",
        "no-header", "empty", "bad-shape", "no-dtype", "bad-dtype"])
def test_csv_read_errors(tmp_path, text, expected) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=expected) as err:
        read_csv_array(path, what="test samples")
    _one_line(str(err.value))
    assert str(err.value).startswith(f"test samples file {path} ")


def test_csv_missing(tmp_path) -> None:
    with pytest.raises(UserError, match=r"CSV file .*none\.csv does not exist"):
        read_csv_array(tmp_path / "none.csv")


# --- errors: require and run_main ------------------------------------------------------------------------------------
def test_require() -> None:
    assert require("json", purpose="x", hint="y") is json
    with pytest.raises(MissingBackendError) as err:
        require("trtverify_no_such_module", purpose="the frobnicator backend", hint="pip install frob")
    message = str(err.value)
    assert isinstance(err.value, UserError)
    assert message.startswith("the frobnicator backend needs the Python module 'trtverify_no_such_module', "
                              "which is not importable here (")
    assert message.endswith(". pip install frob")
    _one_line(message)
    assert err.value.__cause__ is None and err.value.__suppress_context__   # raised "from None"


def test_run_main_in_process(capsys) -> None:
    def fails(argv):  # type: ignore[no-untyped-def]
        raise UserError(f"bad input {argv[0]}; fix it")

    with pytest.raises(SystemExit) as exit_:
        run_main(fails, ["x.npy"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.endswith(": error: bad input x.npy; fix it\n") and err.count("\n") == 1
    for returned, code in ((None, 0), (0, 0), (3, 3)):
        with pytest.raises(SystemExit) as exit_:
            run_main(lambda argv, r=returned: r, [])
        assert exit_.value.code == code
    with pytest.raises(ZeroDivisionError):                   # a bug is not a user error: it propagates
        run_main(lambda argv: 1 / 0, [])


_TINY = '''\
import atexit, os, sys
from trtverify.errors import UserError, require, run_main

atexit.register(print, "teardown")    # runs in the interpreter's teardown, which quick_exit skips

def main(argv):
    kind = (argv if argv is not None else sys.argv[1:])[0]
    if kind == "user":
        raise UserError("the samples file s.npy is empty; regenerate it")
    if kind == "missing":
        require("trtverify_absent_framework", purpose="the tiny step", hint="pip install absent-framework")
    if kind == "bug":
        return {}["no such key"]
    print("ok")
    return 0

if __name__ == "__main__":
    run_main(main, quick_exit=bool(os.environ.get("QUICK")))
'''


def _tiny(tmp_path: Path, kind: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "tiny_step.py"
    script.write_text(_TINY)
    environ = {k: v for k, v in os.environ.items() if k != "TRTVERIFY_VERBOSE"}
    environ["PYTHONPATH"] = str(SCRIPTS)
    return subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True, cwd=REPO,
                          env={**environ, **env}, timeout=60)


@pytest.mark.parametrize("quick", ["", "1"])
def test_run_main_subprocess(tmp_path, quick: str) -> None:
    """The same status and messages with quick_exit, whose flush keeps what a piped stdout had buffered; only
    the teardown (an atexit print here) is skipped."""
    teardown = "" if quick else "teardown\n"
    ok = _tiny(tmp_path, "ok", QUICK=quick)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "ok\n" + teardown, "")

    user = _tiny(tmp_path, "user", QUICK=quick)
    assert (user.returncode, user.stdout) == (1, teardown)
    assert user.stderr == "tiny_step.py: error: the samples file s.npy is empty; regenerate it\n"
    assert "Traceback" not in user.stderr

    missing = _tiny(tmp_path, "missing")
    assert missing.returncode == 1
    lines = missing.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in missing.stderr
    assert lines[0].startswith("tiny_step.py: error: the tiny step needs the Python module "
                               "'trtverify_absent_framework'")
    assert lines[0].endswith("pip install absent-framework")

    verbose = _tiny(tmp_path, "user", TRTVERIFY_VERBOSE="1")  # the traceback on request
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr and "UserError" in verbose.stderr

    bug = _tiny(tmp_path, "bug")                              # a bug keeps its traceback
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "KeyError" in bug.stderr
    assert ": error:" not in bug.stderr


def test_quick_exit_leaves_a_profilers_statistics(tmp_path) -> None:
    """Under cProfile (tools/bench_compare.py --profile runs compare.py so) the process ends as usual, so that the
    profiler writes its file; quick_exit had ended it before that, and --profile wrote nothing."""
    script, stats = tmp_path / "tiny_step.py", tmp_path / "tiny.prof"
    script.write_text(_TINY)
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), str(script), "ok"],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(SCRIPTS), "QUICK": "1"})
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\nteardown\n", "")
    assert "main" in {fn for _, _, fn in pstats.Stats(str(stats)).stats}  # type: ignore[attr-defined]


def test_script_user_error_is_one_line(tmp_path) -> None:
    """A real step, export_csv.py, given a text file as samples: one line naming the file, exit 1, nothing written."""
    (tmp_path / "x.npy").write_text("1,2,3\n")
    save_npy(tmp_path / "y.npy", np.zeros(3, dtype=np.int64))
    out = tmp_path / "out"
    args = ["--samples", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
            "--samples-csv", out / "x.csv", "--labels-csv", out / "y.csv"]
    proc = subprocess.run([sys.executable, str(SCRIPTS / "export_csv.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("export_csv.py: error: test samples file ")
    assert str(tmp_path / "x.npy") in proc.stderr and "is not a .npy file" in proc.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_atomic_writes_get_the_mode_a_plain_write_would(tmp_path: Path) -> None:
    """mkstemp's 0600 must not leak into artifacts others on a cluster read; an executable stays executable."""
    old = os.umask(0o022)
    try:
        save_npy(tmp_path / "a.npy", np.zeros(2))
        with atomic_path(tmp_path / "tool") as tmp:
            tmp.write_text("#!/bin/sh\n")
            tmp.chmod(0o700)
        with atomic_path(tmp_path / "d", directory=True) as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.npy").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


# --- one .npy contract with the C++ reader --------------------------------------------------------------------------
sys.path.insert(0, str(REPO / "tests" / "cpp"))
from make_npy_fixtures import bad_npy_cases  # noqa: E402  (the malformed files cpp/tests/test_fixtures.cpp reads)

# Cases where both readers must say the same words (the C++ side checks the same fragment in ctest).
SHARED_WORDS = {"trailing_garbage", "shape_lies_long", "header_over_limit", "bad_magic", "shape_negative"}
# What the Python reader accepts and its callers check instead (dtype, layout: save_npy writes C order).
PYTHON_ACCEPTS = {"fortran_order", "structured", "complex", "unicode", "datetime", "no_byte_order"}


@pytest.mark.parametrize("name,data,words", bad_npy_cases(), ids=[c[0] for c in bad_npy_cases()])
def test_python_reader_refuses_what_the_cpp_reader_refuses(tmp_path: Path, name: str, data: bytes,
                                                           words: str) -> None:
    path = tmp_path / f"{name}.npy"
    path.write_bytes(data)
    if name in PYTHON_ACCEPTS:
        assert isinstance(load_npy(path), np.ndarray)
        return
    with warnings.catch_warnings(), pytest.raises(UserError) as info:
        warnings.simplefilter("ignore")  # numpy's note on Python 2 style headers
        load_npy(path)
    _one_line(str(info.value))
    assert "allow_pickle" not in str(info.value)
    if name in SHARED_WORDS:
        assert words in str(info.value)


def test_save_npy_writes_c_order_that_the_cpp_reader_takes(tmp_path: Path) -> None:
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    save_npy(tmp_path / "x.npy", fortran)
    with open(tmp_path / "x.npy", "rb") as fh:
        np.lib.format.read_magic(fh)
        assert np.lib.format.read_array_header_1_0(fh)[1] is False  # fortran_order
    np.testing.assert_array_equal(load_npy(tmp_path / "x.npy"), fortran)


def test_atomic_path_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    target = tmp_path / "x.npy"
    stale_file, stale_dir = tmp_path / ".x.npy.abc123.tmp", tmp_path / ".x.npy.def456.tmp"
    other = tmp_path / ".y.npy.abc123.tmp"  # another target's temporary is not ours to remove
    # names .x.npy.*.tmp does not match: no random part, another suffix, another target's name that starts alike
    unlike = [".x.npy.tmp", ".x.npy.abc123.tmpx", ".x.npyz.abc123.tmp", "x.npy.abc123.tmp"]
    stale_file.write_bytes(b"half")
    stale_dir.mkdir()
    (stale_dir / "inner").write_text("half")
    for name in [other.name, *unlike]:
        (tmp_path / name).write_bytes(b"half")
    save_npy(target, np.zeros(3, np.float32))
    assert _names(tmp_path) == sorted([other.name, *unlike, "x.npy"])


@pytest.mark.parametrize("directory", [False, True])
def test_atomic_path_makes_its_temporary_exclusively_for_its_owner(tmp_path: Path, directory: bool) -> None:
    """The temporary is new (never an existing path, which a link could make another file), named as the stale
    ones are found, and private to its owner until it is renamed into place with the umask's mode."""
    target = tmp_path / "out.json"
    seen = []
    with atomic_path(target, directory=directory) as tmp:
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.json.") and tmp.name.endswith(".tmp")
        assert tmp.is_dir() is directory and stat.S_IMODE(tmp.stat().st_mode) == (0o700 if directory else 0o600)
        if not directory:
            tmp.write_text("{}")
    with atomic_path(target, directory=directory) as again:
        assert again != seen[0]
        if not directory:
            again.write_text("{}")
    assert _names(tmp_path) == ["out.json"]


# ---------------------------------------------------------------- streaming reader and writer
@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_reader_batches_are_the_array(tmp_path: Path, order: str) -> None:
    x = np.array(np.arange(7 * 3 * 2, dtype=np.float32).reshape(7, 3, 2), order=order)
    path = tmp_path / "x.npy"
    np.save(path, x)
    reader = NpyReader(path, what="test samples")
    assert (len(reader), reader.c_order) == (7, order == "C")
    assert reader.layout == {"C": "C order", "F": "Fortran order"}[order]
    got = list(reader.batches(3))
    assert [s for s, _ in got] == [0, 3, 6] and all(b.flags.c_contiguous for _, b in got)
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), x)
    np.testing.assert_array_equal(np.concatenate([b for _, b in reader.batches(2, stop=5)]), x[:5])


def test_npy_reader_names_the_first_bad_sample(tmp_path: Path) -> None:
    x = np.zeros((10, 4), np.float32)
    x[7, 2] = np.inf
    np.save(tmp_path / "x.npy", x)
    reader = NpyReader(tmp_path / "x.npy", what="test samples", finite=True)
    list(reader.batches(4, stop=4))  # the bad sample is not read
    with pytest.raises(UserError, match=r"0 NaN and 1 Inf values \(first at index \(7, 2\)\) counted in samples 4..7"):
        list(reader.batches(4))


def test_npy_writer_writes_the_final_file_batch_by_batch(tmp_path: Path) -> None:
    out = tmp_path / "p.npy"
    with NpyWriter(out, 5) as writer:
        writer.write(np.ones((3, 2)))
        assert not out.exists()  # renamed into place only when complete
        writer.write(np.full((2, 2), 2.0))
    got = load_npy(out)
    assert got.dtype == np.float32 and got.tolist() == [[1, 1]] * 3 + [[2, 2]] * 2
    assert out.stat().st_size == np.lib.format.open_memmap(out, mode="r").offset + 5 * 2 * 4


def test_npy_writer_leaves_nothing_when_rows_are_missing_or_a_step_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 of 3 rows"), NpyWriter(tmp_path / "short.npy", 3) as writer:
        writer.write(np.ones((2, 4)))
    with pytest.raises(RuntimeError), NpyWriter(tmp_path / "failed.npy", 2) as writer:
        writer.write(np.ones((1, 4)))
        raise RuntimeError("the model failed")
    with pytest.raises(ValueError, match="does not fit"), NpyWriter(tmp_path / "wide.npy", 2) as writer:
        writer.write(np.ones((1, 4)))
        writer.write(np.ones((1, 5)))
    assert list(tmp_path.iterdir()) == []


def test_csv_batches_equal_the_whole_array(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((9, 2, 3), dtype=np.float32)
    write_csv_array(tmp_path / "whole.csv", x)
    write_csv_batches(tmp_path / "batched.csv", x.shape, x.dtype, [x[:4], x[4:8], x[8:]])
    assert (tmp_path / "whole.csv").read_bytes() == (tmp_path / "batched.csv").read_bytes()
    np.testing.assert_array_equal(read_csv_array(tmp_path / "batched.csv"), x)


def test_npy_reader_reads_into_a_given_buffer(tmp_path: Path) -> None:
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.save(tmp_path / "x.npy", x)
    reader, buffer = NpyReader(tmp_path / "x.npy"), np.zeros((8, 4), np.float32)
    batch = reader.read(2, 5, out=buffer[:3])
    assert np.shares_memory(batch, buffer) and buffer[:3].tolist() == x[2:5].tolist()
    assert not np.shares_memory(reader.read(0, 2, out=buffer[:3]), buffer)  # a buffer of another shape: not used
