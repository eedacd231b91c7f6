#!/usr/bin/env python3
"""Configure and build the C++ inference program (cpp/) with CMake and install it as a pipeline artifact.

  python scripts/compile_cpp.py --source cpp --cmake-args="-DTensorRT_ROOT=/opt/tensorrt" --output results/bin/trt_infer

The build happens in a scratch directory; only a finished binary is moved onto --output.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from trtverify.errors import UserError, run_main
from trtverify.io import atomic_path
from trtverify.schema import parse_with_defaults


def run(cmd: list[str]) -> str:
    print("+ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "rror" in line] or ["see the log"]
        raise UserError(f"{cmd[0]} {cmd[1]} failed (exit {proc.returncode}): {errors[0].strip()}")
    return proc.stdout + proc.stderr


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True)
    p.add_argument("--cmake-args")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--output", required=True)
    args = parse_with_defaults(p, argv, {"cmake_args": "cpp.cmake_args"})
    if shutil.which("cmake") is None:
        raise UserError("cmake is not installed here; run compile_cpp in the TensorRT container or install cmake")
    try:
        cmake_args = shlex.split(args.cmake_args)
    except ValueError as exc:  # an unbalanced quote or a trailing backslash
        raise UserError(f"cpp.cmake_args {args.cmake_args!r} cannot be split into arguments ({exc}); "
                        "balance its quotes in config.yaml") from None
    with tempfile.TemporaryDirectory(prefix="trtverify-cpp-") as build:
        configure = run(["cmake", "-S", args.source, "-B", build, "-DCMAKE_BUILD_TYPE=Release", *cmake_args])
        if "building only the library" in configure:  # CMake's status when trt_infer cannot be built
            raise UserError("CMake did not find TensorRT, so trt_infer cannot be built; set cpp.cmake_args to "
                            "-DTensorRT_ROOT=<TensorRT install prefix> in config.yaml, "
                            "or run in the TensorRT container")
        run(["cmake", "--build", build, "--target", "trt_infer", "-j", str(args.jobs)])
        built = Path(build) / "trt_infer"
        if not built.is_file():
            raise UserError(f"the build finished but {built} is missing; see the log")
        with atomic_path(args.output) as tmp:
            shutil.copyfile(built, tmp)
            tmp.chmod(0o755)
    return 0


if __name__ == "__main__":
    run_main(main)
