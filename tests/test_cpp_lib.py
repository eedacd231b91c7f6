"""The C++ library (cpp/): configure, build and ctest it; numpy reads back what it wrote; the fuzzers run a while.

The build lives in build/cpp-test (build/cpp-fuzz-test for the sanitized fuzz build), so reruns are incremental.
TensorRT_ROOT points at an empty folder: this machine's TensorRT, if any, must not change what is tested here,
and the configure must say that trt_infer is not built.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "cpp"))
from check_cpp_written import check as check_cpp_written  # noqa: E402

BUILD = REPO / "build" / "cpp-test"
FUZZ_BUILD = REPO / "build" / "cpp-fuzz-test"
FUZZ_TARGETS = {"fuzz_npy": "npy.dict", "fuzz_csv": "csv.dict"}


def run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                             f"{(proc.stdout + proc.stderr)[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def cpp_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Configure, build and ctest the library with this interpreter's numpy; return the outputs."""
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.fail("cmake and a C++ compiler are needed: apt-get install cmake g++")
    no_tensorrt = tmp_path_factory.mktemp("no-tensorrt")
    configure = run(["cmake", "-S", REPO / "cpp", "-B", BUILD, "-DCMAKE_BUILD_TYPE=Release",
                     "-DTRTVERIFY_WERROR=ON", f"-DTensorRT_ROOT={no_tensorrt}",
                     f"-DPython3_EXECUTABLE={sys.executable}"],
                    env={**os.environ, "TensorRT_ROOT": ""})
    build = run(["cmake", "--build", BUILD, "-j", str(os.cpu_count() or 2)])
    ctest = subprocess.run(["ctest", "--output-on-failure"], cwd=BUILD, capture_output=True, text=True)
    return {"configure": configure.stdout + configure.stderr, "build": build.stdout,
            "ctest": ctest.stdout + ctest.stderr, "ctest_rc": str(ctest.returncode)}


def test_configure_without_tensorrt_builds_only_the_library(cpp_build: dict[str, str]) -> None:
    assert ("trtverify: TensorRT not found (set TensorRT_ROOT); building only the library and its tests"
            in cpp_build["configure"])
    assert not (BUILD / "trt_infer").exists()
    targets = run(["cmake", "--build", BUILD, "--target", "help"]).stdout
    assert "trtverify_io" in targets and "trt_infer" not in targets


def test_ctest_passes(cpp_build: dict[str, str]) -> None:
    assert cpp_build["ctest_rc"] == "0", cpp_build["ctest"][-6000:]
    for name in ("unit", "fixtures_generate", "fixtures_cpp", "fixtures_numpy_readback"):
        assert f": {name} " in cpp_build["ctest"], f"ctest did not run {name} (numpy missing for CMake?)"


def test_numpy_reads_back_what_cpp_wrote(cpp_build: dict[str, str]) -> None:
    fixtures = BUILD / "fixtures"
    entries = [line.split("\t") for line in (fixtures / "manifest.tsv").read_text().splitlines()]
    npy = [e[1] for e in entries if e[0] == "npy"]
    assert len(npy) >= 60 and all((fixtures / f"{name}.cpp.npy").is_file() for name in npy)
    assert check_cpp_written(fixtures) == []


@pytest.mark.skipif(not os.environ.get("TRTVERIFY_TENSORRT_ROOTS"),
                    reason="set TRTVERIFY_TENSORRT_ROOTS to TensorRT trees (headers suffice), separated by ':'")
def test_trt_infer_compiles_against_tensorrt_headers(tmp_path: Path) -> None:
    """trt_infer's sources compile with -Werror against each TensorRT given (8.5 and 10.x both, in cpp/README.md)."""
    roots = [r for r in os.environ["TRTVERIFY_TENSORRT_ROOTS"].split(":") if r]
    for i, root in enumerate(roots):
        build = tmp_path / f"trt{i}"
        configure = run(["cmake", "-S", REPO / "cpp", "-B", build, f"-DTensorRT_ROOT={root}", "-DTRTVERIFY_WERROR=ON",
                         "-DTRTVERIFY_TESTS=OFF"])
        assert "trtverify: building trt_infer against TensorRT" in configure.stdout or \
            "compiling trt_infer's sources without linking" in configure.stdout, configure.stdout
        target = "trt_infer" if "building trt_infer against" in configure.stdout else "trt_infer_objects"
        run(["cmake", "--build", build, "--target", target, "-j", str(os.cpu_count() or 2)])


@pytest.mark.slow
def test_fuzz_readers_for_a_bounded_time(tmp_path: Path) -> None:
    """libFuzzer with ASan and UBSan on the .npy and CSV readers, TRTVERIFY_FUZZ_SECONDS each (default 60), in
    parallel; the sanitized build's ctest runs too."""
    clang = shutil.which("clang++")
    if clang is None:
        pytest.fail("clang++ is not installed; the fuzz test needs it: apt-get install clang libclang-rt-14-dev "
                    "(make system-deps does this)")
    seconds = int(os.environ.get("TRTVERIFY_FUZZ_SECONDS", "60"))
    configure = subprocess.run(["cmake", "-S", str(REPO / "cpp"), "-B", str(FUZZ_BUILD),
                                f"-DCMAKE_CXX_COMPILER={clang}",
                                "-DTRTVERIFY_FUZZ=ON", "-DTRTVERIFY_TRT_INFER=OFF",
                                f"-DPython3_EXECUTABLE={sys.executable}"], capture_output=True, text=True)
    assert configure.returncode == 0, configure.stdout[-3000:] + configure.stderr[-3000:]
    build = subprocess.run(["cmake", "--build", str(FUZZ_BUILD), "-j", str(os.cpu_count() or 2)],
                           capture_output=True, text=True)
    if build.returncode != 0 and "libclang_rt" in build.stdout + build.stderr:
        pytest.fail("clang's sanitizer runtimes are missing: apt-get install libclang-rt-14-dev")
    assert build.returncode == 0, (build.stdout + build.stderr)[-6000:]
    ctest = subprocess.run(["ctest", "--output-on-failure"], cwd=FUZZ_BUILD, capture_output=True, text=True)
    assert ctest.returncode == 0, "sanitized ctest failed:\n" + ctest.stdout[-6000:]

    # libFuzzer's RSS limit reads the process's peak RSS (getrusage), and a child starts with its parent's RSS as
    # its peak: Linux carries it across fork and exec. Under pytest-xdist this worker may hold TensorFlow (2.5 GB),
    # which alone passed a 2 GB limit at the first input. So the limit is 2 GB above what the fuzzer inherits, and
    # one allocation is still capped at 2 GB (-malloc_limit_mb, which would otherwise follow the RSS limit).
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    procs = {}
    for target, dictionary in FUZZ_TARGETS.items():
        corpus = tmp_path / f"{target}-corpus"  # new inputs land here, not in the repository's seed corpus
        artifacts = tmp_path / f"{target}-crash"
        corpus.mkdir()
        artifacts.mkdir()
        log = open(tmp_path / f"{target}.log", "w")
        cmd = [str(FUZZ_BUILD / target), f"-max_total_time={seconds}", "-timeout=10",
               f"-rss_limit_mb={inherited_mb + 2048}", "-malloc_limit_mb=2048",
               f"-dict={REPO / 'cpp' / 'fuzz' / dictionary}", f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
               str(corpus), str(REPO / "cpp" / "fuzz" / "corpus")]
        procs[target] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, artifacts)
    failures = []
    for target, (proc, log, artifacts) in procs.items():
        rc = proc.wait(timeout=seconds + 120)
        log.close()
        output = (tmp_path / f"{target}.log").read_text(errors="replace")
        crashes = sorted(str(p) for p in artifacts.iterdir())
        if rc != 0 or crashes or "Done " not in output:
            failures.append(f"{target} exited {rc}, inputs {crashes}: reproduce with {FUZZ_BUILD / target} INPUT, "
                            f"fix, and add INPUT to cpp/fuzz/corpus\n{output[-4000:]}")
    assert not failures, "\n\n".join(failures)
