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
def law(f):
    if not f:
        return "no fit"
    return ("E %.4g, A %.4g, B %.4g, alpha %.4g, beta %.4g, a %.4g" %
            (f.get("e", 0), f.get("a", 0), f.get("b", 0), f.get("alpha", 0), f.get("beta", 0),
             f.get("beta", 0) / (f.get("alpha", 0) + f.get("beta", 0)) if f.get("alpha") else float("nan")))
print("| | independent cosine | trunk + branches |")
print("|---|---|---|")
print("| FLOPs trained | %.4g | %.4g (%.1f%%) |" % (c["flops"], br["flops"], 100 * br["flops"] / c["flops"]))
print("| tokens trained | %.4g | %.4g (%.1f%%) |" % (c["tokens"], br["tokens"], 100 * br["tokens"] / c["tokens"]))
print("| wall time (s) | %.0f | %.0f |" % (c["seconds"], br["seconds"]))
print("| law (Approach 3) | %s | %s |" % (law(c["fit"]), law(br["fit"])))
for b in sorted(c["best"]):
    x, y = c["best"][b], br["best"].get(b)
    print("| best val_loss at C=%.3g | %.4f | %s |" % (b, x, "%.4f (%+.2f%%)" % (y, 100 * (y - x) / x) if y else "-"))
