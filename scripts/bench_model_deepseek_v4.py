"""DeepSeek-V4 benchmark checkpoint: V4-Flash's per-layer dimensions, fewer layers and experts.

hidden 4096, 64 query heads of 512 sharing one key/value head, q_lora 1024, 64 rotary dims,
grouped output 8 x 1024, sliding window 128, CSA 4x with a 64 x 128 lightning indexer keeping 512
entries, HCA 128x, 4 hyper-connection streams, experts of 2048 (6 per token), vocabulary 129280.
Layers: two sliding layers, then CSA and HCA alternating (V4-Flash's own order is in its config;
this keeps both compressed kinds in any --layers); the first three route by token hash. Linear
weights of the attention and the experts are FP8 E4M3 with 128 x 128 block scales
(`<name>_scale_inv`, F32, as V4-Flash-Base); the compressors, the indexer's compressor and
weights_proj, routers, norms, embeddings and the head are BF16; hyper-connection parameters,
sinks and position biases F32. Names as transformers 5.17's save_pretrained writes them
(`model.layers.N.attn.wq_a.weight`, `model.layers.N.ffn.experts.E.w1.weight`, ...).

Used by scripts/make_bench_model.py --family deepseek_v4 (same options and output layout).
"""

import math

import torch

CSA = "compressed_sparse_attention"
HCA = "heavily_compressed_attention"
SLIDING = "sliding_attention"


def config_for(layers, experts):
    types = [SLIDING, SLIDING] + [CSA if i % 2 == 0 else HCA for i in range(max(layers - 2, 0))]
    return {
        "architectures": ["DeepseekV4ForCausalLM"],
        "model_type": "deepseek_v4",
        "vocab_size": 129280,
        "hidden_size": 4096,
        "moe_intermediate_size": 2048,
        "num_hidden_layers": layers,
        "num_attention_heads": 64,
        "num_key_value_heads": 1,
        "head_dim": 512,
        "q_lora_rank": 1024,
        "num_experts_per_tok": 6,
        "n_routed_experts": experts,
        "n_shared_experts": 1,
        "scoring_func": "sqrtsoftplus",
        "routed_scaling_factor": 1.5,
        "max_position_embeddings": 1048576,
        "rope_theta": 10000.0,
        "compress_rope_theta": 160000.0,
        "rope_parameters": {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 65536,
                            "beta_fast": 32.0, "beta_slow": 1.0},
        "partial_rotary_factor": 64 / 512,
        "layer_types": types[:layers],
        "compress_rates": {CSA: 4, HCA: 128},
        "mlp_layer_types": ["hash_moe" if i < 3 else "moe" for i in range(layers)],
        "hc_mult": 4,
        "hc_sinkhorn_iters": 20,
        "hc_eps": 1e-6,
        "swiglu_limit": 10.0,
        "sliding_window": 128,
        "o_groups": 8,
        "o_lora_rank": 1024,
        "index_n_heads": 64,
        "index_head_dim": 128,
        "index_topk": 512,
        "num_nextn_predict_layers": 0,
        "rms_norm_eps": 1e-6,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "tie_word_embeddings": False,
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                "weight_block_size": [128, 128]},
    }


def layer_tensors(cfg, layer, gen, device, quantize):
    h, heads, dim = cfg["hidden_size"], cfg["num_attention_heads"], cfg["head_dim"]
    streams = cfg["hc_mult"]
    out = {}

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device)

    def linear(name, rows, cols, fp8=True, gain=1.0):
        w = randn(rows, cols) * (gain / math.sqrt(cols))
        if fp8:
            out[name], out[name + "_scale_inv"] = quantize(w)
        else:
            out[name] = w.to(torch.bfloat16).cpu()

    def norm(name, size):
        out[name] = (1.0 + 0.1 * randn(size)).to(torch.bfloat16).cpu()

    def f32(name, value):
        out[name] = value.float().cpu()

    p = f"model.layers.{layer}."
    mixes = (2 + streams) * streams
    for part in ("attn", "ffn"):
        f32(p + f"hc_{part}_fn", randn(mixes, streams * h) / math.sqrt(streams * h))
        f32(p + f"hc_{part}_base", 0.3 * randn(mixes))
        f32(p + f"hc_{part}_scale", 1.0 + 0.2 * randn(3))
    norm(p + "attn_norm.weight", h)
    norm(p + "ffn_norm.weight", h)
    a = p + "attn."
    linear(a + "wq_a.weight", cfg["q_lora_rank"], h)
    norm(a + "q_norm.weight", cfg["q_lora_rank"])
    linear(a + "wq_b.weight", heads * dim, cfg["q_lora_rank"])
    linear(a + "wkv.weight", dim, h)
    norm(a + "norm.weight", dim)
    groups = cfg["o_groups"]
    linear(a + "wo_a.weight", groups * cfg["o_lora_rank"], heads * dim // groups)
    linear(a + "wo_b.weight", h, groups * cfg["o_lora_rank"])
    f32(a + "attn_sink", 0.5 * randn(heads))
    kind = cfg["layer_types"][layer]
    if kind != SLIDING:
        rate = cfg["compress_rates"][kind]
        channels = 2 * dim if kind == CSA else dim
        c = a + "compressor."
        linear(c + "wkv.weight", channels, h, fp8=False)
        linear(c + "wgate.weight", channels, h, fp8=False)
        f32(c + "ape", 0.5 * randn(rate, channels))
        norm(c + "norm.weight", dim)
    if kind == CSA:
        idim, iheads = cfg["index_head_dim"], cfg["index_n_heads"]
        i = a + "indexer."
        linear(i + "wq_b.weight", iheads * idim, cfg["q_lora_rank"], gain=1.5)
        linear(i + "weights_proj.weight", iheads, h, fp8=False)
        linear(i + "compressor.wkv.weight", 2 * idim, h, fp8=False, gain=1.5)
        linear(i + "compressor.wgate.weight", 2 * idim, h, fp8=False)
        f32(i + "compressor.ape", 0.5 * randn(4, 2 * idim))
        norm(i + "compressor.norm.weight", idim)
    f = p + "ffn."
    experts, inter = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
    linear(f + "gate.weight", experts, h, fp8=False)
    if cfg["mlp_layer_types"][layer] == "hash_moe":
        # Distinct experts per token: the first k of a random permutation of each row.
        table = torch.rand(cfg["vocab_size"], experts, generator=gen, device=device).argsort(dim=1)
        table = table[:, : cfg["num_experts_per_tok"]]
        out[f + "gate.tid2eid"] = table.long().cpu()
    else:
        f32(f + "gate.bias", 0.05 * randn(experts))
    for e in range(experts):
        linear(f + f"experts.{e}.w1.weight", inter, h)
        linear(f + f"experts.{e}.w3.weight", inter, h)
        linear(f + f"experts.{e}.w2.weight", h, inter)
    linear(f + "shared_experts.w1.weight", inter, h)
    linear(f + "shared_experts.w3.weight", inter, h)
    linear(f + "shared_experts.w2.weight", h, inter)
    return out


def head_tensors(cfg, gen, device):
    h, streams = cfg["hidden_size"], cfg["hc_mult"]
    return {
        "model.embed_tokens.weight": torch.randn(cfg["vocab_size"], h, generator=gen, device=device).to(torch.bfloat16).cpu(),
        "model.norm.weight": torch.ones(h, dtype=torch.bfloat16),
        "head.weight": (torch.randn(cfg["vocab_size"], h, generator=gen, device=device) / math.sqrt(h)).to(torch.bfloat16).cpu(),
        "model.hc_head.hc_fn": (torch.randn(streams, streams * h, generator=gen, device=device) / math.sqrt(streams * h)).float().cpu(),
        "model.hc_head.hc_base": torch.zeros(streams),
        "model.hc_head.hc_scale": torch.ones(1),
    }
