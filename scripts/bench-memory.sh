#!/usr/bin/env bash
# Peak memory (max RSS) and time of evaluating one long sequence through a fixture model, with
# the eager and the sparse attention paths: shows that no [tokens, vocab] or [heads, T, T]
# tensor is materialised at once (those would be vocab x T x 4 and heads x T^2 x 4 bytes).
#   scripts/bench-memory.sh [build dir] [tokens] [fixture]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tokens=${2:-8192}
fixture=${3:-dsv32_default}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$tokens" > "$work/data.jsonl" <<'PY'
import json, random, sys
random.seed(1)
print(json.dumps({"input_ids": [random.randrange(2, 512) for _ in range(int(sys.argv[1]))]}))
PY
config=tests/fixtures/golden/$fixture/config.json
heads=$(python3 -c "import json;print(json.load(open('$config'))['num_attention_heads'])")
vocab=$(python3 -c "import json;print(json.load(open('$config'))['vocab_size'])")
echo "fixture $fixture, one sequence of $tokens tokens, $heads heads, vocab $vocab"
echo "a full [heads, T, T] float32 tensor would be $(( heads * tokens * tokens * 4 / 1048576 )) MiB; [T, vocab] float32 $(( tokens * vocab * 4 / 1048576 )) MiB"
pattern=$(python3 -c "import json;n=json.load(open('$config'))['num_hidden_layers'];print('F'+'S'*(n-1))")
for path in eager sparse; do
  /usr/bin/time -f "%e %M" -o "$work/time" "$build/indexcache-calibrate" --model "tests/fixtures/golden/$fixture" \
    --data "$work/data.jsonl" --eval "$pattern" --attention "$path" --quiet > /dev/null
  read -r seconds kib < "$work/time"
  echo "attention $path: $seconds s for the baseline + one pattern (2 forwards), max RSS $(( kib / 1024 )) MiB"
done
