#!/usr/bin/env bash
# ctest's python_client_test: (re)installs this package into VENV (created with --system-site-packages over
# Debian's python3-grpcio, python3-protobuf, python3-pandas, python3-pytest) exactly as clients/python/README.md
# says, then runs its pytest suite against a real coordinator (conftest.py).
#   run_ctest.sh VENV
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$1
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps "$here" >"$venv/install.log" 2>&1 ||
  { cat "$venv/install.log" >&2; exit 1; }
cd "$venv"  # import the installed package, not the source tree
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/tests"
