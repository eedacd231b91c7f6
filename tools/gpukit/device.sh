#!/usr/bin/env bash
# The GPU kit on the GPU machine (docs/gpu.md). Run from the repository root, as a device call runs its command:
#   bash tools/gpukit/device.sh receive PATH...   # carried parts, in the order build.sh printed: .trt-gpu/pN
#                                                 # (TensorRT 8.5.3, unpacked into /tmp/trt85) and .gpu/carry/cN
#                                                 # (the kit and the models, unpacked into /tmp/gpukit once complete)
#   bash tools/gpukit/device.sh proof [MODEL...]  # engines (fp32, fp16), TensorRT predictions from Python and from
#                                                 # C++ on each model's samples: $OUT/proof.tgz
#   bash tools/gpukit/device.sh tests             # `pytest -m gpu`: $OUT/tests.tgz
#   bash tools/gpukit/device.sh localize          # scripts/localize.py on the kit's localization models (fp32, tf32,
#                                                 # fp16, Python and C++): $OUT/localize.tgz
#   bash tools/gpukit/device.sh bench [MODEL...]  # tools/gpu_bench.sh on the kit's models, engines and trt_infer:
#                                                 # $OUT/gpu-bench.tgz (a call brings back only a few files)
#   bash tools/gpukit/device.sh run CMD...        # CMD with the kit's environment
# MODEL: a folder name under /tmp/gpukit/models (default: all). Env: OUT (the device call's $OUT; /tmp otherwise),
# PY (python3), BATCH (32: the predictions' batch). gpu_bench.sh's environment passes through, BENCH_OUT aside.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
root=${GPUKIT_ROOT:-/tmp/gpukit} trt=/tmp/trt85 py=${PY:-python3}
out=${OUT:-/tmp}

kit_env() {
  [ -f "$trt/lib/libnvinfer.so.8" ] || { echo "TensorRT is not in $trt: receive .trt-gpu/p0... first"; exit 1; }
  [ -d "$root/kit" ] || { echo "the kit is not unpacked in $root: receive .gpu/carry/c0... first"; exit 1; }
  export LD_LIBRARY_PATH=$trt/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PYTHONPATH=scripts:$root/kit/site${PYTHONPATH:+:$PYTHONPATH}
  export TRTVERIFY_TRT_INFER=$root/kit/bin/trt_infer CPP_BIN=$root/kit/bin/trt_infer
  export MODELS_DIR=$root/models WORK=$root/work PY=$py
  # cuBLAS 11 and cuDNN 8 are stand-ins here (../shared/trt-gpu): every engine is built without their tactics, the
  # GPU tests' engines too
  export TACTICS=${TACTICS:--CUBLAS,-CUBLAS_LT,-CUDNN}
  export TRTVERIFY_TEST_TACTIC_SOURCES=$TACTICS
  # tools/localize_models.py's models, made by build.sh: the GPU localization test takes its MobileNetV2 from there
  export TRTVERIFY_TEST_LOCALIZE_MODELS=$root/kit/localize
}

models() {
  if [ $# -gt 0 ]; then printf '%s\n' "$@"; else (cd "$root/models" && ls); fi
}

receive() {
  local part
  for part in "$@"; do
    if ls "$part"/trt.tar.zst.* > /dev/null 2>&1; then  # ../shared/trt-gpu's part; p0 brings device-setup.sh
      if [ -f "$part/device-setup.sh" ]; then bash "$part/device-setup.sh" "$part" || exit 1
      else bash "$trt/parts/device-setup.sh" "$part" || exit 1; fi
    elif ls "$part"/kit.tar.* > /dev/null 2>&1; then
      mkdir -p "$root/parts" && cp "$part"/* "$root/parts/"
      [ -f "$root/parts/count" ] || { echo "part c0 (with 'count') has not been carried yet"; continue; }
      local want have
      want=$(cat "$root/parts/count") have=$(find "$root/parts" -name 'kit.tar.*' | wc -l)
      if [ "$have" -lt "$want" ]; then echo "kit: have $have of $want parts; carry the next"; continue; fi
      (cd "$root/parts" && cat $(ls kit.tar.* | sort)) > "$root/kit.tar"
      (cd "$root" && sha256sum -c --status parts/sha256) ||  # the line names kit.tar, found in $root
        { rm -f "$root/kit.tar"; echo "kit: the joined parts do not match their sha256; carry them again"; exit 1; }
      tar xf "$root/kit.tar" -C "$root" && rm "$root/kit.tar" || exit 1
      echo "kit: unpacked into $root ($(du -sh "$root/kit" | cut -f1) kit; models: $(cd "$root/models" && ls | xargs))"
    else
      echo "$part: neither a TensorRT part (trt.tar.zst.*) nor a kit part (kit.tar.*)"; exit 1
    fi
  done
}

proof() {
  kit_env
  local dest=$out/proof failures=0 m p record batch=${BATCH:-32}
  mkdir -p "$dest"
  "$py" -c 'import tensorrt as t, pycuda, numpy; print("tensorrt", t.__version__, "pycuda", pycuda.VERSION_TEXT,
"numpy", numpy.__version__)' 2>&1 | tee "$dest/environment.txt"
  nvidia-smi -L | tee -a "$dest/environment.txt"
  # the engines as the benchmark builds them (the pipeline's profile and workspace, the tactic sources above), shared
  # with it under $WORK
  BENCH_OUT=$dest/build bash tools/gpu_bench.sh build $(models "$@") || failures=$((failures + 1))
  for m in $(models "$@"); do
    local x=$MODELS_DIR/$m/test_samples.npy got=$dest/$m
    mkdir -p "$got/engines"
    # the precisions gpu_bench.sh built (BENCH_PRECISIONS); one it could not build is already a failure
    for record in "$WORK/$m"/engines/*.json; do
      [ -f "$record" ] || continue
      p=$(basename "$record" .json)
      local engine=$WORK/$m/engines/$p.trt
      cp "$record" "$got/engines/"
      "$py" scripts/predict.py --backend tensorrt --artifact "$engine" --engine-info "$record" --samples "$x" \
        --batch-size "$batch" --output "$got/tensorrt_$p.npy" --info "$got/tensorrt_$p.json" \
        > "$got/tensorrt_$p.log" 2>&1 || { failures=$((failures + 1)); tail -3 "$got/tensorrt_$p.log"; }
      "$py" scripts/predict_cpp.py --binary "$CPP_BIN" --engine "$engine" --input "$x" --engine-info "$record" \
        --samples "$x" --output "$got/tensorrt_cpp_$p.npy" --info "$got/tensorrt_cpp_$p.json" \
        > "$got/tensorrt_cpp_$p.log" 2>&1 || { failures=$((failures + 1)); tail -3 "$got/tensorrt_cpp_$p.log"; }
      echo "$m $p: $(ls "$got" | grep -c "_$p.npy") of 2 predictions"
    done
  done
  tar czf "$dest.tgz" -C "$out" proof && rm -rf "$dest"
  echo "== proof: $failures failure(s); predictions, records and logs in $dest.tgz"
  [ "$failures" -eq 0 ]
}

tests() {
  kit_env
  local dest=$out/tests rc=0
  mkdir -p "$dest"
  # the files holding GPU tests only: the others import TensorFlow or Snakemake at collection, absent here
  "$py" -m pytest -m gpu -p no:cacheprovider -q -rs $(grep -l 'mark\.gpu' tests/test_*.py) > "$dest/pytest.log" 2>&1 ||
    rc=1
  tail -15 "$dest/pytest.log"
  tar czf "$dest.tgz" -C "$out" tests && rm -rf "$dest"
  return "$rc"
}

localize() {
  kit_env
  local dest=$out/localize failures=0 d m
  mkdir -p "$dest"
  for d in "$TRTVERIFY_TEST_LOCALIZE_MODELS"/*/; do
    m=$(basename "$d")
    "$py" scripts/localize.py --onnx "$d/model.onnx" --samples "$d/samples.npy" --num-samples 16 \
      --noise-floor "$d/onnx_check.json" --precisions fp32 tf32 fp16 --tactic-sources="$TACTICS" \
      --flavour tensorrt --trt-infer "$CPP_BIN" --output "$dest/$m.json" > "$dest/$m.log" 2>&1 ||
      { failures=$((failures + 1)); tail -3 "$dest/$m.log"; }
    echo "$m: $([ -f "$dest/$m.json" ] && echo "localization written" || echo "no localization")"
  done
  tar czf "$dest.tgz" -C "$out" localize && rm -rf "$dest"
  echo "== localize: $failures failure(s); localization.json and logs in $dest.tgz"
  [ "$failures" -eq 0 ]
}

case "${1:-}" in
  receive) shift; receive "$@" ;;
  proof) shift; proof "$@" ;;
  tests) tests ;;
  localize) localize ;;
  bench)
    shift; kit_env
    BENCH_OUT=$out/gpu-bench bash tools/gpu_bench.sh $(models "$@"); rc=$?
    tar czf "$out/gpu-bench.tgz" -C "$out" gpu-bench && rm -rf "$out/gpu-bench"; exit "$rc" ;;
  run) shift; kit_env; "$@" ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
