#!/usr/bin/env python3
"""PyTorch reference for isoflop-trainer (ISSUE 6): the same GPT, optimizer and
FLOP convention in Python, timed in three modes, and the same 200-step loss
curve (same init seed, same data windows) for the equality check.

  bench:  --mode eager | compile | reduce-overhead  (torch.compile default or
          mode="reduce-overhead", i.e. CUDA graphs); prints one JSON line.
  curve:  eager bf16 on a dataset with isoflop-trainer's init and sampler;
          prints {"losses": [...]} (one loss per step).

Model: token + learned position embeddings, pre-norm RMSNorm (eps 1e-6),
causal SDPA, tanh-GELU MLP, final RMSNorm, untied head, no biases; bf16
autocast; fused AdamW (betas 0.9/0.95, eps 1e-8, decay on matmul weights);
global grad-norm clip 1. FLOPs/token = 6*N_matmul + 12*L*d*T, peak 989 TFLOP/s.
"""
import argparse
import json
import math
import os
import sys
import time

START = time.time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MASK = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def window_offset(seed, step, batch, i, n_tokens, context):
    """trainer/options.cc WindowOffset."""
    key = (splitmix64(seed) + step * batch + i) & MASK
    return splitmix64(key) % (n_tokens - context)


class Gpt(torch.nn.Module):
    def __init__(self, V, T, d, L, H, dff, device):
        super().__init__()
        self.V, self.T, self.d, self.L, self.H = V, T, d, L, H
        std, proj = 0.02, 0.02 / math.sqrt(2 * L)
        P = lambda t: torch.nn.Parameter(t.to(device))  # noqa: E731
        # Same draw order as trainer/model.cc on the default CPU generator.
        self.tok = P(torch.randn(V, d) * std)
        self.pos = P(torch.randn(T, d) * std)
        self.blocks = []
        for _ in range(L):
            b = dict(n1=P(torch.ones(d)), qkv=P(torch.randn(3 * d, d) * std),
                     out=P(torch.randn(d, d) * proj), n2=P(torch.ones(d)),
                     fc1=P(torch.randn(dff, d) * std), fc2=P(torch.randn(d, dff) * proj))
            self.blocks.append(b)
            for k, v in b.items():
                self.register_parameter(f"b{len(self.blocks)}_{k}", v)
        self.nf = P(torch.ones(d))
        self.head = P(torch.randn(V, d) * std)
        self.decay = [b[k] for b in self.blocks for k in ("qkv", "out", "fc1", "fc2")] + [self.head]
        self.no_decay = [self.tok, self.pos] + [b[k] for b in self.blocks for k in ("n1", "n2")] + [self.nf]

    def forward(self, inputs, targets):
        B, T = inputs.shape
        d, H = self.d, self.H
        with torch.autocast("cuda", dtype=torch.bfloat16):
            x = F.embedding(inputs, self.tok) + self.pos[:T]
            for b in self.blocks:
                h = F.rms_norm(x, (d,), b["n1"], 1e-6)
                q, k, v = F.linear(h, b["qkv"]).view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4).unbind(0)
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = x + F.linear(y.transpose(1, 2).reshape(B, T, d), b["out"])
                h = F.rms_norm(x, (d,), b["n2"], 1e-6)
                x = x + F.linear(F.gelu(F.linear(h, b["fc1"]), approximate="tanh"), b["fc2"])
            x = F.rms_norm(x, (d,), self.nf, 1e-6)
            logits = F.linear(x, self.head)
        return F.cross_entropy(logits.float().view(-1, self.V), targets.reshape(-1))


def counts(V, T, d, L, dff):
    n_matmul = L * (4 * d * d + 2 * d * dff) + d * V
    emb = V * d + T * d
    n_total = n_matmul + emb + L * 2 * d + d
    return n_total, n_total - emb, n_matmul, 6.0 * n_matmul + 12.0 * L * d * T


def make_opt(model, lr, wd):
    return torch.optim.AdamW([{"params": model.decay, "weight_decay": wd},
                              {"params": model.no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


def bench(a):
    torch.manual_seed(a.seed)
    dev = "cuda"
    model = Gpt(a.vocab, a.context, a.d_model, a.n_layers, a.n_heads, a.d_ff, dev)
    fwd = model
    if a.mode == "compile":
        fwd = torch.compile(model)
    elif a.mode == "reduce-overhead":
        fwd = torch.compile(model, mode="reduce-overhead")
    opt = make_opt(model, 1e-4, 0.1)
    params = model.decay + model.no_decay
    data = torch.randint(0, a.vocab, (8, a.batch, a.context + 1), device=dev)

    def step(i):
        seqs = data[i % 8]
        loss = fwd(seqs[:, :-1], seqs[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.time()
    step(0)
    torch.cuda.synchronize()
    first = time.time()
    for i in range(1, a.warmup):
        step(i)
    torch.cuda.synchronize()
    warm_end = time.time()
    torch.cuda.reset_peak_memory_stats()
    t = time.time()
    for i in range(a.steps):
        loss = step(a.warmup + i)
    torch.cuda.synchronize()
    secs = time.time() - t
    n_total, n_ne, n_mm, fpt = counts(a.vocab, a.context, a.d_model, a.n_layers, a.d_ff)
    tps = a.steps * a.batch * a.context / secs
    start = a.start_time if a.start_time > 0 else START
    print(json.dumps(dict(
        impl="pytorch", mode=a.mode, torch=torch.__version__, batch_sequences=a.batch, context=a.context,
        d_model=a.d_model, n_layers=a.n_layers, n_total=n_total, n_non_embedding=n_ne, n_matmul=n_mm,
        flops_per_token=fpt, ms_per_step=1e3 * secs / a.steps, tokens_per_s=tps, mfu=tps * fpt / 989e12,
        peak_allocated_gib=torch.cuda.max_memory_allocated() / 2**30,
        time_to_first_step_s=first - start, first_step_only_s=first - t0,
        warmup_s=warm_end - start, loss=float(loss))), flush=True)


def curve(a):
    torch.manual_seed(a.seed)
    dev = "cuda"
    model = Gpt(a.vocab, a.context, a.d_model, a.n_layers, a.n_heads, a.d_ff, dev)
    opt = make_opt(model, a.lr, 0.1)
    params = model.decay + model.no_decay
    raw = np.fromfile(os.path.join(a.data_dir, "train.bin"), dtype=np.uint16, offset=64)
    tokens = torch.from_numpy(raw.astype(np.int64))
    n, T, B = len(raw), a.context, a.batch
    losses = []
    for s in range(a.curve_steps):
        lr = lr_at(a, s)
        for g in opt.param_groups:
            g["lr"] = lr
        offs = [window_offset(a.seed, s, B, i, n, T) for i in range(B)]
        seqs = torch.stack([tokens[o:o + T + 1] for o in offs]).to(dev)
        loss = model(seqs[:, :-1], seqs[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    print(json.dumps(dict(losses=losses)))


def lr_at(a, step):
    """trainer/train.cc LearningRate (cosine)."""
    if step < a.warmup_steps:
        return a.lr * (step + 1) / a.warmup_steps
    decay = max(1, a.curve_steps - a.warmup_steps - 1)
    p = min(1.0, (step - a.warmup_steps) / decay)
    f = a.min_lr_fraction
    return a.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * p)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["bench", "curve"])
    p.add_argument("--mode", default="eager", choices=["eager", "compile", "reduce-overhead"])
    p.add_argument("--vocab", type=int, default=10000)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=16)
    p.add_argument("--d-ff", type=int, default=2048)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-time", type=float, default=0.0)
    p.add_argument("--data-dir")
    p.add_argument("--curve-steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=20)
    p.add_argument("--min-lr-fraction", type=float, default=0.1)
    a = p.parse_args()
    bench(a) if a.what == "bench" else curve(a)


if __name__ == "__main__":
    sys.exit(main())
