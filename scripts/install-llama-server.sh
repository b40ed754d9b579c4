#!/usr/bin/env bash
# Installs llama-cpp-python's OpenAI-compatible server into .venv-llama/ (gitignored), for
# the integration tests of crates/thinktree-remote and for trying `gsm8k --server`.
#
# llama-cpp-python ships only a source distribution on PyPI, so pip compiles llama.cpp
# (a few minutes on 2 cores; pip caches the built wheel, so later runs are quick).
# Idempotent: does nothing when the server already imports. Usage:
#   bash scripts/install-llama-server.sh            # install if missing
#   bash scripts/install-llama-server.sh --force    # reinstall
set -euo pipefail

VERSION="0.3.16"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${THINKTREE_LLAMA_VENV:-$root/.venv-llama}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

if [[ $force == 0 && -x "$venv/bin/python" ]] &&
    "$venv/bin/python" -c "import llama_cpp.server, uvicorn" 2>/dev/null; then
    echo "llama-cpp-python server already installed in $venv"
    exit 0
fi

python=""
for p in python3 python; do
    if command -v "$p" >/dev/null 2>&1; then python="$p"; break; fi
done
if [[ -z "$python" ]]; then
    echo "error: python3 is needed to install llama-cpp-python (apt-get install python3 python3-venv)" >&2
    exit 1
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
    echo "error: a C++ compiler is needed to build llama-cpp-python (apt-get install g++)" >&2
    exit 1
fi

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
echo "building llama-cpp-python $VERSION (compiles llama.cpp; takes a few minutes the first time)"
"$venv/bin/python" -m pip install --quiet "llama-cpp-python[server]==$VERSION"
"$venv/bin/python" -c "import llama_cpp.server, uvicorn"
echo "installed: $venv/bin/python -m llama_cpp.server"
