#!/usr/bin/env python3
"""Writes the fuzz seed corpora (tests/fuzz/corpus/<target>/) from the test fixtures.

Seeds are small on purpose: libFuzzer mutates them byte by byte, so a seed should be the
smallest input that still reaches the interesting paths (every dtype, FP8 scales, sharded
names, each tokenizer component, every plan field, every data kind). Run from the repository
root; rerunning rewrites the same files.
"""
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(directory, name), "wb") as out:
        out.write(data)


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---- safetensors ------------------------------------------------------------------------------

DTYPE_SIZES = {"F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1}


def safetensors_file(entries, metadata=None, pad=True):
    """entries: [(name, dtype, shape)]; data is a byte counter so every tensor differs."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape in entries:
        count = DTYPE_SIZES.get(dtype, 4)
        for dimension in shape:
            count *= dimension
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + count]}
        offset += count
    text = compact(header)
    if pad:
        text += " " * ((8 - len(text) % 8) % 8)
    data = bytes(i % 251 for i in range(offset))
    return struct.pack("<Q", len(text)) + text.encode() + data


def golden_names(model, count):
    """The first `count` tensor entries of a golden checkpoint's header, shrunk to tiny shapes."""
    with open(os.path.join(FIXTURES, "golden", model, "model.safetensors"), "rb") as stream:
        length = struct.unpack("<Q", stream.read(8))[0]
        header = json.loads(stream.read(length))
    header.pop("__metadata__", None)
    entries = []
    for name in sorted(header)[:count]:
        entry = header[name]
        shape = [min(dimension, 3) for dimension in entry["shape"]]
        entries.append((name, entry["dtype"], shape))
    return entries


def safetensors_seeds():
    write("safetensors", "golden_dsv32_names.safetensors", safetensors_file(golden_names("dsv32_default", 6)))
    write("safetensors", "golden_glm_names.safetensors", safetensors_file(golden_names("glm_dsa", 6)))
    write("safetensors", "all_dtypes.safetensors", safetensors_file(
        [("w32", "F32", [2, 3]), ("w16", "F16", [4]), ("wbf", "BF16", [2, 2]),
         ("q", "F8_E4M3", [2, 4]), ("q_scale_inv", "F32", [1, 1]), ("scalar", "F32", []), ("empty", "F32", [0, 5])],
        metadata={"format": "pt"}))
    write("safetensors", "unpadded.safetensors", safetensors_file([("a", "F32", [3]), ("b", "BF16", [5])], pad=False))
    write("safetensors", "no_tensors.safetensors", safetensors_file([], metadata={"total": "0"}))


# ---- config.json ------------------------------------------------------------------------------

def config_seeds():
    for model in ("dsv32_default", "dsv32_fp8", "dsv32_yarn", "glm_dsa"):
        with open(os.path.join(FIXTURES, "golden", model, "config.json")) as stream:
            write("model_config", model + ".json", compact(json.load(stream)))
    with open(os.path.join(FIXTURES, "golden", "glm_dsa", "config.json")) as stream:
        config = json.load(stream)
    config["mlp_layer_types"] = ["dense"] + ["sparse"] * (config["num_hidden_layers"] - 1)
    config["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                              "mscale": 1.0, "mscale_all_dim": 1.0, "beta_fast": 32, "beta_slow": 1}
    write("model_config", "glm_layer_types_yarn.json", compact(config))


# ---- tokenizer.json -----------------------------------------------------------------------------

def trimmed_tokenizer(path, merges_kept):
    """A tokenizer.json with every component of the original but only its first merges (and the
    vocabulary they need), so the seed stays a few KB."""
    with open(path, encoding="utf-8") as stream:
        tokenizer = json.load(stream)
    model = tokenizer["model"]
    vocab = model["vocab"]
    kept_merges = []
    needed = set()
    for merge in model["merges"]:
        left, right = merge if isinstance(merge, list) else merge.split(" ")
        if len(kept_merges) >= merges_kept:
            break
        kept_merges.append(merge)
        needed.update([left, right, left + right])
    singles = {token for token in vocab if len(token) == 1}
    special = {token["content"] for token in tokenizer.get("added_tokens", [])}
    keep = sorted(needed | singles | special, key=lambda token: vocab.get(token, 1 << 30))
    model["vocab"] = {token: index for index, token in enumerate(keep)}
    model["merges"] = kept_merges
    for token in tokenizer.get("added_tokens", []):
        token["id"] = model["vocab"].get(token["content"], token["id"])
    processor = tokenizer.get("post_processor") or {}
    for definition in (processor.get("special_tokens") or {}).values():
        definition["ids"] = [model["vocab"].get(token, 0) for token in definition.get("tokens", [])]
    return compact(tokenizer)


def tokenizer_seeds():
    for name in ("byte_level_pair_merges.json", "byte_level_string_merges.json", "char_level_byte_fallback.json"):
        with open(os.path.join(FIXTURES, "tokenizer", name), encoding="utf-8") as stream:
            write("tokenizer", name, compact(json.load(stream)))
    with open(os.path.join(FIXTURES, "data", "tiny-tokenizer.json"), encoding="utf-8") as stream:
        tiny = compact(json.load(stream))
    write("tokenizer", "tiny.json", tiny)
    # The same with a text to encode after a NUL byte (the harness's second input part).
    write("tokenizer", "tiny_with_text.json", tiny.encode() + b"\0<s>Hi \xff there 42 caf\xc3\xa9</s>")
    for style in ("deepseek_style", "gpt2_style", "llama3_style", "split_behaviours"):
        write("tokenizer", style + ".json", trimmed_tokenizer(os.path.join(FIXTURES, "tokenizer", style, "tokenizer.json"), 40))


# ---- layer plan, journal ------------------------------------------------------------------------

PLAN = """# IndexCache layer plan written by indexcache-calibrate.
format: "indexcache-layer-plan/1"
model:
  model_type: "deepseek_v32"
  architectures: ["DeepseekV32ForCausalLM"]
  num_hidden_layers: 6
  index_topk: 12
  path: "/models/dsv32"
  config_sha256: "{sha}"
  indexer_fingerprint:
    - ["model.layers.0.self_attn.indexer.wq_b.weight", "F32", [256, 48], "{sha}"]
    - ["model.layers.0.self_attn.indexer.wk.weight", "F8_E4M3", [32, 64], "{sha}"]
    - ["model.layers.0.self_attn.indexer.wk.weight_scale_inv", "F32", [1, 1], "{sha}"]
pattern: "FSSSSF"
full_layers: [0, 5]
kept: 2
total: 6
calibration:
  data: ["data.jsonl"]
  split: "calibration"
  seq_len: 0
  num_samples: 0
  seed: 0
  sequences: 4
  tokens: 117
  sources:
    - spec: "data.jsonl"
      path: "/data/data.jsonl"
      domain: "data"
      weight: 1.0
      sha256: "{sha}"
      documents: 4
      tokens: 117
      sequences: 4
search:
  method: "greedy"
  target_kept: 2
  keep_fraction: {keep_fraction}
  max_loss_increase: {max_loss}
  pp_stages: [0, 5]
  stop_rule: "{stop_rule}"
  dtype: "float32"
  indexer_precision: "model"
  baseline_loss: 6.812345678
  final_loss: 6.823456789
  relative_increase: 0.001631
  trajectory:
    - step: 1
      removed: 3
      loss: 6.81
      pattern: "FFFSFF"
    - step: 2
      removed: 2
      loss: 6.82
      pattern: "FFSSFF"
  stopped_at: {stopped_at}
  uniform:
    - name: "index_topk_freq=5"
      pattern: "FFSSSS"
      loss: 6.9
    - name: "evenly-spaced"
      pattern: "FSSFSS"
      loss: 6.85
  layer_forwards: 120
  naive_layer_forwards: 200
  tool_version: "0.1.0"
serving:
  vllm_hf_overrides: "{{\\"use_index_cache\\": true, \\"index_topk_pattern\\": \\"FSSSSF\\"}}"
  sglang_json_model_override_args: "{{\\"index_topk_pattern\\": \\"FSSSSF\\"}}"
# Fields below change from run to run; --check and comparisons ignore them.
volatile:
  created: "2026-01-01T00:00:00Z"
  wall_seconds: 1.5
  device: "cpu"
  layer_forwards_run: 120
"""

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def plan_seeds():
    write("layer_plan", "target_kept.yaml",
          PLAN.format(sha=SHA, keep_fraction="null", max_loss="null", stop_rule="target-kept", stopped_at="null"))
    stopped = "\n    removed: 5\n    loss: 7.5\n    pattern: \"FFSSSS\""
    write("layer_plan", "max_loss_increase.yaml",
          PLAN.format(sha=SHA, keep_fraction="0.33", max_loss="0.01", stop_rule="max-loss-increase",
                      stopped_at=stopped))


def journal_seeds():
    run = {"model": "m", "target_kept": 2, "data": ["a.jsonl"]}
    steps = [{"removed": 3, "loss": 6.81, "pattern": "FFFSFF", "candidates": [[1, 6.9], [2, 6.85], [3, 6.81]]},
             {"removed": 2, "loss": 6.82, "pattern": "FFSSFF", "candidates": [[1, 6.9], [2, 6.82]]}]
    write("journal", "two_steps.json",
          compact({"format": "indexcache-journal/1", "run": run, "baseline_loss": 6.8, "steps": steps}) + "\n")
    write("journal", "no_steps.json",
          compact({"format": "indexcache-journal/1", "run": run, "baseline_loss": 6.8, "steps": []}) + "\n")
    other = dict(run, target_kept=3)
    write("journal", "other_run.json",
          compact({"format": "indexcache-journal/1", "run": other, "baseline_loss": 6.8, "steps": []}) + "\n")


# ---- calibration data ---------------------------------------------------------------------------

SEPARATOR = "\n=====\n"


def data_seed(options, mix="", jsonl="", text=""):
    return bytes([options]) + (mix + SEPARATOR + jsonl + SEPARATOR + text).encode("utf-8")


def data_seeds():
    with open(os.path.join(FIXTURES, "golden", "dsv32_default", "data.jsonl")) as stream:
        lines = [json.loads(line) for line in stream if line.strip()][:2]
    ids = "".join(compact({"input_ids": [i % 200 for i in line["input_ids"][:12]]}) + "\n" for line in lines)
    texts = ('{"text": "def add(a, b):\\n    return a + b"}\n\n'
             '{"text": "The quick brown fox jumps over the lazy dog."}\n')
    prose = "Calibration text: caf\u00e9, \u4e2d\u6587, 12345.\nSecond line.\n"
    mix = ("seq_len: 4\nnum_samples: 3\nseed: 7\ndescription: seed mix\nsets:\n"
           "  - path: a.jsonl\n    weight: 2\n    name: ids\n"
           "  - path: b.txt\n    weight: 1\n"
           "  - set: tiny\n    weight: 0.5\n")
    write("calibration_data", "mix.bin", data_seed(0, mix=mix, jsonl=texts, text=prose))
    write("calibration_data", "mix_heldout.bin",
          data_seed(0, mix="sets:\n  - set: tiny\n    split: heldout\n  - path: b.txt\n", text=prose))
    write("calibration_data", "input_ids.bin", data_seed(1 | 128, jsonl=ids))
    write("calibration_data", "text_jsonl.bin", data_seed(1 | (3 << 2), jsonl=texts))
    write("calibration_data", "txt.bin", data_seed(2 | (4 << 2) | 64, text=prose))
    write("calibration_data", "jsonl_and_txt.bin", data_seed(3 | (5 << 2), jsonl=texts, text=prose))


if __name__ == "__main__":
    safetensors_seeds()
    config_seeds()
    tokenizer_seeds()
    plan_seeds()
    journal_seeds()
    data_seeds()
