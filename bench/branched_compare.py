#!/usr/bin/env python3
"""Side by side: an independent-cosine sweep and the same grid as trunk + branches (issue 23,
docs/architecture.md §2.1). Reads STATE/{cosine,branched}.json (`isoflop sweep status ID --format json`) and
STATE/{cosine,branched}.seconds (the sweep's wall time) and prints a Markdown table: FLOPs and tokens trained, wall
time, the fitted law of each, and the best validation loss per budget. Used by bench/branched.sh (CPU) and
bench/gpu/branched.sh (GPU).
  bench/branched_compare.py STATE
"""
import json, sys
state = sys.argv[1]
rows = {}
for kind in ("cosine", "branched"):
    sweep = json.load(open(f"{state}/{kind}.json"))
    secs = float(open(f"{state}/{kind}.seconds").read())
    tokens = 0.0
    for t in sweep["trials"]:
        s = t["spec"]
        steps, tok = float(s["steps"]), float(s["tokens"])
        start = float(s.get("start_step", 0))
        tokens += tok * (steps - start) / steps
    fit = sweep.get("fit", {})
    rows[kind] = dict(flops=float(sweep.get("total_flops", 0)), independent=float(sweep.get("independent_flops", 0)),
                      tokens=tokens, seconds=secs, fit=fit,
                      best={})
    for t in sweep["trials"]:
        if t["spec"].get("role") == "TRIAL_ROLE_TRUNK" or t.get("state") != "SUCCEEDED":
            continue
        b = float(t["spec"]["flops_budget"])
        v = t.get("val_loss")
        if isinstance(v, (int, float)):
            rows[kind]["best"][b] = min(rows[kind]["best"].get(b, 1e9), v)
c, br = rows["cosine"], rows["branched"]
def interval(f, key):
    ci = f.get("ci95", {}).get(key)
    return " [%.3g, %.3g]" % (ci.get("low", 0), ci.get("high", 0)) if ci else ""
def law(f):
    if not f or not f.get("alpha"):
        return "no fit" + (": " + f["message"][:120] if f and f.get("message") else "")
    a3 = f["beta"] / (f["alpha"] + f["beta"])
    return ("E %.4g%s, alpha %.3g%s, beta %.3g%s, a = beta/(alpha+beta) %.3g%s" %
            (f["e"], interval(f, "E"), f["alpha"], interval(f, "alpha"), f["beta"], interval(f, "beta"),
             a3, interval(f, "a")))
def approach2(f):
    if not f or "n_opt_exponent" not in f.get("ci95", {}):
        return "-"
    ci = f["ci95"]["n_opt_exponent"]
    return "a = %.3g [%.3g, %.3g]" % (f.get("approach2", {}).get("n_opt_exponent", float("nan")),
                                      ci.get("low", 0), ci.get("high", 0))
print("| | independent cosine | trunk + branches |")
print("|---|---|---|")
print("| FLOPs trained | %.4g | %.4g (%.1f%%) |" % (c["flops"], br["flops"], 100 * br["flops"] / c["flops"]))
print("| tokens trained | %.4g | %.4g (%.1f%%) |" % (c["tokens"], br["tokens"], 100 * br["tokens"] / c["tokens"]))
print("| wall time (s) | %.0f | %.0f |" % (c["seconds"], br["seconds"]))
print("| law (Approach 3) | %s | %s |" % (law(c["fit"]), law(br["fit"])))
print("| N_opt exponent, Approach 2 | %s | %s |" % (approach2(c["fit"]), approach2(br["fit"])))
for b in sorted(c["best"]):
    x, y = c["best"][b], br["best"].get(b)
    print("| best val_loss at C=%.3g | %.4f | %s |" % (b, x, "%.4f (%+.2f%%)" % (y, 100 * (y - x) / x) if y else "-"))
