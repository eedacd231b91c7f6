#!/usr/bin/env python3
"""Read back, with numpy, what the C++ fixture test wrote (see make_npy_fixtures.py) and compare it with the files
numpy and the pipeline's Python writer wrote in the first place.

  python tests/cpp/check_cpp_written.py FIXTURE_DIR

For every good .npy: NAME.cpp.npy must hold the same values in the same dtype (little-endian), be byte-identical to
what numpy.save writes for that array, and NAME.f32.npy must equal numpy's astype(float32) bit for bit. For every
CSV: NAME.cpp.npy (what C++ parsed) must equal numpy.loadtxt's values bit for bit. Prints every mismatch; exit 1 if any.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from trtverify.io import read_csv_array  # noqa: E402


def little_endian(array: np.ndarray) -> np.ndarray:
    return array.astype(array.dtype.newbyteorder("<")) if array.dtype.itemsize > 1 else array


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def check(directory: Path) -> list[str]:
    problems: list[str] = []
    entries = [line.split("\t") for line in (directory / "manifest.tsv").read_text().splitlines() if line]
    for kind, name, *_ in entries:
        if kind == "npy":
            original = np.load(directory / name, allow_pickle=False)
            written = directory / f"{name}.cpp.npy"
            with open(written, "rb") as fh:
                version = np.lib.format.read_magic(fh)
            back = np.load(written, allow_pickle=False)
            expected = little_endian(original)
            buf = io.BytesIO()
            np.save(buf, expected)
            if version != (1, 0):
                problems.append(f"{written.name}: format version {version}, expected 1.0")
            if not same_bits(back, expected):
                problems.append(f"{written.name}: {back.dtype}{back.shape} differs from numpy's {expected.dtype}"
                                f"{expected.shape}")
            elif written.read_bytes() != buf.getvalue():
                problems.append(f"{written.name}: not byte-identical to numpy.save's file for the same array")
            f32 = np.load(directory / f"{name}.f32.npy", allow_pickle=False)
            with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, on both sides
                as_f32 = original.astype(np.float32)
            if not same_bits(f32, as_f32):
                problems.append(f"{name}.f32.npy: differs from numpy's astype(float32)")
        elif kind == "csv":
            parsed_by_cpp = np.load(directory / f"{name}.cpp.npy", allow_pickle=False)
            parsed_by_numpy = read_csv_array(directory / name)
            if not same_bits(parsed_by_cpp, little_endian(parsed_by_numpy)):
                problems.append(f"{name}: C++ parsed other values than numpy.loadtxt")
    checked = sum(1 for e in entries if e[0] in ("npy", "csv"))
    if checked == 0:
        problems.append("no npy or csv entries in the manifest")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(Path(argv[0]))
    for p in problems:
        print(p, file=sys.stderr)
    print(f"numpy read back the C++-written files: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
