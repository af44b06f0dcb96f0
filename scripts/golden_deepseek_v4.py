#!/usr/bin/env python3
"""Golden fixture of a tiny random DeepSeek-V4 (`deepseek_v4`) from Hugging Face transformers.

Run on the GPU machine (transformers 5.17, torch 2.11); everything is computed on the CPU in
float32 with eager attention:

    python3 scripts/make_golden.py --family deepseek_v4 --out tests/fixtures/golden
    # or directly: python3 scripts/golden_deepseek_v4.py --out tests/fixtures/golden [--debug-dir D]

It writes tests/fixtures/golden/dsv4_tiny/: the checkpoint exactly as transformers'
save_pretrained writes it (config.json, model.safetensors; plus a few `mtp.0.*` tensors of an MTP
layer that transformers does not instantiate and must ignore), data.jsonl (input_ids) and
expected.json with:

  - per CSA layer, per sequence, per query: the sorted compressed-entry indices the layer attends
    to (its top-k with the invalid `-1` picks dropped), of the all-F forward,
  - the all-F loss and the losses of patterns over the CSA layers only (one character per
    compressed_sparse_attention layer, as vLLM reads V4's pattern), where an S CSA layer runs no
    indexer and reuses the top-k of the nearest preceding F CSA layer, in compressed-entry index
    space (the sliding and HCA layers in between neither produce nor consume a selection),
  - margins: the smallest gap between the k-th and (k+1)-th valid indexer score and between the
    chosen and next expert of the score router, so rounding cannot flip a selection.

Equal indexer scores are ordered by lowest compressed-entry index (a stable descending sort), as
indexcache does. With --debug-dir it also writes debug.safetensors (the first sequence's
per-layer intermediate tensors) and the installed transformers sources it ran, for debugging a
mismatch without another run.
"""

import argparse
import inspect
import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoConfig
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as v4

torch.set_float32_matmul_precision("highest")

CASE = "dsv4_tiny"
CSA = "compressed_sparse_attention"
HCA = "heavily_compressed_attention"
SLIDING = "sliding_attention"

# Six layers covering the three attention types (CSA at 1, 3, 5), hash-routed MoE in the first
# two. HCA compresses 8x here (128x in the released models) so 48-token sequences hold entries;
# index_topk 4 of up to 12 compressed entries, so the selection matters from query 19 on.
CONFIG = {
    "architectures": ["DeepseekV4ForCausalLM"],
    "model_type": "deepseek_v4",
    "vocab_size": 256,
    "hidden_size": 64,
    "moe_intermediate_size": 16,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "q_lora_rank": 32,
    "num_experts_per_tok": 2,
    "n_routed_experts": 4,
    "n_shared_experts": 1,
    "scoring_func": "sqrtsoftplus",
    "routed_scaling_factor": 1.5,
    "max_position_embeddings": 256,
    "rope_theta": 10000.0,
    "compress_rope_theta": 160000.0,
    # YaRN, for the compressed branches only (transformers splits this into main / compress).
    "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                        "beta_fast": 32.0, "beta_slow": 1.0},
    "partial_rotary_factor": 0.25,  # 8 rotary dims of 32
    "layer_types": [SLIDING, CSA, HCA, CSA, SLIDING, CSA],
    "compress_rates": {CSA: 4, HCA: 8},
    "mlp_layer_types": ["hash_moe", "hash_moe", "moe", "moe", "moe", "moe"],
    "hc_mult": 4,
    "hc_sinkhorn_iters": 20,
    "hc_eps": 1e-6,
    "swiglu_limit": 2.0,  # low enough that the clamps act on random weights
    "sliding_window": 8,
    "o_groups": 2,
    "o_lora_rank": 16,
    "index_n_heads": 8,
    "index_head_dim": 16,
    "index_topk": 4,
    "num_nextn_predict_layers": 1,
    "rms_norm_eps": 1e-6,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "tie_word_embeddings": False,
}

PATTERNS = ["FSS", "FSF", "FFS"]  # over the three CSA layers
SEQUENCE_LENGTHS = [48, 48, 37, 11]  # 37: a partial last block; 11: fewer entries than index_topk
MIN_INDEX_GAP = 1e-5
MIN_ROUTER_GAP = 1e-5


class Recorder:
    def __init__(self):
        self.pattern = None     # {layer: "F"/"S"} for CSA layers, None: every indexer runs
        self.last_full = None   # top-k indices [B, S, k] of the nearest F CSA layer so far
        self.captured = {}      # layer -> [B, S, k] indices the layer attended with
        self.index_gap = math.inf
        self.router_gap = math.inf

    def reset(self, pattern):
        self.pattern = pattern
        self.last_full = None
        self.captured = {}


REC = Recorder()
LAYER_OF_INDEXER = {}


def lowest_position_topk(original_topk):
    """Tensor.topk for the indexer's [B, S, T] scores: ties in ascending entry index (stable
    descending sort), and the k-th / (k+1)-th gap of rows with more than k valid entries."""
    def topk(self, k, dim=-1, largest=True, sorted=True):
        if self.dim() == 3 and largest:
            values, indices = torch.sort(self, dim=dim, descending=True, stable=True)
            if k < self.shape[-1]:
                kth, next_ = values[..., k - 1], values[..., k]
                measured = torch.isfinite(next_)
                if measured.any():
                    REC.index_gap = min(REC.index_gap, (kth - next_)[measured].min().item())
            return torch.return_types.topk((values.narrow(dim, 0, k), indices.narrow(dim, 0, k)))
        return original_topk(self, k, dim=dim, largest=largest, sorted=sorted)
    return topk


def patch_indexer():
    original_forward = v4.DeepseekV4Indexer.forward

    def forward(self, *args, **kwargs):
        layer = LAYER_OF_INDEXER[id(self)]
        if REC.pattern is not None and REC.pattern[layer] == "S":
            indices = REC.last_full  # the engines' reuse: no indexer, the last F CSA layer's top-k
        else:
            original_topk = torch.Tensor.topk
            torch.Tensor.topk = lowest_position_topk(original_topk)
            try:
                indices = original_forward(self, *args, **kwargs)
            finally:
                torch.Tensor.topk = original_topk
            REC.last_full = indices
        REC.captured[layer] = indices
        return indices

    v4.DeepseekV4Indexer.forward = forward


def patch_router():
    original_forward = v4.DeepseekV4TopKRouter.forward

    def forward(self, hidden_states):
        with torch.no_grad():
            flat = hidden_states.reshape(-1, self.hidden_dim).float()
            choice = self.score_fn(F.linear(flat, self.weight.float())) + self.e_score_correction_bias
            values = choice.topk(self.top_k + 1, dim=-1).values
            REC.router_gap = min(REC.router_gap, (values[:, -2] - values[:, -1]).min().item())
        return original_forward(self, hidden_states)

    v4.DeepseekV4TopKRouter.forward = forward


patch_indexer()
patch_router()


def init_weights(model, seed):
    """Scale 1/sqrt(fan_in) (the default 0.02 init ties indexer scores) and non-zero values for
    every parameter transformers would zero (position biases, sinks, hyper-connection bases)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = param.shape
            if name.endswith("norm.weight"):
                value = 1.0 + 0.1 * randn(shape)
            elif name.endswith("embed_tokens.weight"):
                value = randn(shape)
            elif name.endswith("position_bias") or name.endswith("sinks"):
                value = 0.5 * randn(shape)
            elif name.endswith("_hc.base") or name.endswith("hc_head.hc_base"):
                value = 0.3 * randn(shape)
            elif name.endswith("_hc.scale") or name.endswith("hc_head.hc_scale"):
                value = 1.0 + 0.2 * randn(shape)
            elif name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
                value = randn(shape) / math.sqrt(shape[-1])
            elif ".indexer." in name and param.dim() == 2:
                value = 1.5 * randn(shape) / math.sqrt(shape[-1])
            elif param.dim() == 2:
                value = randn(shape) / math.sqrt(shape[-1])
            else:
                value = 0.1 * randn(shape)
            param.copy_(value)
        experts = model.config.n_routed_experts
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(0.05 * randn(buf.shape))
            elif name.endswith("tid2eid"):
                rows = [torch.randperm(experts, generator=gen)[: buf.shape[1]] for _ in range(buf.shape[0])]
                buf.copy_(torch.stack(rows).to(buf.dtype))


def sequence_nll(model, ids):
    x = torch.tensor([ids])
    out = model(input_ids=x, labels=x, use_cache=False)
    return out.loss.double().item() * (len(ids) - 1)


def evaluate(model, sequences, pattern):
    total, count, captured = 0.0, 0, []
    for ids in sequences:
        REC.reset(pattern)
        with torch.no_grad():
            total += sequence_nll(model, ids)
        count += len(ids) - 1
        captured.append({layer: REC.captured[layer][0].clone() for layer in REC.captured})
    return total / count, captured


def csa_layers(config):
    return [i for i, t in enumerate(config.layer_types) if t == CSA]


def layer_pattern(config, csa_pattern):
    layers = csa_layers(config)
    assert len(csa_pattern) == len(layers) and csa_pattern[0] == "F", csa_pattern
    return {layer: c for layer, c in zip(layers, csa_pattern)}


def selected_sets(indices):
    """[S, k] indices (with -1 for invalid picks) -> per query the sorted valid entries."""
    return [sorted(int(v) for v in row.tolist() if v >= 0) for row in indices]


def add_mtp_tensors(directory, hidden, seed):
    """An MTP layer as the released checkpoints name it (`mtp.0.*`): transformers ignores it,
    and so must indexcache."""
    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    gen = torch.Generator().manual_seed(seed + 1000)
    tensors["mtp.0.enorm.weight"] = torch.ones(hidden)
    tensors["mtp.0.hnorm.weight"] = torch.ones(hidden)
    tensors["mtp.0.e_proj.weight"] = torch.randn(hidden, hidden, generator=gen)
    tensors["mtp.0.h_proj.weight"] = torch.randn(hidden, hidden, generator=gen)
    tensors["mtp.0.attn.wq_a.weight"] = torch.randn(CONFIG["q_lora_rank"], hidden, generator=gen)
    save_file({n: t.contiguous() for n, t in tensors.items()}, path, metadata={"format": "pt"})


def debug_tensors(model, ids):
    """The first sequence's intermediate tensors, named by module, for debugging a mismatch."""
    out = {}
    hooks = []

    def keep(name):
        def hook(module, inputs, output):
            value = output[0] if isinstance(output, tuple) else output
            if torch.is_tensor(value):
                out[name] = value.detach()[0].float().clone()
            if isinstance(output, tuple) and len(output) > 1 and torch.is_tensor(output[1]):
                out[name + ".second"] = output[1].detach()[0].float().clone()
        return hook

    for i, layer in enumerate(model.model.layers):
        hooks.append(layer.register_forward_hook(keep(f"layers.{i}.out")))
        hooks.append(layer.self_attn.register_forward_hook(keep(f"layers.{i}.attn")))
        hooks.append(layer.mlp.register_forward_hook(keep(f"layers.{i}.mlp")))
        if layer.self_attn.compressor is not None:
            hooks.append(layer.self_attn.compressor.register_forward_hook(keep(f"layers.{i}.compressor")))
    hooks.append(model.model.hc_head.register_forward_hook(keep("hc_head")))
    hooks.append(model.model.norm.register_forward_hook(keep("final_norm")))
    REC.reset(None)
    with torch.no_grad():
        x = torch.tensor([ids])
        logits = model(input_ids=x, use_cache=False).logits
    for h in hooks:
        h.remove()
    out["logits"] = logits[0].float().clone()
    for layer, idx in REC.captured.items():
        out[f"layers.{layer}.topk"] = idx[0].to(torch.int64).clone()
    out["embed"] = model.model.embed_tokens(torch.tensor(ids)).detach().float().clone()
    return {k: v.contiguous() for k, v in out.items()}


def write_sources(debug_dir):
    """The installed transformers code this fixture came from (the reference semantics)."""
    from transformers import activations, masking_utils, modeling_rope_utils
    from transformers.models.deepseek_v4 import configuration_deepseek_v4
    shutil.copy(v4.__file__, os.path.join(debug_dir, "modeling_deepseek_v4.py"))
    shutil.copy(configuration_deepseek_v4.__file__, os.path.join(debug_dir, "configuration_deepseek_v4.py"))
    parts = [inspect.getsource(modeling_rope_utils._compute_yarn_parameters)]
    for name in ("sliding_window_overlay", "sliding_window_causal_mask_function"):
        if hasattr(masking_utils, name):
            parts.append(inspect.getsource(getattr(masking_utils, name)))
    for name, cls in activations.ACT2CLS.items():
        if "sqrt" in name or "softplus" in name:
            target = cls[0] if isinstance(cls, tuple) else cls
            try:
                parts.append(f"# ACT2CLS[{name!r}]\n" + inspect.getsource(target))
            except (TypeError, OSError):
                parts.append(f"# ACT2CLS[{name!r}] = {cls!r}")
    with open(os.path.join(debug_dir, "reference_sources.txt"), "w") as f:
        f.write("\n\n".join(parts))


def index_layers(model):
    LAYER_OF_INDEXER.clear()
    for i, layer in enumerate(model.model.layers):
        compressor = layer.self_attn.compressor
        if compressor is not None and hasattr(compressor, "indexer"):
            LAYER_OF_INDEXER[id(compressor.indexer)] = i


def reload(directory, dtype):
    model = v4.DeepseekV4ForCausalLM.from_pretrained(directory, dtype=dtype, attn_implementation="eager").eval()
    index_layers(model)
    return model


def make(out_root, seed0, debug_dir=None):
    directory = os.path.join(out_root, CASE)
    for attempt in range(40):
        seed = seed0 + attempt
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.makedirs(directory)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(CONFIG, f, indent=2)
        config = AutoConfig.from_pretrained(directory)
        config._attn_implementation = "eager"
        torch.manual_seed(seed)
        model = v4.DeepseekV4ForCausalLM(config).float().eval()
        init_weights(model, seed)
        index_layers(model)
        assert sorted(LAYER_OF_INDEXER.values()) == csa_layers(config)

        gen = torch.Generator().manual_seed(seed + 7)
        sequences = [torch.randint(2, CONFIG["vocab_size"], (n,), generator=gen).tolist() for n in SEQUENCE_LENGTHS]
        REC.index_gap = math.inf
        REC.router_gap = math.inf
        all_full = "F" * len(csa_layers(config))
        baseline, captured = evaluate(model, sequences, layer_pattern(config, all_full))
        patterns = [{"pattern": p, "loss": evaluate(model, sequences, layer_pattern(config, p))[0]}
                    for p in PATTERNS]
        ok = REC.index_gap > MIN_INDEX_GAP and REC.router_gap > MIN_ROUTER_GAP
        print(f"{CASE}: seed {seed} index_gap {REC.index_gap:.3g} router_gap {REC.router_gap:.3g} "
              f"-> {'ok' if ok else 'redraw'}", flush=True)
        if ok:
            break
    else:
        raise SystemExit(f"{CASE}: no seed gave clear margins")

    # The checkpoint as transformers writes it, then the MTP tensors it must skip on reading.
    os.remove(os.path.join(directory, "config.json"))
    model.save_pretrained(directory, safe_serialization=True)
    for extra in os.listdir(directory):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(directory, extra))
    add_mtp_tensors(directory, CONFIG["hidden_size"], seed)
    with open(os.path.join(directory, "data.jsonl"), "w") as f:
        for ids in sequences:
            f.write(json.dumps({"input_ids": ids}) + "\n")

    checks = {"min_index_score_gap": REC.index_gap, "min_router_gap": REC.router_gap}
    # transformers must read the written checkpoint back to the same model; and the same forward
    # in bfloat16 (transformers keeps its fp32 modules) gives a loose reference.
    reloaded = reload(directory, torch.float32)
    reload_loss, _ = evaluate(reloaded, sequences, layer_pattern(config, all_full))
    checks["from_pretrained_baseline_loss"] = reload_loss
    checks["from_pretrained_matches"] = abs(reload_loss - baseline) <= 1e-6 * abs(baseline)
    if not checks["from_pretrained_matches"]:
        print(f"WARNING {CASE}: from_pretrained loss {reload_loss} != {baseline}", flush=True)
    try:
        checks["bfloat16_baseline_loss"] = evaluate(reload(directory, torch.bfloat16), sequences,
                                                    layer_pattern(config, all_full))[0]
    except Exception as error:  # transformers 5.17 mixes its fp32-kept norms into bf16 matmuls
        checks["bfloat16_error"] = repr(error)
        print(f"WARNING {CASE}: the bfloat16 forward failed: {error!r}", flush=True)

    stored = load_file(os.path.join(directory, "model.safetensors"))
    topk = {str(layer): [selected_sets(seq[layer]) for seq in captured] for layer in csa_layers(config)}
    expected = {
        "case": CASE,
        "generator": "scripts/golden_deepseek_v4.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "seed": seed,
        "dtype": "float32",
        "attention": "eager",
        "tie_rule": "lowest-position",
        "model_type": "deepseek_v4",
        "num_hidden_layers": config.num_hidden_layers,
        "layer_types": list(config.layer_types),
        "csa_layers": csa_layers(config),
        "index_topk": config.index_topk,
        "compress_rates": dict(config.compress_rates),
        "sequence_lengths": SEQUENCE_LENGTHS,
        "predicted_positions": sum(n - 1 for n in SEQUENCE_LENGTHS),
        "rope_parameters": config.rope_parameters,
        "baseline_loss": baseline,
        "patterns": patterns,
        "pattern_semantics": "one character per CSA layer; an S CSA layer reuses the top-k of the nearest "
                             "preceding F CSA layer (compressed-entry indices)",
        "topk": topk,
        "topk_semantics": "per CSA layer, per sequence, per query: sorted compressed-entry indices attended "
                          "(top-k without the -1 picks past the causal limit)",
        "checks": checks,
        "tensors": {name: list(t.shape) for name, t in sorted(stored.items())},
    }
    with open(os.path.join(directory, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    size = sum(os.path.getsize(os.path.join(directory, x)) for x in os.listdir(directory))
    print(f"{CASE}: baseline {baseline:.6f}, patterns {[(p['pattern'], round(p['loss'], 6)) for p in patterns]}, "
          f"bf16 {checks.get('bfloat16_baseline_loss')}, {size / 1024:.0f} KiB", flush=True)

    if debug_dir:
        os.makedirs(debug_dir, exist_ok=True)
        index_layers(model)
        save_file(debug_tensors(model, sequences[0]), os.path.join(debug_dir, "debug.safetensors"))
        write_sources(debug_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/golden")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--debug-dir", help="also write debug.safetensors and the transformers sources here")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    make(args.out, args.seed, args.debug_dir)


if __name__ == "__main__":
    sys.exit(main())
