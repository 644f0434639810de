#!/usr/bin/env python3
"""Markdown table of one bench/gpu/trainer_vs_pytorch.sh output directory: C++ vs the
PyTorch references of the same run, with ratios to the best reference."""
import json
import os
import sys


def load(d, name):
    try:
        return json.loads(open(os.path.join(d, name + ".json")).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def main(d):
    rows = [("seed B16x256", "seed_b16"), ("seed B64x256", "seed_b64"), ("161M B32x1024", "big_b32")]
    print("| config | impl | tok/s | ms/step | MFU | peak alloc GiB | time to 1st step s |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for label, key in rows:
        refs = {m: load(d, f"py_{key}_{m}") for m in ("eager", "compile", "ro")}
        best = max((r["tokens_per_s"], m) for m, r in refs.items() if r) if any(refs.values()) else None
        legacy = [f"cpp_{key}_legacy_{v}" for v in ("loss", "norm", "gelu", "embedding", "adamw")]
        attention = [f"cpp_{key}_attn_{a}" for a in ("cudnn", "flash")]
        for name in [f"cpp_{key}", f"cpp_{key}_eager", f"cpp_{key}_autocast"] + legacy + attention:
            r = load(d, name)
            if r:
                impl = "C++ " + ("graph" if r["cuda_graphs"] else "eager")
                if r.get("precision") != "bf16":
                    impl += " " + r.get("precision", "")
                if "legacy" in name:
                    impl += " without the fused " + name.rsplit("_", 1)[1]
                if "_attn_" in name:
                    impl += " --attention " + name.rsplit("_", 1)[1]
                elif r.get("attention_backend"):
                    impl += f" ({r['attention_backend']})"
                print(f"| {label} | {impl} | {r['tokens_per_s']/1e6:.3f}M | {r['ms_per_step']:.2f} | "
                      f"{100*r['mfu']:.1f}% | {r['peak_allocated_gib']:.2f} | {r['time_to_first_step_s']:.2f} |")
                if best and name == f"cpp_{key}":
                    ratios.append((label, r["tokens_per_s"] / best[0], best[1]))
        for m, r in refs.items():
            if r:
                print(f"| {label} | PyTorch {m} | {r['tokens_per_s']/1e6:.3f}M | {r['ms_per_step']:.2f} | "
                      f"{100*r['mfu']:.1f}% | {r['peak_allocated_gib']:.2f} | {r['time_to_first_step_s']:.2f} |")
    print()
    for label, ratio, mode in ratios:
        print(f"- {label}: C++ (graph) / best PyTorch ({mode}) = {ratio:.3f}x")


if __name__ == "__main__":
    main(sys.argv[1])
