#!/usr/bin/env bash
# TensorRT from Python and from C++ on the same engines, MobileNetV2 and ResNet50 at 224x224 (tools/gpukit/models.py),
# fp32 and fp16, batch 1, 32 and 128, one batch at a time and overlapped (--overlap, two batches in flight), the
# same documented work in both (docs/benchmarks.md, "What is timed"); prints one table: end-to-end and compute-limit
# throughput, Python/C++ and end-to-end/compute ratios, and the issue-15 goals (Python within 1.05x of C++ at
# batch >= 32; end to end within 1.2x of compute at batch 128).
#
# On the GPU machine with the GPU kit received (docs/gpu.md), through `bash tools/gpukit/device.sh bench`, which sets
# the environment below to the kit's; or from the repo root with TensorRT, pycuda and numpy importable:
#   bash tools/gpu_bench.sh build        # engines + trt_infer only (when a call's 600 s would not hold both)
#   bash tools/gpu_bench.sh [MODEL ...]  # measure (building what is missing); default: mobilenetv2_224 resnet50_224
# Engines are shared with `device.sh proof` ($WORK/NAME/engines/P.trt), so after a proof run nothing is built.
# Each measurement's failure (or timeout) is recorded in failures.txt and the rest go on.
# Env: BENCH_OUT (${OUT:-/tmp}/gpu-bench: rows, timing files, logs, bench.tsv, table.txt), MODELS_DIR
# (/tmp/gpukit/models: NAME/model.onnx and NAME/test_samples.npy), WORK (/tmp/proof), CPP_BIN (/tmp/bin/trt_infer),
# PY (python3), TRT_ROOT (/tmp/trt85), BENCH_PRECISIONS ("fp32 fp16"), BENCH_BATCHES ("1 32 128"), ITERATIONS (100),
# WARMUP (10), TACTICS (the engines' tactic sources: default; device.sh sets what the GPU machine needs),
# STEP_TIMEOUT (120 s per measurement).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
out=${BENCH_OUT:-${OUT:-/tmp}/gpu-bench} models_dir=${MODELS_DIR:-/tmp/gpukit/models} work=${WORK:-/tmp/proof}
CPP_BIN=${CPP_BIN:-/tmp/bin/trt_infer} PY=${PY:-python3} TRT_ROOT=${TRT_ROOT:-/tmp/trt85}
iters=${ITERATIONS:-100} warm=${WARMUP:-10} limit=${STEP_TIMEOUT:-120}
mkdir -p "$out/logs" "$out/rows"
: > "$out/failures.txt"
build_only=0
if [ "${1:-}" = build ]; then build_only=1; shift; fi
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mobilenetv2_224 resnet50_224)

# step NAME CMD...: runs CMD (at most $limit s) with its output in logs/NAME.log; a failure is recorded, not fatal.
step() {
  local name=$1 t0=$SECONDS rc; shift
  timeout "$limit" "$@" > "$out/logs/$name.log" 2>&1; rc=$?
  printf '%-40s rc %s  %4ss\n' "$name" "$rc" "$((SECONDS - t0))"
  if [ "$rc" -ne 0 ]; then
    printf '%s\texit %s\t%s\n' "$name" "$rc" "$(tail -1 "$out/logs/$name.log")" >> "$out/failures.txt"
    tail -3 "$out/logs/$name.log" | sed 's/^/  | /'
  fi
  return "$rc"
}

echo "== gpu_bench $(date -u +%FT%TZ): ${models[*]}, iterations $iters, warm-up $warm, out $out"
{ nvidia-smi -L; "$PY" -c 'import sys, numpy; print("python", sys.version.split()[0], "numpy", numpy.__version__)'
  "$PY" -c 'import tensorrt as t, pycuda; print("tensorrt", t.__version__, "pycuda", pycuda.VERSION_TEXT)' 2>&1 |
    tail -1
  "$PY" -c 'import cuda; print("cuda-python present (only --cuda-graph uses it; not timed here)")' 2>/dev/null ||
    echo "cuda-python absent: fine, nothing here captures CUDA graphs"; } 2>&1 | tee "$out/environment.txt"
if [ ! -x "$CPP_BIN" ]; then
  limit=600 step compile_cpp "$PY" scripts/compile_cpp.py --source cpp --jobs "$(nproc)" --output "$CPP_BIN" \
    --cmake-args="-DTensorRT_ROOT=$TRT_ROOT -DCUDAToolkit_ROOT=/usr/local/cuda"
fi
for m in "${models[@]}"; do
  samples=$models_dir/$m/test_samples.npy
  for p in ${BENCH_PRECISIONS:-fp32 fp16}; do
    engine=$work/$m/engines/$p.trt
    [ -f "$engine" ] && continue
    mkdir -p "$work/$m/engines"
    # proof.sh's options, so that its engines and these are interchangeable
    limit=600 step "build_${m}_$p" "$PY" scripts/build_engine.py --onnx "$models_dir/$m/model.onnx" \
      --precision "$p" --min-batch 1 --opt-batch 32 --max-batch 256 --workspace-mib 1024 \
      --tactic-sources="${TACTICS:-default}" --flavour tensorrt --engine "$engine" \
      --info "$work/$m/engines/$p.json"
  done
  [ "$build_only" = 1 ] && continue
  for p in ${BENCH_PRECISIONS:-fp32 fp16}; do
    engine=$work/$m/engines/$p.trt
    [ -f "$engine" ] || { printf '%s\tno engine\t%s\n' "${m}_$p" "$engine" >> "$out/failures.txt"; continue; }
    for b in ${BENCH_BATCHES:-1 32 128}; do
      for mode in "" --overlap; do
        tag=${m}_${p}_b${b}${mode:+_overlap}
        step "cpp_$tag" "$CPP_BIN" --engine "$engine" --precision "$p" --input "$samples" --batch "$b" \
          --warmup "$warm" --iterations "$iters" $mode --timing "$out/rows/cpp_$tag.timing.json" &&
          step "cpp_row_$tag" "$PY" scripts/bench_cpp_row.py --timing "$out/rows/cpp_$tag.timing.json" --model "$m" \
            --precision "$p" --batch-size "$b" --output "$out/rows/tensorrt_cpp_$tag.json"
        step "python_$tag" "$PY" scripts/benchmark_tensorrt.py --artifact "$engine" --precision "$p" \
          --samples "$samples" --batch-size "$b" --warmup "$warm" --iterations "$iters" $mode --model "$m" \
          --output "$out/rows/tensorrt_$tag.json"
      done
    done
  done
done
if [ "$build_only" = 1 ]; then
  echo "== build done; failures: $(wc -l < "$out/failures.txt")"
  [ ! -s "$out/failures.txt" ]; exit
fi
"$PY" tools/gpu_bench_table.py "$out/rows" --tsv "$out/bench.tsv" | tee "$out/table.txt"
echo "== ${SECONDS} s; failures: $(wc -l < "$out/failures.txt") (failures.txt); results in $out"
[ ! -s "$out/failures.txt" ]
