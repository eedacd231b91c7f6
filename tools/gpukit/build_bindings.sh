#!/usr/bin/env bash
# Build the TensorRT 8.5.3 Python bindings (the `tensorrt` module) for CPython 3.12 on linux x86-64,
# on a CPU-only machine, for use on a GPU machine that has the TensorRT 8.5.3 libraries.
#
# Usage: tools/gpukit/build_bindings.sh OUT_DIR
#   Writes OUT_DIR/tensorrt/__init__.py (TensorRT's packaging template, version filled in) and
#   OUT_DIR/tensorrt/tensorrt.so, so that `PYTHONPATH=OUT_DIR python3.12 -c "import tensorrt"` works where
#   libnvinfer.so.8 & co. can be found (LD_LIBRARY_PATH, or the RUNPATH set below).
#
# Inputs (environment; tools/gpukit/build.sh passes the first three, which have no default):
#   TRT_MIRROR    git dir of the NVIDIA/TensorRT mirror holding tag TRT_TAG
#   TRT_INCLUDE   TensorRT 8.5.3 headers (NvInfer.h, NvInferVersion.h, ...)
#   TRT_LIB       TensorRT 8.5.3 libs (libnvinfer.so.8, libnvinfer_plugin.so.8, libnvonnxparser.so.8,
#                 libnvparsers.so.8); only linked against, never modified
#   TRT_TAG       tag whose python/ sources are built                           (8.5.3)
#   CUDA_INCLUDE  CUDA runtime headers (cuda_runtime_api.h); cudart is not linked (/usr/local/cuda/include)
#   CUDA_CRT_INCLUDE  dir holding crt/host_defines.h (not in the cuda_runtime wheel); when unset and CUDA_INCLUDE
#                 lacks crt/, the crt/ headers are taken from PyPI's nvidia-cuda-nvcc-cu12==CUDA_NVCC_VERSION (12.4.131)
#   PY312         a CPython 3.12, for its headers                               (python3.12)
#   PY312_INCLUDE Python 3.12 headers                                           (PY312's sysconfig include)
#   PYBIND11_VERSION  pybind11 release fetched from PyPI with pip download     (2.13.6)
#   TRT_RPATH     RUNPATH of the module; LD_LIBRARY_PATH still wins             ($ORIGIN:/tmp/trt85/lib)
#   JOBS          parallel compile jobs                                        (2)
# Work files go under ${TMPDIR:-/tmp}/gpukit-bindings. Nothing else is written outside OUT_DIR.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
OUT_DIR=$1

TRT_MIRROR=${TRT_MIRROR:?set TRT_MIRROR (tools/gpukit/build.sh passes it)}
TRT_TAG=${TRT_TAG:-8.5.3}
TRT_INCLUDE=${TRT_INCLUDE:?set TRT_INCLUDE (tools/gpukit/build.sh passes it)}
TRT_LIB=${TRT_LIB:?set TRT_LIB (tools/gpukit/build.sh passes it)}
CUDA_INCLUDE=${CUDA_INCLUDE:-/usr/local/cuda/include}
CUDA_CRT_INCLUDE=${CUDA_CRT_INCLUDE:-}
CUDA_NVCC_VERSION=${CUDA_NVCC_VERSION:-12.4.131}
PY312=${PY312:-python3.12}
PY312_INCLUDE=${PY312_INCLUDE:-$("$PY312" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')}
PYBIND11_VERSION=${PYBIND11_VERSION:-2.13.6}
# shellcheck disable=SC2016  # $ORIGIN is for the dynamic loader, not the shell
TRT_RPATH=${TRT_RPATH:-'$ORIGIN:/tmp/trt85/lib'}
JOBS=${JOBS:-2}
CXX=${CXX:-g++}
WORK=${TMPDIR:-/tmp}/gpukit-bindings

die() {
    echo "build_bindings: $*" >&2
    exit 1
}

# ---- check inputs ----
git -C "$TRT_MIRROR" rev-parse --verify -q "$TRT_TAG^{commit}" >/dev/null || die "no tag $TRT_TAG in $TRT_MIRROR"
for f in NvInfer.h NvInferPlugin.h NvInferVersion.h NvCaffeParser.h NvUffParser.h onnx/NvOnnxParser.h; do
    [[ -f $TRT_INCLUDE/$f ]] || die "missing $TRT_INCLUDE/$f"
done
for l in nvinfer nvinfer_plugin nvonnxparser nvparsers; do
    [[ -e $TRT_LIB/lib$l.so.8 ]] || die "missing $TRT_LIB/lib$l.so.8"
done
[[ -f $CUDA_INCLUDE/cuda_runtime_api.h ]] || die "missing $CUDA_INCLUDE/cuda_runtime_api.h"
[[ -f $PY312_INCLUDE/Python.h ]] || die "missing $PY312_INCLUDE/Python.h"
command -v "$CXX" >/dev/null || die "no C++ compiler $CXX"

start=$(date +%s)
mkdir -p "$WORK"

# ---- sources: python/ of the tag ----
rm -rf "$WORK/src"
mkdir -p "$WORK/src"
git -C "$TRT_MIRROR" archive "$TRT_TAG" python | tar -x -C "$WORK/src"
SRC=$WORK/src/python

# ---- pybind11 headers from the PyPI wheel (cached) ----
PB_DIR=$WORK/pybind11-$PYBIND11_VERSION
if [[ ! -f $PB_DIR/pybind11/include/pybind11/pybind11.h ]]; then
    rm -rf "$WORK/dl" "$PB_DIR"
    mkdir -p "$WORK/dl"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$WORK/dl" "pybind11==$PYBIND11_VERSION"
    whl=$(find "$WORK/dl" -maxdepth 1 -name "pybind11-$PYBIND11_VERSION-*.whl" | head -n 1)
    [[ -n $whl ]] || die "pip download of pybind11==$PYBIND11_VERSION gave no wheel"
    python3 -m zipfile -e "$whl" "$PB_DIR"
fi
PB_INCLUDE=$PB_DIR/pybind11/include
[[ -f $PB_INCLUDE/pybind11/pybind11.h ]] || die "no pybind11 headers in $PB_DIR"

# ---- CUDA crt/ headers (cuda_runtime_api.h includes crt/host_defines.h) ----
if [[ -z $CUDA_CRT_INCLUDE ]]; then
    if [[ -f $CUDA_INCLUDE/crt/host_defines.h ]]; then
        CUDA_CRT_INCLUDE=$CUDA_INCLUDE
    else
        CUDA_CRT_INCLUDE=$WORK/cuda-crt-$CUDA_NVCC_VERSION
        if [[ ! -f $CUDA_CRT_INCLUDE/crt/host_defines.h ]]; then
            rm -rf "$WORK/dl-nvcc" "$CUDA_CRT_INCLUDE"
            mkdir -p "$WORK/dl-nvcc" "$CUDA_CRT_INCLUDE"
            python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
                -d "$WORK/dl-nvcc" "nvidia-cuda-nvcc-cu12==$CUDA_NVCC_VERSION"
            whl=$(find "$WORK/dl-nvcc" -maxdepth 1 -name 'nvidia_cuda_nvcc_cu12-*.whl' | head -n 1)
            [[ -n $whl ]] || die "pip download of nvidia-cuda-nvcc-cu12==$CUDA_NVCC_VERSION gave no wheel"
            python3 - "$whl" "$CUDA_CRT_INCLUDE" <<'PY'
import os, sys, zipfile
prefix = "nvidia/cuda_nvcc/include/crt/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            dest = os.path.join(sys.argv[2], "crt", name[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(z.read(name))
PY
            rm -rf "$WORK/dl-nvcc"
        fi
    fi
fi
[[ -f $CUDA_CRT_INCLUDE/crt/host_defines.h ]] || die "missing $CUDA_CRT_INCLUDE/crt/host_defines.h"

# ---- unversioned .so links for the linker ----
LINK_DIR=$WORK/linklib
rm -rf "$LINK_DIR"
mkdir -p "$LINK_DIR"
for l in nvinfer nvinfer_plugin nvonnxparser nvparsers; do
    ln -s "$(readlink -f "$TRT_LIB/lib$l.so.8")" "$LINK_DIR/lib$l.so"
done

# ---- compile (flags as in python/CMakeLists.txt, but C++14 and -O2) ----
OBJ_DIR=$WORK/obj
rm -rf "$OBJ_DIR"
mkdir -p "$OBJ_DIR"
CXXFLAGS=(-std=c++14 -O2 -fPIC -fvisibility=hidden -Wno-deprecated-declarations -DNDEBUG
    -I"$PY312_INCLUDE" -I"$TRT_INCLUDE" -I"$SRC/include" -I"$CUDA_INCLUDE" -I"$CUDA_CRT_INCLUDE"
    -I"$SRC/docstrings"
    -I"$TRT_INCLUDE/onnx" -I"$PB_INCLUDE")
mapfile -t SOURCES < <(cd "$SRC" && find src -name '*.cpp' | sort)
[[ ${#SOURCES[@]} -gt 0 ]] || die "no sources under $SRC/src"
echo "build_bindings: compiling ${#SOURCES[@]} files with $JOBS jobs"
export SRC OBJ_DIR CXX
# shellcheck disable=SC2016  # expanded by the inner bash, once per source file
printf '%s\n' "${SOURCES[@]}" | xargs -P "$JOBS" -I{} bash -c \
    'o="$OBJ_DIR/$(echo "$1" | tr / _).o"; echo "  $1"; "$CXX" "${@:2}" -c "$SRC/$1" -o "$o"' _ {} "${CXXFLAGS[@]}"

# ---- link: TensorRT libs only, no libpython, no cudart ----
BUILD_DIR=$WORK/out
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR/tensorrt"
"$CXX" -shared -o "$BUILD_DIR/tensorrt/tensorrt.so" "$OBJ_DIR"/*.o -L"$LINK_DIR" -Wl,--as-needed \
    -lnvinfer -lnvonnxparser -lnvparsers -lnvinfer_plugin -Wl,-rpath,"$TRT_RPATH" -Wl,--enable-new-dtags -s

# ---- __init__.py from TensorRT's packaging template ----
ver() { awk -v k="NV_TENSORRT_$1" '$1 == "#define" && $2 == k {print $3}' "$TRT_INCLUDE/NvInferVersion.h"; }
TRT_MAJMINPATCH=$(ver MAJOR).$(ver MINOR).$(ver PATCH)
TRT_VERSION=$TRT_MAJMINPATCH.$(ver BUILD)
[[ $TRT_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read version from NvInferVersion.h"
sed -e "s|##TENSORRT_VERSION##|$TRT_VERSION|g" -e "s|##TENSORRT_MAJMINPATCH##|$TRT_MAJMINPATCH|g" \
    "$SRC/packaging/tensorrt/__init__.py" >"$BUILD_DIR/tensorrt/__init__.py"

# ---- install into OUT_DIR ----
mkdir -p "$OUT_DIR"
rm -rf "$OUT_DIR/tensorrt"
cp -r "$BUILD_DIR/tensorrt" "$OUT_DIR/tensorrt"

echo "build_bindings: TensorRT $TRT_VERSION bindings (pybind11 $PYBIND11_VERSION) in $OUT_DIR/tensorrt," \
    "$(($(date +%s) - start)) s"
readelf -d "$OUT_DIR/tensorrt/tensorrt.so" | grep -E 'NEEDED|RUNPATH' || true
