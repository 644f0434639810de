#!/usr/bin/env python3
"""Checks of ISSUE 6 on the outputs of bench/gpu/trainer_vs_pytorch.sh (one directory).
Prints one JSON object: each check with its figures and a pass flag."""
import json
import os
import sys


def losses(path):
    out = {}
    if not os.path.exists(path):
        return out
    for line in open(path):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if "train_loss" in j:
            out[j["step"]] = j["train_loss"]
    return out


def bench(d, name):
    try:
        return json.loads(open(os.path.join(d, name + ".json")).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def diff(a, b, steps):
    common = [s for s in steps if s in a and s in b]
    if not common:
        return None
    ds = [abs(a[s] - b[s]) for s in common]
    return dict(n=len(common), max_abs=max(ds), mean_abs=sum(ds) / len(ds))


def main(d):
    r = {}
    g, e = losses(f"{d}/curve_cpp_graph.jsonl"), losses(f"{d}/curve_cpp_eager.jsonl")
    r["graph_vs_eager_200"] = diff(g, e, range(1, 201))
    try:
        py = json.load(open(f"{d}/curve_py.json"))["losses"]
        pyd = {i + 1: v for i, v in enumerate(py)}
        r["cpp_graph_vs_python_200"] = diff(g, pyd, range(1, 201))
        r["cpp_graph_vs_python_last20"] = diff(g, pyd, range(181, 201))
        ac = losses(f"{d}/curve_cpp_autocast.jsonl")
        r["cpp_autocast_vs_python_200"] = diff(ac, pyd, range(1, 201))
        r["cpp_autocast_vs_python_last20"] = diff(ac, pyd, range(181, 201))
        r["final_loss"] = dict(cpp=g.get(200), cpp_autocast=ac.get(200), python=pyd.get(200))
    except (OSError, ValueError, KeyError):
        r["cpp_graph_vs_python_200"] = None
    r["fp32_cpu_vs_cuda_10"] = diff(losses(f"{d}/fp32_cpu.jsonl"), losses(f"{d}/fp32_cuda.jsonl"), range(1, 11))
    full, a, b = losses(f"{d}/resume_full.jsonl"), losses(f"{d}/resume_a.jsonl"), losses(f"{d}/resume_b.jsonl")
    if a and b:
        r["resume"] = dict(killed_after=max(a), resumed_from=min(b) - 1,
                           d151_300=diff({**a, **b}, full, range(151, 301)))
    x, y = bench(d, "cpp_seed_b64"), bench(d, "cpp_seed_b64_ddp1")
    if x and y:
        r["ddp1_overhead"] = 1 - y["tokens_per_s"] / x["tokens_per_s"]
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
