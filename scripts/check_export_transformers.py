#!/usr/bin/env python3
"""Loads exported model directories in Hugging Face transformers and checks that the loss it
computes is the loss the plan promises (issue 20: exported plans must not be silently ignored).

    python3 scripts/check_export_transformers.py CASES_DIR [--json OUT]

CASES_DIR is made by scripts/prepare-export-check.sh: one folder per case with
  plan.yaml       the plan (its final_loss and baseline_loss, computed by indexcache in fp32)
  data.jsonl      the calibration sequences ({"input_ids": [...]})
  exported/       the checkpoint with config.json from `--export hf-config`
  original/       the checkpoint with the config.json the user started from
  expect.json     the loss transformers must give for each: for exported/, the plan's loss
                  (glm_moe_dsa) or the all-F loss (deepseek_v32: transformers reads no pattern,
                  and the tool says so on stderr); for original/, indexcache's --eval loss of
                  the pattern transformers reads from that config

Both directories are loaded with from_pretrained on the CPU in float32 with eager attention, so
the numbers compare with indexcache's fp32 losses (golden fixtures agree to ~1e-7). The loss is
the mean next-token NLL over every predicted position of every sequence. Exit 1 when any case
differs from its expectation by more than --tolerance (relative).
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
import transformers
import yaml
from transformers import AutoModelForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


def mean_nll(directory, sequences):
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager").eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for ids in sequences:
            tokens = torch.tensor([ids])
            logits = model(tokens).logits[0].double()
            total += F.cross_entropy(logits[:-1], tokens[0, 1:], reduction="sum").item()
            count += len(ids) - 1
    indexer_types = getattr(model.config, "indexer_types", None)
    return total / count, indexer_types


def relative(value, reference):
    return abs(value - reference) / abs(reference)


def check_case(folder, tolerance):
    with open(os.path.join(folder, "plan.yaml")) as f:
        plan = yaml.safe_load(f)
    with open(os.path.join(folder, "data.jsonl")) as f:
        sequences = [json.loads(line)["input_ids"] for line in f if line.strip()]
    with open(os.path.join(folder, "expect.json")) as f:
        expect = json.load(f)
    search = plan["search"]
    exported, exported_types = mean_nll(os.path.join(folder, "exported"), sequences)
    original, original_types = mean_nll(os.path.join(folder, "original"), sequences)
    result = {
        "case": os.path.basename(folder),
        "model_type": plan["model"]["model_type"],
        "pattern": plan["pattern"],
        "expect": expect["exported_why"],
        "original_pattern": expect["original_pattern"],
        "plan_loss": search["final_loss"],
        "baseline_loss": search["baseline_loss"],
        "exported_loss": exported,
        "original_loss": original,
        "exported_indexer_types": exported_types,
        "original_indexer_types": original_types,
        "relative_error": relative(exported, expect["exported"]),
        "original_relative_error": relative(original, expect["original"]),
    }
    result["ok"] = result["relative_error"] <= tolerance and result["original_relative_error"] <= tolerance
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", help="folder made by scripts/prepare-export-check.sh")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    results = [check_case(os.path.join(args.cases, name), args.tolerance)
               for name in sorted(os.listdir(args.cases)) if os.path.isdir(os.path.join(args.cases, name))]
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for r in results:
        print(f"{r['case']:<24} {r['model_type']:<13} {r['pattern']} expect {r['expect']:<8} "
              f"exported {r['exported_loss']:.7f} (plan {r['plan_loss']:.7f}, all-F {r['baseline_loss']:.7f}) "
              f"rel err {r['relative_error']:.2e}; original ({r['original_pattern']}) {r['original_loss']:.7f} "
              f"rel err {r['original_relative_error']:.2e} "
              f"{'ok' if r['ok'] else 'MISMATCH'}")
        print(f"{'':<24} indexer_types after loading: {r['exported_indexer_types']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"transformers_version": transformers.__version__, "results": results}, f, indent=1)
    failed = [r["case"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
