#!/usr/bin/env python3
"""clang-tidy over the product sources with a result cache (scripts/test.sh, stage 5).

clang-tidy takes ~10 s of CPU per file here and CI runs it over ~110 files; most of them are unchanged between two
runs. A file whose preprocessed text (its own code and every header it includes, with the line markers that say which
file each line came from), compile flags, .clang-tidy and clang-tidy version hash to a key seen before with no
finding that fails is not checked again: the same input gives the same findings. Only results that pass are kept,
with their advice (non-failing warnings), which is printed again on a hit. No Debian package does this (ctcache and
clang-tidy-cache are not packaged), hence these lines.

Keys are portable: the source tree's and the build tree's absolute paths are replaced by placeholders before hashing
(the preprocessed text names them in line markers and __FILE__; the flags in -I), and the version hashed is clang-tidy's
first two lines (LLVM version and default target: the "Host CPU" line names the machine, not the tool). So a key
computed in one checkout holds in any other with the same sources, the same Debian headers and clang-tidy, which lets
the passed keys be committed:

  scripts/tidy-passed.json   {FILE: {"key": KEY, "advice": TEXT}} for the product sources that passed when it was
                             last recorded. A clean clone (CI, whose $HOME is not kept) skips those files whose key it
                             computes the same; any other file (changed since, or on a machine with other headers) is
                             checked as before. Refresh it after changing product code or the headers it includes:
                             `python3 scripts/tidy.py --record build-asan` (seconds for files the local cache has
                             seen), then commit it. A stale or missing entry costs time, never a finding.

Usage: scripts/tidy.py [--jobs N] [--record] BUILD_DIR [FILE...]
  FILE...   default: the product sources (tracked *.cc but trainer/, whose LibTorch headers the sanitizer build does not
            have, and tests/, which run under ASan + UBSan instead).
  --record  rewrite scripts/tidy-passed.json with the keys of the files that pass now (others' entries dropped).
Local cache: $ISOFLOP_TIDY_CACHE or ~/.cache/isoflop/tidy. Run from anywhere; paths are relative to the tree.
Exit status: 0 when clang-tidy exited 0 on every file (bugprone findings are errors, .clang-tidy).
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
PASSED = os.path.join(ROOT, "scripts", "tidy-passed.json")


def product_sources() -> list:
    files = subprocess.run(["git", "ls-files", "*.cc"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [f for f in files if not f.startswith(("trainer/", "tests/"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("build")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    build = os.path.realpath(args.build)
    files = [os.path.relpath(os.path.realpath(f), ROOT) for f in args.files] or product_sources()
    cache = os.environ.get("ISOFLOP_TIDY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "isoflop", "tidy")
    os.makedirs(cache, exist_ok=True)
    committed = json.load(open(PASSED)) if os.path.exists(PASSED) else {}

    commands = {}
    for entry in json.load(open(os.path.join(build, "compile_commands.json"))):
        path = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
        commands[path] = entry
    # Each tree as CMake may name it (the path given or the real one); the build tree first: it may lie inside the
    # source tree.
    places = {(p, "@BUILD@") for p in (build, os.path.abspath(args.build))}
    places |= {(p, "@ROOT@") for p in (ROOT, os.path.abspath(os.path.dirname(os.path.dirname(__file__))))}
    places = sorted(places, key=lambda p: (p[1] != "@BUILD@", -len(p[0])))

    def portable(text: bytes) -> bytes:
        for path, name in places:
            text = text.replace(path.encode(), name.encode())
        return text

    salt = hashlib.sha256()
    salt.update(open(os.path.join(ROOT, ".clang-tidy"), "rb").read())

    def version(tool: str) -> bytes:
        text = subprocess.run([tool, "--version"], capture_output=True).stdout
        return b"\n".join(line for line in text.splitlines() if b"Host CPU" not in line)

    salt.update(version("clang-tidy"))
    compilers = {}  # the compiler's version: its resource headers are part of the text

    def key(path: str):
        entry = commands.get(path)
        if entry is None:
            return None
        args = entry.get("arguments") or shlex.split(entry["command"])
        # The compile command with -E: drop the output and compiler launcher, keep every flag that changes the text.
        out, skip = [], False
        for a in args:
            if skip:
                skip = False
                continue
            if a == "-o":
                skip = True
                continue
            if a == "-c" or os.path.basename(a) == "ccache":
                continue
            out.append(a)
        pre = subprocess.run(out + ["-E"], cwd=entry["directory"], capture_output=True)
        if pre.returncode != 0:
            return None
        if out[0] not in compilers:
            compilers[out[0]] = version(out[0])
        h = salt.copy()
        h.update(compilers[out[0]])
        h.update(portable(" ".join(out).encode()))
        h.update(portable(pre.stdout))
        return h.hexdigest()

    def check(rel: str):
        """(file, exit status, advice, key or None, where it was found: "committed", "cache" or "")."""
        k = key(os.path.realpath(os.path.join(ROOT, rel)))
        if k is not None and committed.get(rel, {}).get("key") == k:
            return rel, 0, committed[rel]["advice"].encode(), k, "committed"
        if k is not None and os.path.exists(os.path.join(cache, k)):
            return rel, 0, open(os.path.join(cache, k), "rb").read(), k, "cache"
        r = subprocess.run(["clang-tidy", "-p", build, "--quiet", rel], cwd=ROOT, capture_output=True)
        err = b"\n".join(l for l in r.stderr.splitlines() if b"warnings generated" not in l)
        # Advice names files relative to the tree, so that it reads the same from any checkout.
        text = portable(r.stdout + err).replace(b"@ROOT@/", b"")
        if r.returncode == 0 and k is not None:
            with open(os.path.join(cache, k + ".tmp"), "wb") as f:
                f.write(text)
            os.replace(os.path.join(cache, k + ".tmp"), os.path.join(cache, k))
        return rel, r.returncode, text, k, ""

    failed, found, passed, unrecorded = [], {"committed": 0, "cache": 0, "": 0}, {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for rel, code, text, k, where in pool.map(check, files):
            found[where] += 1
            if where != "committed":
                unrecorded.append(rel)
            if text.strip():
                sys.stderr.write(text.decode(errors="replace").rstrip() + "\n")
            if code != 0:
                failed.append(rel)
            elif k is not None:
                passed[rel] = {"key": k, "advice": text.decode(errors="replace")}
    print(f"clang-tidy: {len(files)} files: {found['committed']} as recorded in scripts/tidy-passed.json, "
          f"{found['cache']} from the local cache ({cache}), {found['']} checked; "
          f"{len(failed)} failed{': ' + ' '.join(failed) if failed else ''}", file=sys.stderr)
    if args.record:
        kept = {f: v for f, v in committed.items() if f not in files and os.path.exists(os.path.join(ROOT, f))}
        kept.update(passed)
        with open(PASSED + ".tmp", "w") as f:
            json.dump(kept, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(PASSED + ".tmp", PASSED)
        print(f"clang-tidy: recorded {len(passed)} passed files in scripts/tidy-passed.json", file=sys.stderr)
    elif unrecorded:
        # cli/version.cc is always here: it holds the commit (cli/version.h).
        print(f"clang-tidy: not as recorded: {' '.join(unrecorded)} (`python3 scripts/tidy.py --record BUILD_DIR` "
              "records the files that pass for clean clones)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
