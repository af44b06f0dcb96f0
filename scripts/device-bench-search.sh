#!/usr/bin/env bash
# Issue 7 benchmark on the GPU machine, in one call: builds (Release), writes the random-weight
# DeepSeek-V3.2-dimension bench model (scripts/make_bench_model.py), runs the transformers
# greedy baseline (bench/hf_greedy.py) and our search on the same data and GPU, then the
# one-layer throughput at long contexts (bench/layer_bench). Logs and JSON go to $OUT.
#   scripts/device-bench-search.sh [layers] [experts] [keep] [sequences] [tokens]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/indexcache-out}
mkdir -p "$OUT"
layers=${1:-12}; experts=${2:-16}; keep=${3:-9}; sequences=${4:-4}; tokens=${5:-4096}
model=/tmp/bench-v32
export PYTHONUNBUFFERED=1
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DPCRE2_ROOT="$PWD/.carry/pcre2" -DCMAKE_CUDA_ARCHITECTURES=90a -DINDEXCACHE_BUILD_TESTS=OFF > "$OUT/configure.log" 2>&1
cmake --build build-device -j"$(nproc)" -- -k 0 > "$OUT/build.log" 2>&1 || grep -E "error" "$OUT/build.log" | head -20
python3 scripts/make_bench_model.py --out "$model" --layers "$layers" --experts "$experts" \
  --sequences "$sequences" --tokens "$tokens" 2>&1 | tail -3
echo "== transformers greedy (eager, bf16)"
python3 bench/hf_greedy.py --model "$model" --data "$model/data.jsonl" --keep-layers "$keep" --json "$OUT/hf.json" 2>&1 |
  grep -vE "Loading|warn" | tail -8
echo "== indexcache greedy (bf16)"
start=$(date +%s.%N)
build-device/indexcache-calibrate --model "$model" --data "$model/data.jsonl" --keep-layers "$keep" --device cuda \
  --dtype bf16 --out "$OUT/plan.yaml" --json "$OUT/ours.json" --quiet 2>&1 | tail -8
end=$(date +%s.%N)
python3 - "$OUT" "$start" "$end" <<'PY'
import json, sys
out, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
hf = json.load(open(f"{out}/hf.json"))
ours = json.load(open(f"{out}/ours.json"))
total = end - start
print(f"transformers: search {hf['search_seconds']:.1f} s (+ load {hf['load_seconds']:.1f} s), {hf['full_forwards']} full forwards, "
      f"peak {hf['peak_gpu_bytes'] / 2**30:.1f} GiB, pattern {hf['final_pattern']}")
print(f"indexcache:   {total:.1f} s wall including load, pattern {ours['pattern']}")
print(f"same final pattern: {hf['final_pattern'] == ours['pattern']}; "
      f"ratio (transformers search only / ours incl. load): {hf['search_seconds'] / total:.2f}x")
print("transformers trajectory:", [(s['removed'], round(s['loss'], 5)) for s in hf['trajectory']])
print("indexcache trajectory:  ", [(s['removed'], round(s['loss'], 5)) for s in ours['search']['trajectory']])
PY
echo "== one layer at long context"
build-device/layer_bench "$model" --device cuda --dtype bf16 --layer 3 --tokens 8192,32768,131072 2>&1 | tail -6
