#!/usr/bin/env python3
"""clang-tidy over the given sources with a result cache (scripts/test.sh, stage 5).

clang-tidy takes ~7 s of CPU per file here and CI runs it over ~150 files; most of them are unchanged between two
runs. A file whose preprocessed text (its own code and every header it includes), compile flags, .clang-tidy and
clang-tidy version hash to a key seen before with no finding is not checked again: the same input gives the same
findings. Only results that pass are cached, with their advice (non-failing warnings), which is printed again on a
hit. No Debian package does this
(ctcache and clang-tidy-cache are not packaged), hence these lines.

Usage: scripts/tidy.py BUILD_DIR JOBS FILE...   Cache: $ISOFLOP_TIDY_CACHE or ~/.cache/isoflop/tidy.
Exit status: 0 when clang-tidy exited 0 on every file (bugprone findings are errors, .clang-tidy).
"""
import concurrent.futures
import hashlib
import json
import os
import shlex
import subprocess
import sys


def main() -> int:
    build, jobs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    root = os.getcwd()
    cache = os.environ.get("ISOFLOP_TIDY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "isoflop", "tidy")
    os.makedirs(cache, exist_ok=True)
    commands = {}
    for entry in json.load(open(os.path.join(build, "compile_commands.json"))):
        path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
        commands[path] = entry
    salt = hashlib.sha256()
    salt.update(open(os.path.join(root, ".clang-tidy"), "rb").read())
    salt.update(subprocess.run(["clang-tidy", "--version"], capture_output=True).stdout)

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
        pre = subprocess.run(out + ["-E", "-P"], cwd=entry["directory"], capture_output=True)
        if pre.returncode != 0:
            return None
        h = salt.copy()
        h.update(" ".join(out).encode())
        h.update(pre.stdout)
        return h.hexdigest()

    def check(rel: str):
        path = os.path.normpath(os.path.join(root, rel))
        k = key(path)
        if k is not None and os.path.exists(os.path.join(cache, k)):
            return rel, 0, open(os.path.join(cache, k), "rb").read(), True
        r = subprocess.run(["clang-tidy", "-p", build, "--quiet", rel], capture_output=True)
        err = b"\n".join(l for l in r.stderr.splitlines() if b"warnings generated" not in l)
        text = r.stdout + err
        if r.returncode == 0 and k is not None:
            with open(os.path.join(cache, k + ".tmp"), "wb") as f:
                f.write(text)
            os.replace(os.path.join(cache, k + ".tmp"), os.path.join(cache, k))
        return rel, r.returncode, text, False

    failed, cached = [], 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for rel, code, text, hit in pool.map(check, files):
            cached += hit
            if text.strip():
                sys.stderr.write(text.decode(errors="replace").rstrip() + "\n")
            if code != 0:
                failed.append(rel)
    print(f"clang-tidy: {len(files)} files, {cached} unchanged since a clean check (cache {cache}), "
          f"{len(failed)} failed{': ' + ' '.join(failed) if failed else ''}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
