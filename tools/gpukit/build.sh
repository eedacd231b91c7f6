#!/usr/bin/env bash
# The GPU kit (docs/gpu.md): what the lent GPU machine needs to run trtverify's TensorRT steps on real TensorRT 8.5.3,
# built here on the CPU machine so that no device time goes into building, then packed into parts a device call can
# carry. From the repository root:
#   bash tools/gpukit/build.sh TRT_MIRROR ONNXTRT_MIRROR
# TRT_MIRROR, ONNXTRT_MIRROR: git directories of NVIDIA/TensorRT and onnx/onnx-tensorrt (the search tool's `fetch`).
# Writes, all git-ignored:
#   .trt-gpu/p0..pN  TensorRT's libraries and 8.5.3 headers in parts (../shared/trt-gpu/prepare.sh);
#   .gpu/kit         site/ (the tensorrt bindings for CPython 3.12, pycuda, pytest), bin/trt_infer and localize/
#                    (tools/localize_models.py's models: their ONNX, samples and noise floor);
#   .gpu/models      MobileNetV2 and ResNet50 at 224x224 through the pipeline's CPU steps (tools/gpukit/models.py);
#   .gpu/carry/cN    the kit and the models as parts of a tar (sha256 and count in c0);
# then prints the device calls, in order. Steps whose output exists are skipped: remove it to redo one.
# Env: SHARED (../shared), CUDA_ROOT (/usr/local/cuda: the CUDA 13 headers and trt_infer's runtime), PY312 (a
# CPython 3.12 with its headers: python3.12, else pyenv's newest 3.12), PROOF_SAMPLES (32),
# CALL_MB (62: what a call may carry besides the checkout), PY (.venv/bin/python: TensorFlow, for the models).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,15p' "$0"; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
trt_mirror=$1 onnxtrt_mirror=$2
shared=${SHARED:-../shared} cuda=${CUDA_ROOT:-/usr/local/cuda} py=${PY:-.venv/bin/python}
work=${TMPDIR:-/tmp}/gpukit kit=.gpu/kit call_bytes=$(( ${CALL_MB:-62} * 1000000 ))
[ -x "$py" ] || { echo "$py is missing: run 'make venv' first (the models need TensorFlow)"; exit 1; }
for c in "${PY312:-}" python3.12 $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null |
    sort -rV); do  # the first that runs as 3.12 (a pyenv shim may exist and refuse)
  [ -n "$c" ] && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2> /dev/null && found=$c && break
done
[ -n "${found:-}" ] || { echo "no CPython 3.12 (the GPU machine's Python) runs here: set PY312 to one"; exit 1; }
export PY312=$found
grep -qx "/.trt-gpu/" .git/info/exclude 2>/dev/null || echo "/.trt-gpu/" >> .git/info/exclude

# 1. TensorRT 8.5.3: libraries (from the PyPI wheel) and headers (from the mirrors), in parts
mkdir -p "$work"
if ! ls .trt-gpu/p*/include/NvInfer.h > /dev/null 2>&1; then
  # its own list of device calls is replaced by the kit's below, so its output goes to a log
  bash "$shared/trt-gpu/prepare.sh" --headers "$trt_mirror" "$onnxtrt_mirror" > "$work/prepare.log" 2>&1 ||
    { tail -20 "$work/prepare.log"; echo "prepare.sh failed: its output is in $work/prepare.log"; exit 1; }
  echo "TensorRT 8.5.3 in $(ls -d .trt-gpu/p* | wc -l) parts under .trt-gpu ($work/prepare.log)"
fi
include=$(cd "$(dirname "$(ls .trt-gpu/p*/include/NvInfer.h | tail -1)")" && pwd)
libs=${TMPDIR:-/tmp}/trt-gpu-work
# a TensorRT install tree to build against: the headers, the libraries and the cuBLAS/cuDNN stand-ins
mkdir -p "$work/trt/lib"
ln -sfn "$include" "$work/trt/include"
for f in "$libs"/lib/*.so.* "$libs"/stubs/*.so.*; do ln -sf "$f" "$work/trt/lib/"; done
for l in nvinfer nvonnxparser nvinfer_plugin nvparsers; do ln -sf "lib$l.so.8" "$work/trt/lib/lib$l.so"; done

# 2. the tensorrt Python module and pycuda for the GPU machine's CPython 3.12, and pytest for its GPU tests
[ -d "$kit/site/tensorrt" ] || TRT_MIRROR=$trt_mirror TRT_INCLUDE=$include TRT_LIB=$work/trt/lib \
  CUDA_INCLUDE=$cuda/include bash tools/gpukit/build_bindings.sh "$kit/site"
[ -d "$kit/site/pycuda" ] || bash tools/gpukit/build_pycuda.sh "$kit/site"
if [ ! -d "$kit/site/pytest" ]; then  # the version make test uses, and its dependencies for Python 3.12
  python3 -m pip install -q --target "$work/pytest" --python-version 3.12 --only-binary=:all: \
    "$(grep -i '^pytest==' envs/requirements-dev.txt)"
  cp -r "$work/pytest"/* "$kit/site/"
fi

# 3. trt_infer, as the compile_cpp rule builds it, against that tree and this machine's CUDA runtime headers
if [ ! -x "$kit/bin/trt_infer" ]; then
  "$py" scripts/compile_cpp.py --source cpp --jobs "$(nproc)" --output "$kit/bin/trt_infer" \
    --cmake-args="-DTensorRT_ROOT=$work/trt -DCUDAToolkit_ROOT=$cuda \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$work/trt/lib"
fi

# 4. the models, through the pipeline's CPU steps
[ -f .gpu/models/resnet50_224/test_samples.npy ] || "$py" tools/gpukit/models.py make --samples "${PROOF_SAMPLES:-32}"

# the localization models (docs/localization.md): the GPU machine needs only their ONNX, samples and noise floor
if [ ! -d "$kit/localize" ]; then
  rm -rf "$work/localize" "$work/localize-kit"
  "$py" tools/localize_models.py "$work/localize"
  for d in "$work"/localize/*/; do
    mkdir -p "$work/localize-kit/$(basename "$d")"
    cp "$d/model.onnx" "$d/samples.npy" "$d/onnx_check.json" "$work/localize-kit/$(basename "$d")/"
  done
  mv "$work/localize-kit" "$kit/localize"
fi

# 5. the kit and the models in parts: the first shares a call with TensorRT's last part
last=$(ls -d .trt-gpu/p* | sort -V | tail -1)
bash tools/gpukit/pack.sh .gpu .gpu/carry "$(( call_bytes - $(du -sb "$last" | cut -f1) ))" "$call_bytes" kit models
n=$(cat .gpu/carry/c0/count)

echo
echo "Device calls, back to back (each: command, carry). Then: proof, tests, localize, bench (docs/gpu.md):"
for p in $(ls -d .trt-gpu/p* | sort -V); do
  if [ "$p" = "$last" ]; then
    echo "  bash tools/gpukit/device.sh receive $p .gpu/carry/c0    ['$p', '.gpu/carry/c0']"
  else
    echo "  bash tools/gpukit/device.sh receive $p    ['$p']"
  fi
done
for i in $(seq 1 $((n - 1))); do
  echo "  bash tools/gpukit/device.sh receive .gpu/carry/c$i    ['.gpu/carry/c$i']"
done
