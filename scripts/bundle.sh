#!/usr/bin/env bash
# Makes the bundle that runs isoflop on a GPU host with no package registry (README "Running on a GPU
# host with no package registry"). The host has glibc >= 2.36, libstdc++ and LibTorch, none of gRPC, protobuf, SQLite,
# Ceres, abseil or SentencePiece. Into DIR (default .bundle, git-ignored) go:
#   service.tar.gz  bin/  isoflop, isoflop-coordinator, isoflop-worker, isoflop-data: stripped, RPATH $ORIGIN/../lib
#                   lib/  every shared library they load except glibc's, libstdc++ and libgcc_s (the host's are newer)
#                   share/isoflop/dashboards, MANIFEST
#                   Packed because unpacked it is ~52 MiB (ATLAS LAPACK 11, gRPC 8, OpenSSL 5, ...) against a 40 MiB
#                   budget; gzip (on every Ubuntu, unlike xz) makes it ~21 MiB. scripts/gpu_sweep.sh unpacks it (~1 s).
#   absl/           Debian's abseil (headers, shared libraries, CMake config) and CLI11's headers: what isoflop-trainer
#                   needs beside LibTorch to build on the host (CMAKE_PREFIX_PATH=...;DIR/absl, see bench/gpu/trainer_vs_pytorch.sh).
#   data/kjv-bpe10000  the King James Bible (Debian bible-kjv), SentencePiece BPE with 10000 pieces.
#   scripts/bundle.sh [DIR]
# Builds the four targets in ./build (scripts/setup.sh when unconfigured), then stages, checks and packs only when a
# binary, a library or the dashboards changed: a re-run with nothing new takes a few seconds.
# Checks: each binary runs `--help` under `env -i`; `ldd` resolves every non-system library inside lib/; the glibc and
# libstdc++ symbol versions needed are <= Ubuntu 24.04's; as root, each binary also runs with LD_BIND_NOW=1 in a chroot
# that holds only the excluded system libraries (a host without the Debian packages).
# Why RPATH (patchelf) and not wrapper scripts setting LD_LIBRARY_PATH: LD_LIBRARY_PATH would be inherited by the
# trainers the worker starts (LibTorch, built on the host, would load our Debian libgomp, libz, ...), and `isoflop`
# finds `isoflop-data` next to its own executable. DT_RPATH (not RUNPATH) on the executables also covers the
# libraries' own dependencies and wins over any LD_LIBRARY_PATH of the host; the Debian libraries are left unmodified.
# Environment: ISOFLOP_BUILD_DIR (default ./build), ISOFLOP_BUNDLE_MAX_MIB (default 40).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ISOFLOP_BUILD_DIR:-$root/build}
dir=${1:-$root/.bundle}
max_mib=${ISOFLOP_BUNDLE_MAX_MIB:-40}
binaries=(isoflop isoflop-coordinator isoflop-worker isoflop-data)
# Provided by the host: glibc's libraries and the loader, libstdc++ and libgcc_s (Ubuntu 24.04: glibc 2.39, GCC 13).
system_re='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|lib(c|m|mvec|pthread|dl|rt|resolv|util|anl|nsl|BrokenLocale)\.so\.[0-9]+|libstdc\+\+\.so\.6|libgcc_s\.so\.1)$'
max_glibc=2.39       # Ubuntu 24.04
max_glibcxx=3.4.32   # GCC 13's libstdc++ (Ubuntu 24.04 ships 14's, 3.4.33)
t0=$(date +%s)
say() { printf '[bundle %3ds] %s\n' $(( $(date +%s) - t0 )) "$*" >&2; }
die() { printf 'bundle.sh: %s\n' "$*" >&2; exit 1; }
sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)

# --- build -----------------------------------------------------------------------------------------------------
if [ -f "$build/build.ninja" ]; then
  say "building ${binaries[*]} in $build"
  cmake --build "$build" --target "${binaries[@]}" >&2
else
  ISOFLOP_BUILD_DIR=$build "$root/scripts/setup.sh" "${binaries[@]}"
fi
for b in "${binaries[@]}"; do [ -x "$build/bin/$b" ] || die "$build/bin/$b missing after the build"; done
dashboards=$build/share/isoflop/dashboards
[ -f "$dashboards/index.html" ] || die "$dashboards missing (built with isoflop-coordinator)"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# --- the libraries, from ldd of the built binaries --------------------------------------------------------------
# "NAME => PATH (ADDR)" lines; NAME is the soname the loader asks for, the copy keeps it.
declare -A lib_path=()
for b in "${binaries[@]}"; do
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [[ $name =~ $system_re ]] && continue
    [ "$path" != "not" ] || die "ldd $build/bin/$b: $name not found"
    lib_path[$name]=$path
  done < <(ldd "$build/bin/$b")
done
mapfile -t lib_names < <(printf '%s\n' "${!lib_path[@]}" | sort)

# The key of what goes into service.tar.gz: equal keys, nothing to do.
key=$( {
  sha256sum "$0"
  for b in "${binaries[@]}"; do sha256sum "$build/bin/$b"; done
  for n in "${lib_names[@]}"; do p=$(readlink -f "${lib_path[$n]}"); echo "$n $p $(stat -c '%s %Y' "$p")"; done
  (cd "$dashboards" && find . -type f ! -name .stamp -print0 | sort -z | xargs -0 sha256sum)
} | sha256sum | cut -c1-16)

# --- bin/, lib/, share/: stage, check, pack --------------------------------------------------------------------
if [ -f "$dir/service.tar.gz" ] && [ "$(cat "$dir/service.key" 2>/dev/null)" = "$key" ]; then
  say "service.tar.gz is current ($key)"
else
  if ! command -v patchelf >/dev/null; then
    say "installing patchelf (Debian)"
    "${sudo_cmd[@]}" apt-get install -y -qq patchelf >/dev/null 2>&1 ||
      { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" apt-get install -y -qq patchelf >/dev/null; }
  fi
  stage=$build/bundle-stage
  say "staging ${#binaries[@]} binaries and ${#lib_names[@]} libraries in $stage"
  rm -rf "$stage"; mkdir -p "$stage/bin" "$stage/lib" "$stage/share/isoflop"
  for b in "${binaries[@]}"; do
    strip --strip-all -o "$stage/bin/$b" "$build/bin/$b"
    # shellcheck disable=SC2016  # $ORIGIN is for the loader
    patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$stage/bin/$b"
  done
  for n in "${lib_names[@]}"; do cp -L "${lib_path[$n]}" "$stage/lib/$n"; chmod 0644 "$stage/lib/$n"; done
  cp -r "$dashboards" "$stage/share/isoflop/dashboards"; rm -f "$stage/share/isoflop/dashboards/.stamp"

  say "checking: --help under env -i, ldd inside lib/, symbol versions"
  for b in "${binaries[@]}"; do
    env -i LD_LIBRARY_PATH= PATH=/usr/bin:/bin "$stage/bin/$b" --help >/dev/null ||
      die "$stage/bin/$b --help failed under env -i"
    while read -r name arrow path _; do
      [ "$arrow" = "=>" ] || continue
      [[ $name =~ $system_re ]] && continue
      [[ $(realpath "$path") == "$stage/lib/"* ]] || die "ldd $stage/bin/$b: $name resolves to $path, not inside lib/"
    done < <(env -i LD_LIBRARY_PATH= PATH=/usr/bin:/bin ldd "$stage/bin/$b")
  done
  # Highest version of each system symbol set that a bundled file needs (objdump -T: "... (GLIBC_2.34) name").
  versions=$(objdump -T "$stage"/bin/* "$stage"/lib/* 2>/dev/null |
    grep -oE '\((GLIBC|GLIBCXX|CXXABI|GCC)_[0-9.]+\)' | tr -d '()' | sort -u -t_ -k1,1 -k2,2V)
  highest() { grep "^$1_" <<<"$versions" | tail -n1 | cut -d_ -f2; }
  need_glibc=$(highest GLIBC); need_glibcxx=$(highest GLIBCXX)
  say "needs from the host: GLIBC_$need_glibc GLIBCXX_$need_glibcxx CXXABI_$(highest CXXABI) GCC_$(highest GCC)"
  older_or_equal() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n1)" = "$2" ]; }
  older_or_equal "$need_glibc" "$max_glibc" || die "needs GLIBC_$need_glibc, newer than the host's $max_glibc"
  older_or_equal "$need_glibcxx" "$max_glibcxx" || die "needs GLIBCXX_$need_glibcxx, newer than the host's $max_glibcxx"

  if [ "$(id -u)" = 0 ] && command -v chroot >/dev/null; then
    # A root file system with the loader, glibc, libstdc++ and libgcc_s only: what a bare host provides.
    jail=$(mktemp -d /tmp/isoflop-bundle-jail.XXXXXX)
    mkdir -p "$jail/lib64" "$jail/lib/x86_64-linux-gnu" "$jail/tmp" "$jail/bundle"
    cp -L /lib64/ld-linux-x86-64.so.2 "$jail/lib64/"
    for f in /lib/x86_64-linux-gnu/{libc.so.6,libm.so.6,libmvec.so.1,libpthread.so.0,libdl.so.2,librt.so.1,libresolv.so.2,libstdc++.so.6,libgcc_s.so.1}; do
      cp -L "$f" "$jail/lib/x86_64-linux-gnu/"
    done
    cp -r "$stage/bin" "$stage/lib" "$jail/bundle/"
    # The loader finds $ORIGIN through /proc/self/exe; without /proc it takes LD_ORIGIN_PATH.
    mkdir "$jail/proc"; origin=(); mount -t proc proc "$jail/proc" 2>/dev/null || origin=(LD_ORIGIN_PATH=/bundle/bin)
    failed=
    for b in "${binaries[@]}"; do
      env "${origin[@]}" LD_BIND_NOW=1 chroot "$jail" "/bundle/bin/$b" --help >/dev/null 2>"$jail/err" ||
        { cat "$jail/err" >&2; failed=$b; break; }
    done
    [ ${#origin[@]} -gt 0 ] || umount "$jail/proc"
    rm -rf --one-file-system "$jail"
    [ -z "$failed" ] || die "$failed --help failed in a chroot with only the system libraries"
    say "checked: each binary runs (LD_BIND_NOW=1) in a chroot with only glibc, libstdc++ and libgcc_s"
  else
    say "not root: skipped the chroot check"
  fi

  {
    echo "isoflop service bundle $key, built $(date -u +%FT%TZ) on $(grep -oP '^PRETTY_NAME="\K[^"]*' /etc/os-release)"
    echo "git $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "needs: GLIBC_$need_glibc GLIBCXX_$need_glibcxx"
    for n in "${lib_names[@]}"; do echo "lib/$n <- $(readlink -f "${lib_path[$n]}")"; done
  } >"$stage/MANIFEST"
  say "packing $dir/service.tar.gz"
  tar -C "$stage" -czf "$dir/service.tar.gz.tmp" MANIFEST bin lib share
  mv "$dir/service.tar.gz.tmp" "$dir/service.tar.gz"
  echo "$key" >"$dir/service.key"
fi

# --- absl/: Debian's abseil and CLI11 headers for the trainer's build on the host ---------------------------------
arch=x86_64-linux-gnu
absl_key="libabsl-dev $(dpkg-query -W -f='${Version}' libabsl-dev) libcli11-dev $(dpkg-query -W -f='${Version}' libcli11-dev)"
if [ "$(cat "$dir/absl/.key" 2>/dev/null)" = "$absl_key" ]; then
  say "absl/ is current ($absl_key)"
else
  say "copying abseil and CLI11 ($absl_key) into $dir/absl"
  rm -rf "$dir/absl"; mkdir -p "$dir/absl/include" "$dir/absl/lib/$arch/cmake"
  cp -r /usr/include/absl /usr/include/CLI "$dir/absl/include/"
  cp -r "/usr/lib/$arch/cmake/absl" "$dir/absl/lib/$arch/cmake/"
  # The CMake config names libabsl_X.so.V.0.0 (checked at find_package); the loader asks for the soname, libabsl_X.so.V.
  for f in "/usr/lib/$arch"/libabsl_*.so.*.*.*; do
    cp "$f" "$dir/absl/lib/$arch/"
    ln -s "$(basename "$f")" "$dir/absl/lib/$arch/$(objdump -p "$f" | awk '/SONAME/ {print $2}')"
  done
  echo "$absl_key" >"$dir/absl/.key"
fi

# --- data/kjv-bpe10000 ------------------------------------------------------------------------------------------
kjv=$dir/data/kjv-bpe10000
if [ -f "$kjv/train.bin" ] && [ -f "$kjv/val.bin" ] && [ -f "$kjv/meta.json" ]; then
  say "data/kjv-bpe10000 present"
else
  say "preparing data/kjv-bpe10000 (King James Bible, BPE 10000)"
  rm -rf "$kjv"; mkdir -p "$dir/data"
  "$build/bin/isoflop-data" prepare --out "$kjv" --vocab-size 10000 >&2
fi

# --- size ---------------------------------------------------------------------------------------------------------
size=$(du -sb "$dir" | cut -f1)
mib=$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }')
du -sh "$dir"/service.tar.gz "$dir"/absl "$dir"/data/* >&2
if [ "$size" -gt $(( max_mib * 1048576 )) ]; then
  die "the bundle is $mib MiB, over the ${max_mib} MiB budget ($dir)"
fi
say "bundle $dir: $mib MiB (budget $max_mib MiB)"
