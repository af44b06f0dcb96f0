#!/usr/bin/env bash
# Issue 7 on the GPU machine (through the device tool; carry [".carry"] from
# scripts/carry-pcre2.sh). Builds (Release), writes the random-weight DeepSeek-V3.2-dimension bench
# model (scripts/make_bench_model.py) and runs, as STEPS says (default: all, in this order):
#   tests    the GPU test binary (kernels, golden fixtures on CUDA, fused vs eager attention)
#   ours     our greedy search (wall time including load, peak GPU memory)
#   layer    one MoE layer at 4K tokens with each attention path, then sparse at 8K / 32K / 128K
#            (bench/layer_bench): tokens/s, memory
#   hf       the transformers greedy baseline (bench/hf_greedy.py), same data, same GPU, same run;
#            then both searches compared: patterns, trajectories, wall-time ratio
#   offload  our search again with --offload: same losses as in memory?
#   faults   a device index that does not exist; GPU out of memory (another process holds most
#            of the GPU): exit status and message
# Logs and JSON go to $OUT/bench-search.tar.gz; the summary is printed last.
#   scripts/device-bench-search.sh [layers] [experts] [keep] [sequences] [tokens]
# Environment: STEPS, DEADLINE (seconds after which no further step starts), DTYPE (bf16 or fp32
# for both searches: fp32 runs without TF32 on both sides, so the trajectories can be compared
# exactly; in bf16 the two implementations round differently), HF_TIMEOUT.
# The model goes to build-device/bench-v32 (ignored), so a second call on a warm machine reuses it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/indexcache-out}
LOG=/tmp/indexcache-bench-search
rm -rf "$LOG"
mkdir -p "$OUT" "$LOG"
layers=${1:-12}; experts=${2:-16}; keep=${3:-9}; sequences=${4:-4}; tokens=${5:-4096}
STEPS=${STEPS:-tests ours layer hf offload faults}
DTYPE=${DTYPE:-bf16}
model=build-device/bench-v32-$layers-$experts-$sequences-$tokens
started=$(date +%s)
elapsed() { echo $(($(date +%s) - started)); }
export PYTHONUNBUFFERED=1
declare -A result

want() {
  [[ " $STEPS " == *" $1 "* ]] || return 1
  if [ -n "${DEADLINE:-}" ] && [ "$(elapsed)" -ge "$DEADLINE" ]; then
    result[$1]="skipped (deadline, $(elapsed) s)"
    return 1
  fi
}

# Peak GPU memory in use (nvidia-smi, every 100 ms) while a command runs: "$LOG/$1.mem".
sampled() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$LOG/$name.mem" 2>/dev/null &
  local sampler=$!
  "$@"
  local rc=$?
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  echo "$name: peak GPU memory in use $(sort -n "$LOG/$name.mem" | tail -1) MiB (baseline $(head -1 "$LOG/$name.mem") MiB)" >> "$LOG/memory.txt"
  return $rc
}

finish() {
  tar czf "$OUT/bench-search.tar.gz" -C "$(dirname "$LOG")" "$(basename "$LOG")"
  echo
  echo "== device-bench-search summary ($(elapsed) s)"
  cat "$LOG/device.txt"
  for step in build model tests ours layer hf offload faults; do printf '%-8s %s\n' "$step" "${result[$step]:-not run}"; done
  for f in tests.txt compare.txt memory.txt layer.txt offload.txt faults.txt; do [ -f "$LOG/$f" ] && { echo; cat "$LOG/$f"; }; done
}
trap finish EXIT

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$LOG/device.txt" 2>&1
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
targets=(indexcache-calibrate layer_bench)
tests=OFF
[[ " $STEPS " == *" tests "* ]] && { tests=ON; targets+=(indexcache_gpu_tests); }
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DPCRE2_ROOT="$PWD/.carry/pcre2" -DCMAKE_CUDA_ARCHITECTURES=90a -DINDEXCACHE_BUILD_TESTS=$tests > "$LOG/configure.log" 2>&1
if ! cmake --build build-device -j"$(nproc)" --target "${targets[@]}" > "$LOG/build.log" 2>&1; then
  result[build]="FAILED"; grep -E "error" -A3 "$LOG/build.log" | head -30; exit 1
fi
result[build]="ok ($(elapsed) s)"

if [ ! -f "$model/data.jsonl" ]; then
  python3 scripts/make_bench_model.py --out "$model" --layers "$layers" --experts "$experts" \
    --sequences "$sequences" --tokens "$tokens" > "$LOG/model.log" 2>&1 || { result[model]="FAILED"; tail -20 "$LOG/model.log"; exit 1; }
fi
result[model]="ok ($(elapsed) s): $(tail -1 "$LOG/model.log" 2>/dev/null)"

ours() {  # ours NAME [extra flags...]: our search, wall time including load
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  build-device/indexcache-calibrate --model "$model" --data "$model/data.jsonl" --keep-layers "$keep" --device cuda \
    --dtype "$DTYPE" --no-report --out "$LOG/$name.yaml" --json "$LOG/$name.json" "$@" > "$LOG/$name.log" 2>&1
  local rc=$?
  end=$(date +%s.%N)
  python3 -c "print($end - $start)" > "$LOG/$name.seconds"
  return $rc
}

if want tests; then
  OMP_NUM_THREADS=8 timeout 200 build-device/tests/indexcache_gpu_tests --durations yes > "$LOG/gpu_tests.log" 2>&1
  result[tests]="rc=$? ($(elapsed) s): $(grep -E "test cases|All tests passed" "$LOG/gpu_tests.log" | tail -1)"
  grep -E "fp32 eager|FAILED|with expansion" -A2 "$LOG/gpu_tests.log" | head -40 > "$LOG/tests.txt"
fi

if want ours; then
  sampled ours ours ours ${OURS_FLAGS:-}
  rc=$?
  result[ours]="rc=$rc ($(elapsed) s), $(cat "$LOG/ours.seconds") s"
  [ $rc -ne 0 ] && tail -5 "$LOG/ours.log"
fi

if want layer; then
  for attention in eager fused sparse; do
    timeout 60 build-device/bench/layer_bench "$model" --device cuda --dtype bf16 --layer 3 --attention "$attention" \
      --tokens 4096 > "$LOG/layer-$attention.txt" 2>&1
  done
  sampled layer timeout 240 build-device/bench/layer_bench "$model" --device cuda --dtype bf16 --layer 3 \
    --tokens 8192,32768,131072 > "$LOG/layer-long.txt" 2>&1
  result[layer]="rc=$? ($(elapsed) s)"
  { head -2 "$LOG/layer-long.txt"; for f in eager fused sparse long; do grep -E "^\| [0-9]" "$LOG/layer-$f.txt"; done; } > "$LOG/layer.txt"
fi

if want hf; then
  sampled hf timeout "${HF_TIMEOUT:-330}" python3 bench/hf_greedy.py --model "$model" --data "$model/data.jsonl" --keep-layers "$keep" \
    --dtype "$DTYPE" --json "$LOG/hf.json" > "$LOG/hf.log" 2>&1
  rc=$?
  result[hf]="rc=$rc ($(elapsed) s)"
  [ $rc -ne 0 ] && tail -15 "$LOG/hf.log"
  python3 - "$LOG" > "$LOG/compare.txt" 2>&1 <<'PY'
import json, sys
log = sys.argv[1]
ours = json.load(open(f"{log}/ours.json"))
seconds = float(open(f"{log}/ours.seconds").read())
print(f"indexcache:   {seconds:.1f} s wall including load, pattern {ours['pattern']}")
traj = [(s['removed'], round(s['loss'], 5)) for s in ours['search']['trajectory']]
print("indexcache trajectory:  ", traj)
try:
    hf = json.load(open(f"{log}/hf.json"))
except FileNotFoundError:
    sys.exit("transformers: no result")
print(f"transformers: search {hf['search_seconds']:.1f} s (+ load {hf['load_seconds']:.1f} s), {hf['full_forwards']} full "
      f"forwards, peak allocated {hf['peak_gpu_bytes'] / 2**30:.1f} GiB, pattern {hf['final_pattern']}")
print("transformers trajectory:", [(s['removed'], round(s['loss'], 5)) for s in hf['trajectory']])
print(f"same final pattern: {hf['final_pattern'] == ours['pattern']}; wall-time ratio: "
      f"{hf['search_seconds'] / seconds:.2f}x (transformers search only / ours including load), "
      f"{(hf['search_seconds'] + hf['load_seconds']) / seconds:.2f}x (both including load)")
print(f"baseline (all F) loss: transformers {hf['baseline_loss']:.7f}, indexcache {ours['baseline_loss']:.7f} "
      f"(rel {abs(hf['baseline_loss'] - ours['baseline_loss']) / hf['baseline_loss']:.2e})")
worst = 0.0
for a, b in zip(hf['trajectory'], ours['search']['trajectory']):
    theirs = {c['layer']: c['loss'] for c in a.get('candidates', [])}
    for c in b['candidates']:
        if c['layer'] in theirs:
            worst = max(worst, abs(c['loss'] - theirs[c['layer']]) / theirs[c['layer']])
print(f"largest relative difference between the two over candidates compared at the same step: {worst:.2e}")
for a, b in zip(hf['trajectory'], ours['search']['trajectory']):
    print(f"  step: removed {a['removed']} / {b['removed']}, loss {a['loss']:.6f} / {b['loss']:.6f} "
          f"(rel {abs(a['loss'] - b['loss']) / a['loss']:.2e})")
PY
fi

if want offload; then
  sampled offload ours offload --offload
  rc=$?
  result[offload]="rc=$rc ($(elapsed) s)"
  python3 - "$LOG" > "$LOG/offload.txt" 2>&1 <<'PY'
import json, sys
log = sys.argv[1]
a, b = json.load(open(f"{log}/ours.json")), json.load(open(f"{log}/offload.json"))
sa, sb = float(open(f"{log}/ours.seconds").read()), float(open(f"{log}/offload.seconds").read())
print(f"offload: {sb:.1f} s (in memory {sa:.1f} s), pattern {b['pattern']} (in memory {a['pattern']})")
worst = abs(a['baseline_loss'] - b['baseline_loss']) / a['baseline_loss']
for x, y in zip(a['search']['trajectory'], b['search']['trajectory']):
    for cx, cy in zip(x['candidates'], y['candidates']):
        assert cx['layer'] == cy['layer']
        worst = max(worst, abs(cx['loss'] - cy['loss']) / cx['loss'])
print(f"largest relative loss difference over the baseline and every candidate: {worst:.3e}")
PY
fi

if want faults; then
  {
    echo "--device cuda:7 on a one-GPU machine:"
    build-device/indexcache-calibrate --model "$model" --data "$model/data.jsonl" --keep-layers "$keep" \
      --device cuda:7 --out "$LOG/fault.yaml" --no-report 2>&1 | tail -2
    echo "exit ${PIPESTATUS[0]}; plan written: $([ -e "$LOG/fault.yaml" ] && echo yes || echo no)"
    echo "out of memory (another process holds all but ~6 GiB of the GPU):"
    python3 -c '
import torch, time, sys
free, _ = torch.cuda.mem_get_info()
block = torch.empty(free - (6 << 30), dtype=torch.uint8, device="cuda")
print("holding", block.numel() >> 30, "GiB", flush=True)
time.sleep(120)' > "$LOG/blocker.log" 2>&1 &
    blocker=$!
    sleep 20
    cat "$LOG/blocker.log"
    build-device/indexcache-calibrate --model "$model" --data "$model/data.jsonl" --keep-layers "$keep" \
      --device cuda --out "$LOG/oom.yaml" --no-report 2>&1 | tail -3
    echo "exit ${PIPESTATUS[0]}; plan written: $([ -e "$LOG/oom.yaml" ] && echo yes || echo no)"
    kill $blocker 2>/dev/null; wait $blocker 2>/dev/null
  } > "$LOG/faults.txt" 2>&1
  result[faults]="done ($(elapsed) s)"
fi
exit 0
