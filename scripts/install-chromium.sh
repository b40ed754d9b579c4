#!/usr/bin/env bash
# Installs headless Chromium for the tree viewer's browser test
# (examples/gsm8k/tests/it/viewer.rs). Debian's `chromium` package; idempotent: does
# nothing when a Chromium or Chrome is already on the PATH or THINKTREE_CHROMIUM names one.
# Needs root (or sudo) for apt-get. Usage: bash scripts/install-chromium.sh
set -euo pipefail

if [[ -n "${THINKTREE_CHROMIUM:-}" && -x "${THINKTREE_CHROMIUM}" ]]; then
    echo "chromium: using THINKTREE_CHROMIUM=${THINKTREE_CHROMIUM}"
    exit 0
fi
for name in chromium chromium-browser google-chrome chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "chromium already installed: $(command -v "$name")"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: no Chromium found and no apt-get to install one; install Chromium or Chrome" \
        "and put it on the PATH (or set THINKTREE_CHROMIUM=/path/to/chrome)" >&2
    exit 1
fi
sudo=""
if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "error: installing chromium needs root (apt-get install chromium)" >&2
        exit 1
    fi
fi
echo "installing chromium (apt-get) for the viewer's browser test..."
export DEBIAN_FRONTEND=noninteractive
# A stale package index is the usual reason the install fails on a fresh machine.
$sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
    $sudo apt-get update -qq
    $sudo apt-get install -y --no-install-recommends chromium
}
command -v chromium
