#!/usr/bin/env python3
"""A dataset made of whole documents drawn at random from another, to carry a large corpus to a GPU host whose
transfer limit is smaller than the corpus (bench/results/h100-2026-12-08-code-sweep.md).

  bench/gpu/subset_dataset.py SRC DST --train-tokens N --val-tokens M [--seed S]

SRC is a dataset made by `isoflop data prepare` (docs/data-format.md): train.bin, val.bin, documents.tsv,
meta.json, tokenizer.*. Documents are kept whole and in their original order; the train and val splits stay
disjoint because each is drawn from its own split. DST gets the same files, with meta.json's counts recomputed and
`subset_of` recording where it came from.
"""
import argparse, csv, json, os, random, shutil, struct, sys

HEADER = 64  # docs/data-format.md §2: magic, version, vocab_size, n_tokens, token_bytes, padding


def read_header(path):
    with open(path, "rb") as f:
        h = f.read(HEADER)
    if len(h) < HEADER or h[:8] != b"ISOFTOK1":
        sys.exit(f"{path}: not an isoflop token file (docs/data-format.md §2)")
    version, vocab, n = struct.unpack_from("<IIQ", h, 8)
    width = struct.unpack_from("<I", h, 24)[0] if version >= 2 else 2
    return vocab, n, width

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src"); p.add_argument("dst")
    p.add_argument("--train-tokens", type=float, required=True)
    p.add_argument("--val-tokens", type=float, required=True)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    meta = json.load(open(os.path.join(a.src, "meta.json")))
    docs = {"train": [], "val": []}
    with open(os.path.join(a.src, "documents.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            docs[row["split"]].append(row)
    os.makedirs(a.dst, exist_ok=False)
    rng = random.Random(a.seed)
    kept_rows, counts = [], {}
    for split, want in (("train", a.train_tokens), ("val", a.val_tokens)):
        vocab, n, width = read_header(os.path.join(a.src, split + ".bin"))
        offsets, off = [], 0
        for r in docs[split]:
            offsets.append(off); off += int(r["tokens"])
        if off != n:
            sys.exit(f"{a.src}/{split}.bin holds {n} tokens but documents.tsv lists {off}: documents cannot be cut out")
        order = list(range(len(docs[split]))); rng.shuffle(order)
        chosen, total = [], 0
        for i in order:
            if total >= want: break
            chosen.append(i); total += int(docs[split][i]["tokens"])
        chosen.sort()
        with open(os.path.join(a.src, split + ".bin"), "rb") as fin, open(os.path.join(a.dst, split + ".bin"), "wb") as fout:
            fout.write(b"ISOFTOK1" + struct.pack("<IIQI", 2, vocab, total, width) + bytes(HEADER - 28))
            for i in chosen:
                fin.seek(HEADER + offsets[i] * width)
                fout.write(fin.read(int(docs[split][i]["tokens"]) * width))
        kept_rows += [docs[split][i] for i in chosen]
        counts[split] = (len(chosen), total, sum(int(docs[split][i]["bytes"]) for i in chosen))
    with open(os.path.join(a.dst, "documents.tsv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(kept_rows[0].keys()), delimiter="\t", lineterminator="\n")
        w.writeheader(); w.writerows(kept_rows)
    for name in os.listdir(a.src):
        if name.startswith("tokenizer."):
            shutil.copy(os.path.join(a.src, name), a.dst)
    meta.update({
        "subset_of": {"dataset": os.path.basename(os.path.normpath(a.src)), "seed": a.seed,
                      "rule": "whole documents drawn at random per split"},
        "documents": counts["train"][0] + counts["val"][0],
        "train_documents": counts["train"][0], "train_tokens": counts["train"][1],
        "unique_train_tokens": counts["train"][1], "train_bytes": counts["train"][2],
        "val_documents": counts["val"][0], "val_tokens": counts["val"][1], "val_bytes": counts["val"][2],
    })
    json.dump(meta, open(os.path.join(a.dst, "meta.json"), "w"), indent=2, sort_keys=True)
    print(f"{a.dst}: train {counts['train'][1]} tokens in {counts['train'][0]} documents, "
          f"val {counts['val'][1]} tokens in {counts['val'][0]} documents")

if __name__ == "__main__":
    main()
