#!/usr/bin/env bash
# On the GPU machine (through the device tool): trains the bundled tiny DSA model and makes its
# reference data with transformers, in one call. What comes back in $OUT (the device tool
# returns at most 8 files, so each result folder travels as one archive):
#   tiny-model.tar.gz     tiny-dsa/: config.json, model.safetensors, tokenizer.json, train_record.json
#   golden-tiny.tar.gz    golden-tiny/: data.jsonl, expected.json (scripts/make_golden.py --trained)
#   tokenizer-tiny.tar.gz tokenizer-tiny/: the tiny tokenizer over the tokenizer-golden corpus
#   device.txt train.log golden.log
# With --gpu-tests it also builds the project (in the background, while the model trains) and
# runs the whole test suite afterwards, in the time left; summary in gputest.log.
# Needs the training text: `python3 scripts/build_training_text.py` here, then carry
# ["build-data/train", ".carry"] (.carry from scripts/carry-pcre2.sh, for --gpu-tests).
# Unpack into models/tiny-dsa, tests/fixtures/golden/tiny_dsa, tests/fixtures/tokenizer/tiny_dsa.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/indexcache-out}
mkdir -p "$OUT"
start=$(date +%s)
gpu_tests=0
if [ "${1:-}" = "--gpu-tests" ]; then gpu_tests=1; shift; fi
work=$(mktemp -d)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers",
transformers.__version__, "tokenizers", tokenizers.__version__)' | tee -a "$OUT/device.txt"

if [ $gpu_tests = 1 ]; then
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  ( cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
      -DPCRE2_ROOT="$PWD/.carry/pcre2" -DCMAKE_CUDA_ARCHITECTURES=90a &&
    nice -n 15 cmake --build build-device -j12 ) > "$work/build.log" 2>&1 &
  build_pid=$!
fi

export PYTHONUNBUFFERED=1
python3 scripts/train_tiny_dsa.py --train-dir build-data/train --out "$work/tiny-dsa" "$@" > "$OUT/train.log" 2>&1 ||
  { tail -30 "$OUT/train.log"; exit 1; }
grep -v "^\[.*\] step" "$OUT/train.log" | tail -20
tar -czf "$OUT/tiny-model.tar.gz" -C "$work" tiny-dsa

python3 scripts/make_golden.py --trained "$work/tiny-dsa" --out "$work/golden-tiny" > "$OUT/golden.log" 2>&1 ||
  tail -20 "$OUT/golden.log"
tail -12 "$OUT/golden.log"
if [ -d "$work/golden-tiny" ]; then tar -czf "$OUT/golden-tiny.tar.gz" -C "$work" golden-tiny; fi

python3 scripts/make_tokenizer_golden.py --out "$work/tokenizer" --extra "tiny_dsa=$work/tiny-dsa/tokenizer.json" \
  >> "$OUT/golden.log" 2>&1 || tail -20 "$OUT/golden.log"
if [ -d "$work/tokenizer/tiny_dsa" ]; then
  mv "$work/tokenizer/tiny_dsa" "$work/tokenizer-tiny"
  tar -czf "$OUT/tokenizer-tiny.tar.gz" -C "$work" tokenizer-tiny
fi
echo "model and golden data: $(( $(date +%s) - start )) s"

if [ $gpu_tests = 1 ]; then
  wait $build_pid || { grep -E "error|Error" "$work/build.log" | head -30 | tee "$OUT/gputest.log"; exit 1; }
  left=$(( 570 - ($(date +%s) - start) ))
  echo "build done at $(( $(date +%s) - start )) s; ctest gets ${left} s" | tee "$OUT/gputest.log"
  OMP_NUM_THREADS=2 timeout "$left" ctest --test-dir build-device -j12 --timeout 300 --output-on-failure \
    > "$work/ctest.log" 2>&1 || true
  grep -E "tests passed|tests failed|Failed|\*\*\*|Not Run|Timeout" "$work/ctest.log" | tail -40 | tee -a "$OUT/gputest.log"
  tail -c 200000 "$work/ctest.log" >> "$OUT/gputest.log"
fi
echo "done in $(( $(date +%s) - start )) s"
