#!/usr/bin/env bash
# TensorRT from Python and from C++ on the same engine, the same documented work per iteration (the batch in pinned
# memory before timing; H2D + execute + D2H on one stream, CUDA events: scripts/benchmark.py measure_tensorrt and
# cpp/trt_infer/runner.cpp Runner::time), at batch 1, 32, 128, with and without a CUDA graph.
# Run from the repo root on the GPU machine, after the engines exist, e.g. from .gpu/models/NAME/extra.sh:
#   bash tools/gpu_bench.sh
# Env (as .gpu/proof.sh sets it for extra.sh): MODEL_DIR (test_samples.npy), MODEL_WORK (engines/P.trt), CPP_BIN,
# PY; optional BENCH_PRECISIONS ("fp32 fp16"), BENCH_BATCHES ("1 32 128"), ITERATIONS (200), WARMUP (20).
# Writes $MODEL_WORK/extra/: one JSON row per measurement and bench.tsv (one line per row, with throughput against
# the GPU-compute limit), and prints the TSV.
set -uo pipefail
out=$MODEL_WORK/extra
mkdir -p "$out"
model=$(basename "$MODEL_DIR")
samples=$MODEL_DIR/test_samples.npy
iters=${ITERATIONS:-200} warm=${WARMUP:-20} failures=0
# run CMD...: echo it, run it, count a failure; returns its status (so `run A && run B` skips B after A failed).
run() {
  local rc
  echo "+ $*"; "$@"; rc=$?
  [ "$rc" -eq 0 ] || { echo "FAILED (exit $rc): $*"; failures=$((failures + 1)); }
  return "$rc"
}
for p in ${BENCH_PRECISIONS:-fp32 fp16}; do
  engine=$MODEL_WORK/engines/$p.trt
  [ -f "$engine" ] || { echo "no engine $engine: skipped"; failures=$((failures + 1)); continue; }
  for b in ${BENCH_BATCHES:-1 32 128}; do
    for graph in "" --cuda-graph; do
      tag=${p}_b${b}${graph:+_graph}
      run "$CPP_BIN" --engine "$engine" --precision "$p" --input "$samples" --batch "$b" --warmup "$warm" \
        --iterations "$iters" $graph --timing "$out/cpp_$tag.timing.json" &&
        run "$PY" scripts/benchmark.py --from-cpp-timing "$out/cpp_$tag.timing.json" --model "$model" \
          --batch-size "$b" --output "$out/tensorrt_cpp_$tag.json"
      run "$PY" scripts/benchmark.py --backend tensorrt --artifact "$engine" --precision "$p" --samples "$samples" \
        --batch-size "$b" --warmup "$warm" --iterations "$iters" $graph --model "$model" \
        --output "$out/tensorrt_$tag.json"
    done
  done
done
"$PY" - "$out" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
cols = ["model", "backend", "precision", "batch", "cuda_graph", "e2e_mean_ms", "e2e_p50_ms", "gpu_mean_ms",
        "throughput", "compute_limit", "of_compute_limit", "host_p50_ms"]
lines = ["\t".join(cols)]
for f in sorted(out.glob("tensorrt*.json")):
    r = json.loads(f.read_text())
    d, lat, gpu = r["details"], r["latency_ms"], r["gpu_compute_ms"] or {}
    host = d.get("host_latency_ms") or {}
    lines.append("\t".join(str(v) for v in [r["model"], r["backend"], r["precision"], r["batch"], r["cuda_graph"],
                 lat["mean"], lat["p50"], gpu.get("mean"), r["throughput_samples_per_s"],
                 d.get("compute_limit_samples_per_s"), d.get("of_compute_limit"), host.get("p50", "")]))
(out / "bench.tsv").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
[ "$failures" -eq 0 ]
