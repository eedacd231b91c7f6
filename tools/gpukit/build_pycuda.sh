#!/usr/bin/env bash
# Builds pycuda for CPython 3.12 on linux x86-64 on a machine with no GPU and no CUDA toolkit, and installs it with
# its run-time dependencies into a plain folder, so that on a GPU machine (CUDA 13 driver, Python 3.12 with numpy)
#   PYTHONPATH=OUT python3 -c "import pycuda.driver as cuda; cuda.init()"
# works. pycuda is compiled against the CUDA runtime headers below (CUDA 13 by default, the GPU machine's)
# and against numpy 2.x headers with the numpy C-API target 1.25 (so numpy >= 1.25, 1.26 and 2.x, at run time),
# without debug info (-g0).
# pycuda._driver is linked against libcuda.so.1 through a stub made here (a dummy for every cu* function
# that cuda.h declares, soname libcuda.so.1), so that on the GPU machine it binds to the real driver; the stub is
# never shipped. CURAND and OpenGL support are off, so nothing NEEDs libcudart or libcurand. The script fails if a
# built .so NEEDs libcudart/libcurand, has an RPATH, or uses a cu* symbol the stub does not define.
#
# Usage: tools/gpukit/build_pycuda.sh OUT          e.g. tools/gpukit/build_pycuda.sh .gpu/kit/site
# Inputs (environment variables, with their defaults):
#   PY312           Python 3.12 to build with (build.sh passes one)  python3.12
#   CUDA_ROOT       root of the CUDA headers (the GPU machine's major) /usr/local/cuda
#   CUDA_INCLUDE    folder holding cuda.h                           $CUDA_ROOT/include
#   PROFILER_API    pip requirement of the wheel that brings cudaProfiler.h (CUDA_INCLUDE lacks it)
#                                                                   nvidia-cuda-profiler-api-cu12==12.4.127
#   PYCUDA_VERSION  pycuda release (sdist from PyPI)                2026.1
#   NUMPY_SPEC      numpy to build against (not shipped)            numpy>=2,<3
#   DEP_PLATFORM    platform tag of the binary dependency wheels    manylinux2014_x86_64 (glibc >= 2.17)
#   COMPARE_INCLUDE a newer cuda.h (if there) to list the driver functions pycuda uses that it no longer declares
#                                                                   /usr/local/cuda/include
# Work files: ${TMPDIR:-/tmp}/gpukit-pycuda (build venv, sdist, stub, wheels, report.txt).
# Output: OUT/ gets pycuda, pytools, platformdirs, typing_extensions, siphash24, mako, markupsafe and their
#   .dist-info folders (no numpy, no scripts, no .pyc). Entries of OUT with other names are left alone; entries of the
#   same names (and older .dist-info of the same projects) are replaced. A summary goes to stdout and report.txt.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_SITE_FOLDER" >&2
  exit 2
fi
PY312=${PY312:-python3.12}
CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}
CUDA_INCLUDE=${CUDA_INCLUDE:-$CUDA_ROOT/include}
PROFILER_API=${PROFILER_API:-nvidia-cuda-profiler-api-cu12==12.4.127}
PYCUDA_VERSION=${PYCUDA_VERSION:-2026.1}
NUMPY_SPEC=${NUMPY_SPEC:-numpy>=2,<3}
DEP_PLATFORM=${DEP_PLATFORM:-manylinux2014_x86_64}
COMPARE_INCLUDE=${COMPARE_INCLUDE:-/usr/local/cuda/include}

mkdir -p "$1"
out=$(cd "$1" && pwd)
work=${TMPDIR:-/tmp}/gpukit-pycuda
start=$SECONDS
say() { echo "== $*"; }
die() { echo "build_pycuda: $*" >&2; exit 1; }

[ -f "$CUDA_INCLUDE/cuda.h" ] || die "no cuda.h in $CUDA_INCLUDE"
"$PY312" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' || die "$PY312 is not Python 3.12"
mkdir -p "$work"
rm -rf "$work/src" "$work/stub" "$work/wheels" "$work/deps" "$work/stage" "$work/profiler"

# {{{ build venv (numpy 2.x, setuptools, wheel)
venv=$work/venv
if [ ! -x "$venv/bin/python" ]; then
  say "venv $venv"
  "$PY312" -m venv "$venv"
fi
vpy=$venv/bin/python
"$vpy" -m pip install -q "$NUMPY_SPEC" setuptools wheel
numpy_version=$("$vpy" -c 'import numpy; print(numpy.__version__)')
# }}}

# {{{ sources: pycuda sdist (bundles its boost subset), cudaProfiler.h
say "pycuda $PYCUDA_VERSION sdist"
mkdir -p "$work/dl" "$work/src" "$work/profiler"
sdist=$work/dl/pycuda-$PYCUDA_VERSION.tar.gz
if [ ! -f "$sdist" ]; then
  "$vpy" -m pip download -q --no-deps --no-binary pycuda --no-build-isolation -d "$work/dl" "pycuda==$PYCUDA_VERSION"
fi
tar -xzf "$sdist" -C "$work/src"
src=$work/src/pycuda-$PYCUDA_VERSION
[ -f "$src/setup.py" ] || die "unexpected sdist layout: no $src/setup.py"

profiler_inc=
if [ ! -f "$CUDA_INCLUDE/cudaProfiler.h" ]; then
  "$vpy" -m pip download -q --no-deps --only-binary :all: -d "$work/profiler" "$PROFILER_API"
  "$vpy" -m zipfile -e "$work"/profiler/*.whl "$work/profiler/x"
  profiler_inc=$(dirname "$(find "$work/profiler/x" -name cudaProfiler.h | head -n 1)")
  [ -f "$profiler_inc/cudaProfiler.h" ] || die "no cudaProfiler.h in $PROFILER_API"
fi
# }}}

# {{{ stub libcuda.so.1: every CUresult cu*(...) that cuda.h + cudaProfiler.h declare, after the header's macros
# (cuCtxCreate -> cuCtxCreate_v2 ...; declarations may span lines); each returns 999 (CUDA_ERROR_UNKNOWN)
say "stub libcuda.so.1"
stub=$work/stub
mkdir -p "$stub"
cu_functions() {  # the cu* functions that cuda.h + cudaProfiler.h under $1 declare, one a line
  printf '#include <cuda.h>\n#include <cudaProfiler.h>\n' \
    | gcc -E -P -I"$1" ${profiler_inc:+-I"$profiler_inc"} -x c - | tr '\n' ' ' \
    | grep -oE '\bCUresult[[:space:]]+cu[A-Za-z0-9_]+[[:space:]]*\(' \
    | sed -E 's/^CUresult[[:space:]]+//; s/[[:space:]]*\($//' | sort -u
}
cu_functions "$CUDA_INCLUDE" > "$stub/symbols.txt"
[ "$(wc -l < "$stub/symbols.txt")" -gt 100 ] || die "too few cu* functions found in cuda.h"
{
  grep -vxE 'cuGetError(String|Name)' "$stub/symbols.txt" | sed -E 's/.*/int &(void) { return 999; }/'
  for f in cuGetErrorString cuGetErrorName; do  # pycuda calls these to word an error: give it a string
    echo "int $f(int e, const char **s) { (void)e; *s = \"stub libcuda.so.1, not a driver\"; return 0; }"
  done
} > "$stub/stub.c"
gcc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so.1" "$stub/stub.c"
ln -s libcuda.so.1 "$stub/libcuda.so"
# }}}

# {{{ configure + wheel
say "configure"
inc_dirs=$CUDA_INCLUDE${profiler_inc:+,$profiler_inc}
(cd "$src" && "$vpy" configure.py --cuda-root="$CUDA_ROOT" --cuda-inc-dir="$inc_dirs" --cudadrv-lib-dir="$stub" \
  --no-cuda-enable-curand --cxxflags=-DNPY_TARGET_VERSION=NPY_1_25_API_VERSION,-g0)
cat "$src/siteconf.py"
say "build wheel (numpy $numpy_version)"
"$vpy" -m pip wheel -q --no-build-isolation --no-deps -w "$work/wheels" "$src"
wheel=$(find "$work/wheels" -name "pycuda-$PYCUDA_VERSION-cp312-*.whl" | head -n 1)
[ -n "$wheel" ] || die "no pycuda wheel in $work/wheels"
# }}}

# {{{ run-time dependencies (wheels only; binary ones for DEP_PLATFORM), then stage an offline install
say "dependency wheels"
"$vpy" -m pip download -q --only-binary :all: --platform "$DEP_PLATFORM" --platform linux_x86_64 \
  --python-version 3.12 --implementation cp --abi cp312 -d "$work/deps" "$wheel"
"$vpy" -m pip install -q --isolated --no-index --find-links "$work/deps" --find-links "$work/wheels" \
  --only-binary :all: --no-compile --target "$work/stage" "pycuda==$PYCUDA_VERSION"
rm -rf "$work/stage/bin"
if find "$work/stage" -maxdepth 1 -iname 'numpy*' | grep -q .; then die "numpy was staged"; fi
if find "$work/stage" -name 'libcuda.so*' | grep -q .; then die "a libcuda stub was staged"; fi
# }}}

# {{{ checks on every shared object
say "checks"
report=$work/report.txt
{
  echo "pycuda $PYCUDA_VERSION, built $(date -u +%FT%TZ) with $("$vpy" -V) against numpy $numpy_version"
  echo "cuda.h: $CUDA_INCLUDE (CUDA_VERSION $(grep -m1 -oE 'define CUDA_VERSION [0-9]+' "$CUDA_INCLUDE/cuda.h" \
    | cut -d' ' -f3))"
  echo "wheel: $(basename "$wheel")"
} > "$report"
bad=0
while IFS= read -r so; do
  rel=${so#"$work/stage/"}
  needed=$(readelf -d "$so" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p' | tr '\n' ' ')
  glibc=$(objdump -T "$so" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -n 1 || true)
  glibcxx=$(objdump -T "$so" | grep -oE 'GLIBCXX_[0-9.]+' | sort -uV | tail -n 1 || true)
  echo "$rel: NEEDED $needed; max ${glibc:-no GLIBC} ${glibcxx:-}" >> "$report"
  if readelf -d "$so" | grep -qE '\((RPATH|RUNPATH)\)'; then echo "  FAIL: has an RPATH/RUNPATH" >> "$report"; bad=1; fi
  if [[ $needed == *libcudart* || $needed == *libcurand* ]]; then
    echo "  FAIL: NEEDs a CUDA runtime library" >> "$report"; bad=1
  fi
  nm -D --undefined-only "$so" | awk '{print $NF}' | grep -E '^cu[A-Z]' | sort -u > "$work/cu_used.txt" || true
  if [ -s "$work/cu_used.txt" ]; then
    [[ $needed == *libcuda.so.1* ]] || { echo "  FAIL: uses cu* but does not NEED libcuda.so.1" >> "$report"; bad=1; }
    missing=$(comm -23 "$work/cu_used.txt" "$stub/symbols.txt" | tr '\n' ' ')
    if [ -n "$missing" ]; then echo "  FAIL: cu* not in the stub: $missing" >> "$report"; bad=1; fi
    echo "  driver functions used ($(wc -l < "$work/cu_used.txt")): $(tr '\n' ' ' < "$work/cu_used.txt")" >> "$report"
    if [ -f "$COMPARE_INCLUDE/cuda.h" ]; then
      echo "  of those, not declared by $COMPARE_INCLUDE/cuda.h (informational; the driver may still export them):" \
        "$(comm -23 "$work/cu_used.txt" <(cu_functions "$COMPARE_INCLUDE") | tr '\n' ' ')" >> "$report"
    fi
  fi
done < <(find "$work/stage" -name '*.so*' -type f | sort)
# }}}

# {{{ move into OUT: replace same-named entries and older .dist-info of the same projects, leave the rest alone
if [ "$bad" -eq 0 ]; then
  say "install into $out"
  for entry in "$work"/stage/*; do
    name=$(basename "$entry")
    if [[ $name == *.dist-info ]]; then
      for old in "$out/${name%%-*}"-*.dist-info; do
        if [ -e "$old" ]; then rm -rf "$old"; fi
      done
    fi
    rm -rf "${out:?}/$name"
    cp -a "$entry" "$out/$name.partial"
    mv "$out/$name.partial" "$out/$name"
    echo "installed: $name" >> "$report"
  done
  echo "output: $out ($(du -sh "$work/stage" | cut -f1) added)" >> "$report"
fi
echo "build time: $((SECONDS - start)) s" >> "$report"
cat "$report"
[ "$bad" -eq 0 ] || die "checks failed, nothing installed (see $report)"
# }}}
