#!/usr/bin/env bash
# The sharded TensorRT path, the cross-GPU identity check and the scaling benchmark on the GPUs of this machine, without
# Snakemake or TensorFlow (TensorRT, pycuda and numpy only). Run from the repository root:
#   python tools/tiny_onnx.py build/h17           # where `onnx` is installed (the CPU machine): model + samples
#   bash tools/gpu_shards.sh build/h17 OUT        # on the GPU machine, build/h17 carried there
# Shards: 3 shards of whole batches of 16 on slots 0..2 (on one GPU all three run on it), merged, must be
# bit-identical to one unsharded run. Also records (not judged) whether a row's bits depend on the batch size on
# TensorRT (batch 1 against 16), runs the identity check on every visible GPU, checks that an engine whose record
# names another GPU model is refused, and times the scaling on every visible GPU. Exits 1 if a check fails.
set -uo pipefail
in=$1 out=$2
mkdir -p "$out"
export PYTHONPATH=scripts${PYTHONPATH:+:$PYTHONPATH}  # keeps a TensorRT set up outside (e.g. /tmp/site)
py=${PY:-python3}
x=$in/test_samples.npy engine=$out/fp32.trt record=$out/fp32.json
gpus=$(nvidia-smi -L | grep -c '^GPU ')
failures=0
check() { if "$@"; then echo "PASS: $*"; else echo "FAIL: $*"; failures=$((failures + 1)); fi; }
same() { $py -c "import numpy as np, sys; a, b = (np.load(p) for p in sys.argv[1:]); \
print('bit-identical' if a.tobytes() == b.tobytes() else f'differ: max |a-b| {np.abs(a - b).max()}'); \
sys.exit(a.tobytes() != b.tobytes())" "$1" "$2"; }
predict() { $py scripts/predict.py --backend tensorrt --artifact "$engine" --engine-info "$record" --samples "$x" "$@"; }

check $py scripts/build_engine.py --onnx "$in/model.onnx" --precision fp32 --min-batch 1 --opt-batch 16 --tactic-sources="${TACTICS:-default}" \
  --max-batch 16 --engine "$engine" --info "$record"
$py -c "import json, sys; print('engine built on', json.load(open(sys.argv[1]))['device'])" "$record"
check predict --batch-size 16 --output "$out/whole.npy" --info "$out/whole.json"
args=()
for i in 0 1 2; do
  check predict --batch-size 16 --shard "$i/3" --device-slot "$i" --output "$out/shard$i.npy" --info "$out/shard$i.json"
  args+=(--shard "$out/shard$i.npy" --shard-info "$out/shard$i.json")
done
check $py scripts/merge_shards.py --samples "$x" "${args[@]}" --output "$out/merged.npy" --info "$out/merged.json"
check same "$out/whole.npy" "$out/merged.npy"
predict --batch-size 1 --output "$out/batch1.npy" --info "$out/batch1.json" && \
  echo "batch 1 against batch 16 on TensorRT (recorded, not judged): $(same "$out/whole.npy" "$out/batch1.npy")"
check $py scripts/gpu_identity.py --backend tensorrt --engine "fp32=$engine" --engine-info "fp32=$record" \
  --samples "$x" --first 32 --output "$out/gpu_identity.json"
$py -c "import json, sys; d = json.load(open(sys.argv[1])); sys.exit(not d['identical'])" "$out/gpu_identity.json"
check test $? -eq 0
$py -c "import json, sys; r = json.load(open(sys.argv[1])); r['device']['name'] = 'NVIDIA A100-SXM4-80GB'; \
r['device']['compute_capability'] = '8.0'; json.dump(r, open(sys.argv[2], 'w'))" "$record" "$out/forged.json"
predict --engine-info "$out/forged.json" --output "$out/refused.npy" --info "$out/refused.json" 2> "$out/refused.txt"
check grep -q "was built on a .*but this job runs on a" "$out/refused.txt"
cat "$out/refused.txt"
check $py scripts/bench_scaling.py --backend tensorrt --artifact "$engine" --samples "$x" --batch 16 --gpus "$gpus" \
  --warmup 20 --iterations 200 --output "$out/scaling.json"
echo "$failures check(s) failed"
[ "$failures" -eq 0 ]
