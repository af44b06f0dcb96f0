#!/usr/bin/env python3
"""Golden fixtures from Hugging Face transformers, the reference semantics of indexcache.

Run on the GPU machine (transformers 5.17, torch 2.11); it computes on the CPU in float32 with
eager attention, so the results do not depend on GPU math modes:

    python3 scripts/make_golden.py --out tests/fixtures/golden

For each case it writes a small random-weight checkpoint in the released layout (per-expert
tensor names, optional FP8 block quantization, optional shards) plus `data.jsonl` (input_ids)
and `expected.json`:

  - per-layer top-k index sets of the all-F forward for every query with t+1 > index_topk,
  - the all-F (baseline) loss and the losses of several F/S patterns, where an S layer reuses the
    top-k indices of the nearest F layer before it (the indexer is patched for deepseek_v32;
    glm_moe_dsa is also run through transformers' own `index_topk_pattern` and both must agree),
  - the cross-layer overlap matrix (docs/ARCHITECTURE.md "Overlap"),
  - the greedy trajectory of Algorithm 1 down to one F layer,
  - margins: the smallest gap between the k-th and (k+1)-th indexer score, between the chosen and
    the next expert in the router, and between the best and second-best greedy candidate, so a
    reader can see the fixtures have no near-ties that rounding could flip.

Model families (`--family deepseek_v32 | glm_moe_dsa | deepseek_v4`) pick the cases of one family;
deepseek_v4 is scripts/golden_deepseek_v4.py. Two cases cover what newer checkpoints carry:

  - glm52_shared: a GLM-5.2-like config that declares sharing itself (`indexer_types` with the
    matching `index_topk_freq` 2 / `index_skip_topk_offset` 3) and a checkpoint WITHOUT indexer
    tensors on the declared-shared layers; its baseline, greedy start and per-layer top-k are the
    declared pattern's (a shared layer reports its source layer's selection), patterns put F only
    where an indexer exists, and transformers' own `indexer_types` path must agree (checks);
  - dsv32_mtp: a complete MTP / next-n layer (attention, indexer, experts, enorm, hnorm, eh_proj,
    shared_head) at id num_hidden_layers in the last of two shards.
  Both record `baseline_pattern` and `excluded_layers` ({"fixed_shared": [...], "next_n": [...]}),
  what indexcache's model family must find (tests/test_golden.cpp). To make them (GPU machine):

    python3 scripts/make_golden.py --out tests/fixtures/golden --cases glm52_shared dsv32_mtp

  then add their names to golden_cases() in tests/golden_fixture.h.

Weights are drawn with scale 1/sqrt(fan_in) (not the default 0.02 init, which makes indexer scores
tie); a case is re-drawn with the next seed until its margins clear a threshold.

Trained-model mode (the bundled tiny model, scripts/train_tiny_dsa.py):

    python3 scripts/make_golden.py --trained models/tiny-dsa --out tests/fixtures/golden/tiny_dsa

tokenizes a small held-out sample with the `tokenizers` library (2 sequences of 512 tokens per
bundled domain, cut from calibration_data/<domain>/heldout.jsonl packed as indexcache packs text:
BOS before each document, documents concatenated) and writes data.jsonl (input_ids) and
expected.json: per-domain and total loss (float32, eager), losses of several patterns, the
overlap matrix, and the all-F top-k sets as 32-bit digests (FNV-1a 64 of the sorted indices
written as "i,j,k", low 32 bits, 8 hex digits per query; the full sets would be ~20 MB), plus
the rows whose k-th and (k+1)-th index scores nearly tie (with their full sets). The checkpoint
is not copied: tests/test_tiny_model.cpp reads models/tiny-dsa and checks its sha256 first.
Equal index scores (a trained indexer scores many keys exactly 0) are ordered by lower position
first, indexcache's rule, unless --tie-rule torch leaves them to torch.topk; expected.json
records which (fixtures without the field were made with torch's order).
"""

import argparse
import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import AutoConfig

from transformers.models.deepseek_v32 import modeling_deepseek_v32 as dsv32
from transformers.models.glm_moe_dsa import modeling_glm_moe_dsa as glm

torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")

MIN_INDEX_GAP = 1e-5   # absolute, indexer score units
MIN_ROUTER_GAP = 1e-5  # absolute, sigmoid score units
MIN_GREEDY_GAP = 1e-5  # relative loss gap between best and second-best candidate


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------

def tiny_dsv32(**over):
    cfg = {
        "architectures": ["DeepseekV32ForCausalLM"],
        "model_type": "deepseek_v32",
        "vocab_size": 512,
        "hidden_size": 64,
        "intermediate_size": 128,
        "moe_intermediate_size": 32,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "n_shared_experts": 1,
        "n_routed_experts": 8,
        "routed_scaling_factor": 2.5,
        "kv_lora_rank": 32,
        "q_lora_rank": 48,
        "qk_rope_head_dim": 16,
        "v_head_dim": 24,
        "qk_nope_head_dim": 32,
        "n_group": 2,
        "topk_group": 1,
        "num_experts_per_tok": 2,
        "norm_topk_prob": True,
        "hidden_act": "silu",
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-6,
        "index_topk": 12,
        "index_head_dim": 32,
        "index_n_heads": 8,
        "first_k_dense_replace": 1,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    }
    cfg.update(over)
    return cfg


def tiny_glm(**over):
    cfg = tiny_dsv32(
        architectures=["GlmMoeDsaForCausalLM"],
        model_type="glm_moe_dsa",
        rms_norm_eps=1e-5,
        n_group=1,
        topk_group=1,
        v_head_dim=32,
        qk_nope_head_dim=24,
        mlp_layer_types=["dense", "sparse", "dense", "sparse", "sparse", "sparse"],
    )
    cfg.pop("first_k_dense_replace")
    cfg.update(over)
    return cfg


def fp8_dsv32():
    # Dimensions above 128 and not multiples of it: several blocks per weight and partial
    # edge blocks in both directions.
    return tiny_dsv32(
        vocab_size=384,
        hidden_size=320,
        intermediate_size=288,
        moe_intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        n_routed_experts=4,
        n_group=1,
        topk_group=1,
        kv_lora_rank=136,
        q_lora_rank=200,
        qk_rope_head_dim=32,
        qk_nope_head_dim=64,
        v_head_dim=64,
        index_head_dim=128,
        # 16 heads: with few heads many scores are exactly 0 (every head's ReLU clipped), and
        # those ties would sit at the top-k boundary.
        index_n_heads=16,
        quantization_config={
            "quant_method": "fp8",
            "fmt": "e4m3",
            "activation_scheme": "dynamic",
            "weight_block_size": [128, 128],
        },
    )


CASES = {
    # deepseek_v32, default RoPE, F32 storage, one file; carries an MTP layer to be ignored.
    "dsv32_default": dict(config=tiny_dsv32(num_nextn_predict_layers=1), storage="F32", shards=1,
                          mtp=True, patterns=["FSFSFS", "FFSSFF", "FSSSSS", "FFFFFS", "FSSFSF"]),
    # deepseek_v32 with YaRN, written with the older `rope_scaling` + top-level `rope_theta`.
    "dsv32_yarn": dict(config=tiny_dsv32(rope_scaling={
        "type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
        "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.8},
        rope_theta=5000.0, rope_parameters=None), storage="F32", shards=1, mtp=False,
        patterns=["FSFSFS", "FFSFSS"]),
    # glm_moe_dsa: interleaved indexer RoPE, explicit mlp_layer_types.
    "glm_dsa": dict(config=tiny_glm(), storage="F32", shards=1, mtp=False,
                    patterns=["FSFSFS", "FFSSFF", "FSSSSS", "FSSFSF"]),
    # FP8 block-quantized weights (BF16 for the rest), dims with partial 128x128 blocks.
    "dsv32_fp8": dict(config=fp8_dsv32(), storage="FP8", shards=1, mtp=False,
                      patterns=["FSF", "FFS", "FSS"]),
    # BF16 weights (norms in F16) split over three shards with model.safetensors.index.json.
    "dsv32_sharded": dict(config=tiny_dsv32(num_hidden_layers=4), storage="BF16", shards=3,
                          mtp=False, patterns=["FSFS", "FFSS", "FSSS"]),
    # GLM-5.2-like: the config declares sharing itself (indexer_types, consistent with
    # index_topk_freq 2 / index_skip_topk_offset 3: layers 0, 1, 2, 4, 6 full), the checkpoint has
    # NO indexer tensors on the declared-shared layers 3, 5, 7, and an MTP layer (id 8, with an
    # indexer) that is not part of the decoder. Baseline and search start from the declared pattern.
    "glm52_shared": dict(config=tiny_glm(
        num_hidden_layers=8,
        mlp_layer_types=["dense", "sparse", "dense", "sparse", "sparse", "sparse", "dense", "sparse"],
        index_topk_freq=2, index_skip_topk_offset=3, num_nextn_predict_layers=1,
        indexer_types=["full", "full", "full", "shared", "full", "shared", "full", "shared"]),
        storage="F32", shards=2, mtp="full", declared="FFFSFSFS",
        patterns=["FSFSFSFS", "FFSSFSSS", "FSSSSSSS", "FFFSSSFS", "FSSSFSSS"]),
    # deepseek_v32 with a complete MTP / next-n layer (id 6: attention, indexer, experts, plus
    # enorm/hnorm/eh_proj/shared_head) in the last of two shards, listed in the index.
    "dsv32_mtp": dict(config=tiny_dsv32(num_nextn_predict_layers=1), storage="F32", shards=2, mtp="full",
                      patterns=["FSFSFS", "FFSSFF", "FSSSSS"]),
}

# Which cases make up each model family (--family); deepseek_v4 lives in golden_deepseek_v4.py.
FAMILY_CASES = {
    "deepseek_v32": ["dsv32_default", "dsv32_yarn", "dsv32_fp8", "dsv32_sharded", "dsv32_mtp"],
    "glm_moe_dsa": ["glm_dsa", "glm52_shared"],
}

SEQUENCE_LENGTHS = [40, 40, 29, 8]  # the last is shorter than index_topk: every row selects all


# ----------------------------------------------------------------------------------------------
# Recording hooks: pattern application, captured indices, margins
# ----------------------------------------------------------------------------------------------

class Recorder:
    """State the patched indexer and router consult and fill during one forward."""

    def __init__(self):
        self.pattern = None      # None: run every indexer (no patching of S layers)
        self.last_full = None    # top-k indices of the nearest F layer so far
        self.captured = {}       # layer -> [T, k] indices used by that layer
        self.index_gap = math.inf
        self.router_gap = math.inf
        self.row_gaps = {}       # layer -> [T] k-th minus (k+1)-th score (trained mode)
        self.last_row_gaps = None
        # How the indexer's top-k orders equal scores: "torch" leaves it to torch.topk (order
        # unspecified: on the CPU it is not the lowest position), "lowest-position" is
        # indexcache's rule (lib/model/indexer.h). Trained mode uses the latter: a trained indexer
        # scores many keys exactly 0, and a fixture should not depend on torch internals.
        self.tie_rule = "torch"

    def reset(self, pattern):
        self.pattern = pattern
        self.last_full = None
        self.captured = {}
        self.row_gaps = {}


REC = Recorder()


def _recording_topk(original_topk):
    def topk(self, k, dim=-1, largest=True, sorted=True):
        n = self.shape[dim]
        if k < n and self.dim() == 3:
            values = original_topk(self, k + 1, dim=dim).values  # [B, S, k+1]
            rows = torch.arange(self.shape[1])
            measured = rows + 1 > k  # query t has t+1 causal candidates
            if measured.any():
                gap = (values[:, measured, k - 1] - values[:, measured, k]).min().item()
                REC.index_gap = min(REC.index_gap, gap)
            REC.last_row_gaps = (values[0, :, k - 1] - values[0, :, k], values[0, :, k - 1])
        if REC.tie_rule == "lowest-position" and largest and k <= n:
            # A stable descending sort keeps equal scores in ascending position order.
            values, indices = torch.sort(self, dim=dim, descending=True, stable=True)
            return torch.return_types.topk((values.narrow(dim, 0, k), indices.narrow(dim, 0, k)))
        return original_topk(self, k, dim=dim, largest=largest, sorted=sorted)
    return topk


def patch_indexer(module_cls):
    original_forward = module_cls.forward

    def forward(self, hidden_states, q_resid, position_embeddings, attention_mask, position_ids,
                past_key_values=None):
        layer = self.layer_idx
        shared = REC.pattern is not None and REC.pattern[layer] == "S"
        if shared:
            indices = REC.last_full
        else:
            original_topk = torch.Tensor.topk
            torch.Tensor.topk = _recording_topk(original_topk)
            try:
                indices = original_forward(self, hidden_states, q_resid, position_embeddings,
                                           attention_mask, position_ids, past_key_values)
            finally:
                torch.Tensor.topk = original_topk
            REC.last_full = indices
            REC.row_gaps[layer] = REC.last_row_gaps
        REC.captured[layer] = indices
        return indices

    module_cls.forward = forward


def patch_router(module_cls):
    original_forward = module_cls.forward

    def forward(self, hidden_states):
        # Margin bookkeeping only: the routing itself is transformers' own forward below.
        with torch.no_grad():
            h = hidden_states.reshape(-1, self.hidden_dim).float()
            scores = F.linear(h, self.weight.float()).sigmoid()
            choice = scores + self.e_score_correction_bias
            per_group = choice.view(-1, self.num_group, self.num_experts // self.num_group)
            group_scores = per_group.topk(2, dim=-1)[0].sum(-1)
            if self.topk_group < self.num_group:
                g = group_scores.topk(self.topk_group + 1, dim=-1)[0]
                REC.router_gap = min(REC.router_gap, (g[:, -2] - g[:, -1]).min().item())
            group_idx = group_scores.topk(self.topk_group, dim=-1)[1]
            mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1).bool()
            mask = mask.unsqueeze(-1).expand_as(per_group).reshape(-1, self.num_experts)
            allowed = choice.masked_fill(~mask, float("-inf"))
            allowed_count = int(mask[0].sum())
            if self.top_k < allowed_count:
                v = allowed.topk(self.top_k + 1, dim=-1)[0]
                REC.router_gap = min(REC.router_gap, (v[:, -2] - v[:, -1]).min().item())
        return original_forward(self, hidden_states)

    module_cls.forward = forward


patch_indexer(dsv32.DeepseekV32Indexer)
patch_indexer(glm.GlmMoeDsaIndexer)
patch_router(dsv32.DeepseekV32TopkRouter)
patch_router(glm.GlmMoeDsaTopkRouter)


# ----------------------------------------------------------------------------------------------
# Weights and checkpoint writing
# ----------------------------------------------------------------------------------------------

def init_weights(model, seed):
    gen = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = param.shape
            if name.endswith("k_norm.bias"):
                value = 0.1 * randn(shape)
            elif "norm" in name:  # RMSNorm / LayerNorm weights around 1
                value = 1.0 + 0.1 * randn(shape)
            elif name.endswith("embed_tokens.weight"):
                value = randn(shape)
            elif name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
                value = randn(shape) / math.sqrt(shape[-1])
            elif name.endswith("indexer.wq_b.weight") or name.endswith("indexer.wk.weight"):
                value = 1.5 * randn(shape) / math.sqrt(shape[-1])
            elif param.dim() == 2:
                value = randn(shape) / math.sqrt(shape[-1])
            else:
                value = 0.1 * randn(shape)
            param.copy_(value)
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(0.05 * randn(buf.shape))


def released_layout(state_dict):
    """transformers keeps experts as 3-D tensors; released checkpoints name each expert."""
    out = {}
    for name, tensor in state_dict.items():
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            inter = tensor.shape[1] // 2
            for e in range(tensor.shape[0]):
                out[f"{prefix}{e}.gate_proj.weight"] = tensor[e, :inter].clone()
                out[f"{prefix}{e}.up_proj.weight"] = tensor[e, inter:].clone()
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            for e in range(tensor.shape[0]):
                out[f"{prefix}{e}.down_proj.weight"] = tensor[e].clone()
        elif "rotary_emb" in name:
            continue
        else:
            out[name] = tensor.detach().clone()
    return out


def transformers_layout(released, model):
    """Inverse of released_layout, for loading stored (rounded) values back into the model."""
    sd = {}
    expected = model.state_dict()
    for name in expected:
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            n = expected[name].shape[0]
            sd[name] = torch.stack([torch.cat([released[f"{prefix}{e}.gate_proj.weight"],
                                               released[f"{prefix}{e}.up_proj.weight"]]) for e in range(n)])
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            n = expected[name].shape[0]
            sd[name] = torch.stack([released[f"{prefix}{e}.down_proj.weight"] for e in range(n)])
        elif name in released:
            sd[name] = released[name]
    return sd


def is_fp8_target(name):
    """Which weights the released FP8 checkpoints quantize: the decoder layers' linear
    projections (attention, indexer wq_b/wk, experts, shared experts, dense MLP); routers,
    norms, the indexer's weights_proj, embeddings and lm_head stay in BF16."""
    if not name.startswith("model.layers.") or not name.endswith(".weight"):
        return False
    if "norm" in name or name.endswith("mlp.gate.weight") or "weights_proj" in name:
        return False
    return True


def quantize_fp8_blocks(weight, block=(128, 128)):
    rows, cols = weight.shape
    br, bc = block
    sr, sc = -(-rows // br), -(-cols // bc)
    scale = torch.empty(sr, sc, dtype=torch.float32)
    q = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
    deq = torch.empty(rows, cols, dtype=torch.float32)
    for i in range(sr):
        for j in range(sc):
            blk = weight[i * br:(i + 1) * br, j * bc:(j + 1) * bc].float()
            s = max(blk.abs().max().item(), 1e-12) / 448.0
            qb = (blk / s).to(torch.float8_e4m3fn)
            scale[i, j] = s
            q[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = qb
            deq[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = qb.float() * torch.tensor(s, dtype=torch.float32)
    return q, scale, deq


def store(released, storage, block):
    """Returns (tensors to save, the float32 values the model must use after rounding)."""
    to_save, rounded = {}, {}
    for name, t in released.items():
        t = t.float()
        if storage == "F32":
            to_save[name], rounded[name] = t, t
        elif storage == "BF16":
            dtype = torch.float16 if "norm" in name else torch.bfloat16
            to_save[name] = t.to(dtype)
            rounded[name] = to_save[name].float()
        elif storage == "FP8":
            if is_fp8_target(name) and t.dim() == 2:
                q, scale, deq = quantize_fp8_blocks(t, block)
                to_save[name], to_save[name + "_scale_inv"] = q, scale
                rounded[name] = deq
            elif name.endswith("e_score_correction_bias"):
                to_save[name], rounded[name] = t, t  # kept in F32, as released
            else:
                to_save[name] = t.to(torch.bfloat16)
                rounded[name] = to_save[name].float()
        else:
            raise ValueError(storage)
    return to_save, rounded


def write_checkpoint(directory, tensors, shards):
    names = sorted(tensors)
    if shards == 1:
        save_file({n: tensors[n].contiguous() for n in names}, os.path.join(directory, "model.safetensors"),
                  metadata={"format": "pt"})
        return
    # Shard by layer: embeddings with the first shard, final norm and lm_head with the last.
    def shard_of(name):
        if name.startswith("model.layers."):
            layer = int(name.split(".")[2])
            return min(shards - 1, layer * shards // max(1, NUM_LAYERS_FOR_SHARDING))
        return 0 if "embed" in name else shards - 1
    weight_map, groups = {}, [dict() for _ in range(shards)]
    for n in names:
        s = shard_of(n)
        groups[s][n] = tensors[n].contiguous()
    for s, group in enumerate(groups):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file(group, os.path.join(directory, fname), metadata={"format": "pt"})
        for n in group:
            weight_map[n] = fname
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)


NUM_LAYERS_FOR_SHARDING = 1


# ----------------------------------------------------------------------------------------------
# Evaluation through transformers
# ----------------------------------------------------------------------------------------------

def sequence_nll(model, ids):
    """Sum of next-token NLL over the T-1 predictions of one sequence (transformers' loss)."""
    x = torch.tensor([ids])
    out = model(input_ids=x, labels=x, use_cache=False)
    return out.loss.double().item() * (len(ids) - 1)


def evaluate(model, sequences, pattern):
    """Mean NLL over every predicted position; captured top-k per sequence and layer."""
    total, count, captured = 0.0, 0, []
    for ids in sequences:
        REC.reset(pattern)
        with torch.no_grad():
            total += sequence_nll(model, ids)
        count += len(ids) - 1
        captured.append({l: REC.captured[l][0].clone() for l in REC.captured})
        if ROW_GAPS is not None:
            ROW_GAPS.append(dict(REC.row_gaps))
    return total / count, captured


ROW_GAPS = None  # trained mode: a list that evaluate() fills with each sequence's per-row gaps


def measured_sets(captured_seq, layer, k):
    """Sorted index sets of the queries t with t+1 > k (the rows indexcache compares)."""
    idx = captured_seq[layer]
    rows = []
    for t in range(idx.shape[0]):
        if t + 1 > k:
            rows.append(sorted(int(v) for v in idx[t].tolist()))
    return rows


def overlap_matrix(captured, layers, k):
    L = layers
    sums = [[0.0] * L for _ in range(L)]
    n = 0
    for seq in captured:
        T = seq[0].shape[0]
        for t in range(T):
            if t + 1 <= k:
                continue
            sets = [set(seq[l][t].tolist()) for l in range(L)]
            for a in range(L):
                for b in range(L):
                    sums[a][b] += len(sets[a] & sets[b]) / k
            n += 1
    return [[s / n for s in row] for row in sums], n


def greedy(model, sequences, layers, target, start=None):
    """Algorithm 1 from `start` (default all F); layers that are S there (declared shared: no
    indexer) are never candidates, as in indexcache's model families."""
    pattern = list(start or "F" * layers)
    trajectory, min_gap = [], math.inf
    while pattern.count("F") > target:
        results = []
        for l in range(1, layers):
            if pattern[l] != "F":
                continue
            cand = pattern.copy()
            cand[l] = "S"
            loss, _ = evaluate(model, sequences, "".join(cand))
            results.append((loss, l))
        results.sort()
        if len(results) > 1:
            min_gap = min(min_gap, (results[1][0] - results[0][0]) / abs(results[0][0]))
        loss, layer = results[0]
        pattern[layer] = "S"
        trajectory.append({"removed": layer, "loss": loss, "pattern": "".join(pattern),
                           "candidates": [{"layer": l, "loss": x} for x, l in sorted(results, key=lambda r: r[1])]})
    return trajectory, min_gap


def native_glm_loss(directory, state_dict, sequences, pattern):
    """glm_moe_dsa through transformers' own index_topk_pattern support (no patching)."""
    # The way users set it: `index_topk_pattern` in config.json.
    with open(os.path.join(directory, "config.json")) as f:
        config_dict = json.load(f)
    if "indexer_types" in config_dict:
        # transformers reads indexer_types first (and a GLM-5.2 config carries one).
        config_dict["indexer_types"] = [{"F": "full", "S": "shared"}[c] for c in pattern]
        config_dict.pop("index_topk_freq", None)
        config_dict.pop("index_skip_topk_offset", None)
    else:
        config_dict["index_topk_pattern"] = pattern
    pattern_dir = os.path.join(directory, "_native_pattern")
    os.makedirs(pattern_dir, exist_ok=True)
    with open(os.path.join(pattern_dir, "config.json"), "w") as f:
        json.dump(config_dict, f)
    config = AutoConfig.from_pretrained(pattern_dir)
    shutil.rmtree(pattern_dir)
    config._attn_implementation = "eager"
    model = glm.GlmMoeDsaForCausalLM(config).float().eval()
    assert config.indexer_types == [{"F": "full", "S": "shared"}[c] for c in pattern], config.indexer_types
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    assert all(".indexer." in k and pattern[int(k.split(".")[2])] == "S" for k in missing), missing
    assert all(".indexer." in k for k in unexpected), unexpected
    loss, _ = evaluate(model, sequences, None)  # REC.pattern None: no patching at all
    return loss


def with_shared_selections(captured_seq, declared):
    """A layer whose indexer never ran (declared shared, no module) attends with the selection
    of the nearest full layer before it: record that, as indexcache reports an S layer's top-k."""
    out = dict(captured_seq)
    for layer in range(len(declared)):
        if layer not in out:
            out[layer] = out[layer - 1]
    return out


def full_mtp_layer(to_save, config_dict, declared, seed):
    """A complete MTP / next-n layer at id num_hidden_layers, as the released checkpoints store
    it: a decoder layer (attention, indexer, MLP/experts) plus enorm, hnorm, eh_proj and
    shared_head. Its values are the last decoder layer's (indexer: the last full layer's),
    perturbed; only its presence matters: transformers does not instantiate it."""
    layers, h = config_dict["num_hidden_layers"], config_dict["hidden_size"]
    gen = torch.Generator().manual_seed(seed + 1000)
    last_full = max(l for l in range(layers) if declared[l] == "F")
    out = {}
    for name, t in to_save.items():
        parts = name.split(".")
        if not name.startswith("model.layers.") or int(parts[2]) not in (layers - 1, last_full):
            continue
        source = int(parts[2])
        if (".indexer." in name) != (source == last_full) and last_full != layers - 1:
            continue
        parts[2] = str(layers)
        value = t.float()
        out[".".join(parts)] = (value + 0.01 * torch.randn(value.shape, generator=gen)).to(t.dtype)
    prefix = f"model.layers.{layers}."
    out[prefix + "enorm.weight"] = torch.ones(h)
    out[prefix + "hnorm.weight"] = torch.ones(h)
    out[prefix + "eh_proj.weight"] = torch.randn(h, 2 * h, generator=gen) / math.sqrt(2 * h)
    out[prefix + "shared_head.norm.weight"] = torch.ones(h)
    out[prefix + "shared_head.head.weight"] = torch.randn(config_dict["vocab_size"], h, generator=gen) / math.sqrt(h)
    assert any(".indexer." in n for n in out), "the MTP layer carries an indexer (engines always run it)"
    return out


# ----------------------------------------------------------------------------------------------

def make_case(name, spec, out_root, seed0):
    global NUM_LAYERS_FOR_SHARDING
    config_dict = {k: v for k, v in spec["config"].items() if v is not None}
    layers = config_dict["num_hidden_layers"]
    NUM_LAYERS_FOR_SHARDING = layers
    k = config_dict["index_topk"]
    directory = os.path.join(out_root, name)
    for attempt in range(40):
        seed = seed0 + attempt
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.makedirs(directory)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(config_dict, f, indent=2)
        config = AutoConfig.from_pretrained(directory)
        config._attn_implementation = "eager"
        cls = dsv32.DeepseekV32ForCausalLM if config.model_type == "deepseek_v32" else glm.GlmMoeDsaForCausalLM
        declared = spec.get("declared", "F" * layers)  # the config's own sharing
        if config.model_type == "glm_moe_dsa":
            assert config.indexer_types == [{"F": "full", "S": "shared"}[c] for c in declared], config.indexer_types
        torch.manual_seed(seed)
        model = cls(config).float().eval()
        init_weights(model, seed)

        released = released_layout(model.state_dict())
        # Declared-shared layers ship without indexer tensors (GLM-5.2), whether or not this
        # transformers builds an indexer module there (if it does, it never runs it).
        released = {n: t for n, t in released.items()
                    if not (".indexer." in n and declared[int(n.split(".")[2])] == "S")}
        block = tuple(config_dict.get("quantization_config", {}).get("weight_block_size", [128, 128]))
        to_save, rounded = store(released, spec["storage"], block)
        missing, unexpected = model.load_state_dict(transformers_layout(rounded, model), strict=False)
        assert not unexpected, unexpected
        assert all(".indexer." in n and declared[int(n.split(".")[2])] == "S" for n in missing), missing
        if spec.get("mtp") == "full":
            to_save.update(full_mtp_layer(to_save, config_dict, declared, seed))
        elif spec.get("mtp"):
            gen = torch.Generator().manual_seed(seed + 1000)
            h = config_dict["hidden_size"]
            to_save[f"model.layers.{layers}.eh_proj.weight"] = torch.randn(h, 2 * h, generator=gen)
            to_save[f"model.layers.{layers}.enorm.weight"] = torch.ones(h)
            to_save[f"model.layers.{layers}.self_attn.q_a_proj.weight"] = torch.randn(
                config_dict["q_lora_rank"], h, generator=gen)

        gen = torch.Generator().manual_seed(seed + 7)
        sequences = [torch.randint(2, config_dict["vocab_size"], (n,), generator=gen).tolist()
                     for n in SEQUENCE_LENGTHS]

        REC.index_gap = math.inf
        REC.router_gap = math.inf
        baseline, captured = evaluate(model, sequences, declared)
        captured = [with_shared_selections(seq, declared) for seq in captured]
        patterns = [{"pattern": p, "loss": evaluate(model, sequences, p)[0]} for p in spec["patterns"]]
        trajectory, greedy_gap = greedy(model, sequences, layers, 1, declared)
        ok = (REC.index_gap > MIN_INDEX_GAP and REC.router_gap > MIN_ROUTER_GAP
              and greedy_gap > MIN_GREEDY_GAP)
        print(f"{name}: seed {seed} index_gap {REC.index_gap:.3g} router_gap {REC.router_gap:.3g} "
              f"greedy_gap {greedy_gap:.3g} -> {'ok' if ok else 'redraw'}", flush=True)
        if ok:
            break
    else:
        raise SystemExit(f"{name}: no seed gave clear margins")

    write_checkpoint(directory, to_save, spec["shards"])
    with open(os.path.join(directory, "data.jsonl"), "w") as f:
        for ids in sequences:
            f.write(json.dumps({"input_ids": ids}) + "\n")

    checks = {"min_index_score_gap": REC.index_gap, "min_router_gap": REC.router_gap,
              "min_greedy_relative_gap": greedy_gap}
    # transformers must read the written checkpoint back to the same model (non-FP8 cases;
    # our FP8 layout has partial edge blocks, which transformers' dequantizer does not take).
    if spec["storage"] != "FP8":
        reloaded = cls.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager").eval()
        reload_loss, _ = evaluate(reloaded, sequences, declared)
        checks["from_pretrained_baseline_loss"] = reload_loss
        checks["from_pretrained_matches"] = abs(reload_loss - baseline) <= 1e-6 * abs(baseline)
        if not checks["from_pretrained_matches"]:
            print(f"WARNING {name}: from_pretrained loss {reload_loss} != {baseline}", flush=True)
    if config.model_type == "glm_moe_dsa":
        sd = model.state_dict()
        native = []
        for p in patterns:
            nl = native_glm_loss(directory, sd, sequences, p["pattern"])
            native.append({"pattern": p["pattern"], "native_loss": nl, "patched_loss": p["loss"],
                           "agree": abs(nl - p["loss"]) <= 1e-6 * abs(p["loss"])})
            if not native[-1]["agree"]:
                print(f"WARNING {name}: native {nl} vs patched {p['loss']} for {p['pattern']}", flush=True)
        checks["native_index_topk_pattern"] = native

    overlap, measured = overlap_matrix(captured, layers, k)
    topk = {str(l): [measured_sets(seq, l, k) for seq in captured] for l in range(layers)}
    expected = {
        "case": name,
        "generator": "scripts/make_golden.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "seed": seed,
        "dtype": "float32",
        "attention": "eager",
        "model_type": config.model_type,
        "num_hidden_layers": layers,
        "index_topk": k,
        "storage": spec["storage"],
        "sequence_lengths": SEQUENCE_LENGTHS,
        "predicted_positions": sum(n - 1 for n in SEQUENCE_LENGTHS),
        "rope_parameters": config.rope_parameters,
        "baseline_pattern": declared,
        "baseline_loss": baseline,
        "patterns": patterns,
        "measured_queries": measured,
        "overlap": overlap,
        "topk": topk,
        "greedy": {"target_kept": 1, "trajectory": trajectory},
        "checks": checks,
    }
    if "declared" in spec or spec.get("mtp"):
        # What indexcache's model family must make of this checkpoint (lib/model/model_family.h).
        expected["excluded_layers"] = {
            "fixed_shared": [l for l in range(layers) if declared[l] == "S"],
            "next_n": sorted({int(n.split(".")[2]) for n in to_save
                              if n.startswith("model.layers.") and int(n.split(".")[2]) >= layers}),
        }
    with open(os.path.join(directory, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    size = sum(os.path.getsize(os.path.join(directory, x)) for x in os.listdir(directory))
    print(f"{name}: baseline {baseline:.6f}, {len(patterns)} patterns, greedy {[s['removed'] for s in trajectory]}, "
          f"{size / 1024:.0f} KiB", flush=True)


# ----------------------------------------------------------------------------------------------
# Trained-model mode: the bundled tiny model on held-out text
# ----------------------------------------------------------------------------------------------

TRAINED_DOMAINS = ["code", "docs", "legal", "math"]
TRAINED_SEQ_LEN = 512
TRAINED_PER_DOMAIN = 2
NEAR_TIE_RELATIVE_GAP = 1e-4  # rows whose k-th/(k+1)-th scores are this close are listed in full


def read_checkpoint_float32(directory, block):
    """Every tensor of model.safetensors as float32; FP8 weights multiplied by their block scales."""
    from safetensors.torch import load_file
    raw = load_file(os.path.join(directory, "model.safetensors"))
    out = {}
    for name, t in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if name + "_scale_inv" in raw:
            scale = raw[name + "_scale_inv"].float()
            full = scale.repeat_interleave(block[0], 0)[: t.shape[0]].repeat_interleave(block[1], 1)[:, : t.shape[1]]
            out[name] = t.float() * full
        else:
            out[name] = t.float()
    return out


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fnv1a64(text):
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value ^= byte
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def row_digest(indices):
    return f"{fnv1a64(','.join(str(i) for i in sorted(indices))) & 0xFFFFFFFF:08x}"


def heldout_windows(tokenizer, data_root, domain):
    """The held-out split packed as indexcache packs text, cut into TRAINED_SEQ_LEN windows."""
    stream = []
    with open(os.path.join(data_root, domain, "heldout.jsonl"), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            text = json.loads(line)["text"]
            if not text.strip(" \t\r\n\v\f"):
                continue
            stream.extend(tokenizer.encode(text, add_special_tokens=True).ids)
    n = len(stream) // TRAINED_SEQ_LEN
    return [stream[i * TRAINED_SEQ_LEN:(i + 1) * TRAINED_SEQ_LEN] for i in range(n)]


def uniform_pattern(layers, kept):
    """Evenly spaced F layers starting at layer 0."""
    full = {round(i * layers / kept) for i in range(kept)}
    return "".join("F" if l in full else "S" for l in range(layers))


def make_trained(model_dir, out_dir, data_root, tie_rule):
    global ROW_GAPS
    REC.tie_rule = tie_rule
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    config = AutoConfig.from_pretrained(model_dir)
    config._attn_implementation = "eager"
    layers, k = config.num_hidden_layers, config.index_topk
    model = dsv32.DeepseekV32ForCausalLM(config).float().eval()
    block = tuple((getattr(config, "quantization_config", None) or {}).get("weight_block_size", [128, 128]))
    released = read_checkpoint_float32(model_dir, block)
    model.load_state_dict(transformers_layout(released, model), strict=True)

    sequences, domains = [], []
    for domain in TRAINED_DOMAINS:
        windows = heldout_windows(tokenizer, data_root, domain)
        for j in range(TRAINED_PER_DOMAIN):
            sequences.append(windows[j * len(windows) // TRAINED_PER_DOMAIN])
            domains.append(domain)

    ROW_GAPS = []
    REC.index_gap = math.inf
    per_sequence_nll = []
    captured = []
    for ids in sequences:
        REC.reset("F" * layers)
        with torch.no_grad():
            per_sequence_nll.append(sequence_nll(model, ids))
        captured.append({l: REC.captured[l][0].clone() for l in REC.captured})
        ROW_GAPS.append(dict(REC.row_gaps))
    gaps = ROW_GAPS
    ROW_GAPS = None
    predictions = [len(ids) - 1 for ids in sequences]
    baseline = sum(per_sequence_nll) / sum(predictions)
    domain_losses = {}
    for domain in TRAINED_DOMAINS:
        idx = [i for i, d in enumerate(domains) if d == domain]
        domain_losses[domain] = sum(per_sequence_nll[i] for i in idx) / sum(predictions[i] for i in idx)
    print(f"tiny_dsa: baseline {baseline:.6f}, per domain {domain_losses}", flush=True)

    patterns = []
    for p in sorted({uniform_pattern(layers, max(1, round(layers / 4))), uniform_pattern(layers, layers // 2),
                     "F" + "S" * (layers - 1), ("FS" * layers)[:layers], ("FFSS" * layers)[:layers]}):
        patterns.append({"pattern": p, "loss": evaluate(model, sequences, p)[0]})
        print(f"tiny_dsa: {p} {patterns[-1]['loss']:.6f}", flush=True)

    digests, near_ties, all_gaps = {}, [], []
    for l in range(layers):
        digests[str(l)] = []
        for s, seq in enumerate(captured):
            rows = measured_sets(seq, l, k)
            digests[str(l)].append("".join(row_digest(r) for r in rows))
            gap, kth = gaps[s][l]
            for t in range(k, len(sequences[s])):
                g = float(gap[t])
                rel = g / max(abs(float(kth[t])), 1e-30)
                all_gaps.append(rel)
                if rel < NEAR_TIE_RELATIVE_GAP:
                    near_ties.append({"layer": l, "sequence": s, "query": t, "gap": g, "relative_gap": rel,
                                      "set": rows[t - k]})
    all_gaps.sort()
    overlap, measured = overlap_matrix(captured, layers, k)

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "data.jsonl"), "w") as f:
        for ids in sequences:
            f.write(json.dumps({"input_ids": ids}) + "\n")
    expected = {
        "case": "tiny_dsa",
        "generator": "scripts/make_golden.py --trained",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "model_dir": model_dir,
        "model_sha256": {n: sha256_file(os.path.join(model_dir, n)) for n in ("config.json", "model.safetensors")},
        "data": f"{data_root}/<domain>/heldout.jsonl, {TRAINED_PER_DOMAIN} windows of {TRAINED_SEQ_LEN} tokens "
                "per domain (windows j * n / 2 of the n the split gives)",
        "dtype": "float32",
        "attention": "eager",
        "tie_rule": tie_rule,
        "num_hidden_layers": layers,
        "index_topk": k,
        "sequence_domains": domains,
        "predicted_positions": sum(predictions),
        "baseline_loss": baseline,
        "domain_losses": domain_losses,
        "patterns": patterns,
        "measured_queries": measured,
        "overlap": overlap,
        "topk_digest": "per layer, per sequence: 8 hex digits per query t >= index_topk: low 32 bits of "
                       "FNV-1a 64 over the ASCII text of the sorted selected positions joined by ','",
        "topk": digests,
        "near_tie_relative_gap": NEAR_TIE_RELATIVE_GAP,
        "near_ties": near_ties,
        "index_gap_relative_quantiles": {q: all_gaps[min(len(all_gaps) - 1, int(q * len(all_gaps)))]
                                         for q in (0.0, 0.001, 0.01, 0.1, 0.5)},
    }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"tiny_dsa: {len(sequences)} sequences, {measured} measured queries, {len(near_ties)} near-tie rows "
          f"(relative gap < {NEAR_TIE_RELATIVE_GAP}), min relative gap {all_gaps[0]:.3g}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/golden")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--trained", metavar="MODEL_DIR",
                        help="golden data for a trained checkpoint (e.g. models/tiny-dsa) instead of the cases")
    parser.add_argument("--data-root", default="calibration_data", help="bundled sets, for --trained")
    parser.add_argument("--tie-rule", choices=["lowest-position", "torch"], default="lowest-position",
                        help="for --trained: how the indexer's top-k orders equal scores")
    parser.add_argument("--family", choices=["deepseek_v32", "glm_moe_dsa", "deepseek_v4"],
                        help="only this model family's cases (deepseek_v4: scripts/golden_deepseek_v4.py)")
    args = parser.parse_args()
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    if args.family == "deepseek_v4":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import golden_deepseek_v4
        golden_deepseek_v4.make(args.out, args.seed)
        return
    if args.trained:
        make_trained(args.trained, args.out, args.data_root, args.tie_rule)
        return
    os.makedirs(args.out, exist_ok=True)
    cases = [c for c in args.cases if args.family is None or c in FAMILY_CASES[args.family]]
    for name in cases:
        make_case(name, CASES[name], args.out, args.seed)


if __name__ == "__main__":
    sys.exit(main())
