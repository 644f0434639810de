#!/usr/bin/env bash
# Installs what isoflop needs (Debian packages, LibTorch from the PyPI torch==2.11.0 wheel in a reused virtual
# environment), configures and builds. Safe to re-run: when everything is present it only runs an incremental build.
#   scripts/setup.sh [ninja targets...]      (default: all)
# Environment: ISOFLOP_BUILD_DIR (default ./build), ISOFLOP_VENV (default ./.venv), ISOFLOP_CMAKE_ARGS (extra flags),
#   ISOFLOP_WITH_QUALITY_TOOLS=1 (also clang, clang-format, clang-tidy, llvm for the gates of scripts/test.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ISOFLOP_BUILD_DIR:-$root/build}
venv=${ISOFLOP_VENV:-$root/.venv}
torch_version=2.11.0
t0=$(date +%s)
say() { printf '[setup %4ds] %s\n' $(( $(date +%s) - t0 )) "$*" >&2; }

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config python3 python3-venv python3-pip
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libceres-dev libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev libbenchmark-dev libabsl-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libcsv-dev
  libcmark-gfm-dev libcmark-gfm-extensions-dev
  libsentencepiece-dev sentencepiece bible-kjv
  libcpp-httplib-dev libssl-dev openssl libjs-chart.js chromium chromium-driver python3-selenium
  python3-grpcio python3-protobuf python3-pandas python3-pytest python3-setuptools protobuf-compiler-grpc
  slurmctld slurmd slurm-client munge
)
# deploy/kubernetes/ is checked with `kubectl apply --dry-run=client` (tests/deploy): Debian's kubectl is in
# kubernetes-client; a kubectl already on PATH (e.g. from Google's repository) is kept.
command -v kubectl >/dev/null || apt_packages+=(kubernetes-client)
# The quality gates of scripts/test.sh: sanitizers, libFuzzer and coverage (clang), formatting, static analysis.
if [ "${ISOFLOP_WITH_QUALITY_TOOLS:-0}" = 1 ]; then
  apt_packages+=(clang clang-format clang-tidy llvm libclang-rt-dev)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
  say "installing LibTorch (PyPI torch==$torch_version) into $venv; the first time this downloads a few GB"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "torch==$torch_version"
fi

# Asking Python for the CMake prefix costs ~2 s (import torch): do it only when configuring.
if [ ! -f "$build/build.ninja" ]; then
  torch_prefix=$("$venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  say "configuring $build"; mkdir -p "$build"
  # shellcheck disable=SC2086
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
    ${ISOFLOP_CMAKE_ARGS:-} >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 1; }
fi
say "building ${*:-all}"
cmake --build "$build" -- "$@"
# Bash completion for the CLI (`isoflop completion bash`, generated from its command tree; docs/cli.md), where
# bash-completion looks for a user's own scripts. Rewritten only when it changes.
if [ -x "$build/bin/isoflop" ]; then
  completions=${BASH_COMPLETION_USER_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion}/completions
  mkdir -p "$completions" && "$build/bin/isoflop" completion bash >"$completions/isoflop.new" &&
    { cmp -s "$completions/isoflop.new" "$completions/isoflop" && rm -f "$completions/isoflop.new" ||
      mv "$completions/isoflop.new" "$completions/isoflop"; } || say "bash completion not installed (see docs/cli.md)"
fi
say "done"
