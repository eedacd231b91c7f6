"""Compare's passes over every element (kernels.c), compiled on first use and called through ctypes.

In numpy each statistic was its own pass over a float64 copy (about 25 per pair, half of them the quantile
sketch's), which held compare near 0.1 GB/s; one compiled loop reads each element once and keeps every sum in a
register. The definitions are metrics.py's; tests/test_kernels.py checks each figure against plain numpy.

The passes take a batch's rows as ``native`` gives them (float32 or float64; float16 widened to float32), widen
each element to float64, which is exact, and run without the GIL (ctypes releases it), so backends and pairs can
run on several threads.

The library is built by ``compiler()`` ($CC, else cc) the first time a pass is called after a clone or an edit of
kernels.c, and cached under a name that is a digest of the source, the compiler, the flags and the machine: next to
this file (``__pycache__``) where that is writable, else in the user's cache folder. Loading it costs milliseconds;
numba, which compiled these passes before, cost ~0.5 s of every run to import and load its cache, five times the
whole of a plain numpy loop over the same predictions (docs/benchmarks.md, "At scale").
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shlex
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import UserError

SOURCE = Path(__file__).with_name("kernels.c")
# Reassociation lets the sums over a row run in SIMD lanes; nothing else of fast math: NaN and Inf keep their
# meaning, and no multiply-add is fused, so a bound stays a bound.
FLAGS = ("-O3", "-std=c11", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
         "-fno-signed-zeros", "-ffp-contract=off")
# glibc's vector maths for the softmax's exp (kernels.c, with GCC on x86-64 Linux). Where the compiler cannot link
# libmvec (a sysroot without it), the library is built without; clang links it and keeps libm's exp.
VECTOR_MATHS = ("-DTRTVERIFY_MVEC", "-lmvec") if sys.platform == "linux" and os.uname().machine == "x86_64" else ()

# A pair's scalar figures, in the order pair_pass returns them (kernels.c's enum; checked when the library loads).
(DIFFERING, FIRST_DIFFERENCE, OUTSIDE, FINITE, ZEROS, SUM_ABS, MAX_ABS, MIN_ABS, SUM_REL, MAX_REL,
 MIN_POSITIVE) = range(11)
FIGURES = MIN_POSITIVE + 1
COPIES = 4      # copies of a pair's sketch counters (kernels.c's COPIES)

_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
_SIGNATURES = {
    "backend_pass": (_I, [_P, _I, _I, _I, _P, _P, _P]),
    "pair_pass": (_I, [_P, _P, _I, _I, _P, _D, _D, _D, _I, _P, _P, _P, _P, _P]),
    "profile_pass": (None, [_P, _I, _I, _P, _P, _P, _P]),
    "softmax_pass": (None, [_P, _I, _I, _P]),
}
_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def compiler() -> list[str]:
    """The C compiler's command: $CC (split as a shell would); else cc; else, where there is no cc, zig's C
    compiler from the ziglang wheel when it is installed (`make` installs it on such machines: envs/lock.yaml)."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    if not on_path("cc") and importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang", "cc"]
    return ["cc"]


def on_path(program: str) -> bool:
    """Whether ``program`` is an executable file in a folder of $PATH, as shutil.which finds it: the cached library's
    name asks each time, and shutil's import (bz2, lzma) is 2.5-3.5 ms of compare's 0.2-s run (2026-12-06)."""
    folders = os.get_exec_path() if os.environ.get("PATH", os.defpath) else []   # which finds nothing in PATH=""
    return any(os.access(path, os.X_OK) and not os.path.isdir(path)
               for path in (os.path.join(folder, program) for folder in folders))


def library_name() -> str:
    """The cached library's file name: a digest of everything that makes it, so an edit builds a new one."""
    try:    # hashlib's own blake2b, without hashlib, which loads OpenSSL: 4 ms of compare's 0.2-s start
        from _blake2 import blake2b
    except ImportError:     # a Python without the module
        from hashlib import blake2b
    h = blake2b(SOURCE.read_bytes(), digest_size=16)
    h.update("\0".join([*compiler(), *FLAGS, *VECTOR_MATHS, os.uname().machine, sys.platform]).encode())
    return f"kernels-{h.hexdigest()[:16]}.so"


def cache_dirs() -> list[Path]:
    """Where the library may be cached, in order: next to this file, then the user's cache folder."""
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return [Path(__file__).parent / "__pycache__", Path(home) / "trtverify"]


def build(dest: Path) -> None:
    """Compile kernels.c into ``dest`` (written under another name, then renamed: a process that loads it at the
    same time sees the whole library or none), with the compiler's identity beside it (``.json``)."""
    import subprocess

    cc = compiler()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    # zig keeps its own caches under the user's home unless told otherwise: beside the library instead
    zig = str(dest.parent / "zig")
    env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": zig, "ZIG_LOCAL_CACHE_DIR": zig}
    try:
        for extra in ([VECTOR_MATHS] if VECTOR_MATHS else []) + [()]:
            command = [*cc, *FLAGS, str(SOURCE), "-o", str(tmp), *extra]
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode == 0:
                break
        version = subprocess.run([*cc, "--version"], capture_output=True, text=True, env=env).stdout.partition("\n")[0]
    except FileNotFoundError:
        raise UserError(
            f"compare's passes ({SOURCE}) are compiled on first use, and there is no C compiler here "
            f"('{cc[0]}' was not found). Install one (Debian/Ubuntu: apt install gcc; conda: conda install -c "
            "conda-forge c-compiler; or pip install -r envs/requirements-compiler.txt, which needs no root), or set "
            "CC to one") from None
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise UserError(f"compiling compare's passes failed ({' '.join(cc)} {SOURCE}, exit {done.returncode}): "
                        f"{done.stderr.strip()[-2000:]}. Set CC to a C11 compiler (gcc or clang)")
    dest.with_suffix(".json").write_text(json.dumps({"compiler": version, "command": [*cc, *FLAGS, *extra]}) + "\n")
    os.replace(tmp, dest)


def _open(path: Path) -> ctypes.CDLL:
    """Load a built library and declare its functions; OSError when it is not a whole library of this source."""
    try:
        lib = ctypes.CDLL(str(path))
        lib.layout.restype, lib.layout.argtypes = _I, [_I]
        if (lib.layout(0), lib.layout(1)) != (FIGURES, COPIES):
            raise OSError("its figures or counters are not those of kernels.py")
        for name, (restype, argtypes) in _SIGNATURES.items():
            for suffix in ("f32", "f64"):
                fn = getattr(lib, f"{name}_{suffix}")
                fn.restype, fn.argtypes = restype, argtypes
        lib.softmax_outside.restype, lib.softmax_outside.argtypes = _I, [_P, _P, _I, _I, _I, _I, _P, _P, _P, _P]
        lib.csv_rows.restype, lib.csv_rows.argtypes = _I, [_I, _I, _P, _I, _P, _P, _P, _I]
        lib.csv_capacity.restype, lib.csv_capacity.argtypes = _I, [_I, _I]
    except AttributeError as exc:   # a function missing
        raise OSError(str(exc)) from None
    return lib


def library() -> ctypes.CDLL:
    """The compiled passes: the cached library, built first where there is none (or it does not load)."""
    lib = _loaded.get("lib")
    if lib is not None:
        return lib
    with _lock:
        if "lib" not in _loaded:
            _loaded["lib"], _loaded["path"] = _find_or_build()
        return _loaded["lib"]


def _find_or_build() -> tuple[ctypes.CDLL, Path]:
    name, tried = library_name(), []
    for folder in cache_dirs():
        path = folder / name
        if path.exists():
            try:
                return _open(path), path
            except OSError as exc:      # truncated or foreign: built again below
                tried.append(f"{path}: {exc}")
    for folder in cache_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError("not writable")
            build(folder / name)
        except OSError as exc:          # not writable: the next folder
            tried.append(f"{folder}: {exc}")
            continue
        try:
            return _open(folder / name), folder / name
        except OSError as exc:
            raise UserError(f"the compare passes that {' '.join(compiler())} built do not load ({exc}); set CC to "
                            "another C compiler (gcc, or clang)") from None
    raise UserError(f"nowhere to keep compare's compiled passes: {'; '.join(tried)}. Make one of these folders "
                    "writable, or set XDG_CACHE_HOME to a folder that is")


def built_by() -> str:
    """The compiler that built the loaded library (its --version line), for the record of how figures were made."""
    library()
    meta = _loaded["path"].with_suffix(".json")     # written by build() beside the library
    return str(json.loads(meta.read_text()).get("compiler", "unknown")) if meta.exists() else "unknown"


def native(x: Any) -> np.ndarray:
    """Rows as the passes take them: float32 or float64 (float16 widened: exact), native byte order, contiguous."""
    x = np.asarray(x)
    return np.ascontiguousarray(x, dtype=np.float64 if x.dtype.itemsize > 4 else np.float32)


def _ptr(a: np.ndarray, dtype: Any) -> int:
    """The address of an array the passes read or write: of ``dtype``, C-contiguous, native byte order."""
    if a.dtype != dtype or not a.flags.c_contiguous:
        raise TypeError(f"kernels: want a C-contiguous {np.dtype(dtype)} array, got {a.dtype} "
                        f"(contiguous: {a.flags.c_contiguous})")
    return a.ctypes.data


def _typed(x: np.ndarray, name: str) -> Any:
    if x.dtype == np.float32:
        return getattr(library(), f"{name}_f32")
    if x.dtype == np.float64:
        return getattr(library(), f"{name}_f64")
    raise TypeError(f"kernels: {name} takes float32 or float64 rows (see native), not {x.dtype}")


def _ok(status: int, name: str) -> None:
    if status != 0:
        raise MemoryError(f"kernels: {name} could not allocate its row buffers")


def backend_pass(x: np.ndarray, k: int, top: np.ndarray, finite_rows: np.ndarray) -> tuple[int, int, int]:
    """Per row: whether every value is finite (``finite_rows``), and the k highest classes of a finite row
    (``top``, n x k, in the order of a stable argsort of -row); rows with NaN or Inf are left to the caller.
    Returns the batch's NaN count, Inf count and the flat index of its first non-finite element (-1: none)."""
    n, c = x.shape
    counts = np.empty(3, dtype=np.int64)
    fn = _typed(x, "backend_pass")
    _ok(fn(_ptr(x, x.dtype), n, c, k, _ptr(top, np.int64), _ptr(finite_rows, np.bool_), counts.ctypes.data),
        "backend_pass")
    return int(counts[0]), int(counts[1]), int(counts[2])


def pair_pass(a: np.ndarray, b: np.ndarray, rows_finite: np.ndarray, rtol: float, atol: float,
              relative_floor: float, shift: int, counts: np.ndarray, dot: np.ndarray, norm_a: np.ndarray,
              norm_b: np.ndarray) -> np.ndarray:
    """One pair over one batch (a and b of one shape and dtype); ``a`` is the reference; ``rows_finite``: both rows
    are finite. Per element ``d = |a - b|`` in float64: counted in bucket ``bits(d) >> shift`` of ``counts`` (the
    sketch's buckets, made by ``counters``; exact zeros apart) and in the sums, and outside when
    ``d > atol + rtol * |a|``; an element where ``d`` or ``|a|`` is not finite is outside unless equal (the same
    bits, or NaN on both sides) and in no other figure. Per row into dot, norm_a, norm_b: ``a.b``, ``|a|^2`` and
    ``|b|^2`` (meaningful for finite rows). Returns the scalar figures indexed by the module's constants."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise TypeError(f"kernels: pair_pass takes two arrays of one shape and dtype, not {a.shape} {a.dtype} "
                        f"and {b.shape} {b.dtype}")
    n, c = a.shape
    out = np.empty(FIGURES)
    fn = _typed(a, "pair_pass")
    _ok(fn(_ptr(a, a.dtype), _ptr(b, a.dtype), n, c, _ptr(rows_finite, np.bool_), rtol, atol, relative_floor,
           shift, _ptr(counts, np.int64), _ptr(dot, np.float64), _ptr(norm_a, np.float64),
           _ptr(norm_b, np.float64), out.ctypes.data), "pair_pass")
    return out


def counters(key_space: int) -> np.ndarray:
    """Zeroed counters for pair_pass: COPIES side by side for each of the sketch's keys (``merged`` adds them)."""
    return np.zeros((key_space, COPIES), dtype=np.int64)


def merged(counts: np.ndarray) -> np.ndarray:
    """pair_pass's counters as one per key: the copies added a column at a time (numpy's sum along rows of four
    took 2.7 ms a pair for the 131,008 keys, this 0.4 ms)."""
    total = counts[:, 0].copy()
    for copy in range(1, counts.shape[1]):
        total += counts[:, copy]
    return total


def profile_pass(x: np.ndarray, total: np.ndarray, squares: np.ndarray, classes: np.ndarray,
                 extremes: np.ndarray) -> None:
    """outputs.profile_reference's sums over the finite rows of a batch: per class the sum and the sum of squares,
    the count of rows whose arg-max it is (the first maximum), and ``extremes`` = (lowest value, highest value,
    largest |row sum - 1|), each updated in place."""
    n, c = x.shape
    _typed(x, "profile_pass")(_ptr(x, x.dtype), n, c, _ptr(total, np.float64), _ptr(squares, np.float64),
                              _ptr(classes, np.int64), _ptr(extremes, np.float64))


def softmax(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """outputs.softmax (float64, each row shifted by its maximum) of rows that are all finite, as ``native`` gives
    them, in one compiled pass, into ``out`` (float64, C order, of x's shape) or a new array; equal to numpy's up to
    the last few bits (tests/test_kernels.py). Its rows are the bits softmax_outside judges (one C function makes
    both), so the tests hold that check's counts to these probabilities; compare itself calls only the check."""
    n, c = x.shape
    if out is None:
        out = np.empty((n, c))
    elif out.shape != (n, c):
        raise TypeError(f"kernels: softmax of {n} x {c} rows into an array of shape {out.shape}")
    _typed(x, "softmax_pass")(_ptr(x, x.dtype), n, c, _ptr(out, np.float64))
    return out


def softmax_outside(values: Sequence[np.ndarray], ends: Sequence[tuple[int, int]],
                    tolerances: Sequence[tuple[float, float]], proven: np.ndarray | None = None) -> np.ndarray:
    """Logits judged as probabilities: for each pair of ``ends`` (indices into ``values``, the first the pair's
    reference) and its (rtol, atol) in ``tolerances``, the elements of the rows finite in both whose softmaxes (as
    ``softmax`` makes them) differ by more than ``atol + rtol * |p_a|``. ``values``: the backends' rows, as ``native``
    gives them, of one shape. The softmaxes are made a few rows at a time and never leave the core's cache, and not
    at all for a row whose logits differ so little that no element can be outside (kernels.c, sure_inside_below):
    their count, per pair, goes into ``proven`` (int64) when it is given."""
    if len({x.shape for x in values}) > 1 or len(ends) != len(tolerances):
        raise TypeError(f"kernels: softmax_outside takes rows of one shape ({[x.shape for x in values]}) and a "
                        f"tolerance per pair ({len(ends)} pairs, {len(tolerances)} tolerances)")
    n, c = values[0].shape
    pointers = (ctypes.c_void_p * len(values))(*(_ptr(x, np.float64 if x.dtype == np.float64 else np.float32)
                                                 for x in values))
    wide = np.array([x.dtype == np.float64 for x in values], dtype=np.uint8)
    pairs = np.array(ends, dtype=np.int64).reshape(-1, 2)
    if pairs.size and not (0 <= pairs.min() and pairs.max() < len(values)):
        raise TypeError(f"kernels: softmax_outside's pairs {ends} name backends it was not given ({len(values)})")
    bounds = np.array(tolerances, dtype=np.float64).reshape(-1, 2)
    outside = np.zeros(len(pairs), dtype=np.int64)
    if proven is None:
        proven = np.zeros(len(pairs), dtype=np.int64)
    elif proven.shape != (len(pairs),):
        raise TypeError(f"kernels: softmax_outside counts proven rows of {len(pairs)} pairs, not {proven.shape}")
    _ok(library().softmax_outside(pointers, wide.ctypes.data, len(values), n, c, len(pairs), pairs.ctypes.data,
                                  bounds.ctypes.data, outside.ctypes.data, _ptr(proven, np.int64)),
        "softmax_outside")
    return outside


def csv_rows(start: int, labels: np.ndarray, classes: np.ndarray, confidence: np.ndarray) -> bytes:
    """per_sample.csv's rows of samples ``start`` onwards: index, label, then per backend its class and confidence
    (``classes`` int64 and ``confidence`` float64, backends x n), each number as Python's ``%d`` and ``%.9g`` write
    it (tests/test_kernels.py checks that), in ASCII, a line each. Written in C: in Python the rows were the
    largest share of compare's main thread."""
    b, n = classes.shape
    if labels.shape != (n,) or confidence.shape != (b, n):
        raise TypeError(f"kernels: csv_rows takes n labels and backends x n classes and confidences, not "
                        f"{labels.shape}, {classes.shape} and {confidence.shape}")
    lib = library()
    cap = lib.csv_capacity(n, b)
    out = ctypes.create_string_buffer(cap)
    used = lib.csv_rows(start, n, _ptr(labels, np.int64), b, _ptr(classes, np.int64), _ptr(confidence, np.float64),
                        out, cap)
    if used < 0:
        raise MemoryError("kernels: csv_rows " + ("could not switch to the C locale" if used == -2 else
                                                   "overran its buffer"))
    return ctypes.string_at(out, used)
