#!/usr/bin/env python3
"""The baseline for indexcache's search: the paper's Algorithm 1 run the straightforward way a
user would today, with Hugging Face transformers.

Loads the checkpoint into DeepseekV32ForCausalLM / GlmMoeDsaForCausalLM (bf16 or float32, eager attention,
FP8 block weights dequantised to bf16 — transformers' own FP8 loader refuses the partial edge
blocks that released checkpoints have), patches the indexer so that S layers reuse the top-k of
the nearest F layer before them, and runs the greedy search with a full forward per candidate.
Prints the trajectory and the wall time; --json writes them.

    python3 bench/hf_greedy.py --model /tmp/bench-v32 --data /tmp/bench-v32/data.jsonl \
        --keep-layers 9 --json hf.json
"""

import argparse
import json
import os
import time

import torch
from safetensors import safe_open
from transformers import AutoConfig
from transformers.models.deepseek_v32 import modeling_deepseek_v32 as dsv32
from transformers.models.glm_moe_dsa import modeling_glm_moe_dsa as glm

STATE = {"pattern": None, "last_full": None}


def patch_indexer(cls):
    original = cls.forward

    def forward(self, hidden_states, q_resid, position_embeddings, attention_mask, position_ids,
                past_key_values=None):
        if STATE["pattern"] is not None and STATE["pattern"][self.layer_idx] == "S":
            return STATE["last_full"]
        indices = original(self, hidden_states, q_resid, position_embeddings, attention_mask, position_ids,
                           past_key_values)
        STATE["last_full"] = indices
        return indices

    cls.forward = forward


patch_indexer(dsv32.DeepseekV32Indexer)
patch_indexer(glm.GlmMoeDsaIndexer)


def load_tensors(model_dir):
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for name in files:
        with safe_open(os.path.join(model_dir, name), framework="pt", device="cuda") as f:
            keys = set(f.keys())
            for key in sorted(keys):
                if key.endswith("_scale_inv"):
                    continue
                t = f.get_tensor(key)
                if t.dtype == torch.float8_e4m3fn:
                    scale = f.get_tensor(key + "_scale_inv")
                    rows, cols = t.shape
                    s = scale.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
                    t = t.float() * s
                yield key, t


def build_model(model_dir, dtype):
    config = AutoConfig.from_pretrained(model_dir)
    config._attn_implementation = "eager"
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    cls = dsv32.DeepseekV32ForCausalLM if config.model_type == "deepseek_v32" else glm.GlmMoeDsaForCausalLM
    torch.set_default_dtype(dtype)
    with torch.device("cuda"):
        model = cls(config)
    torch.set_default_dtype(torch.float32)
    # As from_pretrained does: the indexer's weights_proj stays in float32 (_keep_in_fp32_modules).
    for module in model.modules():
        if hasattr(module, "weights_proj"):
            module.weights_proj.float()
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for key, value in load_tensors(model_dir):
            if ".mlp.experts." in key:  # released per-expert names -> transformers' 3-D experts
                prefix, rest = key.split(".mlp.experts.")
                expert, projection = rest.split(".")[0], rest.split(".")[1]
                e = int(expert)
                if projection == "down_proj":
                    params[prefix + ".mlp.experts.down_proj"][e].copy_(value)
                else:
                    target = params[prefix + ".mlp.experts.gate_up_proj"][e]
                    half = target.shape[0] // 2
                    (target[:half] if projection == "gate_proj" else target[half:]).copy_(value)
            elif key in params:
                params[key].copy_(value)
            elif key in buffers:
                buffers[key].copy_(value)
    return model.eval(), config


def evaluate(model, sequences, pattern):
    STATE["pattern"], STATE["last_full"] = pattern, None
    total, count = 0.0, 0
    with torch.no_grad():
        for ids in sequences:
            x = torch.tensor([ids], device="cuda")
            out = model(input_ids=x, labels=x, use_cache=False)
            total += out.loss.double().item() * (len(ids) - 1)
            count += len(ids) - 1
    return total / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--keep-layers", type=int, required=True)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16",
                        help="compute dtype; fp32 runs without TF32, for an exact comparison with indexcache --dtype fp32")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    load_start = time.time()
    model, config = build_model(args.model, torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    with open(args.data) as f:
        sequences = [json.loads(line)["input_ids"] for line in f if line.strip()]
    torch.cuda.synchronize()
    load_seconds = time.time() - load_start
    layers = config.num_hidden_layers
    start = time.time()
    pattern = ["F"] * layers
    baseline = evaluate(model, sequences, "".join(pattern))
    trajectory, forwards = [], 1
    while pattern.count("F") > args.keep_layers:
        best, candidates = None, []
        for layer in range(1, layers):
            if pattern[layer] != "F":
                continue
            candidate = pattern.copy()
            candidate[layer] = "S"
            loss = evaluate(model, sequences, "".join(candidate))
            forwards += 1
            candidates.append({"layer": layer, "loss": loss})
            if best is None or loss < best[0]:
                best = (loss, layer)
        pattern[best[1]] = "S"
        trajectory.append({"removed": best[1], "loss": best[0], "pattern": "".join(pattern), "candidates": candidates})
        print(f"step {len(trajectory)}: layer {best[1]} -> S, loss {best[0]:.6f}, "
              f"{time.time() - start:.1f} s", flush=True)
    seconds = time.time() - start
    result = {"baseline_loss": baseline, "trajectory": trajectory, "final_pattern": "".join(pattern),
              "search_seconds": seconds, "load_seconds": load_seconds, "full_forwards": forwards,
              "peak_gpu_bytes": torch.cuda.max_memory_allocated(),
              "sequences": len(sequences), "tokens": sum(len(s) for s in sequences), "dtype": args.dtype}
    print(json.dumps({k: v for k, v in result.items() if k != "trajectory"}), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
