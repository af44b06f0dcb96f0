#!/usr/bin/env python3
"""Trains the bundled tiny DeepSeek-Sparse-Attention model (models/tiny-dsa), the embedded default
of indexcache, and saves it in the layout of the released DeepSeek-V3.2 FP8 checkpoints.

What it does, in order:
  1. trains a byte-level BPE tokenizer (Hugging Face `tokenizers`, vocab 4096, BOS added by a
     TemplateProcessing post-processor) on the training text (build-data/train/*.jsonl, built by
     scripts/build_training_text.py from other files than calibration_data/);
  2. tokenizes the training text (BOS before each document, documents concatenated per domain);
  3. trains a 12-layer deepseek_v32 model (MLA with q/kv LoRA, lightning indexer, MoE with a
     sigmoid router + e_score_correction_bias, first layer dense) with the DSA recipe:
       a. dense: full causal attention, language-modelling loss (the indexer is not used);
       b. indexer warm-up: main model frozen; the indexer learns the main attention distribution
          (summed over heads, L1-normalised) by KL divergence, over all causal positions;
       c. sparse: attention sees only the indexer's top-k; the main model learns from the LM loss
          and the indexer keeps learning by KL on the selected set, its inputs detached from the
          main model's graph;
     each phase runs for a fixed wall-time budget: the step count is fixed after timing the first
     steps, so the schedule (warm-up, cosine decay) is known in advance;
  4. writes config.json, model.safetensors (linear weights of the decoder layers in FP8 E4M3 with
     128x128 block scales `<name>_scale_inv`; routers, norms, indexer weights_proj, embeddings
     and lm_head in BF16; e_score_correction_bias in F32; one tensor per expert, as released),
     tokenizer.json and train_record.json (steps, tokens, losses, wall times) to --out.

The modules here are our own trainable PyTorch code with the parameter names and semantics of
transformers' modeling_deepseek_v32 (whose indexer runs under no_grad): interleaved RoPE in MLA,
half-split RoPE in the indexer, index score = sum_h w_h relu(q_h . k) * dim^-0.5 * heads^-0.5,
LayerNorm k_norm; group-limited sigmoid routing with the bias steering only the choice.
scripts/verify_tiny_dsa.py checks the written checkpoint against transformers.

Run on the GPU machine (one device call; about 5 minutes of training on an H100):
    PYTHONUNBUFFERED=1 python3 scripts/train_tiny_dsa.py --train-dir .carry/train --out models/tiny-dsa
Smoke test on a CPU (torch >= 1.13; without `tokenizers` bytes stand in for the BPE ids):
    python3 scripts/train_tiny_dsa.py --smoke --train-dir build-data/train --out /tmp/tiny-smoke
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# Model configuration (config.json). Every weight dimension is <= 128 or a multiple of 128, so
# the 128x128 FP8 block grid has no partial blocks bigger than one block (transformers'
# dequantizer derives the block size from the scale grid and needs that).
# ----------------------------------------------------------------------------------------------

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"

MODEL_CONFIG = {
    "architectures": ["DeepseekV32ForCausalLM"],
    "model_type": "deepseek_v32",
    "vocab_size": 4096,
    "hidden_size": 128,
    "intermediate_size": 384,
    "moe_intermediate_size": 64,
    "num_hidden_layers": 12,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "n_shared_experts": 1,
    "n_routed_experts": 8,
    "routed_scaling_factor": 1.0,
    "kv_lora_rank": 64,
    "q_lora_rank": 96,
    "qk_rope_head_dim": 32,
    "qk_nope_head_dim": 32,
    "v_head_dim": 32,
    "n_group": 4,
    "topk_group": 2,
    "num_experts_per_tok": 2,
    "norm_topk_prob": True,
    "hidden_act": "silu",
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-6,
    "index_topk": 128,
    "index_head_dim": 64,
    "index_n_heads": 4,
    "first_k_dense_replace": 1,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 2,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "quantization_config": {
        "quant_method": "fp8",
        "fmt": "e4m3",
        "activation_scheme": "dynamic",
        "weight_block_size": [128, 128],
    },
}

DOMAINS = ["code", "docs", "legal", "math"]


class Cfg:
    def __init__(self, d):
        self.__dict__.update(d)
        self.qk_head_dim = self.qk_nope_head_dim + self.qk_rope_head_dim


# ----------------------------------------------------------------------------------------------
# Modules (names as in transformers' DeepseekV32ForCausalLM state dict)
# ----------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rope_angles(length, dim, theta, device):
    """cos/sin [length, dim/2] of the default RoPE for `dim` rotary dimensions."""
    inv_freq = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)
    angles = torch.arange(length, dtype=torch.float32, device=device)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def rotate_pairs(x, cos, sin):
    """MLA RoPE: dimensions (2i, 2i+1) form the pair turned by frequency i. The output lists the
    even results then the odd ones, as transformers does; q and k get the same order, so their
    dot products are those of the plain interleaved rotation."""
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.cat([even * cos - odd * sin, odd * cos + even * sin], dim=-1)


def rotate_halves(x, cos, sin):
    """Indexer RoPE (deepseek_v32): dimension i pairs with i + dim/2."""
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


class Indexer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.dim, self.rope_dim = c.index_n_heads, c.index_head_dim, c.qk_rope_head_dim
        self.wq_b = nn.Linear(c.q_lora_rank, self.heads * self.dim, bias=False)
        self.wk = nn.Linear(c.hidden_size, self.dim, bias=False)
        self.k_norm = nn.LayerNorm(self.dim, eps=1e-6)
        self.weights_proj = nn.Linear(c.hidden_size, self.heads, bias=False)

    def scores(self, x, q_resid, cos, sin, causal):
        """Index scores [B, T, T] in float32, -inf above the diagonal."""
        b, t, _ = x.shape
        q = self.wq_b(q_resid).view(b, t, self.heads, self.dim)
        q = torch.cat([rotate_halves(q[..., :self.rope_dim], cos[:, None], sin[:, None]),
                       q[..., self.rope_dim:]], dim=-1)
        k = self.k_norm(self.wk(x).float())
        k = torch.cat([rotate_halves(k[..., :self.rope_dim], cos, sin), k[..., self.rope_dim:]], dim=-1)
        # [B, T*H, D] x [B, D, T] -> [B, T, H, T]
        per_head = torch.matmul(q.reshape(b, t * self.heads, self.dim), k.transpose(1, 2).to(q.dtype))
        per_head = F.relu(per_head.view(b, t, self.heads, t).float() * self.dim ** -0.5)
        w = self.weights_proj(x).float() * self.heads ** -0.5  # [B, T, H]
        index = torch.matmul(w.unsqueeze(2), per_head).squeeze(2)  # [B, T, T]
        return index.masked_fill(~causal, float("-inf"))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.heads = c.num_attention_heads
        self.q_a_proj = nn.Linear(c.hidden_size, c.q_lora_rank, bias=False)
        self.q_a_layernorm = RMSNorm(c.q_lora_rank, 1e-6)
        self.q_b_proj = nn.Linear(c.q_lora_rank, self.heads * c.qk_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(c.hidden_size, c.kv_lora_rank + c.qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = RMSNorm(c.kv_lora_rank, 1e-6)
        self.kv_b_proj = nn.Linear(c.kv_lora_rank, self.heads * (c.qk_nope_head_dim + c.v_head_dim), bias=False)
        self.o_proj = nn.Linear(self.heads * c.v_head_dim, c.hidden_size, bias=False)
        self.indexer = Indexer(c)
        self.scale = c.qk_head_dim ** -0.5

    def forward(self, x, cos, sin, causal, mode, index_topk):
        """Returns (output, indexer KL-loss term or None, selected-mask or None)."""
        c, b, t = self.c, x.shape[0], x.shape[1]
        q_resid = self.q_a_layernorm(self.q_a_proj(x))
        q = self.q_b_proj(q_resid).view(b, t, self.heads, c.qk_head_dim)
        q = torch.cat([q[..., :c.qk_nope_head_dim],
                       rotate_pairs(q[..., c.qk_nope_head_dim:], cos[:, None], sin[:, None])], dim=-1)
        compressed = self.kv_a_proj_with_mqa(x)
        latent = self.kv_a_layernorm(compressed[..., :c.kv_lora_rank])
        k_rot = rotate_pairs(compressed[..., c.kv_lora_rank:], cos, sin)
        kv = self.kv_b_proj(latent).view(b, t, self.heads, c.qk_nope_head_dim + c.v_head_dim)
        k = torch.cat([kv[..., :c.qk_nope_head_dim],
                       k_rot[:, :, None, :].to(kv.dtype).expand(b, t, self.heads, c.qk_rope_head_dim)], dim=-1)
        v = kv[..., c.qk_nope_head_dim:]
        # One dtype for q, k, v (RoPE against float32 tables promotes q and k under autocast).
        q, k, v = q.transpose(1, 2).to(v.dtype), k.transpose(1, 2).to(v.dtype), v.transpose(1, 2)

        if mode == "dense" and hasattr(F, "scaled_dot_product_attention"):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
            return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), None, None

        index_loss, allowed = None, causal[None]  # [1, T, T]
        if mode in ("warmup", "sparse"):
            # The indexer sees the main model's activations but sends no gradient into them.
            with torch.enable_grad():
                index = self.indexer.scores(x.detach(), q_resid.detach(), cos, sin, causal)
            if mode == "sparse":
                top = index.detach().topk(min(index_topk, t), dim=-1).indices
                selected = torch.zeros(b, t, t, dtype=torch.bool, device=x.device).scatter_(-1, top, True)
                allowed = selected & causal[None]
        logits = torch.matmul(q, k.transpose(-1, -2)).float() * self.scale
        logits = logits.masked_fill(~allowed[:, None], float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        out = torch.matmul(probs.to(v.dtype), v)
        if mode in ("warmup", "sparse"):
            # Target: the attention distribution summed over heads, L1-normalised (rows of every
            # head sum to one, so the sum over heads / heads does that). KL(target || softmax of
            # the index scores over the same positions), averaged over query rows.
            target = probs.detach().sum(1) / self.heads  # [B, T, T]
            with torch.enable_grad():
                log_q = torch.log_softmax(index.masked_fill(~allowed, float("-inf")), dim=-1)
                log_q = log_q.masked_fill(~allowed, 0.0)
                log_p = torch.log(target.clamp_min(1e-30)).masked_fill(target <= 0, 0.0)
                index_loss = (target * (log_p - log_q)).sum(-1).mean()
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), index_loss, allowed


class MLP(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Router(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.weight = nn.Parameter(torch.zeros(c.n_routed_experts, c.hidden_size))
        self.register_buffer("e_score_correction_bias", torch.zeros(c.n_routed_experts))

    def forward(self, x):
        """x [N, H] -> (expert indices [N, k], weights [N, k] float32)."""
        c = self.c
        scores = torch.sigmoid(F.linear(x.float(), self.weight.float()))
        choice = scores.detach() + self.e_score_correction_bias
        per_group = c.n_routed_experts // c.n_group
        group_scores = choice.view(-1, c.n_group, per_group).topk(2, dim=-1).values.sum(-1)
        groups = group_scores.topk(c.topk_group, dim=-1).indices
        group_mask = torch.zeros_like(group_scores).scatter_(1, groups, 1.0).bool()
        expert_mask = group_mask[:, :, None].expand(-1, c.n_group, per_group).reshape(-1, c.n_routed_experts)
        chosen = choice.masked_fill(~expert_mask, float("-inf")).topk(c.num_experts_per_tok, dim=-1).indices
        weights = scores.gather(1, chosen)
        if c.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return chosen, weights * c.routed_scaling_factor


class Experts(nn.Module):
    def __init__(self, c):
        super().__init__()
        e, h, i = c.n_routed_experts, c.hidden_size, c.moe_intermediate_size
        self.gate_up_proj = nn.Parameter(torch.empty(e, 2 * i, h))
        self.down_proj = nn.Parameter(torch.empty(e, h, i))


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.gate = Router(c)
        self.experts = Experts(c)
        self.shared_experts = MLP(c.hidden_size, c.moe_intermediate_size * c.n_shared_experts)
        self.last_load = None

    def forward(self, x):
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        chosen, weights = self.gate(flat)
        self.last_load = torch.bincount(chosen.reshape(-1), minlength=self.c.n_routed_experts)
        # Every expert on every token, combined with zero weight where not chosen: the same
        # result as the sparse dispatch, in a handful of large matmuls (the model is small).
        combine = torch.zeros(flat.shape[0], self.c.n_routed_experts, device=x.device,
                              dtype=weights.dtype).scatter(1, chosen, weights)
        gate_up = torch.matmul(flat.unsqueeze(0), self.experts.gate_up_proj.transpose(1, 2).to(flat.dtype))
        g, u = gate_up.chunk(2, dim=-1)
        out = torch.matmul(F.silu(g) * u, self.experts.down_proj.transpose(1, 2).to(flat.dtype))  # [E, N, H]
        routed = torch.einsum("ne,enh->nh", combine.to(out.dtype), out)
        return routed.view(shape) + self.shared_experts(x)


class DecoderLayer(nn.Module):
    def __init__(self, c, layer):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c.hidden_size, c.intermediate_size) if layer < c.first_k_dense_replace else MoE(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, h, cos, sin, causal, mode, index_topk):
        a, index_loss, _ = self.self_attn(self.input_layernorm(h), cos, sin, causal, mode, index_topk)
        h = h + a
        return h + self.mlp(self.post_attention_layernorm(h)), index_loss


class Body(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(c, i) for i in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class TinyDsa(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Body(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def forward(self, ids, targets, mode):
        """Mean next-token NLL of `targets` and the mean indexer KL over layers (or None)."""
        c, t = self.c, ids.shape[1]
        cos, sin = rope_angles(t, c.qk_rope_head_dim, c.rope_parameters["rope_theta"], ids.device)
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        h = self.model.embed_tokens(ids)
        index_losses = []
        for layer in self.model.layers:
            h, index_loss = layer(h, cos, sin, causal, mode, c.index_topk)
            if index_loss is not None:
                index_losses.append(index_loss)
        logits = self.lm_head(self.model.norm(h))
        lm_loss = F.cross_entropy(logits.float().reshape(-1, c.vocab_size), targets.reshape(-1))
        with torch.enable_grad():  # the warm-up runs the main model under no_grad
            index_loss = torch.stack(index_losses).mean() if index_losses else None
        return lm_loss, index_loss

    def indexer_parameters(self):
        return [p for n, p in self.named_parameters() if ".indexer." in n]

    def main_parameters(self):
        return [p for n, p in self.named_parameters() if ".indexer." not in n]

    def moe_layers(self):
        return [layer.mlp for layer in self.model.layers if isinstance(layer.mlp, MoE)]


def init_weights(model, c, seed):
    gen = torch.Generator().manual_seed(seed)
    std = c.initializer_range
    out_std = std / math.sqrt(2 * c.num_hidden_layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("bias"):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            elif name.endswith("mlp.gate.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif ".indexer." in name and not name.endswith("weights_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))
            elif name.endswith("weights_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight") or name.endswith("down_proj"):
                p.copy_(torch.randn(p.shape, generator=gen) * out_std)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


# ----------------------------------------------------------------------------------------------
# Checkpoint writing: released layout, FP8 E4M3 blocks, our own safetensors writer
# ----------------------------------------------------------------------------------------------

def e4m3_table():
    """The 127 non-negative finite E4M3FN values by code (0x00..0x7E), ascending."""
    values = []
    for code in range(0x7F):
        exponent, mantissa = code >> 3, code & 7
        if exponent == 0:
            values.append(mantissa / 8.0 * 2.0 ** -6)
        else:
            values.append((1.0 + mantissa / 8.0) * 2.0 ** (exponent - 7))
    return np.array(values, dtype=np.float64)


E4M3_VALUES = e4m3_table()


def encode_e4m3(x):
    """float32 array (|x| <= 448) -> uint8 E4M3FN codes, round to nearest, ties to even code."""
    x = np.asarray(x, dtype=np.float64)
    sign = (np.signbit(x)).astype(np.uint8) << 7
    a = np.minimum(np.abs(x), 448.0)
    upper = np.clip(np.searchsorted(E4M3_VALUES, a, side="left"), 0, len(E4M3_VALUES) - 1)
    lower = np.clip(upper - 1, 0, len(E4M3_VALUES) - 1)
    d_low = a - E4M3_VALUES[lower]
    d_up = E4M3_VALUES[upper] - a
    pick_up = (d_up < d_low) | ((d_up == d_low) & (upper % 2 == 0))
    code = np.where(pick_up, upper, lower).astype(np.uint8)
    code = np.where(a == 0, 0, code).astype(np.uint8)
    return sign | code


def decode_e4m3(codes):
    codes = np.asarray(codes, dtype=np.uint8)
    value = E4M3_VALUES[np.minimum(codes & 0x7F, 0x7E)]
    return np.where(codes & 0x80, -value, value).astype(np.float32)


def quantize_blocks(weight, block=(128, 128)):
    """weight [R, C] float32 -> (E4M3 codes uint8 [R, C], scale_inv float32 [ceil R/128, ceil C/128],
    dequantised float32 [R, C]): each block's scale is its max |value| / 448."""
    w = weight.detach().float().cpu().numpy()
    rows, cols = w.shape
    br, bc = block
    sr, sc = -(-rows // br), -(-cols // bc)
    codes = np.zeros((rows, cols), dtype=np.uint8)
    scales = np.zeros((sr, sc), dtype=np.float32)
    deq = np.zeros((rows, cols), dtype=np.float32)
    for i in range(sr):
        for j in range(sc):
            blk = w[i * br:(i + 1) * br, j * bc:(j + 1) * bc]
            s = np.float32(max(float(np.abs(blk).max()), 1e-12) / 448.0)
            q = encode_e4m3(blk / s)
            codes[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = q
            scales[i, j] = s
            deq[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = decode_e4m3(q) * s
    return codes, scales, deq


def released_tensors(model):
    """State dict in the released naming: one tensor per expert."""
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().float().cpu()
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix, inter = name[: -len("gate_up_proj")], t.shape[1] // 2
            for e in range(t.shape[0]):
                out[f"{prefix}{e}.gate_proj.weight"] = t[e, :inter].clone()
                out[f"{prefix}{e}.up_proj.weight"] = t[e, inter:].clone()
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            for e in range(t.shape[0]):
                out[f"{prefix}{e}.down_proj.weight"] = t[e].clone()
        else:
            out[name] = t.clone()
    return out


def is_fp8_weight(name, tensor):
    """The decoder layers' linear projections (attention, indexer wq_b/wk, dense MLP, experts,
    shared experts); not routers, norms, the indexer's weights_proj, embeddings or lm_head."""
    return (name.startswith("model.layers.") and name.endswith(".weight") and tensor.dim() == 2
            and "norm" not in name and not name.endswith("mlp.gate.weight") and "weights_proj" not in name)


def to_bf16_bits(t):
    """float32 tensor -> (uint16 numpy bits of the bfloat16 rounding, float32 of that value)."""
    b = t.float().to(torch.bfloat16)
    bits = b.view(torch.int16).numpy().view(np.uint16)
    return bits, b.float()


def write_safetensors(path, tensors):
    """tensors: name -> (dtype string, shape list, bytes). Names sorted, data 8-byte aligned."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def save_checkpoint(model, c, out_dir, storage="fp8"):
    """Writes config.json and model.safetensors; returns the float32 values the checkpoint holds
    (after FP8/BF16 rounding), in released naming, and a quantization summary."""
    os.makedirs(out_dir, exist_ok=True)
    released = released_tensors(model)
    tensors, stored = {}, {}
    fp8_count, fp8_error = 0, 0.0
    block = tuple(MODEL_CONFIG["quantization_config"]["weight_block_size"])
    for name, t in released.items():
        if name.endswith("e_score_correction_bias"):
            tensors[name] = ("F32", t.shape, t.numpy().astype("<f4").tobytes())
            stored[name] = t
        elif storage == "fp8" and is_fp8_weight(name, t):
            codes, scales, deq = quantize_blocks(t, block)
            tensors[name] = ("F8_E4M3", t.shape, codes.tobytes())
            tensors[name + "_scale_inv"] = ("F32", scales.shape, scales.astype("<f4").tobytes())
            stored[name] = torch.from_numpy(deq)
            fp8_count += 1
            fp8_error = max(fp8_error, float((stored[name] - t).abs().max() / t.abs().max().clamp_min(1e-12)))
        else:
            bits, value = to_bf16_bits(t)
            tensors[name] = ("BF16", t.shape, bits.astype("<u2").tobytes())
            stored[name] = value
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    config = dict(MODEL_CONFIG)
    if storage != "fp8":
        config.pop("quantization_config")
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return stored, {"fp8_tensors": fp8_count, "max_relative_fp8_error": fp8_error}


def load_stored_into(model, stored):
    """Loads released-name float32 values (as stored) back into the training module."""
    sd = model.state_dict()
    new = {}
    for name, t in sd.items():
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            new[name] = torch.stack([torch.cat([stored[f"{prefix}{e}.gate_proj.weight"],
                                                stored[f"{prefix}{e}.up_proj.weight"]]) for e in range(t.shape[0])])
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            new[name] = torch.stack([stored[f"{prefix}{e}.down_proj.weight"] for e in range(t.shape[0])])
        else:
            new[name] = stored[name]
    model.load_state_dict({k: v.to(sd[k].device, sd[k].dtype) for k, v in new.items()}, strict=True)


# ----------------------------------------------------------------------------------------------
# Tokenizer and data
# ----------------------------------------------------------------------------------------------

def read_documents(path, limit_bytes=None):
    docs, size = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            text = json.loads(line)["text"]
            if not text.strip(" \t\r\n\v\f"):
                continue
            docs.append(text)
            size += len(text.encode())
            if limit_bytes is not None and size >= limit_bytes:
                break
    return docs


def train_tokenizer(documents, vocab_size):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}{1,3}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=[BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(documents, trainer=trainer, length=len(documents))
    bos = tokenizer.token_to_id(BOS)
    assert bos == 0 and tokenizer.token_to_id(EOS) == 1, "special tokens must take ids 0 and 1"
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos)])
    return tokenizer


def token_stream(documents, tokenizer):
    """BOS + ids of each document, concatenated (the same packing as indexcache's data reader)."""
    if tokenizer is None:  # smoke test: bytes + 3 stand in for BPE ids
        parts = [np.concatenate([[0], np.frombuffer(d.encode(), dtype=np.uint8).astype(np.int64) + 3])
                 for d in documents]
    else:
        parts = [np.asarray(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(documents)]
    return np.concatenate(parts).astype(np.int32)


class Batches:
    """Random windows of seq_len + 1 tokens; a window's domain is drawn in proportion to tokens."""

    def __init__(self, streams, seq_len, batch, seed, device):
        self.streams = [torch.from_numpy(s.astype(np.int64)) for s in streams]
        sizes = np.array([len(s) for s in streams], dtype=np.float64)
        self.p = sizes / sizes.sum()
        self.seq_len, self.batch, self.device = seq_len, batch, device
        self.rng = np.random.default_rng(seed)

    def next(self):
        domains = self.rng.choice(len(self.streams), size=self.batch, p=self.p)
        rows = []
        for d in domains:
            s = self.streams[d]
            start = int(self.rng.integers(0, len(s) - self.seq_len - 1))
            rows.append(s[start:start + self.seq_len + 1])
        x = torch.stack(rows).to(self.device, non_blocking=True)
        return x[:, :-1], x[:, 1:]


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------

def lr_at(step, steps, peak, warmup, floor):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(params, lr, device):
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    kwargs = {"lr": lr, "betas": (0.9, 0.95), "eps": 1e-8}
    if device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             **kwargs)


def run_phase(name, model, batches, mode, budget_s, max_steps, opt_main, opt_index, lrs, device, record,
              bias_rate=1e-3, log_every=100):
    """Runs `mode` steps for about `budget_s` seconds (the count is fixed from the first steps'
    timing, so the cosine schedule knows its length)."""
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    peak_main, peak_index = lrs
    steps, step, start = max_steps, 0, time.time()
    lm_hist, kl_hist = [], []
    first = {}
    timing_steps = 30
    while step < steps:
        if step == 5:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t5 = time.time()
        if step == timing_steps and budget_s:
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_step = (time.time() - t5) / (timing_steps - 5)
            elapsed = time.time() - start
            steps = max(timing_steps + 1, min(max_steps, int(timing_steps + (budget_s - elapsed) / per_step)))
            print(f"[{name}] {per_step * 1000:.1f} ms/step -> {steps} steps", flush=True)
        x, y = batches.next()
        warm = max(1, min(100, steps // 10))
        if opt_main is not None:
            for g in opt_main.param_groups:
                g["lr"] = lr_at(step, steps, peak_main, warm, peak_main * 0.1)
        if opt_index is not None:
            for g in opt_index.param_groups:
                g["lr"] = lr_at(step, steps, peak_index, warm, peak_index * 0.1)
        with autocast:
            if mode == "warmup":
                with torch.no_grad():
                    lm, kl = model(x, y, mode)
            else:
                lm, kl = model(x, y, mode)
        loss = (lm if mode != "warmup" else 0.0) + (kl if kl is not None else 0.0)
        for opt in (opt_main, opt_index):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        loss.backward()
        if opt_main is not None:
            torch.nn.utils.clip_grad_norm_(model.main_parameters(), 1.0)
            opt_main.step()
            # Auxiliary-loss-free balancing: raise the bias of under-loaded experts, lower the rest.
            with torch.no_grad():
                for moe in model.moe_layers():
                    load = moe.last_load.float()
                    moe.gate.e_score_correction_bias += bias_rate * torch.sign(load.mean() - load)
        if opt_index is not None:
            torch.nn.utils.clip_grad_norm_(model.indexer_parameters(), 1.0)
            opt_index.step()
        if step % 10 == 0 or step == steps - 1:
            lm_hist.append((step, float(lm)))
            if kl is not None:
                kl_hist.append((step, float(kl)))
        if step == 0:
            first = {"lm": float(lm), "kl": None if kl is None else float(kl)}
        if step % log_every == 0 or step == steps - 1:
            print(f"[{name}] step {step}/{steps} lm {float(lm):.4f}"
                  + (f" kl {float(kl):.4f}" if kl is not None else "")
                  + f" {time.time() - start:.0f}s", flush=True)
        step += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.time() - start

    def tail_mean(hist):
        tail = [v for _, v in hist[-10:]]
        return sum(tail) / len(tail) if tail else None

    record[name] = {"mode": mode, "steps": steps, "tokens": steps * batches.batch * batches.seq_len,
                    "batch": batches.batch, "seq_len": batches.seq_len,
                    "lr_main": peak_main if opt_main is not None else None,
                    "lr_indexer": peak_index if opt_index is not None else None,
                    "first_lm_loss": first.get("lm"), "first_kl": first.get("kl"),
                    "final_lm_loss_mean_last_100": tail_mean(lm_hist),
                    "final_kl_mean_last_100": tail_mean(kl_hist), "wall_s": round(wall, 1)}
    print(f"[{name}] done: {json.dumps(record[name])}", flush=True)


@torch.no_grad()
def held_out_losses(model, streams, seq_len, device, mode, max_windows=64):
    """Mean NLL over consecutive seq_len windows of each held-out stream (in bf16 autocast)."""
    out = {}
    model.eval()
    for name, s in streams.items():
        n = min(max_windows, len(s) // seq_len)
        w = torch.from_numpy(s[: n * seq_len].astype(np.int64)).view(n, seq_len).to(device)
        total = 0.0
        for i in range(0, n, 16):
            x = w[i:i + 16]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                lm, _ = model(x[:, :-1], x[:, 1:], mode)
            total += float(lm) * x.shape[0]
        out[name] = total / n
    model.train()
    return out


# ----------------------------------------------------------------------------------------------
# Verification with transformers (the reference semantics)
# ----------------------------------------------------------------------------------------------

def verify_with_transformers(out_dir, heldout, record, seq_len=512, batch=16):
    """Loads the written checkpoint with transformers and records its held-out loss per domain:
    every consecutive seq_len window of each held-out stream (what `indexcache-calibrate --split
    heldout --data DOMAIN --seq-len 512` evaluates), float32, eager attention, mean NLL over the
    seq_len - 1 predictions of every window."""
    import transformers
    from transformers import AutoConfig, DeepseekV32ForCausalLM
    result = {"transformers": transformers.__version__}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    # (a) from_pretrained through transformers' own FP8 path, dequantizing at load time.
    model = None
    try:
        from transformers import FineGrainedFP8Config
        model = DeepseekV32ForCausalLM.from_pretrained(
            out_dir, dtype=torch.float32, attn_implementation="eager",
            quantization_config=FineGrainedFP8Config(dequantize=True))
        result["from_pretrained"] = "ok (FineGrainedFP8Config(dequantize=True))"
    except Exception as error:  # recorded, then the manual path below is used
        result["from_pretrained"] = f"failed: {type(error).__name__}: {str(error)[:300]}"
    print(f"verify: from_pretrained {result['from_pretrained']}", flush=True)

    # (b) the same weights dequantized by hand (fp8 value x block scale), into transformers' class.
    from safetensors.torch import load_file
    raw = load_file(os.path.join(out_dir, "model.safetensors"))
    values = {}
    for name, t in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if name + "_scale_inv" in raw:
            scale = raw[name + "_scale_inv"].float()
            grid = scale.repeat_interleave(128, 0)[: t.shape[0]].repeat_interleave(128, 1)[:, : t.shape[1]]
            values[name] = t.float() * grid
        else:
            values[name] = t.float()
    config = AutoConfig.from_pretrained(out_dir)
    config._attn_implementation = "eager"
    manual = DeepseekV32ForCausalLM(config).float().eval()
    target = manual.state_dict()
    loaded = {}
    for name, t in target.items():
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            loaded[name] = torch.stack([torch.cat([values[f"{prefix}{e}.gate_proj.weight"],
                                                   values[f"{prefix}{e}.up_proj.weight"]]) for e in range(t.shape[0])])
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            loaded[name] = torch.stack([values[f"{prefix}{e}.down_proj.weight"] for e in range(t.shape[0])])
        else:
            loaded[name] = values[name]
    manual.load_state_dict(loaded, strict=True)
    if model is not None:
        theirs = model.state_dict()
        diffs = [float((theirs[n].float().cpu() - loaded[n]).abs().max()) for n in loaded if n in theirs]
        missing = [n for n in loaded if n not in theirs]
        result["from_pretrained_max_weight_difference"] = max(diffs) if diffs else None
        result["from_pretrained_missing"] = missing[:5]
        print(f"verify: from_pretrained vs manual weights: max |diff| {result['from_pretrained_max_weight_difference']}, "
              f"missing {missing[:5]}", flush=True)
    else:
        model = manual
    model = model.to(device).eval()
    manual = manual.to(device).eval()

    losses, manual_losses = {}, {}
    with torch.no_grad():
        for domain, stream in heldout.items():
            n = len(stream) // seq_len
            windows = torch.from_numpy(stream[: n * seq_len].astype(np.int64)).view(n, seq_len)
            totals = [0.0, 0.0]
            for i in range(0, n, batch):
                x = windows[i:i + batch].to(device)
                for j, m in enumerate((model, manual)):
                    logits = m(input_ids=x, use_cache=False).logits.float()
                    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                          reduction="sum")
                    totals[j] += float(nll)
            count = n * (seq_len - 1)
            losses[domain] = {"loss": totals[0] / count, "sequences": n, "predictions": count}
            manual_losses[domain] = totals[1] / count
            print(f"verify: held-out {domain}: transformers {losses[domain]['loss']:.6f} "
                  f"(manual load {manual_losses[domain]:.6f}), {n} x {seq_len} tokens", flush=True)
    total_nll = sum(v["loss"] * v["predictions"] for v in losses.values())
    total_count = sum(v["predictions"] for v in losses.values())
    result["heldout_seq_len"] = seq_len
    result["heldout"] = losses
    result["heldout_all_domains"] = total_nll / total_count
    result["heldout_manual_load"] = manual_losses
    result["device"] = str(device)
    record["transformers_check"] = result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-dir", default="build-data/train")
    parser.add_argument("--heldout-dir", default="calibration_data")
    parser.add_argument("--out", default="models/tiny-dsa")
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=32, help="sequences per step, dense phase")
    parser.add_argument("--sparse-batch", type=int, default=16, help="sequences per step, warm-up and sparse")
    parser.add_argument("--dense-s", type=float, default=165, help="wall-time budget of the dense phase")
    parser.add_argument("--warmup-s", type=float, default=20, help="... of the indexer warm-up")
    parser.add_argument("--sparse-s", type=float, default=75, help="... of the sparse phase")
    parser.add_argument("--max-steps", type=int, default=100000, help="upper bound per phase")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--tokenizer-bytes", type=int, default=12_000_000,
                        help="bytes of training text the tokenizer is trained on (domains alike)")
    parser.add_argument("--storage", choices=["fp8", "bf16"], default="fp8")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run: few steps, byte ids")
    parser.add_argument("--verify-only", action="store_true",
                        help="only re-run the transformers check on the checkpoint in --out")
    parser.add_argument("--random-init", action="store_true",
                        help="write the untrained model (for timing the CPU forward), no tokenizer")
    args = parser.parse_args()
    if args.verify_only:
        from tokenizers import Tokenizer
        tokenizer = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
        heldout = {d: token_stream(read_documents(os.path.join(args.heldout_dir, d, "heldout.jsonl")), tokenizer)
                   for d in DOMAINS}
        path = os.path.join(args.out, "train_record.json")
        record = json.load(open(path)) if os.path.exists(path) else {}
        verify_with_transformers(args.out, heldout, record)
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
        return
    if args.random_init:
        c = Cfg(dict(MODEL_CONFIG))
        model = TinyDsa(c)
        init_weights(model, c, args.seed)
        save_checkpoint(model, c, args.out, args.storage)
        print(f"wrote untrained {args.out}")
        return

    t_start = time.time()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    cfg_dict = dict(MODEL_CONFIG)
    if args.smoke:
        args.seq_len, args.batch, args.sparse_batch = 256, 2, 2
        cfg_dict.update(max_position_embeddings=256, index_topk=32)
    c = Cfg(cfg_dict)
    print(f"device {device}, torch {torch.__version__}", flush=True)

    # 1-2. Tokenizer and token streams.
    docs = {d: read_documents(os.path.join(args.train_dir, f"{d}.jsonl")) for d in DOMAINS}
    if args.smoke:
        docs = {d: v[:20] for d, v in docs.items()}
    tokenizer = None
    record = {"seed": args.seed, "device": (torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"),
              "torch": torch.__version__, "command": " ".join(sys.argv)}
    if not args.smoke:
        import tokenizers
        per_domain = args.tokenizer_bytes // len(DOMAINS)
        sample = []
        for d in DOMAINS:
            size = 0
            for text in docs[d]:
                sample.append(text)
                size += len(text.encode())
                if size >= per_domain:
                    break
        t0 = time.time()
        tokenizer = train_tokenizer(sample, c.vocab_size)
        record["tokenizer"] = {"library": f"tokenizers {tokenizers.__version__}", "vocab_size": tokenizer.get_vocab_size(),
                               "trained_on_bytes": sum(len(s.encode()) for s in sample), "wall_s": round(time.time() - t0, 1)}
        print(f"tokenizer: {record['tokenizer']}", flush=True)
        os.makedirs(args.out, exist_ok=True)
        tokenizer.save(os.path.join(args.out, "tokenizer.json"))
    t0 = time.time()
    streams = [token_stream(docs[d], tokenizer) for d in DOMAINS]
    record["training_text"] = {d: {"documents": len(docs[d]), "bytes": sum(len(t.encode()) for t in docs[d]),
                                   "tokens": int(len(s))} for d, s in zip(DOMAINS, streams)}
    print(f"training tokens: {record['training_text']} ({time.time() - t0:.1f}s)", flush=True)
    heldout = {}
    for d in DOMAINS:
        path = os.path.join(args.heldout_dir, d, "heldout.jsonl")
        if os.path.exists(path):
            heldout[d] = token_stream(read_documents(path), tokenizer)

    # 3. Model and the three phases.
    model = TinyDsa(c)
    init_weights(model, c, args.seed)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    n_index = sum(p.numel() for p in model.indexer_parameters())
    record["parameters"] = {"total": n_params, "indexer": n_index}
    print(f"parameters: {n_params} (indexer {n_index})", flush=True)
    batches = Batches(streams, args.seq_len, args.batch, args.seed, device)
    sparse_batches = Batches(streams, args.seq_len, args.sparse_batch, args.seed + 1, device)
    max_steps = 3 if args.smoke else args.max_steps
    budgets = (0, 0, 0) if args.smoke else (args.dense_s, args.warmup_s, args.sparse_s)
    phases = {}
    opt_main = make_optimizer(model.main_parameters(), args.lr, device)
    run_phase("dense", model, batches, "dense", budgets[0], max_steps, opt_main, None, (args.lr, None), device, phases)
    record["heldout_after_dense"] = held_out_losses(model, heldout, 512, device, "dense",
                                                    max_windows=2 if args.smoke else 64)
    print(f"held-out (dense attention) after dense phase: {record['heldout_after_dense']}", flush=True)
    opt_index = make_optimizer(model.indexer_parameters(), 1e-3, device)
    run_phase("indexer_warmup", model, sparse_batches, "warmup", budgets[1], max_steps, None, opt_index,
              (None, 1e-3), device, phases)
    record["heldout_sparse_after_warmup"] = held_out_losses(model, heldout, 512, device, "sparse",
                                                            max_windows=2 if args.smoke else 64)
    print(f"held-out (sparse attention) after warm-up: {record['heldout_sparse_after_warmup']}", flush=True)
    opt_main = make_optimizer(model.main_parameters(), args.lr * 0.2, device)
    opt_index = make_optimizer(model.indexer_parameters(), 3e-4, device)
    run_phase("sparse", model, sparse_batches, "sparse", budgets[2], max_steps, opt_main, opt_index,
              (args.lr * 0.2, 3e-4), device, phases)
    record["phases"] = phases
    record["training_wall_s"] = round(sum(p["wall_s"] for p in phases.values()), 1)

    # 4. Save, then evaluate what the checkpoint holds (FP8/BF16-rounded weights).
    model = model.float().cpu()
    stored, quant = save_checkpoint(model, c, args.out, args.storage)
    record["quantization"] = quant
    load_stored_into(model, stored)
    model.to(device)
    record["heldout_sparse_stored_weights"] = held_out_losses(model, heldout, 512, device, "sparse",
                                                              max_windows=2 if args.smoke else 64)
    print(f"held-out (sparse, stored weights, bf16 autocast): {record['heldout_sparse_stored_weights']}", flush=True)
    record["total_wall_s"] = round(time.time() - t_start, 1)
    with open(os.path.join(args.out, "train_record.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    if not args.smoke:
        try:
            verify_with_transformers(args.out, heldout, record)
        except Exception as error:
            import traceback
            traceback.print_exc()
            record["transformers_check"] = {"error": f"{type(error).__name__}: {error}"}
    with open(os.path.join(args.out, "train_record.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print(f"wrote {args.out} ({size / 1e6:.2f} MB) in {record['total_wall_s']}s", flush=True)


if __name__ == "__main__":
    main()
