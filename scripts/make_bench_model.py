#!/usr/bin/env python3
"""A random-weight benchmark checkpoint with DeepSeek-V3.2's per-layer dimensions.

hidden 7168, 128 attention heads, q_lora 1536, kv_lora 512, rope 64 / nope 128 / v 128, indexer
64 heads x 128 with top-2048, vocabulary 129280 — but only --layers layers and --experts routed
experts, so it fits one H100. Linear weights inside the layers are FP8 E4M3 with 128x128 block
scales (`<name>_scale_inv`, partial edge blocks where a dimension is not a multiple of 128, e.g.
kv_a_proj_with_mqa's 576 rows), as in the released checkpoints; routers, norms, the indexer's
weights_proj, embeddings and lm_head are BF16. Weights are drawn with scale 1/sqrt(fan_in) so the
indexer's scores are spread out. Written one shard per layer.

Also writes random input_ids calibration data (--sequences x --tokens).

Run on the GPU machine (it generates on the GPU):
    python3 scripts/make_bench_model.py --out /tmp/bench-v32 --layers 12 --experts 16
"""

import argparse
import json
import math
import os
import time

import torch
from safetensors.torch import save_file


def config_for(layers, experts):
    return {
        "architectures": ["DeepseekV32ForCausalLM"],
        "model_type": "deepseek_v32",
        "vocab_size": 129280,
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "num_hidden_layers": layers,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "n_shared_experts": 1,
        "n_routed_experts": experts,
        "routed_scaling_factor": 2.5,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "qk_nope_head_dim": 128,
        "n_group": 8,
        "topk_group": 4,
        "num_experts_per_tok": 8,
        "norm_topk_prob": True,
        "hidden_act": "silu",
        "max_position_embeddings": 163840,
        "rms_norm_eps": 1e-6,
        "index_topk": 2048,
        "index_head_dim": 128,
        "index_n_heads": 64,
        "first_k_dense_replace": 3,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0,
                            "original_max_position_embeddings": 4096, "beta_fast": 32, "beta_slow": 1,
                            "mscale": 1.0, "mscale_all_dim": 1.0},
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                "weight_block_size": [128, 128]},
    }


def quantize(weight, block=128):
    """FP8 E4M3 with one scale per 128x128 block (partial edge blocks padded for the amax)."""
    rows, cols = weight.shape
    br, bc = -(-rows // block), -(-cols // block)
    padded = torch.zeros(br * block, bc * block, device=weight.device, dtype=torch.float32)
    padded[:rows, :cols] = weight
    blocks = padded.view(br, block, bc, block)
    scale = blocks.abs().amax(dim=(1, 3)).clamp_min(1e-12) / 448.0
    q = (blocks / scale[:, None, :, None]).to(torch.float8_e4m3fn).view(br * block, bc * block)[:rows, :cols]
    return q.contiguous().cpu(), scale.float().cpu()


def layer_tensors(cfg, layer, gen, device):
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    out = {}

    def linear(name, rows, cols, fp8=True, gain=1.0):
        w = torch.randn(rows, cols, generator=gen, device=device) * (gain / math.sqrt(cols))
        if fp8:
            out[name], out[name + "_scale_inv"] = quantize(w)
        else:
            out[name] = w.to(torch.bfloat16).cpu()

    def norm(name, size):
        out[name] = (1.0 + 0.1 * torch.randn(size, generator=gen, device=device)).to(torch.bfloat16).cpu()

    p = f"model.layers.{layer}."
    norm(p + "input_layernorm.weight", h)
    norm(p + "post_attention_layernorm.weight", h)
    a = p + "self_attn."
    linear(a + "q_a_proj.weight", cfg["q_lora_rank"], h)
    norm(a + "q_a_layernorm.weight", cfg["q_lora_rank"])
    linear(a + "q_b_proj.weight", heads * qk, cfg["q_lora_rank"])
    linear(a + "kv_a_proj_with_mqa.weight", cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"], h)
    norm(a + "kv_a_layernorm.weight", cfg["kv_lora_rank"])
    linear(a + "kv_b_proj.weight", heads * (cfg["qk_nope_head_dim"] + cfg["v_head_dim"]), cfg["kv_lora_rank"])
    linear(a + "o_proj.weight", h, heads * cfg["v_head_dim"])
    i = a + "indexer."
    linear(i + "wq_b.weight", cfg["index_n_heads"] * cfg["index_head_dim"], cfg["q_lora_rank"], gain=1.5)
    linear(i + "wk.weight", cfg["index_head_dim"], h, gain=1.5)
    norm(i + "k_norm.weight", cfg["index_head_dim"])
    out[i + "k_norm.bias"] = (0.1 * torch.randn(cfg["index_head_dim"], generator=gen, device=device)).to(torch.bfloat16).cpu()
    linear(i + "weights_proj.weight", cfg["index_n_heads"], h, fp8=False)
    if layer < cfg["first_k_dense_replace"]:
        inter = cfg["intermediate_size"]
        linear(p + "mlp.gate_proj.weight", inter, h)
        linear(p + "mlp.up_proj.weight", inter, h)
        linear(p + "mlp.down_proj.weight", h, inter)
    else:
        inter = cfg["moe_intermediate_size"]
        linear(p + "mlp.gate.weight", cfg["n_routed_experts"], h, fp8=False)
        out[p + "mlp.gate.e_score_correction_bias"] = (0.05 * torch.randn(cfg["n_routed_experts"], generator=gen, device=device)).float().cpu()
        for e in range(cfg["n_routed_experts"]):
            linear(p + f"mlp.experts.{e}.gate_proj.weight", inter, h)
            linear(p + f"mlp.experts.{e}.up_proj.weight", inter, h)
            linear(p + f"mlp.experts.{e}.down_proj.weight", h, inter)
        shared = inter * cfg["n_shared_experts"]
        linear(p + "mlp.shared_experts.gate_proj.weight", shared, h)
        linear(p + "mlp.shared_experts.up_proj.weight", shared, h)
        linear(p + "mlp.shared_experts.down_proj.weight", h, shared)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--family", choices=["deepseek_v32", "deepseek_v4"], default="deepseek_v32",
                        help="deepseek_v4: V4-Flash dimensions (scripts/bench_model_deepseek_v4.py)")
    args = parser.parse_args()
    family = None
    if args.family == "deepseek_v4":
        import bench_model_deepseek_v4 as family
    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    cfg = family.config_for(args.layers, args.experts) if family else config_for(args.layers, args.experts)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    weight_map = {}
    shards = args.layers + 1
    for layer in range(args.layers):
        name = f"model-{layer + 1:05d}-of-{shards:05d}.safetensors"
        tensors = family.layer_tensors(cfg, layer, gen, device, quantize) if family else layer_tensors(cfg, layer, gen, device)
        save_file(tensors, os.path.join(args.out, name), metadata={"format": "pt"})
        weight_map.update({k: name for k in tensors})
        print(f"layer {layer}: {sum(t.numel() * t.element_size() for t in tensors.values()) / 2**30:.2f} GiB", flush=True)
    name = f"model-{shards:05d}-of-{shards:05d}.safetensors"
    h = cfg["hidden_size"]
    tensors = {
        "model.embed_tokens.weight": torch.randn(cfg["vocab_size"], h, generator=gen, device=device).to(torch.bfloat16).cpu(),
        "model.norm.weight": torch.ones(h, dtype=torch.bfloat16),
        "lm_head.weight": (torch.randn(cfg["vocab_size"], h, generator=gen, device=device) / math.sqrt(h)).to(torch.bfloat16).cpu(),
    }
    if family:
        tensors = family.head_tensors(cfg, gen, device)
    save_file(tensors, os.path.join(args.out, name), metadata={"format": "pt"})
    weight_map.update({k: name for k in tensors})
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    data_gen = torch.Generator().manual_seed(args.seed + 1)
    with open(os.path.join(args.out, "data.jsonl"), "w") as f:
        for _ in range(args.sequences):
            ids = torch.randint(2, cfg["vocab_size"], (args.tokens,), generator=data_gen).tolist()
            f.write(json.dumps({"input_ids": ids}) + "\n")
    size = sum(os.path.getsize(os.path.join(args.out, x)) for x in os.listdir(args.out))
    print(f"wrote {args.out}: {size / 2**30:.1f} GiB in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
