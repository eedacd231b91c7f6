#!/usr/bin/env python3
"""Write the files the C++ library's fixture tests read: .npy files numpy wrote, CSV files the pipeline's Python
writer wrote, malformed files, and latency lists with numpy's statistics.

  python tests/cpp/make_npy_fixtures.py OUT_DIR            (ctest runs this; pytest too)
  python tests/cpp/make_npy_fixtures.py --seed-corpus DIR  (the fuzzers' seed corpus, cpp/fuzz/corpus)

OUT_DIR/manifest.tsv lists every case, one per line, tab-separated:
  npy  FILE  DTYPE  SHAPE       a good file; FILE.values holds its elements, one per line (ints exactly, floats as
                                Python's repr of the value as a double)
  csv  FILE  DTYPE  SHAPE  RT   a CSV file, FILE.values as above; RT=1 when C++ must write it back byte for byte
  bad  FILE  KIND  MESSAGE      a malformed .npy (KIND npy) or CSV (KIND csv); reading it must fail with MESSAGE
  stats FILE                    line 1: latencies; line 2: numpy's mean p50 p90 p95 p99 min max
Only numpy (and the pipeline's own scripts/trtverify/io.py, numpy-only) is needed.
"""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from trtverify.io import write_csv_array  # noqa: E402  (the writer the pipeline uses)

DTYPES = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"]
VERSIONS = [(1, 0), (2, 0), (3, 0)]


def sample_values(dtype: np.dtype, n: int, rng: np.random.Generator) -> np.ndarray:
    """Edge values of the dtype first, then random ones."""
    if dtype.kind == "b":
        return (rng.random(n) < 0.5) | (np.arange(n) == 0)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        edges = [info.min, info.max, 0, 1, info.max - 1] + ([-1] if dtype.kind == "i" else [])
        rand = rng.integers(info.min, info.max, size=n, dtype=dtype.newbyteorder("="), endpoint=True)
        rand[: len(edges)] = edges
        return rand
    info = np.finfo(dtype)
    edges = [np.nan, np.inf, -np.inf, -0.0, 0.0, info.max, -info.max, info.tiny, info.smallest_subnormal, 0.1, 1 / 3]
    decades = 4 if dtype.itemsize == 2 else 8
    rand = (rng.standard_normal(n) * 10.0 ** rng.integers(-decades, decades, size=n)).astype(dtype.newbyteorder("="))
    rand[: len(edges)] = np.array(edges, dtype=np.float64).astype(dtype.newbyteorder("="))
    return rand


def value_lines(array: np.ndarray) -> str:
    flat = array.reshape(-1)
    if array.dtype.kind == "f":
        return "".join(repr(float(v)) + "\n" for v in flat)
    return "".join(str(int(v)) + "\n" for v in flat)


def raw_npy(header: str | bytes, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy file with exactly this header dict (padded as numpy pads it), for the malformed cases."""
    text = header.encode("latin1") if isinstance(header, str) else header
    fmt = "<H" if version[0] == 1 else "<I"
    hlen = len(text) + 1
    pad = 64 - (8 + struct.calcsize(fmt) + hlen) % 64
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, hlen + pad) + text + b" " * pad + b"\n" + data


def header(descr: str, shape: str, fortran: str = "False") -> str:
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"


def save_bytes(array: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, **kwargs)
    return buf.getvalue()


def bad_npy_cases() -> list[tuple[str, bytes, str]]:
    good = save_bytes(np.arange(12, dtype="<f4").reshape(3, 4))
    f4 = "'<f4'"
    return [
        ("fortran_order", save_bytes(np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3))), "Fortran-order"),
        ("object", save_bytes(np.array([1, "a", None], dtype=object), allow_pickle=True), "unpickling"),
        ("structured", save_bytes(np.zeros(3, dtype=[("a", "<i4"), ("b", "<f4")])), "structured dtypes"),
        ("complex", save_bytes(np.zeros(2, dtype="<c8")), "unsupported dtype '<c8'"),
        ("unicode", save_bytes(np.array(["ab", "c"])), "unsupported dtype '<U2'"),
        ("datetime", save_bytes(np.zeros(2, dtype="datetime64[s]")), "unsupported dtype '<M8[s]'"),
        ("shape_lies_short", raw_npy(header(f4, "(4, 4)"), good[-48:]), "truncated data"),
        ("shape_lies_long", raw_npy(header(f4, "(2, 4)"), good[-48:]), "16 bytes of trailing garbage"),
        ("truncated_data", good[:-5], "truncated data"),
        ("truncated_header", good[:50], "truncated header"),
        ("trailing_garbage", good + b"junk", "4 bytes of trailing garbage"),
        ("bad_magic", b"\x93NUMPZ" + good[6:], "magic"),
        ("not_npy", b"PK\x03\x04 this is a zip archive", "magic"),
        ("empty", b"", "magic"),
        ("version_4", good[:6] + b"\x04\x00" + good[8:], "version 4.0"),
        ("missing_shape", raw_npy("{'descr': '<f4', 'fortran_order': False, }"), "'shape' is missing"),
        ("missing_descr", raw_npy("{'fortran_order': False, 'shape': (1,), }", b"\0" * 4), "'descr' is missing"),
        ("unknown_key", raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1, }", b"\0" * 4),
         "unexpected key 'x'"),
        ("unterminated_dict", raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", b"\0" * 4),
         "expected ',' or '}'"),
        ("not_a_dict", raw_npy("['<f4', False, (1,)]", b"\0" * 4), "expected '{'"),
        ("fortran_not_bool", raw_npy(header(f4, "(1,)", "'no'"), b"\0" * 4), "True or False"),
        ("shape_list", raw_npy(header(f4, "[1]"), b"\0" * 4), "tuple"),
        ("shape_negative", raw_npy(header(f4, "(-1,)"), b"\0" * 4), "negative dimension"),
        ("shape_float", raw_npy(header(f4, "(1.5,)"), b"\0" * 4), "non-negative integers"),
        ("descr_not_string", raw_npy(header("4", "(1,)"), b"\0" * 4), "quoted string"),
        ("text_after_dict", raw_npy(header(f4, "(1,)") + " 1", b"\0" * 4), "after the closing"),
        ("v3_not_utf8", raw_npy(header(f4, "(1,)").encode() + b" \xff", b"\0" * 4, (3, 0)), "UTF-8"),
        ("no_byte_order", raw_npy(header("'|f4'", "(1,)"), b"\0" * 4), "byte order"),
        ("overflow", raw_npy(header("'<f8'", "(4294967296, 4294967296, 4294967296)")), "overflows 64 bits"),
        ("over_limit", raw_npy(header(f4, "(8589934592,)"), b"\0" * 64), "more than the limit"),
        ("huge_header_len", good[:8] + b"\xff\xff" + good[10:], "truncated header"),
        # numpy's own reader answers this with an allow_pickle hint; both of ours name the limit (io.MAX_HEADER_BYTES)
        ("header_over_limit", good[:6] + b"\x02\x00" + (2_000_000).to_bytes(4, "little") + good[10:],
         "the .npy header claims 2000000 bytes, more than the limit of 1048576"),
    ]


def bad_csv_cases(tmp: Path) -> list[tuple[str, bytes, str]]:
    write_csv_array(tmp, np.arange(12, dtype=np.float32).reshape(3, 4))
    good = tmp.read_bytes()
    lines = good.splitlines(keepends=True)
    return [
        ("csv_truncated", b"".join(lines[:-1]), "has 2 rows of 4 values; its header promises 3 rows of 4"),
        ("csv_extra_row", good + lines[-1], "more than the 3 rows"),
        ("csv_short_row", b"".join(lines[:-1]) + b"8,9,10\n", "line 4 has 3 values; its header promises 4"),
        ("csv_long_row", b"".join(lines[:-1]) + b"8,9,10,11,12\n", "line 4 has more than 4 values"),
        ("csv_no_header", b"".join(lines[1:]), "lacks the '# trtverify-csv 1"),
        ("csv_bad_value", good.replace(b"\n4,", b"\nfour,"), "line 3, value 1: 'four' is not a float32 number"),
        ("csv_bad_shape", good.replace(b"shape=3,4", b"shape=3,x"), "malformed header"),
        ("csv_bad_dtype", good.replace(b"float32", b"object"), "unsupported dtype 'object'"),
        ("csv_int_range", b"# trtverify-csv 1 shape=2 dtype=uint8\n255\n256\n", "'256' is not an uint8"),
    ]


# Decimal strings whose float32 value depends on how they are rounded: numpy parses a double and rounds that to
# float32; parsing straight to float32 (strtof) rounds once and differs on the 1st, 3rd and 5th.
TRICKY_FLOAT32 = [
    "1.000000059604644775390625001", "1.0000000596046447753906249999", "3.4028235677973366e38", "3.4028236e38",
    "7.006492321624085354618653e-46", "1.4012984643248170709e-45", "-0.0", "0.1", "16777217", "2.5e-46",
]


def write_fixtures(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261124)
    manifest: list[str] = []

    def good_npy(name: str, array: np.ndarray, data: bytes) -> None:
        (out / name).write_bytes(data)
        (out / f"{name}.values").write_text(value_lines(array))
        shape = ",".join(str(d) for d in array.shape)
        manifest.append(f"npy\t{name}\t{array.dtype.name}\t{shape}")

    for code in DTYPES:
        orders = "<>" if np.dtype(code).itemsize > 1 else "|"
        for order in orders:
            dtype = np.dtype(order + code) if order != "|" else np.dtype(code)
            values = sample_values(dtype, 24, rng).astype(dtype)
            for version in VERSIONS:
                shape = {(1, 0): (24,), (2, 0): (4, 6), (3, 0): (2, 3, 4)}[version]
                array = values.reshape(shape)
                buf = io.BytesIO()
                np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
                endian = {"<": "le", ">": "be", "|": "na"}[order]
                good_npy(f"{code}_{endian}_v{version[0]}.npy", array, buf.getvalue())
    specials = {
        "scalar_f8.npy": np.array(2.5),
        "empty_f4.npy": np.zeros((0, 3), dtype=np.float32),
        "nhwc_f4.npy": rng.standard_normal((5, 8, 8, 1)).astype(np.float32),
        "digits_like_f8.npy": rng.integers(0, 17, size=(6, 8, 8, 1)).astype(np.float64),
        "one_element_u1.npy": np.array([[[200]]], dtype=np.uint8),
        "wide_i2.npy": np.arange(-300, 300, dtype=np.int16).reshape(1, 600),
    }
    for name, array in specials.items():
        good_npy(name, array, save_bytes(array))

    for name, data, message in bad_npy_cases():
        (out / f"bad_{name}.npy").write_bytes(data)
        manifest.append(f"bad\tbad_{name}.npy\tnpy\t{message}")

    csv_arrays = {
        "nhwc_f4.csv": np.concatenate([rng.standard_normal((4, 8, 8, 1)),
                                       np.full((1, 8, 8, 1), np.nan)]).astype(np.float32),
        "specials_f4.csv": sample_values(np.dtype("f4"), 40, rng).astype(np.float32).reshape(10, 4),
        "specials_f8.csv": sample_values(np.dtype("f8"), 40, rng).astype(np.float64).reshape(10, 2, 2),
        "specials_f2.csv": sample_values(np.dtype("f2"), 40, rng).astype(np.float16).reshape(20, 2),
        "labels_i8.csv": rng.integers(0, 10, size=17).astype(np.int64),
        "ints_i1.csv": sample_values(np.dtype("i1"), 12, rng).astype(np.int8).reshape(3, 4),
        "ints_u8.csv": sample_values(np.dtype("u8"), 12, rng).astype(np.uint64).reshape(4, 3),
        "bools.csv": sample_values(np.dtype("b1"), 12, rng).reshape(6, 2),
    }
    for name, array in csv_arrays.items():
        write_csv_array(out / name, array)
        _csv_entry(out, manifest, name, array, roundtrip=True)
    tricky = "# trtverify-csv 1 shape=%d dtype=float32\n" % len(TRICKY_FLOAT32) + "\n".join(TRICKY_FLOAT32) + "\n"
    (out / "tricky_f4.csv").write_text(tricky)
    parsed = np.loadtxt(out / "tricky_f4.csv", delimiter=",", dtype=np.float32, ndmin=1)
    _csv_entry(out, manifest, "tricky_f4.csv", parsed, roundtrip=False)
    for name, data, message in bad_csv_cases(out / "scratch.csv"):
        (out / f"bad_{name}.csv").write_bytes(data)
        manifest.append(f"bad\tbad_{name}.csv\tcsv\t{message}")
    (out / "scratch.csv").unlink()

    for n in (1, 2, 3, 7, 100, 1000):
        times = rng.lognormal(0.0, 0.5, size=n) * rng.choice([0.01, 1.0, 100.0])
        stats = [times.mean(), *np.percentile(times, [50, 90, 95, 99]), times.min(), times.max()]
        name = f"latencies_{n}.txt"
        (out / name).write_text(" ".join(repr(float(t)) for t in times) + "\n" +
                                " ".join(repr(float(s)) for s in stats) + "\n")
        manifest.append(f"stats\t{name}")

    (out / "manifest.tsv").write_text("\n".join(manifest) + "\n")


def _csv_entry(out: Path, manifest: list[str], name: str, array: np.ndarray, roundtrip: bool) -> None:
    (out / f"{name}.values").write_text(value_lines(array))
    shape = ",".join(str(d) for d in array.shape)
    manifest.append(f"csv\t{name}\t{array.dtype.name}\t{shape}\t{int(roundtrip)}")


def write_seed_corpus(out: Path) -> None:
    """Small, varied .npy files for the fuzzers to mutate (committed under cpp/fuzz/corpus)."""
    out.mkdir(parents=True, exist_ok=True)
    seeds = {
        "f4_2x3.npy": save_bytes(np.arange(6, dtype="<f4").reshape(2, 3)),
        "f8_be_scalar.npy": save_bytes(np.array(1.5, dtype=">f8")),
        "f2_v3.npy": _write_array(np.array([1, -2, np.inf], dtype="<f2"), (3, 0)),
        "i8_v2.npy": _write_array(np.array([-1, 2**40], dtype=">i8"), (2, 0)),
        "b1_empty.npy": save_bytes(np.zeros((0, 2), dtype=bool)),
        "u1_nhwc.npy": save_bytes(np.arange(8, dtype=np.uint8).reshape(2, 2, 2, 1)),
        "i2_old_long.npy": raw_npy("{'descr': '<i2', 'fortran_order': False, 'shape': (2L,), }", b"\1\0\2\0"),
        "fortran.npy": save_bytes(np.asfortranarray(np.ones((2, 2), dtype="<f4"))),
        "structured.npy": save_bytes(np.zeros(1, dtype=[("a", "<i4")])),
    }
    for name, data in seeds.items():
        (out / name).write_bytes(data)
    csv = "# trtverify-csv 1 shape=2,3 dtype=float32\n0.100000001,-0,nan\n1e-45,-inf,3\n"
    (out / "f4_2x3.csv").write_text(csv)


def _write_array(array: np.ndarray, version: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
    return buf.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--seed-corpus":
        write_seed_corpus(Path(argv[1]))
    elif len(argv) == 1 and not argv[0].startswith("-"):
        write_fixtures(Path(argv[0]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
