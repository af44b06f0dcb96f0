#!/usr/bin/env python3
"""Where one decoder layer's GPU time goes, from a trace of bench/layer_bench --trace.

Each kernel is attributed to the stage of the layer that launched it (the indexcache::* scopes in
DsaModel::forward_layer: projections, indexer, attention, mlp) through the launch's correlation
id. Prints, per stage, the summed kernel time and the share of the layer, then the heaviest
kernels of each stage.

    python3 scripts/trace_summary.py TRACE.json [--top 6]
"""
import argparse
import collections
import json


def load_events(path):
    with open(path) as f:
        data = json.load(f)
    return [e for e in data.get("traceEvents", []) if e.get("ph") == "X"]


def stage_of(timestamp, stages):
    for name, begin, end in stages:
        if begin <= timestamp <= end:
            return name
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=6)
    args = parser.parse_args()
    events = load_events(args.trace)
    stages = [(e["name"].split("::", 1)[1], e["ts"], e["ts"] + e["dur"])
              for e in events if e.get("name", "").startswith("indexcache::")]
    launches = {}
    for e in events:
        if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {}):
            launches[e["args"]["correlation"]] = e["ts"]
    gpu = [e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    if not gpu:
        raise SystemExit(f"{args.trace}: no GPU activity recorded (a CPU run, or a profiler without CUPTI)")
    per_stage = collections.defaultdict(float)
    per_kernel = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0, 0]))
    for e in gpu:
        launched = launches.get(e.get("args", {}).get("correlation"))
        stage = stage_of(launched, stages) if launched is not None else "other"
        per_stage[stage] += e["dur"]
        entry = per_kernel[stage][e["name"][:90]]
        entry[0] += e["dur"]
        entry[1] += 1
    busy = sum(per_stage.values())
    span = max(e["ts"] + e["dur"] for e in gpu) - min(e["ts"] for e in gpu)
    print(f"{args.trace}: GPU busy {busy / 1e3:.2f} ms over a span of {span / 1e3:.2f} ms "
          f"({100 * busy / span:.0f}% busy), {len(gpu)} kernels/copies")
    print("| stage | GPU ms | share |")
    print("| --- | --- | --- |")
    for stage, total in sorted(per_stage.items(), key=lambda item: -item[1]):
        print(f"| {stage} | {total / 1e3:.2f} | {100 * total / busy:.0f}% |")
    for stage, kernels in sorted(per_kernel.items(), key=lambda item: -per_stage[item[0]]):
        print(f"\n{stage}:")
        for name, (total, count) in sorted(kernels.items(), key=lambda item: -item[1][0])[:args.top]:
            print(f"  {total / 1e3:8.2f} ms  {count:4d}x  {name}")


if __name__ == "__main__":
    main()
