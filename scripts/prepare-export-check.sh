#!/usr/bin/env bash
# Makes the cases that scripts/check_export_transformers.py loads in transformers (issue 20),
# with this machine's build of indexcache-calibrate (scripts/test.sh or demo.sh builds it):
#   scripts/prepare-export-check.sh [OUT_DIR]      (default .export-check, ignored by git)
# Each case: a golden checkpoint with the config.json a user starts from (original/), a plan
# searched on it (keep 3), the directory with `--export hf-config` applied (exported/), and the
# losses transformers must compute for both (expect.json: from the plan, and for the original
# config from `--eval` of the pattern transformers reads there). Then on the GPU machine:
#   python3 scripts/check_export_transformers.py .export-check
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.export-check}
tool=${TOOL:-build/indexcache-calibrate}
[ -x "$tool" ] || { echo "error: $tool is missing: run scripts/test.sh (or scripts/demo.sh) first" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out"

# make_case NAME GOLDEN EXPECT CONFIG_EDIT (a Python statement on dict `c`)
make_case() {
  local name=$1 golden=$2 expect=$3 edit=$4 dir=$out/$1
  mkdir -p "$dir"
  cp -r "tests/fixtures/golden/$golden" "$dir/original"
  mv "$dir/original/data.jsonl" "$dir/data.jsonl"
  rm -f "$dir/original/expected.json"
  python3 - "$dir/original/config.json" "$edit" <<'PY'
import json, sys
path, edit = sys.argv[1], sys.argv[2]
c = json.load(open(path))
exec(edit)
json.dump(c, open(path, "w"), indent=2)
PY
  "$tool" --model "$dir/original" --data "$dir/data.jsonl" --keep-layers 3 --out "$dir/plan.yaml" --no-report --quiet >/dev/null
  cp -r "$dir/original" "$dir/exported"
  "$tool" --plan "$dir/plan.yaml" --export hf-config --model "$dir/original" --export-out "$dir/exported/config.json" \
    2> "$dir/export-notes.txt"
  # The pattern transformers reads from the original config (its own precedence), and its loss.
  local original_pattern
  original_pattern=$(python3 - "$dir/original/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
n = c["num_hidden_layers"]
if c["model_type"] != "glm_moe_dsa":
    print("F" * n)
elif c.get("indexer_types") is not None:
    print("".join("F" if t == "full" else "S" for t in c["indexer_types"]))
elif c.get("index_topk_pattern") is not None:
    print(c["index_topk_pattern"])
else:
    freq, offset = max(c.get("index_topk_freq", 1), 1), c.get("index_skip_topk_offset", 2)
    print("".join("F" if max(i - offset + 1, 0) % freq == 0 else "S" for i in range(n)))
PY
)
  "$tool" --model "$dir/original" --data "$dir/data.jsonl" --eval "$original_pattern" --json "$dir/original-eval.json" \
    --quiet >/dev/null
  python3 - "$dir" "$expect" "$original_pattern" <<'PY'
import json, sys, yaml
folder, expect, original_pattern = sys.argv[1:]
search = yaml.safe_load(open(f"{folder}/plan.yaml"))["search"]
evaluation = json.load(open(f"{folder}/original-eval.json"))
losses = {e["pattern"]: e["loss"] for e in evaluation["evaluations"]}
json.dump({"exported": search["final_loss"] if expect == "plan" else search["baseline_loss"],
           "exported_why": expect, "original": losses[original_pattern],
           "original_pattern": original_pattern}, open(f"{folder}/expect.json", "w"), indent=1)
PY
  echo "$name: plan $(grep '^pattern:' "$dir/plan.yaml" | cut -d'"' -f2), transformers must give the $expect loss; notes: $(tr '\n' ' ' < "$dir/export-notes.txt")"
}

# glm_moe_dsa as transformers 5.x saves it (indexer_types all full): the case users hit.
make_case glm-saved glm_dsa plan 'c["indexer_types"] = ["full"] * c["num_hidden_layers"]'
# A GLM-5.2-like config: its own schedule (freq 2, offset 2) and the indexer_types it implies.
make_case glm-schedule glm_dsa plan 'c.update(index_topk_freq=2, index_skip_topk_offset=2, indexer_types=["full", "full", "shared", "full", "shared", "full"])'
# deepseek_v32: transformers reads no pattern, so the exported directory gives the all-F loss.
make_case dsv32 dsv32_default baseline 'pass'
